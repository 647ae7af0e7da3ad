-- Alerts about a tenant's abnormal behaviour (a spike of failed sign-ins,
-- failed payments or server errors), for the platform's super-admins.
CREATE TABLE platform_alerts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('failed_logins', 'failed_payments', 'server_errors')),
    count            INTEGER NOT NULL,
    threshold        INTEGER NOT NULL,
    window_secs      INTEGER NOT NULL,
    raised_at        TEXT NOT NULL,
    acknowledged_at  TEXT,
    acknowledged_by  TEXT
);
CREATE INDEX platform_alerts_open ON platform_alerts(acknowledged_at, id);
CREATE INDEX platform_alerts_by_tenant ON platform_alerts(tenant_id);
