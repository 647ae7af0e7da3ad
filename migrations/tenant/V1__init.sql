-- Host-owned tables of one tenant's database. Plugins own the tables named
-- after them (rbac_*, ...) and reach these only if their manifest declares it.

CREATE TABLE stores (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Users allowed to use one store (besides holders of stores.access_all).
CREATE TABLE store_members (
    store_id    TEXT NOT NULL REFERENCES stores(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    added_at    TEXT NOT NULL,
    PRIMARY KEY (store_id, user_id)
);

-- The tenant's directory of its people, mirrored from control.db so that
-- plugins can name users without reaching the platform database.
CREATE TABLE members (
    user_id     TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    full_name   TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    joined_at   TEXT NOT NULL
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT,
    channel     TEXT NOT NULL,
    operation   TEXT NOT NULL,
    target      TEXT,
    outcome     TEXT NOT NULL,
    ip          TEXT,
    user_agent  TEXT,
    request_id  TEXT,
    store_id    TEXT,
    detail      TEXT
);

-- Events emitted by plugins, written in the emitting call's transaction.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    source       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    delivered_at TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,
    value       BLOB NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Host bookkeeping, e.g. the permission catalog last synced to rbac.
CREATE TABLE host_meta (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
