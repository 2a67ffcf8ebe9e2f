-- What the outbox bound made the agent drop, per drop class and kind, kept across restarts and reported in
-- telemetry until the cloud has seen it (the counts only grow).
CREATE TABLE outbox_drops (
    drop_class  INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    dropped     INTEGER NOT NULL,
    PRIMARY KEY (drop_class, kind)
) WITHOUT ROWID;

-- The drop policy takes the oldest rows of the most expendable class first.
CREATE INDEX outbox_drop_order ON outbox (drop_class, seq);
