-- rbac V1: permissions catalog, tenant roles (with the four system roles),
-- role permissions and role assignments. Applied once per tenant by the host.

CREATE TABLE rbac_permissions (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL
);

CREATE TABLE rbac_roles (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description TEXT NOT NULL DEFAULT '',
    is_system   INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE rbac_role_permissions (
    role_id    TEXT NOT NULL REFERENCES rbac_roles(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (role_id, permission)
);

CREATE INDEX rbac_role_permissions_by_permission ON rbac_role_permissions(permission);

CREATE TABLE rbac_assignments (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    role_id    TEXT NOT NULL REFERENCES rbac_roles(id),
    -- '' means tenant-wide; otherwise the id of one store.
    store_id   TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    UNIQUE (user_id, role_id, store_id)
);

CREATE INDEX rbac_assignments_by_role ON rbac_assignments(role_id);

-- The system roles. Ids are random UUID v4 strings; their permissions are
-- granted by the host's catalog sync from each plugin's default roles.
INSERT INTO rbac_roles (id, name, description, is_system, created_at, updated_at)
SELECT
    lower(
        hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||
        substr(hex(randomblob(2)), 2) || '-' ||
        substr('89ab', 1 + (abs(random()) % 4), 1) ||
        substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))
    ),
    seed.column1,
    seed.column2,
    1,
    strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
    strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
FROM (
    VALUES
        ('Owner', 'Full control of the tenant; holds every permission, including ones added later.'),
        ('Admin', 'Administers the tenant: stores, members, roles and settings.'),
        ('Manager', 'Runs day-to-day operations and can see who holds which role.'),
        ('Member', 'Basic access for members of the tenant.')
) AS seed;
