//! The one code path every operation takes, whatever the channel: REST
//! requests (read by `malipo::rest::serve`), MCP tool calls, approvals
//! replayed by a person — all go through [`execute`]: rate limit,
//! permission, input check, API-key guardrails, the approval gate, the
//! host handler or plugin, and the audit rows. [`call_plugin`] is how the
//! core's own services (billing, metering, jobs, callbacks) call plugins.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::StatusCode;
use serde_json::Value;

use crate::approvals::service as approvals;
use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::core::Core;
use crate::core::operation::{Access, Answer, HostCall, Operation, RequestMeta, Target};
use crate::core::{authz, guardrails, input};
use crate::{billing, metering};
use malipo_foundations::error::{ApiError, blocking};
use malipo_runtime::plugins::ProgressSink;
use malipo_runtime::plugins::bindings::CallContext;

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
    state: &Arc<Core>,
    op: &Arc<Operation>,
    call: Invocation,
) -> Result<Answer, ApiError> {
    // Metrics (`malipo::ops::metrics`): route template or tool, never a path.
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
        crate::alerts::service::observe(state, tenant, crate::alerts::service::Kind::ServerErrors);
    }
    malipo_foundations::telemetry::operation(&channel, &route, status, started.elapsed());
    result
}

async fn execute_inner(
    state: &Arc<Core>,
    op: &Arc<Operation>,
    call: Invocation,
) -> Result<Answer, ApiError> {
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
pub async fn record(state: &Arc<Core>, principal: Option<&Principal>, entry: AuditEntry) {
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
    state: &Arc<Core>,
    op: &Arc<Operation>,
    principal: Option<Principal>,
    input: Value,
    context: RunContext,
    audit: AuditEntry,
) -> Result<(Answer, bool), ApiError> {
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
        let name = tool
            .clone()
            .or_else(|| op.is_tool().then(|| op.tool_name()));
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
    state: &Arc<Core>,
    tenant: malipo_foundations::ids::TenantId,
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
    state: &Arc<Core>,
    op: &Arc<Operation>,
    principal: Option<Principal>,
    mut input: Value,
    meta: RequestMeta,
    tool: Option<String>,
    progress: Option<ProgressSink>,
    audit: AuditEntry,
) -> Result<(Answer, bool), ApiError> {
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
                    return Ok((approvals::dry_run(op, amount, &input).into(), true));
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
                    Ok(value) => Ok((value.into(), true)),
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
            Ok((result?.into(), true))
        }
    }
}

/// Runs a plugin operation for a principal, with the success audit row
/// written inside the plugin call's transaction.
#[allow(clippy::too_many_arguments)]
pub async fn invoke_plugin(
    state: &Arc<Core>,
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
        now_ms: malipo_foundations::time_util::business_now_ms(),
        // The caller's stores, computed once when the request was
        // authenticated (`authz::confine`); every plugin filters by them.
        allowed_stores: principal.allowed_store_ids(),
    };
    // Concurrent retries with one Idempotency-Key wait for the first call
    // and then replay its answer (crate::core::idempotency_lock).
    let _held = match input.get("idempotency_key").and_then(Value::as_str) {
        Some(key) if !op.spec.annotations.read_only => {
            Some(crate::core::idempotency_lock::hold(tenant, plugin, key).await)
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

use crate::core::plugin_call::call_plugin;
