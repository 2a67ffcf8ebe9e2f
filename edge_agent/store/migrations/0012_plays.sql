-- Proof of play for every playlist item: one row per play of an item on a screen, written by the screen's
-- acknowledgement together with its outbox message. Anonymous: a play names no shopper.
CREATE TABLE plays (
    play_id      TEXT PRIMARY KEY,
    touchpoint   TEXT NOT NULL,
    item_id      TEXT NOT NULL,
    campaign     TEXT,
    started_at   TEXT NOT NULL,
    ended_at     TEXT NOT NULL,
    duration_s   REAL NOT NULL CHECK (duration_s >= 0),
    completed    INTEGER NOT NULL CHECK (completed IN (0, 1)),
    ntp_synced   INTEGER NOT NULL CHECK (ntp_synced IN (0, 1)),
    people       INTEGER CHECK (people >= 0),
    recorded_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX plays_started ON plays (started_at);
