//! MCP end to end: the real binary (`malipo serve --daraja-sim`, and
//! `malipo mcp` over stdio) driven by the official MCP Python SDK through
//! `tests/mcp/driver.py`, in the legacy (2025-11-25 handshake) and the
//! 2026-07-28 (stateless) protocol modes. The driver reports what the SDK
//! saw; the assertions are here, next to the REST answers for the same
//! tenant. Asynchronous results are awaited by polling a bounded number of
//! times; nothing depends on wall-clock time.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::helpers::{Auth, Options, Session, TestApp, code};

const LEGACY: &str = "legacy";
pub(crate) const MODERN: &str = "2026-07-28";
const TOOLS: &[&str] = &[
    "mpesa_stk_push",
    "mpesa_check_status",
    "mpesa_check_balance",
    "mpesa_bulk_payment",
    "mpesa_reverse_transaction",
    "mpesa_transaction_history",
    "mpesa_generate_report",
];

/// Runs one driver scenario; answers its report.
async fn drive(scenario: Value) -> Value {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/mcp/driver.py");
    let output = tokio::task::spawn_blocking(move || {
        let mut child = crate::helpers::python_command()
            .arg(driver)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the MCP driver (python with the `mcp` package; run scripts/test)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(scenario.to_string().as_bytes())
            .expect("write scenario");
        child.wait_with_output().expect("driver output")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the MCP driver failed: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("driver report {stdout:?}: {e}"))
}

fn over_http(app: &TestApp, key: &str, mode: &str, steps: Value) -> Value {
    json!({"transport": "http", "url": format!("{}/mcp", app.base), "key": key, "mode": mode, "steps": steps})
}

fn list_tools() -> Value {
    json!({"op": "list_tools"})
}

pub(crate) fn call(tool: &str, args: Value) -> Value {
    json!({"op": "call", "tool": tool, "args": args})
}

/// Two reads of the transaction history, one after the other.
fn two_history_calls() -> Value {
    let history = call("mpesa_transaction_history", json!({}));
    json!([history.clone(), history])
}

/// The outcome of the only step of a one-step scenario.
pub(crate) async fn one(app: &TestApp, key: &str, mode: &str, step: Value) -> Value {
    let report = drive(over_http(app, key, mode, json!([step]))).await;
    report["steps"][0].clone()
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options::daraja_sim()).await
}

/// Makes an API key; answers its secret.
async fn api_key(app: &TestApp, owner: &Session, body: Value) -> String {
    let (status, answer) = app.post("/api/v1/api-keys", &owner.auth(), body).await;
    assert_eq!(status, 201, "create key: {answer}");
    answer["key"].as_str().expect("key secret").to_string()
}

fn all_payments_permissions() -> Value {
    json!([
        "mcp.use",
        "payments.read",
        "payments.create",
        "payments.reverse",
        "payouts.create",
        "reports.read",
        "mpesa.balance.read"
    ])
}

pub(crate) async fn full_key(app: &TestApp, owner: &Session) -> String {
    api_key(
        app,
        owner,
        json!({"name": "assistant", "permissions": all_payments_permissions()}),
    )
    .await
}

/// A payer the emulator completes (its sandbox test number always times out).
fn stk_args(amount: i64, key: &str) -> Value {
    json!({
        "phone_number": "254712345678",
        "amount": amount,
        "account_reference": "INV-7",
        "description": "Order 7",
        "idempotency_key": key
    })
}

/// Polls a transaction over REST until it leaves `pending`.
async fn wait_final(app: &TestApp, owner: &Session, id: &str) -> Value {
    crate::mpesa::wait_final(app, &owner.auth(), id).await
}

fn tenant_rows(app: &TestApp, tenant: &str, sql: &str) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open_with_flags(
        app.tenant_file(tenant),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open tenant file");
    let mut stmt = conn.prepare(sql).expect("prepare");
    let columns = stmt.column_count();
    stmt.query_map([], |row| {
        (0..columns)
            .map(|i| {
                row.get::<_, Option<String>>(i)
                    .map(|v| v.unwrap_or_default())
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .expect("query")
    .collect::<Result<Vec<_>, _>>()
    .expect("rows")
}

fn tool<'a>(tools: &'a [Value], name: &str) -> &'a Value {
    tools
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tool {name}"))
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn tools_are_listed_with_schemas_and_true_annotations_in_both_protocol_modes() {
    let app = spawn().await;
    let owner = app.register("Tools Ltd").await;
    let key = full_key(&app, &owner).await;
    for (mode, version) in [(LEGACY, "2025-11-25"), (MODERN, "2026-07-28")] {
        let report = drive(over_http(&app, &key, mode, json!([list_tools()]))).await;
        assert_eq!(report["protocol_version"], version, "{report}");
        let tools = report["steps"][0]["tools"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("tools in {report}"));
        for name in TOOLS {
            let tool = tool(&tools, name);
            assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
            assert_eq!(tool["outputSchema"]["type"], "object", "{tool}");
            assert!(
                tool["description"].as_str().is_some_and(|d| d.len() > 40),
                "{tool}"
            );
            for hint in [
                "readOnlyHint",
                "destructiveHint",
                "idempotentHint",
                "openWorldHint",
            ] {
                assert!(tool["annotations"][hint].is_boolean(), "{name} {hint}");
            }
        }
        // Tools from the rbac plugin are served too (one code path).
        assert!(
            tools
                .iter()
                .any(|t| t["name"].as_str().is_some_and(|n| n.starts_with("rbac_")))
        );
        let report = tool(&tools, "mpesa_generate_report");
        assert_eq!(report["annotations"]["readOnlyHint"], true);
        assert_eq!(report["annotations"]["openWorldHint"], false);
        let push = tool(&tools, "mpesa_stk_push");
        assert_eq!(push["annotations"]["readOnlyHint"], false);
        assert_eq!(push["annotations"]["openWorldHint"], true);
        assert_eq!(push["annotations"]["idempotentHint"], false);
        let required: Vec<&str> = push["inputSchema"]["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(required.contains(&"phone_number") && required.contains(&"amount"));
        assert!(push["inputSchema"]["properties"]["idempotency_key"].is_object());
        let payout = tool(&tools, "mpesa_bulk_payment");
        assert_eq!(payout["annotations"]["destructiveHint"], true);
        assert!(payout["inputSchema"]["properties"]["dry_run"].is_object());
        assert!(
            payout["description"]
                .as_str()
                .is_some_and(|d| d.contains("approv")),
            "{payout}"
        );
    }
}

#[tokio::test]
async fn a_push_over_mcp_completes_and_history_and_report_agree_with_rest() {
    let app = spawn().await;
    let owner = app.register("Duka Ltd").await;
    app.configure_mpesa(&owner).await;
    let key = full_key(&app, &owner).await;

    let pushed = one(
        &app,
        &key,
        MODERN,
        call("mpesa_stk_push", stk_args(150, "mcp-push-1")),
    )
    .await;
    assert_eq!(pushed["is_error"], false, "{pushed}");
    let id = pushed["structured"]["transaction"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("transaction id in {pushed}"))
        .to_string();
    assert_eq!(pushed["structured"]["transaction"]["status"], "pending");
    // The emulator's callback lands and completes it.
    let settled = wait_final(&app, &owner, &id).await;
    assert_eq!(settled["status"], "completed", "{settled}");

    let report = drive(over_http(
        &app,
        &key,
        LEGACY,
        json!([
            call("mpesa_check_status", json!({"id": id})),
            call("mpesa_transaction_history", json!({})),
            {"op": "call", "tool": "mpesa_generate_report", "args": {}, "progress": true},
            call("mpesa_stk_push", stk_args(150, "mcp-push-1")),
        ]),
    ))
    .await;
    let status = &report["steps"][0];
    assert_eq!(status["is_error"], false, "{status}");
    assert_eq!(status["structured"]["transaction"]["status"], "completed");
    assert!(
        status["structured"]["transaction"]["receipt"].is_string(),
        "{status}"
    );

    let (_, rest_history) = app.get("/api/v1/mpesa/transactions", &owner.auth()).await;
    assert_eq!(
        report["steps"][1]["structured"]["transactions"], rest_history["transactions"],
        "MCP and REST histories differ"
    );
    let (_, rest_report) = app.get("/api/v1/mpesa/reports", &owner.auth()).await;
    let mcp_report = &report["steps"][2];
    assert_eq!(mcp_report["structured"]["totals"], rest_report["totals"]);
    assert_eq!(mcp_report["structured"]["totals"]["completed"], 1);
    assert!(
        !mcp_report["progress"].as_array().is_none_or(Vec::is_empty),
        "a report sends progress notifications: {mcp_report}"
    );
    // The same idempotency key answers the same payment; nothing is pushed twice.
    assert_eq!(
        report["steps"][3]["structured"]["transaction"]["id"],
        id.as_str()
    );
    assert_eq!(
        rest_history["transactions"].as_array().map(Vec::len),
        Some(1)
    );

    // Audited like REST, on the mcp channel.
    let rows = tenant_rows(
        &app,
        &owner.tenant_id,
        "SELECT operation, outcome, target FROM audit_log WHERE channel = 'mcp'",
    );
    assert!(
        rows.iter().any(|r| r[0] == "mpesa.stk-push"
            && r[1] == "success"
            && r[2] == "tool:mpesa_stk_push"),
        "{rows:?}"
    );
    // The client's credential never leaves Malipo.
    let recorded = app.emulator_requests().await.to_string();
    assert!(!recorded.is_empty());
    assert!(
        !recorded.contains(&key),
        "the API key was forwarded to Daraja"
    );
}

#[tokio::test]
async fn permissions_caps_allow_lists_and_identity_arguments_are_enforced() {
    let app = spawn().await;
    let owner = app.register("Guard Ltd").await;
    let other = app.register("Other Ltd").await;
    app.configure_mpesa(&owner).await;

    // A key without payments.create gets an error result, not a payment.
    let reader = api_key(
        &app,
        &owner,
        json!({"name": "reader", "permissions": ["mcp.use", "payments.read"]}),
    )
    .await;
    let refused = one(
        &app,
        &reader,
        MODERN,
        call("mpesa_stk_push", stk_args(50, "r-1")),
    )
    .await;
    assert_eq!(refused["is_error"], true, "{refused}");
    assert!(
        refused["text"]
            .as_str()
            .is_some_and(|t| t.contains("payments.create")),
        "{refused}"
    );

    // A capped key: over the per-call cap is refused with a clear message.
    let capped = api_key(
        &app,
        &owner,
        json!({"name": "capped", "permissions": all_payments_permissions(),
               "max_amount_per_call": 500, "max_amount_per_day": 700}),
    )
    .await;
    let over = one(
        &app,
        &capped,
        LEGACY,
        call("mpesa_stk_push", stk_args(900, "c-1")),
    )
    .await;
    assert_eq!(over["is_error"], true, "{over}");
    assert!(
        over["text"]
            .as_str()
            .is_some_and(|t| t.contains("limit_exceeded") && t.contains("500")),
        "{over}"
    );
    let within = one(
        &app,
        &capped,
        LEGACY,
        call("mpesa_stk_push", stk_args(400, "c-2")),
    )
    .await;
    assert_eq!(within["is_error"], false, "{within}");
    // 400 + 400 is over the 700 daily cap.
    let daily = one(
        &app,
        &capped,
        LEGACY,
        call("mpesa_stk_push", stk_args(400, "c-3")),
    )
    .await;
    assert_eq!(daily["is_error"], true, "{daily}");
    assert!(
        daily["text"].as_str().is_some_and(|t| t.contains("700")),
        "{daily}"
    );

    // An allow-listed key sees and may call only its tools.
    let narrow = api_key(
        &app,
        &owner,
        json!({"name": "narrow", "permissions": all_payments_permissions(),
               "allowed_tools": ["mpesa_check_status"]}),
    )
    .await;
    let report = drive(over_http(
        &app,
        &narrow,
        MODERN,
        json!([list_tools(), call("mpesa_transaction_history", json!({}))]),
    ))
    .await;
    let names: Vec<&str> = report["steps"][0]["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["mpesa_check_status"]);
    assert_eq!(report["steps"][1]["is_error"], true, "{report}");

    // Naming another tenant in the arguments is refused and audited.
    let key = full_key(&app, &owner).await;
    let foreign = one(
        &app,
        &key,
        MODERN,
        call(
            "mpesa_transaction_history",
            json!({"tenant_id": other.tenant_id}),
        ),
    )
    .await;
    assert_eq!(foreign["is_error"], true, "{foreign}");
    let rows = tenant_rows(
        &app,
        &owner.tenant_id,
        "SELECT operation FROM audit_log WHERE outcome = 'failure:foreign_identity' AND channel = 'mcp'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let file = std::fs::read(app.tenant_file(&owner.tenant_id)).expect("tenant file");
    assert!(
        !file
            .windows(other.tenant_id.len())
            .any(|w| w == other.tenant_id.as_bytes()),
        "the other tenant's id entered this tenant's file"
    );
    // Naming one's own tenant is harmless.
    let own = one(
        &app,
        &key,
        MODERN,
        call(
            "mpesa_transaction_history",
            json!({"tenant_id": owner.tenant_id}),
        ),
    )
    .await;
    assert_eq!(own["is_error"], false, "{own}");
}

#[tokio::test]
async fn a_payout_from_mcp_waits_for_a_person_and_runs_once() {
    let app = spawn().await;
    let owner = app.register("Payout Ltd").await;
    app.configure_mpesa(&owner).await;
    let key = api_key(
        &app,
        &owner,
        json!({"name": "payer", "permissions": all_payments_permissions(), "max_amount_per_day": 10000}),
    )
    .await;
    let items = json!([
        {"phone_number": "254708374149", "amount": 100, "remarks": "Refund one"},
        {"phone_number": "254708374150", "amount": 250, "remarks": "Refund two"}
    ]);
    let report = drive(over_http(
        &app,
        &key,
        MODERN,
        json!([
            call(
                "mpesa_bulk_payment",
                json!({"items": items, "command_id": "BusinessPayment", "dry_run": true})
            ),
            call(
                "mpesa_bulk_payment",
                json!({"items": items, "command_id": "BusinessPayment",
                                              "idempotency_key": "payout-1"})
            ),
        ]),
    ))
    .await;
    let dry = &report["steps"][0];
    assert_eq!(dry["is_error"], false, "{dry}");
    assert_eq!(dry["structured"]["status"], "dry_run");
    assert_eq!(dry["structured"]["amount"], 350);
    let intent = &report["steps"][1];
    assert_eq!(intent["is_error"], false, "{intent}");
    assert_eq!(
        intent["structured"]["status"], "pending_approval",
        "`confirm` is not consent: {intent}"
    );
    let approval = intent["structured"]["approval_id"]
        .as_str()
        .expect("approval id")
        .to_string();
    // Nothing reached Daraja yet, and the dry run recorded nothing.
    async fn b2c(app: &TestApp) -> usize {
        crate::mpesa::emu_requests(app)
            .await
            .iter()
            .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("b2c")))
            .count()
    }
    assert_eq!(b2c(&app).await, 0);
    let (status, pending) = app
        .get("/api/v1/approvals?status=pending", &owner.auth())
        .await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(
        pending["approvals"].as_array().map(Vec::len),
        Some(1),
        "{pending}"
    );

    // An API key (even one a model holds) cannot approve.
    let approver_key = api_key(
        &app,
        &owner,
        json!({"name": "approver", "permissions": ["approvals.approve", "payouts.create"]}),
    )
    .await;
    let (status, body) = app
        .post(
            &format!("/api/v1/approvals/{approval}/approve"),
            &Auth::ApiKey(approver_key),
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // A Member cannot approve.
    let member = app.add_member(&owner, "Member", None).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/approvals/{approval}/approve"),
            &member.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(b2c(&app).await, 0);

    // The owner approves: it runs once.
    let (status, approved) = app
        .post(
            &format!("/api/v1/approvals/{approval}/approve"),
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["approval"]["status"], "executed", "{approved}");
    assert_eq!(b2c(&app).await, 2);
    let (status, again) = app
        .post(
            &format!("/api/v1/approvals/{approval}/approve"),
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(code(&again), "conflict");
    assert_eq!(b2c(&app).await, 2, "a second approval ran the payout again");
    let rows = tenant_rows(
        &app,
        &owner.tenant_id,
        "SELECT channel, operation FROM audit_log WHERE operation IN ('approvals.request', 'mpesa.b2c.bulk') AND outcome = 'success' ORDER BY id",
    );
    assert_eq!(
        rows,
        vec![
            vec!["mcp".to_string(), "approvals.request".to_string()],
            vec!["rest".to_string(), "mpesa.b2c.bulk".to_string()]
        ]
    );
}

#[tokio::test]
async fn two_tenants_keys_see_only_their_own_data() {
    let app = spawn().await;
    let a = app.register("Alpha Ltd").await;
    let b = app.register("Beta Ltd").await;
    let mut ids = Vec::new();
    for (owner, amount) in [(&a, 11), (&b, 22)] {
        app.configure_mpesa(owner).await;
        let key = full_key(&app, owner).await;
        let pushed = one(
            &app,
            &key,
            MODERN,
            call("mpesa_stk_push", stk_args(amount, "t-1")),
        )
        .await;
        assert_eq!(pushed["is_error"], false, "{pushed}");
        ids.push((
            key,
            pushed["structured"]["transaction"]["id"]
                .as_str()
                .expect("id")
                .to_string(),
        ));
    }
    for (i, (key, own_id)) in ids.iter().enumerate() {
        let (_, foreign_id) = &ids[1 - i];
        let report = drive(over_http(
            &app,
            key,
            LEGACY,
            json!([
                call("mpesa_transaction_history", json!({})),
                call("mpesa_check_status", json!({"id": foreign_id})),
            ]),
        ))
        .await;
        let listed: Vec<&str> = report["steps"][0]["structured"]["transactions"]
            .as_array()
            .map(|t| t.iter().filter_map(|t| t["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(listed, vec![own_id.as_str()], "{report}");
        assert_eq!(report["steps"][1]["is_error"], true, "{report}");
        assert!(
            report["steps"][1]["text"]
                .as_str()
                .is_some_and(|t| t.contains("not_found"))
        );
    }
}

#[tokio::test]
async fn the_endpoint_is_an_oauth_resource_server() {
    let app = TestApp::spawn().await;
    let owner = app.register("Auth Ltd").await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let post = |auth: Option<String>, origin: Option<&'static str>| {
        let mut request = app
            .client
            .post(format!("{}/mcp", app.base))
            .header("Accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send()
    };
    let none = post(None, None).await.expect("post");
    assert_eq!(none.status(), 401);
    let challenge = none.headers()["www-authenticate"]
        .to_str()
        .expect("header")
        .to_string();
    assert!(
        challenge.starts_with("Bearer resource_metadata=\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("/.well-known/oauth-protected-resource/mcp"),
        "{challenge}"
    );
    let body: Value = none.json().await.expect("json");
    assert_eq!(code(&body), "unauthorized");

    let forged = post(Some("Bearer not-a-token".into()), None)
        .await
        .expect("post");
    assert_eq!(forged.status(), 401);
    assert!(
        forged.headers()["www-authenticate"]
            .to_str()
            .expect("h")
            .contains("error=\"invalid_token\"")
    );

    // A key without mcp.use: 403 insufficient_scope.
    let rest_only = api_key(
        &app,
        &owner,
        json!({"name": "rest", "permissions": ["stores.read"]}),
    )
    .await;
    let scoped = post(Some(format!("Bearer {rest_only}")), None)
        .await
        .expect("post");
    assert_eq!(scoped.status(), 403);
    let challenge = scoped.headers()["www-authenticate"]
        .to_str()
        .expect("h")
        .to_string();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp.use\""),
        "{challenge}"
    );

    // A good credential from a foreign browser origin is refused.
    let good = format!("Bearer {}", owner.access_token);
    let foreign = post(Some(good.clone()), Some("https://evil.example"))
        .await
        .expect("post");
    assert_eq!(foreign.status(), 403);
    let ok = post(Some(good), None).await.expect("post");
    assert_eq!(ok.status(), 200);

    // Protocol errors are JSON-RPC errors: a 2026-07-28 request whose
    // Mcp-Name header disagrees with its body, and an unknown tool.
    let modern_call = |name: &'static str, header_name: &'static str| {
        app.client
            .post(format!("{}/mcp", app.base))
            .bearer_auth(&owner.access_token)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", header_name)
            .json(
                &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
                "name": name, "arguments": {},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}}}}),
            )
            .send()
    };
    for (name, header_name) in [
        ("mpesa_transaction_history", "mpesa_generate_report"),
        ("no_such_tool", "no_such_tool"),
    ] {
        let answer = modern_call(name, header_name).await.expect("post");
        assert!(answer.status().as_u16() < 500, "{}", answer.status());
        let body: Value = answer.json().await.expect("a JSON-RPC answer");
        assert!(body["error"]["code"].is_i64(), "{body}");
        assert!(body.get("result").is_none(), "{body}");
    }
    let answer = modern_call("mpesa_transaction_history", "mpesa_transaction_history")
        .await
        .expect("post");
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert!(
        body["result"]["structuredContent"]["transactions"].is_array(),
        "{body}"
    );

    let (status, metadata) = app
        .get("/.well-known/oauth-protected-resource/mcp", &Auth::None)
        .await;
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["resource"], format!("{}/mcp", app.base));
    assert!(
        metadata["scopes_supported"]
            .as_array()
            .is_some_and(|s| s.contains(&json!("mcp.use")))
    );
}

#[tokio::test]
async fn modes_choose_the_surfaces() {
    let rest = TestApp::spawn_with(Options::default().with_env("MALIPO_MODE", "rest")).await;
    let (status, _) = rest.post("/mcp", &Auth::None, json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = rest.get("/health", &Auth::None).await;
    assert_eq!(status, 200);
    let (status, _) = rest.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(status, 200);

    let mcp = TestApp::spawn_with(Options::default().with_env("MALIPO_MODE", "mcp")).await;
    let (status, _) = mcp.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(status, 404);
    let (status, _) = mcp.post("/api/v1/auth/login", &Auth::None, json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = mcp.get("/health", &Auth::None).await;
    assert_eq!(status, 200);
    let (status, _) = mcp.post("/mcp", &Auth::None, json!({})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn rest_and_mcp_spend_one_rate_limit() {
    let app =
        TestApp::spawn_with(Options::daraja_sim().with_env("MALIPO_TENANT_RATE_PER_MINUTE", "4"))
            .await;
    let owner = app.register("Busy Ltd").await;
    // 1: the store list `register` reads; 2: the key; 3: a REST read;
    // 4: an MCP call; 5: over.
    let key = full_key(&app, &owner).await;
    for _ in 0..1 {
        let (status, body) = app.get("/api/v1/stores", &owner.auth()).await;
        assert_eq!(status, 200, "{body}");
    }
    let report = drive(over_http(&app, &key, MODERN, two_history_calls())).await;
    assert_eq!(report["steps"][0]["is_error"], false, "{report}");
    assert_eq!(report["steps"][1]["is_error"], true, "{report}");
    assert!(
        report["steps"][1]["text"]
            .as_str()
            .is_some_and(|t| t.contains("rate_limited"))
    );
    let (status, body) = app.get("/api/v1/stores", &owner.auth()).await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn stdio_serves_the_same_tools_with_the_key_from_the_environment() {
    let app = spawn().await;
    let owner = app.register("Desk Ltd").await;
    app.configure_mpesa(&owner).await;
    let key = full_key(&app, &owner).await;
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache");
    let scenario = json!({
        "transport": "stdio",
        "command": env!("CARGO_BIN_EXE_malipo"),
        "args": ["mcp", "--data-dir", app.data_dir, "--daraja-emulator-url", app.emulator.clone().expect("emulator")],
        "env": {"MALIPO_API_KEY": key, "MALIPO_CACHE_DIR": cache, "RUST_LOG": "warn",
                "MALIPO_PUBLIC_URL": app.base},
        "mode": LEGACY,
        "steps": [
            list_tools(),
            call("mpesa_stk_push", stk_args(75, "stdio-1")),
            call("mpesa_transaction_history", json!({})),
        ]
    });
    let report = drive(scenario).await;
    let tools = report["steps"][0]["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for name in TOOLS {
        tool(&tools, name);
    }
    let pushed = &report["steps"][1];
    assert_eq!(pushed["is_error"], false, "{report}");
    let id = pushed["structured"]["transaction"]["id"]
        .as_str()
        .expect("id");
    // The server's callback worker completes what the stdio process pushed.
    assert_eq!(wait_final(&app, &owner, id).await["status"], "completed");
    let (_, rest) = app.get("/api/v1/mpesa/transactions", &owner.auth()).await;
    let listed = &report["steps"][2]["structured"]["transactions"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["id"], rest["transactions"][0]["id"]);
    let rows = tenant_rows(
        &app,
        &owner.tenant_id,
        "SELECT user_agent FROM audit_log WHERE channel = 'mcp' AND operation = 'mpesa.stk-push'",
    );
    assert_eq!(rows, vec![vec!["stdio".to_string()]]);
}

#[tokio::test]
async fn mcp_calls_are_metered_and_a_plan_without_mcp_refuses_them() {
    let app = spawn().await;
    let owner = app.register("Metered Ltd").await;
    let key = full_key(&app, &owner).await;
    let (status, before) = app.get("/api/v1/usage", &owner.auth()).await;
    assert_eq!(status, 200, "{before}");
    let report = drive(over_http(&app, &key, MODERN, two_history_calls())).await;
    assert_eq!(report["steps"][1]["is_error"], false, "{report}");
    let (_, after) = app.get("/api/v1/usage", &owner.auth()).await;
    assert_eq!(
        after["by_channel"]["mcp"].as_u64(),
        before["by_channel"]["mcp"].as_u64().map(|n| n + 2),
        "{after}"
    );

    // The Free plan has no `mcp`: the credential is fine, the plan is not.
    let free = crate::billing::register_on(&app, "Free Kiosk", "free").await;
    let free_key = full_key(&app, &free).await;
    let step = one(
        &app,
        &free_key,
        MODERN,
        call("mpesa_transaction_history", json!({})),
    )
    .await;
    assert_eq!(step["is_error"], true, "{step}");
    let text = step["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("plan_feature_required") && text.contains("Free") && text.contains("mcp"),
        "{text}"
    );
}
