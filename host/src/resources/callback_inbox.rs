//! `/admin/callbacks`: the callback inbox for super-admins — callbacks a
//! plugin refused for good (`failed`) are listed with the reason, and can be
//! queued again once the cause is mended. Contention (a busy or locked
//! tenant file) never fails a callback: it is retried until it applies.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::control::{PlatformAuditEntry, Replay};
use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Access, Op, Operation};
use crate::error::{ApiError, blocking};
use crate::json_schema::id_input;

/// The most callbacks one list answers.
const MAX_LIMIT: u32 = 500;

/// The input schema of `GET /admin/callbacks`.
pub fn list_input() -> Value {
    json!({"type": "object", "properties": {
        "state": {"type": "string", "enum": ["failed", "pending", "applied"], "description": "`failed` (default): refused for good by their plugin; `pending`: waiting or being retried; `applied`."},
        "tenant_id": {"type": "string", "format": "uuid", "description": "Only this organization's callbacks."},
        "limit": {"type": ["integer", "string"], "description": "At most this many, newest first (1–500, default 100)."}
    }})
}

/// One stored callback's schema.
pub fn entry_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "integer"},
        "tenant_id": {"type": "string", "format": "uuid"},
        "plugin": {"type": "string"},
        "kind": {"type": "string"},
        "reference": {"type": ["string", "null"], "description": "The plugin's reference to its own request that ended the callback's path (e.g. an STK push's intent id), if any."},
        "state": {"type": "string", "enum": ["failed", "pending", "applied"]},
        "attempts": {"type": "integer"},
        "last_error": {"type": ["string", "null"]},
        "received_at": {"type": "integer", "description": "Milliseconds since the Unix epoch."},
        "body": {"type": "string", "description": "The raw body, as it was received."}
    }})
}

/// The output schema of the list.
pub fn list_output() -> Value {
    json!({"type": "object", "properties": {"callbacks": {"type": "array", "items": entry_schema()}}})
}

/// The output schema of a replay.
pub fn replay_output() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "integer"},
        "state": {"type": "string", "enum": ["pending"]}
    }})
}

/// `GET /admin/callbacks`.
pub async fn list(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let wanted = call
        .opt_str_field("state")?
        .unwrap_or_else(|| "failed".into());
    if !matches!(wanted.as_str(), "failed" | "pending" | "applied") {
        return Err(ApiError::Validation(
            "`state` must be `failed`, `pending` or `applied`".into(),
        ));
    }
    let tenant = crate::resources::support::tenant_filter(&call)?;
    let limit = crate::resources::support::list_limit(&call, MAX_LIMIT)?;
    let callbacks = blocking(move || Ok(state.control.inbox_list(&wanted, tenant, limit)?)).await?;
    Ok(json!({"callbacks": callbacks}))
}

/// `POST /admin/callbacks/{id}/replay`.
pub async fn replay(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?;
    let actor = principal.user_id;
    let id = crate::resources::support::row_number(&call, "callback")?;
    let meta = call.meta.clone();
    let state_for_db = Arc::clone(&state);
    blocking(move || {
        match state_for_db.control.inbox_replay(id)? {
            Replay::Queued => {}
            Replay::Missing => return Err(ApiError::NotFound("no such callback".into())),
            Replay::NotFailed => {
                return Err(ApiError::Conflict(
                    "only a callback its plugin refused (state `failed`) can be replayed".into(),
                ));
            }
        }
        state_for_db.control.platform_audit(&PlatformAuditEntry {
            actor_id: Some(actor.to_string()),
            channel: meta.channel.clone(),
            operation: "admin.callbacks.replay".into(),
            target: Some(format!("callback-inbox/{id}")),
            outcome: "success".into(),
            request_id: Some(meta.request_id.clone()),
            ..Default::default()
        })?;
        Ok(())
    })
    .await?;
    state.callback_signal.notify_one();
    Ok(json!({"id": id, "state": "pending"}))
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    vec![
        Op::get("/admin/callbacks", "admin.callbacks.list")
            .summary("Stored callbacks by state, newest first: `failed` (default) are those their plugin refused for good, with the reason (super-admin).")
            .input(list_input())
            .output(list_output())
            .access(Access::SuperAdmin)
            .handle(list),
        Op::post("/admin/callbacks/{id}/replay", "admin.callbacks.replay")
            .summary("Queue a refused callback again, to be delivered to its plugin at once (super-admin); 409 unless it is `failed`.")
            .input(id_input())
            .output(replay_output())
            .update()
            .access(Access::SuperAdmin)
            .handle(replay),
    ]
}
