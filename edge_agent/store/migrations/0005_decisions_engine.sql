-- The decision engine: offer rules, full decision logs (arm, probabilities, propensity, model version,
-- features; `policy` holds the model version), the bundle's decision sections, purchases from the till and the conversions they make.

-- An offer's rules (caps, pricing, experiment, sku, ...) as one validated JSON document.
ALTER TABLE offers ADD COLUMN rules TEXT NOT NULL DEFAULT '{}';

ALTER TABLE decisions ADD COLUMN arm TEXT NOT NULL DEFAULT '';
ALTER TABLE decisions ADD COLUMN intended_offer_id TEXT;     -- the policy's choice (shown unless holdout/control)
ALTER TABLE decisions ADD COLUMN experiment TEXT;            -- experiment key of the intended offer, if any
ALTER TABLE decisions ADD COLUMN probabilities TEXT NOT NULL DEFAULT '{}';
ALTER TABLE decisions ADD COLUMN propensity REAL;
ALTER TABLE decisions ADD COLUMN features TEXT NOT NULL DEFAULT '{}';
ALTER TABLE decisions ADD COLUMN price_cents INTEGER;
-- `eligible` keeps the best 50 in ranked order; the whole set is a bitmap over the bundle's offers by id.
ALTER TABLE decisions ADD COLUMN eligible_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE decisions ADD COLUMN eligible_set TEXT NOT NULL DEFAULT '';
ALTER TABLE decisions ADD COLUMN sku TEXT;                   -- of the intended offer, with its window:
ALTER TABLE decisions ADD COLUMN attribution_window_h REAL;  -- what a later purchase is attributed against
CREATE INDEX decisions_at ON decisions (at);
CREATE INDEX decisions_attribution ON decisions (customer_ref, sku, at) WHERE sku IS NOT NULL;
CREATE INDEX decisions_customer_at ON decisions (customer_ref, at) WHERE customer_ref IS NOT NULL;

ALTER TABLE impressions ADD COLUMN arm TEXT NOT NULL DEFAULT '';

-- The decision sections of the offer bundle in force (policy, holdout, bought together, bounds, caps).
CREATE TABLE decision_policy (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    bundle_version  INTEGER NOT NULL,
    body            TEXT NOT NULL
);

-- Every till transaction seen, identified or not, so a repeated receipt is counted once. No customer here.
CREATE TABLE pos_transactions (
    txn_id      TEXT PRIMARY KEY,
    register    TEXT NOT NULL,
    at          TEXT NOT NULL,
    lines       INTEGER NOT NULL
) WITHOUT ROWID;

-- What consenting customers bought: their recent purchases, affinities and replenishment cycles.
CREATE TABLE purchases (
    id            INTEGER PRIMARY KEY,
    customer_ref  TEXT NOT NULL REFERENCES customers (customer_ref) ON DELETE CASCADE,
    txn_id        TEXT NOT NULL,
    at            TEXT NOT NULL,
    at_unix       REAL NOT NULL,
    sku           TEXT NOT NULL,
    qty           INTEGER NOT NULL,
    price_cents   INTEGER
);
CREATE INDEX purchases_customer ON purchases (customer_ref, at_unix);

-- A purchase attributed to a decision (and its impression, if the screen showed it): one per decision.
CREATE TABLE conversions (
    conversion_id  TEXT PRIMARY KEY,
    decision_id    TEXT NOT NULL UNIQUE,
    impression_id  TEXT,
    customer_ref   TEXT NOT NULL REFERENCES customers (customer_ref) ON DELETE CASCADE,
    offer_id       TEXT NOT NULL,
    arm            TEXT NOT NULL,
    txn_id         TEXT NOT NULL,
    sku            TEXT NOT NULL,
    via            TEXT NOT NULL CHECK (via IN ('window', 'claim')),
    at             TEXT NOT NULL,
    at_unix        REAL NOT NULL
);
CREATE INDEX conversions_customer ON conversions (customer_ref, offer_id);
CREATE INDEX conversions_offer ON conversions (offer_id, arm);

-- A claimed offer (table claims, from the kiosk) may name the decision that showed it, and remembers the
-- till transaction that redeemed it, so a receipt line carrying its code converts that offer once.
ALTER TABLE claims ADD COLUMN decision_id TEXT;
ALTER TABLE claims ADD COLUMN redeemed_txn TEXT;
