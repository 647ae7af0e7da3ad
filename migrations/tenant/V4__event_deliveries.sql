-- Delivery of outbox events to the plugins that subscribe to them: one row
-- per (event, subscriber), so each subscriber gets each event independently
-- of the others. A delivery that succeeded is marked in the same
-- transaction as the subscriber's own writes; a failed one is retried with
-- backoff (`next_attempt_ms`) until it succeeds or is given up (`failed_at`).
-- `outbox.delivered_at` is set once every subscriber is done with the event.
CREATE TABLE event_deliveries (
    event_id        TEXT NOT NULL,
    plugin          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    delivered_at    TEXT,
    failed_at       TEXT,
    last_error      TEXT,
    PRIMARY KEY (event_id, plugin)
);
CREATE INDEX outbox_undelivered ON outbox(id) WHERE delivered_at IS NULL;
