//! Calling a plugin operation in a tenant — the one way the core and its
//! services (billing, metering, jobs, callbacks, authorization) reach a
//! plugin: the tenant file, the call context, the plugin's transaction with
//! its audit row, and the caches a write invalidates. It imports none of
//! the services that call it.

use std::sync::Arc;

use http::StatusCode;
use serde_json::Value;

use crate::audit::{self, AuditEntry};
use crate::core::Core;
use malipo_foundations::error::{ApiError, blocking};
use malipo_runtime::plugins::bindings::CallContext;
use malipo_runtime::plugins::{CallRequest, PluginCallError, ProgressSink};

/// Calls a plugin operation (public or internal) in a tenant. A success
/// of a mutating operation writes `audit` in the same transaction.
#[allow(clippy::too_many_arguments)]
pub async fn call_plugin(
    state: &Arc<Core>,
    tenant: malipo_foundations::ids::TenantId,
    plugin: &str,
    operation: &str,
    ctx: CallContext,
    input: Value,
    read_only: bool,
    audit: Option<AuditEntry>,
    progress: Option<ProgressSink>,
) -> Result<Value, ApiError> {
    let state_for_call = Arc::clone(state);
    let plugin_name = plugin.to_string();
    let operation = operation.to_string();
    let input_text = input.to_string();
    let writes_audit = audit.is_some() && !read_only;
    let output = blocking(move || {
        let db = state_for_call.tenancy.get(tenant)?;
        let request = CallRequest {
            db: &db,
            ctx,
            operation: &operation,
            input: &input_text,
            read_only,
            progress,
        };
        state_for_call
            .runtime
            .invoke(&plugin_name, request, |conn, output| {
                match (&audit, read_only) {
                    // A job run is audited only when it changed something.
                    (Some(entry), false) if entry.channel == "job" => {
                        audit::write_job_run(conn, entry, output)
                    }
                    (Some(entry), false) => audit::write(conn, entry),
                    _ => Ok(()),
                }
            })
            .map_err(plugin_error)
    })
    .await?;
    if writes_audit {
        audit::heads::after_commit(state, Some(tenant)).await;
    }
    let is_authorizer = state
        .runtime
        .authorizer_plugin()
        .is_some_and(|p| p.manifest.name == plugin);
    if is_authorizer && !read_only {
        state.authz_changed(tenant);
    }
    state.billing.plugin_called(plugin, tenant);
    serde_json::from_str(&output)
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("plugin output: {e}")))
}

/// The HTTP answer to a failed plugin call.
pub fn plugin_error(error: PluginCallError) -> ApiError {
    use PluginCallError as E;
    let plugin = |status: StatusCode, code: &'static str, message: String| ApiError::Plugin {
        status,
        code,
        message,
    };
    match error {
        E::UnknownPlugin(name) => ApiError::NotFound(format!("no plugin named `{name}`")),
        E::InputTooLarge { .. } => ApiError::PayloadTooLarge(error.to_string()),
        E::Failed { code, message } => match code.as_str() {
            "bad_request" => ApiError::BadRequest(message),
            "validation_failed" => ApiError::Validation(message),
            "not_found" => ApiError::NotFound(message),
            "conflict" => ApiError::Conflict(message),
            "forbidden" => ApiError::Forbidden(message),
            "upstream_error" => plugin(StatusCode::BAD_GATEWAY, "upstream_error", message),
            "unavailable" | "retry" => ApiError::Unavailable(message),
            _ => plugin(StatusCode::INTERNAL_SERVER_ERROR, "plugin_error", message),
        },
        E::Timeout { .. } => plugin(
            StatusCode::GATEWAY_TIMEOUT,
            "plugin_timeout",
            error.to_string(),
        ),
        E::MemoryExceeded { .. } => plugin(
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin_memory_limit",
            error.to_string(),
        ),
        E::Trap { .. } => plugin(
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin_crashed",
            error.to_string(),
        ),
        E::CapabilityDenied { .. } => plugin(
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin_capability_denied",
            error.to_string(),
        ),
        E::BadOutput { .. } => plugin(
            StatusCode::BAD_GATEWAY,
            "plugin_bad_output",
            error.to_string(),
        ),
        E::Busy(_) => ApiError::busy(),
        E::Host(message) => ApiError::Unexpected(anyhow::anyhow!(message)),
    }
}
