-- mpesa V2: two-phase outbound (docs/ARCHITECTURE.md, "Two-phase outbound").
-- What a request to Daraja is going to be is recorded and committed before
-- it is sent; its answer is recorded after.

-- How far a B2C item's request got: 'queued' (recorded, never sent),
-- 'submitting' (committed and being sent; its answer is not recorded — after a
-- crash it is asked about, never sent again). NULL once the answer is recorded
-- (and for every row from before V2). No CHECK here: SQLite verifies a CHECK
-- added by ALTER TABLE with pragma_quick_check, which the migration authorizer
-- refuses; the plugin writes only these two values.
ALTER TABLE mpesa_transactions ADD COLUMN submission TEXT;
CREATE INDEX mpesa_transactions_by_submission ON mpesa_transactions(submission, created_ms)
    WHERE submission IS NOT NULL;

-- The object a keyed call works on (B2C batch, STK intent), written with the
-- key before anything is sent; `response` is JSON `null` until the call ends.
ALTER TABLE mpesa_idempotency ADD COLUMN subject_id TEXT;

-- An STK push about to be sent: committed before the push leaves, deleted
-- when its answer (CheckoutRequestID) is recorded in mpesa_transactions. One
-- left behind means the push may have reached Daraja: it is never re-sent.
CREATE TABLE mpesa_submissions (
    id               TEXT PRIMARY KEY,
    operation        TEXT NOT NULL,
    idempotency_key  TEXT,
    phone_number     TEXT,
    amount           INTEGER,
    created_at       TEXT NOT NULL,
    created_ms       INTEGER NOT NULL
);
