//! The head of each tenant's audit chain kept in `control.db`, out of reach
//! of an edit of the tenant's file: written after the tenant's transaction
//! commits (best effort), only ever moved forward along the same chain, and
//! read back by verification to tell a chain whose last rows were removed.

use std::sync::Arc;

use crate::audit::chain;
use crate::audit::chain::TENANT;
use crate::core::Core;
use malipo_foundations::error::blocking;
use malipo_foundations::ids::TenantId;
use malipo_storage::control::{ControlDb, ControlError};
use malipo_storage::tenancy::{Tenancy, TenancyError};

/// Why a head could not be published.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The tenant's file failed.
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// SQLite failed on the tenant's file.
    #[error("tenant audit chain: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// `control.db` failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The tenant's chain no longer passes through the recorded head.
    #[error("the audit chain of tenant {0} no longer passes through its recorded head")]
    Diverged(TenantId),
}

/// Moves the tenant's recorded head to its chain's last row, unless the
/// chain no longer passes through the recorded head (then the recorded
/// head stays, as the evidence verification reports).
pub fn publish(control: &ControlDb, tenancy: &Tenancy, tenant: TenantId) -> Result<(), HeadError> {
    let recorded = control.tenant_audit_head(tenant)?;
    let db = tenancy.get(tenant)?;
    let conn = db.conn()?;
    let Some(last) = chain::last_link(&conn, &TENANT)? else {
        return Ok(());
    };
    if let Some(recorded) = &recorded {
        if last.seq <= recorded.seq {
            return Ok(());
        }
        match chain::hash_at(&conn, &TENANT, recorded.seq)? {
            Some((_, Some(hash))) if hash == recorded.hash => {}
            _ => return Err(HeadError::Diverged(tenant)),
        }
    }
    drop(conn);
    control.raise_tenant_audit_head(tenant, &last)?;
    Ok(())
}

/// [`publish`] after a tenant call that may have written audit rows has
/// ended; failures are logged, never answered.
pub async fn after_commit(state: &Arc<Core>, tenant: Option<TenantId>) {
    let Some(tenant) = tenant else {
        return;
    };
    let state = Arc::clone(state);
    let published = blocking(move || {
        publish(&state.control, &state.tenancy, tenant)
            .map_err(|e| malipo_foundations::error::ApiError::Unexpected(e.into()))
    })
    .await;
    if let Err(error) = published {
        tracing::error!(tenant = %tenant, %error, "could not record the tenant's audit head");
    }
}
