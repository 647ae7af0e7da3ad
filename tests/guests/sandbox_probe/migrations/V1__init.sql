-- sandbox V1: notes written by the probe operations (to check rollbacks).

CREATE TABLE sandbox_items (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    note       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
