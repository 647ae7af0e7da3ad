//! `/me` and `/tenant`: the caller's own account and organization.

use std::sync::Arc;

use serde_json::json;

use super::support::{access_of, hash_password, name, new_password};
use crate::api::operation::{HostCall, HostFuture};
use crate::app::AppState;
use crate::error::{ApiError, blocking};

/// `GET /me`: user, tenant, roles and effective permissions.
pub fn me(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
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
            (Some(_), Some(stores)) => super::memberships::stores_json(stores),
            (Some(tenant), None) => super::memberships::stores_json(
                &crate::api::authz::usable_stores(&state, tenant, principal.user_id)
                    .await?
                    .1,
            ),
            (None, _) => json!([]),
        };
        let memberships =
            super::memberships::of_user(&state, principal.user_id, &call.meta).await?;
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
    })
}

/// `PATCH /me`: change name; change password with the current one, which
/// ends every other session.
pub fn update_me(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
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
                    ApiError::Validation(
                        "`current_password` is required to change the password".into(),
                    )
                })?;
                if !crate::auth::password::verify(&current, &user.password_hash) {
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
    })
}

/// `GET /tenant`.
pub fn tenant(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
        let id = call.principal()?.tenant()?;
        let tenant = blocking(move || Ok(state.control.tenant(id)?))
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        Ok(tenant.public_json())
    })
}

/// `PATCH /tenant`: rename the organization.
pub fn update_tenant(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
        let id = call.principal()?.tenant()?;
        let new_name = name(&call.str_field("name")?, "name", 120)?;
        let tenant = blocking(move || {
            state.control.rename_tenant(id, &new_name)?;
            Ok(state.control.tenant(id)?)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
        Ok(tenant.public_json())
    })
}
