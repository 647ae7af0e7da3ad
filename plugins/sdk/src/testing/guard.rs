//! The host's access rules for a plugin's SQL, approximated for tests with SQLite's authorizer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// One plugin's access rules, and the first thing they refused.
///
/// A copy, decision for decision, of the host's authorizer
/// (`host/storage/src/tenancy/authorizer.rs`); keep the two in step.
#[derive(Debug)]
pub(crate) struct Guard {
    /// `<plugin>_`: the prefix of every table the plugin owns.
    own_prefix: String,
    /// Host tables the manifest declared for reading.
    read_tables: Vec<String>,
    /// The running operation is declared read-only: writes are refused too.
    read_only: AtomicBool,
    /// The host is applying the plugin's migrations: DDL on its own tables.
    migrating: AtomicBool,
    /// The host runs a statement as itself (fixtures): nothing is refused.
    as_host: AtomicBool,
    /// The first thing refused since the last [`Guard::take_violation`].
    violation: Mutex<Option<String>>,
}

impl Guard {
    /// Rules for the plugin named `plugin`.
    pub(crate) fn new(plugin: &str, read_tables: &[String]) -> Arc<Self> {
        Arc::new(Self {
            own_prefix: format!("{plugin}_"),
            read_tables: read_tables.to_vec(),
            read_only: AtomicBool::new(false),
            migrating: AtomicBool::new(false),
            as_host: AtomicBool::new(false),
            violation: Mutex::new(None),
        })
    }

    pub(crate) fn set_read_only(&self, read_only: bool) {
        self.read_only.store(read_only, Ordering::SeqCst);
    }

    /// Runs `work` under the migration rules.
    pub(crate) fn migrating<T>(&self, work: impl FnOnce() -> T) -> T {
        self.migrating.store(true, Ordering::SeqCst);
        let result = work();
        self.migrating.store(false, Ordering::SeqCst);
        result
    }

    /// Runs `work` as the host, outside the plugin's rules.
    pub(crate) fn as_host<T>(&self, work: impl FnOnce() -> T) -> T {
        self.as_host.store(true, Ordering::SeqCst);
        let result = work();
        self.as_host.store(false, Ordering::SeqCst);
        result
    }

    /// The first thing refused since the last take, if anything.
    pub(crate) fn violation(&self) -> Option<String> {
        match self.violation.lock() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The first thing refused since the last take; forgets it.
    pub(crate) fn take_violation(&self) -> Option<String> {
        match self.violation.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    fn owns(&self, table: &str) -> bool {
        table.starts_with(&self.own_prefix)
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
    pub(crate) fn decide(&self, ctx: &AuthContext<'_>) -> Authorization {
        if self.as_host.load(Ordering::SeqCst) {
            return Authorization::Allow;
        }
        let migration = self.migrating.load(Ordering::SeqCst);
        let internal = |table: &str| table.starts_with("sqlite_");
        // SQLite reports a CREATE or DROP as a write to the schema table.
        let schema_table = |table: &str| {
            matches!(
                table,
                "sqlite_master" | "sqlite_schema" | "sqlite_temp_master" | "sqlite_sequence"
            )
        };
        let writes_allowed = migration || !self.read_only.load(Ordering::SeqCst);
        match ctx.action {
            AuthAction::Select | AuthAction::Function { .. } | AuthAction::Recursive => {
                Authorization::Allow
            }
            AuthAction::Read { table_name, .. } => {
                if self.may_read(table_name) || (migration && internal(table_name)) {
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
                } else if self.owns(table_name) || (migration && schema_table(table_name)) {
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
                if migration && self.owns(table_name) {
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
                if migration && self.owns(name) =>
            {
                Authorization::Allow
            }
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } if migration => {
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

/// Installs `guard` as the connection's authorizer.
pub(crate) fn install(conn: &rusqlite::Connection, guard: &Arc<Guard>) -> rusqlite::Result<()> {
    let guard = Arc::clone(guard);
    conn.authorizer(Some(move |ctx: AuthContext<'_>| guard.decide(&ctx)))
}
