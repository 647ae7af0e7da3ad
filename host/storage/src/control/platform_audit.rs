//! The platform audit: actions on the platform itself (tenant created,
//! suspended, reactivated; plans changed; super-admin bootstrapped), kept in
//! `control.db` as a hash chain like a tenant's audit log; and the last
//! known head of every tenant's audit chain.

use rusqlite::{OptionalExtension, params};

use crate::audit::chain::{self, Link, PLATFORM};
use crate::audit::query::{Filters, Page};
use crate::audit::verify::Verification;
use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::TenantId;
use malipo_foundations::time_util::now_rfc3339;

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
    /// Appends a platform audit row and chains it (in a transaction of its
    /// own: the chain's last link is read under the write lock).
    pub fn platform_audit(&self, entry: &PlatformAuditEntry) -> Result<(), ControlError> {
        let fields = [
            Some(now_rfc3339()),
            entry.actor_id.clone(),
            Some(entry.channel.clone()),
            Some(entry.operation.clone()),
            entry.target.clone(),
            Some(entry.outcome.clone()),
            entry.ip.clone(),
            entry.user_agent.clone(),
            entry.request_id.clone(),
            entry.detail.clone(),
        ];
        chain::append(&*self.conn()?, &PLATFORM, &fields)?;
        Ok(())
    }

    /// One page of the platform audit.
    pub fn platform_audit_page(&self, filters: &Filters) -> Result<Page, ControlError> {
        let conn = self.conn()?;
        chain::seal_legacy(&conn, &PLATFORM)?;
        Ok(crate::audit::query::page(&conn, &PLATFORM, filters)?)
    }

    /// Walks the platform audit chain.
    pub fn verify_platform_audit(&self) -> Result<Verification, ControlError> {
        Ok(crate::audit::verify::verify(
            &*self.conn()?,
            &PLATFORM,
            &[],
        )?)
    }

    /// The last head of a tenant's audit chain recorded here.
    pub fn tenant_audit_head(&self, tenant: TenantId) -> Result<Option<Link>, ControlError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT seq, hash FROM tenant_audit_heads WHERE tenant_id = ?1",
                [tenant.to_string()],
                |row| {
                    Ok(Link {
                        seq: row.get(0)?,
                        hash: row.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records a tenant's audit head, if it is further along than the one
    /// recorded (a head never moves back).
    pub fn raise_tenant_audit_head(
        &self,
        tenant: TenantId,
        head: &Link,
    ) -> Result<(), ControlError> {
        self.conn()?.execute(
            "INSERT INTO tenant_audit_heads (tenant_id, seq, hash, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, updated_at = excluded.updated_at
             WHERE excluded.seq > tenant_audit_heads.seq",
            params![tenant.to_string(), head.seq, head.hash, now_rfc3339()],
        )?;
        Ok(())
    }
}
