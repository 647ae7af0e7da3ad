//! Permission decisions. The rbac plugin's typed `authorize` answers them;
//! answers are cached per tenant and dropped when the tenant's roles change
//! (the cache key carries a per-tenant generation). Deny by default.

use std::sync::Arc;

use crate::app::AppState;
use crate::auth::{Credential, Principal};
use crate::error::{ApiError, blocking, current_request_id};
use crate::ids::{StoreId, TenantId, UserId};

/// The permission that lets a user use every store of the tenant.
pub const ACCESS_ALL_STORES: &str = "stores.access_all";

/// Cache key of one decision.
pub type DecisionKey = (TenantId, u64, UserId, String, Option<StoreId>);

/// Forgets every cached decision of a tenant.
pub fn invalidate(state: &AppState, tenant: TenantId) {
    if let Ok(mut generations) = state.authz_generations.lock() {
        *generations.entry(tenant).or_insert(0) += 1;
    }
}

fn generation(state: &AppState, tenant: TenantId) -> u64 {
    state
        .authz_generations
        .lock()
        .map(|g| g.get(&tenant).copied().unwrap_or(0))
        .unwrap_or(0)
}

/// May `user` use `permission` in `tenant` (at `store`, if given)?
pub async fn permitted(
    state: &Arc<AppState>,
    tenant: TenantId,
    user: UserId,
    permission: &str,
    store: Option<StoreId>,
) -> Result<bool, ApiError> {
    let key: DecisionKey = (
        tenant,
        generation(state, tenant),
        user,
        permission.to_string(),
        store,
    );
    if let Some(answer) = state.authz_cache.get(&key) {
        return Ok(answer);
    }
    let state_for_call = Arc::clone(state);
    let permission = permission.to_string();
    let request_id = current_request_id();
    let answer = blocking(move || {
        let db = state_for_call.tenancy.get(tenant)?;
        let store = store.map(|s| s.to_string());
        state_for_call
            .runtime
            .authorize(
                &db,
                &request_id,
                &user.to_string(),
                &permission,
                store.as_deref(),
            )
            .map_err(|error| ApiError::Unexpected(anyhow::anyhow!("authorize: {error}")))
    })
    .await?;
    state.authz_cache.insert(key, answer);
    Ok(answer)
}

/// Requires `permission` of the principal: its user must hold it here, and
/// an API key must also list it.
pub async fn require(
    state: &Arc<AppState>,
    principal: &Principal,
    permission: &str,
) -> Result<(), ApiError> {
    let tenant = principal.tenant()?;
    if let Credential::ApiKey { permissions, .. } = &principal.credential
        && !permissions.iter().any(|p| p == permission)
    {
        return Err(ApiError::Forbidden(format!(
            "this API key does not have the `{permission}` permission"
        )));
    }
    if permitted(
        state,
        tenant,
        principal.user_id,
        permission,
        principal.store_id,
    )
    .await?
    {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "you do not have the `{permission}` permission here"
        )))
    }
}

/// May `user` use `store`: it exists in this tenant, is active, and the
/// user holds `stores.access_all` or was added to it.
pub async fn may_use_store(
    state: &Arc<AppState>,
    tenant: TenantId,
    user: UserId,
    store: StoreId,
) -> Result<bool, ApiError> {
    let state_for_db = Arc::clone(state);
    let (exists, member) = blocking(move || {
        let db = state_for_db.tenancy.get(tenant)?;
        let conn = db.conn()?;
        let exists: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM stores WHERE id = ?1 AND status = 'active')",
            [store.to_string()],
            |row| row.get(0),
        )?;
        let member: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM store_members WHERE store_id = ?1 AND user_id = ?2)",
            [store.to_string(), user.to_string()],
            |row| row.get(0),
        )?;
        Ok((exists, member))
    })
    .await?;
    if !exists {
        return Ok(false);
    }
    Ok(member || permitted(state, tenant, user, ACCESS_ALL_STORES, None).await?)
}
