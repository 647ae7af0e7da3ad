//! `/approvals`: the payouts and reversals AI assistants asked for, and the
//! people's answer to them. Approving runs the operation once, as the
//! approver, who must be signed in (an access token, never an API key) and
//! hold both `approvals.approve` and the operation's own permission.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::approvals::service as approvals;
use crate::approvals::service::Approval;
use crate::auth::{Credential, Principal};
use crate::core::Core;
use crate::core::execute::invoke_plugin;
use crate::core::operation::{HostCall, Op, Operation, Target};
use crate::core::{authz, guardrails};
use crate::error::{ApiError, blocking};
use crate::ids::{StoreId, TenantId};
use crate::json_schema::{object, uuid, uuid_id_input};

/// An approval the caller may see: another store's (or, for a
/// store-limited caller, one of no store) is a 404.
async fn load(state: &Arc<Core>, principal: &Principal, id: String) -> Result<Approval, ApiError> {
    let tenant = principal.tenant()?;
    let state = Arc::clone(state);
    let approval = blocking(move || {
        let db = state.tenancy.get(tenant)?;
        approvals::load(&*db.conn()?, &id)?.ok_or_else(|| ApiError::not_found("approval"))
    })
    .await?;
    if principal.may_see_store(approval.store_id.as_deref()) {
        Ok(approval)
    } else {
        Err(ApiError::not_found("approval"))
    }
}

/// `GET /approvals?status=`.
pub async fn list(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?;
    let tenant = principal.tenant()?;
    let stores = crate::resources::audit::scope(principal);
    let status = call.opt_str_field("status")?;
    let limit = call
        .input
        .get("limit")
        .and_then(Value::as_i64)
        .unwrap_or(50)
        .clamp(1, 200);
    let rows = blocking(move || {
        let db = state.tenancy.get(tenant)?;
        approvals::list(
            &*db.conn()?,
            status.as_deref(),
            stores
                .as_ref()
                .map(|(list, unassigned)| (list.as_slice(), *unassigned)),
            limit,
        )
    })
    .await?;
    Ok(json!({"approvals": rows.iter().map(Approval::public_json).collect::<Vec<_>>()}))
}

/// `GET /approvals/{id}`.
pub async fn get(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let approval = load(&state, call.principal()?, call.str_field("id")?).await?;
    Ok(json!({"approval": approval.public_json()}))
}

/// A decision needs a person: a session, not an API key.
fn person(principal: &Principal) -> Result<(), ApiError> {
    match principal.credential {
        Credential::Session { .. } => Ok(()),
        Credential::ApiKey { .. } => Err(ApiError::Forbidden(
            "approvals are decided by a signed-in person, not with an API key".into(),
        )),
    }
}

fn gated_operation(state: &Core, name: &str) -> Result<Arc<Operation>, ApiError> {
    state
        .operations
        .iter()
        .find(|op| op.spec.name == name && matches!(op.target, Target::Plugin(_)))
        .cloned()
        .ok_or_else(|| {
            ApiError::Unavailable(format!(
                "the operation `{name}` of this approval is not served any more"
            ))
        })
}

/// The deciding person, their tenant and the approval the call names.
async fn to_decide(
    state: &Arc<Core>,
    call: &HostCall,
) -> Result<(Principal, TenantId, Approval), ApiError> {
    let principal = call.principal()?.clone();
    person(&principal)?;
    let tenant = principal.tenant()?;
    // The approver must be able to use the approval's store (an intent of
    // no store needs an approver who may use every store).
    let approval = load(state, &principal, call.str_field("id")?).await?;
    Ok((principal, tenant, approval))
}

/// Moves a pending approval to `to` as the principal, once; 409 when it was
/// already decided.
async fn decide(
    state: &Arc<Core>,
    tenant: TenantId,
    approval: &Approval,
    to: &'static str,
    principal: &Principal,
) -> Result<(), ApiError> {
    let decided_by = principal.user_id.to_string();
    let state = Arc::clone(state);
    let id = approval.id.clone();
    let claimed = blocking(move || approvals::claim(&state, tenant, &id, to, &decided_by)).await?;
    if claimed {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "this approval is already {}; it is decided, and runs, at most once",
            approval.status
        )))
    }
}

/// `POST /approvals/{id}/approve`: runs the operation, once.
pub async fn approve(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let (principal, tenant, approval) = to_decide(&state, &call).await?;
    let id = approval.id.clone();
    let op = gated_operation(&state, &approval.operation)?;
    let Target::Plugin(plugin) = &op.target else {
        return Err(ApiError::Unavailable("not a plugin operation".into()));
    };
    if let Some(permission) = &op.spec.permission {
        authz::require(&state, &principal, permission).await?;
    }
    decide(&state, tenant, &approval, "approved", &principal).await?;
    let mut input = approval.input.clone();
    if let Some(fields) = input.as_object_mut() {
        fields.insert("idempotency_key".into(), json!(format!("approval:{id}")));
    }
    let runner = Principal {
        store_id: approval.store_id.as_deref().and_then(StoreId::parse),
        ..principal.clone()
    };
    let mut audit = call.audit.clone();
    audit.operation = op.spec.name.clone();
    audit.target = Some(format!("approval:{id}"));
    audit.detail = Some(
        json!({"approval_id": id, "requested_by": approval.requested_by, "channel": approval.channel})
            .to_string(),
    );
    let outcome = invoke_plugin(&state, plugin, &op, &runner, input, &call.meta, audit, None)
        .await
        .map_err(|e| format!("{}: {}", e.code(), e.public_message()));
    if outcome.is_err()
        && let Some(reservation) = approval.reservation()
    {
        guardrails::release(&state, reservation).await;
    }
    let state_for_finish = Arc::clone(&state);
    let finish_id = id.clone();
    let recorded = outcome.clone();
    blocking(move || approvals::finish(&state_for_finish, tenant, &finish_id, &recorded)).await?;
    let approval = load(&state, &principal, id).await?;
    Ok(json!({"approval": approval.public_json()}))
}

/// `POST /approvals/{id}/reject`.
pub async fn reject(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let reason = call
        .opt_str_field("reason")?
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > approvals::MAX_REASON_CHARS)
    {
        return Err(ApiError::Validation(format!(
            "`reason` is longer than {} characters",
            approvals::MAX_REASON_CHARS
        )));
    }
    let (principal, tenant, approval) = to_decide(&state, &call).await?;
    let id = approval.id.clone();
    let mut entry = call.audit.clone();
    entry.detail = Some(json!({"approval_id": id, "reason": reason}).to_string());
    let audited = Arc::clone(&call.audited);
    let decided_by = principal.user_id.to_string();
    let for_write = Arc::clone(&state);
    let claim_id = id.clone();
    let claimed = blocking(move || {
        crate::resources::support::audited_write(&for_write, tenant, entry, &audited, |tx, _| {
            if approvals::reject(tx, &claim_id, &decided_by, reason.as_deref())? {
                Ok(true)
            } else {
                // Nothing changed: no success row either.
                Err(ApiError::Conflict(String::new()))
            }
        })
    })
    .await;
    match claimed {
        Ok(_) => {}
        Err(ApiError::Conflict(_)) => {
            let now = load(&state, &principal, id).await?;
            return Err(ApiError::Conflict(format!(
                "this approval is already {}; it is decided, and runs, at most once",
                now.status
            )));
        }
        Err(error) => return Err(error),
    }
    if let Some(reservation) = approval.reservation() {
        guardrails::release(&state, reservation).await;
    }
    let approval = load(&state, &principal, id).await?;
    Ok(json!({"approval": approval.public_json()}))
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    let one = object(
        &["approval"],
        json!({"approval": Approval::public_schema()}),
    );
    vec![
        Op::get("/approvals", "approvals.list")
            .permission("approvals.read")
            .summary("Payouts and reversals AI assistants asked for, newest first; `status=pending` for those waiting.")
            .input(json!({"type": "object", "properties": {
                "status": {"type": "string", "enum": ["pending", "approved", "executed", "failed", "rejected"]},
                "limit": {"type": "integer", "minimum": 1, "maximum": 200}
            }}))
            .output(object(
                &["approvals"],
                json!({"approvals": {"type": "array", "items": Approval::public_schema()}}),
            ))
            .handle(list),
        Op::get("/approvals/{id}", "approvals.get")
            .permission("approvals.read")
            .summary("One approval request: what it will do, who asked, and its outcome once decided.")
            .input(uuid_id_input())
            .output(one.clone())
            .handle(get),
        Op::post("/approvals/{id}/approve", "approvals.approve")
            .permission("approvals.approve")
            .summary("Approve a pending request and run it once, as you (a signed-in person holding the operation's own permission too).")
            .input(uuid_id_input())
            .output(one.clone())
            .update()
            .handle(approve),
        Op::post("/approvals/{id}/reject", "approvals.reject")
            .permission("approvals.approve")
            .summary("Reject a pending request; nothing moves. An optional `reason` (at most 500 characters) is kept with the approval and in the audit log.")
            .input(json!({"type": "object", "required": ["id"], "properties": {
                "id": uuid(),
                "reason": {"type": "string", "maxLength": 500}
            }}))
            .output(one)
            .update()
            .handle(reject),
    ]
}
