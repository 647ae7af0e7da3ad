-- Secrets are kept per plugin: two plugins declaring the same name (e.g.
-- `passkey`) each have their own. `plugin` is the owning plugin's name, or
-- '' for the host's own secrets (`__callback_token_<plugin>`) and for
-- secrets written before this migration, which the host moves to their
-- owner when the tenant is next opened (see
-- host/src/plugins/capabilities.rs `migrate_legacy_secrets`). The AES-GCM
-- associated data of a plugin's secret is `<tenant>/<plugin>/<name>`.
CREATE TABLE secrets_per_plugin (
    plugin      TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL,
    value       BLOB NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (plugin, name)
);
INSERT INTO secrets_per_plugin (plugin, name, value, updated_at)
    SELECT '', name, value, updated_at FROM secrets;
DROP TABLE secrets;
ALTER TABLE secrets_per_plugin RENAME TO secrets;
