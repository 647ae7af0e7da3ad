//! Helpers shared by the host's own operations: field rules, token
//! issuing, tenant provisioning and internal calls to the rbac plugin.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::audit::{self, AuditEntry};
use crate::control::CreatedTenant;
use crate::control::{PlatformAuditEntry, TenantRecord, UserRecord};
use crate::core::Core;
use crate::core::authz::rbac;
use crate::core::operation::RequestMeta;
use crate::error::{ApiError, blocking};
use crate::ids::{StoreId, TenantId, UserId};
use crate::time_util::now_rfc3339;

/// A normalised email address (trimmed, lower-case, plausible shape).
pub fn email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let plausible = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if plausible {
        Ok(email)
    } else {
        Err(ApiError::Validation(
            "`email` must be an email address".into(),
        ))
    }
}

/// A display name: trimmed, 1 to `max` characters.
pub fn name(raw: &str, field: &str, max: usize) -> Result<String, ApiError> {
    let name = raw.trim().to_string();
    let length = name.chars().count();
    if length == 0 || length > max || name.chars().any(char::is_control) {
        return Err(ApiError::Validation(format!(
            "`{field}` must be 1 to {max} printable characters"
        )));
    }
    Ok(name)
}

/// A new password, checked against the policy.
pub fn new_password(raw: &str) -> Result<String, ApiError> {
    match crate::passwords::policy_violation(raw) {
        Some(reason) => Err(ApiError::Validation(reason)),
        None => Ok(raw.to_string()),
    }
}

/// Hashes a password on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    blocking(move || crate::passwords::hash(&password).map_err(ApiError::Unexpected)).await
}

/// Starts a session and answers the token fields of an auth response.
pub async fn issue_tokens(
    state: &Arc<Core>,
    user: UserId,
    tenant: Option<TenantId>,
) -> Result<Value, ApiError> {
    let state = Arc::clone(state);
    blocking(move || {
        let ttl = state.config.refresh_token_ttl.as_secs() as i64;
        let (session, refresh) = state.control.create_session(user, tenant, ttl)?;
        let access = state
            .jwt
            .issue(
                &user.to_string(),
                tenant.map(|t| t.to_string()).as_deref(),
                &session,
            )
            .map_err(ApiError::Unexpected)?;
        Ok(json!({
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": state.jwt.ttl_secs(),
        }))
    })
    .await
}

/// Merges two JSON objects (the second's fields win).
pub fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// The user's roles and effective permissions in a tenant (at a store).
pub async fn access_of(
    state: &Arc<Core>,
    tenant: TenantId,
    user: UserId,
    store: Option<StoreId>,
    meta: &RequestMeta,
) -> Result<Value, ApiError> {
    rbac(
        state,
        tenant,
        None,
        "users.access",
        json!({"user_id": user, "store_id": store}),
        meta,
    )
    .await
}

/// Makes a tenant: its control rows, its file (migrated, catalog synced),
/// its owner as member and Owner, and a default store. If any step fails,
/// what was made is removed again.
pub async fn provision_tenant(
    state: &Arc<Core>,
    organization: &str,
    owner: &UserRecord,
    create_owner: bool,
    meta: &RequestMeta,
    actor: Option<UserId>,
) -> Result<TenantRecord, ApiError> {
    let tenant = {
        let state = Arc::clone(state);
        let owner = owner.clone();
        let organization = organization.to_string();
        blocking(move || {
            match state
                .control
                .create_tenant(&organization, &owner, create_owner)?
            {
                CreatedTenant::Created(tenant) => Ok(tenant),
                CreatedTenant::EmailTaken => Err(ApiError::Conflict(
                    "an account with this email already exists; log in instead".into(),
                )),
            }
        })
        .await?
    };
    let made = provision_file(state, &tenant, owner, meta).await;
    if let Err(error) = made {
        let state = Arc::clone(state);
        let id = tenant.id;
        let created_user = create_owner.then_some(owner.id);
        let cleanup = blocking(move || {
            state.tenancy.remove_file(id)?;
            state.control.delete_tenant_row(id, created_user)?;
            Ok(())
        })
        .await;
        if let Err(cleanup) = cleanup {
            tracing::error!(?cleanup, tenant = %tenant.id, "could not undo a failed tenant provisioning");
        }
        return Err(error);
    }
    let entry = PlatformAuditEntry {
        actor_id: Some(actor.unwrap_or(owner.id).to_string()),
        channel: meta.channel.clone(),
        operation: "tenant.created".into(),
        target: Some(tenant.id.to_string()),
        outcome: "success".into(),
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
        request_id: Some(meta.request_id.clone()),
        detail: Some(json!({"name": tenant.name}).to_string()),
    };
    let state_for_audit = Arc::clone(state);
    blocking(move || Ok(state_for_audit.control.platform_audit(&entry)?)).await?;
    Ok(tenant)
}

async fn provision_file(
    state: &Arc<Core>,
    tenant: &TenantRecord,
    owner: &UserRecord,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    let id = tenant.id;
    {
        let state = Arc::clone(state);
        let owner = owner.clone();
        let meta = meta.clone();
        blocking(move || {
            let db = state.tenancy.create(id)?;
            let mut conn = db.conn()?;
            let tx = conn.transaction()?;
            let now = now_rfc3339();
            tx.execute(
                "INSERT INTO members (user_id, email, full_name, status, joined_at) VALUES (?1, ?2, ?3, 'active', ?4)",
                rusqlite::params![owner.id.to_string(), owner.email, owner.full_name, now],
            )?;
            let store = StoreId::new();
            tx.execute(
                "INSERT INTO stores (id, name, status, created_at, updated_at) VALUES (?1, 'Main store', 'active', ?2, ?2)",
                rusqlite::params![store.to_string(), now],
            )?;
            audit::write(
                &tx,
                &AuditEntry {
                    actor_type: "user".into(),
                    actor_id: Some(owner.id.to_string()),
                    channel: meta.channel.clone(),
                    operation: "tenant.provision".into(),
                    target: Some(id.to_string()),
                    outcome: "success".into(),
                    ip: meta.ip.clone(),
                    user_agent: meta.user_agent.clone(),
                    request_id: Some(meta.request_id.clone()),
                    store_id: None,
                    detail: Some(json!({"default_store": store}).to_string()),
                },
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    }
    rbac(
        state,
        id,
        None,
        "assignments.grant",
        json!({"user_id": owner.id, "role_name": "Owner"}),
        meta,
    )
    .await?;
    Ok(())
}

/// Runs `work` in an `IMMEDIATE` transaction on the tenant's file and writes
/// the call's success audit row (which `work` may complete, e.g. with the
/// id it created) in the same transaction; marks the call audited on commit.
pub fn audited_write<T>(
    state: &Core,
    tenant: TenantId,
    mut entry: AuditEntry,
    audited: &std::sync::atomic::AtomicBool,
    work: impl FnOnce(&rusqlite::Transaction<'_>, &mut AuditEntry) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let db = state.tenancy.get(tenant)?;
    let mut conn = db.conn()?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let value = work(&tx, &mut entry)?;
    audit::write(&tx, &entry)?;
    tx.commit()?;
    audited.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(value)
}

/// Answers `read` on a connection to the calling tenant's file, on a
/// blocking thread: the reading twin of [`audited_write`].
pub async fn tenant_read(
    state: Arc<Core>,
    call: &crate::core::operation::HostCall,
    read: fn(&rusqlite::Connection) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    blocking(move || {
        let db = state.tenancy.get(tenant)?;
        let conn = db.conn()?;
        read(&conn)
    })
    .await
}

/// `<public-url>/<page>?token=<token>`: the link an email carries.
pub fn public_link(state: &Core, page: &str, token: &str) -> String {
    let base = state
        .runtime
        .services()
        .get("public-url")
        .unwrap_or_else(|| "http://localhost".into());
    format!("{}/{page}?token={token}", base.trim_end_matches('/'))
}

/// RFC 3339 time `secs` from now.
pub fn rfc3339_in(secs: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(crate::time_util::unix_now() + secs)
        .ok()
        .map(crate::time_util::format_rfc3339)
}

/// Writes a host event into `tenant`'s outbox and wakes the delivery worker.
pub fn emit_to_tenant(
    state: &Core,
    tenant: TenantId,
    name: &str,
    payload: &Value,
) -> Result<(), ApiError> {
    let db = state.tenancy.get(tenant)?;
    let conn = db.conn()?;
    crate::events::emit_host_event(&conn, name, payload)?;
    crate::events::wake(state);
    Ok(())
}

/// The user's oldest organization where they are an active member of an
/// active tenant (whose branding dresses the host's mail to them).
pub fn home_tenant(state: &Core, user: UserId) -> Result<Option<TenantId>, ApiError> {
    for membership in state.control.memberships_of(user)? {
        if membership.status != "active" {
            continue;
        }
        let active = state
            .control
            .tenant(membership.tenant_id)?
            .is_some_and(|tenant| tenant.status == "active");
        if active {
            return Ok(Some(membership.tenant_id));
        }
    }
    Ok(None)
}

/// The optional `tenant_id` filter of a super-admin list operation.
pub fn tenant_filter(
    call: &crate::core::operation::HostCall,
) -> Result<Option<crate::ids::TenantId>, ApiError> {
    call.opt_str_field("tenant_id")?
        .map(|text| {
            crate::ids::TenantId::parse(&text)
                .ok_or_else(|| ApiError::Validation("`tenant_id` is not a tenant id".into()))
        })
        .transpose()
}

/// The `{id}` of a numbered `control.db` row (an alert, a stored
/// callback): text that is not a number answers the same 404 as a number no
/// row has, `no such <what>`.
pub fn row_number(call: &crate::core::operation::HostCall, what: &str) -> Result<i64, ApiError> {
    call.str_field("id")?
        .trim()
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no such {what}")))
}

/// The `limit` of a host list operation: 1 to `max`, 100 when absent; a
/// number or a string of digits (query parameters arrive as text).
pub fn list_limit(call: &crate::core::operation::HostCall, max: u32) -> Result<u32, ApiError> {
    let invalid = || ApiError::Validation(format!("`limit` must be 1 to {max}"));
    let raw = match call.input.get("limit") {
        None | Some(Value::Null) => return Ok(100),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(invalid)?,
        Some(Value::String(s)) => s.trim().parse().map_err(|_| invalid())?,
        Some(_) => return Err(invalid()),
    };
    u32::try_from(raw)
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(invalid)
}
