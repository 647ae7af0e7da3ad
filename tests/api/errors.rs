//! The error shape `{"error":{"code","message","request_id"}}` and HTTP
//! basics: 404/405, malformed and invalid bodies, body limits, request ids,
//! health, and the OpenAPI document built from the manifests.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, TestApp, code};

/// A raw answer: status, headers, body text.
struct Raw {
    status: u16,
    request_id: Option<String>,
    content_type: Option<String>,
    text: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

/// Sends a request with a raw body (`content-type: application/json` when
/// a body is given) and extra headers.
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Raw {
    let mut request = app.client.request(method, format!("{}{path}", app.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("send");
    let request_id = crate::helpers::header(&response, "x-request-id");
    let content_type = crate::helpers::header(&response, "content-type");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    Raw {
        status,
        request_id,
        content_type,
        text,
    }
}

/// Checks the error shape: exactly `error.{code,message,request_id}`, the
/// code, a non-empty message, and the request id of the `X-Request-ID` header.
fn assert_error(answer: &Raw, status: u16, expected_code: &str) -> Value {
    assert_eq!(answer.status, status, "status; body {:?}", answer.text);
    assert!(
        answer
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("application/json")),
        "content type {:?}",
        answer.content_type
    );
    let body = answer.json();
    let top: Vec<&String> = body.as_object().expect("an object").keys().collect();
    assert_eq!(top, vec!["error"], "{body}");
    let mut keys: Vec<&String> = body["error"]
        .as_object()
        .expect("error object")
        .keys()
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["code", "message", "request_id"], "{body}");
    assert_eq!(code(&body), expected_code, "{body}");
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .is_empty(),
        "empty message: {body}"
    );
    let header = answer.request_id.clone().expect("an X-Request-ID header");
    assert!(!header.is_empty());
    assert_eq!(body["error"]["request_id"], json!(header), "{body}");
    body
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let app = TestApp::spawn().await;
    for path in ["/api/v1/no-such-thing", "/no/such/route", "/api/v2/stores"] {
        let answer = raw(&app, Method::GET, path, None, &[]).await;
        assert_error(&answer, 404, "not_found");
    }
    let answer = raw(&app, Method::POST, "/api/v1/no-such-thing", Some("{}"), &[]).await;
    assert_error(&answer, 404, "not_found");
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_a_json_405() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::DELETE, "/api/v1/auth/login"),
        (Method::PUT, "/api/v1/stores"),
        (Method::GET, "/api/v1/auth/register"),
    ] {
        let answer = raw(&app, method.clone(), path, None, &[]).await;
        assert_error(&answer, 405, "method_not_allowed");
    }
}

#[tokio::test]
async fn malformed_bodies_are_bad_requests() {
    let app = TestApp::spawn().await;
    let login = "/api/v1/auth/login";
    for body in [
        "{not json",
        "{\"email\": \"a@b.example\",",
        "[1, 2, 3]",
        "[{\"email\": \"a@b.example\"}]",
        "\"text\"",
        "42",
    ] {
        let answer = raw(&app, Method::POST, login, Some(body), &[]).await;
        let error = assert_error(&answer, 400, "bad_request");
        if body.starts_with('[') || body.starts_with('"') || body == "42" {
            assert!(
                message(&error).contains("JSON object"),
                "body {body:?}: {error}"
            );
        } else {
            assert!(message(&error).contains("JSON"), "body {body:?}: {error}");
        }
    }
}

#[tokio::test]
async fn invalid_fields_are_validation_failures() {
    let app = TestApp::spawn().await;
    let login = "/api/v1/auth/login";

    let answer = raw(
        &app,
        Method::POST,
        login,
        Some(r#"{"email": "someone@example.com"}"#),
        &[],
    )
    .await;
    let error = assert_error(&answer, 422, "validation_failed");
    assert!(message(&error).contains("password"), "{error}");

    let answer = raw(
        &app,
        Method::POST,
        login,
        Some(r#"{"email": 5, "password": "whatever it is"}"#),
        &[],
    )
    .await;
    let error = assert_error(&answer, 422, "validation_failed");
    assert!(message(&error).contains("email"), "{error}");

    let answer = raw(
        &app,
        Method::POST,
        login,
        Some(r#"{"email": null, "password": "x"}"#),
        &[],
    )
    .await;
    let error = assert_error(&answer, 422, "validation_failed");
    assert!(message(&error).contains("email"), "{error}");

    // An authenticated operation: the same checks.
    let owner = app.register("Errors Validation").await;
    let (status, body) = app.post("/api/v1/stores", &owner.auth(), json!({})).await;
    assert_eq!((status, code(&body)), (422, "validation_failed"), "{body}");
    assert!(message(&body).contains("name"), "{body}");
    let (status, body) = app
        .post(
            "/api/v1/stores",
            &owner.auth(),
            json!({"name": ["not", "a", "string"]}),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "validation_failed"), "{body}");
    assert!(message(&body).contains("name"), "{body}");
    // Nothing was created.
    let (status, stores) = app.get("/api/v1/stores", &owner.auth()).await;
    assert_eq!(status, 200);
    assert_eq!(
        stores["stores"].as_array().map(Vec::len),
        Some(1),
        "{stores}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let limit = 2048;
    let app = TestApp::spawn_with(Options {
        sandbox: false,
        env: vec![("MALIPO_MAX_BODY_BYTES".into(), limit.to_string())],
    })
    .await;
    // Under the limit: served (registering works).
    let owner = app.register("Errors Body Limit").await;

    let big =
        json!({"email": "someone@example.com", "password": "p".repeat(limit * 2)}).to_string();
    assert!(big.len() > limit);
    let answer = raw(&app, Method::POST, "/api/v1/auth/login", Some(&big), &[]).await;
    let error = assert_error(&answer, 413, "payload_too_large");
    assert!(message(&error).contains(&limit.to_string()), "{error}");

    let big_store = json!({"name": "n".repeat(limit * 2)}).to_string();
    let answer = raw(
        &app,
        Method::POST,
        "/api/v1/stores",
        Some(&big_store),
        &[("authorization", &format!("Bearer {}", owner.access_token))],
    )
    .await;
    assert_error(&answer, 413, "payload_too_large");
    let (status, stores) = app.get("/api/v1/stores", &owner.auth()).await;
    assert_eq!(status, 200);
    assert_eq!(
        stores["stores"].as_array().map(Vec::len),
        Some(1),
        "nothing created: {stores}"
    );

    // Just under the limit is read (and answered on its merits).
    let fits =
        json!({"email": "someone@example.com", "password": "p".repeat(limit - 100)}).to_string();
    assert!(fits.len() < limit);
    let answer = raw(&app, Method::POST, "/api/v1/auth/login", Some(&fits), &[]).await;
    assert_error(&answer, 401, "unauthorized");
}

#[tokio::test]
async fn a_sane_request_id_is_echoed_and_an_insane_one_replaced() {
    let app = TestApp::spawn().await;
    for sane in ["test-req-123", "A.b_c-9", &"x".repeat(64)] {
        let answer = raw(
            &app,
            Method::GET,
            "/health",
            None,
            &[("X-Request-ID", sane)],
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.request_id.as_deref(),
            Some(sane),
            "sane id {sane:?} not echoed"
        );
        // Error bodies carry it too.
        let answer = raw(
            &app,
            Method::GET,
            "/api/v1/nowhere",
            None,
            &[("X-Request-ID", sane)],
        )
        .await;
        let error = assert_error(&answer, 404, "not_found");
        assert_eq!(error["error"]["request_id"], json!(sane));
    }
    let long = "a".repeat(200);
    for insane in [
        "has spaces in it",
        long.as_str(),
        &"y".repeat(65),
        "semi;colon",
        "slash/es",
        "",
    ] {
        let answer = raw(
            &app,
            Method::GET,
            "/api/v1/nowhere",
            None,
            &[("X-Request-ID", insane)],
        )
        .await;
        let error = assert_error(&answer, 404, "not_found");
        let fresh = answer.request_id.clone().unwrap_or_default();
        assert_ne!(fresh, insane, "insane id {insane:?} was echoed");
        assert!(
            uuid::Uuid::parse_str(&fresh).is_ok(),
            "a fresh id is a UUID: {fresh:?}"
        );
        assert_eq!(error["error"]["request_id"], json!(fresh));
    }
    // Without one, every response gets its own.
    let first = raw(&app, Method::GET, "/health", None, &[])
        .await
        .request_id
        .expect("id");
    let second = raw(&app, Method::GET, "/health", None, &[])
        .await
        .request_id
        .expect("id");
    assert_ne!(first, second);
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/health", &Auth::None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], json!("ok"), "{body}");
    let (status, body) = app.get("/health/db", &Auth::None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], json!("ok"), "{body}");
    assert_eq!(body["control_db"], json!("ok"), "{body}");
}

fn paths(doc: &Value) -> Vec<String> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_openapi_document_is_built_from_the_manifests() {
    let plain = TestApp::spawn().await;
    let with_sandbox = TestApp::spawn_with(Options {
        sandbox: true,
        env: Vec::new(),
    })
    .await;

    let (status, doc) = plain.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(status, 200, "{doc}");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let listed = paths(&doc);
    for path in ["/api/v1/stores", "/api/v1/roles", "/api/v1/auth/login"] {
        assert!(
            listed.iter().any(|p| p == path),
            "{path} missing from {listed:?}"
        );
    }
    assert!(
        doc["paths"]["/api/v1/stores"]["get"].is_object()
            && doc["paths"]["/api/v1/stores"]["post"].is_object()
    );
    assert_eq!(
        doc["paths"]["/api/v1/roles"]["get"]["operationId"],
        json!("roles.list")
    );
    assert!(
        !listed.iter().any(|p| p.starts_with("/api/v1/sandbox")),
        "sandbox listed without the plugin: {listed:?}"
    );
    // And not served either.
    let (status, body) = plain.get("/api/v1/sandbox/items", &Auth::None).await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");

    let (status, doc) = with_sandbox.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(status, 200);
    let listed = paths(&doc);
    for path in [
        "/api/v1/stores",
        "/api/v1/roles",
        "/api/v1/sandbox/items",
        "/api/v1/sandbox/noop",
    ] {
        assert!(
            listed.iter().any(|p| p == path),
            "{path} missing from {listed:?}"
        );
    }
    let items = &doc["paths"]["/api/v1/sandbox/items"];
    assert_eq!(
        items["post"]["operationId"],
        json!("sandbox.items.create"),
        "{items}"
    );
    assert_eq!(
        items["get"]["operationId"],
        json!("sandbox.items.list"),
        "{items}"
    );
    assert_eq!(
        items["post"]["x-permission"],
        json!("sandbox.run"),
        "{items}"
    );
    assert!(items["post"]["responses"]["201"].is_object(), "{items}");
}

#[tokio::test]
async fn missing_or_bad_credentials_are_unauthorized() {
    let app = TestApp::spawn().await;
    let answer = raw(&app, Method::GET, "/api/v1/stores", None, &[]).await;
    assert_error(&answer, 401, "unauthorized");
    let answer = raw(
        &app,
        Method::GET,
        "/api/v1/stores",
        None,
        &[("authorization", "Bearer not-a-token")],
    )
    .await;
    assert_error(&answer, 401, "unauthorized");
    let answer = raw(
        &app,
        Method::GET,
        "/api/v1/stores",
        None,
        &[("x-api-key", "mlp_nonsense")],
    )
    .await;
    assert_error(&answer, 401, "unauthorized");
    let answer = raw(&app, Method::GET, "/api/v1/me", None, &[]).await;
    assert_error(&answer, 401, "unauthorized");
    // A plugin route too.
    let answer = raw(&app, Method::GET, "/api/v1/roles", None, &[]).await;
    assert_error(&answer, 401, "unauthorized");
    // With a valid token it is served.
    let owner = app.register("Errors Auth").await;
    let (status, body) = app.get("/api/v1/stores", &owner.auth()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn public_auth_routes_are_rate_limited_per_address() {
    let app = TestApp::spawn_with(Options {
        env: vec![("MALIPO_AUTH_RATE_PER_MINUTE".into(), "3".into())],
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        let (status, _) = app.login("nobody@example.com", "whatever password").await;
        assert_eq!(status, 401);
    }
    let response = app
        .client
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&serde_json::json!({"email": "nobody@example.com", "password": "whatever password"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After header");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Authenticated routes are not counted against the public bucket.
    let (status, _) = app.get("/health", &Auth::None).await;
    assert_eq!(status, 200);
}
