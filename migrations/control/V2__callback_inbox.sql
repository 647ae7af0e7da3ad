-- Callbacks (e.g. Daraja results) acknowledged at once and applied after:
-- Safaricom delivers each callback once and does not retry, so a callback
-- is stored here before the answer and handed to its plugin by a worker,
-- which retries while the plugin cannot match it yet (a callback may
-- arrive before the request it answers has committed).
CREATE TABLE callback_inbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    body          TEXT NOT NULL,
    source_ip     TEXT,
    received_at   INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  INTEGER NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'applied', 'failed')),
    last_error    TEXT
);
CREATE INDEX callback_inbox_pending ON callback_inbox(state, next_attempt);
