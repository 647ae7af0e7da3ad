//! Consistent copies of SQLite files: tenant exports (scrubbed of secrets,
//! described by a `malipo_export` table), raw copies for backups, and the
//! import of an exported file as a tenant. Every copy is one step of
//! SQLite's online backup API over all pages, so it is one read
//! transaction: in WAL mode writers go on, and the copy is the database as
//! it was when the step began. See docs/DATA.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::tenancy::{Tenancy, TenancyError, TenantDb};
use malipo_foundations::ids::TenantId;

/// The version of the export format (`malipo_export.format`).
pub const EXPORT_FORMAT: i64 = 1;

/// The table of the host's migrations (refinery's default name).
const HOST_HISTORY: &str = "refinery_schema_history";

/// Errors of copying, exporting and importing.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The tenant store failed.
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// SQLite failed.
    #[error("snapshot: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file could not be read or written.
    #[error("snapshot file: {0}")]
    Io(#[from] std::io::Error),
    /// The source stayed locked through every retry.
    #[error("the database stayed busy; try again")]
    Busy,
    /// The file to import has a schema this binary does not know.
    #[error(
        "the file's {component} schema is at version {file}, newer than this binary's {binary}; upgrade malipo before importing it"
    )]
    NewerSchema {
        /// `host`, or a plugin's name.
        component: String,
        /// The file's newest migration.
        file: i64,
        /// This binary's newest migration (0: the plugin is not loaded).
        binary: i64,
    },
    /// The file is not a Malipo tenant file.
    #[error("{0}")]
    NotATenantFile(String),
}

/// What to do with the tenant's sealed secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secrets {
    /// Remove them (and every other rule of [`SCRUB_RULES`]): the REST
    /// export and the CLI's default.
    Remove,
    /// Keep the `secrets` table (still sealed with the master key and the
    /// tenant id); every other rule still applies. CLI `--full` only.
    KeepSealed,
}

/// Who the exported tenant is, as control.db knows it.
#[derive(Clone, Debug)]
pub struct ExportInfo {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Organization name.
    pub name: String,
    /// Its slug.
    pub slug: String,
    /// Its plan id.
    pub plan: String,
    /// `active` or `suspended`.
    pub status: String,
}

/// A finished export.
#[derive(Clone, Debug)]
pub struct Export {
    /// The file written.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Rows each scrub rule changed or removed, by rule table.
    pub scrubbed: BTreeMap<String, u64>,
}

/// One scrub rule: what it removes, from which table, and the SQL doing it.
#[derive(Clone, Copy, Debug)]
pub struct ScrubRule {
    /// The table (the rule is skipped when the file has no such table).
    pub table: &'static str,
    /// What is removed, for docs/DATA.md and `malipo_export_scrub`.
    pub removes: &'static str,
    /// The statement.
    pub sql: &'static str,
    /// Whether `--full` keeps this rule's data.
    pub kept_by_full: bool,
}

/// Token prefixes (`tokens::generate`): invitation (`mli_`), password
/// reset and API key (`mlp_`), refresh token (`mlr_`).
const TOKEN_LIKE: &str = "(X LIKE '%mli\\_%' ESCAPE '\\' OR X LIKE '%mlp\\_%' ESCAPE '\\' \
                          OR X LIKE '%mlr\\_%' ESCAPE '\\')";

/// Every rule applied to an export, in order. Tenant files hold no password
/// hash, refresh token or API key (those live in control.db, hashed); the
/// secrets a tenant file holds are the sealed `secrets`, Daraja's OAuth
/// tokens, and the one-time tokens inside invitation and password-reset
/// events and the emails that carry them.
pub const SCRUB_RULES: &[ScrubRule] = &[
    ScrubRule {
        table: "secrets",
        removes: "every sealed tenant secret: M-Pesa consumer key, consumer secret, passkey, \
                  initiator password and security credential; webhook signing secrets \
                  (`webhook-secrets`); callback URL tokens (`__callback_token_*`)",
        sql: "DELETE FROM secrets",
        kept_by_full: true,
    },
    ScrubRule {
        table: "mpesa_tokens",
        removes: "cached Daraja OAuth access tokens",
        sql: "DELETE FROM mpesa_tokens",
        kept_by_full: false,
    },
    ScrubRule {
        table: "outbox",
        removes: "`token`, `accept_url` and `reset_url` of `invitation.created` and \
                  `password_reset.requested` events (the payload gains `\"scrubbed\": true`)",
        sql: "UPDATE outbox SET payload = CASE WHEN json_valid(payload) \
              THEN json_set(json_remove(payload, '$.token', '$.accept_url', '$.reset_url'), '$.scrubbed', json('true')) \
              ELSE '{\"scrubbed\":true}' END \
              WHERE name IN ('invitation.created', 'password_reset.requested')",
        kept_by_full: false,
    },
    ScrubRule {
        table: "notifications_emails",
        removes: "text and HTML of invitation and password-reset emails (they carry the token)",
        sql: "UPDATE notifications_emails \
              SET text = '[removed from the export: this email carried a one-time token]', html = NULL \
              WHERE template IN ('invitation', 'password_reset')",
        kept_by_full: false,
    },
];

/// Columns of free text (JSON payloads, email bodies, errors) where a
/// token could still hide; any value there that looks like one of the
/// host's token prefixes is replaced. The safety net behind the rules.
const FREE_TEXT: &[(&str, &[&str])] = &[
    ("outbox", &["payload"]),
    ("event_deliveries", &["last_error"]),
    (
        "notifications_emails",
        &["subject", "text", "html", "last_error"],
    ),
    ("notifications_deliveries", &["body", "last_error"]),
    ("notifications_inbox", &["body", "data"]),
];

/// The file of tenant `id` in `tenants_dir`: built only from a parsed id.
pub fn tenant_file(tenants_dir: &Path, id: TenantId) -> PathBuf {
    tenants_dir.join(format!("{id}.db"))
}

/// Opens an existing database file (never creates one) with a busy timeout.
fn open_existing(path: &Path, read_only: bool) -> Result<Connection, SnapshotError> {
    if !path.is_file() {
        return Err(SnapshotError::NotATenantFile(format!(
            "{} is not a file",
            path.display()
        )));
    }
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// Copies `src`'s main database to a new file `dest` (which must not
/// exist) with one backup step over every page: one read transaction, so
/// the copy is consistent and, in WAL mode, writers are not blocked. The
/// copy is left in rollback-journal (`DELETE`) mode: one self-contained file.
pub fn online_copy(src: &Connection, dest: &Path) -> Result<u64, SnapshotError> {
    if dest.exists() {
        return Err(SnapshotError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", dest.display()),
        )));
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = Connection::open_with_flags(
        dest,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    {
        let backup = rusqlite::backup::Backup::new(src, &mut out)?;
        let mut attempts = 0;
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                // `-1` copies everything in one step; More cannot follow.
                rusqlite::backup::StepResult::More => continue,
                rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                    attempts += 1;
                    if attempts > 100 {
                        return Err(SnapshotError::Busy);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                _ => return Err(SnapshotError::Busy),
            }
        }
    }
    let _mode: String = out.query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))?;
    drop(out);
    Ok(std::fs::metadata(dest)?.len())
}

/// Copies tenant `id`'s file from `tenants_dir` to `dest` as it is (no
/// scrubbing, no migration): the backup of one tenant. Works while a
/// server has the file open.
pub fn backup_tenant(tenants_dir: &Path, id: TenantId, dest: &Path) -> Result<u64, SnapshotError> {
    let src = open_existing(&tenant_file(tenants_dir, id), false)?;
    online_copy(&src, dest)
}

/// The newest migration of each schema in a tenant file: `host`, then each
/// plugin by name.
pub type SchemaVersions = BTreeMap<String, i64>;

fn table_exists(conn: &Connection, table: &str) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

/// The schema versions a file records (its migration history tables).
pub fn file_versions(conn: &Connection) -> Result<SchemaVersions, SnapshotError> {
    let mut versions = SchemaVersions::new();
    if !table_exists(conn, HOST_HISTORY)? {
        return Err(SnapshotError::NotATenantFile(
            "the file has no migration history: it is not a Malipo tenant file".into(),
        ));
    }
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%\\_schema\\_history' ESCAPE '\\' ORDER BY name",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for table in tables {
        let version: Option<i64> = conn.query_row(
            &format!("SELECT MAX(version) FROM \"{}\"", table.replace('"', "")),
            [],
            |row| row.get(0),
        )?;
        let component = if table == HOST_HISTORY {
            "host".to_string()
        } else {
            table.trim_end_matches("_schema_history").to_string()
        };
        versions.insert(component, version.unwrap_or(0));
    }
    Ok(versions)
}

/// The first schema of `file` newer than `known` (a plugin `known` lacks
/// counts as version 0), as the error import answers.
pub fn newer_schema(file: &SchemaVersions, known: &SchemaVersions) -> Option<SnapshotError> {
    file.iter().find_map(|(component, &version)| {
        let binary = known.get(component).copied().unwrap_or(0);
        (version > binary).then(|| SnapshotError::NewerSchema {
            component: component.clone(),
            file: version,
            binary,
        })
    })
}

/// Removes what `secrets` says must go, records the export's identity in
/// `malipo_export` and `malipo_export_schema`, and what was scrubbed in
/// `malipo_export_scrub`; then VACUUMs so no freed page keeps a secret.
fn finish_export(
    dest: &Path,
    info: &ExportInfo,
    secrets: Secrets,
) -> Result<BTreeMap<String, u64>, SnapshotError> {
    let mut conn = open_existing(dest, false)?;
    conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA secure_delete = ON;")?;
    let versions = file_versions(&conn)?;
    let mut scrubbed = BTreeMap::new();
    let tx = conn.transaction()?;
    tx.execute_batch(
        "CREATE TABLE malipo_export (
            format                 INTEGER NOT NULL,
            tenant_id              TEXT NOT NULL,
            name                   TEXT NOT NULL,
            slug                   TEXT NOT NULL,
            plan                   TEXT NOT NULL,
            status                 TEXT NOT NULL,
            exported_at            TEXT NOT NULL,
            malipo_version         TEXT NOT NULL,
            host_schema_version    INTEGER NOT NULL,
            secrets                TEXT NOT NULL CHECK (secrets IN ('removed', 'sealed'))
         );
         CREATE TABLE malipo_export_schema (
            component  TEXT PRIMARY KEY,
            version    INTEGER NOT NULL
         );
         CREATE TABLE malipo_export_scrub (
            table_name TEXT NOT NULL,
            removed    TEXT NOT NULL,
            rows       INTEGER NOT NULL
         );",
    )?;
    for rule in SCRUB_RULES {
        if secrets == Secrets::KeepSealed && rule.kept_by_full {
            continue;
        }
        if !table_exists(&tx, rule.table)? {
            continue;
        }
        let rows = tx.execute(rule.sql, [])? as u64;
        tx.execute(
            "INSERT INTO malipo_export_scrub (table_name, removed, rows) VALUES (?1, ?2, ?3)",
            params![rule.table, rule.removes, rows as i64],
        )?;
        *scrubbed.entry(rule.table.to_string()).or_insert(0) += rows;
    }
    for (table, columns) in FREE_TEXT {
        if !table_exists(&tx, table)? {
            continue;
        }
        for column in *columns {
            let matches = TOKEN_LIKE.replace('X', column);
            let rows = tx.execute(
                &format!(
                    "UPDATE {table} SET {column} = '[removed from the export: looked like a token]' WHERE {matches}"
                ),
                [],
            )? as u64;
            if rows > 0 {
                tx.execute(
                    "INSERT INTO malipo_export_scrub (table_name, removed, rows) VALUES (?1, ?2, ?3)",
                    params![table, format!("`{column}` values that looked like a token"), rows as i64],
                )?;
                *scrubbed.entry((*table).to_string()).or_insert(0) += rows;
            }
        }
    }
    // The subscription in the file (the billing plugin's) is the plan's
    // source of truth; control.db's copy may lag behind it.
    let plan = if table_exists(&tx, "billing_subscription")? {
        tx.query_row("SELECT plan_id FROM billing_subscription", [], |row| {
            row.get::<_, String>(0)
        })
        .optional()?
    } else {
        None
    }
    .unwrap_or_else(|| info.plan.clone());
    tx.execute(
        "INSERT INTO malipo_export (format, tenant_id, name, slug, plan, status, exported_at, malipo_version, host_schema_version, secrets)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            EXPORT_FORMAT,
            info.tenant_id.to_string(),
            info.name,
            info.slug,
            plan,
            info.status,
            malipo_foundations::time_util::now_rfc3339(),
            env!("CARGO_PKG_VERSION"),
            versions.get("host").copied().unwrap_or(0),
            match secrets {
                Secrets::Remove => "removed",
                Secrets::KeepSealed => "sealed",
            },
        ],
    )?;
    for (component, version) in &versions {
        tx.execute(
            "INSERT INTO malipo_export_schema (component, version) VALUES (?1, ?2)",
            params![component, version],
        )?;
    }
    tx.commit()?;
    // Rebuilds the file: freed pages (deleted secrets) are gone, not zeroed.
    conn.execute_batch("VACUUM;")?;
    Ok(scrubbed)
}

/// Exports from `src` (any connection to the tenant's file) to `dest`.
fn export_from(
    src: &Connection,
    dest: &Path,
    info: &ExportInfo,
    secrets: Secrets,
) -> Result<Export, SnapshotError> {
    let outcome = online_copy(src, dest).and_then(|_| finish_export(dest, info, secrets));
    match outcome {
        Ok(scrubbed) => Ok(Export {
            path: dest.to_path_buf(),
            bytes: std::fs::metadata(dest)?.len(),
            scrubbed,
        }),
        Err(error) => {
            let _ = std::fs::remove_file(dest);
            let _ = std::fs::remove_file(journal_of(dest));
            Err(error)
        }
    }
}

fn journal_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}-journal", path.display()))
}

/// Exports tenant `id`'s file from `tenants_dir` without opening it as a
/// served tenant (no migration): the CLI's `malipo tenant export`.
pub fn export_file(
    tenants_dir: &Path,
    dest: &Path,
    info: &ExportInfo,
    secrets: Secrets,
) -> Result<Export, SnapshotError> {
    let src = open_existing(&tenant_file(tenants_dir, info.tenant_id), false)?;
    export_from(&src, dest, info, secrets)
}

/// What an export file says about itself (`malipo_export`), if it is one.
#[derive(Clone, Debug)]
pub struct ExportRecord {
    /// The tenant it was exported from.
    pub tenant_id: String,
    /// Organization name.
    pub name: String,
    /// Plan id.
    pub plan: String,
    /// `removed` or `sealed`.
    pub secrets: String,
}

/// A file about to be imported: what it says about itself and its schemas.
#[derive(Clone, Debug)]
pub struct ImportFile {
    /// The `malipo_export` row, when the file is an export.
    pub export: Option<ExportRecord>,
    /// Its schemas.
    pub versions: SchemaVersions,
    /// The subscription's plan, from the billing plugin's table.
    pub subscription_plan: Option<String>,
}

/// Reads a file to import, without changing it.
pub fn inspect(path: &Path) -> Result<ImportFile, SnapshotError> {
    let conn = open_existing(path, true)?;
    let versions = file_versions(&conn)?;
    let export = if table_exists(&conn, "malipo_export")? {
        conn.query_row(
            "SELECT tenant_id, name, plan, secrets FROM malipo_export LIMIT 1",
            [],
            |row| {
                Ok(ExportRecord {
                    tenant_id: row.get(0)?,
                    name: row.get(1)?,
                    plan: row.get(2)?,
                    secrets: row.get(3)?,
                })
            },
        )
        .optional()?
    } else {
        None
    };
    let subscription_plan = if table_exists(&conn, "billing_subscription")? {
        conn.query_row("SELECT plan_id FROM billing_subscription", [], |row| {
            row.get(0)
        })
        .optional()?
    } else {
        None
    };
    Ok(ImportFile {
        export,
        versions,
        subscription_plan,
    })
}

/// Re-seals one secret `(name, sealed value)` for the importing tenant;
/// `None` drops it (it cannot be opened here).
pub type Reseal<'a> = &'a dyn Fn(&str, &[u8]) -> Option<Vec<u8>>;

impl Tenancy {
    /// This binary's newest migration of each schema (`host`, then each
    /// plugin loaded).
    pub fn known_versions(&self) -> SchemaVersions {
        let mut known = SchemaVersions::new();
        let host = super::embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0);
        known.insert("host".into(), host);
        for plugin in &self.plugin_migrations {
            let newest = plugin
                .migrations
                .iter()
                .map(|(version, _, _)| i64::from(*version))
                .max()
                .unwrap_or(0);
            known.insert(plugin.plugin.clone(), newest);
        }
        known
    }

    /// Exports an open tenant through its pool (the REST export): a
    /// consistent, scrubbed copy at `dest` while the tenant keeps working.
    pub fn export(
        &self,
        db: &TenantDb,
        dest: &Path,
        info: &ExportInfo,
        secrets: Secrets,
    ) -> Result<Export, SnapshotError> {
        let conn = db.conn()?;
        export_from(&conn, dest, info, secrets)
    }

    /// Makes `src` (an export, or any tenant file) tenant `id`'s file:
    /// refuses a schema newer than this binary's and an id that has a file;
    /// drops the export's own tables, re-seals or drops sealed secrets with
    /// `reseal`, then opens it, which migrates it forward.
    pub fn import(
        &self,
        id: TenantId,
        src: &Path,
        reseal: Reseal<'_>,
    ) -> Result<TenantDb, SnapshotError> {
        let file = inspect(src)?;
        if let Some(error) = newer_schema(&file.versions, &self.known_versions()) {
            return Err(error);
        }
        let dest = self.path_of(id);
        if dest.exists() {
            return Err(TenancyError::AlreadyExists(id).into());
        }
        // Prepared beside the tenant files (same file system: the rename is
        // atomic) under a name no tenant scan picks up.
        let staging = self.dir.join(format!(".import-{id}.tmp"));
        let _ = std::fs::remove_file(&staging);
        let prepared = (|| {
            let src = open_existing(src, true)?;
            online_copy(&src, &staging)?;
            drop(src);
            let mut conn = open_existing(&staging, false)?;
            let tx = conn.transaction()?;
            tx.execute_batch(
                "DROP TABLE IF EXISTS malipo_export;
                 DROP TABLE IF EXISTS malipo_export_schema;
                 DROP TABLE IF EXISTS malipo_export_scrub;",
            )?;
            // Files from before secrets were kept per plugin (tenant
            // migration V9) have no `plugin` column: their secrets are all
            // sealed under their bare name.
            let per_plugin: bool = tx.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('secrets') WHERE name = 'plugin'",
                [],
                |row| row.get(0),
            )?;
            let select = if per_plugin {
                "SELECT plugin, name, value FROM secrets"
            } else {
                "SELECT '', name, value FROM secrets"
            };
            let sealed: Vec<(String, String, Vec<u8>)> = tx
                .prepare(select)?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let (update, delete) = if per_plugin {
                (
                    "UPDATE secrets SET value = ?3 WHERE plugin = ?1 AND name = ?2",
                    "DELETE FROM secrets WHERE plugin = ?1 AND name = ?2",
                )
            } else {
                (
                    "UPDATE secrets SET value = ?3 WHERE ?1 = '' AND name = ?2",
                    "DELETE FROM secrets WHERE ?1 = '' AND name = ?2",
                )
            };
            for (plugin, name, value) in sealed {
                let field = malipo_foundations::crypto::secret_field(&plugin, &name);
                match reseal(&field, &value) {
                    Some(resealed) => {
                        tx.execute(update, params![plugin, name, resealed])?;
                    }
                    None => {
                        tx.execute(delete, params![plugin, name])?;
                    }
                }
            }
            tx.commit()?;
            let _mode: String =
                conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
            Ok::<_, SnapshotError>(())
        })();
        if let Err(error) = prepared {
            let _ = std::fs::remove_file(&staging);
            return Err(error);
        }
        if dest.exists() {
            let _ = std::fs::remove_file(&staging);
            return Err(TenancyError::AlreadyExists(id).into());
        }
        std::fs::rename(&staging, &dest)?;
        match self.get(id) {
            Ok(db) => Ok(db),
            Err(error) => {
                let _ = self.remove_file(id);
                Err(error.into())
            }
        }
    }
}
