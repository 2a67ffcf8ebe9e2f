-- Face embeddings of enrolled customers who consented to "face" (128 float32, L2-normalised, 512 bytes
-- each), as the roster brings them. Erasing the customer erases them (ON DELETE CASCADE).
CREATE TABLE face_embeddings (
    customer_ref  TEXT NOT NULL REFERENCES customers (customer_ref) ON DELETE CASCADE,
    idx           INTEGER NOT NULL CHECK (idx >= 0),
    embedding     BLOB NOT NULL CHECK (length(embedding) = 512),
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (customer_ref, idx)
) WITHOUT ROWID;
