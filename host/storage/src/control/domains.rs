//! Custom domains (control migrations V6, V12): the hostname a tenant
//! claims, its proof of control, and which tenant a verified hostname
//! belongs to. An unverified claim routes nothing.

use rusqlite::{OptionalExtension, params};

use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::TenantId;
use malipo_foundations::time_util::now_rfc3339;

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

/// A tenant's claimed hostname.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldDomain {
    /// The name.
    pub hostname: String,
    /// RFC 3339.
    pub created_at: String,
    /// What the challenge must answer (none for claims made before V12:
    /// claim again to get one).
    pub token: Option<String>,
    /// RFC 3339, once control was proved.
    pub verified_at: Option<String>,
}

impl ControlDb {
    /// The tenant a verified hostname belongs to (case-insensitive).
    pub fn tenant_of_hostname(&self, hostname: &str) -> Result<Option<TenantId>, ControlError> {
        let id: Option<String> = self
            .conn()?
            .query_row(
                "SELECT tenant_id FROM tenant_domains WHERE hostname = ?1 AND verified_at IS NOT NULL",
                [hostname],
                |row| row.get(0),
            )
            .optional()?;
        Ok(id.as_deref().and_then(TenantId::parse))
    }

    /// The tenant's hostname, when it was claimed, and its proof.
    pub fn hostname_of(&self, tenant: TenantId) -> Result<Option<HeldDomain>, ControlError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT hostname, created_at, verification_token, verified_at FROM tenant_domains WHERE tenant_id = ?1",
                [tenant.to_string()],
                |row| {
                    Ok(HeldDomain {
                        hostname: row.get(0)?,
                        created_at: row.get(1)?,
                        token: row.get(2)?,
                        verified_at: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records that the tenant proved control of `hostname`; false when it
    /// no longer holds that name.
    pub fn mark_hostname_verified(
        &self,
        tenant: TenantId,
        hostname: &str,
    ) -> Result<bool, ControlError> {
        let changed = self.conn()?.execute(
            "UPDATE tenant_domains SET verified_at = COALESCE(verified_at, ?3)
              WHERE tenant_id = ?1 AND hostname = ?2",
            params![tenant.to_string(), hostname, now_rfc3339()],
        )?;
        Ok(changed == 1)
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
        match holder {
            Some(holder) if holder != tenant.to_string() => return Ok(Claim::Taken),
            // Claimed again: its token and proof stay.
            Some(_) => return Ok(Claim::Claimed { previous: None }),
            None => {}
        }
        let previous = take_hostname(&tx, tenant)?;
        // A new claim starts unverified, with a fresh token to publish.
        let token = format!(
            "malipo-domain-verification={}",
            uuid::Uuid::new_v4().simple()
        );
        tx.execute(
            "INSERT INTO tenant_domains (hostname, tenant_id, created_at, verification_token) VALUES (?1, ?2, ?3, ?4)",
            params![hostname, tenant.to_string(), now_rfc3339(), token],
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
