//! `GET /api/v1/events/stream`: a tenant's own events as server-sent
//! events. A payment's completion arrives on its tenant's stream and never
//! on another's; a member limited to one store hears only that store's;
//! no credential is the usual 401; `Last-Event-ID` resumes after a gap.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, Session, TestApp, code};
use crate::mpesa::push_in_store;

/// One event as the stream framed it.
#[derive(Debug, Clone)]
struct Sent {
    id: i64,
    name: String,
    data: Value,
}

/// An open stream and what is left of its last chunk.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(app: &TestApp, auth: &Auth, last_event_id: Option<i64>) -> Self {
        let mut request = app.client.get(format!("{}/api/v1/events/stream", app.base));
        request = match auth {
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::ApiKey(key) => request.bearer_auth(key),
            Auth::None => request,
        };
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("open stream");
        assert_eq!(response.status(), 200, "stream refused");
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event within `wait`, skipping keep-alive comments.
    async fn next(&mut self, wait: Duration) -> Option<Sent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(sent) = parse(&frame) {
                    return Some(sent);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .expect("stream read")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until one satisfies `done` (panics after `wait`).
    async fn until(&mut self, wait: Duration, done: impl Fn(&Sent) -> bool) -> Vec<Sent> {
        let mut seen = Vec::new();
        loop {
            let sent = self
                .next(wait)
                .await
                .unwrap_or_else(|| panic!("no awaited event; saw {seen:?}"));
            let finished = done(&sent);
            seen.push(sent);
            if finished {
                return seen;
            }
        }
    }

    /// Every event arriving within `wait`.
    async fn drain(&mut self, wait: Duration) -> Vec<Sent> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut seen = Vec::new();
        while let Some(sent) = self
            .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            seen.push(sent);
        }
        seen
    }
}

fn parse(frame: &str) -> Option<Sent> {
    let mut id = None;
    let mut name = None;
    let mut data = String::new();
    for line in frame.lines() {
        if let Some(value) = line.strip_prefix("id:") {
            id = value.trim().parse().ok();
        } else if let Some(value) = line.strip_prefix("event:") {
            name = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        }
    }
    Some(Sent {
        id: id?,
        name: name?,
        data: serde_json::from_str(&data).ok()?,
    })
}

const SOON: Duration = Duration::from_secs(20);

/// Waits until the transaction is no longer pending.
async fn settled(app: &TestApp, who: &Session, transaction: &str) {
    for _ in 0..200 {
        let (status, body) = app
            .get(
                &format!("/api/v1/mpesa/transactions/{transaction}"),
                &who.auth(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let now = body["status"]
            .as_str()
            .or_else(|| body["transaction"]["status"].as_str())
            .unwrap_or_default();
        if now == "completed" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{transaction} never completed");
}

fn completes(transaction: &str) -> impl Fn(&Sent) -> bool + '_ {
    move |sent| {
        sent.name == "payment.completed" && sent.data["data"]["transaction_id"] == transaction
    }
}

fn mentions(seen: &[Sent], transaction: &str) -> bool {
    seen.iter()
        .any(|s| s.data["data"]["transaction_id"] == transaction)
}

async fn shop(app: &TestApp, name: &str) -> (Session, String) {
    let owner = app.register(name).await;
    app.configure_mpesa(&owner).await;
    let store = owner.default_store.clone().expect("default store");
    (owner, store)
}

#[tokio::test]
async fn a_tenants_own_payment_arrives_and_never_on_another_tenants_stream() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let (alpha, alpha_store) = shop(&app, "Alpha Shop").await;
    let (beta, beta_store) = shop(&app, "Beta Shop").await;
    let mut alpha_stream = Stream::open(&app, &alpha.auth(), None).await;
    let mut beta_stream = Stream::open(&app, &beta.auth(), None).await;

    let paid = push_in_store(&app, &alpha, &alpha_store, 150).await;
    let seen = alpha_stream.until(SOON, completes(&paid)).await;
    let last = seen.last().expect("an event");
    assert_eq!(last.data["data"]["amount"], 150, "{last:?}");
    assert_eq!(last.data["source"], "mpesa", "{last:?}");
    assert_eq!(last.data["id"], last.id, "{last:?}");

    // Beta's stream works, and what it hears is Beta's own payment only.
    let theirs = push_in_store(&app, &beta, &beta_store, 70).await;
    let heard = beta_stream.until(SOON, completes(&theirs)).await;
    assert!(!mentions(&heard, &paid), "{heard:?}");
    assert!(
        !mentions(&alpha_stream.drain(Duration::from_secs(2)).await, &theirs),
        "Alpha heard Beta's payment"
    );
}

#[tokio::test]
async fn a_store_limited_member_hears_only_their_stores_events() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let (owner, first) = shop(&app, "Two Tills").await;
    let (status, second) = app
        .post(
            "/api/v1/stores",
            &owner.auth(),
            json!({"name": "Second till"}),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let second = second["id"].as_str().expect("store id").to_string();
    let (status, role) = app
        .post(
            "/api/v1/roles",
            &owner.auth(),
            json!({"name": "Cashier", "permissions": ["payments.read", "payments.create"]}),
        )
        .await;
    assert!((200..300).contains(&status), "{role}");
    let cashier = app.add_member(&owner, "Cashier", None).await;
    let (status, added) = app
        .post(
            &format!("/api/v1/stores/{first}/users"),
            &owner.auth(),
            json!({"user_id": cashier.user_id}),
        )
        .await;
    assert!((200..300).contains(&status), "{added}");

    let mut owners = Stream::open(&app, &owner.auth(), None).await;
    let mut cashiers = Stream::open(&app, &cashier.auth(), None).await;
    let elsewhere = push_in_store(&app, &owner, &second, 22).await;
    owners.until(SOON, completes(&elsewhere)).await;
    let here = push_in_store(&app, &owner, &first, 11).await;
    let heard = cashiers.until(SOON, completes(&here)).await;
    assert!(
        !mentions(&heard, &elsewhere),
        "the cashier heard another store's payment: {heard:?}"
    );
    assert!(heard.iter().all(|s| s.data["data"]["store_id"] == first));
}

#[tokio::test]
async fn no_credential_is_a_401_in_the_usual_shape_and_no_read_permission_a_403() {
    let app = TestApp::spawn().await;
    for auth in [Auth::None, Auth::Bearer("not-a-token".into())] {
        let (status, body) = app
            .call(Method::GET, "/api/v1/events/stream", &auth, None)
            .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(code(&body), "unauthorized", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        assert!(body["error"]["request_id"].is_string(), "{body}");
    }
    // A member whose role reads no kind of event.
    let owner = app.register("Quiet Shop").await;
    let (status, role) = app
        .post(
            "/api/v1/roles",
            &owner.auth(),
            json!({"name": "Door", "permissions": ["stores.read"]}),
        )
        .await;
    assert!((200..300).contains(&status), "{role}");
    let door = app.add_member(&owner, "Door", None).await;
    let (status, body) = app.get("/api/v1/events/stream", &door.auth()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(code(&body), "forbidden", "{body}");
}

#[tokio::test]
async fn last_event_id_resumes_after_a_gap() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let (owner, store) = shop(&app, "Resume Shop").await;
    let mut stream = Stream::open(&app, &owner.auth(), None).await;
    let first = push_in_store(&app, &owner, &store, 10).await;
    let seen = stream.until(SOON, completes(&first)).await;
    let last_id = seen.last().expect("an event").id;
    drop(stream);

    // Paid while nobody listened.
    let missed = push_in_store(&app, &owner, &store, 20).await;
    settled(&app, &owner, &missed).await;

    // Resuming gets the missed payment, not the one already seen.
    let mut resumed = Stream::open(&app, &owner.auth(), Some(last_id)).await;
    let heard = resumed.until(SOON, completes(&missed)).await;
    assert!(!mentions(&heard, &first), "{heard:?}");
    assert!(heard.iter().all(|s| s.id > last_id), "{heard:?}");

    // Without the header nothing old is replayed.
    let mut fresh = Stream::open(&app, &owner.auth(), None).await;
    let old = fresh.drain(Duration::from_secs(3)).await;
    assert!(old.is_empty(), "{old:?}");

    // A malformed header is a 400, not a silent restart.
    let (status, body) = app
        .call_with(
            Method::GET,
            "/api/v1/events/stream",
            &owner.auth(),
            None,
            &[("Last-Event-ID", "yesterday")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
}
