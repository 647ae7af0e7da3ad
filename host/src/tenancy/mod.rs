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
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use moka::sync::Cache;
use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::OpenFlags;

use crate::control::configure_connection;
use crate::ids::TenantId;

mod embedded {
    refinery::embed_migrations!("../migrations/tenant");
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
        std::fs::create_dir_all(dir)?;
        crate::data_dir::restrict_dir(dir);
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
        crate::data_dir::restrict_file(&path);
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
/// each plugin's tables under that plugin's authorizer rules.
fn migrate(
    conn: &mut rusqlite::Connection,
    plugins: &[PluginMigrations],
) -> Result<(), TenancyError> {
    embedded::migrations::runner().run(conn)?;
    for plugin in plugins {
        let migrations = plugin
            .migrations
            .iter()
            .map(|(version, name, sql)| {
                refinery::Migration::unapplied(&format!("V{version}__{name}"), sql)
            })
            .collect::<Result<Vec<_>, _>>()?;
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
    }
    Ok(())
}
