//! Permission decisions. The rbac plugin's typed `authorize` answers them;
//! answers are cached per tenant and dropped when the tenant's roles change
//! (the cache key carries a per-tenant generation). Deny by default.

/// The permission a credential needs to reach MCP at all (the host
/// defines it; the MCP channel refuses a credential without it with
/// `403 insufficient_scope`).
pub const MCP_PERMISSION: &str = "mcp.use";

use std::sync::Arc;

use crate::auth::{Credential, Principal};
use crate::core::Core;
use malipo_foundations::error::{ApiError, blocking, current_request_id};
use malipo_foundations::ids::{StoreId, TenantId, UserId};

/// The permission that lets a user use every store of the tenant.
pub const ACCESS_ALL_STORES: &str = "stores.access_all";

/// Cache key of one decision.
pub type DecisionKey = (TenantId, u64, UserId, String, Option<StoreId>);

fn generation(state: &Core, tenant: TenantId) -> u64 {
    state
        .authz_generations
        .lock()
        .map(|g| g.get(&tenant).copied().unwrap_or(0))
        .unwrap_or(0)
}

/// May `user` use `permission` in `tenant` (at `store`, if given)?
pub async fn permitted(
    state: &Arc<Core>,
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
    state: &Arc<Core>,
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
        return Ok(());
    }
    // A permission held only in some stores needs `X-Store-ID`: say so,
    // and name the stores the caller may use.
    match (&principal.store_id, &principal.allowed_stores) {
        (None, Some(stores)) if !stores.is_empty() => Err(ApiError::Forbidden(format!(
            "you do not have the `{permission}` permission without a store: no X-Store-ID header was sent; \
             send X-Store-ID with one of the stores you may use: {}",
            names(stores)
        ))),
        _ => Err(ApiError::Forbidden(format!(
            "you do not have the `{permission}` permission here"
        ))),
    }
}

/// A store the caller may use, as named in answers and messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsableStore {
    /// Its id.
    pub id: StoreId,
    /// Its name.
    pub name: String,
}

/// `Main (id), Branch (id)`, or `none` for an empty list.
pub fn names(stores: &[UsableStore]) -> String {
    if stores.is_empty() {
        return "none".into();
    }
    stores
        .iter()
        .map(|s| format!("{} ({})", s.name, s.id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The active stores of a tenant (oldest first), and those `user` was added to.
async fn stores_and_memberships(
    state: &Arc<Core>,
    tenant: TenantId,
    user: UserId,
) -> Result<(Vec<UsableStore>, Vec<StoreId>), ApiError> {
    let state = Arc::clone(state);
    blocking(move || {
        let db = state.tenancy.get(tenant)?;
        let conn = db.conn()?;
        let mut active = conn.prepare_cached(
            "SELECT id, name FROM stores WHERE status = 'active' ORDER BY created_at, id",
        )?;
        let stores = active
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter_map(|(id, name)| {
                Some(UsableStore {
                    id: StoreId::parse(&id)?,
                    name,
                })
            })
            .collect();
        let mut member =
            conn.prepare_cached("SELECT store_id FROM store_members WHERE user_id = ?1")?;
        let mine = member
            .query_map([user.to_string()], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .filter_map(|id| StoreId::parse(id))
            .collect();
        Ok((stores, mine))
    })
    .await
}

/// The active stores `user` may use in `tenant`: every one for holders of
/// `stores.access_all` (then `all` is true), else those they were added to.
pub async fn usable_stores(
    state: &Arc<Core>,
    tenant: TenantId,
    user: UserId,
) -> Result<(bool, Vec<UsableStore>), ApiError> {
    let all = permitted(state, tenant, user, ACCESS_ALL_STORES, None).await?;
    let (stores, mine) = stores_and_memberships(state, tenant, user).await?;
    Ok((
        all,
        stores
            .into_iter()
            .filter(|s| all || mine.contains(&s.id))
            .collect(),
    ))
}

/// The stores a principal may see and act in: `None` for holders of
/// `stores.access_all` (every store), else the active stores they were
/// added to. An API key is further confined to its own `store_ids`.
pub async fn scope_of(
    state: &Arc<Core>,
    tenant: TenantId,
    principal: &Principal,
) -> Result<Option<Vec<UsableStore>>, ApiError> {
    let all = permitted(state, tenant, principal.user_id, ACCESS_ALL_STORES, None).await?;
    let key_stores = match &principal.credential {
        Credential::ApiKey { guardrails, .. } => guardrails.store_ids.clone(),
        Credential::Session { .. } => None,
    };
    if all && key_stores.is_none() {
        return Ok(None);
    }
    let (stores, mine) = stores_and_memberships(state, tenant, principal.user_id).await?;
    Ok(Some(
        stores
            .into_iter()
            .filter(|s| all || mine.contains(&s.id))
            .filter(|s| {
                key_stores
                    .as_ref()
                    .is_none_or(|k| k.iter().any(|id| *id == s.id.to_string()))
            })
            .collect(),
    ))
}

/// Fills in the principal's store scope, once per request, and checks
/// `X-Store-ID` against it. Without the header, a caller who may use
/// exactly one store acts in it. A refused header says which stores the
/// caller may use.
pub async fn confine(
    state: &Arc<Core>,
    tenant: TenantId,
    principal: &mut Principal,
    header: Option<StoreId>,
) -> Result<(), ApiError> {
    let scope = scope_of(state, tenant, principal).await?;
    match (header, &scope) {
        (Some(store), Some(stores)) => {
            if !stores.iter().any(|s| s.id == store) {
                return Err(ApiError::Forbidden(format!(
                    "X-Store-ID names a store you may not use; the stores you may use are: {}",
                    names(stores)
                )));
            }
            principal.store_id = Some(store);
        }
        (Some(store), None) => {
            if !may_use_store(state, tenant, principal.user_id, store).await? {
                return Err(ApiError::Forbidden(
                    "X-Store-ID names a store you may not use: it is not an active store of this organization"
                        .into(),
                ));
            }
            principal.store_id = Some(store);
        }
        (None, Some(stores)) if stores.len() == 1 => {
            principal.store_id = stores.first().map(|s| s.id);
        }
        (None, _) => {}
    }
    principal.allowed_stores = scope;
    Ok(())
}

/// May `user` use `store`: it exists in this tenant, is active, and the
/// user holds `stores.access_all` or was added to it.
pub async fn may_use_store(
    state: &Arc<Core>,
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

/// A call context for the host's own calls into plugins.
pub fn system_ctx(
    tenant: TenantId,
    user: Option<UserId>,
    meta: &crate::core::operation::RequestMeta,
) -> malipo_runtime::plugins::bindings::CallContext {
    malipo_runtime::plugins::host_context(
        tenant,
        user.map(|u| u.to_string()),
        "system",
        meta.request_id.clone(),
    )
}

/// Calls an internal operation of the rbac (authorizing) plugin.
pub async fn rbac(
    state: &Arc<Core>,
    tenant: TenantId,
    as_user: Option<UserId>,
    operation: &str,
    input: serde_json::Value,
    meta: &crate::core::operation::RequestMeta,
) -> Result<serde_json::Value, ApiError> {
    let plugin = state
        .runtime
        .authorizer_plugin()
        .map(|p| p.manifest.name.clone())
        .ok_or_else(|| ApiError::Unavailable("no authorization plugin is loaded".into()))?;
    let read_only = matches!(operation, "users.access" | "roles.assignable");
    crate::core::plugin_call::call_plugin(
        state,
        tenant,
        &plugin,
        operation,
        system_ctx(tenant, as_user, meta),
        input,
        read_only,
        None,
        None,
    )
    .await
}
