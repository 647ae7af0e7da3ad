//! Event delivery: an event a plugin emits reaches each subscriber's
//! `on-event` until a delivery commits, and then never again; a failing
//! subscriber is retried; a rolled-back call's events are never delivered;
//! undelivered events survive a restart; tenants' events never cross.
//!
//! The test-only `sandbox` plugin subscribes to `sandbox.pinged` (which its
//! `sandbox.emit` can emit) and records every delivery in `sandbox_events`,
//! one row per delivery, readable through `sandbox.events.list`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Options, Session, TestApp, open};

/// The event the sandbox subscribes to.
const PINGED: &str = "sandbox.pinged";
/// Polls before a wait gives up (each 50 ms apart).
const POLLS: usize = 600;

/// A sandbox server whose dispatcher wakes every `interval_ms` (`0`: off),
/// retrying failures quickly.
fn options(interval_ms: u64) -> Options {
    Options {
        sandbox: true,
        env: vec![
            (
                "MALIPO_EVENT_INTERVAL_MS".to_string(),
                interval_ms.to_string(),
            ),
            ("MALIPO_EVENT_RETRY_BASE_MS".to_string(), "20".to_string()),
        ],
    }
}

fn unique(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

/// Emits `name` with `payload` through `sandbox.emit`.
async fn emit(app: &TestApp, me: &Session, name: &str, payload: Value) {
    let (status, body) = app
        .post(
            "/api/v1/sandbox/emit",
            &me.auth(),
            json!({"name": name, "payload": payload}),
        )
        .await;
    assert_eq!((status, &body), (200, &json!({"emitted": true})));
}

/// Every delivery the sandbox recorded in the tenant of `me`.
async fn recorded(app: &TestApp, me: &Session) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/sandbox/events", &me.auth()).await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().cloned().expect("events array")
}

/// The recorded deliveries whose payload carries `marker`.
fn with_marker<'a>(events: &'a [Value], marker: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            serde_json::from_str::<Value>(e["payload"].as_str().unwrap_or("null"))
                .is_ok_and(|p| p["marker"] == marker)
        })
        .collect()
}

/// Waits until the sandbox recorded a delivery of the event carrying
/// `marker`; answers every recorded delivery at that point.
async fn wait_for_delivery(app: &TestApp, me: &Session, marker: &str) -> Vec<Value> {
    for _ in 0..POLLS {
        let events = recorded(app, me).await;
        if !with_marker(&events, marker).is_empty() {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the event carrying {marker} was never delivered");
}

/// The outbox row of the event carrying `marker`: its id, and whether it is
/// marked delivered.
fn outbox_row(app: &TestApp, tenant: &str, marker: &str) -> Option<(String, bool)> {
    open(&app.tenant_file(tenant))
        .query_row(
            "SELECT event_id, delivered_at IS NOT NULL FROM outbox
             WHERE json_extract(payload, '$.marker') = ?1",
            [marker],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .ok()
}

/// Waits until the outbox row of `marker` is marked delivered; answers its id.
async fn wait_for_settled(app: &TestApp, tenant: &str, marker: &str) -> String {
    for _ in 0..POLLS {
        if let Some((id, true)) = outbox_row(app, tenant, marker) {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox row carrying {marker} was never marked delivered");
}

/// The sandbox's delivery row of an event: attempts, delivered, given up.
fn delivery(app: &TestApp, tenant: &str, event_id: &str) -> Option<(i64, bool, bool)> {
    open(&app.tenant_file(tenant))
        .query_row(
            "SELECT attempts, delivered_at IS NOT NULL, failed_at IS NOT NULL
             FROM event_deliveries WHERE event_id = ?1 AND plugin = 'sandbox'",
            [event_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .ok()
}

/// Emits one more event and waits for its delivery, so that the dispatcher
/// has made at least one full pass since anything checked before.
async fn one_more_pass(app: &TestApp, me: &Session) -> Vec<Value> {
    let marker = unique("later");
    emit(app, me, PINGED, json!({"marker": marker})).await;
    wait_for_delivery(app, me, &marker).await
}

#[tokio::test]
async fn an_emitted_event_is_delivered_to_its_subscriber_exactly_once() {
    let app = TestApp::spawn_with(options(100)).await;
    let me = app.register("Events Once").await;
    let marker = unique("once");
    emit(&app, &me, PINGED, json!({"marker": marker, "n": 1})).await;

    let events = wait_for_delivery(&app, &me, &marker).await;
    let mine = with_marker(&events, &marker);
    assert_eq!(mine.len(), 1, "{events:?}");
    let event_id = wait_for_settled(&app, &me.tenant_id, &marker).await;
    let got = mine[0];
    assert_eq!(got["event_id"], event_id.as_str(), "{got}");
    assert_eq!(got["name"], PINGED);
    assert_eq!(got["tenant_id"], me.tenant_id.as_str());
    assert_eq!(got["user_id"], Value::Null, "a delivery has no user");
    assert_eq!(got["channel"], "event");
    assert!(
        got["request_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("event-")),
        "{got}"
    );
    assert_eq!(
        delivery(&app, &me.tenant_id, &event_id),
        Some((1, true, false))
    );

    // An event nobody subscribes to is settled without any delivery.
    let unheard = unique("unheard");
    emit(&app, &me, "sandbox.unheard", json!({"marker": unheard})).await;
    let unheard_id = wait_for_settled(&app, &me.tenant_id, &unheard).await;
    assert_eq!(delivery(&app, &me.tenant_id, &unheard_id), None);

    // Later passes do not deliver it again.
    let events = one_more_pass(&app, &me).await;
    assert_eq!(with_marker(&events, &marker).len(), 1, "{events:?}");
    assert!(with_marker(&events, &unheard).is_empty(), "{events:?}");
    assert_eq!(
        delivery(&app, &me.tenant_id, &event_id),
        Some((1, true, false))
    );
}

#[tokio::test]
async fn a_failing_subscriber_is_retried_until_it_succeeds_and_then_not_again() {
    let app = TestApp::spawn_with(options(50)).await;
    let me = app.register("Events Retry").await;
    let failing = unique("failing");
    let trapping = unique("trapping");
    emit(
        &app,
        &me,
        PINGED,
        json!({"marker": failing, "fail_times": 3}),
    )
    .await;
    emit(
        &app,
        &me,
        PINGED,
        json!({"marker": trapping, "fail_times": 2, "fail_with": "trap"}),
    )
    .await;

    wait_for_delivery(&app, &me, &failing).await;
    wait_for_delivery(&app, &me, &trapping).await;
    let failing_id = wait_for_settled(&app, &me.tenant_id, &failing).await;
    let trapping_id = wait_for_settled(&app, &me.tenant_id, &trapping).await;
    // Each failed attempt rolled back; the one that succeeded committed once.
    assert_eq!(
        delivery(&app, &me.tenant_id, &failing_id),
        Some((4, true, false))
    );
    assert_eq!(
        delivery(&app, &me.tenant_id, &trapping_id),
        Some((3, true, false))
    );

    let events = one_more_pass(&app, &me).await;
    assert_eq!(with_marker(&events, &failing).len(), 1, "{events:?}");
    assert_eq!(with_marker(&events, &trapping).len(), 1, "{events:?}");
    assert_eq!(
        delivery(&app, &me.tenant_id, &failing_id),
        Some((4, true, false))
    );
}

#[tokio::test]
async fn an_event_of_a_rolled_back_call_is_never_delivered() {
    let app = TestApp::spawn_with(options(50)).await;
    let me = app.register("Events Rollback").await;
    let marker = unique("rolled-back");
    let (status, body) = app
        .post(
            "/api/v1/sandbox/emit",
            &me.auth(),
            json!({"name": PINGED, "payload": {"marker": marker}, "fail": true}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(outbox_row(&app, &me.tenant_id, &marker), None);

    let events = one_more_pass(&app, &me).await;
    assert!(with_marker(&events, &marker).is_empty(), "{events:?}");
    assert_eq!(outbox_row(&app, &me.tenant_id, &marker), None);
}

#[tokio::test]
async fn an_undelivered_event_is_delivered_once_after_a_restart() {
    // Delivery off: the event commits and stays in the outbox.
    let app = TestApp::spawn_with(options(0)).await;
    let me = app.register("Events Restart").await;
    let marker = unique("restart");
    emit(&app, &me, PINGED, json!({"marker": marker})).await;
    let (event_id, delivered) = outbox_row(&app, &me.tenant_id, &marker).expect("outbox row");
    assert!(!delivered);
    assert!(recorded(&app, &me).await.is_empty());
    let temp = app.stop().expect("the data directory");

    let app = TestApp::start(temp.path(), &options(50)).await;
    let events = wait_for_delivery(&app, &me, &marker).await;
    assert_eq!(with_marker(&events, &marker).len(), 1, "{events:?}");
    assert_eq!(
        wait_for_settled(&app, &me.tenant_id, &marker).await,
        event_id
    );
    let events = one_more_pass(&app, &me).await;
    assert_eq!(with_marker(&events, &marker).len(), 1, "{events:?}");
    assert_eq!(
        delivery(&app, &me.tenant_id, &event_id),
        Some((1, true, false))
    );
    drop(app);
    drop(temp);
}

#[tokio::test]
async fn tenants_events_never_cross() {
    let app = TestApp::spawn_with(options(50)).await;
    let a = app.register("Events Tenant A").await;
    let b = app.register("Events Tenant B").await;
    let mark_a = unique("tenant-a");
    let mark_b = unique("tenant-b");
    emit(&app, &a, PINGED, json!({"marker": mark_a})).await;
    emit(&app, &b, PINGED, json!({"marker": mark_b})).await;

    let of_a = wait_for_delivery(&app, &a, &mark_a).await;
    let of_b = wait_for_delivery(&app, &b, &mark_b).await;
    let id_a = wait_for_settled(&app, &a.tenant_id, &mark_a).await;
    let id_b = wait_for_settled(&app, &b.tenant_id, &mark_b).await;
    assert!(with_marker(&of_a, &mark_b).is_empty(), "{of_a:?}");
    assert!(with_marker(&of_b, &mark_a).is_empty(), "{of_b:?}");
    assert!(of_a.iter().all(|e| e["tenant_id"] == a.tenant_id.as_str()));
    assert!(of_b.iter().all(|e| e["tenant_id"] == b.tenant_id.as_str()));
    // Neither tenant's file holds the other's event or delivery.
    assert_eq!(outbox_row(&app, &a.tenant_id, &mark_b), None);
    assert_eq!(outbox_row(&app, &b.tenant_id, &mark_a), None);
    assert_eq!(delivery(&app, &a.tenant_id, &id_b), None);
    assert_eq!(delivery(&app, &b.tenant_id, &id_a), None);
}
