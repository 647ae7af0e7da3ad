-- Email: one message per (event, template, recipient), rendered when the
-- event arrived, so a redelivered event never queues twice; sent by the
-- `emails.send` job. `message_id` (`<event-id.template@malipo>`) is the
-- Message-ID header, the same on every attempt.
CREATE TABLE notifications_emails (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL,
    template        TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text            TEXT NOT NULL,
    html            TEXT,
    message_id      TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,       -- ms since the epoch
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    UNIQUE (event_id, template, recipient)
);
CREATE INDEX notifications_emails_due ON notifications_emails(status, next_attempt_ms);

-- The tenant's own versions of email templates (absent: the default).
CREATE TABLE notifications_templates (
    name        TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    text        TEXT NOT NULL,
    html        TEXT,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT
);
