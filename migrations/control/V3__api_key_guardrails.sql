-- Guardrails of an API key, for keys handed to AI assistants (MCP):
-- which tools it may call (NULL: any its permissions allow), and how much
-- money one call and one day's calls may move (NULL: no cap). The day's
-- total is kept per key and UTC day; a call reserves its amount before it
-- runs and gives it back if it fails or its approval is rejected.
ALTER TABLE api_keys ADD COLUMN allowed_tools TEXT;
ALTER TABLE api_keys ADD COLUMN max_amount_per_call INTEGER;
ALTER TABLE api_keys ADD COLUMN max_amount_per_day INTEGER;

CREATE TABLE api_key_spend (
    key_id  TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    day     TEXT NOT NULL,
    amount  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day)
);
