//! The organizations a person belongs to, and the stores they may use in
//! each: answered by `GET /me` and the login answer, so that people in
//! several organizations can find them (and pick one with `tenant_id` at
//! login) and know which `X-Store-ID` values they may send.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::core::Core;
use crate::core::authz;
use crate::core::authz::UsableStore;
use crate::core::operation::RequestMeta;
use crate::error::{ApiError, blocking};
use crate::ids::{TenantId, UserId};
use crate::resources::support::access_of;

/// `[{id, name}]` of stores.
pub fn stores_json(stores: &[UsableStore]) -> Value {
    json!(
        stores
            .iter()
            .map(|s| json!({"id": s.id, "name": s.name}))
            .collect::<Vec<_>>()
    )
}

/// One organization of the user: the organization, the user's roles in it
/// (`{role_id, role_name, store_id}`: a role of one store has its id), the
/// stores they may use there, and whether that is every store
/// (`all_stores`, from `stores.access_all`).
async fn membership(
    state: &Arc<Core>,
    tenant: TenantId,
    user: UserId,
    meta: &RequestMeta,
) -> Result<Value, ApiError> {
    let state_for_db = Arc::clone(state);
    let record = blocking(move || Ok(state_for_db.control.tenant(tenant)?)).await?;
    let Some(record) = record else {
        return Ok(Value::Null);
    };
    let access = access_of(state, tenant, user, None, meta).await?;
    let (all, stores) = authz::usable_stores(state, tenant, user).await?;
    Ok(json!({
        "tenant": {"id": record.id, "name": record.name, "slug": record.slug, "status": record.status},
        "roles": access["roles"],
        "all_stores": all,
        "stores": stores_json(&stores),
    }))
}

/// Every active membership of the user, oldest first, with roles and
/// usable stores. An organization that cannot answer (its file is being
/// restored, say) is listed without them rather than failing the call.
pub async fn of_user(
    state: &Arc<Core>,
    user: UserId,
    meta: &RequestMeta,
) -> Result<Value, ApiError> {
    let state_for_db = Arc::clone(state);
    let memberships = blocking(move || Ok(state_for_db.control.memberships_of(user)?)).await?;
    let mut answer = Vec::new();
    for m in memberships.into_iter().filter(|m| m.status == "active") {
        match membership(state, m.tenant_id, user, meta).await {
            Ok(Value::Null) => {}
            Ok(value) => answer.push(value),
            Err(error) => {
                tracing::warn!(tenant = %m.tenant_id, ?error, "could not read a membership");
                answer.push(json!({"tenant": {"id": m.tenant_id}, "roles": [], "all_stores": false, "stores": []}));
            }
        }
    }
    Ok(Value::Array(answer))
}

/// The JSON Schema of `memberships`.
pub fn schema() -> Value {
    json!({
        "type": "array",
        "description": "The organizations the user belongs to (oldest first), with their roles and the stores they may use in each; log in with `tenant_id` to choose one.",
        "items": {"type": "object", "properties": {
            "tenant": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "slug": {"type": "string"}, "status": {"type": "string"}}},
            "roles": {"type": "array", "items": {"type": "object", "properties": {
                "role_id": {"type": "string"}, "role_name": {"type": "string"}, "store_id": {"type": ["string", "null"]}
            }}},
            "all_stores": {"type": "boolean", "description": "True when the user may use every store (`stores.access_all`)."},
            "stores": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}},
                       "description": "Active stores the user may use: the values X-Store-ID accepts."}
        }}
    })
}
