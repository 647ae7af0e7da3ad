-- Password-reset and invitation messages are the host's own: written here
-- (never into a tenant's file) and delivered by the host from this table,
-- retried with backoff while the SMTP server is unavailable.
ALTER TABLE mail_outbox ADD COLUMN tenant_id TEXT;
ALTER TABLE mail_outbox ADD COLUMN html TEXT;
ALTER TABLE mail_outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mail_outbox ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mail_outbox ADD COLUMN failed_at TEXT;
ALTER TABLE mail_outbox ADD COLUMN last_error TEXT;
CREATE INDEX mail_outbox_due ON mail_outbox(sent_at, failed_at, next_attempt_at);

-- An organization's own name for a member; the user's global name
-- (users.full_name) is only theirs to change.
ALTER TABLE memberships ADD COLUMN display_name TEXT;
