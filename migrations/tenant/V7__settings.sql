-- The organization's typed settings (`GET/PATCH /tenant/settings`): one row
-- per key set, its value as JSON; a key without a row has its default
-- (the registry in host/src/settings.rs).
CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,                  -- JSON
    updated_at  TEXT NOT NULL,
    updated_by  TEXT
);

-- Custom terminology (e.g. "branch" for "store"): a JSON object of the
-- words the organization renames, used by email templates and the dashboard.
ALTER TABLE branding ADD COLUMN terminology TEXT;
