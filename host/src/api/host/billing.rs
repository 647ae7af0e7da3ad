//! The host's billing operations: the plan catalog (`/plans`,
//! `/admin/plans`), naming the platform tenant, a super-admin's plan
//! override, paying an invoice by STK push from the platform's account,
//! usage across tenants, and the test clock.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::api::dispatch::call_plugin;
use crate::api::operation::{HostCall, HostFuture};
use crate::app::AppState;
use crate::billing::{self, PLATFORM_TENANT_SETTING, USAGE_PLUGIN, charge_context, charges};
use crate::control::{LIMIT_NAMES, Plan, PlatformAuditEntry};
use crate::error::{ApiError, blocking};
use crate::ids::TenantId;

/// `GET /plans`: the plans a tenant may choose.
pub fn list_plans(state: Arc<AppState>, _call: HostCall) -> HostFuture {
    Box::pin(async move {
        let catalog = state.billing.catalog();
        let active: Vec<&Plan> = catalog.iter().filter(|p| p.active).collect();
        Ok(json!({"plans": active}))
    })
}

/// `GET /admin/plans`: every plan, inactive ones included.
pub fn list_all_plans(state: Arc<AppState>, _call: HostCall) -> HostFuture {
    Box::pin(async move { Ok(json!({"plans": *state.billing.catalog()})) })
}

fn plan_field<'a>(input: &'a Value, name: &str) -> Option<&'a Value> {
    input.get(name).filter(|v| !v.is_null())
}

/// Applies the fields present in `input` to `plan`, checking each.
fn apply_plan_fields(plan: &mut Plan, input: &Value) -> Result<(), ApiError> {
    let bad = |message: String| ApiError::Validation(message);
    if let Some(name) = plan_field(input, "name") {
        let name = name.as_str().map(str::trim).unwrap_or_default();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(bad("`name` must be 1 to 60 characters".into()));
        }
        plan.name = name.to_string();
    }
    if let Some(price) = plan_field(input, "price_kes") {
        plan.price_kes = price
            .as_i64()
            .filter(|p| (0..=10_000_000).contains(p))
            .ok_or_else(|| {
                bad("`price_kes` must be a whole number of KES from 0 to 10,000,000".into())
            })?;
    }
    if let Some(interval) = plan_field(input, "interval") {
        plan.interval = match interval.as_str() {
            Some(i @ ("month" | "year")) => i.to_string(),
            _ => return Err(bad("`interval` must be `month` or `year`".into())),
        };
    }
    if let Some(days) = plan_field(input, "trial_days") {
        plan.trial_days = days
            .as_i64()
            .filter(|d| (0..=365).contains(d))
            .ok_or_else(|| bad("`trial_days` must be 0 to 365".into()))?;
    }
    if let Some(features) = plan_field(input, "features") {
        let list = features
            .as_array()
            .ok_or_else(|| bad("`features` must be a list".into()))?;
        let mut names = Vec::new();
        for feature in list {
            let name = feature
                .as_str()
                .filter(|f| {
                    !f.is_empty()
                        && f.len() <= 40
                        && f.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
                .ok_or_else(|| {
                    bad("each feature is lower-case letters and `_`, e.g. `bulk_payouts`".into())
                })?;
            if !names.iter().any(|n: &String| n == name) {
                names.push(name.to_string());
            }
        }
        plan.features = names;
    }
    if let Some(limits) = plan_field(input, "limits") {
        let given = limits
            .as_object()
            .ok_or_else(|| bad("`limits` must be an object".into()))?;
        let mut merged: Map<String, Value> = plan.limits.clone();
        for (name, value) in given {
            if !LIMIT_NAMES.contains(&name.as_str()) {
                return Err(bad(format!(
                    "unknown limit `{name}`; limits are {}",
                    LIMIT_NAMES.join(", ")
                )));
            }
            if !(value.is_null() || value.as_u64().is_some()) {
                return Err(bad(format!(
                    "limit `{name}` must be a whole number or null (unlimited)"
                )));
            }
            merged.insert(name.clone(), value.clone());
        }
        plan.limits = merged;
    }
    if let Some(active) = plan_field(input, "active") {
        plan.active = active
            .as_bool()
            .ok_or_else(|| bad("`active` must be true or false".into()))?;
    }
    Ok(())
}

fn audit_platform(
    state: &AppState,
    call: &HostCall,
    operation: &str,
    target: &str,
    detail: Value,
) -> Result<(), ApiError> {
    state.control.platform_audit(&PlatformAuditEntry {
        actor_id: call.principal.as_ref().map(|p| p.user_id.to_string()),
        channel: call.meta.channel.clone(),
        operation: operation.into(),
        target: Some(target.into()),
        outcome: "success".into(),
        ip: call.meta.ip.clone(),
        user_agent: call.meta.user_agent.clone(),
        request_id: Some(call.meta.request_id.clone()),
        detail: Some(detail.to_string()),
    })?;
    Ok(())
}

/// `POST /admin/plans`: adds a plan.
pub fn create_plan(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
        let id = call.str_field("id")?;
        if id.is_empty()
            || id.len() > 40
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(ApiError::Validation(
                "`id` must be 1 to 40 lower-case letters, digits, `-` or `_`".into(),
            ));
        }
        let mut plan = Plan {
            id: id.clone(),
            name: String::new(),
            price_kes: 0,
            interval: "month".into(),
            trial_days: 0,
            features: Vec::new(),
            limits: Map::new(),
            active: true,
        };
        call.str_field("name")?;
        apply_plan_fields(&mut plan, &call.input)?;
        blocking(move || {
            if !state.control.create_plan(&plan)? {
                return Err(ApiError::Conflict(format!(
                    "a plan with id `{}` exists; change it with PATCH /api/v1/admin/plans/{}",
                    plan.id, plan.id
                )));
            }
            audit_platform(&state, &call, "plan.created", &plan.id, json!(plan))?;
            state.billing.set_catalog(state.control.plans()?);
            Ok(json!(plan))
        })
        .await
    })
}

/// `PATCH /admin/plans/{id}`: changes a plan's fields.
pub fn update_plan(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
        let id = call.str_field("id")?;
        let mut plan = state
            .billing
            .plan(&id)
            .ok_or_else(|| ApiError::not_found("plan"))?;
        apply_plan_fields(&mut plan, &call.input)?;
        blocking(move || {
            if !state.control.update_plan(&plan)? {
                return Err(ApiError::not_found("plan"));
            }
            audit_platform(&state, &call, "plan.updated", &plan.id, json!(plan))?;
            state.billing.set_catalog(state.control.plans()?);
            Ok(json!(plan))
        })
        .await
    })
}

/// `GET /admin/platform`: which tenant collects invoices.
pub fn get_platform(state: Arc<AppState>, _call: HostCall) -> HostFuture {
    Box::pin(async move {
        Ok(json!({"tenant_id": state.billing.platform_tenant().map(|t| t.to_string())}))
    })
}

/// `PUT /admin/platform` `{tenant_id}`: names the tenant whose M-Pesa
/// account collects every tenant's invoices.
pub fn set_platform(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
        let tenant = TenantId::parse(&call.str_field("tenant_id")?)
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        blocking(move || {
            if state.control.tenant(tenant)?.is_none() {
                return Err(ApiError::not_found("tenant"));
            }
            state
                .control
                .set_platform_setting(PLATFORM_TENANT_SETTING, &tenant.to_string())?;
            audit_platform(
                &state,
                &call,
                "platform.tenant_set",
                &tenant.to_string(),
                json!({}),
            )?;
            state.billing.set_platform_tenant(tenant);
            Ok(json!({"tenant_id": tenant.to_string()}))
        })
        .await
    })
}

/// `PUT /admin/tenants/{id}/plan` `{plan_id}`: a super-admin moves a
/// tenant to a plan at once, without a charge.
pub fn set_tenant_plan(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
        let tenant =
            TenantId::parse(&call.str_field("id")?).ok_or_else(|| ApiError::not_found("tenant"))?;
        let plan_id = call.str_field("plan_id")?;
        state.billing.plan(&plan_id).ok_or_else(|| {
            ApiError::Validation(format!("no plan `{plan_id}` (see GET /api/v1/admin/plans)"))
        })?;
        let state_for_db = Arc::clone(&state);
        if blocking(move || Ok(state_for_db.control.tenant(tenant)?))
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("tenant"));
        }
        let subscription = call_plugin(
            &state,
            tenant,
            billing::PLUGIN,
            "subscription.set",
            charge_context(tenant, None),
            json!({"plan_id": plan_id}),
            false,
            None,
            None,
        )
        .await?;
        let state_for_db = Arc::clone(&state);
        let plan = plan_id.clone();
        blocking(move || {
            audit_platform(
                &state_for_db,
                &call,
                "tenant.plan_changed",
                &tenant.to_string(),
                json!({"plan_id": plan}),
            )
        })
        .await?;
        Ok(subscription)
    })
}

/// `POST /invoices/{id}/pay` `{phone_number}`: an STK push from the
/// platform's account for the invoice.
pub fn pay_invoice(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
        let principal = call.principal()?;
        let tenant = principal.tenant()?;
        let user = Some(principal.user_id.to_string());
        let invoice = call.str_field("id")?;
        let phone = call.str_field("phone_number")?;
        charges::pay_invoice(&state, tenant, user, &invoice, &phone).await
    })
}

/// `GET /admin/usage`: this month's usage of every tenant.
pub fn usage_across_tenants(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
        let period = call.opt_str_field("period")?;
        if state.runtime.plugin(USAGE_PLUGIN).is_none() {
            return Ok(json!({"tenants": []}));
        }
        let state_for_db = Arc::clone(&state);
        let tenants = blocking(move || Ok(state_for_db.control.tenants()?)).await?;
        let mut rows = Vec::new();
        for tenant in tenants {
            if let Err(error) = crate::metering::flush(&state, tenant.id).await {
                tracing::warn!(tenant = %tenant.id, %error, "could not flush usage counts");
            }
            let ctx = charge_context(tenant.id, None);
            let summary = call_plugin(
                &state,
                tenant.id,
                USAGE_PLUGIN,
                "usage.summary",
                ctx,
                json!({"period": period}),
                true,
                None,
                None,
            )
            .await
            .unwrap_or_else(|error| json!({"error": error.public_message()}));
            let plan = billing::entitlements(&state, tenant.id)
                .await
                .ok()
                .flatten()
                .map(|e| json!({"id": e.plan.id, "name": e.plan.name, "status": e.status}));
            rows.push(json!({
                "tenant_id": tenant.id.to_string(),
                "name": tenant.name,
                "status": tenant.status,
                "plan": plan,
                "usage": summary,
            }));
        }
        Ok(json!({"tenants": rows}))
    })
}

/// Whether the test clock is on (`MALIPO_TEST_CLOCK=1`).
pub fn test_clock_enabled() -> bool {
    crate::config::var("MALIPO_TEST_CLOCK").is_ok_and(|v| matches!(v.trim(), "1" | "true" | "on"))
}

/// `POST /admin/clock` `{advance_secs}`: moves the business clock forward
/// (test clock only) and runs every job and event delivery once, so
/// trials end and invoices fall due without waiting.
pub fn advance_clock(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
        if !test_clock_enabled() {
            return Err(ApiError::NotFound(
                "the test clock is off (start the server with MALIPO_TEST_CLOCK=1)".into(),
            ));
        }
        let secs = call
            .input
            .get("advance_secs")
            .and_then(Value::as_i64)
            .filter(|s| (0..=10 * 365 * 86_400).contains(s))
            .ok_or_else(|| {
                ApiError::Validation("`advance_secs` must be 0 to ten years of seconds".into())
            })?;
        let now = crate::time_util::advance_business_clock(secs.saturating_mul(1000));
        crate::metering::flush_all(&state).await;
        crate::metering::forget_months(&state);
        let report = run_due_work(&state).await?;
        Ok(json!({
            "now": crate::time_util::format_ms(now),
            "jobs": report,
        }))
    })
}

/// Runs every job for every tenant, then delivers the events they emitted.
async fn run_due_work(state: &Arc<AppState>) -> Result<Value, ApiError> {
    let jobs = crate::jobs::run_once(state, None, crate::jobs::Scope::AllTenants).await?;
    let delivered = crate::events::run_once(state, crate::events::Scope::AllTenants)
        .await
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    Ok(json!({
        "runs": jobs.runs,
        "failures": jobs.failures,
        "problems": jobs.problems,
        "events_delivered": delivered.delivered,
    }))
}
