//! `/tenant/settings`: the organization's typed settings (currency display,
//! time zone, locale, payment defaults), every key with its effective value;
//! a `PATCH` changes some keys all at once or none. The keys and their
//! rules are [`crate::settings::REGISTRY`].

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Op, Operation};
use crate::error::{ApiError, blocking};
use crate::resources::support::{audited_write, tenant_read};
use crate::settings::{self, REGISTRY};
use crate::time_util::now_rfc3339;

/// Input fields that are not settings (the `Idempotency-Key` header).
const NOT_SETTINGS: &[&str] = &["idempotency_key"];

/// The schema of the settings object: one property per key.
fn properties(nullable: bool) -> Value {
    let mut properties = Map::new();
    for setting in REGISTRY {
        let mut schema = setting.schema();
        if nullable && let Some(ty) = schema.get("type").cloned() {
            schema["type"] = json!([ty, "null"]);
            schema.as_object_mut().map(|s| s.remove("enum"));
        }
        properties.insert(setting.key.to_string(), schema);
    }
    Value::Object(properties)
}

/// The input schema of `PATCH /tenant/settings`.
pub fn input_schema() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": properties(true),
           "description": "Some settings: each given key is set; `null` resets it to its default."})
}

/// The output schema of both operations.
pub fn output_schema() -> Value {
    json!({"type": "object", "required": ["settings"], "properties": {
        "settings": {"type": "object", "properties": properties(false)}
    }})
}

fn read(conn: &rusqlite::Connection) -> Result<Value, ApiError> {
    Ok(json!({"settings": settings::effective(conn)?}))
}

/// `GET /tenant/settings`: every key with its effective value.
pub async fn get(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    tenant_read(state, &call, read).await
}

/// `PATCH /tenant/settings`: checks every key first (an unknown key or a
/// wrong value is a 422 naming it, and nothing is written), then writes
/// them in one audited transaction.
pub async fn patch(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?.clone();
    let tenant = principal.tenant()?;
    let mut patch = call.input.as_object().cloned().unwrap_or_default();
    for name in NOT_SETTINGS {
        patch.remove(*name);
    }
    let changes = settings::changes(&patch).map_err(ApiError::Validation)?;
    let mut entry = call.audit.clone();
    let keys: Vec<&str> = patch.keys().map(String::as_str).collect();
    entry.detail = Some(json!({"keys": keys}).to_string());
    let audited = Arc::clone(&call.audited);
    blocking(move || {
        audited_write(&state, tenant, entry, &audited, |tx, _| {
            settings::apply(tx, &changes, &now_rfc3339(), &principal.user_id.to_string())?;
            read(tx)
        })
    })
    .await
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    vec![
        Op::get("/tenant/settings", "tenant.settings.get")
            .permission("tenant.read")
            .summary("The organization's settings (currency display, time zone, locale, payment defaults), every key with its effective value: the one set, else its default.")
            .output(output_schema())
            .handle(get),
        Op::patch("/tenant/settings", "tenant.settings.update")
            .permission("settings.manage")
            .summary("Change some settings at once: each key given is set, `null` resets it to its default. An unknown key or a wrong value is refused (422 naming it) and nothing is written.")
            .input(input_schema())
            .output(output_schema())
            .handle(patch),
    ]
}
