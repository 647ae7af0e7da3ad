//! `mpesa.reports`: totals of transactions in a date range, overall and per day, store or kind.
//!
//! A range with both ends is aggregated one calendar month (UTC) at a time,
//! with a progress report after each month; the months' counts are then
//! summed per group, so the answer is the same as one query over the range.

use std::collections::BTreeMap;

use malipo_plugin_sdk::{Error, Input, Result, Row, Sql};
use serde_json::{Value, json};

use crate::clock;
use crate::env::Env;
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
     COALESCE(SUM(CASE WHEN status = 'completed' THEN amount ELSE 0 END), 0) AS amount_completed, \
     COALESCE(SUM(status = 'failed'), 0) AS failed_only, \
     COALESCE(SUM(kind IN ('stk', 'c2b')), 0) AS count_in, \
     COALESCE(SUM(kind IN ('b2c', 'reversal')), 0) AS count_out, \
     COALESCE(SUM(CASE WHEN kind IN ('stk', 'c2b') AND status IN ('completed', 'reversed') \
                       THEN amount ELSE 0 END), 0) AS amount_in, \
     COALESCE(SUM(CASE WHEN kind IN ('b2c', 'reversal') AND status = 'completed' \
                       THEN amount ELSE 0 END), 0) AS amount_out";

/// The aggregates of one group (or of all), summable across months.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    count: i64,
    completed: i64,
    failed: i64,
    cancelled: i64,
    timed_out: i64,
    pending: i64,
    reversed: i64,
    amount_completed: i64,
    failed_only: i64,
    count_in: i64,
    count_out: i64,
    amount_in: i64,
    amount_out: i64,
}

impl Counts {
    fn from_row(row: Row<'_>) -> Self {
        let int = |name: &str| row.int(name).unwrap_or(0);
        Self {
            count: int("count"),
            completed: int("completed"),
            failed: int("failed"),
            cancelled: int("cancelled"),
            timed_out: int("timed_out"),
            pending: int("pending"),
            reversed: int("reversed"),
            amount_completed: int("amount_completed"),
            failed_only: int("failed_only"),
            count_in: int("count_in"),
            count_out: int("count_out"),
            amount_in: int("amount_in"),
            amount_out: int("amount_out"),
        }
    }

    fn add(&mut self, other: &Self) {
        self.count = self.count.saturating_add(other.count);
        self.completed = self.completed.saturating_add(other.completed);
        self.failed = self.failed.saturating_add(other.failed);
        self.cancelled = self.cancelled.saturating_add(other.cancelled);
        self.timed_out = self.timed_out.saturating_add(other.timed_out);
        self.pending = self.pending.saturating_add(other.pending);
        self.reversed = self.reversed.saturating_add(other.reversed);
        self.amount_completed = self.amount_completed.saturating_add(other.amount_completed);
        self.failed_only = self.failed_only.saturating_add(other.failed_only);
        self.count_in = self.count_in.saturating_add(other.count_in);
        self.count_out = self.count_out.saturating_add(other.count_out);
        self.amount_in = self.amount_in.saturating_add(other.amount_in);
        self.amount_out = self.amount_out.saturating_add(other.amount_out);
    }

    fn to_json(self) -> Value {
        let count = self.count;
        #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        let rate = if count == 0 {
            0.0
        } else {
            (self.completed as f64 / count as f64 * 10_000.0).round() / 10_000.0
        };
        json!({
            "count": count,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "timeout": self.timed_out,
            "pending": self.pending,
            "reversed": self.reversed,
            "amount_completed": self.amount_completed,
            "success_rate": rate,
            // Each transaction in exactly one status: these sum to `count`
            // (`failed` above also counts cancelled and timed out).
            "by_status": {
                "pending": self.pending,
                "completed": self.completed,
                "failed": self.failed_only,
                "cancelled": self.cancelled,
                "timeout": self.timed_out,
                "reversed": self.reversed,
            },
            // Money in (payments: STK and C2B) and out (payouts and
            // reversals), never added together.
            "money_in": {
                "count": self.count_in,
                "amount": self.amount_in,
            },
            "money_out": {
                "count": self.count_out,
                "amount": self.amount_out,
            },
            "net_amount": self.amount_in.saturating_sub(self.amount_out),
        })
    }
}

/// A group key, ordered as SQLite's `ORDER BY` orders it: NULL, then
/// integers, then text and blobs, each by value (text byte-wise).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Null,
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Key {
    fn from_sql(value: Option<&Sql>) -> Result<Self> {
        match value {
            None | Some(Sql::Null) => Ok(Key::Null),
            Some(Sql::Integer(i)) => Ok(Key::Integer(*i)),
            Some(Sql::Text(t)) => Ok(Key::Text(t.clone())),
            Some(Sql::Blob(b)) => Ok(Key::Blob(b.clone())),
            Some(Sql::Real(_)) => Err(Error::internal(
                "the report query returned a real number as a group key",
            )),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Key::Null => Value::Null,
            Key::Integer(i) => Sql::Integer(*i).to_json(),
            Key::Text(t) => Value::String(t.clone()),
            Key::Blob(b) => Sql::Blob(b.clone()).to_json(),
        }
    }
}

/// Splits `[start, end)` (ms) at the first millisecond of each UTC calendar month.
fn month_chunks(start: i64, end: i64) -> Vec<(i64, i64)> {
    let mut chunks = Vec::new();
    let mut from = start;
    while from < end {
        let to = clock::next_month_start_ms(from).min(end);
        chunks.push((from, to));
        from = to;
    }
    chunks
}

/// The months to aggregate for `filter`: the calendar months of the
/// requested range that can hold a matching transaction (from the first to
/// the last one), or one chunk spanning everything when the range is open.
fn chunks(
    env: &dyn Env,
    filter: &Filter,
    range: (Option<i64>, Option<i64>),
) -> Result<Vec<Option<(i64, i64)>>> {
    let (Some(start), Some(end)) = range else {
        return Ok(vec![None]);
    };
    let span = env.db().query(
        &format!(
            "SELECT MIN(created_ms) AS first, MAX(created_ms) AS last FROM mpesa_transactions {}",
            filter.where_clause()
        ),
        &filter.params,
    )?;
    let bounds = span
        .first()
        .and_then(|row| Some((row.int("first")?, row.int("last")?)));
    let Some((first, last)) = bounds else {
        // Nothing matches: one (empty) chunk answers the zero totals.
        return Ok(vec![Some((start, end))]);
    };
    let chunks = month_chunks(start.max(first), end.min(last.saturating_add(1)));
    if chunks.is_empty() {
        return Ok(vec![Some((start, end))]);
    }
    Ok(chunks.into_iter().map(Some).collect())
}

/// `mpesa.reports`: counts (all, completed, failed — cancelled and timed
/// out included —, pending, reversed), the amount completed and the
/// success rate (completed / all), in total and per group; `by_status`
/// partitions the count (each transaction in exactly one status) and
/// `money_in` / `money_out` keep payments and payouts (with reversals)
/// apart. Days are UTC. Confined to the caller's stores.
pub fn report(env: &dyn Env, input: &Input) -> Result<Value> {
    let (db, ctx) = (env.db(), env.ctx());
    let group_by = match input.opt_trimmed("group_by")? {
        None => "day",
        Some(g) => validate::one_of(g, "group_by", GROUPS)?,
    };
    let mut filter = Filter::default();
    filter.store(ctx, input)?;
    let range = filter.dates(input)?;
    if let Some(kind) = input.opt_trimmed("kind")? {
        filter.push(
            "kind",
            "=",
            validate::one_of(kind, "kind", crate::transactions::KINDS)?.into(),
        );
    }
    let key = match group_by {
        "day" => "substr(created_at, 1, 10)",
        "store" => "store_id",
        _ => "kind",
    };
    let chunks = chunks(env, &filter, range)?;
    let of = chunks.len() as u64;
    // Every row falls in exactly one group, so the totals are the groups' sum.
    let mut total = Counts::default();
    let mut groups: BTreeMap<Key, Counts> = BTreeMap::new();
    for (done, chunk) in (1..).zip(&chunks) {
        let mut month = filter.clone();
        if let Some((from, to)) = *chunk {
            month.push("created_ms", ">=", Sql::Integer(from));
            month.push("created_ms", "<", Sql::Integer(to));
        }
        let rows = db.query(
            &format!(
                "SELECT {key} AS grp, {AGGREGATES} FROM mpesa_transactions {} GROUP BY grp ORDER BY grp",
                month.where_clause()
            ),
            &month.params,
        )?;
        for row in rows.iter() {
            let counts = Counts::from_row(row);
            total.add(&counts);
            groups
                .entry(Key::from_sql(row.get("grp"))?)
                .or_default()
                .add(&counts);
        }
        let unit = if chunk.is_some() { "month" } else { "range" };
        env.progress(done, Some(of), &format!("aggregated {unit} {done} of {of}"));
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(key, counts)| {
            let mut group = counts.to_json();
            group["key"] = key.to_json();
            group
        })
        .collect();
    Ok(json!({
        "from": input.opt_trimmed("from")?,
        "to": input.opt_trimmed("to")?,
        "group_by": group_by,
        "currency": "KES",
        "totals": total.to_json(),
        "groups": groups,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_ranges_at_month_starts() {
        let day = |y, m, d| clock::days_from_civil(y, m, d) * clock::DAY_MS;
        assert_eq!(
            month_chunks(day(2026, 1, 15), day(2026, 1, 20)),
            vec![(day(2026, 1, 15), day(2026, 1, 20))]
        );
        assert_eq!(
            month_chunks(day(2025, 12, 31), day(2026, 2, 2)),
            vec![
                (day(2025, 12, 31), day(2026, 1, 1)),
                (day(2026, 1, 1), day(2026, 2, 1)),
                (day(2026, 2, 1), day(2026, 2, 2)),
            ]
        );
        assert_eq!(month_chunks(day(2026, 3, 1), day(2026, 3, 1)), Vec::new());
        assert_eq!(month_chunks(day(1969, 12, 5), day(1970, 1, 2)).len(), 2);
    }

    #[test]
    fn keys_sort_like_sqlite() {
        let mut keys = vec![
            Key::Text("b".into()),
            Key::Blob(vec![0]),
            Key::Integer(7),
            Key::Null,
            Key::Text("B".into()),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                Key::Null,
                Key::Integer(7),
                Key::Text("B".into()),
                Key::Text("b".into()),
                Key::Blob(vec![0])
            ]
        );
    }
}
