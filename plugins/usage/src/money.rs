//! Completed payments, payouts and reversals, counted once per event into
//! daily rows per store.

use malipo_plugin_sdk::{Context, Db, Result, Sql};
use serde_json::Value;

use crate::period::Date;

/// The events counted, with the kind each one counts as.
pub const EVENTS: [(&str, &str); 3] = [
    ("payment.completed", "payment"),
    ("payout.completed", "payout"),
    ("reversal.completed", "reversal"),
];

/// The kind an event counts as, if it counts.
pub fn kind_of(event_name: &str) -> Option<&'static str> {
    EVENTS
        .iter()
        .find(|(name, _)| *name == event_name)
        .map(|(_, kind)| *kind)
}

/// Counts a completed payment, payout or reversal on the day of the call,
/// once per event id; other events are ignored.
pub fn on_event(
    db: &dyn Db,
    ctx: &Context,
    event_id: &str,
    event_name: &str,
    payload: &str,
) -> Result<()> {
    let Some(kind) = kind_of(event_name) else {
        return Ok(());
    };
    let first = db.execute(
        "INSERT INTO usage_seen_events (event_id, name, seen_at) VALUES (?, ?, ?) \
         ON CONFLICT (event_id) DO NOTHING",
        &[
            Sql::from(event_id),
            Sql::from(event_name),
            Sql::from(ctx.now()),
        ],
    )? == 1;
    if !first {
        return Ok(());
    }
    let data: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let store_id = data["store_id"].as_str().unwrap_or_default();
    db.execute(
        "INSERT INTO usage_money_daily (day, store_id, kind, count, amount_kes) VALUES (?, ?, ?, 1, ?) \
         ON CONFLICT (day, store_id, kind) DO UPDATE SET \
           count = count + 1, amount_kes = amount_kes + excluded.amount_kes",
        &[
            Sql::from(Date::from_ms(ctx.now_ms).to_text()),
            Sql::from(store_id),
            Sql::from(kind),
            Sql::Integer(amount(&data["amount"])),
        ],
    )?;
    Ok(())
}

/// The whole-KES amount of a payload: a number or a decimal string;
/// anything else, or a negative amount, counts as 0.
pub fn amount(value: &Value) -> i64 {
    let number = match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(round)),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| s.trim().parse::<f64>().ok().map(round)),
        _ => None,
    };
    number.unwrap_or(0).max(0)
}

fn round(f: f64) -> i64 {
    if f.is_finite() && f.abs() < 1e15 {
        // In range: checked just above.
        #[allow(clippy::cast_possible_truncation)]
        let rounded = f.round() as i64;
        rounded
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_of_events() {
        assert_eq!(kind_of("payment.completed"), Some("payment"));
        assert_eq!(kind_of("payout.completed"), Some("payout"));
        assert_eq!(kind_of("reversal.completed"), Some("reversal"));
        assert_eq!(kind_of("payment.failed"), None);
        assert_eq!(kind_of("usage.threshold"), None);
    }

    #[test]
    fn amounts() {
        assert_eq!(amount(&json!(1500)), 1500);
        assert_eq!(amount(&json!(99.6)), 100);
        assert_eq!(amount(&json!("250")), 250);
        assert_eq!(amount(&json!(-5)), 0);
        assert_eq!(amount(&json!(null)), 0);
        assert_eq!(amount(&json!("ten")), 0);
        assert_eq!(amount(&json!(1e300)), 0);
    }
}
