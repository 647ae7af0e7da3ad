-- The tenant's subscription to a plan of the platform's catalog: one row.
-- Times are milliseconds since the Unix epoch (UTC); answers show them as
-- RFC 3339. Periods are computed from `anchor_ms` (`period_index` intervals
-- after it) so that clamped month ends do not drift.
CREATE TABLE billing_subscription (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    plan_id              TEXT NOT NULL,
    -- The plan as it was when chosen, in case the catalog drops it later.
    plan_name            TEXT NOT NULL,
    plan_price_kes       INTEGER NOT NULL,
    plan_interval        TEXT NOT NULL CHECK (plan_interval IN ('month', 'year')),
    status               TEXT NOT NULL
                         CHECK (status IN ('trial', 'active', 'past_due', 'suspended', 'cancelled')),
    trial_ends_ms        INTEGER,
    anchor_ms            INTEGER NOT NULL,
    period_index         INTEGER NOT NULL DEFAULT 0,
    period_start_ms      INTEGER NOT NULL,
    period_end_ms        INTEGER NOT NULL,
    pending_plan_id      TEXT,
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0,
    past_due_since_ms    INTEGER,
    suspended_at_ms      INTEGER,
    cancelled_at_ms      INTEGER,
    -- The phone of the last charge, for dunning retries.
    phone_number         TEXT,
    created_ms           INTEGER NOT NULL,
    updated_ms           INTEGER NOT NULL
);

-- Invoice numbers are per tenant and never reused: `INV-000001`, ….
CREATE TABLE billing_counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

CREATE TABLE billing_invoices (
    id              TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL UNIQUE,
    number          TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('open', 'paid', 'void')),
    currency        TEXT NOT NULL DEFAULT 'KES',
    amount_kes      INTEGER NOT NULL CHECK (amount_kes >= 0),
    plan_id         TEXT NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN ('trial_end', 'renewal', 'proration', 'new_period')),
    period_start_ms INTEGER NOT NULL,
    period_end_ms   INTEGER NOT NULL,
    issued_ms       INTEGER NOT NULL,
    due_ms          INTEGER NOT NULL,
    paid_ms         INTEGER,
    receipt         TEXT,
    voided_ms       INTEGER
);
CREATE INDEX billing_invoices_open ON billing_invoices(status, due_ms);

CREATE TABLE billing_invoice_lines (
    invoice_id      TEXT NOT NULL REFERENCES billing_invoices(id),
    position        INTEGER NOT NULL,
    description     TEXT NOT NULL,
    amount_kes      INTEGER NOT NULL,   -- negative for a credit
    plan_id         TEXT,
    period_start_ms INTEGER,
    period_end_ms   INTEGER,
    PRIMARY KEY (invoice_id, position)
);

-- STK pushes the host made (or will make) for an invoice.
CREATE TABLE billing_payment_attempts (
    id             TEXT PRIMARY KEY,
    invoice_id     TEXT NOT NULL REFERENCES billing_invoices(id),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    phone_number   TEXT,
    transaction_id TEXT,
    amount_kes     INTEGER,
    receipt        TEXT,
    failure_reason TEXT,
    created_ms     INTEGER NOT NULL,
    completed_ms   INTEGER
);
CREATE INDEX billing_payment_attempts_invoice ON billing_payment_attempts(invoice_id, created_ms);

-- Once-only things done for an invoice: `due` (reminder), `overdue`,
-- `retry_1`, `retry_3`, `retry_5` (dunning charges handed to the host).
CREATE TABLE billing_notices (
    invoice_id TEXT NOT NULL REFERENCES billing_invoices(id),
    kind       TEXT NOT NULL,
    done_ms    INTEGER NOT NULL,
    PRIMARY KEY (invoice_id, kind)
);
