//! OAuth token endpoint and bearer-token checks.

use daraja_sim::Running;
use serde_json::{Value, json};

use crate::common::{Client, PHONE, http, sim, stk_body, token};

async fn oauth(sim: &Running, query: &str, auth: Option<&str>) -> (u16, Value) {
    let mut req = http().get(format!("{}/oauth/v1/generate{query}", sim.base_url()));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.expect("oauth");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

#[tokio::test]
async fn token_happy_path_has_string_expires_in() {
    let sim = sim(|_| {}).await;
    // base64("key:secret")
    let (status, v) = oauth(
        &sim,
        "?grant_type=client_credentials",
        Some("Basic a2V5OnNlY3JldA=="),
    )
    .await;
    assert_eq!(status, 200);
    let token = v["access_token"].as_str().expect("token");
    assert_eq!(token.len(), 28);
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        v["expires_in"],
        json!("3599"),
        "expires_in must be the string \"3599\""
    );
}

#[tokio::test]
async fn token_errors() {
    let sim = sim(|_| {}).await;
    let basic = Some("Basic a2V5OnNlY3JldA==");
    for query in ["?grant_type=password", "", "?grant_type="] {
        let (status, v) = oauth(&sim, query, basic).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(v["errorCode"], "400.008.02");
        assert_eq!(v["errorMessage"], "Invalid grant type passed");
        assert!(v["requestId"].as_str().is_some_and(|r| !r.is_empty()));
    }
    let q = "?grant_type=client_credentials";
    for auth in [None, Some("Bearer abc"), Some("Digest x")] {
        let (status, v) = oauth(&sim, q, auth).await;
        assert_eq!(status, 400);
        assert_eq!(v["errorCode"], "400.008.01");
        assert_eq!(v["errorMessage"], "Invalid authentication type passed");
    }
    for auth in ["Basic !!!not-base64!!!", "Basic Zm9v", "Basic Om5vLWtleQ=="] {
        let (status, v) = oauth(&sim, q, Some(auth)).await;
        assert_eq!(status, 400, "{auth}");
        assert_eq!(v["errorCode"], "400.008.01");
        assert_eq!(v["errorMessage"], "Invalid Authentication passed");
    }
}

#[tokio::test]
async fn strict_mode_checks_configured_apps() {
    let sim = sim(|c| {
        c.strict = true;
        c.apps.insert("tenant-a".to_owned(), "s3cret".to_owned());
    })
    .await;
    let q = "?grant_type=client_credentials";
    // tenant-a:wrong
    let (status, v) = oauth(&sim, q, Some("Basic dGVuYW50LWE6d3Jvbmc=")).await;
    assert_eq!((status, v["errorCode"].as_str()), (400, Some("400.008.01")));
    // tenant-a:s3cret
    let (status, _) = oauth(&sim, q, Some("Basic dGVuYW50LWE6czNjcmV0")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn invalid_tokens_per_endpoint_family() {
    let sim = sim(|_| {}).await;
    let mut c = Client::new(&sim).await;
    c.token = "NotARealToken000000000000000".to_owned();
    let stk = stk_body(PHONE, json!(10), "https://example.com/cb");
    let (status, v) = c.post("/mpesa/stkpush/v1/processrequest", &stk).await;
    assert_eq!((status, v["errorCode"].as_str()), (404, Some("404.001.03")));
    assert_eq!(v["errorMessage"], "Invalid Access Token");

    let (status, v) = c.post("/mpesa/b2c/v1/paymentrequest", &json!({})).await;
    assert_eq!((status, v["errorCode"].as_str()), (401, Some("401.002.01")));
    assert_eq!(
        v["errorMessage"],
        "Error Occurred - Invalid Access Token - NotARealToken000000000000000"
    );

    let (status, v) = c.post("/mpesa/accountbalance/v1/query", &json!({})).await;
    assert_eq!((status, v["errorCode"].as_str()), (401, Some("401.002.01")));
    for path in [
        "/mpesa/c2b/v2/registerurl",
        "/mpesa/reversal/v1/request",
        "/mpesa/stkpushquery/v1/query",
    ] {
        let (status, v) = c.post(path, &json!({})).await;
        assert_eq!(
            (status, v["errorCode"].as_str()),
            (404, Some("404.001.03")),
            "{path}"
        );
    }

    // No Authorization header at all.
    let resp = http()
        .post(format!(
            "{}/mpesa/stkpush/v1/processrequest",
            sim.base_url()
        ))
        .json(&stk)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["errorCode"], "404.001.04");

    // Token validation happens before payload parsing.
    let good = token(sim.base_url(), "k", "s").await;
    assert_eq!(good.len(), 28);
}

#[tokio::test]
async fn unknown_path_and_wrong_method() {
    let sim = sim(|_| {}).await;
    let resp = http()
        .get(format!(
            "{}/mpesa/stkpush/v1/processrequest",
            sim.base_url()
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 405);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["errorCode"], "405.001");
    let resp = http()
        .post(format!("{}/mpesa/nothing/v1/here", sim.base_url()))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["errorCode"], "404.001.01");
}
