//! Sandbox: test-only plugins that loop forever, allocate past the cap,
//! trap mid-write, and touch a table they did not declare each fail only
//! their own call with a clear error, write nothing, and leave the server
//! serving others.
//!
//! Every probe operation of the `sandbox` test plugin first inserts a note
//! into `sandbox_items` and then misbehaves; the host must roll the note back.

use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, Session, TestApp, code, open};

/// The CPU deadline used by most tests here (keeps them quick).
const DEADLINE_MS: u64 = 500;
/// The plugin memory cap used here.
const MEMORY_MB: u64 = 32;

/// A sandbox-enabled server with a short deadline and a small memory cap,
/// plus `extra` environment variables (which win).
fn options(extra: &[(&str, &str)]) -> Options {
    let mut env = vec![
        (
            "MALIPO_PLUGIN_DEADLINE_MS".to_string(),
            DEADLINE_MS.to_string(),
        ),
        ("MALIPO_PLUGIN_MEMORY_MB".to_string(), MEMORY_MB.to_string()),
    ];
    for (key, value) in extra {
        env.retain(|(k, _)| k != key);
        env.push(((*key).to_string(), (*value).to_string()));
    }
    Options { sandbox: true, env }
}

async fn spawn(extra: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(options(extra)).await
}

fn unique(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

/// Sends a request with the session's bearer token; answers the status, the
/// response's `X-Request-ID` and the JSON body (`Value::Null` if none).
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    session: &Session,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, String, Value) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(&session.access_token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let request_id = crate::helpers::header(&response, "x-request-id").unwrap_or_default();
    let text = response.text().await.expect("body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, request_id, json)
}

/// The notes stored in the session's tenant, through the plugin.
async fn notes(app: &TestApp, session: &Session) -> Vec<String> {
    let (status, body) = app.get("/api/v1/sandbox/items", &session.auth()).await;
    assert_eq!(status, 200, "list items: {body}");
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items is not a list: {body}"))
        .iter()
        .map(|item| {
            item["note"]
                .as_str()
                .unwrap_or_else(|| panic!("item without note: {item}"))
                .to_string()
        })
        .collect()
}

/// Creates a note; answers it.
async fn create_item(app: &TestApp, session: &Session, label: &str) -> String {
    let note = unique(label);
    let (status, body) = app
        .post(
            "/api/v1/sandbox/items",
            &session.auth(),
            json!({"note": note}),
        )
        .await;
    assert_eq!(status, 201, "create item: {body}");
    assert_eq!(body["note"], json!(note), "{body}");
    assert!(body["id"].as_i64().is_some(), "item id: {body}");
    note
}

/// The session's tenant answers a no-op and stores (and lists) a new note.
async fn assert_serves(app: &TestApp, session: &Session, who: &str) -> String {
    let (status, body) = app.get("/api/v1/sandbox/noop", &session.auth()).await;
    assert_eq!(
        (status, &body),
        (200, &json!({"ok": true})),
        "{who}: noop after the bad call"
    );
    let note = create_item(app, session, who).await;
    assert!(
        notes(app, session).await.contains(&note),
        "{who}: the new note is listed"
    );
    note
}

/// One audit row, as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuditRow {
    id: i64,
    actor_type: String,
    actor_id: Option<String>,
    channel: String,
    operation: String,
    target: Option<String>,
    outcome: String,
    request_id: Option<String>,
}

fn audit_rows(app: &TestApp, tenant_id: &str, filter: Option<&str>) -> Vec<AuditRow> {
    let conn = open(&app.tenant_file(tenant_id));
    let mut stmt = conn
        .prepare(
            "SELECT id, actor_type, actor_id, channel, operation, target, outcome, request_id FROM audit_log
             WHERE ?1 IS NULL OR request_id = ?1 ORDER BY id",
        )
        .expect("prepare audit query");
    stmt.query_map([filter], |row| {
        Ok(AuditRow {
            id: row.get(0)?,
            actor_type: row.get(1)?,
            actor_id: row.get(2)?,
            channel: row.get(3)?,
            operation: row.get(4)?,
            target: row.get(5)?,
            outcome: row.get(6)?,
            request_id: row.get(7)?,
        })
    })
    .expect("query audit_log")
    .collect::<Result<Vec<_>, _>>()
    .expect("read audit_log")
}

/// The audit rows carrying one request id.
fn audit_of(app: &TestApp, tenant_id: &str, request_id: &str) -> Vec<AuditRow> {
    assert!(
        !request_id.is_empty(),
        "the response carried no X-Request-ID"
    );
    audit_rows(app, tenant_id, Some(request_id))
}

/// What a misbehaving call must answer.
struct Expect<'a> {
    status: u16,
    code: &'a str,
    /// Words the message must contain (case-sensitive).
    message_has: &'a [&'a str],
}

/// Calls a misbehaving operation as `victim` while `bystander` (another
/// tenant) is being served, then checks: the error, that nothing was
/// written, that a failure row was audited, and that both tenants are still
/// served. Answers the bad call's request id.
async fn assert_contained(
    app: &TestApp,
    victim: &Session,
    bystander: &Session,
    operation: &str,
    extra: Value,
    expect: Expect<'_>,
) -> String {
    let path = format!(
        "/api/v1/sandbox/{}",
        operation.trim_start_matches("sandbox.")
    );
    let bystander_before = create_item(app, bystander, "bystander-before").await;
    let note = unique(operation);
    let mut body = json!({"note": note});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }

    // The bad call and another tenant's calls, at the same time.
    let bad = send(app, Method::POST, &path, victim, Some(body), &[]);
    let others = async {
        let (noop_status, noop) = app.get("/api/v1/sandbox/noop", &bystander.auth()).await;
        let during = unique("bystander-during");
        let (created_status, created) = app
            .post(
                "/api/v1/sandbox/items",
                &bystander.auth(),
                json!({"note": during}),
            )
            .await;
        (noop_status, noop, created_status, created, during)
    };
    let ((status, request_id, answer), (noop_status, noop, created_status, created, during)) =
        tokio::join!(bad, others);

    assert_eq!(
        status, expect.status,
        "{operation}: status of the bad call: {answer}"
    );
    assert_eq!(
        code(&answer),
        expect.code,
        "{operation}: error code: {answer}"
    );
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    for word in expect.message_has {
        assert!(
            message.contains(word),
            "{operation}: the message {message:?} should mention {word:?}"
        );
    }
    assert_eq!(
        answer["error"]["request_id"],
        json!(request_id),
        "{operation}: error request_id: {answer}"
    );

    assert_eq!(
        (noop_status, &noop),
        (200, &json!({"ok": true})),
        "bystander noop during {operation}"
    );
    assert_eq!(
        created_status, 201,
        "bystander create during {operation}: {created}"
    );
    assert_eq!(created["note"], json!(during));

    // Nothing the bad call wrote stays.
    let victim_notes = notes(app, victim).await;
    assert!(
        !victim_notes.contains(&note),
        "{operation}: its note was kept: {victim_notes:?}"
    );
    let conn = open(&app.tenant_file(&victim.tenant_id));
    let kept: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sandbox_items WHERE note = ?1",
            [&note],
            |row| row.get(0),
        )
        .expect("count notes");
    assert_eq!(kept, 0, "{operation}: the note is in the tenant file");

    // The failure is audited, once, with its code.
    let rows = audit_of(app, &victim.tenant_id, &request_id);
    assert_eq!(
        rows.len(),
        1,
        "{operation}: audit rows of the bad call: {rows:?}"
    );
    assert_eq!(rows[0].operation, operation);
    assert_eq!(rows[0].outcome, format!("failure:{}", expect.code));
    assert_eq!(rows[0].channel, "rest");
    assert_eq!(rows[0].actor_id.as_deref(), Some(victim.user_id.as_str()));

    // Both tenants are still served; neither sees the other's notes.
    let victim_after = assert_serves(app, victim, "victim-after").await;
    let bystander_after = assert_serves(app, bystander, "bystander-after").await;
    let bystander_notes = notes(app, bystander).await;
    for expected in [&bystander_before, &during, &bystander_after] {
        assert!(
            bystander_notes.contains(expected),
            "bystander lost {expected}: {bystander_notes:?}"
        );
    }
    assert!(!bystander_notes.contains(&note) && !bystander_notes.contains(&victim_after));
    request_id
}

async fn two_tenants(app: &TestApp) -> (Session, Session) {
    let victim = app.register("Sandbox Victim").await;
    let bystander = app.register("Sandbox Bystander").await;
    (victim, bystander)
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_deadline_and_rolled_back() {
    let app = spawn(&[]).await;
    let (victim, bystander) = two_tenants(&app).await;
    let ms = format!("{DEADLINE_MS} ms");
    assert_contained(
        &app,
        &victim,
        &bystander,
        "sandbox.spin",
        json!({}),
        Expect {
            status: 504,
            code: "plugin_timeout",
            message_has: &["sandbox", "deadline", &ms],
        },
    )
    .await;
}

#[tokio::test]
async fn allocating_past_the_memory_cap_is_stopped_and_rolled_back() {
    let app = spawn(&[]).await;
    let (victim, bystander) = two_tenants(&app).await;
    let cap = format!("{MEMORY_MB} MiB");
    assert_contained(
        &app,
        &victim,
        &bystander,
        "sandbox.hog",
        json!({}),
        Expect {
            status: 500,
            code: "plugin_memory_limit",
            message_has: &["sandbox", "memory", &cap],
        },
    )
    .await;
}

#[tokio::test]
async fn a_trap_after_a_write_is_rolled_back() {
    let app = spawn(&[]).await;
    let (victim, bystander) = two_tenants(&app).await;
    assert_contained(
        &app,
        &victim,
        &bystander,
        "sandbox.trap",
        json!({}),
        Expect {
            status: 500,
            code: "plugin_crashed",
            message_has: &["sandbox", "crashed"],
        },
    )
    .await;
}

#[tokio::test]
async fn a_plugin_error_after_a_write_is_rolled_back() {
    let app = spawn(&[]).await;
    let (victim, bystander) = two_tenants(&app).await;
    assert_contained(
        &app,
        &victim,
        &bystander,
        "sandbox.fail",
        json!({}),
        Expect {
            status: 409,
            code: "conflict",
            message_has: &["deliberate conflict"],
        },
    )
    .await;
}

#[tokio::test]
async fn reading_an_undeclared_table_is_refused_and_rolled_back() {
    let app = spawn(&[]).await;
    let (victim, bystander) = two_tenants(&app).await;
    assert_contained(
        &app,
        &victim,
        &bystander,
        "sandbox.trespass",
        json!({"target": "read"}),
        Expect {
            status: 500,
            code: "plugin_capability_denied",
            message_has: &["sandbox", "rbac_roles"],
        },
    )
    .await;
}

#[tokio::test]
async fn deleting_the_audit_log_is_refused_and_the_log_is_intact() {
    let app = spawn(&[]).await;
    let (victim, bystander) = two_tenants(&app).await;
    // A success row to lose, if the refusal failed.
    let (status, created_id, body) = send(
        &app,
        Method::POST,
        "/api/v1/sandbox/items",
        &victim,
        Some(json!({"note": unique("kept")})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let before = audit_rows(&app, &victim.tenant_id, None);
    assert!(
        before
            .iter()
            .any(|row| row.request_id.as_deref() == Some(created_id.as_str())),
        "the success row is audited: {before:?}"
    );

    let refused = assert_contained(
        &app,
        &victim,
        &bystander,
        "sandbox.trespass",
        json!({"target": "audit"}),
        Expect {
            status: 500,
            code: "plugin_capability_denied",
            message_has: &["sandbox", "audit_log"],
        },
    )
    .await;

    let after = audit_rows(&app, &victim.tenant_id, None);
    for row in &before {
        assert!(
            after.contains(row),
            "audit row {row:?} was lost; now {after:?}"
        );
    }
    assert!(
        after
            .iter()
            .any(|row| row.request_id.as_deref() == Some(refused.as_str()))
    );
    assert!(after.len() > before.len(), "the refusal itself is audited");
}

#[tokio::test]
async fn attaching_a_database_is_refused_and_rolled_back() {
    let app = spawn(&[]).await;
    let (victim, bystander) = two_tenants(&app).await;
    // `ATTACH 'x.db'` would resolve against the server's working directory
    // (this test's) or the data directory.
    let candidates = [
        std::env::current_dir().expect("cwd").join("x.db"),
        app.data_dir.join("x.db"),
        app.data_dir.join("tenants").join("x.db"),
    ];
    let existed: Vec<bool> = candidates.iter().map(|p| p.exists()).collect();
    assert_contained(
        &app,
        &victim,
        &bystander,
        "sandbox.trespass",
        json!({"target": "attach"}),
        Expect {
            status: 500,
            code: "plugin_capability_denied",
            message_has: &["sandbox", "ATTACH"],
        },
    )
    .await;
    for (path, existed) in candidates.iter().zip(existed) {
        assert!(
            existed || !path.exists(),
            "ATTACH created {}",
            path.display()
        );
    }
}

#[tokio::test]
async fn a_pragma_is_refused_and_the_connection_is_unchanged() {
    let app = spawn(&[]).await;
    let (victim, bystander) = two_tenants(&app).await;
    assert_contained(
        &app,
        &victim,
        &bystander,
        "sandbox.trespass",
        json!({"target": "pragma"}),
        Expect {
            status: 500,
            code: "plugin_capability_denied",
            message_has: &["sandbox", "PRAGMA"],
        },
    )
    .await;
    let conn = open(&app.tenant_file(&victim.tenant_id));
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .expect("journal mode");
    assert_eq!(mode.to_lowercase(), "wal", "the tenant file left WAL mode");
}

#[tokio::test]
async fn an_output_over_the_limit_is_a_bad_gateway() {
    let app = spawn(&[("MALIPO_PLUGIN_MAX_OUTPUT_BYTES", "65536")]).await;
    let (victim, bystander) = two_tenants(&app).await;

    let (status, body) = app
        .get("/api/v1/sandbox/big?bytes=1000", &victim.auth())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"].as_str().map(str::len),
        Some(1000),
        "data of 1000 bytes"
    );

    let (status, request_id, body) = send(
        &app,
        Method::GET,
        "/api/v1/sandbox/big?bytes=100000",
        &victim,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 502, "{body:.200}");
    assert_eq!(code(&body), "plugin_bad_output", "{body:.200}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("sandbox") && message.contains("65536"),
        "message: {message}"
    );
    assert_eq!(body["error"]["request_id"], json!(request_id));

    assert_serves(&app, &victim, "victim-after").await;
    assert_serves(&app, &bystander, "bystander-after").await;
}

#[tokio::test]
async fn an_input_over_the_plugin_limit_is_refused_before_the_plugin_runs() {
    let limit = 16 * 1024;
    let app = spawn(&[("MALIPO_PLUGIN_MAX_INPUT_BYTES", &limit.to_string())]).await;
    let (victim, bystander) = two_tenants(&app).await;

    // Well under the body limit (1 MiB), over the plugin input limit.
    let note = format!("{}-{}", unique("huge"), "n".repeat(limit + 1000));
    let (status, request_id, body) = send(
        &app,
        Method::POST,
        "/api/v1/sandbox/items",
        &victim,
        Some(json!({"note": note})),
        &[],
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(code(&body), "payload_too_large", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("input") && message.contains(&limit.to_string()),
        "message: {message}"
    );
    assert!(
        !notes(&app, &victim).await.contains(&note),
        "the huge note was stored"
    );
    let rows = audit_of(&app, &victim.tenant_id, &request_id);
    assert_eq!(
        rows.iter()
            .map(|r| (r.operation.as_str(), r.outcome.as_str()))
            .collect::<Vec<_>>(),
        vec![("sandbox.items.create", "failure:payload_too_large")]
    );

    // Just under the limit is fine.
    let fits = format!("{}-{}", unique("fits"), "n".repeat(limit / 2));
    let (status, body) = app
        .post(
            "/api/v1/sandbox/items",
            &victim.auth(),
            json!({"note": fits}),
        )
        .await;
    assert_eq!(status, 201, "{body:.200}");
    assert!(notes(&app, &victim).await.contains(&fits));
    assert_serves(&app, &bystander, "bystander-after").await;
}

#[tokio::test]
async fn other_tenants_are_served_while_a_plugin_spins() {
    // A long deadline, so that the other tenant's calls happen while the
    // spinning call is still running.
    let app = spawn(&[("MALIPO_PLUGIN_DEADLINE_MS", "5000")]).await;
    let (victim, bystander) = two_tenants(&app).await;
    // Warm the bystander (authorization answers, a live instance).
    assert_serves(&app, &bystander, "bystander-warm").await;

    let spin_note = unique("spin");
    let spin_done = AtomicBool::new(false);
    let spin = async {
        let answer = app
            .post(
                "/api/v1/sandbox/spin",
                &victim.auth(),
                json!({"note": spin_note}),
            )
            .await;
        spin_done.store(true, Ordering::SeqCst);
        answer
    };
    let others = async {
        // Only once the victim's call is executing in its plugin.
        app.wait_until_running("sandbox.spin").await;
        assert!(
            !spin_done.load(Ordering::SeqCst),
            "the spinning call ended before the other tenant's calls began"
        );
        let mut made = Vec::new();
        for round in 0..5 {
            let (status, body) = app.get("/api/v1/sandbox/noop", &bystander.auth()).await;
            assert_eq!(
                (status, &body),
                (200, &json!({"ok": true})),
                "noop round {round}"
            );
            let note = unique(&format!("during-{round}"));
            let (status, body) = app
                .post(
                    "/api/v1/sandbox/items",
                    &bystander.auth(),
                    json!({"note": note}),
                )
                .await;
            assert_eq!(status, 201, "create round {round}: {body}");
            made.push(note);
            let (status, body) = app.get("/api/v1/sandbox/stores", &bystander.auth()).await;
            assert_eq!(status, 200, "stores round {round}: {body}");
        }
        (made, !spin_done.load(Ordering::SeqCst))
    };
    let ((spin_status, spin_body), (made, while_spinning)) = tokio::join!(spin, others);

    assert!(
        while_spinning,
        "the other tenant's calls waited for the spinning call to end"
    );
    assert_eq!(spin_status, 504, "{spin_body}");
    assert_eq!(code(&spin_body), "plugin_timeout", "{spin_body}");
    let listed = notes(&app, &bystander).await;
    for note in &made {
        assert!(listed.contains(note), "bystander lost {note}");
    }
    assert!(!notes(&app, &victim).await.contains(&spin_note));
    assert_serves(&app, &victim, "victim-after").await;
}

#[tokio::test]
async fn the_call_context_comes_from_the_credential_not_the_request() {
    let app = spawn(&[]).await;
    let (me, other) = two_tenants(&app).await;
    let other_store = other.default_store.clone().expect("other's store");
    let my_store = me.default_store.clone().expect("my store");

    let path = format!(
        "/api/v1/sandbox/echo?tenant_id={}&store_id={}",
        other.tenant_id, other_store
    );
    let (status, _, body) = send(
        &app,
        Method::POST,
        &path,
        &me,
        Some(json!({"tenant_id": other.tenant_id, "store_id": other_store, "user_id": other.user_id})),
        &[("X-Tenant-ID", other.tenant_id.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant_id"], json!(me.tenant_id), "{body}");
    assert_eq!(body["user_id"], json!(me.user_id), "{body}");
    assert_eq!(
        body["store_id"],
        Value::Null,
        "no X-Store-ID: no store: {body}"
    );
    assert_eq!(body["channel"], json!("rest"), "{body}");

    // The store comes from X-Store-ID, and only a store of the caller's tenant.
    let (status, _, body) = send(
        &app,
        Method::POST,
        "/api/v1/sandbox/echo",
        &me,
        Some(json!({"store_id": other_store})),
        &[("X-Store-ID", my_store.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store_id"], json!(my_store), "{body}");
    assert_eq!(body["tenant_id"], json!(me.tenant_id), "{body}");

    let (status, _, body) = send(
        &app,
        Method::POST,
        "/api/v1/sandbox/echo",
        &me,
        Some(json!({})),
        &[("X-Store-ID", other_store.as_str())],
    )
    .await;
    assert_eq!(status, 403, "another tenant's store: {body}");
    assert_eq!(code(&body), "forbidden", "{body}");

    // The declared host table reads only the caller's stores.
    let (status, body) = app.get("/api/v1/sandbox/stores", &me.auth()).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["stores"]
        .as_array()
        .expect("stores")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(
        ids.contains(&my_store.as_str()) && !ids.contains(&other_store.as_str()),
        "{body}"
    );
}

#[tokio::test]
async fn emitted_events_land_in_the_tenants_outbox() {
    let app = spawn(&[]).await;
    let (me, other) = two_tenants(&app).await;
    let name = format!("sandbox.probe.{}", uuid::Uuid::new_v4().simple());
    let marker = unique("payload");
    let (status, request_id, body) = send(
        &app,
        Method::POST,
        "/api/v1/sandbox/emit",
        &me,
        Some(json!({"name": name, "payload": {"marker": marker, "n": 7}})),
        &[],
    )
    .await;
    assert_eq!((status, &body), (200, &json!({"emitted": true})));

    let conn = open(&app.tenant_file(&me.tenant_id));
    let rows: Vec<(String, String, Option<String>, String)> = conn
        .prepare("SELECT payload, source, delivered_at, event_id FROM outbox WHERE name = ?1")
        .expect("prepare")
        .query_map([&name], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .expect("query outbox")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), 1, "one outbox row: {rows:?}");
    let (payload, source, _delivered, event_id) = &rows[0];
    assert_eq!(
        serde_json::from_str::<Value>(payload).expect("payload is JSON"),
        json!({"marker": marker, "n": 7})
    );
    assert_eq!(source, "sandbox");
    assert!(!event_id.is_empty());
    let audited = audit_of(&app, &me.tenant_id, &request_id);
    assert_eq!(
        audited
            .iter()
            .map(|r| (r.operation.as_str(), r.outcome.as_str()))
            .collect::<Vec<_>>(),
        vec![("sandbox.emit", "success")]
    );

    // Only in the emitting tenant's file.
    let theirs: i64 = open(&app.tenant_file(&other.tenant_id))
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE name = ?1",
            [&name],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(theirs, 0, "the event leaked into another tenant's outbox");

    // A refused emit (blank name) leaves no row.
    let count = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))
            .expect("count outbox")
    };
    let before = count(&conn);
    let (status, body) = app
        .post("/api/v1/sandbox/emit", &me.auth(), json!({"name": "   "}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(&body), "validation_failed", "{body}");
    assert_eq!(count(&conn), before, "a refused emit wrote to the outbox");
    // (An emit whose call then fails is rolled back: see
    // `events::an_event_of_a_rolled_back_call_is_never_delivered`.)
}

#[tokio::test]
async fn plugin_calls_are_audited_with_their_request_id() {
    let app = spawn(&[]).await;
    let me = app.register("Sandbox Audit").await;

    let note = unique("audited");
    let (status, request_id, body) = send(
        &app,
        Method::POST,
        "/api/v1/sandbox/items",
        &me,
        Some(json!({"note": note})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let rows = audit_of(&app, &me.tenant_id, &request_id);
    assert_eq!(rows.len(), 1, "one audit row for the call: {rows:?}");
    let row = &rows[0];
    assert_eq!(row.operation, "sandbox.items.create");
    assert_eq!(row.outcome, "success");
    assert_eq!(row.channel, "rest");
    assert_eq!(row.actor_type, "user");
    assert_eq!(row.actor_id.as_deref(), Some(me.user_id.as_str()));
    // The full path as the client sent it.
    assert_eq!(
        row.target.as_deref(),
        Some("/api/v1/sandbox/items"),
        "target"
    );
    assert_eq!(row.request_id.as_deref(), Some(request_id.as_str()));

    // A client-chosen request id is the one audited.
    let chosen = format!("audit-{}", uuid::Uuid::new_v4().simple());
    let (status, echoed, _) = send(
        &app,
        Method::POST,
        "/api/v1/sandbox/items",
        &me,
        Some(json!({"note": unique("chosen")})),
        &[("X-Request-ID", chosen.as_str())],
    )
    .await;
    assert_eq!((status, echoed.as_str()), (201, chosen.as_str()));
    assert_eq!(audit_of(&app, &me.tenant_id, &chosen).len(), 1);

    // Reads are not audited.
    let (status, read_id, _) =
        send(&app, Method::GET, "/api/v1/sandbox/items", &me, None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        audit_of(&app, &me.tenant_id, &read_id),
        Vec::new(),
        "a read left an audit row"
    );

    // A failing mutating call leaves a failure row.
    let (status, failed_id, body) = send(
        &app,
        Method::POST,
        "/api/v1/sandbox/fail",
        &me,
        Some(json!({"note": unique("fails")})),
        &[],
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let rows = audit_of(&app, &me.tenant_id, &failed_id);
    assert_eq!(
        rows.iter()
            .map(|r| (r.operation.as_str(), r.outcome.as_str(), r.channel.as_str()))
            .collect::<Vec<_>>(),
        vec![("sandbox.fail", "failure:conflict", "rest")]
    );
}

#[tokio::test]
async fn a_member_without_the_permission_cannot_run_the_probes() {
    let app = spawn(&[]).await;
    let owner = app.register("Sandbox Perms").await;
    let member = app.add_member(&owner, "Member", None).await;
    let note = unique("member");
    let (status, body) = app
        .post(
            "/api/v1/sandbox/items",
            &member.auth(),
            json!({"note": note}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(code(&body), "forbidden", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sandbox.run"),
        "{body}"
    );
    assert!(!notes(&app, &owner).await.contains(&note));
    let (status, _) = app.get("/api/v1/sandbox/noop", &Auth::None).await;
    assert_eq!(status, 401);
}
