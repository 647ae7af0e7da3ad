//! Plans and entitlements: before an operation runs, the host asks the
//! tenant's `billing` plugin which plan its subscription is on and in what
//! state, and refuses what that plan or state does not allow — a suspended
//! subscription (402), a feature the plan lacks (403), a plan limit such as
//! `max_stores` (402), a monthly quota (402). Answers are cached per tenant
//! and dropped whenever the billing plugin runs for that tenant.
//!
//! The plan catalog lives in `control.db` (super-admin managed) and reaches
//! plugins as the `plan-catalog` setting; a tenant's entitlements reach
//! them as `entitlements`. A super-admin may turn a feature on or off for
//! one tenant over its plan (`control.db.tenant_feature_overrides`): the
//! gates use the effective features, plan plus overrides.

pub mod charges;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use moka::sync::Cache;
use serde_json::{Value, json};

use crate::core::Core;
use crate::core::operation::{Operation, Target};
use crate::core::plugin_call::call_plugin;
use malipo_foundations::error::{ApiError, blocking};
use malipo_foundations::ids::TenantId;
use malipo_runtime::plugins::host_context;
use malipo_runtime::plugins::services::HostServices;
use malipo_storage::control::Plan;

/// The plugin that owns subscriptions and invoices.
pub const PLUGIN: &str = "billing";
/// The plugin that owns usage records.
pub const USAGE_PLUGIN: &str = "usage";
/// The platform setting naming the tenant whose M-Pesa account collects
/// invoices.
pub const PLATFORM_TENANT_SETTING: &str = "platform_tenant_id";
/// How long a tenant's entitlements are trusted without asking again
/// (billing calls drop them at once; this bounds clock-driven changes).
const CACHE_TTL: Duration = Duration::from_secs(30);

/// What a tenant's subscription allows now.
#[derive(Clone, Debug)]
pub struct Entitlements {
    /// The plan in force (the catalog's free plan once cancelled).
    pub plan: Plan,
    /// `trial`, `active`, `past_due`, `suspended` or `cancelled`.
    pub status: String,
    /// The oldest unpaid invoice, if any.
    pub open_invoice_id: Option<String>,
    /// What it is owed, KES.
    pub amount_due_kes: i64,
    /// Features a super-admin turned on (`true`) or off (`false`) for this
    /// tenant over its plan.
    pub overrides: BTreeMap<String, bool>,
}

impl Entitlements {
    /// The `entitlements` setting plugins read.
    pub fn to_json(&self) -> Value {
        json!({
            "plan": self.plan,
            "status": self.status,
            "open_invoice_id": self.open_invoice_id,
            "amount_due_kes": self.amount_due_kes,
            "features": effective_features(&self.plan, &self.overrides),
            "feature_overrides": self.overrides,
        })
    }

    /// Whether the tenant may use `feature`: its override, else its plan.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.overrides
            .get(feature)
            .copied()
            .unwrap_or_else(|| self.plan.has_feature(feature))
    }

    /// Requests a minute the plan allows, if it sets a number.
    pub fn requests_per_minute(&self) -> Option<u64> {
        self.plan.limit("requests_per_minute")
    }
}

/// The host's view of plans: the catalog, each tenant's cached
/// entitlements, and which tenant is the platform.
pub struct Billing {
    /// Whether metering and entitlement checks run (`MALIPO_METERING`,
    /// default on; off only to measure what they cost).
    pub enforced: bool,
    /// The plan a tenant without a subscription starts a trial of
    /// (`MALIPO_DEFAULT_PLAN`, default `standard`).
    pub default_plan: String,
    catalog: RwLock<Arc<Vec<Plan>>>,
    cache: Cache<TenantId, Arc<Entitlements>>,
    platform: RwLock<Option<TenantId>>,
    services: Arc<HostServices>,
}

impl Billing {
    /// Billing with `catalog` and the platform tenant from `control.db`.
    pub fn new(
        catalog: Vec<Plan>,
        platform: Option<TenantId>,
        services: Arc<HostServices>,
    ) -> Self {
        services.set("plan-catalog", &catalog_json(&catalog));
        let enforced = !malipo_foundations::config::var("MALIPO_METERING")
            .is_ok_and(|v| matches!(v.trim(), "0" | "off" | "false"));
        Self {
            enforced,
            default_plan: malipo_foundations::config::var("MALIPO_DEFAULT_PLAN")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "standard".into()),
            catalog: RwLock::new(Arc::new(catalog)),
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CACHE_TTL)
                .build(),
            platform: RwLock::new(platform),
            services,
        }
    }

    /// The catalog now.
    pub fn catalog(&self) -> Arc<Vec<Plan>> {
        self.catalog
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_default()
    }

    /// Replaces the catalog (after a super-admin changed it) and forgets
    /// every tenant's entitlements.
    pub fn set_catalog(&self, catalog: Vec<Plan>) {
        self.services.set("plan-catalog", &catalog_json(&catalog));
        if let Ok(mut slot) = self.catalog.write() {
            *slot = Arc::new(catalog);
        }
        self.cache.invalidate_all();
        self.services.entitlements.invalidate_all();
    }

    /// The plan with this id.
    pub fn plan(&self, id: &str) -> Option<Plan> {
        self.catalog().iter().find(|p| p.id == id).cloned()
    }

    /// The catalog's free plan (price 0), what a cancelled tenant keeps.
    fn free_plan(&self) -> Option<Plan> {
        self.catalog().iter().find(|p| p.price_kes == 0).cloned()
    }

    /// The tenant whose M-Pesa account collects invoices.
    pub fn platform_tenant(&self) -> Option<TenantId> {
        self.platform.read().ok().and_then(|p| *p)
    }

    /// Names the platform tenant.
    pub fn set_platform_tenant(&self, tenant: TenantId) {
        if let Ok(mut slot) = self.platform.write() {
            *slot = Some(tenant);
        }
    }

    /// Forgets a tenant's entitlements (its billing plugin just ran).
    pub fn invalidate(&self, tenant: TenantId) {
        self.cache.invalidate(&tenant);
        self.services.entitlements.invalidate(&tenant.to_string());
    }

    /// After a call of `plugin` in `tenant`: a call of the billing plugin
    /// may have changed the plan, so its cached entitlements go.
    pub fn plugin_called(&self, plugin: &str, tenant: TenantId) {
        if plugin == PLUGIN {
            self.invalidate(tenant);
        }
    }

    /// Cached entitlements, if any.
    pub fn cached(&self, tenant: TenantId) -> Option<Arc<Entitlements>> {
        self.cache.get(&tenant)
    }

    /// Reads the billing plugin's answer to `entitlements.get`, with the
    /// tenant's feature overrides, and caches it.
    pub fn remember(
        &self,
        tenant: TenantId,
        answer: &Value,
        overrides: BTreeMap<String, bool>,
    ) -> Option<Arc<Entitlements>> {
        let status = answer["status"].as_str()?.to_string();
        let plan_id = answer["plan_id"].as_str()?;
        let plan = if status == "cancelled" {
            self.free_plan().or_else(|| self.plan(plan_id))
        } else {
            self.plan(plan_id)
        }?;
        let entitlements = Arc::new(Entitlements {
            plan,
            status,
            open_invoice_id: answer["open_invoice_id"].as_str().map(str::to_string),
            amount_due_kes: answer["amount_due_kes"].as_i64().unwrap_or(0),
            overrides,
        });
        self.cache.insert(tenant, Arc::clone(&entitlements));
        self.services.entitlements.insert(
            tenant.to_string(),
            entitlements.to_json().to_string().into(),
        );
        Some(entitlements)
    }
}

/// Whether plan state may refuse `op`: billing and usage themselves, and
/// signing in and out, stay reachable so a tenant can always see what it
/// owes and pay it.
pub fn exempt(op: &Operation) -> bool {
    match &op.target {
        Target::Plugin(plugin) => plugin == PLUGIN || plugin == USAGE_PLUGIN,
        Target::Host(_) => matches!(op.tag.as_str(), "auth" | "account" | "billing"),
    }
}

/// Refuses `op` if the subscription's state or the plan's features do not
/// allow it, for a call through `channel`.
pub fn admit(entitlements: &Entitlements, op: &Operation, channel: &str) -> Result<(), ApiError> {
    if exempt(op) {
        return Ok(());
    }
    let plan = &entitlements.plan;
    if entitlements.status == "suspended" {
        let invoice = entitlements
            .open_invoice_id
            .as_deref()
            .map(|id| {
                format!(
                    "pay invoice {id} (KES {}) with POST /api/v1/invoices/{id}/pay",
                    entitlements.amount_due_kes
                )
            })
            .unwrap_or_else(|| "pay the open invoice (GET /api/v1/invoices)".into());
        return Err(ApiError::Plan {
            status: http::StatusCode::PAYMENT_REQUIRED,
            code: "subscription_suspended",
            message: format!(
                "This organization's {} subscription is suspended for non-payment; {invoice} to restore it.",
                plan.name
            ),
        });
    }
    // An AI assistant's call needs `mcp`, whatever else the operation needs.
    let mcp = (channel == "mcp").then_some("mcp");
    for feature in mcp.into_iter().chain(op.spec.feature.as_deref()) {
        if !entitlements.has_feature(feature) {
            if plan.has_feature(feature) {
                return Err(ApiError::Plan {
                    status: http::StatusCode::FORBIDDEN,
                    code: "plan_feature_required",
                    message: format!(
                        "`{feature}` is turned off for this organization by the platform operator."
                    ),
                });
            }
            return Err(feature_refusal(plan, feature));
        }
    }
    Ok(())
}

/// The features a tenant may use: its plan's, with its overrides applied,
/// sorted.
pub fn effective_features(plan: &Plan, overrides: &BTreeMap<String, bool>) -> Vec<String> {
    let mut features: Vec<String> = plan
        .features
        .iter()
        .filter(|f| overrides.get(*f) != Some(&false))
        .cloned()
        .chain(
            overrides
                .iter()
                .filter(|(_, on)| **on)
                .map(|(f, _)| f.clone()),
        )
        .collect();
    features.sort();
    features.dedup();
    features
}

fn feature_refusal(plan: &Plan, feature: &str) -> ApiError {
    ApiError::Plan {
        status: http::StatusCode::FORBIDDEN,
        code: "plan_feature_required",
        message: format!(
            "The {} plan does not include `{feature}`; change plan with PUT /api/v1/subscription (see GET /api/v1/plans).",
            plan.name
        ),
    }
}

/// A limit the plan puts on something the tenant has (stores, people).
pub fn limit_refusal(plan: &Plan, limit: &str, what: &str, used: u64, max: u64) -> ApiError {
    ApiError::Plan {
        status: http::StatusCode::PAYMENT_REQUIRED,
        code: "plan_limit_reached",
        message: format!(
            "The {} plan allows {max} {what} (`{limit}`) and this organization has {used}; upgrade with PUT /api/v1/subscription to add more.",
            plan.name
        ),
    }
}

/// A monthly quota used up.
pub fn quota_refusal(plan: &Plan, quota: &str, what: &str, max: u64, period: &str) -> ApiError {
    ApiError::Plan {
        status: http::StatusCode::PAYMENT_REQUIRED,
        code: "quota_exceeded",
        message: format!(
            "This organization has used the {max} {what} of its {} plan for {period} (`{quota}`); upgrade with PUT /api/v1/subscription or wait for next month.",
            plan.name
        ),
    }
}

/// The context of a call the host makes to bill or collect.
pub fn charge_context(
    tenant: TenantId,
    user: Option<String>,
) -> malipo_runtime::plugins::bindings::CallContext {
    host_context(
        tenant,
        user,
        "system",
        format!("billing-{}", uuid::Uuid::new_v4()),
    )
}

/// The `plan-catalog` setting: every plan as a JSON array.
fn catalog_json(catalog: &[Plan]) -> String {
    serde_json::to_string(catalog).unwrap_or_else(|_| "[]".into())
}

/// The tenant's entitlements, asking its billing plugin when they are not
/// cached (which starts a trial of the default plan for a tenant without a
/// subscription). `None` when plans are not enforced or no billing plugin
/// is installed.
pub async fn entitlements(
    state: &Arc<Core>,
    tenant: TenantId,
) -> Result<Option<Arc<Entitlements>>, ApiError> {
    // The platform does not bill itself.
    if !state.billing.enforced
        || state.runtime.plugin(PLUGIN).is_none()
        || state.billing.platform_tenant() == Some(tenant)
    {
        return Ok(None);
    }
    if let Some(cached) = state.billing.cached(tenant) {
        return Ok(Some(cached));
    }
    let ctx = host_context(
        tenant,
        None,
        "system",
        format!("entitlements-{}", uuid::Uuid::new_v4()),
    );
    let input = json!({"default_plan_id": state.billing.default_plan});
    let answer = call_plugin(
        state,
        tenant,
        PLUGIN,
        "entitlements.get",
        ctx,
        input,
        false,
        None,
        None,
    )
    .await?;
    let state_for_db = Arc::clone(state);
    let overrides = blocking(move || Ok(state_for_db.control.feature_overrides(tenant)?)).await?;
    let remembered = state.billing.remember(tenant, &answer, overrides);
    if let Some(entitlements) = &remembered {
        mirror_plan(state, tenant, &entitlements.plan.id).await;
    }
    Ok(remembered)
}

/// A tenant as shown to clients, with the plan and subscription status
/// billing answers now (`plan`, `subscription_status`), so that an answer
/// given right after the subscription started (registration, a
/// super-admin creating an organization) says what `/me` and
/// `tenant list` say.
pub async fn tenant_json(
    state: &Arc<Core>,
    tenant: &malipo_storage::control::TenantRecord,
) -> Value {
    let mut row = tenant.public_json();
    if let Ok(Some(entitlements)) = entitlements(state, tenant.id).await {
        row["plan"] = json!(entitlements.plan.id);
        row["subscription_status"] = json!(entitlements.status);
    }
    row
}

/// Keeps `control.db`'s `tenants.plan` (what tenant lists and
/// `GET /tenant` show) equal to the plan billing answered; a no-op when it
/// already is. A failure is logged: the plugin's answer stays the truth.
async fn mirror_plan(state: &Arc<Core>, tenant: TenantId, plan: &str) {
    let (state, plan) = (Arc::clone(state), plan.to_string());
    let mirrored = blocking(move || Ok(state.control.mirror_tenant_plan(tenant, &plan)?)).await;
    if let Err(error) = mirrored {
        tracing::warn!(%tenant, ?error, "tenant plan not mirrored into control.db");
    }
}

/// Things a plan counts, by the operation that adds one: the limit and
/// the host table whose active rows are counted.
const COUNTED: &[(&str, &str, &str, &str)] = &[
    (
        "stores.create",
        "max_stores",
        "stores",
        "SELECT COUNT(*) FROM stores WHERE status = 'active'",
    ),
    (
        "invitations.create",
        "max_users",
        "people",
        "SELECT COUNT(*) FROM members WHERE status = 'active'",
    ),
];

/// Refuses an operation that would take the tenant past a plan limit
/// (`max_stores`, `max_users`).
pub async fn check_limits(
    state: &Arc<Core>,
    tenant: TenantId,
    entitlements: &Entitlements,
    op: &Operation,
) -> Result<(), ApiError> {
    let Some(&(_, limit, what, sql)) = COUNTED.iter().find(|(name, ..)| *name == op.spec.name)
    else {
        return Ok(());
    };
    let Some(max) = entitlements.plan.limit(limit) else {
        return Ok(());
    };
    let state_for_db = Arc::clone(state);
    let used: i64 = blocking(move || {
        let db = state_for_db.tenancy.get(tenant)?;
        let conn = db.conn()?;
        Ok(conn.query_row(sql, [], |row| row.get(0))?)
    })
    .await?;
    let used = u64::try_from(used).unwrap_or(0);
    if used >= max {
        return Err(limit_refusal(&entitlements.plan, limit, what, used, max));
    }
    Ok(())
}

/// The plan a new organization asked for (`plan_id` at registration),
/// checked against the catalog before anything is created.
pub fn chosen_plan(state: &Core, plan_id: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(plan_id) = plan_id else {
        return Ok(None);
    };
    match state.billing.plan(&plan_id) {
        Some(plan) if plan.active => Ok(Some(plan.id)),
        _ => {
            let choices: Vec<String> = state
                .billing
                .catalog()
                .iter()
                .filter(|p| p.active)
                .map(|p| p.id.clone())
                .collect();
            Err(ApiError::Validation(format!(
                "no plan `{plan_id}` to choose; plans are: {}",
                choices.join(", ")
            )))
        }
    }
}

/// Starts a new organization's subscription: a trial of `plan` (or of the
/// default plan), or the plan itself when it has no trial.
pub async fn start_subscription(
    state: &Arc<Core>,
    tenant: TenantId,
    plan: Option<String>,
) -> Result<(), ApiError> {
    if state.runtime.plugin(PLUGIN).is_none() {
        return Ok(());
    }
    let plan = plan.unwrap_or_else(|| state.billing.default_plan.clone());
    call_plugin(
        state,
        tenant,
        PLUGIN,
        "subscription.start",
        charge_context(tenant, None),
        json!({"plan_id": plan}),
        false,
        None,
        None,
    )
    .await?;
    mirror_plan(state, tenant, &plan).await;
    Ok(())
}
