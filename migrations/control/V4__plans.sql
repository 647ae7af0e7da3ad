-- The platform's plan catalog, platform settings (which tenant is the
-- platform itself), and invoice charges made through the platform's own
-- M-Pesa account.

CREATE TABLE plans (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    price_kes   INTEGER NOT NULL CHECK (price_kes >= 0),
    interval    TEXT NOT NULL CHECK (interval IN ('month', 'year')),
    trial_days  INTEGER NOT NULL DEFAULT 0 CHECK (trial_days >= 0),
    features    TEXT NOT NULL DEFAULT '[]',
    limits      TEXT NOT NULL DEFAULT '{}',
    active      INTEGER NOT NULL DEFAULT 1,
    position    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

INSERT INTO plans (id, name, price_kes, interval, trial_days, features, limits, position, created_at, updated_at) VALUES
 ('free', 'Free', 0, 'month', 0, '[]',
  '{"max_stores":3,"max_users":3,"api_calls_per_month":10000,"transactions_per_month":100,"requests_per_minute":60}',
  1, '2026-11-24T00:00:00Z', '2026-11-24T00:00:00Z'),
 ('standard', 'Standard', 2500, 'month', 14, '["mcp","bulk_payouts"]',
  '{"max_stores":10,"max_users":25,"api_calls_per_month":250000,"transactions_per_month":5000,"requests_per_minute":1200}',
  2, '2026-11-24T00:00:00Z', '2026-11-24T00:00:00Z'),
 ('premium', 'Premium', 7500, 'month', 14, '["mcp","bulk_payouts","data_export","custom_branding"]',
  '{"max_stores":null,"max_users":null,"api_calls_per_month":2000000,"transactions_per_month":50000,"requests_per_minute":6000}',
  3, '2026-11-24T00:00:00Z', '2026-11-24T00:00:00Z');

CREATE TABLE platform_settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- One STK push the platform made to collect a tenant's invoice. Settled
-- when the platform tenant's `payment.completed` / `payment.failed` names
-- the transaction.
CREATE TABLE platform_charges (
    transaction_id  TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    invoice_id      TEXT NOT NULL,
    attempt_id      TEXT NOT NULL,
    amount_kes      INTEGER NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'settled')),
    created_at      TEXT NOT NULL,
    settled_at      TEXT
);
CREATE INDEX platform_charges_by_tenant ON platform_charges(tenant_id);
