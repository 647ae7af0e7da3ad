//! `usage.record`: the host's batches of metered calls, added to the daily
//! rows, and the quota thresholds they cross.

use std::collections::BTreeMap;

use malipo_plugin_sdk::{Context, Db, Error, Input, Result, Sql};
use serde_json::{Map, Value, json};

use crate::Host;
use crate::period::{Date, Month};
use crate::plan::Plan;

/// The most entries one batch may carry.
pub const MAX_ENTRIES: usize = 10_000;
/// The largest count one entry may carry.
const MAX_COUNT: u64 = 1_000_000_000_000;
/// The longest channel, operation or store id kept.
const MAX_NAME: usize = 200;
/// Percentages of a quota that are announced, in order.
pub const THRESHOLDS: [u64; 2] = [80, 100];
/// The event announcing a threshold.
pub const THRESHOLD_EVENT: &str = "usage.threshold";

/// The key of a daily row: day, channel, operation, store ('' for none).
type Key = (String, String, String, String);

/// Counts of one daily row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: i64,
    pub errors: i64,
    pub transactions: i64,
}

/// A period's totals that quotas apply to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Calls on the `rest` and `mcp` channels.
    pub api_calls: i64,
    /// Money operations requested, on every channel.
    pub transactions: i64,
}

/// Adds the entries, then checks the current period against the plan's quotas.
pub fn record(host: &dyn Host, ctx: &Context, input: &Input) -> Result<Value> {
    let (received, rows) = parse_entries(input)?;
    let db = host.db();
    for ((day, channel, operation, store_id), counts) in &rows {
        db.execute(
            "INSERT INTO usage_daily (day, channel, operation, store_id, calls, errors, transactions) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (day, channel, operation, store_id) DO UPDATE SET \
               calls = calls + excluded.calls, \
               errors = errors + excluded.errors, \
               transactions = transactions + excluded.transactions",
            &[
                Sql::from(day),
                Sql::from(channel),
                Sql::from(operation),
                Sql::from(store_id),
                Sql::Integer(counts.calls),
                Sql::Integer(counts.errors),
                Sql::Integer(counts.transactions),
            ],
        )?;
    }
    let period = Month::from_ms(ctx.now_ms);
    let totals = totals(db, period)?;
    let plan = Plan::from_entitlements(host.config("entitlements").as_deref());
    announce_thresholds(host, ctx, &plan, period, totals)?;
    Ok(json!({
        "recorded": received,
        "period": period.to_text(),
        "api_calls": totals.api_calls,
        "transactions": totals.transactions,
    }))
}

/// Validates `entries` and sums them by key; answers how many entries came.
pub fn parse_entries(input: &Input) -> Result<(usize, BTreeMap<Key, Counts>)> {
    let entries = match input.get("entries") {
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(Error::validation("`entries` must be a list.")),
        None => return Err(Error::validation("`entries` is required.")),
    };
    if entries.len() > MAX_ENTRIES {
        return Err(Error::validation(format!(
            "A batch holds at most {MAX_ENTRIES} entries, not {}.",
            entries.len()
        )));
    }
    let mut rows: BTreeMap<Key, Counts> = BTreeMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let Value::Object(entry) = entry else {
            return Err(Error::validation(format!(
                "`entries[{index}]` must be an object."
            )));
        };
        let (key, counts) = parse_entry(index, entry)?;
        let row = rows.entry(key).or_default();
        row.calls += counts.calls;
        row.errors += counts.errors;
        row.transactions += counts.transactions;
    }
    Ok((entries.len(), rows))
}

fn parse_entry(index: usize, entry: &Map<String, Value>) -> Result<(Key, Counts)> {
    let field = |name: &str| entry.get(name).filter(|v| !v.is_null());
    let day = match field("day") {
        Some(Value::String(day)) if Date::parse(day).is_some() => day.clone(),
        _ => {
            return Err(Error::validation(format!(
                "`entries[{index}].day` must be a date written YYYY-MM-DD."
            )));
        }
    };
    let name = |name: &str, required: bool| -> Result<String> {
        match field(name) {
            Some(Value::String(text)) if text.chars().count() <= MAX_NAME => {
                if required && text.trim().is_empty() {
                    Err(Error::validation(format!(
                        "`entries[{index}].{name}` must not be blank."
                    )))
                } else {
                    Ok(text.clone())
                }
            }
            None if !required => Ok(String::new()),
            _ => Err(Error::validation(format!(
                "`entries[{index}].{name}` must be a string of at most {MAX_NAME} characters."
            ))),
        }
    };
    let channel = name("channel", true)?;
    let operation = name("operation", false)?;
    let store_id = name("store_id", false)?;
    let count = |name: &str| -> Result<i64> {
        match field(name) {
            None => Ok(0),
            Some(value) => value
                .as_u64()
                .filter(|n| *n <= MAX_COUNT)
                .and_then(|n| i64::try_from(n).ok())
                .ok_or_else(|| {
                    Error::validation(format!(
                        "`entries[{index}].{name}` must be a whole number from 0 to {MAX_COUNT}."
                    ))
                }),
        }
    };
    let counts = Counts {
        calls: count("calls")?,
        errors: count("errors")?,
        transactions: count("transactions")?,
    };
    Ok(((day, channel, operation, store_id), counts))
}

/// The quota totals of a month.
pub fn totals(db: &dyn Db, period: Month) -> Result<Totals> {
    let table = db.query(
        "SELECT COALESCE(SUM(CASE WHEN channel IN ('rest', 'mcp') THEN calls ELSE 0 END), 0) AS api_calls, \
                COALESCE(SUM(transactions), 0) AS transactions \
         FROM usage_daily WHERE day >= ? AND day <= ?",
        &[
            Sql::from(period.first_day().to_text()),
            Sql::from(period.last_day().to_text()),
        ],
    )?;
    let row = table
        .first()
        .ok_or_else(|| Error::internal("the usage totals query returned no row"))?;
    Ok(Totals {
        api_calls: row.req_int("api_calls")?,
        transactions: row.req_int("transactions")?,
    })
}

/// True once `used` reaches `threshold` % of `limit` (and something was used).
pub fn reached(used: i64, limit: u64, threshold: u64) -> bool {
    let Ok(used) = u128::try_from(used) else {
        return false;
    };
    used > 0 && used * 100 >= u128::from(limit) * u128::from(threshold)
}

/// Emits `usage.threshold` for each quota threshold the period's totals
/// reach, the first time only (per period, metric and threshold).
fn announce_thresholds(
    host: &dyn Host,
    ctx: &Context,
    plan: &Plan,
    period: Month,
    totals: Totals,
) -> Result<()> {
    let quotas = [
        ("api_calls", totals.api_calls, plan.api_calls_per_month),
        (
            "transactions",
            totals.transactions,
            plan.transactions_per_month,
        ),
    ];
    let period_text = period.to_text();
    for (metric, used, limit) in quotas {
        let Some(limit) = limit else { continue };
        for threshold in THRESHOLDS {
            if !reached(used, limit, threshold) {
                break;
            }
            let limit_value = i64::try_from(limit).unwrap_or(i64::MAX);
            let first = host.db().execute(
                "INSERT INTO usage_thresholds (period, metric, threshold, used, limit_value, crossed_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (period, metric, threshold) DO NOTHING",
                &[
                    Sql::from(&period_text),
                    Sql::from(metric),
                    Sql::Integer(i64::try_from(threshold).unwrap_or(i64::MAX)),
                    Sql::Integer(used),
                    Sql::Integer(limit_value),
                    Sql::from(ctx.now()),
                ],
            )? == 1;
            if first {
                host.emit(
                    THRESHOLD_EVENT,
                    &json!({
                        "tenant_id": ctx.tenant_id,
                        "metric": metric,
                        "threshold": threshold,
                        "used": used,
                        "limit": limit,
                        "period": period_text,
                        "plan_id": plan.id,
                        "plan_name": plan.name,
                    }),
                );
            }
        }
    }
    Ok(())
}
