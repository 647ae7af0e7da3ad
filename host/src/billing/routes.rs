//! The host's billing operations: the plan catalog (`/plans`,
//! `/admin/plans`), naming the platform tenant, a super-admin's plan
//! override, paying an invoice by STK push from the platform's account,
//! usage across tenants, and the test clock.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::billing::{self, PLATFORM_TENANT_SETTING, USAGE_PLUGIN, charge_context, charges};
use crate::control::{LIMIT_NAMES, Plan, PlatformAuditEntry};
use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Access, Op, Operation};
use crate::core::plugin_call::call_plugin;
use crate::error::{ApiError, blocking};
use crate::ids::TenantId;
use crate::json_schema::{nullable, object, uuid};

/// `GET /plans`: the plans a tenant may choose.
pub async fn list_plans(state: Arc<Core>, _call: HostCall) -> Result<Value, ApiError> {
    let catalog = state.billing.catalog();
    let active: Vec<&Plan> = catalog.iter().filter(|p| p.active).collect();
    Ok(json!({"plans": active}))
}

/// `GET /admin/plans`: every plan, inactive ones included.
pub async fn list_all_plans(state: Arc<Core>, _call: HostCall) -> Result<Value, ApiError> {
    Ok(json!({"plans": *state.billing.catalog()}))
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
    state: &Core,
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
pub async fn create_plan(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
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
}

/// `PATCH /admin/plans/{id}`: changes a plan's fields.
pub async fn update_plan(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
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
}

/// `GET /admin/platform`: which tenant collects invoices.
pub async fn get_platform(state: Arc<Core>, _call: HostCall) -> Result<Value, ApiError> {
    Ok(json!({"tenant_id": state.billing.platform_tenant().map(|t| t.to_string())}))
}

/// `PUT /admin/platform` `{tenant_id}`: names the tenant whose M-Pesa
/// account collects every tenant's invoices.
pub async fn set_platform(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
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
}

/// `PUT /admin/tenants/{id}/plan` `{plan_id}`: a super-admin moves a
/// tenant to a plan at once, without a charge.
pub async fn set_tenant_plan(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
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
}

/// `POST /invoices/{id}/pay` `{phone_number}`: an STK push from the
/// platform's account for the invoice.
pub async fn pay_invoice(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?;
    let tenant = principal.tenant()?;
    let user = Some(principal.user_id.to_string());
    let invoice = call.str_field("id")?;
    let phone = call.str_field("phone_number")?;
    charges::pay_invoice(&state, tenant, user, &invoice, &phone).await
}

/// `GET /admin/usage`: this month's usage of every tenant.
pub async fn usage_across_tenants(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
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
}

/// Whether the test clock is on (`MALIPO_TEST_CLOCK=1`).
pub fn test_clock_enabled() -> bool {
    crate::config::var("MALIPO_TEST_CLOCK").is_ok_and(|v| matches!(v.trim(), "1" | "true" | "on"))
}

/// `POST /admin/clock` `{advance_secs}`: moves the business clock forward
/// (test clock only) and runs every job and event delivery once, so
/// trials end and invoices fall due without waiting.
pub async fn advance_clock(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
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
}

/// Runs every job for every tenant, then delivers the events they emitted.
async fn run_due_work(state: &Arc<Core>) -> Result<Value, ApiError> {
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

/// Host operations that answer a plugin operation's answer as it is:
/// `(host operation, plugin, plugin operation)`. The plugin's manifest
/// declares that answer's schema once; it replaces the host's own
/// declaration when the plugin is loaded ([`crate::app::all_operations`]).
pub const PLUGIN_ANSWERS: &[(&str, &str, &str)] =
    &[("admin.tenants.plan", billing::PLUGIN, "subscription.set")];

/// The answer of `PUT /admin/tenants/{id}/plan` without the billing
/// plugin's manifest at hand: the fields the host itself relies on.
fn subscription_schema() -> Value {
    json!({
        "type": "object",
        "required": ["plan_id", "status"],
        "properties": {"plan_id": {"type": "string"}, "status": {"type": "string"}},
        "description": "The organization's subscription, as the billing plugin's `subscription.set` answers it (the shape of `GET /subscription`)."
    })
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    let str_ = json!({"type": "string"});
    let plan_props = json!({
        "id": str_, "name": str_, "price_kes": {"type": "integer", "minimum": 0},
        "interval": {"type": "string", "enum": ["month", "year"]},
        "trial_days": {"type": "integer", "minimum": 0},
        "features": {"type": "array", "items": {"type": "string"}},
        "limits": {"type": "object", "description": "max_stores, max_users, api_calls_per_month, transactions_per_month, requests_per_minute: whole numbers, or null for unlimited"},
        "active": {"type": "boolean"}
    });
    vec![
        Op::get("/plans", "plans.list")
            .summary("The plans an organization may choose: price in KES, interval, trial days, features and limits.")
            .output(object(
                &["plans"],
                json!({"plans": {"type": "array", "items": {"type": "object", "properties": plan_props}}}),
            ))
            .access(Access::Public)
            .tag("billing")
            .handle(list_plans),
        Op::get("/admin/plans", "admin.plans.list")
            .summary("Every plan, inactive ones included (super-admin).")
            .output(object(
                &["plans"],
                json!({"plans": {"type": "array", "items": object(&["id"], plan_props.clone())}}),
            ))
            .access(Access::SuperAdmin)
            .handle(list_all_plans),
        Op::post("/admin/plans", "admin.plans.create")
            .summary("Add a plan to the catalog (super-admin).")
            .input(object(&["id", "name"], plan_props.clone()))
            .output(object(&["id"], plan_props.clone()))
            .status(201)
            .access(Access::SuperAdmin)
            .handle(create_plan),
        Op::patch("/admin/plans/{id}", "admin.plans.update")
            .summary("Change a plan: the fields given replace the plan's (limits merge by name). Subscribers see it at once (super-admin).")
            .input(object(&["id"], plan_props.clone()))
            .output(object(&["id"], plan_props.clone()))
            .access(Access::SuperAdmin)
            .handle(update_plan),
        Op::get("/admin/platform", "admin.platform.get")
            .summary("Which organization is the platform itself: its M-Pesa account collects every invoice (super-admin).")
            .output(object(
                &["tenant_id"],
                json!({"tenant_id": nullable(uuid())}),
            ))
            .access(Access::SuperAdmin)
            .handle(get_platform),
        Op::put("/admin/platform", "admin.platform.set")
            .summary("Name the organization whose M-Pesa account collects invoices (configure its M-Pesa like any organization's) (super-admin).")
            .input(object(&["tenant_id"], json!({"tenant_id": uuid()})))
            .output(object(&["tenant_id"], json!({"tenant_id": uuid()})))
            .access(Access::SuperAdmin)
            .handle(set_platform),
        Op::put("/admin/tenants/{id}/plan", "admin.tenants.plan")
            .summary("Move an organization to a plan at once, without a charge (super-admin).")
            .input(object(&["id", "plan_id"], json!({"id": uuid(), "plan_id": str_})))
            .output(subscription_schema())
            .access(Access::SuperAdmin)
            .handle(set_tenant_plan),
        Op::get("/admin/usage", "admin.usage")
            .summary("This month's usage of every organization, with its plan and subscription status (super-admin).")
            .input(object(
                &[],
                json!({"period": {"type": "string", "description": "YYYY-MM; default this month"}}),
            ))
            .output(object(&["tenants"], json!({"tenants": {"type": "array"}})))
            .access(Access::SuperAdmin)
            .handle(usage_across_tenants),
        Op::post("/admin/clock", "admin.clock.advance")
            .summary("Test clock (only with MALIPO_TEST_CLOCK=1): move the business clock forward and run every job and event delivery once (super-admin).")
            .input(object(
                &["advance_secs"],
                json!({"advance_secs": {"type": "integer", "minimum": 0}}),
            ))
            .output(object(
                &["now", "jobs"],
                json!({
                    "now": {"type": "string", "description": "The business clock after the move."},
                    "jobs": object(
                        &["runs", "failures", "problems", "events_delivered"],
                        json!({
                            "runs": {"type": "integer", "minimum": 0, "description": "Job runs (organizations × jobs)."},
                            "failures": {"type": "integer", "minimum": 0, "description": "Runs that failed outright."},
                            "problems": {"type": "array", "items": str_, "description": "Problems jobs reported, one line each."},
                            "events_delivered": {"type": "integer", "minimum": 0}
                        }),
                    )
                }),
            ))
            .update()
            .access(Access::SuperAdmin)
            .handle(advance_clock),
        Op::post("/invoices/{id}/pay", "invoices.pay")
            .permission("billing.manage")
            .summary("Pay an invoice by M-Pesa: sends an STK push prompt from the platform's account to `phone_number`; the invoice is marked paid when the payment completes.")
            .input(object(
                &["id", "phone_number"],
                json!({"id": str_, "phone_number": {"type": "string", "description": "The Safaricom number to prompt, e.g. 0712345678."}}),
            ))
            .output(object(
                &["invoice_id", "attempt_id", "transaction_id", "status"],
                json!({"invoice_id": str_, "attempt_id": str_, "transaction_id": str_, "amount_kes": {"type": "integer"}, "status": str_, "message": str_}),
            ))
            .status(202)
            .tag("billing")
            .mcp_tool("billing_pay_invoice")
            .handle(pay_invoice),
    ]
}
