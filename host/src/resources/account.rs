//! `/me` and `/tenant`: the caller's own account and organization.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::control::{TenantRecord, UserRecord};
use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Access, Op, Operation};
use crate::error::{ApiError, blocking};
use crate::json_schema::{nullable, object, uuid};
use crate::resources::support::{access_of, hash_password, name, new_password};

/// `GET /me`: user, tenant, roles and effective permissions.
pub async fn me(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?.clone();
    let state_for_db = Arc::clone(&state);
    let (user, tenant) = blocking(move || {
        let user = state_for_db
            .control
            .user(principal.user_id)?
            .ok_or_else(ApiError::unauthenticated)?;
        let tenant = match principal.tenant_id {
            Some(id) => state_for_db.control.tenant(id)?,
            None => None,
        };
        Ok((user, tenant))
    })
    .await?;
    let principal = call.principal()?;
    let access = match principal.tenant_id {
        Some(tenant) => {
            access_of(
                &state,
                tenant,
                principal.user_id,
                principal.store_id,
                &call.meta,
            )
            .await?
        }
        None => json!({"roles": [], "permissions": []}),
    };
    let mut permissions = access["permissions"].clone();
    if let crate::auth::Credential::ApiKey {
        permissions: key_permissions,
        ..
    } = &principal.credential
        && let Some(list) = permissions.as_array()
    {
        permissions = json!(
            list.iter()
                .filter(|p| key_permissions
                    .iter()
                    .any(|k| Some(k.as_str()) == p.as_str()))
                .collect::<Vec<_>>()
        );
    }
    // The stores usable with this credential here (the values
    // X-Store-ID accepts), and every organization of the user.
    let stores = match (principal.tenant_id, &principal.allowed_stores) {
        (Some(_), Some(stores)) => crate::resources::memberships::stores_json(stores),
        (Some(tenant), None) => crate::resources::memberships::stores_json(
            &crate::core::authz::usable_stores(&state, tenant, principal.user_id)
                .await?
                .1,
        ),
        (None, _) => json!([]),
    };
    let memberships =
        crate::resources::memberships::of_user(&state, principal.user_id, &call.meta).await?;
    Ok(json!({
        "user": user.public_json(),
        "tenant": tenant.map(|t| t.public_json()),
        "store_id": principal.store_id,
        "roles": access["roles"],
        "permissions": permissions,
        "all_stores": principal.tenant_id.is_some() && principal.allowed_stores.is_none(),
        "stores": stores,
        "memberships": memberships,
    }))
}

/// `PATCH /me`: change name; change password with the current one, which
/// ends every other session.
pub async fn update_me(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?.clone();
    let full_name = call
        .opt_str_field("full_name")?
        .map(|n| name(&n, "full_name", 120))
        .transpose()?;
    let password = call
        .opt_str_field("password")?
        .map(|p| new_password(&p))
        .transpose()?;
    let current = call.opt_str_field("current_password")?;
    if full_name.is_none() && password.is_none() {
        return Err(ApiError::Validation(
            "give `full_name` or `password` to change".into(),
        ));
    }
    let new_hash = match &password {
        Some(password) => Some(hash_password(password.clone()).await?),
        None => None,
    };
    let state_for_db = Arc::clone(&state);
    let user = blocking(move || {
        let state = state_for_db;
        let user = state
            .control
            .user(principal.user_id)?
            .ok_or_else(ApiError::unauthenticated)?;
        if let Some(hash) = &new_hash {
            let current = current.ok_or_else(|| {
                ApiError::Validation("`current_password` is required to change the password".into())
            })?;
            if !crate::passwords::verify(&current, &user.password_hash) {
                return Err(ApiError::Forbidden(
                    "the current password is incorrect".into(),
                ));
            }
            state.control.set_password(user.id, hash)?;
            state.control.revoke_user_sessions(
                user.id,
                principal.session_id(),
                "password_changed",
            )?;
        }
        if let Some(full_name) = &full_name {
            state.control.set_full_name(user.id, full_name)?;
            if let Some(tenant) = principal.tenant_id {
                let db = state.tenancy.get(tenant)?;
                db.conn()?.execute(
                    "UPDATE members SET full_name = ?2 WHERE user_id = ?1",
                    [user.id.to_string(), full_name.clone()],
                )?;
            }
        }
        state
            .control
            .user(user.id)?
            .ok_or_else(ApiError::unauthenticated)
    })
    .await?;
    Ok(json!({"user": user.public_json()}))
}

/// `GET /tenant`.
pub async fn tenant(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let id = call.principal()?.tenant()?;
    let tenant = blocking(move || Ok(state.control.tenant(id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(tenant.public_json())
}

/// `PATCH /tenant`: rename the organization.
pub async fn update_tenant(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let id = call.principal()?.tenant()?;
    let new_name = name(&call.str_field("name")?, "name", 120)?;
    let tenant = blocking(move || {
        state.control.rename_tenant(id, &new_name)?;
        Ok(state.control.tenant(id)?)
    })
    .await?
    .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(tenant.public_json())
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    let str_ = json!({"type": "string"});
    vec![
        Op::get("/me", "me.get")
            .summary("The caller: user, tenant, roles and effective permissions; `stores` (the stores usable here: \
                             the values X-Store-ID accepts), `all_stores` (true for every store), and `memberships` (every \
                             organization of the user, with roles and usable stores).")
            .output(json!({"type": "object", "properties": {
                "user": UserRecord::public_schema(),
                "tenant": nullable(TenantRecord::public_schema()),
                "store_id": nullable(uuid()),
                "roles": {"type": "array"},
                "permissions": {"type": "array", "items": {"type": "string"}},
                "all_stores": {"type": "boolean"},
                "stores": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}},
                "memberships": super::memberships::schema()
            }}))
            .access(Access::Authenticated)
            .handle(me),
        Op::patch("/me", "me.update")
            .summary("Change the caller's name, or password (with `current_password`; ends the other sessions).")
            .input(object(
                &[],
                json!({"full_name": str_, "password": str_, "current_password": str_}),
            ))
            .output(object(&["user"], json!({"user": UserRecord::public_schema()})))
            .access(Access::Authenticated)
            .handle(update_me),
        Op::get("/tenant", "tenant.get")
            .permission("tenant.read")
            .summary("The caller's organization.")
            .output(TenantRecord::public_schema())
            .handle(tenant),
        Op::patch("/tenant", "tenant.update")
            .permission("tenant.update")
            .summary("Rename the caller's organization.")
            .input(object(&["name"], json!({"name": str_})))
            .output(TenantRecord::public_schema())
            .handle(update_tenant),
    ]
}
