//! Operator surfaces: `/metrics` (Prometheus text; counters and histograms
//! that move with traffic, route templates and never tenant ids, the
//! `MALIPO_METRICS_TOKEN` bearer, closed beyond loopback without one) and
//! `/docs` (Swagger UI from embedded assets, no external URL).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use serde_json::{Value, json};

use crate::helpers::{Auth, Options, TestApp, metric_value};

/// A scrape: status, content type and text.
async fn scrape(app: &TestApp, bearer: Option<&str>) -> (u16, String, String) {
    scrape_at(&app.client, &app.base, bearer).await
}

async fn scrape_at(
    client: &reqwest::Client,
    base: &str,
    bearer: Option<&str>,
) -> (u16, String, String) {
    let mut request = client.get(format!("{base}/metrics"));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("scrape");
    let status = response.status().as_u16();
    let content_type = crate::helpers::header(&response, "content-type").unwrap_or_default();
    (status, content_type, response.text().await.expect("body"))
}

#[tokio::test]
async fn metrics_move_with_requests_and_name_routes_not_tenants() {
    let app = TestApp::spawn().await;
    let (status, content_type, before) = scrape(&app, None).await;
    assert_eq!(status, 200, "{before}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let store_route = [
        ("method", "GET"),
        ("route", "/api/v1/stores/{id}"),
        ("status", "200"),
    ];
    assert_eq!(
        metric_value(&before, "malipo_http_requests_total", &store_route),
        0.0
    );

    let owner = app.register("Metrics Ltd").await;
    let store = owner.default_store.clone().expect("a default store");
    for _ in 0..2 {
        let (status, body) = app
            .get(&format!("/api/v1/stores/{store}"), &owner.auth())
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let missing = uuid::Uuid::new_v4();
    let (status, _) = app
        .get(&format!("/api/v1/stores/{missing}"), &owner.auth())
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.get("/api/v1/no-such-route", &Auth::None).await;
    assert_eq!(status, 404);
    // A method of the client's own making is folded, not a new series.
    let brew = reqwest::Method::from_bytes(b"BREW").expect("a method");
    let (status, _) = app
        .call(brew, "/api/v1/no-such-route", &Auth::None, None)
        .await;
    assert_eq!(status, 404);
    let (status, roles) = app.get("/api/v1/roles", &owner.auth()).await;
    assert_eq!(status, 200, "{roles}");

    let (status, _, after) = scrape(&app, None).await;
    assert_eq!(status, 200);
    // HTTP layer: counter and histogram count per route template.
    assert_eq!(
        metric_value(&after, "malipo_http_requests_total", &store_route),
        2.0
    );
    assert_eq!(
        metric_value(
            &after,
            "malipo_http_request_duration_seconds_count",
            &store_route
        ),
        2.0
    );
    let not_found = [("route", "/api/v1/stores/{id}"), ("status", "404")];
    assert_eq!(
        metric_value(&after, "malipo_http_requests_total", &not_found),
        1.0
    );
    assert_eq!(
        metric_value(
            &after,
            "malipo_http_requests_total",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        metric_value(
            &after,
            "malipo_http_requests_total",
            &[("method", "other"), ("route", "unmatched")]
        ),
        1.0,
        "{after}"
    );
    assert!(!after.contains("BREW"));
    // Operation layer: REST calls by route template and status.
    let rest_404 = [
        ("channel", "rest"),
        ("route", "/api/v1/stores/{id}"),
        ("status", "404"),
    ];
    assert_eq!(
        metric_value(&after, "malipo_operation_calls_total", &rest_404),
        1.0
    );
    assert_eq!(
        metric_value(&after, "malipo_operation_duration_seconds_count", &rest_404),
        1.0
    );
    // The roles list is the rbac plugin's: its call is timed.
    assert!(
        metric_value(
            &after,
            "malipo_plugin_call_duration_seconds_count",
            &[
                ("plugin", "rbac"),
                ("operation", "roles.list"),
                ("outcome", "ok")
            ]
        ) >= 1.0,
        "{after}"
    );
    assert!(metric_value(&after, "malipo_open_tenant_databases", &[]) >= 1.0);
    assert!(after.contains("# TYPE malipo_outbox_undelivered_events gauge"));

    // No tenant, user or store id, nor a concrete path, in any series.
    for secret in [
        owner.tenant_id.as_str(),
        owner.user_id.as_str(),
        store.as_str(),
        &missing.to_string(),
        "no-such-route",
    ] {
        assert!(!secret.is_empty());
        assert!(!after.contains(secret), "`{secret}` leaked into /metrics");
    }
}

#[tokio::test]
async fn mcp_tool_calls_and_daraja_outcomes_are_counted() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Metered Daraja").await;
    app.configure_mpesa(&owner).await;
    let (status, pushed) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            json!({"phone_number": "254712345678", "amount": 10,
                   "account_reference": "INV-9", "description": "Order 9"}),
        )
        .await;
    assert_eq!(status, 201, "{pushed}");
    let answer = app
        .client
        .post(format!("{}/mcp", app.base))
        .bearer_auth(&owner.access_token)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "mpesa_transaction_history")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "mpesa_transaction_history", "arguments": {},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}}),
        )
        .send()
        .await
        .expect("mcp call");
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["result"]["isError"], false, "{body}");

    let (status, _, text) = scrape(&app, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        metric_value(
            &text,
            "malipo_operation_calls_total",
            &[
                ("channel", "mcp"),
                ("route", "mpesa_transaction_history"),
                ("status", "200")
            ]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "malipo_http_requests_total",
            &[("method", "POST"), ("route", "/mcp")]
        ),
        1.0
    );
    assert!(
        metric_value(
            &text,
            "malipo_outbound_http_requests_total",
            &[
                ("plugin", "mpesa"),
                ("host", "daraja-emulator"),
                ("outcome", "2xx")
            ]
        ) >= 1.0,
        "{text}"
    );
    assert!(!text.contains(&owner.tenant_id));
}

#[tokio::test]
async fn a_token_guards_metrics_when_set() {
    let app =
        TestApp::spawn_with(Options::default().with_env("MALIPO_METRICS_TOKEN", "scrape-me")).await;
    let (status, _, body) = scrape(&app, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("MALIPO_METRICS_TOKEN"), "{body}");
    let (status, _, _) = scrape(&app, Some("not-it")).await;
    assert_eq!(status, 401);
    let (status, _, body) = scrape(&app, Some("scrape-me")).await;
    assert_eq!(status, 200);
    assert!(body.contains("malipo_http_requests_total"), "{body}");
}

#[tokio::test]
async fn metrics_are_served_in_every_mode_and_docs_with_rest() {
    for (mode, docs) in [("mcp", 404), ("rest", 200), ("hybrid", 200)] {
        let app = TestApp::spawn_with(Options::default().with_env("MALIPO_MODE", mode)).await;
        let (status, _, text) = scrape(&app, None).await;
        assert_eq!(status, 200, "{mode}: {text}");
        let status = app
            .client
            .get(format!("{}/docs", app.base))
            .send()
            .await
            .expect("docs")
            .status();
        assert_eq!(status.as_u16(), docs, "{mode}");
    }
}

/// A server listening on every interface (the shared harness listens on
/// loopback only).
struct Exposed {
    base: String,
    child: Child,
    _temp: tempfile::TempDir,
}

impl Drop for Exposed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn_exposed(token: Option<&str>) -> Exposed {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut command = crate::helpers::malipo_command();
    command
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(temp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(token) = token {
        command.env("MALIPO_METRICS_TOKEN", token);
    }
    let mut child = command.spawn().expect("start malipo");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("first line");
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        line
    })
    .await
    .expect("join");
    let port = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit_once(':'))
        .map(|(_, port)| port.to_string())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Exposed {
        base: format!("http://127.0.0.1:{port}"),
        child,
        _temp: temp,
    }
}

#[tokio::test]
async fn beyond_loopback_metrics_need_a_token() {
    let client = reqwest::Client::new();
    let open = spawn_exposed(None).await;
    let (status, _, body) = scrape_at(&client, &open.base, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("MALIPO_METRICS_TOKEN"), "{body}");
    let health = client
        .get(format!("{}/health", open.base))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status().as_u16(), 200, "the rest is unaffected");

    let guarded = spawn_exposed(Some("far-away")).await;
    let (status, _, _) = scrape_at(&client, &guarded.base, None).await;
    assert_eq!(status, 401);
    let (status, _, body) = scrape_at(&client, &guarded.base, Some("far-away")).await;
    assert_eq!(status, 200, "{body}");
}

/// The `src` and `href` attribute values of an HTML page.
fn urls_in(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            if let Some(end) = rest.find('"') {
                urls.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    urls
}

#[tokio::test]
async fn docs_render_the_openapi_document_from_local_assets() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = crate::helpers::header(&response, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.expect("html");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"),
        "an external URL in the page: {html}"
    );
    let urls = urls_in(&html);
    assert!(
        urls.iter().filter(|u| u.ends_with(".js")).count() >= 2,
        "{urls:?}"
    );
    assert!(urls.iter().any(|u| u.ends_with(".css")), "{urls:?}");
    let mut scripts = String::new();
    for url in &urls {
        assert!(
            url.starts_with('/') && !url.starts_with("//"),
            "not a local URL: {url}"
        );
        let response = app
            .client
            .get(format!("{}{url}", app.base))
            .send()
            .await
            .expect("asset");
        assert_eq!(response.status().as_u16(), 200, "{url}");
        let content_type = crate::helpers::header(&response, "content-type").unwrap_or_default();
        let expected = match url.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("png") => "image/png",
            other => panic!("unexpected asset {url} ({other:?})"),
        };
        assert!(content_type.starts_with(expected), "{url}: {content_type}");
        let cache = crate::helpers::header(&response, "cache-control").unwrap_or_default();
        assert!(cache.contains("max-age"), "{url}: {cache}");
        let bytes = response.bytes().await.expect("asset body");
        assert!(!bytes.is_empty(), "{url}");
        if expected == "text/javascript" {
            scripts.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    // The real Swagger UI, started on this server's own document.
    assert!(scripts.contains("SwaggerUIBundle"), "no Swagger UI bundle");
    assert!(
        scripts.contains("url: \"/api/v1/openapi.json\""),
        "the page does not load the local document"
    );
    let (status, document) = app.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0", "{document}");
}

/// `MALIPO_LOG_FORMAT=json`: a line logged while serving a request is one
/// JSON object naming that request, its tenant and its user.
#[tokio::test]
async fn json_logs_name_the_request_tenant_and_user() {
    use std::io::Read;

    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(
        Path::new(crate::helpers::TEST_GUESTS_DIR).join("malipo_test_sandbox.wasm"),
        plugins.join("malipo_test_sandbox.wasm"),
    )
    .expect("copy sandbox plugin");
    let mut child = crate::helpers::malipo_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("MALIPO_LOG_FORMAT", "json")
        .env("MALIPO_PLUGIN_MAX_OUTPUT_BYTES", "65536")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start malipo");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("address line");
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address")
        .to_string();
    let client = reqwest::Client::new();
    let email = format!("logs-{}@example.com", uuid::Uuid::new_v4().simple());
    let registered: Value = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": crate::helpers::PASSWORD, "full_name": "Log Owner", "organization_name": "Logged Ltd"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let token = registered["access_token"].as_str().expect("token");
    let tenant = registered["tenant"]["id"].as_str().expect("tenant");
    let user = registered["user"]["id"].as_str().expect("user");
    // A plugin answer over the output limit is logged as an error inside the request.
    let response = client
        .get(format!("{base}/api/v1/sandbox/big?bytes=100000"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 502);
    let request_id = crate::helpers::header(&response, "x-request-id").expect("request id");
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read logs");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let logged = lines
        .iter()
        .find(|line| line["span"]["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no line for request {request_id}: {stderr}"));
    assert_eq!(logged["level"], "ERROR", "{logged}");
    assert_eq!(logged["span"]["tenant_id"], tenant, "{logged}");
    assert_eq!(logged["span"]["user_id"], user, "{logged}");
}
