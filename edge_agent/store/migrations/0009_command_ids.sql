-- Cloud commands already carried out, kept until they are too old to be accepted at all, so a replayed
-- command (from the broker, a bridge or a recording) is refused across restarts too.
CREATE TABLE command_ids (
    nonce         TEXT PRIMARY KEY,
    expires_unix  REAL NOT NULL
) WITHOUT ROWID;
