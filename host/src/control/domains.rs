//! Custom domains (control migration V6): the hostname a tenant claims, and
//! which tenant a hostname belongs to.

use rusqlite::{OptionalExtension, params};

use super::{ControlDb, ControlError};
use crate::ids::TenantId;
use crate::time_util::now_rfc3339;

/// What claiming a hostname did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The tenant now holds it; the hostname it held before, if another.
    Claimed {
        /// The hostname it gave up.
        previous: Option<String>,
    },
    /// Another tenant holds it.
    Taken,
}

impl ControlDb {
    /// The tenant a hostname belongs to (case-insensitive).
    pub fn tenant_of_hostname(&self, hostname: &str) -> Result<Option<TenantId>, ControlError> {
        let id: Option<String> = self
            .conn()?
            .query_row(
                "SELECT tenant_id FROM tenant_domains WHERE hostname = ?1",
                [hostname],
                |row| row.get(0),
            )
            .optional()?;
        Ok(id.as_deref().and_then(TenantId::parse))
    }

    /// The tenant's hostname and when it was claimed.
    pub fn hostname_of(&self, tenant: TenantId) -> Result<Option<(String, String)>, ControlError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT hostname, created_at FROM tenant_domains WHERE tenant_id = ?1",
                [tenant.to_string()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?)
    }

    /// Claims `hostname` for the tenant, replacing the one it held.
    pub fn claim_hostname(&self, tenant: TenantId, hostname: &str) -> Result<Claim, ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let holder: Option<String> = tx
            .query_row(
                "SELECT tenant_id FROM tenant_domains WHERE hostname = ?1",
                [hostname],
                |row| row.get(0),
            )
            .optional()?;
        if holder.is_some_and(|holder| holder != tenant.to_string()) {
            return Ok(Claim::Taken);
        }
        let previous = take_hostname(&tx, tenant)?;
        tx.execute(
            "INSERT INTO tenant_domains (hostname, tenant_id, created_at) VALUES (?1, ?2, ?3)",
            params![hostname, tenant.to_string(), now_rfc3339()],
        )?;
        tx.commit()?;
        Ok(Claim::Claimed {
            previous: previous.filter(|p| !p.eq_ignore_ascii_case(hostname)),
        })
    }

    /// Gives up the tenant's hostname; answers the one it held.
    pub fn release_hostname(&self, tenant: TenantId) -> Result<Option<String>, ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let held = take_hostname(&tx, tenant)?;
        tx.commit()?;
        Ok(held)
    }
}

/// Removes the tenant's hostname inside `tx`; answers the one it held.
fn take_hostname(
    tx: &rusqlite::Transaction<'_>,
    tenant: TenantId,
) -> Result<Option<String>, ControlError> {
    let held: Option<String> = tx
        .query_row(
            "SELECT hostname FROM tenant_domains WHERE tenant_id = ?1",
            [tenant.to_string()],
            |row| row.get(0),
        )
        .optional()?;
    tx.execute(
        "DELETE FROM tenant_domains WHERE tenant_id = ?1",
        [tenant.to_string()],
    )?;
    Ok(held)
}
