//! The operations of tenant deletion: schedule it (super-admin), cancel it
//! during the grace period.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::control::TenantRecord;
use crate::core::Core;
use crate::core::operation::{Access, HostCall, Op, Operation};
use crate::error::{ApiError, blocking};
use crate::ids::TenantId;
use crate::json_schema::{object, uuid_id_input};

fn tenant_id(call: &HostCall) -> Result<TenantId, ApiError> {
    TenantId::parse(&call.str_field("id")?).ok_or_else(|| ApiError::not_found("tenant"))
}

fn actor(call: &HostCall) -> Result<crate::deletion::service::Actor, ApiError> {
    Ok(crate::deletion::service::Actor {
        user_id: Some(call.principal()?.user_id),
        meta: call.meta.clone(),
    })
}

/// `DELETE /admin/tenants/{id}`: schedules the organization's deletion after
/// the grace period (`MALIPO_TENANT_DELETION_GRACE_SECS`); it is suspended at
/// once. With no grace period it is purged before the answer.
pub async fn delete_tenant(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let id = tenant_id(&call)?;
    let actor = actor(&call)?;
    blocking(move || {
        let grace = crate::deletion::service::grace_secs()?;
        let tenant = crate::deletion::service::schedule(&state, id, grace, &actor)?;
        let deleted = if grace == 0 {
            Some(crate::deletion::service::purge(&state, id, &actor)?)
        } else {
            None
        };
        Ok(json!({
            "tenant": tenant.public_json(),
            "deletion_due_at": tenant.deletion_due_at,
            "deleted": deleted.is_some(),
            "control_rows_deleted": deleted.map(|rows| rows.tables),
        }))
    })
    .await
}

/// `POST /admin/tenants/{id}/cancel-deletion`: gives a tenant whose deletion
/// is scheduled its earlier status back.
pub async fn cancel_deletion(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let id = tenant_id(&call)?;
    let actor = actor(&call)?;
    blocking(move || {
        let tenant = crate::deletion::service::cancel(&state, id, &actor)?;
        Ok(tenant.public_json())
    })
    .await
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    let str_ = json!({"type": "string"});
    vec![
        Op::delete("/admin/tenants/{id}", "admin.tenants.delete")
            .summary("Schedule an organization's deletion after the grace period (MALIPO_TENANT_DELETION_GRACE_SECS, default 30 days): it is suspended at once, then its file and every platform row about it are removed (super-admin).")
            .input(uuid_id_input())
            .output(object(
                &["tenant", "deletion_due_at", "deleted"],
                json!({"tenant": TenantRecord::public_schema(), "deletion_due_at": str_, "deleted": {"type": "boolean"},
                       "control_rows_deleted": {"type": ["object", "null"], "additionalProperties": {"type": "integer"},
                                                "description": "With no grace period, the platform rows purged at once, by table; else null."}}),
            ))
            .access(Access::SuperAdmin)
            .handle(delete_tenant),
        Op::post("/admin/tenants/{id}/cancel-deletion", "admin.tenants.cancel-deletion")
            .summary("Cancel an organization's scheduled deletion during its grace period: it gets its earlier status back (super-admin).")
            .input(uuid_id_input())
            .output(TenantRecord::public_schema())
            .update()
            .access(Access::SuperAdmin)
            .handle(cancel_deletion),
    ]
}
