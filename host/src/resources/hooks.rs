//! `/callback-tokens/{plugin}/rotate`: replaces the tenant's callback token
//! of a plugin. Callbacks still on their way to the old URL are refused
//! (404); reconciliation settles the payments they were for.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Op, Operation};
use crate::error::{ApiError, blocking};
use crate::json_schema::object;
use crate::plugins::capabilities::rotate_callback_token;
use crate::resources::support::audited_write;

/// `POST /callback-tokens/{plugin}/rotate`.
pub async fn rotate(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    let plugin = call.str_field("plugin")?;
    if !state
        .runtime
        .plugin(&plugin)
        .is_some_and(|p| p.manifest.callbacks)
    {
        return Err(ApiError::not_found("plugin with callbacks"));
    }
    let (entry, audited) = (call.audit.clone(), call.audited.clone());
    blocking(move || {
        audited_write(&state, tenant, entry, &audited, |tx, _| {
            rotate_callback_token(tx, state.runtime.services(), &tenant.to_string(), &plugin)
                .map_err(|e| ApiError::Unexpected(anyhow::anyhow!(e)))?;
            Ok(json!({"rotated": true, "plugin": plugin}))
        })
    })
    .await
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    let str_ = json!({"type": "string"});
    vec![
        Op::post("/callback-tokens/{plugin}/rotate", "callback-tokens.rotate")
            .permission("callbacks.rotate")
            .summary("Replace the secret token in this organization's callback URLs for a plugin (e.g. mpesa).")
            .input(object(&["plugin"], json!({"plugin": str_})))
            .output(object(
                &["rotated", "plugin"],
                json!({"rotated": {"type": "boolean", "enum": [true]}, "plugin": str_}),
            ))
            .update()
            .tag("tenant")
            .handle(rotate),
    ]
}
