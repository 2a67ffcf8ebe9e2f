-- Each touchpoint's pairing key: a screen proves it is that touchpoint's screen with it (its first WebSocket
-- message); made at first start, kept across restarts, shown to staff on the dashboard.
CREATE TABLE screen_keys (
    touchpoint  TEXT PRIMARY KEY,
    key         TEXT NOT NULL
) WITHOUT ROWID;
