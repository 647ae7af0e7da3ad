-- Money-moving calls that an AI assistant asked for and a person must
-- approve (payouts, reversals). An approval runs its operation once: the
-- claim `pending -> approved` is one conditional UPDATE, and the operation
-- runs with the idempotency key `approval:<id>`.
CREATE TABLE approvals (
    id            TEXT PRIMARY KEY,
    operation     TEXT NOT NULL,
    tool          TEXT,
    input         TEXT NOT NULL,
    amount        INTEGER,
    summary       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'executed', 'failed', 'rejected')),
    requested_by  TEXT NOT NULL,
    channel       TEXT NOT NULL,
    api_key_id    TEXT,
    store_id      TEXT,
    reserved_amount INTEGER,
    created_at    TEXT NOT NULL,
    decided_by    TEXT,
    decided_at    TEXT,
    result        TEXT,
    error         TEXT
);
CREATE INDEX approvals_by_status ON approvals(status, created_at);
