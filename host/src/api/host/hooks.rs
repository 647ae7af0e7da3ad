//! `/callback-tokens/{plugin}/rotate`: replaces the tenant's callback token
//! of a plugin. Callbacks still on their way to the old URL are refused
//! (404); reconciliation settles the payments they were for.

use std::sync::Arc;

use serde_json::json;

use super::support::audited_write;
use crate::api::operation::{HostCall, HostFuture};
use crate::app::AppState;
use crate::error::{ApiError, blocking};
use crate::plugins::capabilities::rotate_callback_token;

/// `POST /callback-tokens/{plugin}/rotate`.
pub fn rotate(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
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
    })
}
