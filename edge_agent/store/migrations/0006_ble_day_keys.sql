-- BLE day keys of customers whose consent covers "ble" (the cloud's rotating-token keys, one per UTC day).
-- Only these keys let the agent recognise a phone; they go with the customer on erasure.
CREATE TABLE ble_day_keys (
    customer_ref  TEXT NOT NULL REFERENCES customers (customer_ref) ON DELETE CASCADE,
    day           TEXT NOT NULL CHECK (length(day) = 8),
    day_key       BLOB NOT NULL CHECK (length(day_key) = 16),
    PRIMARY KEY (customer_ref, day)
) WITHOUT ROWID;
CREATE INDEX ble_day_keys_day ON ble_day_keys (day);

-- The phone model the app reported (e.g. "iphone-15"), for its calibrated signal strength at 1 m.
CREATE TABLE ble_phones (
    customer_ref  TEXT PRIMARY KEY REFERENCES customers (customer_ref) ON DELETE CASCADE,
    phone_model   TEXT NOT NULL
) WITHOUT ROWID;
