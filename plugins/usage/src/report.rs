//! Reading usage back: a month's totals and summary, the current period
//! against the plan's limits, and the history per day or month.

use std::collections::BTreeMap;

use malipo_plugin_sdk::{Context, Db, Error, Input, Result, Sql};
use serde_json::{Map, Value, json};

use crate::Host;
use crate::period::{Date, Month};
use crate::plan::{Plan, percent};
use crate::record;

/// The longest history span, in days (three calendar years at most).
pub const MAX_HISTORY_DAYS: u64 = 3 * 365 + 1;
/// The default history span, in days, ending today.
const DEFAULT_HISTORY_DAYS: u64 = 30;

/// The first and last day of a month, as query parameters.
fn range(period: Month) -> [Sql; 2] {
    [
        Sql::from(period.first_day().to_text()),
        Sql::from(period.last_day().to_text()),
    ]
}

/// ` AND store_id IN (?, …)` confining a query to the caller's stores
/// (with its parameters, to append after the query's others), or nothing
/// for a caller who may see every store. Rows of no store (`''`) are the
/// tenant's, seen only by such callers.
fn scope(ctx: &Context) -> (String, Vec<Sql>) {
    match ctx.store_scope() {
        None => (String::new(), Vec::new()),
        Some(stores) if stores.is_empty() => (" AND 0".to_owned(), Vec::new()),
        Some(stores) => (
            format!(" AND store_id IN ({})", vec!["?"; stores.len()].join(", ")),
            stores.into_iter().map(Sql::from).collect(),
        ),
    }
}

/// The query parameters of a month, then of the caller's scope.
fn scoped(period: Month, extra: &[Sql]) -> Vec<Sql> {
    let mut params = range(period).to_vec();
    params.extend_from_slice(extra);
    params
}

/// `usage.totals`: the quota totals of a month (default the current one).
pub fn totals(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let period = Month::from_input(input.opt_str("period")?, ctx.now_ms)?;
    let totals = record::totals(db, period)?;
    Ok(json!({
        "period": period.to_text(),
        "api_calls": totals.api_calls,
        "transactions": totals.transactions,
    }))
}

/// `usage.summary`: a month at a glance, for the platform's cross-tenant view.
pub fn summary(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let period = Month::from_input(input.opt_str("period")?, ctx.now_ms)?;
    let calls = call_totals(db, ctx, period)?;
    let money = money_totals(db, ctx, period)?;
    Ok(json!({
        "period": period.to_text(),
        "api_calls": calls.api_calls,
        "by_channel": calls.by_channel,
        "transactions": calls.transactions,
        "errors": calls.errors,
        "payments": money.json("payment"),
        "payouts": money.json("payout"),
        "reversals": money.json("reversal"),
        "stores": active_stores(db)?,
        "members": active_members(db)?,
    }))
}

/// `usage.get`: the current month against the plan's limits.
pub fn current(host: &dyn Host, ctx: &Context) -> Result<Value> {
    let db = host.db();
    let period = Month::from_ms(ctx.now_ms);
    let plan = Plan::from_entitlements(host.config("entitlements").as_deref());
    let calls = call_totals(db, ctx, period)?;
    let money = money_totals(db, ctx, period)?;
    let stores = match ctx.store_scope() {
        None => active_stores(db)?,
        Some(_) => i64::try_from(by_store(db, ctx, period, true)?.len()).unwrap_or(i64::MAX),
    };
    let metric = |used: i64, limit: Option<u64>| json!({ "used": used, "limit": limit, "percent": percent(used, limit) });
    let mut answer = json!({
        "period": period.to_text(),
        "period_start": period.first_day().to_text(),
        "period_end": period.last_day().to_text(),
        "plan": plan.to_json(),
        "metrics": {
            "api_calls": metric(calls.api_calls, plan.api_calls_per_month),
            "transactions": metric(calls.transactions, plan.transactions_per_month),
            "stores": metric(stores, plan.max_stores),
            "users": metric(active_members(db)?, plan.max_users),
        },
        "by_channel": calls.by_channel,
        "payments": money.json("payment"),
        "payouts": money.json("payout"),
        "reversals": money.json("reversal"),
        "by_store": by_store(db, ctx, period, false)?,
    });
    // A store-limited caller's numbers cover their own stores only, and
    // say which.
    if let Some(stores) = ctx.store_scope() {
        answer["store_ids"] = json!(stores);
    }
    Ok(answer)
}

/// A month's calls.
struct CallTotals {
    api_calls: i64,
    transactions: i64,
    errors: i64,
    /// Calls per channel; `rest` and `mcp` always present.
    by_channel: Map<String, Value>,
}

fn call_totals(db: &dyn Db, ctx: &Context, period: Month) -> Result<CallTotals> {
    let (condition, extra) = scope(ctx);
    let table = db.query(
        &format!(
            "SELECT channel, SUM(calls) AS calls, SUM(errors) AS errors, SUM(transactions) AS transactions \
             FROM usage_daily WHERE day >= ? AND day <= ?{condition} GROUP BY channel ORDER BY channel"
        ),
        &scoped(period, &extra),
    )?;
    let mut totals = CallTotals {
        api_calls: 0,
        transactions: 0,
        errors: 0,
        by_channel: crate::API_CHANNELS
            .iter()
            .map(|c| ((*c).to_owned(), Value::from(0)))
            .collect(),
    };
    for row in table.iter() {
        let channel = row.req_text("channel")?;
        let calls = row.req_int("calls")?;
        if crate::API_CHANNELS.contains(&channel) {
            totals.api_calls += calls;
        }
        totals.errors += row.req_int("errors")?;
        totals.transactions += row.req_int("transactions")?;
        totals
            .by_channel
            .insert(channel.to_owned(), Value::from(calls));
    }
    Ok(totals)
}

/// A month's completed money movements per kind: (count, amount_kes).
struct MoneyTotals(BTreeMap<String, (i64, i64)>);

impl MoneyTotals {
    fn json(&self, kind: &str) -> Value {
        let (count, amount) = self.0.get(kind).copied().unwrap_or_default();
        json!({ "count": count, "amount_kes": amount })
    }
}

fn money_totals(db: &dyn Db, ctx: &Context, period: Month) -> Result<MoneyTotals> {
    let (condition, extra) = scope(ctx);
    let table = db.query(
        &format!(
            "SELECT kind, SUM(count) AS count, SUM(amount_kes) AS amount_kes \
             FROM usage_money_daily WHERE day >= ? AND day <= ?{condition} GROUP BY kind"
        ),
        &scoped(period, &extra),
    )?;
    table
        .iter()
        .map(|row| {
            Ok((
                row.req_text("kind")?.to_owned(),
                (row.req_int("count")?, row.req_int("amount_kes")?),
            ))
        })
        .collect::<Result<_>>()
        .map(MoneyTotals)
}

fn active_stores(db: &dyn Db) -> Result<i64> {
    db.query_int("SELECT COUNT(*) FROM stores WHERE status = 'active'", &[])
}

fn active_members(db: &dyn Db) -> Result<i64> {
    db.query_int("SELECT COUNT(*) FROM members WHERE status = 'active'", &[])
}

/// One store's month.
#[derive(Default)]
struct StoreUsage {
    name: Option<String>,
    calls: i64,
    transactions: i64,
    payments: i64,
    payment_amount_kes: i64,
}

/// The row of a store, added (with its name, if known) when missing.
fn store<'a>(
    stores: &'a mut BTreeMap<String, StoreUsage>,
    names: &BTreeMap<String, Option<String>>,
    id: &str,
) -> &'a mut StoreUsage {
    stores.entry(id.to_owned()).or_insert_with(|| StoreUsage {
        name: names.get(id).cloned().flatten(),
        ..StoreUsage::default()
    })
}

/// Every active store, and any other store with usage in the month, by
/// name (only the caller's stores for a store-limited caller; only the
/// active ones when `active_only`).
fn by_store(db: &dyn Db, ctx: &Context, period: Month, active_only: bool) -> Result<Vec<Value>> {
    let mut stores: BTreeMap<String, StoreUsage> = BTreeMap::new();
    let mut names: BTreeMap<String, Option<String>> = BTreeMap::new();
    let (condition, extra) = scope(ctx);
    for row in db
        .query(
            &format!("SELECT id AS store_id, name, status FROM stores WHERE 1{condition}"),
            &extra,
        )?
        .iter()
    {
        let id = row.req_text("store_id")?.to_owned();
        let name = row.text("name").map(str::to_owned);
        // Archived stores are listed only if they were used in the month.
        if row.text("status") == Some("active") {
            let usage = StoreUsage {
                name: name.clone(),
                ..StoreUsage::default()
            };
            stores.insert(id.clone(), usage);
        }
        names.insert(id, name);
    }
    if active_only {
        return Ok(stores.keys().map(|id| json!(id)).collect());
    }
    for row in db
        .query(
            &format!(
                "SELECT store_id, \
                        SUM(CASE WHEN channel IN ('rest', 'mcp') THEN calls ELSE 0 END) AS calls, \
                        SUM(transactions) AS transactions \
                 FROM usage_daily WHERE day >= ? AND day <= ? AND store_id <> ''{condition} GROUP BY store_id"
            ),
            &scoped(period, &extra),
        )?
        .iter()
    {
        let entry = store(&mut stores, &names, row.req_text("store_id")?);
        entry.calls = row.req_int("calls")?;
        entry.transactions = row.req_int("transactions")?;
    }
    for row in db
        .query(
            &format!(
                "SELECT store_id, SUM(count) AS payments, SUM(amount_kes) AS amount_kes \
                 FROM usage_money_daily \
                 WHERE day >= ? AND day <= ? AND store_id <> '' AND kind = 'payment'{condition} GROUP BY store_id"
            ),
            &scoped(period, &extra),
        )?
        .iter()
    {
        let entry = store(&mut stores, &names, row.req_text("store_id")?);
        entry.payments = row.req_int("payments")?;
        entry.payment_amount_kes = row.req_int("amount_kes")?;
    }
    let mut rows: Vec<(String, StoreUsage)> = stores.into_iter().collect();
    rows.sort_by(|(a_id, a), (b_id, b)| {
        let key = |name: &Option<String>| (name.is_none(), name.as_deref().map(str::to_lowercase));
        key(&a.name).cmp(&key(&b.name)).then_with(|| a_id.cmp(b_id))
    });
    Ok(rows
        .into_iter()
        .map(|(id, usage)| {
            json!({
                "store_id": id,
                "store_name": usage.name,
                "calls": usage.calls,
                "transactions": usage.transactions,
                "payments": usage.payments,
                "payment_amount_kes": usage.payment_amount_kes,
            })
        })
        .collect())
}

/// How history rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Month,
}

impl GroupBy {
    fn name(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Month => "month",
        }
    }

    /// The length of the `day` prefix that names a period.
    fn prefix(self) -> i64 {
        match self {
            GroupBy::Day => 10,
            GroupBy::Month => 7,
        }
    }
}

/// The validated history query: inclusive dates and grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    pub from: Date,
    pub to: Date,
    pub group_by: GroupBy,
}

/// Reads `from`, `to` and `group_by`; by default the 30 days to today, per day.
pub fn history_query(input: &Input, now_ms: u64) -> Result<HistoryQuery> {
    let date = |key: &str| -> Result<Option<Date>> {
        match input.opt_str(key)?.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(text) => Date::parse(text).map(Some).ok_or_else(|| {
                Error::validation(format!(
                    "`{key}` must be a date written YYYY-MM-DD (e.g. 2026-05-31), not `{text}`."
                ))
            }),
        }
    };
    let back = DEFAULT_HISTORY_DAYS - 1;
    let (from, to) = match (date("from")?, date("to")?) {
        (Some(from), Some(to)) => (from, to),
        (Some(from), None) => (from, Date::from_ms(now_ms)),
        (None, Some(to)) => (Date::from_days(to.days().saturating_sub(back)), to),
        (None, None) => {
            let today = Date::from_ms(now_ms);
            (Date::from_days(today.days().saturating_sub(back)), today)
        }
    };
    if from > to {
        return Err(Error::validation(format!(
            "`from` ({}) must not be after `to` ({}).",
            from.to_text(),
            to.to_text()
        )));
    }
    if to.days() - from.days() + 1 > MAX_HISTORY_DAYS {
        return Err(Error::validation(format!(
            "The history spans at most three years ({MAX_HISTORY_DAYS} days); ask for a shorter range."
        )));
    }
    let group_by = match input.opt_str("group_by")?.map(str::trim) {
        None | Some("" | "day") => GroupBy::Day,
        Some("month") => GroupBy::Month,
        Some(other) => {
            return Err(Error::validation(format!(
                "`group_by` must be `day` or `month`, not `{other}`."
            )));
        }
    };
    Ok(HistoryQuery { from, to, group_by })
}

/// `usage.history`: calls, transactions and money per day or month, for
/// the periods that have data.
pub fn history(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let query = history_query(input, ctx.now_ms)?;
    let prefix = Sql::Integer(query.group_by.prefix());
    let from = Sql::from(query.from.to_text());
    let to = Sql::from(query.to.to_text());
    let (condition, extra) = scope(ctx);
    let mut params = vec![prefix.clone(), from.clone(), to.clone()];
    params.extend_from_slice(&extra);
    params.extend([prefix, from, to]);
    params.extend_from_slice(&extra);
    let table = db.query(
        &format!("SELECT period, \
                SUM(rest_calls + mcp_calls) AS api_calls, SUM(rest_calls) AS rest_calls, \
                SUM(mcp_calls) AS mcp_calls, SUM(errors) AS errors, SUM(transactions) AS transactions, \
                SUM(payments) AS payments, SUM(payment_amount_kes) AS payment_amount_kes, \
                SUM(payouts) AS payouts, SUM(payout_amount_kes) AS payout_amount_kes \
         FROM ( \
           SELECT substr(day, 1, ?) AS period, \
                  CASE WHEN channel = 'rest' THEN calls ELSE 0 END AS rest_calls, \
                  CASE WHEN channel = 'mcp' THEN calls ELSE 0 END AS mcp_calls, \
                  errors, transactions, \
                  0 AS payments, 0 AS payment_amount_kes, 0 AS payouts, 0 AS payout_amount_kes \
           FROM usage_daily WHERE day >= ? AND day <= ?{condition} \
           UNION ALL \
           SELECT substr(day, 1, ?) AS period, 0, 0, 0, 0, \
                  CASE WHEN kind = 'payment' THEN count ELSE 0 END, \
                  CASE WHEN kind = 'payment' THEN amount_kes ELSE 0 END, \
                  CASE WHEN kind = 'payout' THEN count ELSE 0 END, \
                  CASE WHEN kind = 'payout' THEN amount_kes ELSE 0 END \
           FROM usage_money_daily WHERE day >= ? AND day <= ?{condition} AND kind IN ('payment', 'payout') \
         ) GROUP BY period ORDER BY period"),
        &params,
    )?;
    Ok(json!({
        "group_by": query.group_by.name(),
        "from": query.from.to_text(),
        "to": query.to.to_text(),
        "rows": table.to_json(),
    }))
}
