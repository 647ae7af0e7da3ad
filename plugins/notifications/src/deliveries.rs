//! Messages to endpoints: queued by `on-event` (one per endpoint and event,
//! so a redelivered event queues nothing new), sent by the
//! `webhooks.deliver` job, listed and replayed over REST.
//!
//! A message keeps its `webhook-id` across retries. 2xx: delivered, never
//! sent again. 410 Gone: the endpoint is disabled. Anything else: tried
//! again after [`crate::schedule`]'s wait; when the waits are used up the
//! message fails and the endpoint is disabled.

use malipo_plugin_sdk::{Context, Db, Error, Input, Result, Sql};
use serde_json::{Value, json};

use crate::Host;

/// Messages sent per job run and tenant.
const BATCH: i64 = 20;

fn wanted(events: &str, name: &str) -> bool {
    // Only the events endpoints may subscribe to (never those carrying tokens).
    crate::manifest::EVENTS.contains(&name)
        && serde_json::from_str::<Vec<String>>(events)
            .map(|list| list.iter().any(|e| e == "*" || e == name))
            .unwrap_or(false)
}

/// Queues `event` for every active endpoint that subscribed to it.
pub fn enqueue(
    host: &dyn Host,
    ctx: &Context,
    event_id: &str,
    name: &str,
    payload: &str,
) -> Result<()> {
    let db = host.db();
    let endpoints = db.query(
        "SELECT id, events FROM notifications_webhooks WHERE status = 'active' AND deleted_at IS NULL",
        &[],
    )?;
    let data: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let body = json!({ "type": name, "timestamp": ctx.now(), "data": data }).to_string();
    for endpoint in endpoints.iter() {
        let (Some(id), Some(events)) = (endpoint.text("id"), endpoint.text("events")) else {
            continue;
        };
        if !wanted(events, name) {
            continue;
        }
        let message = format!("msg_{}", malipo_plugin_sdk::id::uuid_v4()?.replace('-', ""));
        db.execute(
            "INSERT INTO notifications_deliveries (id, webhook_id, event_id, event_name, body, next_attempt_ms, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (webhook_id, event_id) DO NOTHING",
            &[
                Sql::Text(message),
                Sql::Text(id.to_owned()),
                Sql::Text(event_id.to_owned()),
                Sql::Text(name.to_owned()),
                Sql::Text(body.clone()),
                Sql::Integer(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX)),
                Sql::Text(ctx.now()),
            ],
        )?;
    }
    Ok(())
}

/// One send, with its outcome recorded.
fn send(
    host: &dyn Host,
    ctx: &Context,
    message: &malipo_plugin_sdk::Row<'_>,
) -> Result<&'static str> {
    let db = host.db();
    let id = message.req_text("id")?;
    let endpoint = message.req_text("webhook_id")?;
    let url = message.req_text("url")?;
    let body = message.req_text("body")?;
    let attempts = u64::try_from(message.req_int("attempts")?).unwrap_or(0) + 1;
    let timestamp = ctx.now_ms / 1000;
    let secret = crate::webhooks::secrets(host)
        .get(endpoint)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::internal("the endpoint's signing secret is missing"))?;
    let signature = crate::sign::signature(&secret, id, timestamp, body)
        .ok_or_else(|| Error::internal("the endpoint's signing secret is malformed"))?;
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("webhook-id".to_owned(), id.to_owned()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
        ("webhook-signature".to_owned(), signature),
    ];
    let outcome = host.post(url, headers, body);
    let now = i64::try_from(ctx.now_ms).unwrap_or(i64::MAX);
    let (status, error) = match &outcome {
        Ok(status) => (Some(i64::from(*status)), None),
        Err(error) => (None, Some(error.clone())),
    };
    let verdict = match outcome {
        Ok(code) if (200..300).contains(&code) => "delivered",
        Ok(410) => "gone",
        _ => match crate::schedule::next_wait_ms(attempts) {
            Some(_) => "retry",
            None => "exhausted",
        },
    };
    let next = crate::schedule::next_wait_ms(attempts).map_or(now, |wait| {
        now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX))
    });
    let new_status = match verdict {
        "delivered" => "delivered",
        "retry" => "pending",
        _ => "failed",
    };
    db.execute(
        "UPDATE notifications_deliveries
            SET status = ?2, attempts = ?3, next_attempt_ms = ?4, last_status = ?5, last_error = ?6,
                delivered_at = CASE WHEN ?2 = 'delivered' THEN ?7 ELSE delivered_at END
          WHERE id = ?1",
        &[
            Sql::Text(id.to_owned()),
            Sql::Text(new_status.to_owned()),
            Sql::Integer(i64::try_from(attempts).unwrap_or(i64::MAX)),
            Sql::Integer(next),
            status.map_or(Sql::Null, Sql::Integer),
            error.map_or(Sql::Null, Sql::Text),
            Sql::Text(ctx.now()),
        ],
    )?;
    if matches!(verdict, "gone" | "exhausted") {
        let reason = if verdict == "gone" {
            "the endpoint answered 410 Gone"
        } else {
            "deliveries kept failing"
        };
        db.execute(
            "UPDATE notifications_webhooks SET status = 'disabled', disabled_reason = ?2 WHERE id = ?1",
            &[Sql::Text(endpoint.to_owned()), Sql::Text(reason.to_owned())],
        )?;
    }
    Ok(verdict)
}

/// The job: sends the messages that are due.
pub fn deliver_due(host: &dyn Host, ctx: &Context) -> Result<Value> {
    let due = host.db().query(
        "SELECT d.id, d.webhook_id, d.body, d.attempts, w.url
           FROM notifications_deliveries d JOIN notifications_webhooks w ON w.id = d.webhook_id
          WHERE d.status = 'pending' AND d.next_attempt_ms <= ?1 AND w.status = 'active'
          ORDER BY d.next_attempt_ms, d.id LIMIT ?2",
        &[
            Sql::Integer(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX)),
            Sql::Integer(BATCH),
        ],
    )?;
    let mut delivered = 0;
    let mut failed = 0;
    for message in due.iter() {
        match send(host, ctx, &message)? {
            "delivered" => delivered += 1,
            _ => failed += 1,
        }
    }
    Ok(json!({ "delivered": delivered, "failed": failed }))
}

/// The condition confining deliveries to the caller's stores: a
/// store-limited caller sees only messages about one of their stores (the
/// event's `store_id`); `1` for a caller who may see every store.
fn in_scope(ctx: &Context, params: &mut Vec<Sql>) -> String {
    ctx.store_condition("json_extract(body, '$.data.store_id')", params)
        .unwrap_or_else(|| "1".to_owned())
}

/// `GET /webhooks/{id}/deliveries`: the endpoint's messages, newest first
/// (only those about the caller's stores for a store-limited caller).
pub fn list(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let id = input.req_str("id")?;
    let mut params = vec![Sql::Text(id.to_owned())];
    let scope = in_scope(ctx, &mut params);
    let rows = db.query(
        &format!(
            "SELECT id, event_id, event_name, status, attempts, last_status, last_error, created_at, delivered_at
               FROM notifications_deliveries WHERE webhook_id = ?1 AND {scope}
              ORDER BY created_at DESC, id DESC LIMIT 100"
        ),
        &params,
    )?;
    Ok(json!({ "deliveries": rows.to_json() }))
}

/// `POST /webhooks/{id}/deliveries/{delivery_id}/retry`: sends a message
/// again at the next job run (same `webhook-id`), and re-enables its
/// endpoint.
pub fn retry(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let endpoint = input.req_str("id")?;
    let message = input.req_str("delivery_id")?;
    let mut params = vec![
        Sql::Text(message.to_owned()),
        Sql::Text(endpoint.to_owned()),
        Sql::Integer(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX)),
    ];
    let scope = in_scope(ctx, &mut params);
    let changed = db.execute(
        &format!(
            "UPDATE notifications_deliveries SET status = 'pending', next_attempt_ms = ?3
              WHERE id = ?1 AND webhook_id = ?2 AND {scope}"
        ),
        &params,
    )?;
    if changed == 0 {
        return Err(Error::not_found(
            "No delivery with that id for this endpoint.",
        ));
    }
    db.execute(
        "UPDATE notifications_webhooks SET status = 'active', disabled_reason = NULL
          WHERE id = ?1 AND deleted_at IS NULL",
        &[Sql::Text(endpoint.to_owned())],
    )?;
    Ok(json!({ "queued": true, "id": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_endpoint_gets_the_events_that_carry_tokens() {
        assert!(wanted(r#"["*"]"#, "payment.completed"));
        assert!(wanted(r#"["invoice.paid"]"#, "invoice.paid"));
        for name in ["invitation.created", "password_reset.requested"] {
            assert!(!wanted(r#"["*"]"#, name));
            assert!(!wanted(&format!("[\"{name}\"]"), name));
        }
    }
}
