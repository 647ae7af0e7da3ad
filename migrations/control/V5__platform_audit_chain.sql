-- The platform audit becomes a hash chain like each tenant's audit log
-- (see host/src/audit/chain.rs), and control.db keeps the last known head
-- of every tenant's chain, out of reach of an edit of the tenant's file.
ALTER TABLE platform_audit ADD COLUMN seq INTEGER;
ALTER TABLE platform_audit ADD COLUMN prev_hash TEXT;
ALTER TABLE platform_audit ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX platform_audit_by_seq ON platform_audit(seq);

-- The platform chain's bookkeeping: its head, and (until they are chained
-- by the first append or verification) how far the rows written before
-- this migration go.
CREATE TABLE platform_audit_meta (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
INSERT INTO platform_audit_meta (key, value)
SELECT 'audit_legacy_through', CAST(last_id AS TEXT)
FROM (SELECT MAX(id) AS last_id FROM platform_audit)
WHERE last_id IS NOT NULL;

-- The head (last seq and hash) of each tenant's audit chain, written after
-- the tenant's transaction commits (best effort) and only ever moved
-- forward along the same chain: a tenant file whose chain ends before it,
-- or disagrees with it, has lost or changed rows.
CREATE TABLE tenant_audit_heads (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
