-- Per-tenant feature flags a platform super-admin sets over the plan's
-- (`PUT /admin/tenants/{id}/features`): a row turns a feature on or off for
-- one tenant whatever its plan says; no row, the plan decides.
CREATE TABLE tenant_feature_overrides (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    feature     TEXT NOT NULL,                  -- [a-z0-9_]{1,40}
    enabled     INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    updated_at  TEXT NOT NULL,
    updated_by  TEXT,                           -- the super-admin's user id
    PRIMARY KEY (tenant_id, feature)
);

-- Custom domains: a hostname a tenant claims (`PUT /tenant/domain`). A
-- request whose `Host` is that name resolves to the tenant for its public
-- pages and login; never for an authenticated request. One per tenant.
CREATE TABLE tenant_domains (
    hostname    TEXT PRIMARY KEY COLLATE NOCASE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX tenant_domains_by_tenant ON tenant_domains(tenant_id);
