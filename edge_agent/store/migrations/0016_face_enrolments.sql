-- Face enrolments at a kiosk, taken by the camera that looks out from it: when each began and how it ended.
-- No image and no embedding is ever written here; what goes up is sealed to the cloud in the outbox.
-- Replaces the requests of 0004, which nothing on the store side took up: they are kept as enrolments that
-- failed for that reason, so the kiosk can tell the shopper.
CREATE TABLE face_enrolments (
    enrolment_id  TEXT PRIMARY KEY,
    customer_ref  TEXT NOT NULL REFERENCES customers (customer_ref) ON DELETE CASCADE,
    touchpoint    TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    outcome       TEXT CHECK (outcome IN ('sent', 'cancelled', 'failed')),
    reason        TEXT,
    CHECK ((ended_at IS NULL) = (outcome IS NULL))
) WITHOUT ROWID;
CREATE INDEX face_enrolments_customer ON face_enrolments (customer_ref, started_at);

INSERT INTO face_enrolments (enrolment_id, customer_ref, touchpoint, started_at, ended_at, outcome, reason)
    SELECT lower(hex(randomblob(16))), customer_ref, touchpoint, requested_at, requested_at, 'failed', 'not_taken_up'
    FROM face_enrolment_requests;
DROP TABLE face_enrolment_requests;
