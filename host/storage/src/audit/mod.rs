//! The tenant audit log: one row per mutating call, written in the same
//! transaction as the change when the change is in the tenant's file, and in
//! a transaction of its own for failures and for changes kept in control.db.
//! The rows form a hash chain ([`chain`]) that [`verify`] walks; the chain's
//! head is kept next to it and, out of the tenant file's reach, in
//! `control.db` (the host's `audit::heads`). [`query`] lists and exports rows.

pub mod chain;
pub mod query;
pub mod verify;

use malipo_foundations::time_util::now_rfc3339;

/// One audited action.
#[derive(Clone, Debug, Default)]
pub struct AuditEntry {
    /// `user`, `api_key` or `system`.
    pub actor_type: String,
    /// User id, if any.
    pub actor_id: Option<String>,
    /// `rest`, `mcp`, `callback`, `job`, `cli`, `system`.
    pub channel: String,
    /// Operation name, e.g. `stores.create`.
    pub operation: String,
    /// What it acted on (an id or path).
    pub target: Option<String>,
    /// `success` or `failure:<code>`.
    pub outcome: String,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Store of the request.
    pub store_id: Option<String>,
    /// Extra JSON.
    pub detail: Option<String>,
}

impl AuditEntry {
    /// The same entry with another outcome.
    pub fn with_outcome(&self, outcome: impl Into<String>) -> Self {
        Self {
            outcome: outcome.into(),
            ..self.clone()
        }
    }
}

/// Appends one row to the tenant's audit log on `conn` and chains it: in
/// the caller's transaction when there is one (the row then commits or
/// rolls back with the change), else in an `IMMEDIATE` transaction of its
/// own.
pub fn write(conn: &rusqlite::Connection, entry: &AuditEntry) -> rusqlite::Result<()> {
    let fields = [
        Some(now_rfc3339()),
        Some(entry.actor_type.clone()),
        entry.actor_id.clone(),
        Some(entry.channel.clone()),
        Some(entry.operation.clone()),
        entry.target.clone(),
        Some(entry.outcome.clone()),
        entry.ip.clone(),
        entry.user_agent.clone(),
        entry.request_id.clone(),
        entry.store_id.clone(),
        entry.detail.clone(),
    ];
    chain::append(conn, &chain::TENANT, &fields)?;
    Ok(())
}

/// Whether a job run changed something, judged from its answer: its
/// `changed` count when it gives one; otherwise any top-level positive
/// count or non-empty list, except `errors` (problems, not changes),
/// `checked` (what was looked at) and `waiting` (what is not due yet). A run that changed nothing is not
/// audited, so idle rounds do not bury people's actions.
pub fn run_changed_something(output: &serde_json::Value) -> bool {
    if let Some(changed) = output.get("changed") {
        return changed.as_u64().is_some_and(|n| n > 0);
    }
    output.as_object().is_some_and(|fields| {
        fields
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "errors" | "checked" | "waiting"))
            .any(|(_, value)| match value {
                serde_json::Value::Number(n) => n.as_f64().is_some_and(|n| n > 0.0),
                serde_json::Value::Array(items) => !items.is_empty(),
                _ => false,
            })
    })
}

/// Writes a job run's audit row — only when the run changed something
/// ([`run_changed_something`]), with its answer (minus `errors`) as the
/// row's detail. Runs inside the job's transaction, before it commits.
pub fn write_job_run(
    conn: &rusqlite::Connection,
    entry: &AuditEntry,
    output: &str,
) -> rusqlite::Result<()> {
    let Ok(mut answer) = serde_json::from_str::<serde_json::Value>(output) else {
        return write(conn, entry);
    };
    if !run_changed_something(&answer) {
        return Ok(());
    }
    if let Some(fields) = answer.as_object_mut() {
        fields.remove("errors");
    }
    let entry = AuditEntry {
        detail: Some(answer.to_string()),
        ..entry.clone()
    };
    write(conn, &entry)
}
