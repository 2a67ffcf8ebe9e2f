-- Offers cached from the last good signed bundle. Lists are JSON arrays; an empty zones list means
-- every zone. Stock NULL means the offer is not stock-limited.
CREATE TABLE offers (
    offer_id      TEXT PRIMARY KEY,
    title         TEXT NOT NULL,
    body          TEXT NOT NULL DEFAULT '',
    price_cents   INTEGER,
    currency      TEXT NOT NULL DEFAULT '',
    image         TEXT NOT NULL DEFAULT '',
    valid_from    TEXT NOT NULL,
    valid_to      TEXT NOT NULL,
    zones         TEXT NOT NULL DEFAULT '[]',
    audience      TEXT NOT NULL DEFAULT 'anyone' CHECK (audience IN ('anyone', 'personalised')),
    segments      TEXT NOT NULL DEFAULT '[]',
    stock         INTEGER CHECK (stock IS NULL OR stock >= 0),
    priority      REAL NOT NULL DEFAULT 0
);

-- The opt-in roster: only shoppers who opted in are here, and only they can ever be identified.
CREATE TABLE customers (
    customer_ref   TEXT PRIMARY KEY,
    segments       TEXT NOT NULL DEFAULT '[]',
    consent_epoch  INTEGER NOT NULL DEFAULT 0,
    updated_at     TEXT NOT NULL
);

-- Consent is per channel (checkin, ble, face, personalisation, ...); no row means no consent.
CREATE TABLE consents (
    customer_ref  TEXT NOT NULL REFERENCES customers (customer_ref) ON DELETE CASCADE,
    channel       TEXT NOT NULL,
    granted       INTEGER NOT NULL CHECK (granted IN (0, 1)),
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (customer_ref, channel)
) WITHOUT ROWID;

CREATE TABLE decisions (
    decision_id   TEXT PRIMARY KEY,
    at            TEXT NOT NULL,
    ntp_synced    INTEGER NOT NULL,
    touchpoint    TEXT NOT NULL,
    zone          TEXT NOT NULL,
    customer_ref  TEXT,
    offer_id      TEXT,
    eligible      TEXT NOT NULL,
    scores        TEXT NOT NULL,
    policy        TEXT NOT NULL
);
CREATE INDEX decisions_customer ON decisions (customer_ref) WHERE customer_ref IS NOT NULL;

-- Proof of play: one row per decision a touchpoint acknowledged it displayed.
CREATE TABLE impressions (
    impression_id  TEXT PRIMARY KEY,
    decision_id    TEXT NOT NULL UNIQUE,
    at             TEXT NOT NULL,
    ntp_synced     INTEGER NOT NULL,
    displayed_at   TEXT NOT NULL,
    touchpoint     TEXT NOT NULL,
    offer_id       TEXT NOT NULL,
    customer_ref   TEXT
);
CREATE INDEX impressions_customer ON impressions (customer_ref) WHERE customer_ref IS NOT NULL;

-- Everything that goes up to the cloud, written in the same transaction as the fact it reports and
-- deleted only after the broker acknowledged it. drop_class 0 is never dropped.
CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid          TEXT NOT NULL UNIQUE,
    stream        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    drop_class    INTEGER NOT NULL,
    customer_ref  TEXT,
    payload       TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX outbox_stream ON outbox (stream, seq);
CREATE INDEX outbox_customer ON outbox (customer_ref) WHERE customer_ref IS NOT NULL;

-- Check-in token ids already used, kept until the token would have expired anyway.
CREATE TABLE checkin_nonces (
    nonce         TEXT PRIMARY KEY,
    expires_unix  REAL NOT NULL
) WITHOUT ROWID;
