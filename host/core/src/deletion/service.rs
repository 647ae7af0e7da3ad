//! Deleting a tenant: a super-admin (or the operator's CLI) schedules it, the
//! tenant is suspended at once, and after `MALIPO_TENANT_DELETION_GRACE_SECS`
//! (default 30 days) the sweeper purges it: its file goes, and every row that
//! names it in `control.db` (see [`malipo_storage::control::ControlDb::purge_tenant_rows`]).
//! Until then a cancellation gives it back as it was. The platform audit
//! records each step (`tenant.deletion_scheduled`, `tenant.deletion_cancelled`,
//! `tenant.deleted`) and keeps those rows after the purge.
//!
//! Every function but [`worker`] is synchronous (it reads `control.db` and
//! removes files): run it on a blocking thread.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::core::Core;
use crate::core::operation::RequestMeta;
use malipo_foundations::error::ApiError;
use malipo_foundations::ids::{TenantId, UserId};
use malipo_storage::control::{Cancellation, PurgedRows};
use malipo_storage::control::{ControlError, PlatformAuditEntry, TenantRecord};
use malipo_storage::tenancy::TenancyError;

/// The grace period when `MALIPO_TENANT_DELETION_GRACE_SECS` is not set: 30 days.
pub const DEFAULT_GRACE_SECS: u64 = 30 * 24 * 60 * 60;

/// How often the sweeper looks for due tenants when
/// `MALIPO_TENANT_DELETION_SWEEP_SECS` is not set.
pub const DEFAULT_SWEEP_SECS: u64 = 60;

/// Errors of deleting a tenant.
#[derive(Debug, thiserror::Error)]
pub enum DeletionError {
    /// No tenant has this id.
    #[error("no tenant {0}")]
    NoSuchTenant(TenantId),
    /// A cancellation for a tenant whose deletion is not scheduled.
    #[error("the deletion of tenant {0} is not scheduled")]
    NotScheduled(TenantId),
    /// The platform tenant collects every invoice: name another first.
    #[error(
        "tenant {0} is the platform tenant (it collects invoices); name another platform tenant first"
    )]
    PlatformTenant(TenantId),
    /// `MALIPO_TENANT_DELETION_GRACE_SECS` is not a number of seconds.
    #[error("MALIPO_TENANT_DELETION_GRACE_SECS must be a whole number of seconds, not `{0}`")]
    BadGrace(String),
    /// `control.db` failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// Removing the tenant's file failed.
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
}

impl From<DeletionError> for ApiError {
    fn from(error: DeletionError) -> Self {
        match error {
            DeletionError::NoSuchTenant(_) => ApiError::not_found("tenant"),
            DeletionError::NotScheduled(_) | DeletionError::PlatformTenant(_) => {
                ApiError::Conflict(error.to_string())
            }
            other => ApiError::Unexpected(other.into()),
        }
    }
}

/// Who acts, for the platform audit.
#[derive(Clone, Debug)]
pub struct Actor {
    /// The super-admin, if a person (none from the CLI).
    pub user_id: Option<UserId>,
    /// Channel (`rest`, `cli`, `system`), request id, address.
    pub meta: RequestMeta,
}

impl Actor {
    /// The sweeper, acting on its own.
    pub fn system() -> Self {
        Self {
            user_id: None,
            meta: RequestMeta {
                request_id: format!("sweep-{}", uuid::Uuid::new_v4()),
                ip: None,
                user_agent: None,
                channel: "system".into(),
                host: None,
            },
        }
    }

    fn audit(
        &self,
        state: &Core,
        operation: &str,
        tenant: TenantId,
        detail: serde_json::Value,
    ) -> Result<(), ControlError> {
        state.control.platform_audit(&PlatformAuditEntry {
            actor_id: self.user_id.map(|u| u.to_string()),
            channel: self.meta.channel.clone(),
            operation: operation.into(),
            target: Some(tenant.to_string()),
            outcome: "success".into(),
            ip: self.meta.ip.clone(),
            user_agent: self.meta.user_agent.clone(),
            request_id: Some(self.meta.request_id.clone()),
            detail: Some(detail.to_string()),
        })
    }
}

/// The grace period: `MALIPO_TENANT_DELETION_GRACE_SECS`, else 30 days.
pub fn grace_secs() -> Result<u64, DeletionError> {
    match malipo_foundations::config::var("MALIPO_TENANT_DELETION_GRACE_SECS") {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| DeletionError::BadGrace(text)),
        Err(_) => Ok(DEFAULT_GRACE_SECS),
    }
}

fn rfc3339_in(secs: u64) -> String {
    let at = time::OffsetDateTime::now_utc()
        .checked_add(time::Duration::seconds(
            i64::try_from(secs).unwrap_or(i64::MAX),
        ))
        .unwrap_or(time::OffsetDateTime::now_utc());
    malipo_foundations::time_util::format_rfc3339(at)
}

fn refuse_platform_tenant(state: &Core, id: TenantId) -> Result<(), DeletionError> {
    if state.billing.platform_tenant() == Some(id) {
        return Err(DeletionError::PlatformTenant(id));
    }
    Ok(())
}

/// Schedules the tenant's deletion `grace_secs` from now: it is suspended at
/// once (its members' requests are refused with `tenant_pending_deletion`).
/// An earlier scheduled time stands.
pub fn schedule(
    state: &Core,
    id: TenantId,
    grace_secs: u64,
    actor: &Actor,
) -> Result<TenantRecord, DeletionError> {
    refuse_platform_tenant(state, id)?;
    let tenant = state
        .control
        .schedule_tenant_deletion(id, &rfc3339_in(grace_secs))?
        .ok_or(DeletionError::NoSuchTenant(id))?;
    state.billing.invalidate(id);
    state.authz_changed(id);
    actor.audit(
        state,
        "tenant.deletion_scheduled",
        id,
        json!({"deletion_due_at": tenant.deletion_due_at, "grace_secs": grace_secs}),
    )?;
    Ok(tenant)
}

/// Cancels a scheduled deletion: the tenant gets its earlier status back.
pub fn cancel(state: &Core, id: TenantId, actor: &Actor) -> Result<TenantRecord, DeletionError> {
    let tenant = match state.control.cancel_tenant_deletion(id)? {
        Cancellation::Cancelled(tenant) => tenant,
        Cancellation::NoSuchTenant => return Err(DeletionError::NoSuchTenant(id)),
        Cancellation::NotScheduled(_) => return Err(DeletionError::NotScheduled(id)),
    };
    state.billing.invalidate(id);
    actor.audit(
        state,
        "tenant.deletion_cancelled",
        id,
        json!({"status": tenant.status}),
    )?;
    Ok(tenant)
}

/// Purges the tenant now: its file (and WAL companions) first, then every
/// row naming it in `control.db`, so a failure part-way is finished by the
/// next attempt. Users stay; the platform audit keeps its rows.
pub fn purge(state: &Core, id: TenantId, actor: &Actor) -> Result<PurgedRows, DeletionError> {
    refuse_platform_tenant(state, id)?;
    if state.control.tenant(id)?.is_none() {
        return Err(DeletionError::NoSuchTenant(id));
    }
    state.tenancy.remove_file(id)?;
    let purged = state.control.purge_tenant_rows(id)?;
    state.billing.invalidate(id);
    state.authz_changed(id);
    crate::metering::forget_tenant(state, id);
    // Its custom domain's row went with the tenant; drop cached lookups too.
    state.hostnames.forget_all();
    actor.audit(
        state,
        "tenant.deleted",
        id,
        json!({"control_rows": purged.tables}),
    )?;
    Ok(purged)
}

/// One tenant a sweep tried to purge, and how it went.
pub type SweptTenant = (TenantId, Result<PurgedRows, DeletionError>);

/// Purges every tenant whose deletion is due; answers what was purged and
/// what failed (tried again at the next sweep).
pub fn sweep(state: &Core) -> Result<Vec<SweptTenant>, DeletionError> {
    let due = state
        .control
        .tenants_due_for_deletion(&malipo_foundations::time_util::now_rfc3339())?;
    let actor = Actor::system();
    Ok(due
        .into_iter()
        .map(|id| (id, purge(state, id, &actor)))
        .collect())
}

/// Sweeps forever, every `MALIPO_TENANT_DELETION_SWEEP_SECS` (default 60).
pub async fn worker(state: Arc<Core>) {
    let every = malipo_foundations::config::var("MALIPO_TENANT_DELETION_SWEEP_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_SWEEP_SECS)
        .max(1);
    loop {
        tokio::time::sleep(Duration::from_secs(every)).await;
        let state = Arc::clone(&state);
        let swept = tokio::task::spawn_blocking(move || sweep(&state)).await;
        match swept {
            Ok(Ok(results)) => {
                for (tenant, result) in results {
                    match result {
                        Ok(purged) => {
                            tracing::info!(%tenant, rows = purged.total(), "tenant deleted")
                        }
                        Err(error) => {
                            tracing::error!(%tenant, %error, "could not delete a due tenant")
                        }
                    }
                }
            }
            Ok(Err(error)) => tracing::error!(%error, "tenant deletion sweep failed"),
            Err(error) => tracing::error!(%error, "tenant deletion sweep panicked"),
        }
    }
}
