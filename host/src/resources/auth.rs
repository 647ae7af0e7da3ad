//! `/auth/*`: register, login, refresh, logout, forgot and reset password.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::control::{RefreshOutcome, TenantRecord, UserRecord};
use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Access, Op, Operation};
use crate::error::{ApiError, blocking};
use crate::ids::{TenantId, UserId};
use crate::json_schema::{nullable, object, uuid};
use crate::resources::support;
use crate::resources::support::{email, hash_password, issue_tokens, merged, name, new_password};
use crate::time_util::now_rfc3339;

/// The one answer to a failed login, whatever failed.
fn bad_login() -> ApiError {
    ApiError::Unauthorized("email or password is incorrect".into())
}

/// `POST /auth/register`.
pub async fn register(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let email = email(&call.str_field("email")?)?;
    let password = new_password(&call.str_field("password")?)?;
    let full_name = name(&call.str_field("full_name")?, "full_name", 120)?;
    let organization = name(
        &call.str_field("organization_name")?,
        "organization_name",
        120,
    )?;
    let plan = crate::billing::chosen_plan(&state, call.opt_str_field("plan_id")?)?;
    let user = UserRecord {
        id: UserId::new(),
        email,
        full_name,
        password_hash: hash_password(password).await?,
        is_super_admin: false,
        status: "active".into(),
        created_at: now_rfc3339(),
    };
    let tenant =
        support::provision_tenant(&state, &organization, &user, true, &call.meta, None).await?;
    crate::billing::start_subscription(&state, tenant.id, plan).await?;
    let tokens = issue_tokens(&state, user.id, Some(tenant.id)).await?;
    Ok(merged(
        json!({"user": user.public_json(), "tenant": crate::billing::tenant_json(&state, &tenant).await}),
        tokens,
    ))
}

/// `POST /auth/login`. On a custom domain (a `Host` an organization
/// claimed) the login binds to that organization: without `tenant_id` it is
/// chosen, and a `tenant_id` naming another is refused (403
/// `tenant_host_mismatch`), so a token made on an organization's own
/// address is always that organization's.
pub async fn login(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let email = call.str_field("email")?.trim().to_lowercase();
    let password = call.str_field("password")?;
    let wanted = call.opt_str_field("tenant_id")?;
    let on_host = crate::resources::domains::host_tenant(&state, &call.meta).await?;
    let wanted = match (wanted, on_host) {
        (Some(wanted), Some(host))
            if TenantId::parse(&wanted).is_none_or(|wanted| wanted != host) =>
        {
            return Err(ApiError::Coded {
                status: axum::http::StatusCode::FORBIDDEN,
                code: "tenant_host_mismatch",
                message: "this address belongs to another organization; sign in there, or at the platform's own address".into(),
            });
        }
        (wanted, host) => wanted.or_else(|| host.map(|h| h.to_string())),
    };
    let state_for_check = Arc::clone(&state);
    // Unknown users are checked against a dummy hash so that both
    // failures take the same time.
    let (user, failed_in) = blocking(move || {
        let user = state_for_check.control.user_by_email(&email)?;
        let hash = user
            .as_ref()
            .map_or(state_for_check.dummy_hash.as_str(), |u| {
                u.password_hash.as_str()
            });
        let verified = crate::passwords::verify(&password, hash);
        // A wrong password for a known user counts towards each of its
        // organizations' failed sign-ins (crate::alerts::service).
        let failed_in: Vec<TenantId> = match &user {
            Some(user) if !verified => state_for_check
                .control
                .memberships_of(user.id)?
                .into_iter()
                .filter(|m| m.status == "active")
                .map(|m| m.tenant_id)
                .collect(),
            _ => Vec::new(),
        };
        Ok((user.filter(|u| verified && u.status == "active"), failed_in))
    })
    .await?;
    for tenant in failed_in {
        crate::alerts::service::observe(&state, tenant, crate::alerts::service::Kind::FailedLogins);
    }
    let user = user.ok_or_else(bad_login)?;
    let tenant = choose_tenant(&state, &user, wanted.as_deref()).await?;
    let tokens = issue_tokens(&state, user.id, tenant.as_ref().map(|t| t.id)).await?;
    // Every organization of the user, so that one signed in to the
    // oldest can find (and log in with `tenant_id` to) the others.
    let memberships = crate::resources::memberships::of_user(&state, user.id, &call.meta).await?;
    Ok(merged(
        json!({
            "user": user.public_json(),
            "tenant": tenant.map(|t| t.public_json()),
            "memberships": memberships,
        }),
        tokens,
    ))
}

/// The tenant a login binds to: the one asked for, or the user's oldest
/// active membership; none for a super-admin without memberships.
async fn choose_tenant(
    state: &Arc<Core>,
    user: &UserRecord,
    wanted: Option<&str>,
) -> Result<Option<crate::control::TenantRecord>, ApiError> {
    let wanted = match wanted {
        Some(text) => Some(TenantId::parse(text).ok_or_else(|| {
            ApiError::Forbidden("you are not a member of that organization".into())
        })?),
        None => None,
    };
    let state = Arc::clone(state);
    let user = user.clone();
    blocking(move || {
        let memberships = state.control.memberships_of(user.id)?;
        let candidates: Vec<TenantId> = memberships
            .iter()
            .filter(|m| m.status == "active" && wanted.is_none_or(|w| w == m.tenant_id))
            .map(|m| m.tenant_id)
            .collect();
        let mut suspended = false;
        let mut pending_deletion = false;
        for id in candidates {
            if let Some(tenant) = state.control.tenant(id)? {
                if tenant.status == "active" && !tenant.pending_deletion() {
                    return Ok(Some(tenant));
                }
                suspended = true;
                pending_deletion |= tenant.pending_deletion();
            }
        }
        if pending_deletion {
            Err(ApiError::TenantPendingDeletion(
                "this organization is scheduled for deletion; contact the platform operator".into(),
            ))
        } else if suspended {
            Err(ApiError::TenantSuspended(
                "this organization is suspended; contact the platform operator".into(),
            ))
        } else if wanted.is_some() {
            Err(ApiError::Forbidden(
                "you are not a member of that organization".into(),
            ))
        } else if user.is_super_admin {
            Ok(None)
        } else {
            Err(ApiError::Forbidden(
                "you are not an active member of any organization".into(),
            ))
        }
    })
    .await
}

/// `POST /auth/refresh`.
pub async fn refresh(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let presented = call.str_field("refresh_token")?;
    let state_for_db = Arc::clone(&state);
    let value = blocking(move || {
        let state = state_for_db;
        let ttl = state.config.refresh_token_ttl.as_secs() as i64;
        match state.control.rotate_refresh(&presented, ttl)? {
            RefreshOutcome::Rotated {
                session_id,
                user_id,
                tenant_id,
                refresh_token,
            } => {
                let user = state
                    .control
                    .user(user_id)?
                    .filter(|u| u.status == "active");
                let standing_ok = match tenant_id {
                    Some(tenant) => state
                        .control
                        .standing(user_id, tenant)?
                        .is_some_and(|s| s.admits()),
                    None => true,
                };
                if user.is_none() || !standing_ok {
                    state
                        .control
                        .revoke_session(&session_id, "membership_ended")?;
                    return Err(ApiError::unauthenticated());
                }
                let access = state
                    .jwt
                    .issue(
                        &user_id.to_string(),
                        tenant_id.map(|t| t.to_string()).as_deref(),
                        &session_id,
                    )
                    .map_err(ApiError::Unexpected)?;
                Ok(json!({
                    "access_token": access,
                    "refresh_token": refresh_token,
                    "token_type": "Bearer",
                    "expires_in": state.jwt.ttl_secs(),
                }))
            }
            RefreshOutcome::Reused => Err(ApiError::Unauthorized(
                "this refresh token was already used; the session has been ended — log in again"
                    .into(),
            )),
            RefreshOutcome::Invalid => Err(ApiError::unauthenticated()),
        }
    })
    .await?;
    Ok(value)
}

/// `POST /auth/logout`: ends the caller's session.
pub async fn logout(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?.clone();
    let Some(session) = principal.session_id().map(str::to_string) else {
        return Err(ApiError::BadRequest(
            "API keys have no session; delete the key instead".into(),
        ));
    };
    blocking(move || Ok(state.control.revoke_session(&session, "logout")?)).await?;
    Ok(json!({"logged_out": true}))
}

/// `POST /auth/forgot-password`: always 202 at once; the work happens in
/// the background, so neither the answer nor its timing says whether the
/// account exists. The token is emailed by the host itself
/// (`crate::platform_mail`, platform template, branded like the user's oldest
/// organization); it never enters a tenant's file.
pub async fn forgot_password(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let email = call.str_field("email")?.trim().to_lowercase();
    tokio::spawn(async move {
        let outcome = blocking(move || {
            let Some(user) = state.control.user_by_email(&email)? else {
                return Ok(());
            };
            if user.status != "active" {
                return Ok(());
            }
            let ttl = state.config.reset_token_ttl.as_secs() as i64;
            let token = state.control.create_password_reset(user.id, ttl)?;
            // The host's own message from the platform's template: the
            // user's oldest organization only lends its branding, and
            // nothing of it (no event, no row) enters a tenant's file.
            let home = support::home_tenant(&state, user.id)?;
            let branding = home
                .map(|tenant| crate::platform_mail::branding_of(&state, tenant))
                .unwrap_or_default();
            let (mail, html) = crate::platform_mail::password_reset(
                &user.email,
                &user.full_name,
                &support::public_link(&state, "reset-password", &token),
                &token,
                &support::rfc3339_in(ttl).unwrap_or_default(),
                &branding,
            );
            crate::platform_mail::queue(&state, &mail, &html, home)?;
            Ok(())
        })
        .await;
        if let Err(error) = outcome {
            tracing::error!(?error, "could not prepare a password reset");
        }
    });
    Ok(json!({"message": "if an account exists for that email, a reset token has been sent to it"}))
}

/// `POST /auth/reset-password`.
pub async fn reset_password(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let token = call.str_field("token")?;
    let password = new_password(&call.str_field("password")?)?;
    let hash = hash_password(password).await?;
    let user = blocking(move || Ok(state.control.consume_password_reset(&token, &hash)?)).await?;
    match user {
        Some(_) => Ok(json!({"reset": true})),
        None => Err(ApiError::BadRequest(
            "the reset token is invalid, expired or already used".into(),
        )),
    }
}

/// The JSON Schema of an auth response.
pub fn token_schema() -> Value {
    json!({
        "type": "object",
        "required": ["access_token", "refresh_token", "token_type", "expires_in"],
        "properties": {
            "user": UserRecord::public_schema(),
            "tenant": nullable(TenantRecord::public_schema()),
            "memberships": crate::resources::memberships::schema(),
            "access_token": {"type": "string"},
            "refresh_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer"}
        }
    })
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    let str_ = json!({"type": "string"});
    vec![
        Op::post("/auth/register", "auth.register")
            .summary("Create an account and its organization (tenant) with a default store; the caller becomes its Owner.")
            .input(object(
                &["email", "password", "full_name", "organization_name"],
                json!({
            "email": str_, "password": {"type": "string", "minLength": 10}, "full_name": str_, "organization_name": str_,
            "plan_id": {"type": "string", "description": "The plan to start (see GET /plans); default: a trial of the default plan."}}),
            ))
            .output(token_schema())
            .status(201)
            .access(Access::Public)
            .handle(register),
        Op::post("/auth/login", "auth.login")
            .summary("Log in with email and password; `tenant_id` picks the organization (default: the one whose custom domain this request was sent to, else the oldest; on a custom domain another `tenant_id` is refused with 403 `tenant_host_mismatch`).")
            .input(object(
                &["email", "password"],
                json!({"email": str_, "password": str_, "tenant_id": uuid()}),
            ))
            .output(token_schema())
            .access(Access::Public)
            .handle(login),
        Op::post("/auth/refresh", "auth.refresh")
            .summary("Trade a refresh token for a new access token and a new refresh token (the old one is spent).")
            .input(object(&["refresh_token"], json!({"refresh_token": str_})))
            .output(token_schema())
            .access(Access::Public)
            .handle(refresh),
        Op::post("/auth/logout", "auth.logout")
            .summary("End the caller's session.")
            .output(object(&["logged_out"], json!({"logged_out": {"type": "boolean", "enum": [true]}})))
            .update()
            .access(Access::Authenticated)
            .handle(logout),
        Op::post("/auth/forgot-password", "auth.forgot-password")
            .summary("Ask for a password-reset token by email. Always answers 202.")
            .input(object(&["email"], json!({"email": str_})))
            .output(object(&["message"], json!({"message": {"type": "string", "description": "The same whether or not the account exists."}})))
            .status(202)
            .access(Access::Public)
            .handle(forgot_password),
        Op::post("/auth/reset-password", "auth.reset-password")
            .summary("Choose a new password with a reset token; ends every session.")
            .input(object(
                &["token", "password"],
                json!({"token": str_, "password": str_}),
            ))
            .output(object(&["reset"], json!({"reset": {"type": "boolean", "enum": [true]}})))
            .update()
            .access(Access::Public)
            .handle(reset_password),
    ]
}
