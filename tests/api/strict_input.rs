//! Issue 12 §6: bad input is refused, not ignored. An unknown field (a
//! typo) on a money call and a value outside a declared enum answer 422
//! naming the field; a date out of range answers 422 instead of dropping
//! the connection; `X-Forwarded-For` counts only from a trusted proxy
//! (`MALIPO_TRUSTED_PROXIES`).

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Auth, Options, TestApp, code};

#[tokio::test]
async fn a_typo_on_a_money_call_is_refused_naming_the_field() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Typo Ltd").await;
    app.configure_mpesa(&owner).await;
    let (status, body) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            json!({"phone_number": "254712345678", "amount": 10, "acount_reference": "ORDER9"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(&body), "validation_failed", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`acount_reference`"), "{body}");
    // Nothing went out.
    let (_, listed) = app.get("/api/v1/mpesa/transactions", &owner.auth()).await;
    assert_eq!(
        listed["transactions"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    // The same body without the typo, with the Idempotency-Key header and
    // a path parameter elsewhere, still works.
    let (status, body) = app
        .call_with(
            Method::POST,
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            Some(json!({"phone_number": "254712345678", "amount": 10, "account_reference": "ORDER9"})),
            &[("Idempotency-Key", "strict-1")],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["transaction"]["id"].as_str().expect("id").to_string();
    let (status, body) = app
        .get(&format!("/api/v1/mpesa/transactions/{id}"), &owner.auth())
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_webhook_for_an_event_that_does_not_exist_is_refused() {
    let app = TestApp::spawn().await;
    let owner = app.register("Enum Ltd").await;
    let (status, body) = app
        .post(
            "/api/v1/webhooks",
            &owner.auth(),
            json!({"url": "https://example.com/hook", "events": ["payment.complete"]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`events[0]`"), "{body}");
    let (_, listed) = app.get("/api/v1/webhooks", &owner.auth()).await;
    assert_eq!(
        listed["webhooks"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );

    // Unknown fields on host operations too.
    let (status, body) = app
        .post(
            "/api/v1/stores",
            &owner.auth(),
            json!({"name": "Second", "nmae": "typo"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`nmae`")),
        "{body}"
    );
}

#[tokio::test]
async fn dates_out_of_range_are_refused_not_a_dropped_connection() {
    let app = TestApp::spawn().await;
    let owner = app.register("Dates Ltd").await;
    for query in [
        "to=9999-12-31",
        "from=9999-12-31",
        "to=9999-12-31T23:59:59Z",
        "from=0001-01-01",
    ] {
        let (status, body) = app
            .get(&format!("/api/v1/audit?{query}"), &owner.auth())
            .await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(code(&body), "validation_failed", "{query}: {body}");
    }
    let (status, body) = app
        .get("/api/v1/audit?from=2026-01-01&to=2026-12-31", &owner.auth())
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn login_from(app: &TestApp, forwarded_for: &str) -> u16 {
    app.call_with(
        Method::POST,
        "/api/v1/auth/login",
        &Auth::None,
        Some(json!({"email": "nobody@example.com", "password": "wrong password here"})),
        &[("X-Forwarded-For", forwarded_for)],
    )
    .await
    .0
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    // Trusted: each client behind the proxy has its own budget.
    let app = TestApp::spawn_with(
        Options::default()
            .with_env("MALIPO_AUTH_RATE_PER_MINUTE", "3")
            .with_env("MALIPO_TRUSTED_PROXIES", "127.0.0.1/32, ::1"),
    )
    .await;
    let mut last = 0;
    for _ in 0..5 {
        last = login_from(&app, "203.0.113.7").await;
    }
    assert_eq!(last, 429, "one client behind the proxy is throttled");
    assert_eq!(
        login_from(&app, "203.0.113.8").await,
        401,
        "another client behind the same proxy is not"
    );
    drop(app);

    // Not trusted: the header is ignored; a client cannot pick a new
    // address for every attempt.
    let app =
        TestApp::spawn_with(Options::default().with_env("MALIPO_AUTH_RATE_PER_MINUTE", "3")).await;
    let mut statuses = Vec::new();
    for n in 0..5 {
        statuses.push(login_from(&app, &format!("198.51.100.{n}")).await);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn an_injected_tenant_id_is_refused_not_ignored() {
    let app = TestApp::spawn().await;
    let alpha = app.register("Alpha Inject").await;
    let beta = app.register("Beta Inject").await;
    let (status, body) = app
        .post(
            "/api/v1/stores",
            &alpha.auth(),
            json!({"name": "Injected", "tenant_id": beta.tenant_id}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`tenant_id`")),
        "{body}"
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/v1/tenant",
            &alpha.auth(),
            Some(json!({"name": "Renamed", "tenant_id": beta.tenant_id})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    for who in [&alpha, &beta] {
        let (_, stores) = app.get("/api/v1/stores", &who.auth()).await;
        assert!(!stores.to_string().contains("Injected"), "{stores}");
    }
}
