//! What a plugin's SQL may touch, enforced by SQLite's authorizer (not by
//! parsing SQL): its own tables (`<plugin>_…`), the host tables it declared
//! for reading, nothing else. `ATTACH`, `PRAGMA`, transactions and schema
//! changes are refused outside migrations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// When the rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A plugin operation: data access only.
    Call {
        /// The operation is declared read-only: writes are refused too.
        read_only: bool,
    },
    /// The host applying the plugin's migrations: DDL on its own tables.
    Migration,
}

/// One plugin's access rules, and what it tried that they refused.
#[derive(Debug)]
pub struct PluginAccess {
    /// `<plugin>_`: the prefix of every table the plugin owns.
    own_prefix: String,
    /// Host tables the manifest declared for reading.
    read_tables: Vec<String>,
    /// The refinery history table of the plugin's migrations.
    history_table: String,
    /// Set while the host itself runs a statement inside a plugin call
    /// (writing an event to the outbox, reading a declared secret).
    host_bypass: AtomicBool,
    /// The first thing refused, reported as the call's error.
    violation: Mutex<Option<String>>,
}

impl PluginAccess {
    /// Rules for the plugin named `plugin`.
    pub fn new(plugin: &str, read_tables: &[String]) -> Arc<Self> {
        Arc::new(Self {
            own_prefix: format!("{plugin}_"),
            read_tables: read_tables.to_vec(),
            history_table: history_table(plugin),
            host_bypass: AtomicBool::new(false),
            violation: Mutex::new(None),
        })
    }

    /// Runs `work` as the host, outside the plugin's rules.
    pub fn as_host<T>(&self, work: impl FnOnce() -> T) -> T {
        self.host_bypass.store(true, Ordering::SeqCst);
        let result = work();
        self.host_bypass.store(false, Ordering::SeqCst);
        result
    }

    /// What was refused since the last [`Self::reset`], if anything.
    pub fn violation(&self) -> Option<String> {
        self.violation
            .lock()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The slot holding the first violation, for the host to fill in too.
    pub fn violation_slot(&self) -> Result<std::sync::MutexGuard<'_, Option<String>>, String> {
        self.violation.lock().map_err(|e| e.to_string())
    }

    /// Forgets the last violation (a new call starts).
    pub fn reset(&self) {
        if let Ok(mut slot) = self.violation.lock() {
            *slot = None;
        }
    }

    fn owns(&self, table: &str) -> bool {
        table.starts_with(&self.own_prefix) || table == self.history_table
    }

    fn may_read(&self, table: &str) -> bool {
        self.owns(table) || self.read_tables.iter().any(|t| t == table)
    }

    fn refuse(&self, what: String) -> Authorization {
        if let Ok(mut slot) = self.violation.lock()
            && slot.is_none()
        {
            *slot = Some(what);
        }
        Authorization::Deny
    }

    /// The authorizer decision for one action.
    pub fn decide(&self, phase: Phase, ctx: &AuthContext<'_>) -> Authorization {
        if self.host_bypass.load(Ordering::SeqCst) {
            return Authorization::Allow;
        }
        let internal = |table: &str| table.starts_with("sqlite_");
        // The schema table: SQLite reports a CREATE or DROP as a write to it.
        // (An explicit write needs `PRAGMA writable_schema`, refused below.)
        // `sqlite_sequence` is written when a migration creates or drops an
        // AUTOINCREMENT table; the host checks afterwards that no row of a
        // table the plugin does not own changed
        // (`crate::tenancy::check_plugin_schema`). Any other `sqlite_*`
        // table (`sqlite_stat1`, …) is never written by a plugin.
        let schema_table = |table: &str| {
            matches!(
                table,
                "sqlite_master" | "sqlite_schema" | "sqlite_temp_master" | "sqlite_sequence"
            )
        };
        let writes_allowed = matches!(phase, Phase::Migration | Phase::Call { read_only: false });
        match ctx.action {
            AuthAction::Select | AuthAction::Function { .. } | AuthAction::Recursive => {
                Authorization::Allow
            }
            AuthAction::Read { table_name, .. } => {
                if self.may_read(table_name) || (phase == Phase::Migration && internal(table_name))
                {
                    Authorization::Allow
                } else {
                    self.refuse(format!(
                        "read of table `{table_name}`, which the plugin neither owns nor declared"
                    ))
                }
            }
            AuthAction::Insert { table_name }
            | AuthAction::Update { table_name, .. }
            | AuthAction::Delete { table_name } => {
                if !writes_allowed {
                    self.refuse(format!(
                        "write to `{table_name}` in an operation declared read-only"
                    ))
                } else if self.owns(table_name)
                    || (phase == Phase::Migration && schema_table(table_name))
                {
                    Authorization::Allow
                } else {
                    self.refuse(format!(
                        "write to table `{table_name}`, which the plugin does not own"
                    ))
                }
            }
            AuthAction::CreateTable { table_name }
            | AuthAction::DropTable { table_name }
            | AuthAction::CreateIndex { table_name, .. }
            | AuthAction::DropIndex { table_name, .. }
            | AuthAction::CreateTrigger { table_name, .. }
            | AuthAction::DropTrigger { table_name, .. }
            | AuthAction::AlterTable { table_name, .. } => {
                if phase == Phase::Migration && self.owns(table_name) {
                    Authorization::Allow
                } else {
                    self.refuse(format!(
                        "schema change on `{table_name}` outside the plugin's migrations"
                    ))
                }
            }
            AuthAction::Reindex { index_name: name }
            | AuthAction::CreateView { view_name: name }
            | AuthAction::DropView { view_name: name }
            | AuthAction::Analyze { table_name: name }
                if phase == Phase::Migration && self.owns(name) =>
            {
                Authorization::Allow
            }
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. }
                if phase == Phase::Migration =>
            {
                Authorization::Allow
            }
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
                self.refuse("transaction control: the host owns the call's transaction".into())
            }
            AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
                self.refuse("ATTACH/DETACH: a plugin reaches only its tenant's database".into())
            }
            AuthAction::Pragma { pragma_name, .. } => self.refuse(format!(
                "PRAGMA {pragma_name}: plugins may not change connection behaviour"
            )),
            other => self.refuse(format!("{other:?}")),
        }
    }
}

/// The refinery history table of a plugin's migrations.
pub fn history_table(plugin: &str) -> String {
    format!("{plugin}_schema_history")
}

/// Installs `access` as the connection's authorizer for `phase`.
pub fn install(
    conn: &rusqlite::Connection,
    access: &Arc<PluginAccess>,
    phase: Phase,
) -> rusqlite::Result<()> {
    access.reset();
    let access = Arc::clone(access);
    conn.authorizer(Some(move |ctx: AuthContext<'_>| access.decide(phase, &ctx)))
}

/// Removes any authorizer from the connection.
pub fn remove(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)
}
