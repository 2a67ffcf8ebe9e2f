-- The version of the last good signed bundle of each kind (offers, roster, config), so an older or
-- replayed bundle can be refused and the agent knows what it runs on after a restart.
CREATE TABLE bundle_versions (
    kind        TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    issued_at   TEXT NOT NULL,
    applied_at  TEXT NOT NULL
) WITHOUT ROWID;
