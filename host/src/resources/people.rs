//! `/users` and `/invitations`: the tenant's people.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::control::{Invitation, UserRecord};
use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Access, Op, Operation};
use crate::error::{ApiError, blocking};
use crate::ids::{StoreId, UserId};
use crate::json_schema::{nullable, object, uuid};
use crate::resources::support;
use crate::resources::support::{
    access_of, email, hash_password, issue_tokens, merged, name, new_password,
};
use crate::time_util::{now_rfc3339, unix_now};

fn member_json(user: &UserRecord, status: &str) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "full_name": user.full_name,
        "status": status,
        "created_at": user.created_at,
    })
}

/// The JSON Schema of [`member_json`].
fn member_schema() -> Value {
    let text = json!({"type": "string"});
    object(
        &["id", "email", "full_name", "status", "created_at"],
        json!({
            "id": uuid(),
            "email": text,
            "full_name": {"type": "string", "description": "The organization's name for them, else their own."},
            "status": {"type": "string", "enum": ["active", "deactivated"], "description": "Their standing in this organization."},
            "created_at": {"type": "string", "description": "When their account was made."},
        }),
    )
}

/// The answer of `POST /invitations` (never the token: it is emailed).
fn invitation_schema() -> Value {
    let text = json!({"type": "string"});
    object(
        &[
            "id",
            "email",
            "role_id",
            "role_name",
            "store_id",
            "expires_at",
        ],
        json!({
            "id": uuid(),
            "email": text,
            // The role's id as the caller sent it: the rbac plugin trims it
            // when it looks the role up, so the echo is not always a bare UUID.
            "role_id": text,
            "role_name": text,
            "store_id": nullable(uuid()),
            "expires_at": nullable(text.clone()),
        }),
    )
}

/// `GET /users`.
pub async fn list(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    let members = blocking(move || Ok(state.control.members_of(tenant)?)).await?;
    Ok(
        json!({"users": members.iter().map(|(user, status)| member_json(user, status)).collect::<Vec<_>>()}),
    )
}

/// `PATCH /users/{id}` `{status?, full_name?}`: deactivating a member ends
/// their sessions' and keys' access at the next request.
pub async fn update(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?.clone();
    let tenant = principal.tenant()?;
    let target =
        UserId::parse(&call.str_field("id")?).ok_or_else(|| ApiError::not_found("user"))?;
    let status = call.opt_str_field("status")?;
    if let Some(status) = &status
        && status != "active"
        && status != "deactivated"
    {
        return Err(ApiError::Validation(
            "`status` must be `active` or `deactivated`".into(),
        ));
    }
    let full_name = call
        .opt_str_field("full_name")?
        .map(|n| name(&n, "full_name", 120))
        .transpose()?;
    if status.is_none() && full_name.is_none() {
        return Err(ApiError::Validation(
            "give `status` or `full_name` to change".into(),
        ));
    }
    let state_for_db = Arc::clone(&state);
    let is_member =
        blocking(move || Ok(state_for_db.control.standing(target, tenant)?.is_some())).await?;
    if !is_member {
        return Err(ApiError::not_found("user"));
    }
    if status.is_some() {
        if target == principal.user_id {
            return Err(ApiError::Conflict(
                "you cannot change your own status".into(),
            ));
        }
        let target_access = access_of(&state, tenant, target, None, &call.meta).await?;
        let caller_access = access_of(&state, tenant, principal.user_id, None, &call.meta).await?;
        if target_access["is_owner"] == json!(true) && caller_access["is_owner"] != json!(true) {
            return Err(ApiError::Forbidden(
                "only an Owner may change an Owner's status".into(),
            ));
        }
    }
    let entry = call.audit.clone();
    let audited = call.audited.clone();
    let user = blocking(move || {
        if let Some(status) = &status {
            state
                .control
                .set_membership_status(target, tenant, status)?;
        }
        // A user's global name is theirs alone; an administrator's
        // rename of someone else is this organization's name for them.
        if let Some(full_name) = &full_name {
            if target == principal.user_id {
                state.control.set_full_name(target, full_name)?;
                state.control.set_display_name(target, tenant, None)?;
            } else {
                state
                    .control
                    .set_display_name(target, tenant, Some(full_name))?;
            }
        }
        let db = state.tenancy.get(tenant)?;
        let mut conn = db.conn()?;
        let tx = conn.transaction()?;
        if let Some(status) = &status {
            tx.execute(
                "UPDATE members SET status = ?2 WHERE user_id = ?1",
                [target.to_string(), status.clone()],
            )?;
        }
        if let Some(full_name) = &full_name {
            tx.execute(
                "UPDATE members SET full_name = ?2 WHERE user_id = ?1",
                [target.to_string(), full_name.clone()],
            )?;
        }
        crate::audit::write(&tx, &entry)?;
        tx.commit()?;
        audited.store(true, std::sync::atomic::Ordering::SeqCst);
        let members = state.control.members_of(tenant)?;
        members
            .iter()
            .find(|(user, _)| user.id == target)
            .map(|(user, status)| member_json(user, status))
            .ok_or_else(|| ApiError::not_found("user"))
    })
    .await?;
    Ok(user)
}

/// `POST /invitations` `{email, role_id, store_id?}`: the token is emailed
/// by the host (`crate::platform_mail`), never answered and never written to
/// the organization's file.
pub async fn invite(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?.clone();
    let tenant = principal.tenant()?;
    let invitee = email(&call.str_field("email")?)?;
    let role_id = call.str_field("role_id")?;
    let store_id = call.opt_str_field("store_id")?;
    if let Some(store) = &store_id {
        let store = StoreId::parse(store).ok_or_else(|| ApiError::not_found("store"))?;
        if !principal.may_see_store(Some(&store.to_string()))
            || !crate::core::authz::may_use_store(&state, tenant, principal.user_id, store).await?
        {
            return Err(ApiError::not_found("store"));
        }
    }
    // The inviter may only hand out what they hold themselves.
    let role = crate::core::authz::rbac(
        &state,
        tenant,
        Some(principal.user_id),
        "roles.assignable",
        json!({"role_id": role_id, "store_id": store_id}),
        &call.meta,
    )
    .await?;
    // With an API key, the key's permissions bound what it hands out.
    crate::core::guardrails::check_key_grant(&principal, &role["role"])?;
    let invitation = Invitation {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant,
        email: invitee,
        role_id,
        store_id,
        expires_at: unix_now() + state.config.invitation_ttl.as_secs() as i64,
    };
    let answer = json!({
        "id": invitation.id,
        "email": invitation.email,
        "role_id": invitation.role_id,
        "role_name": role["role"]["name"],
        "store_id": invitation.store_id,
        "expires_at": time::OffsetDateTime::from_unix_timestamp(invitation.expires_at)
            .ok()
            .map(crate::time_util::format_rfc3339),
    });
    blocking(move || {
        let inviter = state
            .control
            .user(principal.user_id)?
            .map(|user| user.full_name)
            .unwrap_or_default();
        let token = state
            .control
            .create_invitation(&invitation, principal.user_id)?;
        // The host's own message from the platform's template, dressed
        // in the organization's branding; the token never enters the
        // organization's file (no event, no email row there).
        let branding = crate::platform_mail::branding_of(&state, tenant);
        let (mail, html) = crate::platform_mail::invitation(
            &invitation.email,
            &inviter,
            role["role"]["name"].as_str().unwrap_or(""),
            &support::public_link(&state, "accept-invitation", &token),
            &token,
            &time::OffsetDateTime::from_unix_timestamp(invitation.expires_at)
                .ok()
                .map(crate::time_util::format_rfc3339)
                .unwrap_or_default(),
            &branding,
        );
        crate::platform_mail::queue(&state, &mail, &html, Some(tenant))?;
        Ok(())
    })
    .await?;
    Ok(answer)
}

/// `POST /invitations/accept` `{token, password, full_name}`: joins the
/// tenant (creating the account if the email has none) and logs in.
pub async fn accept(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let token = call.str_field("token")?;
    let password = call.str_field("password")?;
    let full_name = call.opt_str_field("full_name")?;
    let state_for_db = Arc::clone(&state);
    let found = blocking(move || {
        let Some(invitation) = state_for_db.control.pending_invitation(&token)? else {
            return Ok(None);
        };
        let user = state_for_db.control.user_by_email(&invitation.email)?;
        Ok(Some((invitation, user)))
    })
    .await?;
    let (invitation, existing) = found.ok_or_else(|| {
        ApiError::BadRequest("the invitation is invalid, expired or already used".into())
    })?;
    let user = match existing {
        Some(user) => {
            let hash = user.password_hash.clone();
            let candidate = password.clone();
            let ok = blocking(move || Ok(crate::passwords::verify(&candidate, &hash))).await?;
            if !ok {
                return Err(ApiError::Unauthorized(
                    "an account exists for this email: give its current password to accept".into(),
                ));
            }
            user
        }
        None => {
            let full_name = name(
                &full_name.ok_or_else(|| ApiError::Validation("`full_name` is required".into()))?,
                "full_name",
                120,
            )?;
            let user = UserRecord {
                id: UserId::new(),
                email: invitation.email.clone(),
                full_name,
                password_hash: hash_password(new_password(&password)?).await?,
                is_super_admin: false,
                status: "active".into(),
                created_at: now_rfc3339(),
            };
            let state_for_db = Arc::clone(&state);
            let record = user.clone();
            if !blocking(move || Ok(state_for_db.control.create_user(&record)?)).await? {
                return Err(ApiError::Conflict(
                    "an account with this email was just created; try again".into(),
                ));
            }
            user
        }
    };
    let tenant = invitation.tenant_id;
    let state_for_db = Arc::clone(&state);
    let joining = user.clone();
    let invitation_id = invitation.id.clone();
    let store = invitation.store_id.clone();
    let mut entry = call.audit.clone();
    entry.actor_type = "user".into();
    entry.actor_id = Some(user.id.to_string());
    let tenant_record = blocking(move || {
        let state = state_for_db;
        // A member an administrator deactivated stays deactivated: an
        // invitation (even one sent before) does not reactivate them.
        let deactivated = state
            .control
            .memberships_of(joining.id)?
            .iter()
            .any(|m| m.tenant_id == tenant && m.status != "active");
        if deactivated {
            return Err(ApiError::Forbidden(
                "your membership of this organization was deactivated; only an administrator can reactivate it"
                    .into(),
            ));
        }
        if !state.control.accept_invitation(&invitation_id)? {
            return Err(ApiError::BadRequest("the invitation is invalid, expired or already used".into()));
        }
        state.control.add_membership(joining.id, tenant)?;
        state.control.set_membership_status(joining.id, tenant, "active")?;
        let db = state.tenancy.get(tenant)?;
        let mut conn = db.conn()?;
        let tx = conn.transaction()?;
        let now = now_rfc3339();
        tx.execute(
            "INSERT INTO members (user_id, email, full_name, status, joined_at) VALUES (?1, ?2, ?3, 'active', ?4)
             ON CONFLICT (user_id) DO UPDATE SET status = 'active'",
            rusqlite::params![joining.id.to_string(), joining.email, joining.full_name, now],
        )?;
        if let Some(store) = &store {
            tx.execute(
                "INSERT INTO store_members (store_id, user_id, added_at) SELECT ?1, ?2, ?3
                  WHERE EXISTS (SELECT 1 FROM stores WHERE id = ?1)
                 ON CONFLICT (store_id, user_id) DO NOTHING",
                rusqlite::params![store, joining.id.to_string(), now],
            )?;
        }
        crate::audit::write(&tx, &entry)?;
        tx.commit()?;
        state.control.tenant(tenant)?.ok_or_else(|| ApiError::not_found("tenant"))
    })
    .await?;
    call.mark_audited();
    crate::core::authz::rbac(
        &state,
        tenant,
        None,
        "assignments.grant",
        json!({"user_id": user.id, "role_id": invitation.role_id, "store_id": invitation.store_id}),
        &call.meta,
    )
    .await?;
    let tokens = issue_tokens(&state, user.id, Some(tenant)).await?;
    Ok(merged(
        json!({"user": user.public_json(), "tenant": tenant_record.public_json()}),
        tokens,
    ))
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    let str_ = json!({"type": "string"});
    vec![
        Op::get("/users", "users.list")
            .permission("users.read")
            .summary("The organization's people.")
            .output(object(
                &["users"],
                json!({"users": {"type": "array", "items": member_schema()}}),
            ))
            .handle(list),
        Op::patch("/users/{id}", "users.update")
            .permission("users.update")
            .summary("Deactivate or reactivate a member (their tokens and keys stop at once), or rename them.")
            .input(object(
                &["id"],
                json!({"id": uuid(), "status": {"type": "string", "enum": ["active", "deactivated"]}, "full_name": str_}),
            ))
            .output(member_schema())
            .handle(update),
        Op::post("/invitations", "invitations.create")
            .permission("invitations.create")
            .summary("Invite someone by email with a role (and optionally a store). The token is emailed.")
            .input(object(
                &["email", "role_id"],
                json!({"email": str_, "role_id": uuid(), "store_id": uuid()}),
            ))
            .output(invitation_schema())
            .status(201)
            .tag("users")
            .handle(invite),
        Op::post("/invitations/accept", "invitations.accept")
            .summary("Accept an invitation: join the organization (creating the account if needed) and log in.")
            .input(object(
                &["token", "password"],
                json!({"token": str_, "password": str_, "full_name": str_}),
            ))
            .output(super::auth::token_schema())
            .access(Access::Public)
            .tag("users")
            .handle(accept),
    ]
}
