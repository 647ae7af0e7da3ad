//! [`SqliteDb`]: the SDK's [`Db`] over an in-memory SQLite database, behind the host's rules.

use std::sync::Arc;

use rusqlite::{Connection, ErrorCode};

use super::guard::{self, Guard};
use crate::{Db, Error, Result, Sql, Table};

/// A plugin's tenant database for native unit tests: an in-memory SQLite
/// database with the plugin's migrations, and the host tables and rows a
/// test puts there with [`Self::seed`].
///
/// Statements the plugin runs through [`Db`] (and any run on
/// [`Self::connection`]) pass an authorizer with the host's rules; it
/// refuses:
///
/// - reading a table that is neither the plugin's own (`<plugin>_…`) nor
///   one of the host tables passed as `read_tables` (the manifest's);
/// - writing (INSERT, UPDATE, DELETE) any table but the plugin's own, and
///   any write at all while the call is read-only ([`Self::call`]);
/// - schema changes (CREATE, DROP, ALTER of tables, indexes, triggers,
///   views), allowed only on the plugin's own tables in [`Self::migrate`];
/// - `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT` outside migrations (the
///   host owns the call's transaction);
/// - `ATTACH` and `DETACH`; every `PRAGMA`; anything else SQLite asks about.
///
/// The real host enforces these rules with SQLite's authorizer
/// (`host/storage/src/tenancy/authorizer.rs`), whose decisions this fake copies;
/// it only approximates the host otherwise: no call transaction (a failed
/// call's writes are not rolled back; see [`Self::call`]), no check of the
/// schema after migrations, no migration history table, no SQLite limits,
/// deadline or memory cap, one connection rather than the tenant's file.
pub struct SqliteDb {
    conn: Connection,
    guard: Arc<Guard>,
}

impl SqliteDb {
    /// An empty in-memory database for the plugin named `plugin` (the
    /// prefix of its tables), allowed to read the host tables
    /// `read_tables`.
    pub fn in_memory(plugin: &str, read_tables: &[String]) -> rusqlite::Result<Self> {
        let conn = Connection::open_in_memory()?;
        let guard = Guard::new(plugin, read_tables);
        guard::install(&conn, &guard)?;
        Ok(Self { conn, guard })
    }

    /// Applies one of the plugin's migrations, as the host does: schema
    /// changes and transaction control are allowed on the plugin's own
    /// tables only.
    pub fn migrate(&self, sql: &str) -> rusqlite::Result<()> {
        self.guard.migrating(|| self.conn.execute_batch(sql))
    }

    /// Runs fixture SQL as the host, outside the plugin's rules: creates
    /// and fills the host tables the plugin reads.
    pub fn seed(&self, sql: &str) -> rusqlite::Result<()> {
        self.as_host(|conn| conn.execute_batch(sql))
    }

    /// Runs `work` on the connection as the host, outside the plugin's rules.
    pub fn as_host<T>(&self, work: impl FnOnce(&Connection) -> T) -> T {
        self.guard.as_host(|| work(&self.conn))
    }

    /// The connection; what runs on it is still under the plugin's rules
    /// (see [`Self::as_host`]).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Declares the running operation read-only (or not), as the host does
    /// from the operation's annotations.
    pub fn set_read_only(&self, read_only: bool) {
        self.guard.set_read_only(read_only);
    }

    /// The first statement refused since the last [`Self::call`] began, if any.
    pub fn violation(&self) -> Option<String> {
        self.guard.violation()
    }

    /// Runs one plugin call as the host does: writes refused if
    /// `read_only`, and the call failed (`internal`) if any statement was
    /// refused, even when the plugin went on after the error. Unlike the
    /// host, a failed call's writes stay, so a test sees whether the plugin
    /// checked before writing.
    pub fn call<T>(&self, read_only: bool, body: impl FnOnce() -> Result<T>) -> Result<T> {
        self.guard.take_violation();
        self.guard.set_read_only(read_only);
        let outcome = body();
        self.guard.set_read_only(false);
        match self.guard.take_violation() {
            Some(refused) => Err(Error::internal(format!(
                "the host refused a statement of the call: {refused}"
            ))),
            None => outcome,
        }
    }

    /// A database error as the host reports it, naming what was refused.
    fn error(&self, err: rusqlite::Error) -> Error {
        let refused = match &err {
            rusqlite::Error::SqliteFailure(failure, _)
                if failure.code == ErrorCode::AuthorizationForStatementDenied =>
            {
                self.guard.violation()
            }
            _ => None,
        };
        crate::db::db_error(match refused {
            Some(refused) => format!("{err}: {refused}"),
            None => err.to_string(),
        })
    }
}

impl Db for SqliteDb {
    fn execute(&self, sql: &str, params: &[Sql]) -> Result<u64> {
        let changed = self
            .conn
            .execute(sql, rusqlite::params_from_iter(params))
            .map_err(|err| self.error(err))?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    fn query(&self, sql: &str, params: &[Sql]) -> Result<Table> {
        let mut statement = self.conn.prepare(sql).map_err(|err| self.error(err))?;
        let columns: Vec<String> = statement
            .column_names()
            .iter()
            .map(|name| (*name).to_owned())
            .collect();
        let width = columns.len();
        let rows = statement
            .query_map(rusqlite::params_from_iter(params), |row| {
                (0..width).map(|i| row.get::<_, Sql>(i)).collect()
            })
            .map_err(|err| self.error(err))?
            .collect::<rusqlite::Result<Vec<Vec<Sql>>>>()
            .map_err(|err| self.error(err))?;
        Ok(Table { columns, rows })
    }
}
