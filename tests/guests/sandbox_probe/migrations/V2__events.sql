-- sandbox V2: every event delivered to `on-event`, one row per delivery (no
-- uniqueness on purpose: a second delivery of one event shows as two rows).

CREATE TABLE sandbox_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL,
    name       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    user_id    TEXT,
    channel    TEXT NOT NULL,
    request_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
