//! In-app notifications: one per payment, billing or usage event, written by `on-event`
//! (a redelivered event writes nothing new), listed with the caller's
//! unread state, marked read per person.

use malipo_plugin_sdk::{Context, Db, Error, Input, Result, Sql};
use serde_json::{Value, json};

/// The title and text people see for an event, if it is one they should.
pub fn render(name: &str, data: &Value) -> Option<(String, String)> {
    let amount = data.get("amount").and_then(Value::as_i64).unwrap_or(0);
    let phone = data
        .get("phone_number")
        .and_then(Value::as_str)
        .unwrap_or("an unknown phone");
    let receipt = data
        .get("receipt")
        .and_then(Value::as_str)
        .unwrap_or("no receipt");
    let code = data
        .get("result_code")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let text = |key: &str, default: &str| {
        data.get(key)
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| default.to_owned())
    };
    let number = |key: &str| text(key, "?");
    let (title, body) = match name {
        "payment.completed" => (
            "Payment received",
            format!("KES {amount} from {phone} (receipt {receipt})."),
        ),
        "payment.failed" => {
            let reason = failure_reason(code);
            let title = if code == "1032" {
                "Payment cancelled"
            } else {
                "Payment not completed"
            };
            (title, format!("{reason}: KES {amount} from {phone}."))
        }
        "payout.completed" => (
            "Payout sent",
            format!("KES {amount} to {phone} (receipt {receipt})."),
        ),
        "payout.failed" => (
            "Payout failed",
            format!("{}: KES {amount} to {phone}.", failure_reason(code)),
        ),
        "reversal.completed" => (
            "Payment reversed",
            format!("KES {amount} reversed (receipt {receipt})."),
        ),
        "reversal.failed" => (
            "Reversal failed",
            format!("{}: reversing KES {amount}.", failure_reason(code)),
        ),
        "invoice.issued" | "invoice.due" | "invoice.paid" | "invoice.overdue" => {
            let number = text("number", "an invoice");
            let currency = text("currency", "KES");
            let due = text("due_at", "soon");
            let amount = data.get("amount_kes").and_then(Value::as_i64).unwrap_or(0);
            match name {
                "invoice.issued" => (
                    "Invoice issued",
                    format!("Invoice {number} for {currency} {amount}."),
                ),
                "invoice.due" => (
                    "Invoice due",
                    format!("Invoice {number} for {currency} {amount} is due {due}."),
                ),
                "invoice.paid" => (
                    "Invoice paid",
                    format!("Invoice {number} for {currency} {amount} is paid."),
                ),
                _ => (
                    "Invoice overdue",
                    format!("Invoice {number} for {currency} {amount} is overdue."),
                ),
            }
        }
        "usage.threshold" => (
            "Usage alert",
            format!(
                "{} of {} {} used this month ({}%).",
                number("used"),
                number("limit"),
                text("metric", "units").replace('_', " "),
                number("threshold")
            ),
        ),
        "subscription.changed" => {
            let plan = text("plan_name", "current");
            match text("to_status", "").as_str() {
                "trial" => ("Trial started", format!("Your {plan} trial has started.")),
                "active" => (
                    "Subscription active",
                    format!("Your {plan} subscription is active."),
                ),
                "past_due" => (
                    "Payment due",
                    format!("Your {plan} subscription has an unpaid invoice."),
                ),
                "suspended" => (
                    "Subscription suspended",
                    format!("Your {plan} subscription is suspended until its invoice is paid."),
                ),
                "cancelled" => (
                    "Subscription cancelled",
                    format!("Your {plan} subscription is cancelled."),
                ),
                other => (
                    "Subscription changed",
                    format!(
                        "Your {plan} subscription is now {}.",
                        other.replace('_', " ")
                    ),
                ),
            }
        }
        _ => return None,
    };
    Some((title.to_owned(), body))
}

/// What a Daraja result code means, in words a shop owner reads (the
/// code itself only when it is not one of the usual ones).
pub fn failure_reason(code: &str) -> String {
    match code {
        "1032" => "Payment cancelled by the customer".to_owned(),
        "1037" => "The customer's phone could not be reached".to_owned(),
        "1" => "The customer's M-Pesa balance is too low".to_owned(),
        "2001" => "The customer entered a wrong PIN".to_owned(),
        "1019" => "The request expired before the customer answered".to_owned(),
        "1001" => "The customer had another M-Pesa request in progress".to_owned(),
        "1025" | "9999" => "M-Pesa could not send the request to the phone".to_owned(),
        "unknown" => "M-Pesa did not say why".to_owned(),
        other => format!("M-Pesa refused it (result code {other})"),
    }
}

/// Records the notification of an event.
pub fn record(db: &dyn Db, ctx: &Context, event_id: &str, name: &str, data: &Value) -> Result<()> {
    let Some((title, body)) = render(name, data) else {
        return Ok(());
    };
    db.execute(
        "INSERT INTO notifications_inbox (id, event_id, kind, title, body, data, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (event_id) DO NOTHING",
        &[
            Sql::Text(malipo_plugin_sdk::id::uuid_v4()?),
            Sql::Text(event_id.to_owned()),
            Sql::Text(name.to_owned()),
            Sql::Text(title),
            Sql::Text(body),
            Sql::Text(data.to_string()),
            Sql::Text(ctx.now()),
        ],
    )?;
    Ok(())
}

fn caller(ctx: &Context) -> Result<&str> {
    ctx.user_id
        .as_deref()
        .ok_or_else(|| Error::forbidden("Notifications belong to people; this call has no user."))
}

/// The condition confining notifications (`n`) to the caller's stores: a
/// store-limited caller sees only those naming one of their stores (the
/// event's `store_id`); `1` for a caller who may see every store.
fn in_scope(ctx: &Context, params: &mut Vec<Sql>) -> String {
    ctx.store_condition("json_extract(n.data, '$.store_id')", params)
        .unwrap_or_else(|| "1".to_owned())
}

/// `GET /notifications?unread=true&limit=`: newest first, with the caller's
/// unread count; only the caller's stores' for a store-limited caller.
pub fn list(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let user = caller(ctx)?.to_owned();
    let unread_only = matches!(input.get("unread"), Some(Value::Bool(true)))
        || input.get("unread").and_then(Value::as_str) == Some("true");
    let limit = input.opt_u64("limit")?.unwrap_or(50).clamp(1, 200);
    let mut params = vec![
        Sql::Text(user.clone()),
        Sql::Integer(i64::from(unread_only)),
        Sql::Integer(i64::try_from(limit).unwrap_or(50)),
    ];
    let scope = in_scope(ctx, &mut params);
    let rows = db.query(
        &format!(
            "SELECT n.id, n.kind, n.title, n.body, n.data, n.created_at, r.read_at
               FROM notifications_inbox n
               LEFT JOIN notifications_reads r ON r.notification_id = n.id AND r.user_id = ?1
              WHERE (?2 = 0 OR r.read_at IS NULL) AND {scope}
              ORDER BY n.created_at DESC, n.id DESC LIMIT ?3"
        ),
        &params,
    )?;
    let mut params = vec![Sql::Text(user)];
    let scope = in_scope(ctx, &mut params);
    let unread = db
        .query(
            &format!(
                "SELECT COUNT(*) AS n FROM notifications_inbox n
                  WHERE NOT EXISTS (SELECT 1 FROM notifications_reads r WHERE r.notification_id = n.id AND r.user_id = ?1)
                    AND {scope}"
            ),
            &params,
        )?
        .first()
        .and_then(|row| row.int("n"))
        .unwrap_or(0);
    let items: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut item = row.to_json();
            let data = item
                .get("data")
                .and_then(Value::as_str)
                .and_then(|d| serde_json::from_str(d).ok());
            item.insert("data".into(), data.unwrap_or(Value::Null));
            item.insert(
                "read".into(),
                Value::Bool(!matches!(item.get("read_at"), None | Some(Value::Null))),
            );
            Value::Object(item)
        })
        .collect();
    Ok(json!({ "notifications": items, "unread_count": unread }))
}

/// `POST /notifications/{id}/read`.
pub fn mark_read(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let user = caller(ctx)?;
    let id = input.req_str("id")?;
    let mut params = vec![Sql::Text(id.to_owned())];
    let scope = in_scope(ctx, &mut params);
    let exists = db.query(
        &format!("SELECT n.id FROM notifications_inbox n WHERE n.id = ?1 AND {scope}"),
        &params,
    )?;
    if exists.is_empty() {
        return Err(Error::not_found("No notification with that id."));
    }
    db.execute(
        "INSERT INTO notifications_reads (notification_id, user_id, read_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (notification_id, user_id) DO NOTHING",
        &[
            Sql::Text(id.to_owned()),
            Sql::Text(user.to_owned()),
            Sql::Text(ctx.now()),
        ],
    )?;
    Ok(json!({ "id": id, "read": true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_events_read_like_sentences() {
        let data = json!({"amount": 120, "phone_number": "254712345678", "receipt": "QK12AB34CD"});
        let (title, body) = render("payment.completed", &data).unwrap_or_default();
        assert_eq!(title, "Payment received");
        assert_eq!(body, "KES 120 from 254712345678 (receipt QK12AB34CD).");
        assert!(render("something.else", &data).is_none());
    }

    #[test]
    fn failures_and_trials_read_naturally() {
        let data = json!({"amount": 50, "phone_number": "254712345678", "result_code": "1032"});
        let (title, body) = render("payment.failed", &data).unwrap_or_default();
        assert_eq!(title, "Payment cancelled");
        assert_eq!(
            body,
            "Payment cancelled by the customer: KES 50 from 254712345678."
        );
        assert!(!body.contains("code"), "{body}");
        let data = json!({"plan_name": "Premium", "to_status": "trial"});
        let (_, body) = render("subscription.changed", &data).unwrap_or_default();
        assert_eq!(body, "Your Premium trial has started.");
    }
}
