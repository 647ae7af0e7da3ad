-- Limits that belong to an API key and hold on every channel (REST and
-- MCP alike), besides V3's tool allow-list and amount caps:
--   store_ids          JSON list of store ids the key may use (NULL: the
--                      stores its maker may use);
--   approval_required  1: money the key sends out waits for a person's
--                      approval (202 with the approval); 0: it runs at once.
--                      NULL (keys made before this column): required.
ALTER TABLE api_keys ADD COLUMN store_ids TEXT;
ALTER TABLE api_keys ADD COLUMN approval_required INTEGER;

-- Proof of control of a custom domain: a claimed hostname routes logins
-- and public tenant lookups only once `verified_at` is set, which the
-- HTTP challenge (`POST /tenant/domain/verify`) does when
-- http://<hostname>/.well-known/malipo-domain-verification answers
-- `verification_token`. Claims made before this column are unverified.
ALTER TABLE tenant_domains ADD COLUMN verification_token TEXT;
ALTER TABLE tenant_domains ADD COLUMN verified_at TEXT;
