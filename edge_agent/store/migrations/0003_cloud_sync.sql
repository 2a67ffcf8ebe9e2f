-- What the outbox bound made the agent drop, per drop class and kind, kept across restarts and reported in
-- telemetry (the counts only grow).
CREATE TABLE outbox_drops (
    drop_class  INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    dropped     INTEGER NOT NULL,
    PRIMARY KEY (drop_class, kind)
) WITHOUT ROWID;

-- The outbox again, without the UNIQUE index on uuid: uuids are random (v4), so the index only guarded
-- against the impossible while tripling the cost of every delete the drain makes after a PUBACK.
-- Adds an index for the drop policy (oldest rows of the most expendable class first).
CREATE TABLE outbox_v3 (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid          TEXT NOT NULL,
    stream        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    drop_class    INTEGER NOT NULL,
    customer_ref  TEXT,
    payload       TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
INSERT INTO outbox_v3 (seq, uuid, stream, kind, drop_class, customer_ref, payload, created_at)
    SELECT seq, uuid, stream, kind, drop_class, customer_ref, payload, created_at FROM outbox;
-- Sequence numbers keep growing from where they were, even past rows already sent and deleted.
DELETE FROM sqlite_sequence WHERE name = 'outbox_v3';
INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox_v3', seq FROM sqlite_sequence WHERE name = 'outbox';
DROP TABLE outbox;
ALTER TABLE outbox_v3 RENAME TO outbox;
CREATE INDEX outbox_stream ON outbox (stream, seq);
CREATE INDEX outbox_customer ON outbox (customer_ref) WHERE customer_ref IS NOT NULL;
CREATE INDEX outbox_drop_order ON outbox (drop_class, seq);
