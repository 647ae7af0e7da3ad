//! The tenant store: the one seam through which tenant databases are
//! created, opened, migrated and closed. Nothing outside this module opens a
//! tenant's SQLite file.
//!
//! Each tenant is `<data-dir>/tenants/<tenant-id>.db` in WAL mode, reached
//! through a small r2d2 pool. Open pools live in a bounded moka cache; an
//! evicted tenant's connections close, and the next request reopens it. A
//! file is migrated (host tables, then each plugin's) when it is opened.
//! Replacing files with a replicated engine would change this module only.

pub mod authorizer;
pub mod outbox;
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use moka::sync::Cache;
use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::OpenFlags;

use crate::control::configure_connection;
use malipo_foundations::ids::TenantId;

mod embedded {
    refinery::embed_migrations!("../../migrations/tenant");
}

/// Errors of the tenant store.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// The tenant has no file.
    #[error("tenant {0} has no database")]
    NoSuchTenant(TenantId),
    /// The tenant already has a file.
    #[error("tenant {0} already has a database")]
    AlreadyExists(TenantId),
    /// SQLite failed.
    #[error("tenant database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No connection could be had.
    #[error("tenant database pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// A migration failed.
    #[error("tenant database migration: {0}")]
    Migration(#[from] refinery::Error),
    /// A plugin's migration did something outside its own tables.
    #[error("plugin {plugin} migration refused: {reason}")]
    PluginMigration {
        /// The plugin.
        plugin: String,
        /// What the authorizer refused, or what failed.
        reason: String,
    },
    /// Work run when a tenant is opened failed.
    #[error("tenant open hook: {0}")]
    OpenHook(String),
    /// I/O on the data directory failed.
    #[error("tenant directory: {0}")]
    Io(#[from] std::io::Error),
}

/// One plugin's migrations, applied to every tenant file.
#[derive(Clone, Debug)]
pub struct PluginMigrations {
    /// The plugin's name (its table prefix).
    pub plugin: String,
    /// Host tables it may read (for the authorizer).
    pub read_tables: Vec<String>,
    /// `(version, name, sql)`.
    pub migrations: Vec<(u32, String, String)>,
}

/// An open tenant database.
#[derive(Clone)]
pub struct TenantDb {
    id: TenantId,
    pool: Pool<SqliteConnectionManager>,
}

impl std::fmt::Debug for TenantDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantDb").field("id", &self.id).finish()
    }
}

/// A pooled connection to one tenant's file.
pub type TenantConn = PooledConnection<SqliteConnectionManager>;

impl TenantDb {
    /// Whose database this is.
    pub fn id(&self) -> TenantId {
        self.id
    }

    /// A connection from the tenant's pool.
    pub fn conn(&self) -> Result<TenantConn, TenancyError> {
        Ok(self.pool.get()?)
    }
}

/// Work to run once each time a tenant file is opened (after migrations),
/// e.g. syncing the permission catalog into the rbac plugin.
pub type OpenHook = Arc<dyn Fn(&TenantDb) -> Result<(), String> + Send + Sync>;

/// The tenant store.
pub struct Tenancy {
    dir: PathBuf,
    /// One maintenance thread pool shared by every tenant's connection pool:
    /// r2d2 would otherwise start three threads per pool, and thousands of
    /// open tenants would exhaust the process's threads.
    maintenance: Arc<scheduled_thread_pool::ScheduledThreadPool>,
    open: Cache<TenantId, TenantDb>,
    plugin_migrations: Vec<PluginMigrations>,
    on_open: std::sync::RwLock<Option<OpenHook>>,
}

impl Tenancy {
    /// A store over `<dir>/<tenant-id>.db`, keeping at most `capacity` open.
    pub fn new(
        dir: &Path,
        capacity: u64,
        plugin_migrations: Vec<PluginMigrations>,
    ) -> Result<Self, TenancyError> {
        // A plugin whose migrations would plant anything outside its own
        // tables is refused here, on a scratch database, before any tenant
        // file is opened: no tenant file ever sees its schema.
        validate_plugin_migrations(&plugin_migrations)?;
        std::fs::create_dir_all(dir)?;
        malipo_foundations::data_dir::restrict_dir(dir);
        Ok(Self {
            dir: dir.to_path_buf(),
            maintenance: Arc::new(
                scheduled_thread_pool::ScheduledThreadPool::builder()
                    .num_threads(2)
                    .thread_name_pattern("malipo-db-{}")
                    .build(),
            ),
            open: Cache::builder().max_capacity(capacity).build(),
            plugin_migrations,
            on_open: std::sync::RwLock::new(None),
        })
    }

    /// Sets the work run when a tenant file is opened.
    pub fn set_open_hook(&self, hook: OpenHook) {
        if let Ok(mut slot) = self.on_open.write() {
            *slot = Some(hook);
        }
    }

    /// The file of a tenant: built only from a parsed [`TenantId`].
    pub fn path_of(&self, id: TenantId) -> PathBuf {
        snapshot::tenant_file(&self.dir, id)
    }

    /// Creates the tenant's file, migrated, and answers it open.
    pub fn create(&self, id: TenantId) -> Result<TenantDb, TenancyError> {
        let path = self.path_of(id);
        if path.exists() {
            return Err(TenancyError::AlreadyExists(id));
        }
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA journal_mode = WAL;")?;
        drop(conn);
        malipo_foundations::data_dir::restrict_file(&path);
        self.get(id)
    }

    /// The tenant's database, opening and migrating it if it is not open.
    pub fn get(&self, id: TenantId) -> Result<TenantDb, TenancyError> {
        self.open
            .try_get_with(id, || self.open_file(id))
            .map_err(|shared| match &*shared {
                TenancyError::NoSuchTenant(id) => TenancyError::NoSuchTenant(*id),
                other => TenancyError::OpenHook(other.to_string()),
            })
    }

    /// Closes a tenant's pool (its connections close when in-flight work ends).
    pub fn close(&self, id: TenantId) {
        self.open.invalidate(&id);
    }

    /// Deletes a tenant's file and its WAL companions.
    pub fn remove_file(&self, id: TenantId) -> Result<(), TenancyError> {
        self.close(id);
        let path = self.path_of(id);
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                std::fs::remove_file(file)?;
            }
        }
        Ok(())
    }

    /// Closes every open tenant file cleanly, for shutdown: folds each
    /// file's write-ahead log back into it (`wal_checkpoint(TRUNCATE)`) and
    /// drops its pool. Answers how many were open.
    pub fn close_all(&self) -> usize {
        let open: Vec<(Arc<TenantId>, TenantDb)> = self.open.iter().collect();
        for (id, db) in &open {
            let folded = db.conn().map_err(|e| e.to_string()).and_then(|conn| {
                conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                    .map_err(|e| e.to_string())
            });
            if let Err(error) = folded {
                tracing::warn!(tenant = %id, %error, "tenant file not checkpointed at close");
            }
        }
        self.open.invalidate_all();
        self.open.run_pending_tasks();
        open.len()
    }

    /// Migrates one tenant file offline (`malipo migrate`): one connection,
    /// host tables then each plugin's, closed again; the file is not kept
    /// open and the open hook does not run (the next open runs it when it is
    /// needed). Never creates a file.
    pub fn migrate_file(&self, id: TenantId) -> Result<(), TenancyError> {
        let path = self.path_of(id);
        if !path.is_file() {
            return Err(TenancyError::NoSuchTenant(id));
        }
        let mut conn = rusqlite::Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure_connection(&mut conn)?;
        migrate(&mut conn, &self.plugin_migrations)?;
        conn.close().map_err(|(_, error)| error)?;
        Ok(())
    }

    /// Whether a tenant's database is open now (no file is opened to answer).
    pub fn is_open(&self, id: TenantId) -> bool {
        self.open.contains_key(&id)
    }

    /// How many tenant databases are open now.
    pub fn open_count(&self) -> u64 {
        self.open.run_pending_tasks();
        self.open.entry_count()
    }

    fn open_file(&self, id: TenantId) -> Result<TenantDb, TenancyError> {
        let path = self.path_of(id);
        if !path.is_file() {
            return Err(TenancyError::NoSuchTenant(id));
        }
        // No CREATE flag: opening never makes a file appear.
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(configure_connection);
        let pool = Pool::builder()
            .max_size(4)
            .min_idle(Some(0))
            .thread_pool(Arc::clone(&self.maintenance))
            .build(manager)?;
        let db = TenantDb { id, pool };
        {
            let mut conn = db.conn()?;
            migrate(&mut conn, &self.plugin_migrations)?;
        }
        let hook = self.on_open.read().ok().and_then(|slot| slot.clone());
        if let Some(hook) = hook {
            hook(&db).map_err(TenancyError::OpenHook)?;
        }
        Ok(db)
    }
}

/// Brings one tenant file to this binary's schema: host tables first, then
/// each plugin's tables under that plugin's authorizer rules, each plugin's
/// resulting schema checked by [`check_plugin_schema`].
fn migrate(
    conn: &mut rusqlite::Connection,
    plugins: &[PluginMigrations],
) -> Result<(), TenancyError> {
    embedded::migrations::runner().run(conn)?;
    migrate_plugins(conn, plugins)
}

/// Applies each plugin's migrations under its authorizer rules and checks
/// what they left ([`check_plugin_schema`], `sqlite_sequence`).
fn migrate_plugins(
    conn: &mut rusqlite::Connection,
    plugins: &[PluginMigrations],
) -> Result<(), TenancyError> {
    for plugin in plugins {
        let migrations = plugin
            .migrations
            .iter()
            .map(|(version, name, sql)| {
                refinery::Migration::unapplied(&format!("V{version}__{name}"), sql)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let before = schema_objects(conn)?;
        let seq_before = sequences(conn);
        let access = authorizer::PluginAccess::new(&plugin.plugin, &plugin.read_tables);
        authorizer::install(conn, &access, authorizer::Phase::Migration)?;
        let outcome = refinery::Runner::new(&migrations)
            .set_migration_table_name(authorizer::history_table(&plugin.plugin))
            .run(conn);
        authorizer::remove(conn)?;
        if let Err(error) = outcome {
            return Err(TenancyError::PluginMigration {
                plugin: plugin.plugin.clone(),
                reason: access.violation().unwrap_or_else(|| error.to_string()),
            });
        }
        check_plugin_schema(conn, plugin, &before)?;
        let prefix = format!("{}_", plugin.plugin);
        let others = |rows: Vec<(String, i64)>| -> Vec<(String, i64)> {
            rows.into_iter()
                .filter(|(name, _)| !name.starts_with(&prefix))
                .collect()
        };
        if others(sequences(conn)) != others(seq_before) {
            return Err(TenancyError::PluginMigration {
                plugin: plugin.plugin.clone(),
                reason: "write to `sqlite_sequence` rows of tables the plugin does not own".into(),
            });
        }
    }
    Ok(())
}

/// The rows of `sqlite_sequence` (none before any AUTOINCREMENT table).
fn sequences(conn: &rusqlite::Connection) -> Vec<(String, i64)> {
    conn.prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .unwrap_or_default()
}

/// `(type, name, tbl_name)` of every schema object.
fn schema_objects(
    conn: &rusqlite::Connection,
) -> Result<Vec<(String, String, String)>, TenancyError> {
    let mut stmt = conn.prepare("SELECT type, name, tbl_name FROM sqlite_schema ORDER BY name")?;
    let rows = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Quotes an SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Checks what a plugin's migrations left in the schema, so that nothing
/// they created runs with the host's rights: no foreign key from its tables
/// to a table it does not own (a cascade, or a restriction, on host data);
/// no trigger on a table it does not own, and no trigger whose body does
/// anything the plugin itself may not (each body is checked for every table
/// it touches by preparing, under the plugin's authorizer, the statements
/// that fire it: SQLite authorizes a trigger's body when it compiles it into
/// a firing statement); no view reading a table it may not read. Answers
/// the first refusal.
fn check_plugin_schema(
    conn: &rusqlite::Connection,
    plugin: &PluginMigrations,
    before: &[(String, String, String)],
) -> Result<(), TenancyError> {
    let fail = |reason: String| TenancyError::PluginMigration {
        plugin: plugin.plugin.clone(),
        reason,
    };
    let prefix = format!("{}_", plugin.plugin);
    let owns = |table: &str| table.starts_with(&prefix);
    let after = schema_objects(conn)?;
    let mine: Vec<&(String, String, String)> = after
        .iter()
        .filter(|object| !before.contains(object) || owns(&object.1) || owns(&object.2))
        .collect();
    let access = authorizer::PluginAccess::new(&plugin.plugin, &plugin.read_tables);
    for (kind, name, table) in &mine {
        if kind == "table" && owns(name) {
            let mut stmt = conn.prepare("SELECT \"table\" FROM pragma_foreign_key_list(?1)")?;
            let targets: Vec<String> = stmt
                .query_map([name], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            if let Some(target) = targets.iter().find(|t| !owns(t)) {
                return Err(fail(format!(
                    "table `{name}` has a foreign key to `{target}`, a table the plugin does not own \
                     (its cascades and restrictions would act on data that is not the plugin's)"
                )));
            }
        }
        if kind == "trigger" {
            if !owns(table) {
                return Err(fail(format!(
                    "trigger `{name}` fires on `{table}`, a table the plugin does not own"
                )));
            }
            let columns: Vec<String> = conn
                .prepare("SELECT name FROM pragma_table_info(?1)")?
                .query_map([table], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let target = quoted(table);
            let set = columns
                .iter()
                .map(|c| format!("{0} = {0}", quoted(c)))
                .collect::<Vec<_>>()
                .join(", ");
            let mut firing = vec![
                format!("DELETE FROM {target} WHERE 0"),
                format!("INSERT INTO {target} DEFAULT VALUES"),
            ];
            if !set.is_empty() {
                firing.push(format!("UPDATE {target} SET {set} WHERE 0"));
            }
            let phase = authorizer::Phase::Call { read_only: false };
            check_under(conn, &access, phase, &firing).map_err(|detail| {
                fail(format!(
                    "trigger `{name}` on `{table}` does what the plugin may not: {detail}"
                ))
            })?;
        }
        if kind == "view" {
            let phase = authorizer::Phase::Call { read_only: true };
            let select = vec![format!("SELECT * FROM {}", quoted(name))];
            check_under(conn, &access, phase, &select).map_err(|detail| {
                fail(format!(
                    "view `{name}` reads what the plugin may not: {detail}"
                ))
            })?;
        }
    }
    Ok(())
}

/// Prepares (never runs) each statement under the plugin's authorizer;
/// answers what was refused.
fn check_under(
    conn: &rusqlite::Connection,
    access: &std::sync::Arc<authorizer::PluginAccess>,
    phase: authorizer::Phase,
    statements: &[String],
) -> Result<(), String> {
    authorizer::install(conn, access, phase).map_err(|e| e.to_string())?;
    let mut outcome = Ok(());
    for sql in statements {
        // Only a refusal counts: a statement SQLite cannot compile for
        // another reason (e.g. a write to a view without an INSTEAD OF
        // trigger for it) fires nothing either.
        if conn.prepare(sql).is_err()
            && let Some(detail) = access.violation()
        {
            outcome = Err(detail);
            break;
        }
    }
    let _ = authorizer::remove(conn);
    outcome
}

/// Applies every plugin's migrations to a scratch in-memory database with
/// the host's schema, with the checks of [`migrate`]: a plugin whose
/// migrations are refused fails here, before any tenant file is touched.
pub fn validate_plugin_migrations(plugins: &[PluginMigrations]) -> Result<(), TenancyError> {
    let mut conn = rusqlite::Connection::open_in_memory()?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    embedded::migrations::runner().run(&mut conn)?;
    // Every host AUTOINCREMENT table gets its `sqlite_sequence` row, as in
    // a tenant file in use, so that a plugin writing one is seen.
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS malipo_scratch_seq (id INTEGER PRIMARY KEY AUTOINCREMENT);
         DROP TABLE malipo_scratch_seq;
         INSERT INTO sqlite_sequence (name, seq)
             SELECT name, 1 FROM sqlite_schema
             WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'
               AND name NOT IN (SELECT name FROM sqlite_sequence);",
    )?;
    migrate_plugins(&mut conn, plugins)
}

/// The host's tenant tables and views: what the host's migrations create
/// (including refinery's history table), read from a scratch database. A
/// plugin may not be named so that it would own one of them
/// (the runtime's `malipo_runtime::plugins::manifest::reserved_name_reason`).
pub fn host_tables() -> Result<Vec<String>, TenancyError> {
    let mut conn = rusqlite::Connection::open_in_memory()?;
    embedded::migrations::runner().run(&mut conn)?;
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') ORDER BY name")?;
    let names = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(names)
}

impl From<TenancyError> for malipo_foundations::error::ApiError {
    fn from(error: TenancyError) -> Self {
        match error {
            TenancyError::NoSuchTenant(_) => Self::not_found("tenant"),
            other => Self::Unexpected(other.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(sql: &str) -> Vec<PluginMigrations> {
        vec![PluginMigrations {
            plugin: "probe".into(),
            read_tables: vec!["stores".into()],
            migrations: vec![(1, "init".into(), sql.into())],
        }]
    }

    fn refusal(sql: &str) -> String {
        match validate_plugin_migrations(&plugin(sql)) {
            Ok(()) => panic!("migration accepted: {sql}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn migrations_within_the_plugins_own_tables_pass() {
        validate_plugin_migrations(&plugin(
            "CREATE TABLE probe_items (id INTEGER PRIMARY KEY AUTOINCREMENT, store_id TEXT);
             CREATE TABLE probe_tags (id INTEGER PRIMARY KEY, item INTEGER REFERENCES probe_items(id) ON DELETE CASCADE);
             CREATE TABLE probe_gone (id INTEGER PRIMARY KEY AUTOINCREMENT);
             DROP TABLE probe_gone;
             CREATE TRIGGER probe_items_tag AFTER INSERT ON probe_items BEGIN
                 INSERT INTO probe_tags (item) SELECT NEW.id FROM stores WHERE id = NEW.store_id;
             END;
             CREATE VIEW probe_named AS SELECT i.id, s.name FROM probe_items i JOIN stores s ON s.id = i.store_id;",
        ))
        .expect("a migration of the plugin's own tables passes");
    }

    #[test]
    fn a_foreign_key_to_a_host_table_is_refused() {
        let error = refusal(
            "CREATE TABLE probe_links (id INTEGER PRIMARY KEY, store_id TEXT REFERENCES stores(id) ON DELETE CASCADE);",
        );
        assert!(error.contains("foreign key to `stores`"), "{error}");
    }

    #[test]
    fn a_trigger_body_touching_a_host_table_is_refused() {
        for body in [
            "DELETE FROM secrets;",
            "UPDATE audit_log SET detail = 'x';",
            "INSERT INTO outbox (event_id, name, payload, source, created_at) VALUES ('e', 'n', '{}', 'host', 'now');",
            "SELECT value FROM secrets;",
        ] {
            for event in ["AFTER DELETE", "BEFORE INSERT", "AFTER UPDATE OF note"] {
                let error = refusal(&format!(
                    "CREATE TABLE probe_items (id INTEGER PRIMARY KEY, note TEXT);
                     CREATE TRIGGER probe_items_t {event} ON probe_items BEGIN {body} END;"
                ));
                assert!(
                    error.contains("trigger `probe_items_t`"),
                    "{event} {body}: {error}"
                );
            }
        }
    }

    #[test]
    fn a_trigger_on_a_host_table_a_view_over_one_and_sqlite_writes_are_refused() {
        let error = refusal("CREATE TRIGGER probe_t AFTER DELETE ON stores BEGIN SELECT 1; END;");
        assert!(error.contains("stores"), "{error}");
        let error = refusal("CREATE VIEW probe_v AS SELECT * FROM secrets;");
        assert!(error.contains("secrets"), "{error}");
        let error = refusal(
            "CREATE TABLE probe_a (id INTEGER PRIMARY KEY AUTOINCREMENT);
             UPDATE sqlite_sequence SET seq = 9223372036854775807;",
        );
        assert!(error.contains("sqlite_sequence"), "{error}");
        let error = refusal("INSERT INTO sqlite_stat1 VALUES ('stores', NULL, '1');");
        assert!(error.contains("sqlite_stat1"), "{error}");
    }
}
