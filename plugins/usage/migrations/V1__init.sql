-- Metered calls per day, channel, operation and store ('' for none), as the
-- host flushes them in batches (`usage.record`). `transactions` counts the
-- money operations requested (payments, payouts, reversals asked for).
CREATE TABLE usage_daily (
    day          TEXT NOT NULL,                -- YYYY-MM-DD (UTC)
    channel      TEXT NOT NULL,                -- rest, mcp, cli, job, …
    operation    TEXT NOT NULL,
    store_id     TEXT NOT NULL DEFAULT '',
    calls        INTEGER NOT NULL DEFAULT 0 CHECK (calls >= 0),
    errors       INTEGER NOT NULL DEFAULT 0 CHECK (errors >= 0),
    transactions INTEGER NOT NULL DEFAULT 0 CHECK (transactions >= 0),
    PRIMARY KEY (day, channel, operation, store_id)
);

-- Completed payments, payouts and reversals per day and store ('' for
-- none), from the payment events delivered to `on-event`.
CREATE TABLE usage_money_daily (
    day         TEXT NOT NULL,                 -- YYYY-MM-DD (UTC) the event was counted
    store_id    TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL CHECK (kind IN ('payment', 'payout', 'reversal')),
    count       INTEGER NOT NULL DEFAULT 0,
    amount_kes  INTEGER NOT NULL DEFAULT 0,    -- whole KES
    PRIMARY KEY (day, store_id, kind)
);

-- Events already counted: delivery is at least once.
CREATE TABLE usage_seen_events (
    event_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    seen_at     TEXT NOT NULL
);

-- Quota thresholds already announced (`usage.threshold`), once per
-- period, metric and threshold.
CREATE TABLE usage_thresholds (
    period      TEXT NOT NULL,                 -- YYYY-MM
    metric      TEXT NOT NULL,                 -- api_calls, transactions
    threshold   INTEGER NOT NULL,              -- 80, 100
    used        INTEGER NOT NULL,
    limit_value INTEGER NOT NULL,
    crossed_at  TEXT NOT NULL,
    PRIMARY KEY (period, metric, threshold)
);
