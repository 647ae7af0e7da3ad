//! `/admin/alerts`: what the abnormal-behaviour detector
//! (`crate::alerts::service`) raised about tenants, for super-admins to read and
//! acknowledge.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::control::PlatformAuditEntry;
use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Access, Op, Operation};
use crate::error::{ApiError, blocking};
use crate::json_schema::id_input;

/// The most alerts one list answers.
const MAX_LIMIT: u32 = 500;

/// The input schema of `GET /admin/alerts`.
pub fn list_input() -> Value {
    json!({"type": "object", "properties": {
        "status": {"type": "string", "enum": ["open", "all"], "description": "`open` (default): not yet acknowledged; `all`."},
        "tenant_id": {"type": "string", "description": "Only this organization's alerts."},
        "limit": {"type": ["integer", "string"], "description": "At most this many, newest first (1–500, default 100)."}
    }})
}

/// One alert's schema.
pub fn alert_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "integer"},
        "tenant_id": {"type": "string"},
        "tenant_name": {"type": ["string", "null"]},
        "kind": {"type": "string", "enum": ["failed_logins", "failed_payments", "server_errors"]},
        "count": {"type": "integer"},
        "threshold": {"type": "integer"},
        "window_secs": {"type": "integer"},
        "raised_at": {"type": "string"},
        "acknowledged_at": {"type": ["string", "null"]},
        "acknowledged_by": {"type": ["string", "null"]}
    }})
}

/// The output schema of the list.
pub fn list_output() -> Value {
    json!({"type": "object", "properties": {"alerts": {"type": "array", "items": alert_schema()}}})
}

/// `GET /admin/alerts`.
pub async fn list(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let open_only = match call.opt_str_field("status")?.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(_) => {
            return Err(ApiError::Validation(
                "`status` must be `open` or `all`".into(),
            ));
        }
    };
    let tenant = crate::resources::support::tenant_filter(&call)?;
    let limit = crate::resources::support::list_limit(&call, MAX_LIMIT)?;
    let alerts = blocking(move || Ok(state.control.alerts(open_only, tenant, limit)?)).await?;
    Ok(json!({"alerts": alerts}))
}

/// `POST /admin/alerts/{id}/acknowledge`.
pub async fn acknowledge(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?;
    let actor = principal.user_id;
    let id = crate::resources::support::row_number(&call, "alert")?;
    let meta = call.meta.clone();
    let answer = blocking(move || {
        let by = state
            .control
            .user(actor)?
            .map_or_else(|| actor.to_string(), |u| u.email);
        let alert = state
            .control
            .acknowledge_alert(id, &by)?
            .ok_or_else(|| ApiError::NotFound("no such alert".into()))?;
        state.control.platform_audit(&PlatformAuditEntry {
            actor_id: Some(actor.to_string()),
            channel: meta.channel.clone(),
            operation: "admin.alerts.acknowledge".into(),
            target: Some(format!("alert/{id}")),
            outcome: "success".into(),
            request_id: Some(meta.request_id.clone()),
            ..Default::default()
        })?;
        Ok(alert)
    })
    .await?;
    Ok(json!(answer))
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    vec![
        Op::get("/admin/alerts", "admin.alerts.list")
            .summary("Alerts about organizations' abnormal behaviour — a spike of failed sign-ins, failed payments or server errors — newest first (super-admin).")
            .input(list_input())
            .output(list_output())
            .access(Access::SuperAdmin)
            .handle(list),
        Op::post("/admin/alerts/{id}/acknowledge", "admin.alerts.acknowledge")
            .summary("Mark an alert seen (super-admin).")
            .input(id_input())
            .output(alert_schema())
            .update()
            .access(Access::SuperAdmin)
            .handle(acknowledge),
    ]
}
