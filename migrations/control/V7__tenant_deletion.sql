-- Deleting a tenant has a grace period: the tenant is suspended at once and
-- purged (its file and every control.db row naming it) when the time in
-- `deletion_due_at` (RFC 3339, UTC, to the second) has passed, unless the
-- deletion is cancelled first, which restores `status_before_deletion`.
-- Columns rather than a new status: the status CHECK constraint would need a
-- table rebuild.
ALTER TABLE tenants ADD COLUMN deletion_due_at TEXT;
ALTER TABLE tenants ADD COLUMN status_before_deletion TEXT;
CREATE INDEX tenants_by_deletion_due ON tenants(deletion_due_at) WHERE deletion_due_at IS NOT NULL;
