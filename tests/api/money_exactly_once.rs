//! Money moves exactly once (issue 12 §1): no network call inside a
//! tenant's write transaction. A bulk payout killed (SIGKILL) in the middle
//! of a slow Daraja answer and retried with the same `Idempotency-Key` after
//! a restart pays every recipient once; an STK push's intent is committed
//! before the push leaves; a plugin's send leaves the tenant's database
//! unlocked for other writes.
//!
//! The Daraja emulator runs in this test process (not inside the server,
//! which SIGKILL would take down with it), reached as a `custom` base URL
//! that `MALIPO_OUTBOUND_ALLOW` lets through.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Options, PASSWORD, Session, TestApp};
use crate::mpesa::{self, B2C_PATH, STK_PUSH_PATH};

/// An emulator of our own, calling back after `callback_ms`.
async fn emulator(callback_ms: u64) -> daraja_sim::Running {
    daraja_sim::start(daraja_sim::Config {
        callback_delay: Duration::from_millis(callback_ms),
        ..daraja_sim::Config::default()
    })
    .await
    .expect("start the emulator")
}

/// A server that may reach the emulator (a loopback address).
fn options(sim: &daraja_sim::Running) -> Options {
    Options::default()
        .with_env("MALIPO_OUTBOUND_ALLOW", &sim.addr().to_string())
        .with_env("MALIPO_JOB_INTERVAL_SECS", "3600")
}

async fn configure(app: &TestApp, owner: &Session, sim: &daraja_sim::Running) {
    mpesa::configure(app, owner, mpesa::custom_credentials(sim.base_url())).await;
}

fn set_faults(sim: &daraja_sim::Running, faults: Value) {
    let faults: daraja_sim::Faults = serde_json::from_value(faults).expect("faults");
    sim.handle().set_faults(faults);
}

/// B2C payouts the emulator registered (accepted), by phone.
fn paid_by_phone(sim: &daraja_sim::Running) -> BTreeMap<String, usize> {
    let mut paid = BTreeMap::new();
    for txn in sim.handle().transactions() {
        if txn.kind == "b2c" {
            *paid.entry(txn.phone.unwrap_or_default()).or_insert(0) += 1;
        }
    }
    paid
}

fn payroll() -> Vec<Value> {
    (0..6)
        .map(|i| {
            json!({
                "phone_number": format!("25471100000{i}"),
                "amount": 100 + i,
                "remarks": "Salary"
            })
        })
        .collect()
}

async fn bulk(app: &TestApp, owner: &Session, key: &str) -> (u16, Value) {
    app.call_with(
        Method::POST,
        "/api/v1/mpesa/b2c/bulk",
        &owner.auth(),
        Some(json!({"items": payroll(), "command_id": "SalaryPayment"})),
        &[("Idempotency-Key", key)],
    )
    .await
}

#[tokio::test]
async fn a_bulk_payout_killed_mid_batch_and_retried_pays_everyone_exactly_once() {
    let sim = emulator(200).await;
    let options = options(&sim);
    let first = TestApp::spawn_with(options.clone()).await;
    let owner = first.register("Payroll Crash").await;
    configure(&first, &owner, &sim).await;

    // Each payout is processed at once and answered 800 ms later.
    set_faults(&sim, json!({"response_delay_ms": 800}));
    let call = {
        let (base, auth) = (first.base.clone(), owner.access_token.clone());
        tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(format!("{base}/api/v1/mpesa/b2c/bulk"))
                .bearer_auth(auth)
                .header("Idempotency-Key", "payroll-2026-12")
                .json(&json!({"items": payroll(), "command_id": "SalaryPayment"}))
                .send()
                .await;
        })
    };
    // SIGKILL while Daraja holds the answer of the third payout.
    let started = Instant::now();
    while paid_by_phone(&sim).values().sum::<usize>() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bulk payout never reached its third item"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let temp = first.stop().expect("the data directory");
    call.abort();
    let before_restart = paid_by_phone(&sim);
    assert_eq!(
        before_restart.values().sum::<usize>(),
        3,
        "{before_restart:?}"
    );

    // A new server on the same data; the same request with the same key.
    set_faults(&sim, json!({}));
    let app = TestApp::start(temp.path(), &options).await;
    let (status, login) = app.login(&owner.email, PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    let owner = Session {
        default_store: owner.default_store.clone(),
        ..Session::from_auth_response(&login, &owner.email)
    };
    let (status, answer) = bulk(&app, &owner, "payroll-2026-12").await;
    assert_eq!(status, 201, "the retry resumes the batch: {answer}");
    let batch = answer["batch"]["id"]
        .as_str()
        .expect("batch id")
        .to_string();

    // Every item ends in one final state.
    let mut items = Vec::new();
    for _ in 0..300 {
        let (status, body) = app
            .get(&format!("/api/v1/mpesa/b2c/batches/{batch}"), &owner.auth())
            .await;
        assert_eq!(status, 200, "{body}");
        items = body["items"].as_array().cloned().unwrap_or_default();
        if items.len() == 6 && items.iter().all(|i| i["status"] != "pending") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(items.len(), 6, "{items:?}");
    for item in &items {
        assert_eq!(item["status"], "completed", "{item}");
    }

    // Every recipient was paid exactly once at Daraja.
    let paid = paid_by_phone(&sim);
    assert_eq!(paid.len(), 6, "{paid:?}");
    for (phone, times) in &paid {
        assert_eq!(*times, 1, "{phone} was paid {times} times: {paid:?}");
    }
    let b2c_posts = sim
        .handle()
        .requests()
        .iter()
        .filter(|r| r.path == B2C_PATH && r.status == 200)
        .count();
    assert!(b2c_posts <= 6, "{b2c_posts} accepted B2C requests");

    // A third call with the key answers the stored batch and sends nothing.
    let requests = sim.handle().requests().len();
    let (status, again) = bulk(&app, &owner, "payroll-2026-12").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["batch"]["id"], batch.as_str());
    assert_eq!(sim.handle().requests().len(), requests, "nothing sent");
    drop(app);
    drop(temp);
}

fn tenant_db(app: &TestApp, owner: &Session) -> rusqlite::Connection {
    crate::helpers::open(&app.tenant_file(&owner.tenant_id))
}

#[tokio::test]
async fn an_stk_push_is_committed_before_it_is_sent_and_never_pushed_twice() {
    let sim = emulator(60_000).await;
    let app = TestApp::spawn_with(options(&sim)).await;
    let owner = app.register("Push Intent").await;
    configure(&app, &owner, &sim).await;
    set_faults(&sim, json!({"response_delay_ms": 1500}));
    let push = |key: &'static str| {
        let (app, owner) = (&app, &owner);
        async move {
            app.call_with(
                Method::POST,
                "/api/v1/mpesa/stk-push",
                &owner.auth(),
                Some(json!({
                    "phone_number": "254712345678",
                    "amount": 10,
                    "account_reference": "INV-9",
                    "description": "Test"
                })),
                &[("Idempotency-Key", key)],
            )
            .await
        }
    };
    let (answer, intent) = tokio::join!(push("order-9"), async {
        // While Daraja holds its answer, the intent and the key are already
        // committed: another connection sees them.
        let started = Instant::now();
        loop {
            if sim.handle().transactions().iter().any(|t| t.kind == "stk") {
                let conn = tenant_db(&app, &owner);
                let intent: (i64, i64) = conn
                    .query_row(
                        "SELECT (SELECT COUNT(*) FROM mpesa_submissions), \
                         (SELECT COUNT(*) FROM mpesa_idempotency WHERE key = 'order-9' AND subject_id IS NOT NULL)",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .expect("read the tenant file");
                return intent;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "never sent");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(intent, (1, 1), "intent and key committed before the answer");
    let (status, body) = answer;
    assert_eq!(status, 201, "{body}");
    let checkout = body["transaction"]["checkout_request_id"]
        .as_str()
        .expect("CheckoutRequestID recorded");
    // The answer is recorded after: the intent became the transaction.
    let conn = tenant_db(&app, &owner);
    let (submissions, recorded): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM mpesa_submissions), \
             (SELECT COUNT(*) FROM mpesa_transactions WHERE checkout_request_id = ?1)",
            [checkout],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("read");
    assert_eq!((submissions, recorded), (0, 1));

    // The same key again: the stored answer, no second push.
    set_faults(&sim, json!({}));
    let (status, again) = push("order-9").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["transaction"]["checkout_request_id"], checkout);
    let pushes = sim
        .handle()
        .requests()
        .iter()
        .filter(|r| r.path == STK_PUSH_PATH)
        .count();
    assert_eq!(pushes, 1, "pushed once");

    // A key whose push was sent but whose answer was never recorded (the
    // server died in between) is refused, not pushed again.
    conn.execute(
        "INSERT INTO mpesa_idempotency (operation, key, request, response, created_at, subject_id) \
         SELECT operation, 'order-10', request, 'null', created_at, 'lost-intent' FROM mpesa_idempotency WHERE key = 'order-9'",
        [],
    )
    .expect("plant an unfinished key");
    let (status, refused) = push("order-10").await;
    assert_eq!(status, 409, "{refused}");
    let pushes = sim
        .handle()
        .requests()
        .iter()
        .filter(|r| r.path == STK_PUSH_PATH)
        .count();
    assert_eq!(pushes, 1, "still pushed once");
}

#[tokio::test]
async fn a_plugin_waiting_on_daraja_leaves_the_tenant_database_unlocked() {
    let sim = emulator(60_000).await;
    let app = TestApp::spawn_with(options(&sim)).await;
    let owner = app.register("Slow Daraja").await;
    configure(&app, &owner, &sim).await;
    set_faults(&sim, json!({"response_delay_ms": 3000}));
    let auth = owner.auth();
    let slow = app.post(
        "/api/v1/mpesa/stk-push",
        &auth,
        json!({
            "phone_number": "254712345678",
            "amount": 10,
            "account_reference": "INV-1",
            "description": "Test"
        }),
    );
    let other_write = async {
        let started = Instant::now();
        while !sim.handle().transactions().iter().any(|t| t.kind == "stk") {
            assert!(started.elapsed() < Duration::from_secs(30), "never sent");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Daraja is holding its answer for 3 s; a write to the same tenant
        // (settings, and a direct write to the file) goes through at once.
        let started = Instant::now();
        let (status, body) = app
            .call(
                Method::PATCH,
                "/api/v1/tenant/settings",
                &owner.auth(),
                Some(json!({"locale": "sw-KE"})),
            )
            .await;
        let api_took = started.elapsed();
        let conn = tenant_db(&app, &owner);
        conn.busy_timeout(Duration::from_millis(0)).expect("busy");
        let direct = conn.execute_batch("BEGIN IMMEDIATE; COMMIT;");
        (status, body, api_took, direct)
    };
    let ((push_status, push_body), (status, body, api_took, direct)) =
        tokio::join!(slow, other_write);
    assert_eq!(push_status, 201, "{push_body}");
    assert_eq!(status, 200, "{body}");
    assert!(
        api_took < Duration::from_millis(1500),
        "a write waited {api_took:?} behind a plugin's outbound request"
    );
    assert!(direct.is_ok(), "the file was locked: {direct:?}");
}

// ---------------------------------------------------------------------------
// An STK push whose Daraja answer was lost

/// The push every lost-answer test sends.
fn order(reference: &str) -> Value {
    json!({
        "phone_number": "254712345678",
        "amount": 10,
        "account_reference": reference,
        "description": "Test"
    })
}

async fn push_keyed(app: &TestApp, owner: &Session, key: &str) -> (u16, Value) {
    app.call_with(
        Method::POST,
        "/api/v1/mpesa/stk-push",
        &owner.auth(),
        Some(order(key)),
        &[("Idempotency-Key", key)],
    )
    .await
}

/// Transactions of `kind` (`stk`, `reversal`, …) the emulator registered
/// (its request log records a request only once answered, and these
/// answers are held or lost).
fn registered(sim: &daraja_sim::Running, kind: &str) -> usize {
    sim.handle()
        .transactions()
        .iter()
        .filter(|t| t.kind == kind)
        .count()
}

/// STK pushes the emulator registered.
fn pushes(sim: &daraja_sim::Running) -> usize {
    registered(sim, "stk")
}

/// A first server whose owner configured M-Pesa against `sim`, the access
/// token fetched (and cached) before Daraja turns slow: a later delay is
/// for a request's answer, not for the token.
async fn first_server(
    sim: &daraja_sim::Running,
    options: &Options,
    name: &str,
) -> (TestApp, Session) {
    let first = TestApp::spawn_with(options.clone()).await;
    let owner = first.register(name).await;
    configure(&first, &owner, sim).await;
    let (status, body) = first
        .post("/api/v1/mpesa/credentials/test", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    (first, owner)
}

/// One keyed request whose answer Daraja holds.
struct Held {
    /// The API path it is posted to.
    path: &'static str,
    key: &'static str,
    body: Value,
    /// The kind of transaction the emulator registers for it.
    kind: &'static str,
}

/// Sends `held` while Daraja holds its answer, and SIGKILLs `first` once
/// the emulator registered it: the answer is lost. Answers a new server on
/// the same data, the owner's new session and the data directory.
async fn kill_while_daraja_holds_the_answer(
    sim: &daraja_sim::Running,
    options: &Options,
    first: TestApp,
    owner: &Session,
    held: Held,
) -> (TestApp, Session, tempfile::TempDir) {
    set_faults(sim, json!({"response_delay_ms": 30_000}));
    let call = {
        let (url, auth) = (
            format!("{}{}", first.base, held.path),
            owner.access_token.clone(),
        );
        let (key, body) = (held.key, held.body.clone());
        tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(url)
                .bearer_auth(auth)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await;
        })
    };
    let started = Instant::now();
    while registered(sim, held.kind) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the {} never reached the emulator",
            held.kind
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let temp = first.stop().expect("the data directory");
    call.abort();
    set_faults(sim, json!({}));
    assert_eq!(registered(sim, held.kind), 1);
    let app = TestApp::start(temp.path(), options).await;
    let (status, login) = app.login(&owner.email, PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    let owner = Session {
        default_store: owner.default_store.clone(),
        ..Session::from_auth_response(&login, &owner.email)
    };
    (app, owner, temp)
}

/// Pushes with `key` while Daraja holds its answer, and SIGKILLs the
/// server once the emulator registered the push: the answer (the
/// CheckoutRequestID) is lost. Answers a new server on the same data, the
/// owner's new session and the data directory.
async fn lose_the_answer(
    sim: &daraja_sim::Running,
    options: &Options,
    key: &'static str,
) -> (TestApp, Session, tempfile::TempDir) {
    let (first, owner) = first_server(sim, options, &format!("Lost {key}")).await;
    let held = Held {
        path: "/api/v1/mpesa/stk-push",
        key,
        body: order(key),
        kind: "stk",
    };
    kill_while_daraja_holds_the_answer(sim, options, first, &owner, held).await
}

/// Polls a transaction until it leaves `pending` (or the tries run out);
/// answers it as it then stands.
async fn settled(app: &TestApp, owner: &Session, id: &str) -> Value {
    let mut txn = Value::Null;
    for _ in 0..200 {
        txn = transaction(app, owner, id).await;
        if txn["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    txn
}

/// The path of a callback the emulator sent to a server that is gone: the
/// same path on the new server is where the public URL now leads.
fn callback_path(callback: &daraja_sim::CallbackRecord) -> String {
    callback
        .url
        .split_once("/callbacks/")
        .map(|(_, rest)| format!("/callbacks/{rest}"))
        .expect("a callback URL")
}

/// The emulator's first callback of `kind` (sent to a server that is gone),
/// posted again to the one now running at the same path; answers the path
/// and the record.
async fn redeliver(
    sim: &daraja_sim::Running,
    app: &TestApp,
    kind: daraja_sim::CallbackKind,
) -> (String, daraja_sim::CallbackRecord) {
    sim.handle().flush_callbacks().await;
    let callback = sim
        .handle()
        .callbacks()
        .into_iter()
        .find(|c| c.kind == kind)
        .expect("the emulator called back");
    let path = callback_path(&callback);
    let (delivered, _) = mpesa::post_callback(app, &path, &callback.raw_body).await;
    assert_eq!(delivered, 200, "{path}");
    (path, callback)
}

async fn transaction(app: &TestApp, owner: &Session, id: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/v1/mpesa/transactions/{id}"), &owner.auth())
        .await;
    assert_eq!(status, 200, "{body}");
    body["transaction"].clone()
}

#[tokio::test]
async fn an_stk_push_whose_answer_was_lost_is_answered_on_retry_and_settled_by_its_callback() {
    // The emulator calls back only when told to (after the restart).
    let sim = emulator(600_000).await;
    let options = options(&sim);
    let (app, owner, temp) = lose_the_answer(&sim, &options, "order-77").await;

    // The same key again: the payment as it stands — not 409, not a
    // second push.
    let (status, answer) = push_keyed(&app, &owner, "order-77").await;
    assert_eq!(status, 201, "{answer}");
    let txn = &answer["transaction"];
    assert_eq!(txn["status"], "pending", "{answer}");
    assert_eq!(txn["checkout_request_id"], Value::Null, "{answer}");
    assert_eq!(txn["account_reference"], "order-77", "{answer}");
    let id = txn["id"].as_str().expect("id").to_string();
    assert_eq!(pushes(&sim), 1, "never pushed again");

    // Daraja calls back at the URL the push gave, which names the push's
    // intent. The first server is gone; the public URL now reaches the new
    // one (here: the same path on the new address).
    let (path, callback) = redeliver(&sim, &app, daraja_sim::CallbackKind::Stk).await;
    assert!(path.ends_with(&format!("/stk/{id}")), "{path}");

    let done = settled(&app, &owner, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["checkout_request_id"], callback.transaction.as_str());
    assert!(done["receipt"].as_str().is_some(), "{done}");

    // And the key answers the completed payment; still one push.
    let (status, again) = push_keyed(&app, &owner, "order-77").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["transaction"]["id"], id.as_str());
    assert_eq!(again["transaction"]["status"], "completed", "{again}");
    assert_eq!(pushes(&sim), 1, "never pushed again");
    assert_eq!(
        submissions(&app, &owner),
        0,
        "the intent became the transaction"
    );
    drop(app);
    drop(temp);
}

#[tokio::test]
async fn an_stk_push_without_answer_or_callback_fails_at_reconciliation_and_is_never_resent() {
    let sim = emulator(600_000).await;
    let options = options(&sim).with_env("MALIPO_TEST_CLOCK", "1");
    let (app, owner, temp) = lose_the_answer(&sim, &options, "order-78").await;
    let admin = app.super_admin().await;

    // A few minutes on, its callback may still come: nothing changes.
    advance(&app, &admin, 180).await;
    assert_eq!(submissions(&app, &owner), 1);
    // Past ten minutes with neither answer nor callback: failed, with the
    // reason, and not sent again.
    advance(&app, &admin, 15 * 60).await;
    assert_eq!(submissions(&app, &owner), 0);
    let (status, listed) = app
        .get("/api/v1/mpesa/transactions?kind=stk", &owner.auth())
        .await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed["transactions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let failed = &listed[0];
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["result_desc"]
            .as_str()
            .is_some_and(|d| d.contains("never confirmed")),
        "{failed}"
    );
    assert_eq!(pushes(&sim), 1, "never pushed again");

    // The key answers that failed payment.
    let (status, again) = push_keyed(&app, &owner, "order-78").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["transaction"]["id"], failed["id"]);
    assert_eq!(again["transaction"]["status"], "failed", "{again}");
    assert_eq!(pushes(&sim), 1, "never pushed again");
    drop(app);
    drop(temp);
}

// ---------------------------------------------------------------------------
// A reversal whose result was lost

#[tokio::test]
async fn a_reversal_whose_result_was_lost_is_settled_by_reconciliations_status_answer() {
    let sim = emulator(100).await;
    let app = TestApp::spawn_with(options(&sim).with_env("MALIPO_TEST_CLOCK", "1")).await;
    let owner = app.register("Lost Reversal").await;
    configure(&app, &owner, &sim).await;
    let (status, pushed) = app
        .post("/api/v1/mpesa/stk-push", &owner.auth(), order("INV-5"))
        .await;
    assert_eq!(status, 201, "{pushed}");
    let paid_id = pushed["transaction"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let paid = settled(&app, &owner, &paid_id).await;
    assert_eq!(paid["status"], "completed", "{paid}");

    // Daraja reverses the payment, but its result never reaches us.
    set_faults(&sim, json!({"no_callback": true}));
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/reversals",
            &owner.auth(),
            json!({"transaction_id": paid_id, "remarks": "Refund"}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let reversal_id = answer["transaction"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let started = Instant::now();
    while !sim
        .handle()
        .transactions()
        .iter()
        .any(|t| t.kind == "reversal" && t.status == "completed")
    {
        assert!(started.elapsed() < Duration::from_secs(30), "not reversed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    set_faults(&sim, json!({}));
    assert_eq!(
        transaction(&app, &owner, &reversal_id).await["status"],
        "pending"
    );

    // Reconciliation asks Daraja about it (transaction status by its
    // OriginatorConversationID); the answer settles the reversal and the
    // payment it reversed.
    let admin = app.super_admin().await;
    advance(&app, &admin, 300).await;
    let reversal = settled(&app, &owner, &reversal_id).await;
    assert!(
        sim.handle()
            .requests()
            .iter()
            .any(|r| r.path == mpesa::STATUS_PATH),
        "reconciliation asked Daraja"
    );
    assert_eq!(reversal["status"], "completed", "{reversal}");
    assert!(reversal["receipt"].as_str().is_some(), "{reversal}");
    let original = transaction(&app, &owner, &paid_id).await;
    assert_eq!(original["status"], "reversed", "{original}");
    let reversals = sim
        .handle()
        .requests()
        .iter()
        .filter(|r| r.path == "/mpesa/reversal/v1/request")
        .count();
    assert_eq!(reversals, 1, "never sent again");
}

// ---------------------------------------------------------------------------
// A reversal whose Daraja answer was lost

/// A retry with the same key answers the reversal `id` as it stands
/// (`status`), and Daraja still registered one reversal.
async fn retry_answers_the_reversal(
    sim: &daraja_sim::Running,
    app: &TestApp,
    owner: &Session,
    (paid_id, key): (&str, &str),
    (id, status): (&str, &str),
) {
    let (code, again) = reverse_keyed(app, owner, paid_id, key).await;
    assert_eq!(code, 201, "{again}");
    assert_eq!(again["transaction"]["id"], id, "{again}");
    assert_eq!(again["transaction"]["status"], status, "{again}");
    assert_eq!(registered(sim, "reversal"), 1, "never sent again");
}

/// The reversal every lost-answer test asks for: all of the payment.
fn refund(paid_id: &str) -> Value {
    json!({"transaction_id": paid_id, "remarks": "Refund"})
}

async fn reverse_keyed(app: &TestApp, owner: &Session, paid_id: &str, key: &str) -> (u16, Value) {
    app.call_with(
        Method::POST,
        "/api/v1/mpesa/reversals",
        &owner.auth(),
        Some(refund(paid_id)),
        &[("Idempotency-Key", key)],
    )
    .await
}

/// A payment the emulator completed (its callback flushed at once).
async fn completed_payment(sim: &daraja_sim::Running, app: &TestApp, owner: &Session) -> Value {
    let (status, pushed) = app
        .post("/api/v1/mpesa/stk-push", &owner.auth(), order("INV-7"))
        .await;
    assert_eq!(status, 201, "{pushed}");
    sim.handle().flush_callbacks().await;
    let paid = settled(
        app,
        owner,
        pushed["transaction"]["id"].as_str().expect("id"),
    )
    .await;
    assert_eq!(paid["status"], "completed", "{paid}");
    paid
}

/// A completed payment, then a reversal of it with `key` whose answer
/// Daraja holds while the server is SIGKILLed (see `lose_the_answer`).
/// Answers the new server, the owner's session, the data directory and
/// the payment.
async fn lose_the_reversal_answer(
    sim: &daraja_sim::Running,
    options: &Options,
    key: &'static str,
) -> (TestApp, Session, tempfile::TempDir, Value) {
    let (first, owner) = first_server(sim, options, &format!("Lost {key}")).await;
    let paid = completed_payment(sim, &first, &owner).await;
    let held = Held {
        path: "/api/v1/mpesa/reversals",
        key,
        body: refund(paid["id"].as_str().expect("id")),
        kind: "reversal",
    };
    let (app, owner, temp) =
        kill_while_daraja_holds_the_answer(sim, options, first, &owner, held).await;
    (app, owner, temp, paid)
}

/// Moves the test clock on, which runs every job (reconciliation too) once.
/// The submission intents (`mpesa_submissions`) still open in the
/// owner's tenant file.
fn submissions(app: &TestApp, owner: &Session) -> i64 {
    tenant_db(app, owner)
        .query_row("SELECT COUNT(*) FROM mpesa_submissions", [], |r| r.get(0))
        .expect("read")
}

async fn advance(app: &TestApp, admin: &crate::helpers::Auth, secs: i64) {
    let (status, body) = app
        .post("/api/v1/admin/clock", admin, json!({"advance_secs": secs}))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_reversal_killed_while_daraja_holds_its_answer_is_answered_on_retry_and_settled_by_its_result()
 {
    // The emulator posts results only when told to (after the restart).
    let sim = emulator(600_000).await;
    let options = options(&sim);
    let (app, owner, temp, paid) = lose_the_reversal_answer(&sim, &options, "refund-77").await;
    let paid_id = paid["id"].as_str().expect("id");

    // The same key again: the reversal as it stands — not a second one.
    let (status, answer) = reverse_keyed(&app, &owner, paid_id, "refund-77").await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(registered(&sim, "reversal"), 1, "never sent again");
    let txn = &answer["transaction"];
    assert_eq!(txn["kind"], "reversal", "{answer}");
    assert_eq!(txn["status"], "pending", "{answer}");
    assert_eq!(txn["original_transaction_id"], paid_id, "{answer}");
    let id = txn["id"].as_str().expect("id").to_string();

    // Without a key: that reversal is under way, so no other is sent.
    let (status, refused) = app
        .post("/api/v1/mpesa/reversals", &owner.auth(), refund(paid_id))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(crate::helpers::code(&refused), "conflict", "{refused}");
    assert_eq!(registered(&sim, "reversal"), 1, "never sent again");

    // Daraja posts the result to the ResultURL the request gave, which names
    // the reversal; it settles the reversal and the payment it reversed.
    let (path, result) = redeliver(&sim, &app, daraja_sim::CallbackKind::Result).await;
    assert!(path.ends_with(&format!("/reversal/result/{id}")), "{path}");
    let done = settled(&app, &owner, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["receipt"].as_str().is_some(), "{done}");
    assert_eq!(
        done["conversation_id"],
        result.transaction.as_str(),
        "{done}"
    );
    let original = transaction(&app, &owner, paid_id).await;
    assert_eq!(original["status"], "reversed", "{original}");

    // The key answers the completed reversal; still one reversal at Daraja.
    retry_answers_the_reversal(
        &sim,
        &app,
        &owner,
        (paid_id, "refund-77"),
        (&id, "completed"),
    )
    .await;
    drop(app);
    drop(temp);
}

#[tokio::test]
async fn a_reversal_whose_answer_and_result_were_lost_is_resolved_by_reconciliation_without_resending()
 {
    let sim = emulator(600_000).await;
    let options = options(&sim).with_env("MALIPO_TEST_CLOCK", "1");
    let (app, owner, temp, paid) = lose_the_reversal_answer(&sim, &options, "refund-78").await;
    let paid_id = paid["id"].as_str().expect("id");

    // Daraja reverses the payment and posts its result to the server that
    // is gone: neither the answer nor the result reaches us.
    sim.handle().flush_callbacks().await;
    assert!(
        sim.handle()
            .transactions()
            .iter()
            .any(|t| t.kind == "reversal" && t.status == "completed"),
        "Daraja reversed the payment"
    );
    let (status, listed) = app
        .get("/api/v1/mpesa/transactions?kind=reversal", &owner.auth())
        .await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed["transactions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        listed.len(),
        1,
        "the reversal was recorded before it was sent: {listed:?}"
    );
    let id = listed[0]["id"].as_str().expect("id").to_string();
    assert_eq!(listed[0]["status"], "pending", "{listed:?}");

    // Reconciliation asks Daraja about it — by the payment it reverses, as
    // no id of the reversal's own is known — and never sends it again; the
    // answer settles the reversal and the payment.
    let admin = app.super_admin().await;
    advance(&app, &admin, 300).await;
    let asked = sim
        .handle()
        .requests()
        .iter()
        .filter(|r| r.path == mpesa::STATUS_PATH)
        .filter_map(|r| r.body.clone())
        .collect::<Vec<_>>();
    assert!(
        asked.iter().any(|b| b["TransactionID"] == paid["receipt"]),
        "reconciliation asked about the reversed payment: {asked:?}"
    );
    sim.handle().flush_callbacks().await;
    let done = settled(&app, &owner, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let original = transaction(&app, &owner, paid_id).await;
    assert_eq!(original["status"], "reversed", "{original}");
    assert_eq!(registered(&sim, "reversal"), 1, "never sent again");

    // The key answers the completed reversal.
    retry_answers_the_reversal(
        &sim,
        &app,
        &owner,
        (paid_id, "refund-78"),
        (&id, "completed"),
    )
    .await;
    drop(app);
    drop(temp);
}

#[tokio::test]
async fn a_reversal_without_answer_or_result_fails_at_reconciliation_and_is_never_resent() {
    // Daraja holds the reversal's result beyond the test.
    let sim = emulator(600_000).await;
    let options = options(&sim).with_env("MALIPO_TEST_CLOCK", "1");
    let (app, owner, temp, paid) = lose_the_reversal_answer(&sim, &options, "refund-79").await;
    let paid_id = paid["id"].as_str().expect("id");
    let (status, pending) = reverse_keyed(&app, &owner, paid_id, "refund-79").await;
    assert_eq!(status, 201, "{pending}");
    let id = pending["transaction"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let admin = app.super_admin().await;

    // A few minutes on, its result may still come: reconciliation asks
    // Daraja, and nothing changes yet.
    advance(&app, &admin, 180).await;
    assert!(
        sim.handle()
            .requests()
            .iter()
            .any(|r| r.path == mpesa::STATUS_PATH),
        "reconciliation asked Daraja"
    );
    assert_eq!(transaction(&app, &owner, &id).await["status"], "pending");
    // Past ten minutes with neither answer nor result: failed, with the
    // reason, and not sent again; the payment is not reversed.
    advance(&app, &admin, 15 * 60).await;
    let failed = transaction(&app, &owner, &id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["result_desc"]
            .as_str()
            .is_some_and(|d| d.contains("never confirmed")),
        "{failed}"
    );
    assert_eq!(
        transaction(&app, &owner, paid_id).await["status"],
        "completed"
    );
    assert_eq!(registered(&sim, "reversal"), 1, "never sent again");

    // The key answers that failed reversal.
    retry_answers_the_reversal(&sim, &app, &owner, (paid_id, "refund-79"), (&id, "failed")).await;
    drop(app);
    drop(temp);
}
