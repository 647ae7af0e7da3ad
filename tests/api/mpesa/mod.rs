//! M-Pesa end to end: the real binary with its built-in Daraja emulator
//! (`malipo serve --daraja-sim`) and the embedded `mpesa` plugin. Payments
//! are pushed over the REST API, the emulator calls back into
//! `/callbacks/mpesa/<tenant>/<token>/stk`, the callback inbox hands the
//! callback to the plugin, and the tests read the answers, the emulator's
//! records (`/simulator/*`) and the SQLite files.
//!
//! Asynchronous results are awaited by polling with a bounded number of
//! tries; no assertion depends on wall-clock time.
//!
//! One file per feature; the helpers they share (the emulator's control
//! API, the REST calls, the SQLite reads, request bodies) live here, once,
//! and the rest of the suite uses them too.

mod b2c;
mod c2b;
mod callbacks;
mod permissions;
mod queries;
mod reconcile;
mod reports;
mod reversal;
mod stk;
mod validation;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, Session, TestApp};
pub(crate) use crate::helpers::{contains, open};

/// Daraja's public sandbox passkey (shortcode 174379).
pub(crate) const SANDBOX_PASSKEY: &str = daraja_sim::SANDBOX_PASSKEY;
/// The sandbox initiator's password, which the emulator checks.
pub(crate) const INITIATOR_PASSWORD: &str = daraja_sim::SANDBOX_INITIATOR_PASSWORD;
pub(crate) const STK_PUSH_PATH: &str = "/mpesa/stkpush/v1/processrequest";
pub(crate) const STK_QUERY_PATH: &str = "/mpesa/stkpushquery/v1/query";
/// Polls of an asynchronous result, 50 ms apart.
pub(crate) const TRIES: usize = 300;

/// Credentials that work against the emulator.
pub(crate) fn credentials() -> Value {
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

/// Credentials for a Daraja at `base_url` (environment `custom`): an
/// emulator outside the server, which `MALIPO_OUTBOUND_ALLOW` must let through.
pub(crate) fn custom_credentials(base_url: &str) -> Value {
    let mut credentials = credentials();
    credentials["environment"] = json!("custom");
    credentials["base_url"] = json!(base_url);
    credentials
}

/// A payment request body.
pub(crate) fn payment(phone: &str, amount: Value) -> Value {
    json!({
        "phone_number": phone,
        "amount": amount,
        "account_reference": "INV-001",
        "description": "Test payment"
    })
}

pub(crate) async fn spawn() -> TestApp {
    TestApp::spawn_with(Options::daraja_sim()).await
}

pub(crate) fn emulator(app: &TestApp) -> &str {
    app.emulator
        .as_deref()
        .expect("the server was started with --daraja-sim")
}

pub(crate) async fn sleep() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

// ---------------------------------------------------------------------------
// The emulator's control API

pub(crate) async fn emu_call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
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
pub(crate) async fn set_faults(app: &TestApp, faults: Value) {
    emu_call(app, Method::PUT, "/simulator/faults", Some(faults)).await;
}

/// Every Daraja request the emulator received, oldest first.
pub(crate) async fn emu_requests(app: &TestApp) -> Vec<Value> {
    app.emulator_requests()
        .await
        .as_array()
        .cloned()
        .expect("requests is a list")
}

/// The recorded requests to one Daraja path.
pub(crate) async fn emu_requests_to(app: &TestApp, path: &str) -> Vec<Value> {
    emu_requests(app)
        .await
        .into_iter()
        .filter(|r| r["path"] == path)
        .collect()
}

/// Every OAuth access token the emulator issued, oldest first.
pub(crate) async fn issued_tokens(app: &TestApp) -> Vec<String> {
    emu_requests_to(app, "/oauth/v1/generate")
        .await
        .iter()
        .filter_map(|r| r["response"]["access_token"].as_str().map(str::to_string))
        .collect()
}

/// Every callback the emulator sent (or suppressed), oldest first.
pub(crate) async fn emu_callbacks(app: &TestApp) -> Vec<Value> {
    emu_call(app, Method::GET, "/simulator/callbacks", None)
        .await
        .as_array()
        .cloned()
        .expect("callbacks is a list")
}

/// Waits until the emulator recorded `n` callbacks for a CheckoutRequestID.
pub(crate) async fn wait_for_callbacks(app: &TestApp, checkout: &str, n: usize) -> Vec<Value> {
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
pub(crate) async fn recorded_push(app: &TestApp, checkout: &str) -> Value {
    emu_requests_to(app, STK_PUSH_PATH)
        .await
        .into_iter()
        .find(|r| r["response"]["CheckoutRequestID"] == checkout)
        .unwrap_or_else(|| panic!("no recorded STK push answered with {checkout}"))
}

// ---------------------------------------------------------------------------
// The REST API

pub(crate) async fn put_credentials(app: &TestApp, session: &Session, body: Value) -> (u16, Value) {
    app.call(
        Method::PUT,
        "/api/v1/mpesa/credentials",
        &session.auth(),
        Some(body),
    )
    .await
}

pub(crate) async fn configure(app: &TestApp, session: &Session, body: Value) {
    let (status, answer) = put_credentials(app, session, body).await;
    assert_eq!(status, 200, "save credentials: {answer}");
    assert_eq!(answer["configured"], true, "{answer}");
}

/// Pushes a payment as a shop would (the emulator completes it); answers
/// its id.
pub(crate) async fn pay(app: &TestApp, owner: &Session, amount: i64) -> String {
    let body = json!({"phone_number": "254712345678", "amount": amount,
                      "account_reference": "SHOP-1", "description": "Order"});
    let txn = push(app, &owner.auth(), body).await;
    txn["id"].as_str().expect("id").to_string()
}

/// Pushes a payment; answers the pending transaction.
pub(crate) async fn push(app: &TestApp, auth: &Auth, body: Value) -> Value {
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

pub(crate) async fn get_txn(app: &TestApp, auth: &Auth, id: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/v1/mpesa/transactions/{id}"), auth)
        .await;
    assert_eq!(status, 200, "get transaction {id}: {body}");
    body["transaction"].clone()
}

/// Polls a transaction until it leaves `pending`.
pub(crate) async fn wait_final(app: &TestApp, auth: &Auth, id: &str) -> Value {
    for _ in 0..TRIES {
        let txn = get_txn(app, auth, id).await;
        if txn["status"] != "pending" {
            return txn;
        }
        sleep().await;
    }
    panic!("transaction {id} stayed pending");
}

pub(crate) async fn list(app: &TestApp, auth: &Auth) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/mpesa/transactions", auth).await;
    assert_eq!(status, 200, "list: {body}");
    body["transactions"]
        .as_array()
        .cloned()
        .expect("transactions is a list")
}

pub(crate) async fn report_totals(app: &TestApp, session: &Session) -> Value {
    let (status, body) = app.get("/api/v1/mpesa/reports", &session.auth()).await;
    assert_eq!(status, 200, "report: {body}");
    body["totals"].clone()
}

// ---------------------------------------------------------------------------
// The SQLite files
/// Payloads of the tenant's outbox events named `name`.
pub(crate) fn events(app: &TestApp, tenant: &str, name: &str) -> Vec<Value> {
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
pub(crate) fn outbox_count(app: &TestApp, tenant: &str) -> i64 {
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
pub(crate) struct InboxRow {
    id: i64,
    tenant_id: String,
    body: String,
    state: String,
    attempts: i64,
}

pub(crate) fn inbox(app: &TestApp) -> Vec<InboxRow> {
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
pub(crate) async fn wait_inbox_settled(app: &TestApp) {
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
pub(crate) fn txn_rows_mentioning(app: &TestApp, tenant: &str, needle: &str) -> i64 {
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
pub(crate) fn callback_parts(url: &str) -> (String, String) {
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
pub(crate) async fn post_callback(app: &TestApp, path: &str, body: &str) -> (u16, String) {
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
pub(crate) fn stk_success(
    merchant: &str,
    checkout: &str,
    amount: i64,
    phone: u64,
    receipt: &str,
) -> String {
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

/// Runs `malipo mpesa reconcile` on the server's data directory.
pub(crate) async fn reconcile_cli(app: &TestApp, env: &[(&str, &str)]) -> std::process::Output {
    let mut command = crate::helpers::malipo_command();
    command
        .args(["mpesa", "reconcile", "--data-dir"])
        .arg(&app.data_dir)
        .env("MALIPO_RECONCILE_AFTER_SECS", "0");
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("run malipo mpesa reconcile"))
        .await
        .expect("join")
}

// ---------------------------------------------------------------------------
// Payouts, reversals and queries

pub(crate) const B2C_PATH: &str = "/mpesa/b2c/v3/paymentrequest";
pub(crate) const REVERSAL_PATH: &str = "/mpesa/reversal/v1/request";
pub(crate) const BALANCE_PATH: &str = "/mpesa/accountbalance/v1/query";
pub(crate) const STATUS_PATH: &str = "/mpesa/transactionstatus/v1/query";

/// Adds a phone/amount outcome rule at the emulator.
pub(crate) async fn set_outcome(app: &TestApp, rule: Value) {
    emu_call(app, Method::POST, "/simulator/outcomes", Some(rule)).await;
}

pub(crate) fn payout(phone: &str, amount: i64, remarks: &str) -> Value {
    json!({"phone_number": phone, "amount": amount, "remarks": remarks})
}

/// Creates a bulk payout; answers the batch answer.
pub(crate) async fn bulk(app: &TestApp, auth: &Auth, items: Vec<Value>) -> Value {
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
pub(crate) async fn wait_batch(app: &TestApp, auth: &Auth, id: &str) -> Value {
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
pub(crate) async fn wait_request(app: &TestApp, auth: &Auth, path: &str) -> Value {
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
pub(crate) async fn wait_result_callback(app: &TestApp, conversation: &str) -> Value {
    wait_for_callbacks(app, conversation, 1)
        .await
        .into_iter()
        .next()
        .expect("one callback")
}

/// Pushes a payment and waits for it to complete; answers it.
pub(crate) async fn completed_payment(app: &TestApp, auth: &Auth, amount: i64) -> Value {
    let txn = push(app, auth, payment("0712345678", json!(amount))).await;
    let done = wait_final(app, auth, txn["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["receipt"].as_str().is_some(), "{done}");
    done
}
/// A payment an STK query settled: completed by the query, without receipt.
pub(crate) fn assert_settled_by_query(txn: &Value) {
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

/// An STK push made in one store (`X-Store-ID`); answers the payment's id.
pub(crate) async fn push_in_store(
    app: &TestApp,
    who: &Session,
    store: &str,
    amount: i64,
) -> String {
    let (status, body) = app
        .call_with(
            Method::POST,
            "/api/v1/mpesa/stk-push",
            &who.auth(),
            Some(json!({"phone_number": "254712345678", "amount": amount,
                        "account_reference": "INV-1", "description": "Order"})),
            &[("X-Store-ID", store)],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["transaction"]["id"]
        .as_str()
        .expect("transaction id")
        .to_string()
}

/// A payout an API key asked for, waiting for a person: its approval id.
pub(crate) async fn pending_payout(app: &TestApp, owner: &Session) -> String {
    let (status, made) = app
        .post(
            "/api/v1/api-keys",
            &owner.auth(),
            json!({"name": "payroll bot", "permissions": ["payouts.create", "payments.read"]}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let bot = Auth::ApiKey(made["key"].as_str().expect("key").to_string());
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/b2c/bulk",
            &bot,
            json!({"command_id": "BusinessPayment",
                   "items": [{"phone_number": "254712345678", "amount": 50, "remarks": "Salary"}]}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    answer["approval_id"]
        .as_str()
        .expect("approval id")
        .to_string()
}

/// A push whose callback the emulator holds back (10 minutes): the
/// pending payment and the CallBackURL it gave Daraja.
pub(crate) async fn held_push(
    app: &TestApp,
    auth: &Auth,
    phone: &str,
    amount: i64,
) -> (Value, String) {
    set_faults(app, json!({"delay_ms": 600_000})).await;
    let txn = push(app, auth, payment(phone, json!(amount))).await;
    set_faults(app, json!({})).await;
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    let url = recorded_push(app, checkout).await["body"]["CallBackURL"]
        .as_str()
        .expect("url")
        .to_string();
    (txn, url)
}
