//! `mpesa.reports`: totals of transactions in a date range, overall and per day, store or kind.

use malipo_plugin_sdk::{Context, Db, Error, Input, Result, Row};
use serde_json::{Value, json};

use crate::transactions::Filter;
use crate::validate;

pub const GROUPS: &[&str] = &["day", "store", "kind"];

/// The aggregate columns of one group.
const AGGREGATES: &str = "COUNT(*) AS count, \
     COALESCE(SUM(status = 'completed'), 0) AS completed, \
     COALESCE(SUM(status IN ('failed', 'cancelled', 'timeout')), 0) AS failed, \
     COALESCE(SUM(status = 'cancelled'), 0) AS cancelled, \
     COALESCE(SUM(status = 'timeout'), 0) AS timed_out, \
     COALESCE(SUM(status = 'pending'), 0) AS pending, \
     COALESCE(SUM(status = 'reversed'), 0) AS reversed, \
     COALESCE(SUM(CASE WHEN status = 'completed' THEN amount ELSE 0 END), 0) AS amount_completed";

fn totals(row: Row<'_>) -> Value {
    let int = |name: &str| row.int(name).unwrap_or(0);
    let count = int("count");
    #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let rate = if count == 0 { 0.0 } else { (int("completed") as f64 / count as f64 * 10_000.0).round() / 10_000.0 };
    json!({
        "count": count,
        "completed": int("completed"),
        "failed": int("failed"),
        "cancelled": int("cancelled"),
        "timeout": int("timed_out"),
        "pending": int("pending"),
        "reversed": int("reversed"),
        "amount_completed": int("amount_completed"),
        "success_rate": rate,
    })
}

/// `mpesa.reports`: counts (all, completed, failed — cancelled and timed
/// out included —, pending, reversed), the amount completed and the
/// success rate (completed / all), in total and per group. Days are UTC.
pub fn report(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let group_by = match input.opt_trimmed("group_by")? {
        None => "day",
        Some(g) => validate::one_of(g, "group_by", GROUPS)?,
    };
    let mut filter = Filter::default();
    filter.store(ctx, input)?;
    filter.dates(input)?;
    if let Some(kind) = input.opt_trimmed("kind")? {
        filter.push("kind", "=", validate::one_of(kind, "kind", crate::transactions::KINDS)?.into());
    }
    let where_clause = filter.where_clause();
    let total = db.query(&format!("SELECT {AGGREGATES} FROM mpesa_transactions {where_clause}"), &filter.params)?;
    let total = total.first().map(totals).ok_or_else(|| Error::internal("the report query returned no row"))?;
    let key = match group_by {
        "day" => "substr(created_at, 1, 10)",
        "store" => "store_id",
        _ => "kind",
    };
    let groups = db.query(
        &format!("SELECT {key} AS grp, {AGGREGATES} FROM mpesa_transactions {where_clause} GROUP BY grp ORDER BY grp"),
        &filter.params,
    )?;
    let groups: Vec<Value> = groups
        .iter()
        .map(|row| {
            let mut group = totals(row);
            group["key"] = row.get("grp").map_or(Value::Null, malipo_plugin_sdk::Sql::to_json);
            group
        })
        .collect();
    Ok(json!({
        "from": input.opt_trimmed("from")?,
        "to": input.opt_trimmed("to")?,
        "group_by": group_by,
        "currency": "KES",
        "totals": total,
        "groups": groups,
    }))
}
