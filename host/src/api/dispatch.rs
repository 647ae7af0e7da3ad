//! The one code path every operation takes. REST requests are read here
//! (input merged from path, query and body; credential authenticated) and
//! MCP tool calls arrive already parsed; both then go through [`execute`]:
//! rate limit, permission, input check, API-key guardrails, the approval
//! gate, the host handler or plugin, and the audit rows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{ConnectInfo, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::operation::{Access, FileBody, HostCall, Operation, RawBody, RequestMeta, Target};
use super::{approvals, authz, guardrails, input};
use crate::app::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::{Principal, principal};
use crate::error::{ApiError, blocking, current_request_id};
use crate::plugins::bindings::CallContext;
use crate::plugins::{CallRequest, PluginCallError, ProgressSink};
use crate::{billing, metering};

/// Serves one request for `op`.
pub async fn serve(state: Arc<AppState>, op: Arc<Operation>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let meta = RequestMeta {
        request_id: current_request_id(),
        ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| {
                client_ip(addr.ip(), &parts.headers, &state.config.trusted_proxies).to_string()
            }),
        user_agent: parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
        channel: "rest".into(),
        host: crate::hostnames::of_request(&parts.headers, &parts.uri),
    };
    let path = match Path::<HashMap<String, String>>::from_request_parts(&mut parts, &()).await {
        Ok(Path(path)) => path,
        Err(rejection) => {
            return ApiError::BadRequest(format!("bad path: {rejection}")).into_response();
        }
    };
    let max_body = state.config.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, max_body).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::PayloadTooLarge(format!(
                "the request body is over the limit of {max_body} bytes"
            ))
            .into_response();
        }
    };
    let prepared = input::parse_body(&bytes).and_then(|body| {
        let query = input::parse_query(parts.uri.query())?;
        Ok(input::merge(&op.spec.input_schema, body, query, path))
    });
    let mut input = match prepared {
        Ok(input) => input,
        Err(error) => return error.into_response(),
    };
    // `Idempotency-Key` travels as the input field `idempotency_key`, the
    // same argument MCP clients give.
    if let (Some(key), Some(fields)) = (
        parts
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok()),
        input.as_object_mut(),
    ) {
        fields.insert("idempotency_key".into(), Value::String(key.to_string()));
    }
    let principal = match op.access {
        Access::Public => {
            if let Err(error) = state.public_limiter.check(meta.ip.as_deref()) {
                return error.into_response();
            }
            None
        }
        access => {
            match principal::authenticate(&state, &parts.headers, access == Access::Tenant).await {
                Ok(principal) => {
                    // Every log line of this request names who made it.
                    let span = tracing::Span::current();
                    span.record("user_id", tracing::field::display(principal.user_id));
                    if let Some(tenant) = principal.tenant_id {
                        span.record("tenant_id", tracing::field::display(tenant));
                        super::request_id::note_tenant(tenant);
                    }
                    Some(principal)
                }
                Err(error) => return error.into_response(),
            }
        }
    };
    let target = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(
            || parts.uri.path().to_string(),
            |uri| uri.0.path().to_string(),
        );
    let call = Invocation {
        principal,
        input,
        meta,
        target,
        tool: None,
        progress: None,
    };
    match execute(&state, &op, call).await {
        Ok(value) => {
            let mut status = StatusCode::from_u16(op.spec.success_status).unwrap_or(StatusCode::OK);
            // Money out that waits for a person's approval moved nothing
            // yet: 202, with the approval.
            if approvals::is_pending_answer(&op, &value) {
                status = StatusCode::ACCEPTED;
            }
            if let (Target::Host(_), Some(raw)) = (&op.target, RawBody::from_value(&value)) {
                return raw.into_response(status);
            }
            if let (Target::Host(_), Some(file)) = (&op.target, FileBody::from_value(&value)) {
                return file.into_response(status).await;
            }
            (status, axum::Json(value)).into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// The client's address: the peer, unless the peer is a trusted reverse
/// proxy (`MALIPO_TRUSTED_PROXIES`); then the right-most address of
/// `X-Forwarded-For` that is not itself a trusted proxy. A header from
/// anyone else is ignored, so a client cannot choose the address its login
/// attempts are counted against.
pub fn client_ip(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Ok(ip) = hop.parse::<std::net::IpAddr>() else {
            // A hop that is not an address ends what can be believed.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// One call of an operation, from whichever channel it came through.
pub struct Invocation {
    /// The authenticated caller (none for public operations).
    pub principal: Option<Principal>,
    /// The one input object.
    pub input: Value,
    /// Request facts, `channel` included.
    pub meta: RequestMeta,
    /// What a success's audit row names: the concrete path (REST) or
    /// `tool:<name>` (MCP).
    pub target: String,
    /// The MCP tool called, if the call came as one.
    pub tool: Option<String>,
    /// Where the call's progress reports go, if anyone listens.
    pub progress: Option<ProgressSink>,
}

/// Runs an operation for an authenticated (or public) caller, whatever the
/// channel: rate limit, permission, input check, guardrails, approval gate,
/// the handler or plugin, and the audit rows of success and failure.
pub async fn execute(
    state: &Arc<AppState>,
    op: &Arc<Operation>,
    call: Invocation,
) -> Result<Value, ApiError> {
    // Metrics (`crate::ops::metrics`): route template or tool, never a path.
    let started = std::time::Instant::now();
    let channel = call.meta.channel.clone();
    let route = match (&call.tool, &op.spec.path) {
        (Some(tool), _) => tool.clone(),
        (None, Some(path)) => format!("/api/v1{path}"),
        (None, None) => op.spec.name.clone(),
    };
    let tenant = call.principal.as_ref().and_then(|p| p.tenant_id);
    let result = execute_inner(state, op, call).await;
    let status = match &result {
        Ok(_) => op.spec.success_status,
        Err(error) => error.status().as_u16(),
    };
    if let (true, Some(tenant)) = (status >= 500, tenant) {
        crate::ops::alerts::observe(state, tenant, crate::ops::alerts::Kind::ServerErrors);
    }
    crate::ops::metrics::operation(&channel, &route, status, started.elapsed());
    result
}

async fn execute_inner(
    state: &Arc<AppState>,
    op: &Arc<Operation>,
    call: Invocation,
) -> Result<Value, ApiError> {
    let principal = call.principal;
    let audit = AuditEntry {
        actor_type: principal
            .as_ref()
            .map_or("anonymous", Principal::actor_type)
            .into(),
        actor_id: principal.as_ref().map(|p| p.user_id.to_string()),
        channel: call.meta.channel.clone(),
        operation: op.spec.name.clone(),
        target: Some(call.target),
        outcome: "success".into(),
        ip: call.meta.ip.clone(),
        user_agent: call.meta.user_agent.clone(),
        request_id: Some(call.meta.request_id.clone()),
        store_id: principal
            .as_ref()
            .and_then(|p| p.store_id)
            .map(|s| s.to_string()),
        detail: None,
    };
    let refusal_target = match (&call.tool, &op.spec.path) {
        (Some(tool), _) => Some(format!("tool:{tool}")),
        (None, path) => path.as_ref().map(|p| format!("/api/v1{p}")),
    };
    let context = RunContext {
        meta: call.meta,
        tool: call.tool,
        progress: call.progress,
    };
    let outcome = run(
        state,
        op,
        principal.clone(),
        call.input,
        context,
        audit.clone(),
    )
    .await;
    let result = match outcome {
        Ok((value, audited)) => {
            if op.mutating() && !audited {
                record(state, principal.as_ref(), audit).await;
            }
            Ok(value)
        }
        Err(error) => {
            // Refusals and failures of state-changing calls are audited too,
            // once the caller's tenant is known.
            // They name the route or tool, not the concrete path: a refused
            // request may carry another tenant's ids, and those never enter
            // this tenant's file.
            if op.mutating() && error.status() != StatusCode::UNAUTHORIZED {
                let mut entry = audit.with_outcome(format!("failure:{}", error.code()));
                entry.target = refusal_target;
                record(state, principal.as_ref(), entry).await;
            }
            Err(error)
        }
    };
    if op.mutating() {
        audit::heads::after_commit(state, principal.as_ref().and_then(|p| p.tenant_id)).await;
    }
    result
}

/// Input fields the host adds whatever the operation's schema declares:
/// its path parameters, `idempotency_key` (from the `Idempotency-Key`
/// header) and, on money operations, MCP's `dry_run`.
fn host_fields(op: &Operation) -> Vec<&str> {
    let mut fields: Vec<&str> = op
        .spec
        .path
        .as_deref()
        .unwrap_or("")
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_start_matches('*'))
        .collect();
    fields.push("idempotency_key");
    if op.spec.money.is_some() {
        fields.push(approvals::DRY_RUN);
    }
    fields
}

/// Writes an audit row in a transaction of its own.
pub async fn record(state: &Arc<AppState>, principal: Option<&Principal>, entry: AuditEntry) {
    let Some(tenant) = principal.and_then(|p| p.tenant_id) else {
        return;
    };
    let state = Arc::clone(state);
    let written = blocking(move || {
        let db = state.tenancy.get(tenant)?;
        audit::write(&*db.conn()?, &entry)?;
        Ok(())
    })
    .await;
    if let Err(error) = written {
        tracing::error!(?error, "could not write audit row");
    }
}

/// What `run` needs beyond the operation, caller and input.
struct RunContext {
    meta: RequestMeta,
    tool: Option<String>,
    progress: Option<ProgressSink>,
}

async fn run(
    state: &Arc<AppState>,
    op: &Arc<Operation>,
    principal: Option<Principal>,
    input: Value,
    context: RunContext,
    audit: AuditEntry,
) -> Result<(Value, bool), ApiError> {
    let RunContext {
        meta,
        tool,
        progress,
    } = context;
    match op.access {
        Access::SuperAdmin if !principal.as_ref().is_some_and(|p| p.is_super_admin) => {
            return Err(ApiError::Forbidden(
                "this operation is for platform super-admins".into(),
            ));
        }
        _ => {}
    }
    let tenant = principal.as_ref().and_then(|p| p.tenant_id);
    let entitlements = match tenant {
        Some(tenant) => plan_of(state, tenant).await,
        None => None,
    };
    if let Some(tenant) = tenant {
        let per_minute = entitlements.as_ref().and_then(|e| e.requests_per_minute());
        state.tenant_limiter.check(tenant, per_minute)?;
    }
    // A key's tool allow-list holds on every channel: a REST call of an
    // operation that is an MCP tool is checked under that tool's name.
    if let Some(principal) = &principal {
        let name = tool.clone().or_else(|| {
            state
                .mcp_tools
                .get(&crate::mcp::tools::tool_name(op))
                .filter(|listed| Arc::ptr_eq(listed, op))
                .map(|_| crate::mcp::tools::tool_name(op))
        });
        if let Some(name) = name {
            guardrails::check_tool(principal, &name)?;
        }
    }
    if let (Some(permission), Some(principal)) = (&op.spec.permission, &principal) {
        authz::require(state, principal, permission).await?;
    }
    if let Some(entitlements) = &entitlements {
        billing::admit(entitlements, op, &meta.channel)?;
    }
    if let (Some(tenant), Some(entitlements)) = (tenant, &entitlements)
        && !billing::exempt(op)
    {
        let transaction = op.spec.money.is_some();
        metering::check_quotas(state, tenant, entitlements, &meta.channel, transaction).await?;
        billing::check_limits(state, tenant, entitlements, op).await?;
    }
    // A call refused for its input is still a call made (and metered).
    let checked = input::check(&op.spec.input_schema, &input, &host_fields(op));
    let Some(tenant) = tenant.filter(|_| state.billing.enforced) else {
        checked?;
        return perform(state, op, principal, input, meta, tool, progress, audit).await;
    };
    if matches!(&op.target, Target::Plugin(plugin) if plugin == billing::USAGE_PLUGIN)
        && let Err(error) = metering::flush(state, tenant).await
    {
        tracing::warn!(tenant = %tenant, %error, "could not flush usage counts before a usage read");
    }
    let channel = meta.channel.clone();
    let store = principal
        .as_ref()
        .and_then(|p| p.store_id)
        .map(|s| s.to_string());
    let result = match checked {
        Ok(()) => perform(state, op, principal, input, meta, tool, progress, audit).await,
        Err(error) => Err(error),
    };
    state.meter.count(metering::Call {
        tenant,
        channel: &channel,
        operation: &op.spec.name,
        store,
        transaction: op.spec.money.is_some()
            && result.as_ref().err().is_none_or(may_have_reached_daraja),
        error: result.is_err(),
    });
    result
}

/// Whether a failed money operation may still have moved money or been sent
/// on (to Daraja): anything but a refusal. A 4xx (validation, 409 conflict,
/// not found, plan or permission refusal) and a 503 (Daraja or a setting
/// could not be reached) stopped before anything was sent, so it is not
/// counted as a transaction; a 502 (Daraja refused) or a 5xx mid-call is.
fn may_have_reached_daraja(error: &ApiError) -> bool {
    let status = error.status();
    !(status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE)
}

/// The tenant's plan, or none when plans are not enforced. A billing
/// plugin that cannot answer is logged and the call goes on unrefused:
/// a fault in billing must not take every tenant down.
async fn plan_of(
    state: &Arc<AppState>,
    tenant: crate::ids::TenantId,
) -> Option<Arc<billing::Entitlements>> {
    match billing::entitlements(state, tenant).await {
        Ok(entitlements) => entitlements,
        Err(error) => {
            tracing::error!(tenant = %tenant, %error, "could not read the tenant's plan");
            None
        }
    }
}

/// Runs an admitted call: the host handler, or the plugin behind the
/// approval gate and the API key's amount guardrails.
#[allow(clippy::too_many_arguments)]
async fn perform(
    state: &Arc<AppState>,
    op: &Arc<Operation>,
    principal: Option<Principal>,
    mut input: Value,
    meta: RequestMeta,
    tool: Option<String>,
    progress: Option<ProgressSink>,
    audit: AuditEntry,
) -> Result<(Value, bool), ApiError> {
    match &op.target {
        Target::Host(handler) => {
            let audited = Arc::new(AtomicBool::new(false));
            let call = HostCall {
                principal,
                input,
                meta,
                audit,
                audited: Arc::clone(&audited),
            };
            let value = handler(Arc::clone(state), call).await?;
            Ok((value, audited.load(Ordering::SeqCst)))
        }
        Target::Plugin(plugin) => {
            let principal = principal.ok_or_else(ApiError::unauthenticated)?;
            guardrails::check_role_operation(state, &principal, op, &input, &meta).await?;
            if approvals::required(op, &meta.channel, Some(&principal)) {
                let dry_run = input
                    .as_object_mut()
                    .and_then(|fields| fields.remove(approvals::DRY_RUN))
                    .is_some_and(|v| v == Value::Bool(true));
                let amount = match &op.spec.money {
                    Some(money) => guardrails::amount_of(money, &input)?,
                    None => None,
                };
                let reservation =
                    guardrails::reserve(state, &principal, op, &input, !dry_run).await?;
                if dry_run {
                    return Ok((approvals::dry_run(op, amount, &input), true));
                }
                let intent = approvals::Intent {
                    op,
                    tool: tool.as_deref(),
                    principal: &principal,
                    input,
                    amount,
                    reservation: reservation.clone(),
                    meta: &meta,
                    audit,
                };
                return match approvals::request(state, intent).await {
                    Ok(value) => Ok((value, true)),
                    Err(error) => {
                        if let Some(reservation) = reservation {
                            guardrails::release(state, reservation).await;
                        }
                        Err(error)
                    }
                };
            }
            let reservation = guardrails::reserve(state, &principal, op, &input, true).await?;
            let result =
                invoke_plugin(state, plugin, op, &principal, input, &meta, audit, progress).await;
            if let (Err(_), Some(reservation)) = (&result, reservation) {
                guardrails::release(state, reservation).await;
            }
            Ok((result?, true))
        }
    }
}

/// Runs a plugin operation for a principal, with the success audit row
/// written inside the plugin call's transaction.
#[allow(clippy::too_many_arguments)]
pub async fn invoke_plugin(
    state: &Arc<AppState>,
    plugin: &str,
    op: &Operation,
    principal: &Principal,
    input: Value,
    meta: &RequestMeta,
    audit: AuditEntry,
    progress: Option<ProgressSink>,
) -> Result<Value, ApiError> {
    let tenant = principal.tenant()?;
    let ctx = CallContext {
        tenant_id: tenant.to_string(),
        user_id: Some(principal.user_id.to_string()),
        store_id: principal.store_id.map(|s| s.to_string()),
        request_id: meta.request_id.clone(),
        channel: meta.channel.clone(),
        now_ms: crate::time_util::business_now_ms(),
        // The caller's stores, computed once when the request was
        // authenticated (`authz::confine`); every plugin filters by them.
        allowed_stores: principal.allowed_store_ids(),
    };
    // Concurrent retries with one Idempotency-Key wait for the first call
    // and then replay its answer (crate::api::idempotency_lock).
    let _held = match input.get("idempotency_key").and_then(Value::as_str) {
        Some(key) if !op.spec.annotations.read_only => {
            Some(super::idempotency_lock::hold(tenant, plugin, key).await)
        }
        _ => None,
    };
    let output = call_plugin(
        state,
        tenant,
        plugin,
        &op.spec.name,
        ctx,
        input,
        op.spec.annotations.read_only,
        Some(audit),
        progress,
    )
    .await?;
    Ok(output)
}

/// Calls a plugin operation (public or internal) in a tenant. A success
/// of a mutating operation writes `audit` in the same transaction.
#[allow(clippy::too_many_arguments)]
pub async fn call_plugin(
    state: &Arc<AppState>,
    tenant: crate::ids::TenantId,
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
                        crate::jobs::audit_job_run(conn, entry, output)
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
        authz::invalidate(state, tenant);
    }
    if plugin == billing::PLUGIN {
        state.billing.invalidate(tenant);
    }
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
        E::Host(message) => ApiError::Unexpected(anyhow::anyhow!(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::client_ip;

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let trusted = crate::config::trusted_proxies("10.0.0.0/8, 192.168.1.1");
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "1.1.1.1, 203.0.113.9, 10.0.0.7".parse().expect("header"),
        );
        let proxy = "10.0.0.2".parse().expect("ip");
        let stranger = "198.51.100.4".parse().expect("ip");
        assert_eq!(
            client_ip(proxy, &headers, &trusted).to_string(),
            "203.0.113.9"
        );
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
        assert_eq!(client_ip(proxy, &headers, &[]), proxy);
    }
}
