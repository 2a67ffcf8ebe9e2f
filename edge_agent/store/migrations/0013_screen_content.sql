-- What the offer bundle says the screens play: its playlists, campaigns and layouts (JSON), in place of the
-- config's while a bundle carries them.
CREATE TABLE screen_content (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL,
    content  TEXT NOT NULL
);
