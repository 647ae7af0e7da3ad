//! The tenant audit log: one row per mutating call, written in the same
//! transaction as the change when the change is in the tenant's file, and in
//! a transaction of its own for failures and for changes kept in control.db.

use rusqlite::params;

use crate::time_util::now_rfc3339;

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

/// Appends one row to the tenant's audit log on `conn`.
pub fn write(conn: &rusqlite::Connection, entry: &AuditEntry) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit_log (at, actor_type, actor_id, channel, operation, target, outcome, ip, user_agent, request_id, store_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            now_rfc3339(),
            entry.actor_type,
            entry.actor_id,
            entry.channel,
            entry.operation,
            entry.target,
            entry.outcome,
            entry.ip,
            entry.user_agent,
            entry.request_id,
            entry.store_id,
            entry.detail,
        ],
    )?;
    Ok(())
}
