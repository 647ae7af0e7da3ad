//! Outgoing webhooks end to end: a receiver started by the test, the real
//! binary with its Daraja emulator, a payment completed by the emulator's
//! callback, the `payment.completed` event delivered through the outbox to
//! the `notifications` plugin, and its signed POST — retried after a 500,
//! never repeated after a 200. Polls are bounded; no assertion depends on
//! wall-clock time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{Options, Session, TestApp};
use crate::mpesa::pay;

/// One POST the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) id: String,
    timestamp: String,
    signature: String,
    pub(crate) body: String,
}

/// A webhook receiver on loopback that answers the scripted statuses in
/// order (then 200), recording every request.
pub(crate) struct Receiver {
    pub(crate) url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) async fn start(script: Vec<u16>) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let log = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let log = Arc::clone(&log);
                let script = Arc::clone(&script);
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    log.lock().expect("log").push(Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body,
                    });
                    let status = script.lock().expect("script").next().unwrap_or(200);
                    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/hook"),
            received,
        }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }

    pub(crate) async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..400 {
            let got = self.received();
            if got.len() >= count {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the receiver got {:?}, wanted {count} requests",
            self.received()
        );
    }
}

fn verifies(secret: &str, message: &Received) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| STANDARD.decode(k).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(format!("{}.{}.{}", message.id, message.timestamp, message.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    message.signature.split(' ').any(|s| s == expected)
}

/// Subscribes `url` to `events` for the owner's organization; answers the
/// endpoint (with its signing secret, shown once).
pub(crate) async fn subscribe(app: &TestApp, owner: &Session, url: &str, events: Value) -> Value {
    let (status, endpoint) = app
        .post(
            "/api/v1/webhooks",
            &owner.auth(),
            json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    endpoint
}

/// The notifications plugin's job that sends the webhook messages due.
pub(crate) const DELIVER_JOB: &str = "webhooks.deliver";

/// Waits until the owner's in-app inbox holds `count` notifications (the
/// notifications plugin has handled that many events).
pub(crate) async fn wait_for_notifications(app: &TestApp, owner: &Session, count: usize) {
    for _ in 0..300 {
        let (_, body) = app.get("/api/v1/notifications", &owner.auth()).await;
        if body["notifications"].as_array().map_or(0, Vec::len) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} notifications arrived");
}

pub(crate) fn options(allow_loopback: bool) -> Options {
    let options = Options::daraja_sim()
        .with_env("MALIPO_JOB_INTERVAL_SECS", "1")
        .with_env("MALIPO_EVENT_INTERVAL_MS", "200");
    if allow_loopback {
        options.with_env("MALIPO_OUTBOUND_ALLOW", "127.0.0.1")
    } else {
        options
    }
}

#[tokio::test]
async fn a_completed_payment_reaches_the_shop_signed_retried_after_500_and_never_twice() {
    let receiver = Receiver::start(vec![500]).await;
    let app = TestApp::spawn_with(options(true)).await;
    let owner = app.register("Shop Ltd").await;
    app.configure_mpesa(&owner).await;
    let (status, endpoint) = app
        .post(
            "/api/v1/webhooks",
            &owner.auth(),
            json!({"url": receiver.url, "events": ["payment.completed"], "description": "ERP"}),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let secret = endpoint["secret"]
        .as_str()
        .expect("secret shown once")
        .to_string();
    let (_, listed) = app.get("/api/v1/webhooks", &owner.auth()).await;
    assert!(listed["webhooks"][0].get("secret").is_none(), "{listed}");
    assert!(!listed.to_string().contains(&secret));

    let txn = pay(&app, &owner, 120).await;
    // The first attempt gets a 500; the retry (same webhook-id) a 200.
    let got = receiver.wait_for(2).await;
    assert_eq!(got[0].id, got[1].id, "a retry keeps its webhook-id");
    for message in &got {
        assert!(verifies(&secret, message), "signature of {message:?}");
        let body: Value = serde_json::from_str(&message.body).expect("json body");
        assert_eq!(body["type"], "payment.completed");
        assert_eq!(body["data"]["transaction_id"], txn.as_str());
        assert_eq!(body["data"]["amount"], 120);
    }
    // Nothing more for that message once it answered 200, whatever runs
    // next: the delivery job runs twice more after it is recorded delivered.
    let id = endpoint["id"].as_str().expect("id");
    for _ in 0..40 {
        let (_, log) = app
            .get(&format!("/api/v1/webhooks/{id}/deliveries"), &owner.auth())
            .await;
        if log["deliveries"][0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let runs = app.plugin_calls(DELIVER_JOB).await;
    app.wait_for_plugin_calls(DELIVER_JOB, runs, 2).await;
    assert_eq!(receiver.received().len(), 2, "{:?}", receiver.received());
    let (_, log) = app
        .get(&format!("/api/v1/webhooks/{id}/deliveries"), &owner.auth())
        .await;
    assert_eq!(log["deliveries"][0]["status"], "delivered", "{log}");
    assert_eq!(log["deliveries"][0]["attempts"], 2, "{log}");

    // A replay sends the same message again, on request.
    let delivery = log["deliveries"][0]["id"].as_str().expect("delivery id");
    let (status, body) = app
        .post(
            &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/retry"),
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let got = receiver.wait_for(3).await;
    assert_eq!(got[2].id, got[0].id);
}

#[tokio::test]
async fn nothing_is_sent_to_a_loopback_address_the_operator_did_not_allow() {
    let receiver = Receiver::start(vec![]).await;
    let app = TestApp::spawn_with(options(false)).await;
    let owner = app.register("Careful Ltd").await;
    app.configure_mpesa(&owner).await;
    let endpoint = subscribe(&app, &owner, &receiver.url, json!(["*"])).await;
    let id = endpoint["id"].as_str().expect("id").to_string();
    pay(&app, &owner, 130).await;
    let mut last = Value::Null;
    for _ in 0..300 {
        let (_, log) = app
            .get(&format!("/api/v1/webhooks/{id}/deliveries"), &owner.auth())
            .await;
        last = log;
        if last["deliveries"][0]["attempts"].as_i64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = last["deliveries"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("private") || error.contains("loopback"),
        "{last}"
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn an_endpoint_that_answers_410_is_disabled_and_gets_nothing_more() {
    let receiver = Receiver::start(vec![410]).await;
    let app = TestApp::spawn_with(options(true)).await;
    let owner = app.register("Gone Ltd").await;
    app.configure_mpesa(&owner).await;
    let endpoint = subscribe(&app, &owner, &receiver.url, json!(["payment.completed"])).await;
    let id = endpoint["id"].as_str().expect("id").to_string();
    pay(&app, &owner, 140).await;
    receiver.wait_for(1).await;
    let mut listed = Value::Null;
    for _ in 0..100 {
        let (_, body) = app.get("/api/v1/webhooks", &owner.auth()).await;
        listed = body;
        if listed["webhooks"][0]["status"] == "disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed["webhooks"][0]["status"], "disabled", "{listed}");
    // A second payment, completed, queues nothing for a disabled endpoint:
    // once its event reached the plugin (its in-app notification is there)
    // and the delivery job ran twice more, nothing was queued or sent.
    let second = pay(&app, &owner, 150).await;
    for _ in 0..200 {
        let (_, body) = app
            .get(
                &format!("/api/v1/mpesa/transactions/{second}"),
                &owner.auth(),
            )
            .await;
        if body["transaction"]["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_notifications(&app, &owner, 2).await;
    let runs = app.plugin_calls(DELIVER_JOB).await;
    app.wait_for_plugin_calls(DELIVER_JOB, runs, 2).await;
    let (_, log) = app
        .get(&format!("/api/v1/webhooks/{id}/deliveries"), &owner.auth())
        .await;
    assert_eq!(log["deliveries"].as_array().map(Vec::len), Some(1), "{log}");
    assert_eq!(receiver.received().len(), 1, "{:?}", receiver.received());
}
