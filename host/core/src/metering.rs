//! Metering: every call a tenant makes through REST or MCP is counted in
//! memory (by day, channel, operation and store; money operations also as
//! transactions) and flushed in batches to the tenant's `usage` plugin —
//! every `MALIPO_USAGE_FLUSH_MS` (default 5000), before any `usage`
//! operation of that tenant reads, and at shutdown. The month's totals are
//! kept beside, seeded once from the plugin, so monthly quotas are checked
//! without a database read. Counts not yet flushed when the process dies
//! are lost (at most one flush interval's worth); quotas then under-count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::billing::{Entitlements, USAGE_PLUGIN, quota_refusal};
use crate::core::Core;
use crate::core::plugin_call::call_plugin;
use malipo_foundations::error::ApiError;
use malipo_foundations::ids::TenantId;
use malipo_runtime::plugins::host_context;

/// One row of counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    day: String,
    channel: String,
    operation: String,
    store: Option<String>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    calls: u64,
    errors: u64,
    transactions: u64,
}

/// A tenant's totals for one month.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonthTotals {
    /// `YYYY-MM`.
    pub period: String,
    /// REST and MCP calls.
    pub api_calls: u64,
    /// Money operations requested.
    pub transactions: u64,
}

/// What one call adds.
pub struct Call<'a> {
    /// Whose.
    pub tenant: TenantId,
    /// `rest`, `mcp`, …
    pub channel: &'a str,
    /// Operation name.
    pub operation: &'a str,
    /// The store of the request.
    pub store: Option<String>,
    /// Whether the operation moves money.
    pub transaction: bool,
    /// Whether it failed.
    pub error: bool,
}

/// The in-memory meter.
#[derive(Default)]
pub struct Meter {
    pending: Mutex<HashMap<TenantId, HashMap<Key, Counts>>>,
    months: Mutex<HashMap<TenantId, MonthTotals>>,
    /// One flush at a time, so seeding a month's totals sees every count
    /// exactly once.
    flushing: tokio::sync::Mutex<()>,
}

/// `YYYY-MM-DD` and `YYYY-MM` of a business-clock instant.
fn day_and_period(ms: u64) -> (String, String) {
    let day = malipo_foundations::time_util::format_ms(ms);
    let day = day.get(..10).unwrap_or("1970-01-01").to_string();
    let period = day.get(..7).unwrap_or("1970-01").to_string();
    (day, period)
}

/// Whether calls on this channel count as API calls.
fn is_api_channel(channel: &str) -> bool {
    channel == "rest" || channel == "mcp"
}

impl Meter {
    /// Counts one call.
    pub fn count(&self, call: Call<'_>) {
        let (day, period) = day_and_period(malipo_foundations::time_util::business_now_ms());
        if let Ok(mut months) = self.months.lock()
            && let Some(month) = months.get_mut(&call.tenant)
            && month.period == period
        {
            if is_api_channel(call.channel) {
                month.api_calls += 1;
            }
            if call.transaction {
                month.transactions += 1;
            }
        }
        let key = Key {
            day,
            channel: call.channel.to_string(),
            operation: call.operation.to_string(),
            store: call.store,
        };
        if let Ok(mut pending) = self.pending.lock() {
            let counts = pending
                .entry(call.tenant)
                .or_default()
                .entry(key)
                .or_default();
            counts.calls += 1;
            counts.errors += u64::from(call.error);
            counts.transactions += u64::from(call.transaction);
        }
    }

    /// The tenant's counts not yet flushed for `period`.
    fn pending_totals(&self, tenant: TenantId, period: &str) -> MonthTotals {
        let mut totals = MonthTotals {
            period: period.to_string(),
            ..MonthTotals::default()
        };
        if let Ok(pending) = self.pending.lock()
            && let Some(rows) = pending.get(&tenant)
        {
            for (key, counts) in rows.iter().filter(|(k, _)| k.day.starts_with(period)) {
                if is_api_channel(&key.channel) {
                    totals.api_calls += counts.calls;
                }
                totals.transactions += counts.transactions;
            }
        }
        totals
    }

    fn take(&self, tenant: TenantId) -> HashMap<Key, Counts> {
        self.pending
            .lock()
            .ok()
            .and_then(|mut pending| pending.remove(&tenant))
            .unwrap_or_default()
    }

    fn put_back(&self, tenant: TenantId, rows: HashMap<Key, Counts>) {
        if let Ok(mut pending) = self.pending.lock() {
            let mine = pending.entry(tenant).or_default();
            for (key, counts) in rows {
                let slot = mine.entry(key).or_default();
                slot.calls += counts.calls;
                slot.errors += counts.errors;
                slot.transactions += counts.transactions;
            }
        }
    }

    fn tenants(&self) -> Vec<TenantId> {
        self.pending
            .lock()
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default()
    }
}

/// Sends a tenant's pending counts to its usage plugin; on failure they
/// are kept for the next flush.
pub async fn flush(state: &Arc<Core>, tenant: TenantId) -> Result<(), ApiError> {
    let _one_at_a_time = state.meter.flushing.lock().await;
    flush_locked(state, tenant).await
}

async fn flush_locked(state: &Arc<Core>, tenant: TenantId) -> Result<(), ApiError> {
    if state.runtime.plugin(USAGE_PLUGIN).is_none() {
        return Ok(());
    }
    let rows = state.meter.take(tenant);
    if rows.is_empty() {
        return Ok(());
    }
    let entries: Vec<Value> = rows
        .iter()
        .map(|(key, counts)| {
            json!({
                "day": key.day, "channel": key.channel, "operation": key.operation,
                "store_id": key.store, "calls": counts.calls, "errors": counts.errors,
                "transactions": counts.transactions,
            })
        })
        .collect();
    let ctx = host_context(
        tenant,
        None,
        "system",
        format!("usage-{}", uuid::Uuid::new_v4()),
    );
    let recorded = call_plugin(
        state,
        tenant,
        USAGE_PLUGIN,
        "usage.record",
        ctx,
        json!({"entries": entries}),
        false,
        None,
        None,
    )
    .await;
    if let Err(error) = recorded {
        state.meter.put_back(tenant, rows);
        return Err(error);
    }
    Ok(())
}

/// The tenant's totals this month: seeded once from the usage plugin, then
/// kept in memory.
pub async fn month_totals(state: &Arc<Core>, tenant: TenantId) -> Result<MonthTotals, ApiError> {
    let (_, period) = day_and_period(malipo_foundations::time_util::business_now_ms());
    if let Some(month) = state
        .meter
        .months
        .lock()
        .ok()
        .and_then(|m| m.get(&tenant).cloned())
        .filter(|m| m.period == period)
    {
        return Ok(month);
    }
    let _one_at_a_time = state.meter.flushing.lock().await;
    flush_locked(state, tenant).await?;
    let ctx = host_context(
        tenant,
        None,
        "system",
        format!("usage-{}", uuid::Uuid::new_v4()),
    );
    let stored = call_plugin(
        state,
        tenant,
        USAGE_PLUGIN,
        "usage.totals",
        ctx,
        json!({"period": period}),
        true,
        None,
        None,
    )
    .await?;
    // Counts that arrived since the flush are pending, not yet stored.
    let pending = state.meter.pending_totals(tenant, &period);
    let month = MonthTotals {
        api_calls: stored["api_calls"].as_u64().unwrap_or(0) + pending.api_calls,
        transactions: stored["transactions"].as_u64().unwrap_or(0) + pending.transactions,
        period,
    };
    if let Ok(mut months) = state.meter.months.lock() {
        months.insert(tenant, month.clone());
    }
    Ok(month)
}

/// Refuses a call past the plan's monthly quotas: `api_calls_per_month`
/// for REST and MCP calls, `transactions_per_month` for money operations.
pub async fn check_quotas(
    state: &Arc<Core>,
    tenant: TenantId,
    entitlements: &Entitlements,
    channel: &str,
    transaction: bool,
) -> Result<(), ApiError> {
    let plan = &entitlements.plan;
    let api_limit = plan
        .limit("api_calls_per_month")
        .filter(|_| is_api_channel(channel));
    let tx_limit = plan.limit("transactions_per_month").filter(|_| transaction);
    if api_limit.is_none() && tx_limit.is_none() || state.runtime.plugin(USAGE_PLUGIN).is_none() {
        return Ok(());
    }
    let month = month_totals(state, tenant).await?;
    if let Some(max) = api_limit.filter(|max| month.api_calls >= *max) {
        return Err(quota_refusal(
            plan,
            "api_calls_per_month",
            "API calls",
            max,
            &month.period,
        ));
    }
    if let Some(max) = tx_limit.filter(|max| month.transactions >= *max) {
        return Err(quota_refusal(
            plan,
            "transactions_per_month",
            "transactions",
            max,
            &month.period,
        ));
    }
    Ok(())
}

/// Flushes every tenant's pending counts.
pub async fn flush_all(state: &Arc<Core>) {
    for tenant in state.meter.tenants() {
        if let Err(error) = flush(state, tenant).await {
            tracing::warn!(tenant = %tenant, %error, "could not flush usage counts");
        }
    }
}

/// Flushes forever, every `MALIPO_USAGE_FLUSH_MS` (default 5000).
pub async fn worker(state: Arc<Core>) {
    let every = malipo_foundations::config::var("MALIPO_USAGE_FLUSH_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(5000)
        .max(10);
    loop {
        tokio::time::sleep(Duration::from_millis(every)).await;
        flush_all(&state).await;
    }
}

/// Forgets everything counted for a tenant (it was deleted): its pending
/// counts would otherwise be flushed into a file that no longer exists.
pub fn forget_tenant(state: &Core, tenant: TenantId) {
    state.meter.take(tenant);
    if let Ok(mut months) = state.meter.months.lock() {
        months.remove(&tenant);
    }
}

/// Forgets the month totals of every tenant (the business clock moved).
pub fn forget_months(state: &Core) {
    if let Ok(mut months) = state.meter.months.lock() {
        months.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_periods_come_from_the_instant() {
        assert_eq!(
            day_and_period(1_795_515_953_999),
            ("2026-11-24".to_string(), "2026-11".to_string())
        );
        assert_eq!(
            day_and_period(0),
            ("1970-01-01".to_string(), "1970-01".to_string())
        );
    }

    #[test]
    fn counts_accumulate_and_only_rest_and_mcp_are_api_calls() {
        let meter = Meter::default();
        let tenant = TenantId::new();
        for channel in ["rest", "mcp", "job"] {
            meter.count(Call {
                tenant,
                channel,
                operation: "stk.push",
                store: None,
                transaction: true,
                error: false,
            });
        }
        let (_, period) = day_and_period(malipo_foundations::time_util::business_now_ms());
        let totals = meter.pending_totals(tenant, &period);
        assert_eq!(totals.api_calls, 2);
        assert_eq!(totals.transactions, 3);
        let rows = meter.take(tenant);
        assert_eq!(rows.len(), 3);
        assert!(meter.take(tenant).is_empty());
        meter.put_back(tenant, rows);
        assert_eq!(meter.pending_totals(tenant, &period).transactions, 3);
    }
}
