//! The platform database, `control.db`: users, tenants, memberships,
//! sessions and refresh tokens, API keys, password resets, invitations, the
//! mail outbox, the plugin registry, the platform audit, per-tenant feature
//! overrides, custom domains, alerts about tenants and the tenant deletion
//! schedule.
//!
//! Every function here is synchronous: callers run it through
//! [`malipo_foundations::error::blocking`].

mod alerts;
mod api_keys;
mod deletions;
mod domains;
mod features;
mod inbox;
mod invitations;
mod mail;
mod plans;
mod platform_audit;
mod sessions;
mod tenants;
mod users;

pub use alerts::{AlertRecord, NewAlert};
pub use api_keys::{ApiKeyRecord, KeyGuardrails, NewApiKey};
pub use deletions::{Cancellation, PurgedRows, StatusChange};
pub use domains::{Claim, HeldDomain};
pub use inbox::{InboxEntry, InboxItem, Replay, split_reference};
pub use invitations::Invitation;
pub use mail::OutgoingMail;
pub use plans::{LIMIT_NAMES, Plan, PlatformCharge};
pub use platform_audit::PlatformAuditEntry;
pub use sessions::RefreshOutcome;
pub use tenants::{CreatedTenant, Membership, Standing, TenantRecord};
pub use users::UserRecord;

use std::path::Path;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;

mod embedded {
    refinery::embed_migrations!("../../migrations/control");
}

/// Errors of the platform database.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// SQLite failed.
    #[error("control database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No connection could be had.
    #[error("control database pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// A migration failed.
    #[error("control database migration: {0}")]
    Migration(#[from] refinery::Error),
}

impl From<ControlError> for malipo_foundations::error::ApiError {
    fn from(error: ControlError) -> Self {
        Self::Unexpected(error.into())
    }
}

/// Pragmas every connection to a Malipo database gets.
pub(crate) fn configure_connection(conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
    // Switching to WAL takes a lock; a file already in WAL needs no switch.
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        conn.execute_batch("PRAGMA journal_mode = WAL;")?;
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
}

/// A pool of connections to `control.db`.
#[derive(Clone)]
pub struct ControlDb {
    pool: Pool<SqliteConnectionManager>,
}

impl ControlDb {
    /// Opens (creating if needed) and migrates `control.db`.
    pub fn open(path: &Path) -> Result<Self, ControlError> {
        let manager = SqliteConnectionManager::file(path).with_init(configure_connection);
        let pool = Pool::builder().max_size(8).build(manager)?;
        let mut conn = pool.get()?;
        embedded::migrations::runner().run(&mut *conn)?;
        Ok(Self { pool })
    }

    /// A connection from the pool.
    pub fn conn(&self) -> Result<PooledConnection<SqliteConnectionManager>, ControlError> {
        Ok(self.pool.get()?)
    }

    /// Answers whether the database responds.
    pub fn ping(&self) -> Result<(), ControlError> {
        self.conn()?.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

impl ControlDb {
    /// Records a loaded plugin in the registry.
    pub fn register_plugin(
        &self,
        name: &str,
        version: &str,
        source: &str,
        sha256: &str,
    ) -> Result<(), ControlError> {
        self.conn()?.execute(
            "INSERT INTO plugins (name, version, source, sha256, loaded_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET version = ?2, source = ?3, sha256 = ?4, loaded_at = ?5",
            rusqlite::params![name, version, source, sha256, malipo_foundations::time_util::now_rfc3339()],
        )?;
        Ok(())
    }
}
