//! The platform audit: actions on the platform itself (tenant created,
//! suspended; super-admin bootstrapped), kept in `control.db`.

use rusqlite::params;

use super::{ControlDb, ControlError};
use crate::time_util::now_rfc3339;

/// One platform-level action.
#[derive(Clone, Debug, Default)]
pub struct PlatformAuditEntry {
    /// Who did it (user id), if a person.
    pub actor_id: Option<String>,
    /// `rest`, `cli`, ...
    pub channel: String,
    /// Operation name, e.g. `admin.tenants.update`.
    pub operation: String,
    /// What it acted on.
    pub target: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Extra JSON detail.
    pub detail: Option<String>,
}

impl ControlDb {
    /// Appends a platform audit row.
    pub fn platform_audit(&self, entry: &PlatformAuditEntry) -> Result<(), ControlError> {
        self.conn()?.execute(
            "INSERT INTO platform_audit (at, actor_id, channel, operation, target, outcome, ip, user_agent, request_id, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                now_rfc3339(),
                entry.actor_id,
                entry.channel,
                entry.operation,
                entry.target,
                entry.outcome,
                entry.ip,
                entry.user_agent,
                entry.request_id,
                entry.detail,
            ],
        )?;
        Ok(())
    }
}
