-- The last good desired configuration from the fleet (the verified JSON document, signed envelope removed),
-- so the agent re-applies it after a restart without waiting for the broker. One row: the one in force.
-- Its version is also claimed in bundle_versions (kind 'config'), which refuses older or replayed ones.
CREATE TABLE desired_config (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    version     INTEGER NOT NULL,
    document    TEXT NOT NULL,
    applied_at  TEXT NOT NULL
);
