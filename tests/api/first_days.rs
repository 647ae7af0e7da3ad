//! Issue 13, a self-hoster's and a shop owner's first days: the default
//! data directory keeps the compiled-code cache, the registration answer
//! names the plan in force, refused money calls are not counted as
//! transactions, and an expired token says so (no leeway).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, PASSWORD, TestApp, code};

/// `malipo serve` with no `--data-dir` and no `MALIPO_CACHE_DIR`, in a
/// fresh working directory: the default `./tenants-data` is made absolute
/// once, so the compiled-code cache is on (no warning, files in
/// `tenants-data/cache`) and the printed data directory is absolute.
#[tokio::test]
async fn the_default_data_directory_keeps_the_compiled_code_cache() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let mut child = crate::helpers::malipo_bare()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(cwd.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start malipo");
    let stdout = child.stdout.take().expect("stdout");
    // The log, line by line, as the server writes it.
    let (log_lines, log) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if log_lines.send(line).is_err() {
                break;
            }
        }
    });
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        line
    })
    .await
    .expect("join");
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(health.status(), 200);
    let refused = client
        .get(format!(
            "http://{addr}/api/v1/stores/0b5e0000-0000-4000-8000-000000000000"
        ))
        .send()
        .await
        .expect("GET a store");
    assert_eq!(refused.status(), 401);
    // Stop the server once the second request's access line is written
    // (or after a deadline: the assertions below then say what is missing);
    // then the rest of the log, to its end.
    let stderr = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stderr = String::new();
        let mut access = 0;
        while access < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = log.recv_timeout(left) else {
                break;
            };
            access += usize::from(line.contains("malipo::access"));
            stderr.push_str(&line);
            stderr.push('\n');
        }
        let _ = child.kill();
        let _ = child.wait();
        for line in log {
            stderr.push_str(&line);
            stderr.push('\n');
        }
        reader.join().expect("the log reader");
        stderr
    })
    .await
    .expect("join");
    assert!(first.contains("malipo listening on"), "{first}\n{stderr}");
    assert!(
        !stderr.contains("compiled-code cache disabled"),
        "the cache must stay on with the default data directory: {stderr}"
    );
    // Logs: no colour codes when stderr is not a terminal; one access line
    // per request, with the route template (not the concrete path).
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI codes into a pipe: {stderr:?}"
    );
    let access: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("malipo::access"))
        .collect();
    assert_eq!(access.len(), 2, "one access line per request: {stderr}");
    assert!(
        access[0].contains("route=/health") && access[0].contains("status=200"),
        "{access:?}"
    );
    assert!(
        access[1].contains("route=/api/v1/stores/{id}")
            && access[1].contains("status=401")
            && access[1].contains("method=GET")
            && access[1].contains("duration_ms="),
        "{access:?}"
    );
    assert!(!stderr.contains("no migrations to apply"), "{stderr}");
    let data_dir = first
        .split("data directory ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the data directory is printed");
    assert!(
        std::path::Path::new(data_dir).is_absolute(),
        "the data directory is resolved once, to an absolute path: {first}"
    );
    let cache = cwd.path().join("tenants-data").join("cache");
    let entries = std::fs::read_dir(&cache)
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert!(
        entries > 0,
        "compiled code is cached in {}",
        cache.display()
    );
}

/// `POST /auth/register` and `POST /admin/tenants` answer the plan and
/// subscription status `/me` and `GET /admin/tenants` show.
#[tokio::test]
async fn the_registration_answer_names_the_plan_in_force() {
    let app = TestApp::spawn().await;
    let email = format!("owner-{}@plan.example", uuid::Uuid::new_v4().simple());
    let (status, registered) = app
        .post(
            "/api/v1/auth/register",
            &Auth::None,
            json!({"email": email, "password": PASSWORD, "full_name": "Plan Owner", "organization_name": "Plan Shop"}),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    let token = Auth::Bearer(
        registered["access_token"]
            .as_str()
            .expect("token")
            .to_string(),
    );
    let (status, me) = app.get("/api/v1/me", &token).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        registered["tenant"]["plan"], me["tenant"]["plan"],
        "{registered}\n{me}"
    );
    assert_ne!(registered["tenant"]["plan"], json!("free"), "{registered}");
    assert_eq!(
        registered["tenant"]["subscription_status"],
        json!("trial"),
        "{registered}"
    );

    let admin = app.super_admin().await;
    let (status, created) = app
        .post(
            "/api/v1/admin/tenants",
            &admin,
            json!({
                "organization_name": "Admin Made",
                "owner_email": format!("made-{}@plan.example", uuid::Uuid::new_v4().simple()),
                "owner_full_name": "Made Owner",
                "owner_password": PASSWORD,
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, list) = app.get("/api/v1/admin/tenants", &admin).await;
    assert_eq!(status, 200, "{list}");
    let id = created["tenant"]["id"].clone();
    let listed = list["tenants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        created["tenant"]["plan"], listed["plan"],
        "{created}\n{listed}"
    );
    assert_eq!(
        created["tenant"]["subscription_status"], listed["subscription_status"],
        "{created}\n{listed}"
    );
}

/// A one-shot CLI command prints its answer, not the migration runner's
/// INFO lines.
#[test]
fn cli_commands_are_quiet() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = crate::helpers::malipo_bare()
        .args(["tenant", "list", "--json", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run malipo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("refinery"), "{stderr}");
    assert!(!stderr.contains(" INFO "), "{stderr}");
}

/// Job rounds that change nothing write no audit rows.
#[tokio::test]
async fn idle_job_rounds_do_not_flood_the_audit_log() {
    let app =
        TestApp::spawn_with(Options::daraja_sim().with_env("MALIPO_JOB_INTERVAL_SECS", "1")).await;
    let owner = app.register("Quiet Jobs").await;
    app.configure_mpesa(&owner).await;
    // A few rounds of the tenant's jobs (reconcile, webhooks, emails).
    for job in ["payments.reconcile", "webhooks.deliver", "emails.send"] {
        let runs = app.plugin_calls(job).await;
        app.wait_for_plugin_calls(job, runs, 3).await;
    }
    let conn = crate::helpers::open(&app.tenant_file(&owner.tenant_id));
    let job_rows: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE channel = 'job'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(job_rows, 0, "idle job runs are not audited");
}

/// Validation failures and 409s of `mpesa.stk-push` are not transactions:
/// only the pushes sent to Daraja count.
#[tokio::test]
async fn refused_money_calls_are_not_counted_as_transactions() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Counted Pushes").await;
    app.configure_mpesa(&owner).await;
    let (status, before) = app.get("/api/v1/usage", &owner.auth()).await;
    assert_eq!(status, 200, "{before}");
    let before = before["metrics"]["transactions"]["used"]
        .as_u64()
        .unwrap_or_else(|| panic!("usage shows transactions: {before}"));

    let body = |phone: &str, amount: i64| json!({"phone_number": phone, "amount": amount, "account_reference": "INV-7", "description": "Order 7"});
    let push = |body: Value, key: &'static str| {
        let app = &app;
        let auth = owner.auth();
        async move {
            app.call_with(
                Method::POST,
                "/api/v1/mpesa/stk-push",
                &auth,
                Some(body),
                &[("Idempotency-Key", key)],
            )
            .await
        }
    };
    // Two real pushes.
    assert_eq!(push(body("0712345678", 10), "real-1").await.0, 201);
    assert_eq!(push(body("0712345678", 11), "real-2").await.0, 201);
    // Refused: a bad phone, a zero amount (plugin validation), and a key
    // reused with another body (409).
    let (status, answer) = push(body("12", 10), "typo-1").await;
    assert!(status == 422 || status == 400, "{status} {answer}");
    let (status, answer) = push(body("0712345678", 0), "typo-2").await;
    assert!(status == 422 || status == 400, "{status} {answer}");
    let (status, answer) = push(body("0712345678", 99), "real-1").await;
    assert_eq!(status, 409, "{answer}");

    let (status, after) = app.get("/api/v1/usage", &owner.auth()).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        after["metrics"]["transactions"]["used"].as_u64(),
        Some(before + 2),
        "only the two pushes sent to Daraja count: {after}"
    );
}

/// An access token past its `exp` is refused at once (no leeway) with
/// a `401` saying it expired and naming `POST /auth/refresh`; a token that is not ours
/// and a missing credential each say what they are.
#[tokio::test]
async fn an_expired_token_says_so_and_points_at_refresh() {
    let app =
        TestApp::spawn_with(Options::default().with_env("MALIPO_ACCESS_TOKEN_TTL_SECS", "2")).await;
    let owner = app.register("Expiring Shop").await;
    let (status, body) = app.get("/api/v1/me", &Auth::None).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("missing"),
        "{body}"
    );
    let (status, body) = app
        .get("/api/v1/me", &Auth::Bearer("not.a.token".into()))
        .await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid"),
        "{body}"
    );

    // Issued with a 2 s lifetime; 1.5 s past `exp` it is refused.
    tokio::time::sleep(Duration::from_millis(3600)).await;
    let (status, body) = app.get("/api/v1/me", &owner.auth()).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("expired") && message.contains("/auth/refresh"),
        "{body}"
    );
    let (status, refreshed) = app
        .post(
            "/api/v1/auth/refresh",
            &Auth::None,
            json!({"refresh_token": owner.refresh_token}),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let fresh = Auth::Bearer(
        refreshed["access_token"]
            .as_str()
            .expect("token")
            .to_string(),
    );
    assert_eq!(app.get("/api/v1/me", &fresh).await.0, 200);
}

/// `malipo mpesa reconcile` on the data directory of a `serve --daraja-sim`
/// asks that server's emulator (not Safaricom's sandbox), and its summary
/// and exit status agree.
#[tokio::test]
async fn reconcile_uses_the_running_servers_emulator_and_its_summary_matches_its_exit() {
    let app = TestApp::spawn_with(Options::daraja_sim_delay(600_000)).await;
    let owner = app.register("Reconciled Shop").await;
    app.configure_mpesa(&owner).await;
    let (status, pushed) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            json!({"phone_number": "0712345678", "amount": 10, "account_reference": "INV-9", "description": "Order 9"}),
        )
        .await;
    assert_eq!(status, 201, "{pushed}");
    let dir = app.data_dir.clone();
    let output = tokio::task::spawn_blocking(move || {
        crate::helpers::malipo_command()
            .args(["mpesa", "reconcile", "--data-dir"])
            .arg(&dir)
            .env("MALIPO_RECONCILE_AFTER_SECS", "0")
            .stdin(Stdio::null())
            .output()
            .expect("run malipo mpesa reconcile")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("using the Daraja emulator of the running server"),
        "{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("safaricom.co.ke"), "{stderr}");
    assert_eq!(
        output.status.success(),
        stdout.contains("; 0 failed;"),
        "the summary and the exit status agree: {stdout}\n{stderr}"
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
}

/// Every permission an operation needs (its OpenAPI `x-permission`) is one
/// `GET /permissions` lists, so a role or API key can hold it — among them
/// `callbacks.rotate`.
#[tokio::test]
async fn every_permission_an_operation_needs_can_be_granted() {
    let app = TestApp::spawn().await;
    let owner = app.register("Permission Shop").await;
    let (status, listed) = app.get("/api/v1/permissions", &owner.auth()).await;
    assert_eq!(status, 200, "{listed}");
    let text = listed.to_string();
    let (status, document) = app.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(status, 200);
    let mut needed = Vec::new();
    for item in document["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for operation in item.as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(permission) = operation["x-permission"].as_str() {
                needed.push(permission.to_string());
            }
        }
    }
    assert!(needed.iter().any(|p| p == "callbacks.rotate"), "{needed:?}");
    for permission in needed {
        assert!(
            text.contains(&format!("\"{permission}\"")),
            "{permission} is needed by an operation but GET /permissions does not list it"
        );
    }
}

/// A malformed receipt is refused (422) before anything is sent to Daraja.
#[tokio::test]
async fn a_malformed_receipt_is_refused_before_daraja_is_asked() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Receipt Shop").await;
    app.configure_mpesa(&owner).await;
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/transaction-status",
            &owner.auth(),
            json!({"receipt": "0"}),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (422, "validation_failed"),
        "{answer}"
    );
    let requests = app.emulator_requests().await;
    assert!(
        !requests.to_string().contains("transactionstatus"),
        "Daraja was not asked: {requests}"
    );
}

/// The README's "what works" list is what the binary serves: its route
/// groups line names exactly the OpenAPI tags served, and it claims
/// nothing is missing.
#[tokio::test]
async fn the_readme_lists_exactly_the_route_groups_served() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .expect("read README.md");
    let start = readme.find("What works today").expect("a what-works list");
    let end = readme[start..]
        .find("## Quick start")
        .map_or(readme.len(), |i| start + i);
    let section = &readme[start..end];
    assert!(!section.contains("Not built yet"), "{section}");
    let groups_at = section
        .find("Route groups served")
        .expect("a route groups line");
    let groups = &section[groups_at..];
    let groups = &groups[..groups.find("\n\n").unwrap_or(groups.len())];
    let claimed: std::collections::BTreeSet<String> = groups
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();

    let app = TestApp::spawn().await;
    let (status, document) = app.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(status, 200);
    let served: std::collections::BTreeSet<String> = document["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|item| item.values())
        .flat_map(|op| op["tags"].as_array().cloned().unwrap_or_default())
        .filter_map(|tag| tag.as_str().map(str::to_string))
        .collect();
    assert_eq!(
        claimed, served,
        "README route groups vs. the OpenAPI tags served"
    );
}

/// The seven operations seen answering 409 document it.
#[tokio::test]
async fn operations_that_answer_409_document_it() {
    let app = TestApp::spawn().await;
    let (status, document) = app.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(status, 200);
    for (path, method) in [
        ("/api/v1/roles", "post"),
        ("/api/v1/roles/{id}", "patch"),
        ("/api/v1/roles/{id}", "delete"),
        ("/api/v1/stores/{id}", "delete"),
        ("/api/v1/admin/tenants/{id}", "delete"),
        ("/api/v1/admin/tenants/{id}/cancel-deletion", "post"),
        ("/api/v1/admin/plans", "post"),
    ] {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is served");
        assert!(
            operation["responses"]["409"].is_object(),
            "{method} {path} documents 409: {operation}"
        );
    }
}
