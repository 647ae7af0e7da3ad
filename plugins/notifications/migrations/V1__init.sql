-- Outgoing webhook endpoints of the tenant. The signing secret is kept in
-- the tenant's sealed secrets (`webhook-secrets`), never in this table.
CREATE TABLE notifications_webhooks (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,          -- JSON list of event names, or ["*"]
    description     TEXT,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason TEXT,
    failing_since   INTEGER,                -- ms; set by the first failure after a success
    created_at      TEXT NOT NULL,
    created_by      TEXT,
    deleted_at      TEXT
);

-- One message per (endpoint, event): its webhook-id is stable across
-- retries, so a receiver can drop duplicates.
CREATE TABLE notifications_deliveries (
    id              TEXT PRIMARY KEY,       -- the webhook-id header, msg_…
    webhook_id      TEXT NOT NULL REFERENCES notifications_webhooks(id),
    event_id        TEXT NOT NULL,
    event_name      TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX notifications_deliveries_due ON notifications_deliveries(status, next_attempt_ms);
