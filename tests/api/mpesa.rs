//! M-Pesa end to end: the real binary with its built-in Daraja emulator
//! (`malipo serve --daraja-sim`) and the embedded `mpesa` plugin. Payments
//! are pushed over the REST API, the emulator calls back into
//! `/callbacks/mpesa/<tenant>/<token>/stk`, the callback inbox hands the
//! callback to the plugin, and the tests read the answers, the emulator's
//! records (`/simulator/*`) and the SQLite files.
//!
//! Asynchronous results are awaited by polling with a bounded number of
//! tries; no assertion depends on wall-clock time.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, Session, TestApp, code};

/// Daraja's public sandbox passkey (shortcode 174379).
const SANDBOX_PASSKEY: &str = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";
const INITIATOR_PASSWORD: &str = "Safaricom999!*!";
const STK_PUSH_PATH: &str = "/mpesa/stkpush/v1/processrequest";
const STK_QUERY_PATH: &str = "/mpesa/stkpushquery/v1/query";
/// Polls of an asynchronous result, 50 ms apart.
const TRIES: usize = 200;

/// Credentials that work against the emulator.
fn credentials() -> Value {
    json!({
        "consumer_key": "k1",
        "consumer_secret": "s1",
        "shortcode": "174379",
        "passkey": SANDBOX_PASSKEY,
        "initiator_name": "testapi",
        "initiator_password": INITIATOR_PASSWORD,
        "environment": "sandbox"
    })
}

/// A payment request body.
fn payment(phone: &str, amount: Value) -> Value {
    json!({
        "phone_number": phone,
        "amount": amount,
        "account_reference": "INV-001",
        "description": "Test payment"
    })
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options::daraja_sim()).await
}

fn emulator(app: &TestApp) -> &str {
    app.emulator
        .as_deref()
        .expect("the server was started with --daraja-sim")
}

async fn sleep() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

// ---------------------------------------------------------------------------
// The emulator's control API

async fn emu_call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}{path}", emulator(app));
    let mut request = app.client.request(method.clone(), &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("reach the emulator");
    let status = response.status().as_u16();
    let text = response.text().await.expect("emulator body");
    assert!(
        (200..300).contains(&status),
        "{method} {path} at the emulator: {status} {text}"
    );
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// Replaces the emulator's fault set (absent fields are off).
async fn set_faults(app: &TestApp, faults: Value) {
    emu_call(app, Method::PUT, "/simulator/faults", Some(faults)).await;
}

/// Every Daraja request the emulator received, oldest first.
async fn emu_requests(app: &TestApp) -> Vec<Value> {
    emu_call(app, Method::GET, "/simulator/requests", None)
        .await
        .as_array()
        .cloned()
        .expect("requests is a list")
}

/// The recorded requests to one Daraja path.
async fn emu_requests_to(app: &TestApp, path: &str) -> Vec<Value> {
    emu_requests(app)
        .await
        .into_iter()
        .filter(|r| r["path"] == path)
        .collect()
}

/// Every callback the emulator sent (or suppressed), oldest first.
async fn emu_callbacks(app: &TestApp) -> Vec<Value> {
    emu_call(app, Method::GET, "/simulator/callbacks", None)
        .await
        .as_array()
        .cloned()
        .expect("callbacks is a list")
}

/// Waits until the emulator recorded `n` callbacks for a CheckoutRequestID.
async fn wait_for_callbacks(app: &TestApp, checkout: &str, n: usize) -> Vec<Value> {
    for _ in 0..TRIES {
        let mine: Vec<Value> = emu_callbacks(app)
            .await
            .into_iter()
            .filter(|c| c["transaction"] == checkout)
            .collect();
        if mine.len() >= n {
            return mine;
        }
        sleep().await;
    }
    panic!("the emulator never recorded {n} callback(s) for {checkout}");
}

/// The STK push request the emulator recorded for a CheckoutRequestID.
async fn recorded_push(app: &TestApp, checkout: &str) -> Value {
    emu_requests_to(app, STK_PUSH_PATH)
        .await
        .into_iter()
        .find(|r| r["response"]["CheckoutRequestID"] == checkout)
        .unwrap_or_else(|| panic!("no recorded STK push answered with {checkout}"))
}

// ---------------------------------------------------------------------------
// The REST API

async fn put_credentials(app: &TestApp, session: &Session, body: Value) -> (u16, Value) {
    app.call(
        Method::PUT,
        "/api/v1/mpesa/credentials",
        &session.auth(),
        Some(body),
    )
    .await
}

async fn configure(app: &TestApp, session: &Session, body: Value) {
    let (status, answer) = put_credentials(app, session, body).await;
    assert_eq!(status, 200, "save credentials: {answer}");
    assert_eq!(answer["configured"], true, "{answer}");
}

/// Pushes a payment; answers the pending transaction.
async fn push(app: &TestApp, auth: &Auth, body: Value) -> Value {
    let (status, answer) = app.post("/api/v1/mpesa/stk-push", auth, body).await;
    assert_eq!(status, 201, "stk push: {answer}");
    let txn = answer["transaction"].clone();
    assert_eq!(txn["status"], "pending", "a new push is pending: {answer}");
    assert!(txn["id"].as_str().is_some(), "{answer}");
    assert!(
        txn["checkout_request_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{answer}"
    );
    txn
}

async fn get_txn(app: &TestApp, auth: &Auth, id: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/v1/mpesa/transactions/{id}"), auth)
        .await;
    assert_eq!(status, 200, "get transaction {id}: {body}");
    body["transaction"].clone()
}

/// Polls a transaction until it leaves `pending`.
async fn wait_final(app: &TestApp, auth: &Auth, id: &str) -> Value {
    for _ in 0..TRIES {
        let txn = get_txn(app, auth, id).await;
        if txn["status"] != "pending" {
            return txn;
        }
        sleep().await;
    }
    panic!("transaction {id} stayed pending");
}

async fn list(app: &TestApp, auth: &Auth) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/mpesa/transactions", auth).await;
    assert_eq!(status, 200, "list: {body}");
    body["transactions"]
        .as_array()
        .cloned()
        .expect("transactions is a list")
}

async fn report_totals(app: &TestApp, session: &Session) -> Value {
    let (status, body) = app.get("/api/v1/mpesa/reports", &session.auth()).await;
    assert_eq!(status, 200, "report: {body}");
    body["totals"].clone()
}

// ---------------------------------------------------------------------------
// The SQLite files

fn open(path: &Path) -> rusqlite::Connection {
    let conn =
        rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn
}

/// Payloads of the tenant's outbox events named `name`.
fn events(app: &TestApp, tenant: &str, name: &str) -> Vec<Value> {
    let conn = open(&app.tenant_file(tenant));
    let mut stmt = conn
        .prepare("SELECT payload FROM outbox WHERE name = ?1 ORDER BY id")
        .expect("prepare outbox query");
    stmt.query_map([name], |row| row.get::<_, String>(0))
        .expect("query outbox")
        .map(|p| serde_json::from_str(&p.expect("payload")).expect("payload is JSON"))
        .collect()
}

/// Events the mpesa plugin emitted (billing's subscription events aside).
fn outbox_count(app: &TestApp, tenant: &str) -> i64 {
    open(&app.tenant_file(tenant))
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE source = 'mpesa'",
            [],
            |r| r.get(0),
        )
        .expect("count outbox")
}

/// One row of control.db's `callback_inbox`.
#[derive(Debug, Clone)]
struct InboxRow {
    id: i64,
    tenant_id: String,
    body: String,
    state: String,
    attempts: i64,
}

fn inbox(app: &TestApp) -> Vec<InboxRow> {
    let conn = open(&app.data_dir.join("control.db"));
    let mut stmt = conn
        .prepare("SELECT id, tenant_id, body, state, attempts FROM callback_inbox ORDER BY id")
        .expect("prepare inbox query");
    stmt.query_map([], |row| {
        Ok(InboxRow {
            id: row.get(0)?,
            tenant_id: row.get(1)?,
            body: row.get(2)?,
            state: row.get(3)?,
            attempts: row.get(4)?,
        })
    })
    .expect("query inbox")
    .collect::<Result<Vec<_>, _>>()
    .expect("read inbox")
}

/// Waits until every stored callback was handed to its plugin and settled.
async fn wait_inbox_settled(app: &TestApp) {
    for _ in 0..TRIES {
        if inbox(app).iter().all(|row| row.state != "pending") {
            return;
        }
        sleep().await;
    }
    panic!("callbacks stayed pending in the inbox: {:?}", inbox(app));
}

/// How many rows of the tenant's `mpesa_transactions` mention `needle` in any
/// id-like column or the raw callback.
fn txn_rows_mentioning(app: &TestApp, tenant: &str, needle: &str) -> i64 {
    open(&app.tenant_file(tenant))
        .query_row(
            "SELECT COUNT(*) FROM mpesa_transactions WHERE checkout_request_id = ?1 \
             OR merchant_request_id = ?1 OR receipt = ?1 OR instr(COALESCE(raw_callback, ''), ?1) > 0",
            [needle],
            |r| r.get(0),
        )
        .expect("count transactions")
}

/// The callback URL the emulator was given for a push, split into
/// (tenant id, token).
fn callback_parts(url: &str) -> (String, String) {
    let rest = url
        .split("/callbacks/mpesa/")
        .nth(1)
        .unwrap_or_else(|| panic!("not an mpesa callback URL: {url}"));
    // `<tenant>/<token>/stk/<intent id>`: the push's own URL names its intent.
    let parts: Vec<&str> = rest.split('/').collect();
    assert_eq!(parts.len(), 4, "callback URL shape: {url}");
    assert_eq!(parts[2], "stk", "{url}");
    (parts[0].to_string(), parts[1].to_string())
}

/// Posts raw bytes to a callback path of the host.
async fn post_callback(app: &TestApp, path: &str, body: &str) -> (u16, String) {
    let response = app
        .client
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send callback");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A successful STK callback as Daraja shapes it.
fn stk_success(merchant: &str, checkout: &str, amount: i64, phone: u64, receipt: &str) -> String {
    json!({"Body": {"stkCallback": {
        "MerchantRequestID": merchant,
        "CheckoutRequestID": checkout,
        "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": amount},
            {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "TransactionDate", "Value": 20261124145453_u64},
            {"Name": "PhoneNumber", "Value": phone}
        ]}
    }}})
    .to_string()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Runs `malipo mpesa reconcile` on the server's data directory.
async fn reconcile_cli(app: &TestApp, env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_malipo"));
    command
        .args(["mpesa", "reconcile", "--data-dir"])
        .arg(&app.data_dir)
        .env(
            "MALIPO_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache"),
        )
        .env("RUST_LOG", "warn")
        .env("MALIPO_RECONCILE_AFTER_SECS", "0");
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("run malipo mpesa reconcile"))
        .await
        .expect("join")
}

// ---------------------------------------------------------------------------
// 1. Happy path

#[tokio::test]
async fn a_payment_goes_from_push_to_callback_to_report() {
    let app = spawn().await;
    let owner = app.register("Mpesa Happy").await;
    let tenant = owner.tenant_id.clone();

    // Nothing configured yet.
    let (status, before) = app.get("/api/v1/mpesa/credentials", &owner.auth()).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["configured"], false, "{before}");

    // Distinctive secrets, so that finding them anywhere means a leak.
    let consumer_secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
    let consumer_key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let mut creds = credentials();
    creds["consumer_key"] = json!(consumer_key);
    creds["consumer_secret"] = json!(consumer_secret);
    let secrets = [
        consumer_key.as_str(),
        consumer_secret.as_str(),
        SANDBOX_PASSKEY,
        INITIATOR_PASSWORD,
    ];

    let (status, saved) = put_credentials(&app, &owner, creds).await;
    assert_eq!(status, 200, "{saved}");
    let (status, shown) = app.get("/api/v1/mpesa/credentials", &owner.auth()).await;
    assert_eq!(status, 200, "{shown}");
    for answer in [&saved, &shown] {
        assert_eq!(answer["configured"], true, "{answer}");
        assert_eq!(answer["environment"], "sandbox", "{answer}");
        assert_eq!(answer["shortcode"], "174379", "{answer}");
        assert_eq!(answer["initiator_name"], "testapi", "{answer}");
        assert_eq!(answer["uses_emulator"], true, "{answer}");
        assert_eq!(
            answer["effective_base_url"],
            json!(emulator(&app)),
            "{answer}"
        );
        assert_eq!(
            answer["fields"],
            json!({"consumer_key": true, "consumer_secret": true, "passkey": true,
                   "security_credential": true, "initiator_password": true}),
            "only which secrets are set: {answer}"
        );
        let text = answer.to_string();
        for secret in secrets {
            assert!(!text.contains(secret), "the answer shows a secret: {text}");
        }
    }

    // The tenant's secrets table holds them sealed, never in plaintext.
    {
        let conn = open(&app.tenant_file(&tenant));
        let mut stmt = conn
            .prepare("SELECT name, value FROM secrets")
            .expect("prepare secrets");
        let rows: Vec<(String, Vec<u8>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query secrets")
            .collect::<Result<_, _>>()
            .expect("read secrets");
        let names: BTreeSet<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        for name in [
            "consumer_key",
            "consumer_secret",
            "passkey",
            "initiator_password",
        ] {
            assert!(names.contains(name), "secret {name} is stored: {names:?}");
        }
        for (name, value) in &rows {
            for secret in secrets {
                assert!(
                    !contains(value, secret),
                    "secret row {name} holds a plaintext secret"
                );
            }
        }
        let settings: String = conn
            .query_row(
                "SELECT environment || shortcode || initiator_name || COALESCE(base_url, '') FROM mpesa_settings",
                [],
                |r| r.get(0),
            )
            .expect("settings row");
        for secret in secrets {
            assert!(!settings.contains(secret), "mpesa_settings holds a secret");
        }
    }

    let (status, tested) = app
        .post("/api/v1/mpesa/credentials/test", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["ok"], true, "{tested}");
    assert!(
        tested["expires_in"].as_i64().is_some_and(|s| s > 0),
        "{tested}"
    );

    let pending = push(&app, &owner.auth(), payment("0712345678", json!(10))).await;
    assert_eq!(pending["amount"], 10, "{pending}");
    assert_eq!(pending["phone_number"], "254712345678", "{pending}");
    assert_eq!(pending["kind"], "stk", "{pending}");
    assert_eq!(pending["currency"], "KES", "{pending}");
    let id = pending["id"].as_str().expect("id").to_string();
    let checkout = pending["checkout_request_id"]
        .as_str()
        .expect("checkout")
        .to_string();

    // What the emulator received: one push for this payment, to the tenant's callback URL.
    let recorded = recorded_push(&app, &checkout).await;
    assert_eq!(
        recorded["body"]["BusinessShortCode"],
        json!(174379),
        "{recorded}"
    );
    assert_eq!(recorded["body"]["Amount"], json!(10), "{recorded}");
    assert_eq!(
        recorded["body"]["PhoneNumber"], "254712345678",
        "{recorded}"
    );
    let callback_url = recorded["body"]["CallBackURL"].as_str().expect("url");
    assert!(
        callback_url.starts_with(&format!("{}/callbacks/mpesa/{tenant}/", app.base)),
        "{callback_url}"
    );

    let done = wait_final(&app, &owner.auth(), &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result_code"], "0", "{done}");
    let receipt = done["receipt"].as_str().expect("a receipt").to_string();
    assert!(!receipt.is_empty(), "{done}");
    assert!(done["completed_at"].as_str().is_some(), "{done}");
    // The raw callback is kept and carries the same receipt.
    assert_eq!(
        done["callback"]["Body"]["stkCallback"]["CheckoutRequestID"],
        json!(checkout),
        "{done}"
    );
    let callbacks = wait_for_callbacks(&app, &checkout, 1).await;
    assert!(
        callbacks[0]["raw_body"]
            .as_str()
            .is_some_and(|b| b.contains(&receipt)),
        "{callbacks:?}"
    );
    assert_eq!(callbacks[0]["http_status"], 200, "{callbacks:?}");

    let listed = list(&app, &owner.auth()).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], json!(id));
    assert_eq!(listed[0]["status"], "completed");

    let totals = report_totals(&app, &owner).await;
    assert_eq!(totals["count"], 1, "{totals}");
    assert_eq!(totals["completed"], 1, "{totals}");
    assert_eq!(totals["failed"], 0, "{totals}");
    assert_eq!(totals["pending"], 0, "{totals}");
    assert_eq!(totals["amount_completed"], 10, "{totals}");

    let completed = events(&app, &tenant, "payment.completed");
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(completed[0]["transaction_id"], json!(id));
    assert_eq!(completed[0]["amount"], 10);
    assert_eq!(completed[0]["receipt"], json!(receipt));
    assert!(events(&app, &tenant, "payment.failed").is_empty());

    let conn = open(&app.tenant_file(&tenant));
    let audited: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE channel = 'callback' AND actor_type = 'callback' \
             AND operation = 'mpesa.callback.stk' AND outcome = 'success'",
            [],
            |r| r.get(0),
        )
        .expect("audit query");
    assert_eq!(audited, 1, "one audited callback");
    let pushes: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE operation = 'mpesa.stk-push' AND outcome = 'success' \
             AND actor_id = ?1 AND channel = 'rest'",
            [&owner.user_id],
            |r| r.get(0),
        )
        .expect("audit query");
    assert_eq!(pushes, 1, "one audited push");
}

// ---------------------------------------------------------------------------
// 2. Every emulator outcome

#[tokio::test]
async fn each_emulator_outcome_ends_in_its_status_with_its_result_code() {
    let app = spawn().await;
    let owner = app.register("Mpesa Outcomes").await;
    configure(&app, &owner, credentials()).await;

    // (phone, amount) → (status, result code), by the emulator's default
    // rules and the plugin's mapping (0 completed, 1032 cancelled, 1037
    // timeout, anything else failed).
    let cases = [
        ("0712345678", 1, "failed", "1"),
        ("0712345678", 1032, "cancelled", "1032"),
        ("0712345678", 1037, "timeout", "1037"),
        ("0712345678", 2001, "failed", "2001"),
        ("254708374149", 10, "timeout", "1037"),
        ("0712345678", 25, "completed", "0"),
    ];
    let mut ids = Vec::new();
    for (phone, amount, _, _) in cases {
        let txn = push(&app, &owner.auth(), payment(phone, json!(amount))).await;
        ids.push(txn["id"].as_str().expect("id").to_string());
    }
    for ((phone, amount, status, result), id) in cases.iter().zip(&ids) {
        let txn = wait_final(&app, &owner.auth(), id).await;
        assert_eq!(txn["status"], *status, "{phone} / {amount}: {txn}");
        assert_eq!(txn["result_code"], *result, "{phone} / {amount}: {txn}");
        assert!(
            txn["result_desc"].as_str().is_some_and(|d| !d.is_empty()),
            "{txn}"
        );
        if *status == "completed" {
            assert!(txn["receipt"].as_str().is_some(), "{txn}");
        } else {
            assert_eq!(
                txn["receipt"],
                Value::Null,
                "no receipt without money: {txn}"
            );
            assert_eq!(txn["completed_at"], Value::Null, "{txn}");
        }
    }

    let totals = report_totals(&app, &owner).await;
    assert_eq!(totals["count"], 6, "{totals}");
    assert_eq!(totals["completed"], 1, "{totals}");
    assert_eq!(
        totals["failed"], 5,
        "cancelled and timed out count as failed: {totals}"
    );
    assert_eq!(totals["cancelled"], 1, "{totals}");
    assert_eq!(totals["timeout"], 2, "{totals}");
    assert_eq!(totals["pending"], 0, "{totals}");
    assert_eq!(totals["amount_completed"], 25, "{totals}");
    assert_eq!(totals["success_rate"], json!(0.1667), "{totals}");

    let (status, failed) = app
        .get("/api/v1/mpesa/transactions?status=failed", &owner.auth())
        .await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["transactions"].as_array().map(Vec::len), Some(2));

    assert_eq!(events(&app, &owner.tenant_id, "payment.failed").len(), 5);
    assert_eq!(events(&app, &owner.tenant_id, "payment.completed").len(), 1);
}

// ---------------------------------------------------------------------------
// 3. Fault modes

/// Pushes while the emulator suppresses callbacks; answers the payment once
/// the emulator completed it without calling back. With `check_pending`,
/// also checks that it stays pending (not when a fast reconcile job runs).
async fn push_without_callback(app: &TestApp, owner: &Session, check_pending: bool) -> Value {
    set_faults(app, json!({"no_callback": true})).await;
    let txn = push(app, &owner.auth(), payment("0712345678", json!(10))).await;
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    let callbacks = wait_for_callbacks(app, checkout, 1).await;
    set_faults(app, json!({})).await;
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    assert_eq!(callbacks[0]["delivery"], "suppressed", "{callbacks:?}");

    // Nothing reached the host: the payment stays pending.
    assert!(
        inbox(app)
            .iter()
            .all(|row| row.tenant_id != owner.tenant_id),
        "no callback stored"
    );
    if check_pending {
        let id = txn["id"].as_str().expect("id");
        for _ in 0..5 {
            sleep().await;
        }
        let still = get_txn(app, &owner.auth(), id).await;
        assert_eq!(still["status"], "pending", "{still}");
    }
    txn
}

/// A payment an STK query settled: completed by the query, without receipt.
fn assert_settled_by_query(txn: &Value) {
    assert_eq!(txn["status"], "completed", "{txn}");
    assert_eq!(txn["result_code"], "0", "{txn}");
    assert!(
        txn["note"]
            .as_str()
            .is_some_and(|n| n.contains("STK query")),
        "{txn}"
    );
    assert_eq!(
        txn["receipt"],
        Value::Null,
        "no callback, so no receipt: {txn}"
    );
}

#[tokio::test]
async fn a_payment_without_callback_is_completed_by_the_reconcile_job() {
    let app = TestApp::spawn_with(
        Options::daraja_sim()
            .with_env("MALIPO_JOB_INTERVAL_SECS", "1")
            .with_env("MALIPO_RECONCILE_AFTER_SECS", "0"),
    )
    .await;
    let owner = app.register("Mpesa Job").await;
    configure(&app, &owner, credentials()).await;
    let txn = push_without_callback(&app, &owner, false).await;
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");

    let done = wait_final(&app, &owner.auth(), id).await;
    assert_settled_by_query(&done);
    let queries = emu_requests_to(&app, STK_QUERY_PATH).await;
    assert!(
        queries
            .iter()
            .any(|q| q["body"]["CheckoutRequestID"] == checkout),
        "the job asked the emulator: {queries:?}"
    );
    assert_eq!(events(&app, &owner.tenant_id, "payment.completed").len(), 1);
    let job_runs = || -> i64 {
        open(&app.tenant_file(&owner.tenant_id))
            .query_row(
                "SELECT COUNT(*) FROM audit_log WHERE channel = 'job' AND actor_type = 'system' \
                 AND operation = 'payments.reconcile' AND outcome = 'success'",
                [],
                |r| r.get(0),
            )
            .expect("audit query")
    };
    let runs = job_runs();
    assert!(runs >= 1, "the run that settled the payment is audited");
    // Later runs change nothing, and only a run that changed something is
    // audited (idle rounds do not bury people's actions): the job keeps
    // running (its plugin calls count in /metrics) and the audit log stays.
    let reconcile_calls = || async {
        let metrics = app
            .client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics");
        metrics
            .lines()
            .filter(|l| {
                l.contains("plugin_call_duration_seconds_count")
                    && l.contains("operation=\"payments.reconcile\"")
            })
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum::<f64>()
    };
    let calls = reconcile_calls().await;
    for _ in 0..TRIES {
        if reconcile_calls().await > calls {
            break;
        }
        sleep().await;
    }
    assert!(reconcile_calls().await > calls, "the job kept running");
    assert_eq!(job_runs(), runs, "idle runs are not audited");
    assert_eq!(get_txn(&app, &owner.auth(), id).await, done);
    assert_eq!(events(&app, &owner.tenant_id, "payment.completed").len(), 1);
}

/// The CLI runs in its own process, which has no emulator: the tenant
/// points at the running server's emulator explicitly (environment
/// `custom`), and the operator allows that host for the CLI.
#[tokio::test]
async fn a_payment_without_callback_is_completed_by_the_reconcile_cli() {
    let app = spawn().await;
    let owner = app.register("Mpesa Cli").await;
    let mut creds = credentials();
    creds["environment"] = json!("custom");
    creds["base_url"] = json!(emulator(&app));
    configure(&app, &owner, creds).await;
    let txn = push_without_callback(&app, &owner, true).await;
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");

    let host = emulator(&app).trim_start_matches("http://").to_string();
    let output = reconcile_cli(&app, &[("MALIPO_OUTBOUND_ALLOW", host.as_str())]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "reconcile failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("0 failed"), "{stdout}");

    // Settled by the CLI while the server kept running (SQLite WAL).
    let done = get_txn(&app, &owner.auth(), id).await;
    assert_settled_by_query(&done);
    let queries = emu_requests_to(&app, STK_QUERY_PATH).await;
    assert_eq!(
        queries
            .iter()
            .filter(|q| q["body"]["CheckoutRequestID"] == checkout)
            .count(),
        1,
        "{queries:?}"
    );
    assert_eq!(events(&app, &owner.tenant_id, "payment.completed").len(), 1);
    assert_eq!(
        emu_requests_to(&app, STK_PUSH_PATH).await.len(),
        1,
        "reconciling never pushes again"
    );

    // A second run finds nothing pending and changes nothing.
    let again = reconcile_cli(&app, &[("MALIPO_OUTBOUND_ALLOW", host.as_str())]).await;
    assert!(again.status.success());
    assert_eq!(emu_requests_to(&app, STK_QUERY_PATH).await.len(), 1);
    assert_eq!(events(&app, &owner.tenant_id, "payment.completed").len(), 1);
}

/// An operator running `malipo mpesa reconcile` from cron must learn when
/// Daraja could not be asked: here Daraja answers every query with its
/// quota error (the CLI reaches the running server's emulator, which it
/// learns from the data directory), so the payment stays pending.
#[tokio::test]
async fn the_reconcile_cli_does_not_report_success_when_daraja_was_not_reached() {
    let app = spawn().await;
    let owner = app.register("Mpesa Cli Unreached").await;
    let mut creds = credentials();
    creds["environment"] = json!("custom");
    creds["base_url"] = json!(emulator(&app));
    configure(&app, &owner, creds).await;
    let txn = push_without_callback(&app, &owner, true).await;
    let id = txn["id"].as_str().expect("id");

    set_faults(&app, json!({"quota_violation": true})).await;
    let output = reconcile_cli(&app, &[]).await;
    set_faults(&app, json!({})).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        get_txn(&app, &owner.auth(), id).await["status"],
        "pending",
        "nothing answered, nothing settled"
    );
    assert!(
        !output.status.success() || stdout.contains(id),
        "the CLI claimed success although no payment could be queried: exit {:?}, stdout {stdout:?}",
        output.status.code()
    );
}

#[tokio::test]
async fn a_duplicated_callback_completes_the_payment_once() {
    let app = spawn().await;
    let owner = app.register("Mpesa Duplicate").await;
    configure(&app, &owner, credentials()).await;
    set_faults(&app, json!({"duplicate_callback": true})).await;
    let txn = push(&app, &owner.auth(), payment("0712345678", json!(10))).await;
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    let callbacks = wait_for_callbacks(&app, checkout, 2).await;
    set_faults(&app, json!({})).await;
    assert_eq!(callbacks.len(), 2, "{callbacks:?}");
    assert_eq!(callbacks[0]["raw_body"], callbacks[1]["raw_body"]);
    for callback in &callbacks {
        assert_eq!(
            callback["http_status"], 200,
            "both acknowledged: {callback}"
        );
    }

    let done = wait_final(&app, &owner.auth(), id).await;
    wait_inbox_settled(&app).await;
    let rows: Vec<InboxRow> = inbox(&app)
        .into_iter()
        .filter(|r| r.tenant_id == owner.tenant_id)
        .collect();
    assert_eq!(rows.len(), 2, "both copies stored: {rows:?}");
    assert!(rows.iter().all(|r| r.state == "applied"), "{rows:?}");

    let after = get_txn(&app, &owner.auth(), id).await;
    assert_eq!(after["status"], "completed", "{after}");
    assert_eq!(after["receipt"], done["receipt"], "{after}");
    assert_eq!(after["completed_at"], done["completed_at"], "{after}");
    assert_eq!(
        events(&app, &owner.tenant_id, "payment.completed").len(),
        1,
        "exactly one completion event"
    );
    assert_eq!(outbox_count(&app, &owner.tenant_id), 1);
    let totals = report_totals(&app, &owner).await;
    assert_eq!(
        (totals["count"].clone(), totals["completed"].clone()),
        (json!(1), json!(1))
    );
}

/// Pushes with `callback_before_response`: the emulator posts the callback
/// while the push is still waiting for Daraja's answer (uncommitted), then
/// answers. Checks the callback was accepted and completes the payment.
async fn assert_early_callback_completes(app: &TestApp, owner: &Session, amount: i64) {
    set_faults(app, json!({"callback_before_response": true})).await;
    let txn = push(app, &owner.auth(), payment("0712345678", json!(amount))).await;
    set_faults(app, json!({})).await;
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    // The emulator delivered (once, as Daraja does) before it answered the push.
    let callbacks = wait_for_callbacks(app, checkout, 1).await;
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    assert_eq!(callbacks[0]["delivery"], "delivered", "{callbacks:?}");
    assert_eq!(
        callbacks[0]["http_status"], 200,
        "the host must accept a callback that beats the push answer: {}",
        callbacks[0]["response_body"]
    );

    let done = wait_final(app, &owner.auth(), id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["receipt"].as_str().is_some(), "{done}");
    wait_inbox_settled(app).await;
    let completed = events(app, &owner.tenant_id, "payment.completed");
    assert_eq!(
        completed
            .iter()
            .filter(|e| e["transaction_id"] == id)
            .count(),
        1,
        "{completed:?}"
    );
}

#[tokio::test]
async fn a_callback_before_the_push_answer_still_completes_the_payment() {
    let app = spawn().await;
    let owner = app.register("Mpesa Early").await;
    configure(&app, &owner, credentials()).await;
    // A first, ordinary payment.
    let first = push(&app, &owner.auth(), payment("0712345678", json!(5))).await;
    let first = wait_final(&app, &owner.auth(), first["id"].as_str().expect("id")).await;
    assert_eq!(first["status"], "completed", "{first}");

    assert_early_callback_completes(&app, &owner, 10).await;
}

/// The tenant's very first push: nothing about the tenant's callback URL
/// may depend on that push's transaction having committed.
#[tokio::test]
async fn a_callback_before_the_first_push_answer_still_completes_the_payment() {
    let app = spawn().await;
    let owner = app.register("Mpesa Early First").await;
    configure(&app, &owner, credentials()).await;
    assert_early_callback_completes(&app, &owner, 10).await;
}

// ---------------------------------------------------------------------------
// 4. Callback security

#[tokio::test]
async fn callbacks_need_the_tenants_own_token_and_cannot_touch_other_tenants() {
    let app = spawn().await;
    let a = app.register("Mpesa Cb A").await;
    let b = app.register("Mpesa Cb B").await;
    configure(&app, &a, credentials()).await;
    configure(&app, &b, credentials()).await;

    // A completes a payment (which tells us A's callback URL).
    let a_txn = push(&app, &a.auth(), payment("0712345678", json!(10))).await;
    let a_id = a_txn["id"].as_str().expect("id").to_string();
    let a_checkout = a_txn["checkout_request_id"].as_str().expect("checkout");
    assert_eq!(
        wait_final(&app, &a.auth(), &a_id).await["status"],
        "completed"
    );
    let a_url = recorded_push(&app, a_checkout).await["body"]["CallBackURL"]
        .as_str()
        .expect("url")
        .to_string();
    let (a_tenant, a_token) = callback_parts(&a_url);
    assert_eq!(a_tenant, a.tenant_id);

    // B's payment stays pending: its callback is held back for 10 minutes.
    set_faults(&app, json!({"delay_ms": 600_000})).await;
    let b_txn = push(&app, &b.auth(), payment("0722000111", json!(77))).await;
    set_faults(&app, json!({})).await;
    let b_id = b_txn["id"].as_str().expect("id").to_string();
    let b_checkout = b_txn["checkout_request_id"]
        .as_str()
        .expect("checkout")
        .to_string();
    let b_merchant = b_txn["merchant_request_id"]
        .as_str()
        .expect("merchant")
        .to_string();
    let b_url = recorded_push(&app, &b_checkout).await["body"]["CallBackURL"]
        .as_str()
        .expect("url")
        .to_string();
    let (b_tenant, b_token) = callback_parts(&b_url);
    assert_eq!(b_tenant, b.tenant_id);
    assert_ne!(a_token, b_token, "each tenant has its own callback token");

    wait_inbox_settled(&app).await;
    let stored = inbox(&app).len();
    let valid = stk_success(&b_merchant, &b_checkout, 77, 254_722_000_111, "FORGED0001");

    // Wrong or borrowed tokens, unknown tenants and plugins: 404, nothing stored.
    let random_tenant = uuid::Uuid::new_v4().to_string();
    for path in [
        format!("/callbacks/mpesa/{a_tenant}/cb_wrongtoken/stk"),
        format!("/callbacks/mpesa/{a_tenant}/{b_token}/stk"),
        format!("/callbacks/mpesa/{b_tenant}/{a_token}/stk"),
        format!("/callbacks/mpesa/{random_tenant}/{a_token}/stk"),
        format!("/callbacks/mpesa/not-a-tenant/{a_token}/stk"),
        format!("/callbacks/nosuchplugin/{a_tenant}/{a_token}/stk"),
    ] {
        let (status, body) = post_callback(&app, &path, &valid).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(inbox(&app).len(), stored, "{path} stored something");
    }

    // Malformed JSON with the right token: acknowledged as Daraja expects, not stored.
    for junk in ["{not json", "", "[1, 2"] {
        let (status, body) = post_callback(
            &app,
            &format!("/callbacks/mpesa/{a_tenant}/{a_token}/stk"),
            junk,
        )
        .await;
        assert_eq!(status, 200, "{junk:?}: {body}");
        let ack: Value = serde_json::from_str(&body).expect("ack is JSON");
        assert_eq!(ack["ResultCode"], 0, "{ack}");
        assert_eq!(inbox(&app).len(), stored, "malformed {junk:?} was stored");
    }

    // A forged callback for B's payment sent to A's URL (with A's token).
    let a_before = list(&app, &a.auth()).await;
    let (status, body) = post_callback(&app, &a_url.replace(&app.base, ""), &valid).await;
    assert_eq!(status, 200, "{body}");
    let forged: InboxRow = inbox(&app)
        .into_iter()
        .find(|r| r.id > 0 && r.body.contains("FORGED0001"))
        .expect("the forged callback is stored for A");
    assert_eq!(
        forged.tenant_id, a.tenant_id,
        "stored under the URL's tenant"
    );
    // Wait until A's plugin has seen it at least once.
    for _ in 0..TRIES {
        if inbox(&app)
            .iter()
            .any(|r| r.id == forged.id && r.attempts >= 1)
        {
            break;
        }
        sleep().await;
    }
    let seen = inbox(&app)
        .into_iter()
        .find(|r| r.id == forged.id)
        .expect("row");
    assert!(seen.attempts >= 1, "the worker never tried it: {seen:?}");
    assert_ne!(seen.state, "applied", "A has no such payment: {seen:?}");

    let b_now = get_txn(&app, &b.auth(), &b_id).await;
    assert_eq!(b_now["status"], "pending", "B untouched: {b_now}");
    assert_eq!(b_now["receipt"], Value::Null, "{b_now}");
    assert_eq!(list(&app, &a.auth()).await, a_before, "A untouched");
    assert_eq!(txn_rows_mentioning(&app, &a.tenant_id, "FORGED0001"), 0);
    assert_eq!(txn_rows_mentioning(&app, &b.tenant_id, "FORGED0001"), 0);
    assert_eq!(txn_rows_mentioning(&app, &a.tenant_id, &b_checkout), 0);
    assert!(events(&app, &b.tenant_id, "payment.completed").is_empty());

    // B's real callback still completes B, with the emulator's receipt.
    emu_call(&app, Method::POST, "/simulator/callbacks/flush", None).await;
    let b_done = wait_final(&app, &b.auth(), &b_id).await;
    assert_eq!(b_done["status"], "completed", "{b_done}");
    assert_ne!(b_done["receipt"], "FORGED0001", "{b_done}");
    assert!(b_done["receipt"].as_str().is_some(), "{b_done}");
}

/// Rotating the token refuses the old URL at once; a payment whose callback
/// went to the old URL is settled by an STK query instead.
#[tokio::test]
async fn a_rotated_callback_token_refuses_the_old_url() {
    let app = spawn().await;
    let owner = app.register("Mpesa Rotate").await;
    configure(&app, &owner, credentials()).await;
    set_faults(&app, json!({"delay_ms": 600_000})).await;
    let txn = push(&app, &owner.auth(), payment("0712345678", json!(40))).await;
    set_faults(&app, json!({})).await;
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    let old_url = recorded_push(&app, checkout).await["body"]["CallBackURL"]
        .as_str()
        .expect("url")
        .to_string();
    let (_, old_token) = callback_parts(&old_url);

    let (status, rotated) = app
        .post(
            "/api/v1/callback-tokens/mpesa/rotate",
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");

    // The held-back callback now reaches a dead URL.
    emu_call(&app, Method::POST, "/simulator/callbacks/flush", None).await;
    let callbacks = wait_for_callbacks(&app, checkout, 1).await;
    assert_eq!(callbacks[0]["http_status"], 404, "{callbacks:?}");
    assert!(inbox(&app).is_empty(), "nothing stored");
    assert_eq!(get_txn(&app, &owner.auth(), id).await["status"], "pending");

    // An STK query settles it.
    let (status, queried) = app
        .post(
            &format!("/api/v1/mpesa/transactions/{id}/query"),
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{queried}");
    assert_eq!(queried["query"]["applied"], true, "{queried}");
    assert_settled_by_query(&queried["transaction"]);

    // New pushes carry the new token and complete.
    let next = push(&app, &owner.auth(), payment("0712345678", json!(41))).await;
    let next_checkout = next["checkout_request_id"].as_str().expect("checkout");
    let new_url = recorded_push(&app, next_checkout).await["body"]["CallBackURL"]
        .as_str()
        .expect("url")
        .to_string();
    let (tenant, new_token) = callback_parts(&new_url);
    assert_eq!(tenant, owner.tenant_id);
    assert_ne!(new_token, old_token);
    let done = wait_final(&app, &owner.auth(), next["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["receipt"].as_str().is_some(), "{done}");
}

#[tokio::test]
async fn a_success_callback_that_does_not_match_the_request_fails_the_payment() {
    let app = spawn().await;
    let owner = app.register("Mpesa Mismatch").await;
    configure(&app, &owner, credentials()).await;
    set_faults(&app, json!({"delay_ms": 600_000})).await;
    let txn = push(&app, &owner.auth(), payment("0712345678", json!(500))).await;
    set_faults(&app, json!({})).await;
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    let merchant = txn["merchant_request_id"].as_str().expect("merchant");
    let url = recorded_push(&app, checkout).await["body"]["CallBackURL"]
        .as_str()
        .expect("url")
        .to_string();

    // Right URL and token, but the customer "paid" 1 shilling.
    let forged = stk_success(merchant, checkout, 1, 254_712_345_678, "CHEAP00001");
    let (status, _) = post_callback(&app, &url.replace(&app.base, ""), &forged).await;
    assert_eq!(status, 200);
    let done = wait_final(&app, &owner.auth(), id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(
        done["result_desc"], "callback did not match the request",
        "{done}"
    );
    assert_eq!(done["receipt"], Value::Null, "{done}");
    assert!(events(&app, &owner.tenant_id, "payment.completed").is_empty());
    let totals = report_totals(&app, &owner).await;
    assert_eq!(totals["amount_completed"], 0, "{totals}");
}

// ---------------------------------------------------------------------------
// 5. Two tenants, two sets of credentials, one emulator

#[tokio::test]
async fn two_tenants_use_their_own_credentials_and_receive_only_their_own_callbacks() {
    let app = spawn().await;
    let a = app.register("Mpesa Two A").await;
    let b = app.register("Mpesa Two B").await;
    // B's shortcode gets a passkey of its own at the emulator, so a push
    // signed with A's passkey would be refused.
    let b_passkey = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    emu_call(
        &app,
        Method::POST,
        "/simulator/shortcodes",
        Some(json!({"short_code": "600123", "passkey": b_passkey})),
    )
    .await;
    configure(&app, &a, credentials()).await;
    let mut b_creds = credentials();
    b_creds["consumer_key"] = json!("k2-tenant-b");
    b_creds["consumer_secret"] = json!("s2-tenant-b");
    b_creds["shortcode"] = json!("600123");
    b_creds["passkey"] = json!(b_passkey);
    configure(&app, &b, b_creds).await;

    let a_txn = push(&app, &a.auth(), payment("0712345678", json!(10))).await;
    let b_txn = push(&app, &b.auth(), payment("0799888777", json!(20))).await;
    let (a_id, b_id) = (
        a_txn["id"].as_str().expect("id"),
        b_txn["id"].as_str().expect("id"),
    );
    let a_done = wait_final(&app, &a.auth(), a_id).await;
    let b_done = wait_final(&app, &b.auth(), b_id).await;
    assert_eq!(a_done["status"], "completed", "{a_done}");
    assert_eq!(b_done["status"], "completed", "{b_done}");
    let a_checkout = a_done["checkout_request_id"].as_str().expect("checkout");
    let b_checkout = b_done["checkout_request_id"].as_str().expect("checkout");

    // Tokens the emulator issued, by consumer key.
    let requests = emu_requests(&app).await;
    let issued_to = |key: &str, secret: &str| -> BTreeSet<String> {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"))
        );
        requests
            .iter()
            .filter(|r| r["path"] == "/oauth/v1/generate" && r["headers"]["authorization"] == basic)
            .filter_map(|r| r["response"]["access_token"].as_str().map(str::to_string))
            .collect()
    };
    let a_tokens = issued_to("k1", "s1");
    let b_tokens = issued_to("k2-tenant-b", "s2-tenant-b");
    assert!(!a_tokens.is_empty() && !b_tokens.is_empty(), "{requests:?}");

    for (checkout, shortcode, passkey, tokens, tenant) in [
        (
            a_checkout,
            174_379,
            SANDBOX_PASSKEY,
            &a_tokens,
            &a.tenant_id,
        ),
        (
            b_checkout,
            600_123,
            b_passkey.as_str(),
            &b_tokens,
            &b.tenant_id,
        ),
    ] {
        let pushed = recorded_push(&app, checkout).await;
        assert_eq!(pushed["status"], 200, "{pushed}");
        assert_eq!(
            pushed["body"]["BusinessShortCode"],
            json!(shortcode),
            "{pushed}"
        );
        assert_eq!(
            pushed["body"]["PartyB"],
            json!(shortcode.to_string()),
            "{pushed}"
        );
        let timestamp = pushed["body"]["Timestamp"].as_str().expect("timestamp");
        let password = base64::engine::general_purpose::STANDARD
            .decode(pushed["body"]["Password"].as_str().expect("password"))
            .expect("base64 password");
        assert_eq!(
            String::from_utf8(password).expect("utf-8"),
            format!("{shortcode}{passkey}{timestamp}"),
            "signed with the tenant's own passkey"
        );
        let bearer = pushed["headers"]["authorization"]
            .as_str()
            .and_then(|h| h.strip_prefix("Bearer "))
            .expect("bearer token");
        assert!(
            tokens.contains(bearer),
            "a token issued to the tenant's own consumer key"
        );
        let url = pushed["body"]["CallBackURL"].as_str().expect("url");
        assert_eq!(
            &callback_parts(url).0,
            tenant,
            "the tenant's own callback URL"
        );
    }
    assert!(a_tokens.is_disjoint(&b_tokens));

    // Each callback landed only in its own tenant's file.
    assert_eq!(txn_rows_mentioning(&app, &a.tenant_id, a_checkout), 1);
    assert_eq!(txn_rows_mentioning(&app, &a.tenant_id, b_checkout), 0);
    assert_eq!(txn_rows_mentioning(&app, &b.tenant_id, b_checkout), 1);
    assert_eq!(txn_rows_mentioning(&app, &b.tenant_id, a_checkout), 0);
    for (receipt, other) in [
        (&a_done["receipt"], &b.tenant_id),
        (&b_done["receipt"], &a.tenant_id),
    ] {
        let receipt = receipt.as_str().expect("receipt");
        assert_eq!(txn_rows_mentioning(&app, other, receipt), 0);
    }
    // And each sees only its own.
    let a_list = list(&app, &a.auth()).await;
    let b_list = list(&app, &b.auth()).await;
    assert_eq!(a_list.len(), 1);
    assert_eq!(b_list.len(), 1);
    assert_eq!(a_list[0]["id"], json!(a_id));
    assert_eq!(b_list[0]["id"], json!(b_id));
    let (status, _) = app
        .get(&format!("/api/v1/mpesa/transactions/{b_id}"), &a.auth())
        .await;
    assert_eq!(status, 404, "A cannot read B's payment");
    assert_eq!(report_totals(&app, &a).await["amount_completed"], 10);
    assert_eq!(report_totals(&app, &b).await["amount_completed"], 20);
}

// ---------------------------------------------------------------------------
// 6. Idempotency-Key

#[tokio::test]
async fn an_idempotency_key_pushes_once_and_refuses_another_request() {
    let app = spawn().await;
    let owner = app.register("Mpesa Idempotent").await;
    configure(&app, &owner, credentials()).await;
    let body = payment("0712345678", json!(10));
    let keyed = |body: Value, key: &'static str| {
        let app = &app;
        let owner = &owner;
        async move {
            app.call_with(
                Method::POST,
                "/api/v1/mpesa/stk-push",
                &owner.auth(),
                Some(body),
                &[("Idempotency-Key", key)],
            )
            .await
        }
    };

    let (status, first) = keyed(body.clone(), "order-1").await;
    assert_eq!(status, 201, "{first}");
    let id = first["transaction"]["id"].clone();
    let (status, again) = keyed(body.clone(), "order-1").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["transaction"]["id"], id, "the same transaction");
    assert_eq!(
        emu_requests_to(&app, STK_PUSH_PATH).await.len(),
        1,
        "Daraja asked once"
    );

    // The amount given as a string of digits is the same request.
    let mut same = body.clone();
    same["amount"] = json!("10");
    let (status, replay) = keyed(same, "order-1").await;
    assert_eq!(status, 201, "{replay}");
    assert_eq!(replay["transaction"]["id"], id);

    let mut other = body.clone();
    other["amount"] = json!(11);
    let (status, conflict) = keyed(other, "order-1").await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(code(&conflict), "conflict", "{conflict}");
    assert_eq!(emu_requests_to(&app, STK_PUSH_PATH).await.len(), 1);

    // Concurrent retries with a new key still push once.
    let (r1, r2, r3) = tokio::join!(
        keyed(body.clone(), "order-2"),
        keyed(body.clone(), "order-2"),
        keyed(body.clone(), "order-2")
    );
    for (status, answer) in [&r1, &r2, &r3] {
        assert_eq!(*status, 201, "{answer}");
        assert_eq!(
            answer["transaction"]["id"], r1.1["transaction"]["id"],
            "{answer}"
        );
    }
    assert_ne!(r1.1["transaction"]["id"], id);
    assert_eq!(emu_requests_to(&app, STK_PUSH_PATH).await.len(), 2);

    // Without a key, each call is a new payment.
    push(&app, &owner.auth(), body.clone()).await;
    push(&app, &owner.auth(), body).await;
    assert_eq!(emu_requests_to(&app, STK_PUSH_PATH).await.len(), 4);
    assert_eq!(list(&app, &owner.auth()).await.len(), 4);
}

// ---------------------------------------------------------------------------
// 7. Bad input

async fn assert_refused(
    app: &TestApp,
    session: &Session,
    path: &str,
    method: Method,
    body: Value,
    status: u16,
    field: &str,
) {
    let (got, answer) = app
        .call(method, path, &session.auth(), Some(body.clone()))
        .await;
    assert_eq!(got, status, "{body} → {answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(field),
        "the error names `{field}`: {body} → {answer}"
    );
    if status == 422 {
        assert_eq!(code(&answer), "validation_failed", "{answer}");
    }
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_stores_nothing() {
    let app = spawn().await;
    let owner = app.register("Mpesa Bad Input").await;
    let tenant = owner.tenant_id.clone();

    // Before credentials: a valid push is a conflict naming the fix.
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            payment("0712345678", json!(10)),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(code(&answer), "conflict", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("credentials")),
        "{answer}"
    );
    let (status, answer) = app
        .post("/api/v1/mpesa/credentials/test", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 409, "{answer}");

    // Bad credentials.
    let creds_path = "/api/v1/mpesa/credentials";
    let mut custom = credentials();
    custom["environment"] = json!("custom");
    assert_refused(
        &app,
        &owner,
        creds_path,
        Method::PUT,
        custom,
        422,
        "base_url",
    )
    .await;
    let mut with_url = credentials();
    with_url["base_url"] = json!("http://127.0.0.1:1");
    assert_refused(
        &app,
        &owner,
        creds_path,
        Method::PUT,
        with_url,
        422,
        "base_url",
    )
    .await;
    let mut bad_url = credentials();
    bad_url["environment"] = json!("custom");
    bad_url["base_url"] = json!("ftp://example.com");
    assert_refused(
        &app,
        &owner,
        creds_path,
        Method::PUT,
        bad_url,
        422,
        "base_url",
    )
    .await;
    let mut bad_env = credentials();
    bad_env["environment"] = json!("staging");
    assert_refused(
        &app,
        &owner,
        creds_path,
        Method::PUT,
        bad_env,
        422,
        "environment",
    )
    .await;
    for shortcode in [
        json!("12ab5"),
        json!("1234"),
        json!("12345678"),
        json!(true),
    ] {
        let mut bad = credentials();
        bad["shortcode"] = shortcode;
        assert_refused(&app, &owner, creds_path, Method::PUT, bad, 422, "shortcode").await;
    }
    for field in [
        "consumer_key",
        "consumer_secret",
        "shortcode",
        "passkey",
        "initiator_name",
        "initiator_password",
        "environment",
    ] {
        let mut missing = credentials();
        missing.as_object_mut().expect("object").remove(field);
        assert_refused(&app, &owner, creds_path, Method::PUT, missing, 422, field).await;
        let mut blank = credentials();
        blank[field] = json!("  ");
        let (status, answer) = put_credentials(&app, &owner, blank).await;
        assert_eq!(status, 422, "blank {field}: {answer}");
    }
    let (status, shown) = app.get(creds_path, &owner.auth()).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["configured"], false, "nothing saved: {shown}");
    {
        let conn = open(&app.tenant_file(&tenant));
        let secrets: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM secrets WHERE name NOT LIKE '\\_\\_%' ESCAPE '\\'",
                [],
                |r| r.get(0),
            )
            .expect("count secrets");
        assert_eq!(secrets, 0, "no secret stored by a refused save");
        let settings: i64 = conn
            .query_row("SELECT COUNT(*) FROM mpesa_settings", [], |r| r.get(0))
            .expect("count settings");
        assert_eq!(settings, 0);
    }

    configure(&app, &owner, credentials()).await;
    let push_path = "/api/v1/mpesa/stk-push";
    for phone in [
        json!("12345"),
        json!("0812345678"),
        json!("+15555550123"),
        json!("+0712345678"),
        json!("255712345678"),
        json!("07123456789"),
        json!(""),
        json!("   "),
        json!("07l2345678"),
        json!(12345),
        json!(["0712345678"]),
    ] {
        let mut body = payment("0712345678", json!(10));
        body["phone_number"] = phone;
        assert_refused(
            &app,
            &owner,
            push_path,
            Method::POST,
            body,
            422,
            "phone_number",
        )
        .await;
    }
    for amount in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!(250_001),
        json!("ten"),
        json!("1.5"),
        json!(""),
        json!("-5"),
        json!(true),
        json!(1e20),
    ] {
        let body = payment("0712345678", amount);
        assert_refused(&app, &owner, push_path, Method::POST, body, 422, "amount").await;
    }
    for (field, value) in [
        ("account_reference", "ABCDEFGHIJKLM"),
        ("account_reference", ""),
        ("account_reference", "  "),
        ("description", "ABCDEFGHIJKLMN"),
        ("description", ""),
    ] {
        let mut body = payment("0712345678", json!(10));
        body[field] = json!(value);
        assert_refused(&app, &owner, push_path, Method::POST, body, 422, field).await;
    }
    // (Left out, `account_reference` and `description` take the
    // organization's defaults: tests/api/settings.rs.)
    for field in ["phone_number", "amount"] {
        let mut body = payment("0712345678", json!(10));
        body.as_object_mut().expect("object").remove(field);
        assert_refused(&app, &owner, push_path, Method::POST, body, 422, field).await;
    }
    let mut unknown_store = payment("0712345678", json!(10));
    unknown_store["store_id"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, answer) = app.post(push_path, &owner.auth(), unknown_store).await;
    assert_eq!(status, 404, "{answer}");
    let mut long_key = payment("0712345678", json!(10));
    long_key["idempotency_key"] = json!("x".repeat(300));
    assert_refused(
        &app,
        &owner,
        push_path,
        Method::POST,
        long_key,
        422,
        "idempotency_key",
    )
    .await;

    // Not JSON at all.
    let response = app
        .client
        .post(format!("{}{push_path}", app.base))
        .bearer_auth(&owner.access_token)
        .header("content-type", "application/json")
        .body("{\"phone_number\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 400);

    // Nothing reached Daraja, nothing was stored.
    assert!(emu_requests_to(&app, STK_PUSH_PATH).await.is_empty());
    assert!(list(&app, &owner.auth()).await.is_empty());
    assert_eq!(outbox_count(&app, &tenant), 0);
    let totals = report_totals(&app, &owner).await;
    assert_eq!(totals["count"], 0, "{totals}");
}

// ---------------------------------------------------------------------------
// 8. Permissions

#[tokio::test]
async fn members_may_push_but_not_manage_credentials_and_read_only_keys_may_not_push() {
    let app = spawn().await;
    let owner = app.register("Mpesa Rbac").await;
    configure(&app, &owner, credentials()).await;
    let (_, before) = app.get("/api/v1/mpesa/credentials", &owner.auth()).await;
    let member = app.add_member(&owner, "Member", None).await;

    let txn = push(&app, &member.auth(), payment("0712345678", json!(10))).await;
    assert_eq!(txn["created_by"], json!(member.user_id), "{txn}");
    let done = wait_final(&app, &member.auth(), txn["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "completed", "{done}");

    let mut other = credentials();
    other["consumer_key"] = json!("member-key");
    let (status, answer) = put_credentials(&app, &member, other.clone()).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(code(&answer), "forbidden");
    let (status, answer) = app.get("/api/v1/mpesa/credentials", &member.auth()).await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = app
        .post("/api/v1/mpesa/credentials/test", &member.auth(), json!({}))
        .await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = app.get("/api/v1/mpesa/reports", &member.auth()).await;
    assert_eq!(status, 403, "members do not hold reports.read: {answer}");

    let (status, key) = app
        .post(
            "/api/v1/api-keys",
            &owner.auth(),
            json!({"name": "reader", "permissions": ["payments.read"]}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let key = Auth::ApiKey(key["key"].as_str().expect("secret").to_string());
    let listed = list(&app, &key).await;
    assert_eq!(listed.len(), 1, "the key reads payments");
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &key,
            payment("0712345678", json!(10)),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(code(&answer), "forbidden", "{answer}");
    let (status, answer) = app
        .call(Method::PUT, "/api/v1/mpesa/credentials", &key, Some(other))
        .await;
    assert_eq!(status, 403, "{answer}");

    assert_eq!(
        emu_requests_to(&app, STK_PUSH_PATH).await.len(),
        1,
        "only the member's push"
    );
    assert_eq!(list(&app, &owner.auth()).await.len(), 1);
    let (_, after) = app.get("/api/v1/mpesa/credentials", &owner.auth()).await;
    assert_eq!(after, before, "the credentials did not change");
}

// ---------------------------------------------------------------------------
// 9. Crash safety

#[tokio::test]
async fn payments_survive_a_crash_and_are_never_pushed_twice() {
    // Callbacks held back far beyond the test: all pushes stay pending.
    let first = TestApp::spawn_with(Options::daraja_sim_delay(600_000)).await;
    let owner = first.register("Mpesa Crash").await;
    configure(&first, &owner, credentials()).await;
    let mut pushed = Vec::new();
    for amount in [10, 11, 12, 13, 14] {
        let txn = push(&first, &owner.auth(), payment("0712345678", json!(amount))).await;
        pushed.push((
            txn["id"].as_str().expect("id").to_string(),
            txn["checkout_request_id"]
                .as_str()
                .expect("checkout")
                .to_string(),
        ));
    }
    assert_eq!(emu_requests_to(&first, STK_PUSH_PATH).await.len(), 5);

    // SIGKILL, then a new server (with a new, empty emulator) on the same data.
    let temp = first.stop().expect("the data directory");
    let options = Options::daraja_sim()
        .with_env("MALIPO_JOB_INTERVAL_SECS", "1")
        .with_env("MALIPO_RECONCILE_AFTER_SECS", "0");
    let app = TestApp::start(temp.path(), &options).await;
    let (status, login) = app.login(&owner.email, crate::helpers::PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    let owner = Session {
        default_store: owner.default_store.clone(),
        ..Session::from_auth_response(&login, &owner.email)
    };

    // Every payment survived, once.
    let listed = list(&app, &owner.auth()).await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    let ids: BTreeSet<&str> = listed.iter().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids.len(), 5);
    for (id, _) in &pushed {
        assert!(ids.contains(id.as_str()), "{id} survived");
    }

    // The reconcile job asks the new emulator about each one; it knows none
    // of them ("The transaction does not Exist", 500.001.1001), which the
    // plugin reads as "no final answer yet": they stay pending (until they
    // are 24 hours old) rather than being guessed at.
    for _ in 0..TRIES {
        let asked: BTreeSet<String> = emu_requests_to(&app, STK_QUERY_PATH)
            .await
            .iter()
            .filter_map(|q| q["body"]["CheckoutRequestID"].as_str().map(str::to_string))
            .collect();
        if pushed.iter().all(|(_, checkout)| asked.contains(checkout)) {
            break;
        }
        sleep().await;
    }
    let queries = emu_requests_to(&app, STK_QUERY_PATH).await;
    for (_, checkout) in &pushed {
        let answer = queries
            .iter()
            .find(|q| q["body"]["CheckoutRequestID"] == checkout.as_str())
            .unwrap_or_else(|| panic!("{checkout} was never queried: {queries:?}"));
        assert_eq!(answer["status"], 500, "{answer}");
    }
    for (id, _) in &pushed {
        let txn = get_txn(&app, &owner.auth(), id).await;
        assert_eq!(txn["status"], "pending", "{txn}");
    }
    assert!(
        emu_requests_to(&app, STK_PUSH_PATH).await.is_empty(),
        "nothing was pushed again"
    );
    let conn = open(&app.tenant_file(&owner.tenant_id));
    let (rows, distinct): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT checkout_request_id) FROM mpesa_transactions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!((rows, distinct), (5, 5), "one row per push");
    assert_eq!(outbox_count(&app, &owner.tenant_id), 0, "no payment event");
    let totals = report_totals(&app, &owner).await;
    assert_eq!(
        (totals["count"].clone(), totals["pending"].clone()),
        (json!(5), json!(5))
    );

    // A manual query answers the same and changes nothing.
    let (status, queried) = app
        .post(
            &format!("/api/v1/mpesa/transactions/{}/query", pushed[0].0),
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{queried}");
    assert_eq!(queried["query"]["answered"], false, "{queried}");
    assert_eq!(queried["query"]["applied"], false, "{queried}");
    assert_eq!(queried["transaction"]["status"], "pending", "{queried}");
    drop(app);
    drop(temp);
}

// ---------------------------------------------------------------------------
// 10. B2C bulk payouts, reversals, balance, transaction status, C2B

const B2C_PATH: &str = "/mpesa/b2c/v3/paymentrequest";
const REVERSAL_PATH: &str = "/mpesa/reversal/v1/request";
const BALANCE_PATH: &str = "/mpesa/accountbalance/v1/query";
const STATUS_PATH: &str = "/mpesa/transactionstatus/v1/query";

/// Adds a phone/amount outcome rule at the emulator.
async fn set_outcome(app: &TestApp, rule: Value) {
    emu_call(app, Method::POST, "/simulator/outcomes", Some(rule)).await;
}

fn payout(phone: &str, amount: i64, remarks: &str) -> Value {
    json!({"phone_number": phone, "amount": amount, "remarks": remarks})
}

/// Creates a bulk payout; answers the batch answer.
async fn bulk(app: &TestApp, auth: &Auth, items: Vec<Value>) -> Value {
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/b2c/bulk",
            auth,
            json!({"items": items, "command_id": "BusinessPayment"}),
        )
        .await;
    assert_eq!(status, 201, "bulk: {answer}");
    assert!(answer["batch"]["id"].as_str().is_some(), "{answer}");
    answer
}

/// Polls a batch until none of its items is pending.
async fn wait_batch(app: &TestApp, auth: &Auth, id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..TRIES {
        let (status, body) = app
            .get(&format!("/api/v1/mpesa/b2c/batches/{id}"), auth)
            .await;
        assert_eq!(status, 200, "get batch {id}: {body}");
        let items = body["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() && items.iter().all(|i| i["status"] != "pending") {
            return body;
        }
        last = body;
        sleep().await;
    }
    panic!("batch {id} kept pending items: {last}");
}

/// Polls `GET {path}` until its request leaves `pending`.
async fn wait_request(app: &TestApp, auth: &Auth, path: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..TRIES {
        let (status, body) = app.get(path, auth).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        if body["request"]["status"] != "pending" {
            return body["request"].clone();
        }
        last = body;
        sleep().await;
    }
    panic!("{path} stayed pending: {last}");
}

/// Waits until the emulator recorded a result callback for a ConversationID.
async fn wait_result_callback(app: &TestApp, conversation: &str) -> Value {
    wait_for_callbacks(app, conversation, 1)
        .await
        .into_iter()
        .next()
        .expect("one callback")
}

/// Pushes a payment and waits for it to complete; answers it.
async fn completed_payment(app: &TestApp, auth: &Auth, amount: i64) -> Value {
    let txn = push(app, auth, payment("0712345678", json!(amount))).await;
    let done = wait_final(app, auth, txn["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["receipt"].as_str().is_some(), "{done}");
    done
}

#[tokio::test]
async fn a_bulk_payout_pays_the_good_items_and_fails_the_refused_one() {
    let app = spawn().await;
    let owner = app.register("Mpesa Bulk").await;
    let tenant = owner.tenant_id.clone();
    configure(&app, &owner, credentials()).await;

    // An item below the minimum refuses the whole batch; nothing is paid.
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/b2c/bulk",
            &owner.auth(),
            json!({"items": [payout("0712345678", 100, "Salary"), payout("0712345679", 5, "Too small")],
                   "command_id": "BusinessPayment"}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(code(&answer), "validation_failed", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("items[1]") && message.contains("amount"),
        "the error names the item and field: {answer}"
    );
    assert!(emu_requests_to(&app, B2C_PATH).await.is_empty());

    // The emulator refuses one amount (result code 1: insufficient funds).
    set_outcome(&app, json!({"amount": 77, "result_code": 1, "times": 1})).await;
    let answer = bulk(
        &app,
        &owner.auth(),
        vec![
            payout("0712345678", 100, "Salary one"),
            payout("0712345679", 77, "Salary two"),
            payout("0712345680", 250, "Salary three"),
        ],
    )
    .await;
    let batch_id = answer["batch"]["id"]
        .as_str()
        .expect("batch id")
        .to_string();
    assert_eq!(answer["batch"]["item_count"], 3, "{answer}");
    assert_eq!(answer["batch"]["total_amount"], 427, "{answer}");
    let items = answer["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{answer}");
    for item in items {
        assert_eq!(item["status"], "pending", "{answer}");
        assert_eq!(item["kind"], "b2c", "{answer}");
        assert_eq!(item["batch_id"], json!(batch_id), "{answer}");
    }

    let done = wait_batch(&app, &owner.auth(), &batch_id).await;
    let items = done["items"].as_array().expect("items").clone();
    let statuses: Vec<&str> = items
        .iter()
        .map(|i| i["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["completed", "failed", "completed"], "{done}");
    assert_eq!(items[1]["result_code"], "1", "{done}");
    assert!(
        items[0]["receipt"].as_str().is_some_and(|r| !r.is_empty()),
        "{done}"
    );
    assert_eq!(
        done["batch"]["by_status"],
        json!({"completed": 2, "failed": 1}),
        "{done}"
    );
    assert_eq!(done["batch"]["completed_amount"], 350, "{done}");

    // The emulator got three v3 requests whose credential it accepted.
    let sent = emu_requests_to(&app, B2C_PATH).await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    for request in &sent {
        assert_eq!(request["status"], 200, "{request}");
        assert_eq!(request["response"]["ResponseCode"], "0", "{request}");
        assert_eq!(request["body"]["InitiatorName"], "testapi", "{request}");
        assert_eq!(request["body"]["CommandID"], "BusinessPayment", "{request}");
        assert!(
            request["body"]["SecurityCredential"]
                .as_str()
                .is_some_and(|c| c.len() > 100),
            "{request}"
        );
        let text = request["raw_body"].as_str().unwrap_or_default();
        assert!(
            !text.contains(INITIATOR_PASSWORD),
            "the password is sent encrypted only"
        );
    }
    for (item, expected) in items.iter().zip([0, 1, 0]) {
        let conversation = item["conversation_id"].as_str().expect("conversation id");
        let callback = wait_result_callback(&app, conversation).await;
        assert_eq!(
            callback["body"]["Result"]["ResultCode"], expected,
            "{callback}"
        );
    }

    // Events and report.
    wait_inbox_settled(&app).await;
    let completed = events(&app, &tenant, "payout.completed");
    assert_eq!(completed.len(), 2, "{completed:?}");
    for event in &completed {
        assert_eq!(event["batch_id"], json!(batch_id), "{event}");
        assert_eq!(event["kind"], "b2c", "{event}");
    }
    let failed = events(&app, &tenant, "payout.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["transaction_id"], items[1]["id"], "{failed:?}");
    let (status, report) = app
        .get("/api/v1/mpesa/reports?group_by=kind", &owner.auth())
        .await;
    assert_eq!(status, 200, "{report}");
    let b2c = report["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["key"] == "b2c"))
        .unwrap_or_else(|| panic!("no b2c group: {report}"));
    assert_eq!(b2c["count"], 3, "{report}");
    assert_eq!(b2c["completed"], 2, "{report}");
    assert_eq!(b2c["failed"], 1, "{report}");
}

#[tokio::test]
async fn a_wrong_initiator_password_fails_the_payout_with_2001() {
    let app = spawn().await;
    let owner = app.register("Mpesa Bad Initiator").await;
    let mut creds = credentials();
    creds["initiator_password"] = json!("Not the password!");
    configure(&app, &owner, creds).await;

    let answer = bulk(
        &app,
        &owner.auth(),
        vec![payout("0712345678", 100, "Salary")],
    )
    .await;
    let batch_id = answer["batch"]["id"].as_str().expect("batch id");
    let done = wait_batch(&app, &owner.auth(), batch_id).await;
    let item = &done["items"][0];
    assert_eq!(item["status"], "failed", "{done}");
    assert_eq!(item["result_code"], "2001", "{done}");
    assert!(item["receipt"].is_null(), "{done}");
    wait_inbox_settled(&app).await;
    assert_eq!(events(&app, &owner.tenant_id, "payout.completed").len(), 0);
    assert_eq!(events(&app, &owner.tenant_id, "payout.failed").len(), 1);
}

#[tokio::test]
async fn a_completed_payment_can_be_reversed_once_and_only_within_its_amount() {
    let app = spawn().await;
    let owner = app.register("Mpesa Reversal").await;
    let tenant = owner.tenant_id.clone();
    configure(&app, &owner, credentials()).await;
    let paid = completed_payment(&app, &owner.auth(), 100).await;
    let paid_id = paid["id"].as_str().expect("id").to_string();

    // More than was paid: refused, nothing sent.
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/reversals",
            &owner.auth(),
            json!({"transaction_id": paid_id, "amount": 150, "remarks": "Refund"}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("amount")),
        "{answer}"
    );
    assert!(emu_requests_to(&app, REVERSAL_PATH).await.is_empty());

    // A partial reversal by receipt.
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/reversals",
            &owner.auth(),
            json!({"receipt": paid["receipt"], "amount": 60, "remarks": "Refund"}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let reversal = answer["transaction"].clone();
    assert_eq!(reversal["kind"], "reversal", "{answer}");
    assert_eq!(reversal["status"], "pending", "{answer}");
    assert_eq!(reversal["amount"], 60, "{answer}");
    assert_eq!(
        reversal["original_transaction_id"],
        json!(paid_id),
        "{answer}"
    );
    let sent = emu_requests_to(&app, REVERSAL_PATH).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["body"]["TransactionID"], paid["receipt"],
        "{sent:?}"
    );
    assert_eq!(sent[0]["response"]["ResponseCode"], "0", "{sent:?}");

    let done = wait_final(&app, &owner.auth(), reversal["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result_code"], "0", "{done}");
    let original = get_txn(&app, &owner.auth(), &paid_id).await;
    assert_eq!(original["status"], "reversed", "{original}");
    wait_inbox_settled(&app).await;
    let reversed = events(&app, &tenant, "reversal.completed");
    assert_eq!(reversed.len(), 1, "{reversed:?}");
    assert_eq!(
        reversed[0]["original_transaction_id"],
        json!(paid_id),
        "{reversed:?}"
    );
    assert_eq!(reversed[0]["transaction_id"], done["id"], "{reversed:?}");

    // Again: a conflict.
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/reversals",
            &owner.auth(),
            json!({"transaction_id": paid_id, "remarks": "Refund again"}),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(code(&answer), "conflict", "{answer}");

    // A failed payment and a pending one: conflicts.
    set_outcome(&app, json!({"amount": 13, "result_code": 1, "times": 1})).await;
    let failed = push(&app, &owner.auth(), payment("0712345678", json!(13))).await;
    let failed = wait_final(&app, &owner.auth(), failed["id"].as_str().expect("id")).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    set_outcome(
        &app,
        json!({"amount": 14, "action": "no_callback", "times": 1}),
    )
    .await;
    let pending = push(&app, &owner.auth(), payment("0712345678", json!(14))).await;
    for txn in [&failed, &pending] {
        let (status, answer) = app
            .post(
                "/api/v1/mpesa/reversals",
                &owner.auth(),
                json!({"transaction_id": txn["id"], "remarks": "Refund"}),
            )
            .await;
        assert_eq!(status, 409, "{txn} → {answer}");
        assert_eq!(code(&answer), "conflict", "{answer}");
    }
    assert_eq!(
        get_txn(&app, &owner.auth(), pending["id"].as_str().expect("id")).await["status"],
        "pending"
    );
    assert_eq!(
        emu_requests_to(&app, REVERSAL_PATH).await.len(),
        1,
        "only one reversal reached Daraja"
    );
}

#[tokio::test]
async fn balance_and_transaction_status_results_are_stored_and_readable() {
    let app = spawn().await;
    let owner = app.register("Mpesa Queries").await;
    configure(&app, &owner, credentials()).await;

    let (status, answer) = app
        .post("/api/v1/mpesa/balance", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["request"]["status"], "pending", "{answer}");
    let id = answer["request"]["id"].as_str().expect("id").to_string();
    assert_eq!(emu_requests_to(&app, BALANCE_PATH).await.len(), 1);
    let balance = wait_request(&app, &owner.auth(), &format!("/api/v1/mpesa/balance/{id}")).await;
    assert_eq!(balance["status"], "completed", "{balance}");
    assert_eq!(balance["result_code"], "0", "{balance}");
    let accounts = balance["result"]["accounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!accounts.is_empty(), "{balance}");
    let working = accounts
        .iter()
        .find(|a| a["name"] == "Working Account")
        .unwrap_or_else(|| panic!("no working account: {balance}"));
    assert_eq!(working["currency"], "KES", "{balance}");
    assert!(
        working["available"]
            .as_str()
            .is_some_and(|a| a.parse::<f64>().is_ok()),
        "{balance}"
    );
    let (status, missing) = app
        .get(
            &format!("/api/v1/mpesa/balance/{}", uuid::Uuid::new_v4()),
            &owner.auth(),
        )
        .await;
    assert_eq!(status, 404, "{missing}");

    let paid = completed_payment(&app, &owner.auth(), 120).await;
    let receipt = paid["receipt"].as_str().expect("receipt").to_string();
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/transaction-status",
            &owner.auth(),
            json!({"receipt": receipt}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["request"]["receipt"], json!(receipt), "{answer}");
    assert_eq!(answer["request"]["transaction_id"], paid["id"], "{answer}");
    let id = answer["request"]["id"].as_str().expect("id").to_string();
    let sent = emu_requests_to(&app, STATUS_PATH).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["body"]["TransactionID"], json!(receipt), "{sent:?}");
    let result = wait_request(
        &app,
        &owner.auth(),
        &format!("/api/v1/mpesa/transaction-status/{id}"),
    )
    .await;
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["result_code"], "0", "{result}");
    assert!(
        result["result"]["parameters"]
            .as_object()
            .is_some_and(|p| !p.is_empty()),
        "{result}"
    );
    assert!(result["result"].to_string().contains(&receipt), "{result}");
}

#[tokio::test]
async fn c2b_urls_do_not_say_mpesa_and_a_customer_payment_is_recorded() {
    let app = spawn().await;
    let owner = app.register("Mpesa C2B").await;
    configure(&app, &owner, credentials()).await;
    let (status, answer) = app
        .post("/api/v1/mpesa/c2b/register", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["registered"], true, "{answer}");
    assert_eq!(answer["shortcode"], "174379", "{answer}");
    let sent = emu_requests_to(&app, "/mpesa/c2b/v2/registerurl").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let url = sent[0]["body"]["ConfirmationURL"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Safaricom refuses C2B URLs containing "mpesa": the host gives an opaque one.
    assert!(!url.to_lowercase().contains("mpesa"), "{url}");
    assert!(
        url.contains(&format!("/hooks/{}/", owner.tenant_id)),
        "{url}"
    );

    // A customer pays the paybill: the emulator posts the confirmation to the
    // registered URL, and the payment is recorded as a completed C2B transaction.
    let emulator = app.emulator.clone().expect("emulator");
    let oauth: Value = app
        .client
        .get(format!(
            "{emulator}/oauth/v1/generate?grant_type=client_credentials"
        ))
        .basic_auth("c2b-app", Some("c2b-secret"))
        .send()
        .await
        .expect("oauth")
        .json()
        .await
        .expect("json");
    let token = oauth["access_token"].as_str().expect("token").to_string();
    let simulated = app
        .client
        .post(format!("{emulator}/mpesa/c2b/v2/simulate"))
        .bearer_auth(&token)
        .json(
            &json!({"ShortCode": 174379, "CommandID": "CustomerPayBillOnline", "Amount": 250,
            "Msisdn": 254708374149u64, "BillRefNumber": "INV-77"}),
        )
        .send()
        .await
        .expect("simulate");
    assert_eq!(simulated.status().as_u16(), 200);
    let mut found = Value::Null;
    for _ in 0..200 {
        let (_, list) = app
            .get("/api/v1/mpesa/transactions?kind=c2b", &owner.auth())
            .await;
        if let Some(first) = list["transactions"].as_array().and_then(|t| t.first()) {
            found = first.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(found["status"], "completed", "{found}");
    assert_eq!(found["amount"], 250, "{found}");
    assert_eq!(found["account_reference"], "INV-77", "{found}");
    // A member may not register URLs.
    let member = app.add_member(&owner, "Member", None).await;
    let (status, answer) = app
        .post("/api/v1/mpesa/c2b/register", &member.auth(), json!({}))
        .await;
    assert_eq!(status, 403, "{answer}");
}

#[tokio::test]
async fn members_may_not_pay_out_or_reverse_but_admins_may() {
    let app = spawn().await;
    let owner = app.register("Mpesa Payout Rbac").await;
    configure(&app, &owner, credentials()).await;
    let member = app.add_member(&owner, "Member", None).await;
    let admin = app.add_member(&owner, "Admin", None).await;
    let paid = completed_payment(&app, &owner.auth(), 100).await;

    let items =
        json!({"items": [payout("0712345678", 100, "Salary")], "command_id": "SalaryPayment"});
    let (status, answer) = app
        .post("/api/v1/mpesa/b2c/bulk", &member.auth(), items.clone())
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(code(&answer), "forbidden", "{answer}");
    let reverse = json!({"transaction_id": paid["id"], "remarks": "Refund"});
    let (status, answer) = app
        .post("/api/v1/mpesa/reversals", &member.auth(), reverse.clone())
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(code(&answer), "forbidden", "{answer}");
    assert!(emu_requests_to(&app, B2C_PATH).await.is_empty());
    assert!(emu_requests_to(&app, REVERSAL_PATH).await.is_empty());

    let (status, answer) = app
        .post("/api/v1/mpesa/b2c/bulk", &admin.auth(), items)
        .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = app
        .post("/api/v1/mpesa/reversals", &admin.auth(), reverse)
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(emu_requests_to(&app, B2C_PATH).await.len(), 1);
    assert_eq!(emu_requests_to(&app, REVERSAL_PATH).await.len(), 1);
}

#[tokio::test]
async fn the_daraja_access_token_is_cached_sealed_and_reused() {
    let app = spawn().await;
    let owner = app.register("Mpesa Token Cache").await;
    configure(&app, &owner, credentials()).await;
    completed_payment(&app, &owner.auth(), 10).await;
    completed_payment(&app, &owner.auth(), 11).await;
    let issued: Vec<String> = emu_requests_to(&app, "/oauth/v1/generate")
        .await
        .iter()
        .filter_map(|r| r["response"]["access_token"].as_str().map(str::to_string))
        .collect();
    // `configure` tests the credentials (one token); both pushes reuse the cache.
    assert_eq!(issued.len(), 1, "{issued:?}");
    let file = app.tenant_file(&owner.tenant_id);
    let mut bytes = std::fs::read(&file).expect("tenant file");
    if let Ok(wal) = std::fs::read(format!("{}-wal", file.display())) {
        bytes.extend(wal);
    }
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(
        !haystack.contains(issued[0].as_str()),
        "the access token is stored in clear"
    );
    let conn = open(&file);
    let sealed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM secrets WHERE name = 'oauth_token'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(sealed, 1);
}

/// Reports over a closed range are aggregated a calendar month at a time;
/// the answer is the same as the one over an open range (one chunk).
#[tokio::test]
async fn a_report_by_months_equals_one_over_the_whole_range() {
    let app = spawn().await;
    let owner = app.register("Mpesa Monthly Report").await;
    let before = report_totals(&app, &owner).await;
    assert_eq!(before["count"], 0, "{before}");

    // (created_at, kind, status, store, amount)
    let rows = [
        ("2025-11-30T23:59:59.999Z", "stk", "completed", None, 100),
        ("2025-12-01T00:00:00.000Z", "stk", "failed", Some("s1"), 200),
        (
            "2025-12-15T10:00:00.000Z",
            "b2c",
            "completed",
            Some("s2"),
            300,
        ),
        (
            "2025-12-15T11:00:00.000Z",
            "b2c",
            "timeout",
            Some("s1"),
            400,
        ),
        (
            "2026-01-31T23:59:59.000Z",
            "c2b",
            "completed",
            Some("s1"),
            500,
        ),
        ("2026-02-01T00:00:00.000Z", "stk", "pending", None, 600),
        (
            "2026-03-03T08:00:00.000Z",
            "reversal",
            "completed",
            Some("s2"),
            700,
        ),
    ];
    let conn = open(&app.tenant_file(&owner.tenant_id));
    for (index, (at, kind, status, store, amount)) in rows.iter().enumerate() {
        let ms = epoch_ms(at);
        conn.execute(
            "INSERT INTO mpesa_transactions (id, kind, status, store_id, amount, created_at, created_ms, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6)",
            rusqlite::params![format!("t{index}"), kind, status, store, amount, at, ms],
        )
        .expect("insert transaction");
    }
    drop(conn);

    for group_by in ["day", "store", "kind"] {
        let months = report_at(
            &app,
            &owner,
            &format!("group_by={group_by}&from=2025-11-01&to=2026-03-31"),
        )
        .await;
        let whole = report_at(
            &app,
            &owner,
            &format!("group_by={group_by}&from=2025-11-01"),
        )
        .await;
        assert_eq!(
            months["totals"], whole["totals"],
            "{group_by}: {months} vs {whole}"
        );
        assert_eq!(
            months["groups"], whole["groups"],
            "{group_by}: {months} vs {whole}"
        );
        assert_eq!(months["totals"]["count"], 7, "{months}");
        assert_eq!(months["totals"]["amount_completed"], 1600, "{months}");
        assert_eq!(months["totals"]["failed"], 2, "{months}");
        let keys: Vec<Value> = months["groups"]
            .as_array()
            .map(|groups| groups.iter().map(|g| g["key"].clone()).collect())
            .unwrap_or_default();
        let expected = match group_by {
            "day" => json!([
                "2025-11-30",
                "2025-12-01",
                "2025-12-15",
                "2026-01-31",
                "2026-02-01",
                "2026-03-03"
            ]),
            "store" => json!([null, "s1", "s2"]),
            _ => json!(["b2c", "c2b", "reversal", "stk"]),
        };
        assert_eq!(Value::from(keys), expected, "{months}");
    }

    // A range inside the data: December 2025 and January 2026 only.
    let inner = report_at(&app, &owner, "group_by=store&from=2025-12-01&to=2026-01-31").await;
    assert_eq!(inner["totals"]["count"], 4, "{inner}");
    assert_eq!(inner["totals"]["amount_completed"], 800, "{inner}");
    let s1 = inner["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["key"] == "s1"))
        .unwrap_or_else(|| panic!("no s1 group: {inner}"));
    assert_eq!(
        (s1["count"].clone(), s1["failed"].clone()),
        (json!(3), json!(2)),
        "{inner}"
    );
}

async fn report_at(app: &TestApp, session: &Session, query: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/v1/mpesa/reports?{query}"), &session.auth())
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn epoch_ms(at: &str) -> i64 {
    let num = |range: std::ops::Range<usize>| -> i64 {
        at.get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad timestamp {at}"))
    };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    // Howard Hinnant's days-from-civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + num(11..13)) * 60 + num(14..16)) * 60_000 + num(17..19) * 1000 + num(20..23)
}
