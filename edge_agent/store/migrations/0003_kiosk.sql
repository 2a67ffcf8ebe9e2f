-- Kiosk identification by a typed number: the roster carries the loyalty id and a salted phone hash
-- (the raw phone number never reaches the store).
ALTER TABLE customers ADD COLUMN loyalty_id TEXT;
ALTER TABLE customers ADD COLUMN phone_hash TEXT;
CREATE UNIQUE INDEX customers_loyalty ON customers (loyalty_id) WHERE loyalty_id IS NOT NULL;
CREATE UNIQUE INDEX customers_phone ON customers (phone_hash) WHERE phone_hash IS NOT NULL;

-- An offer a shopper claimed at a kiosk: the code (and its QR) the till accepts, once.
CREATE TABLE claims (
    code          TEXT PRIMARY KEY,
    customer_ref  TEXT NOT NULL REFERENCES customers (customer_ref) ON DELETE CASCADE,
    offer_id      TEXT NOT NULL,
    touchpoint    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    redeemed_at   TEXT,
    UNIQUE (customer_ref, offer_id)
) WITHOUT ROWID;

-- A face enrolment the shopper asked for at a kiosk after giving face consent; the camera host takes it up.
CREATE TABLE face_enrolment_requests (
    customer_ref  TEXT PRIMARY KEY REFERENCES customers (customer_ref) ON DELETE CASCADE,
    touchpoint    TEXT NOT NULL,
    requested_at  TEXT NOT NULL
) WITHOUT ROWID;

-- Images the offer bundle names, cached on disk by content hash so screens show them offline.
CREATE TABLE assets (
    url           TEXT PRIMARY KEY,
    sha256        TEXT NOT NULL CHECK (length(sha256) = 64),
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL CHECK (size >= 0),
    fetched_at    TEXT
) WITHOUT ROWID;
