//! Custom domains need proof of control before they route logins or
//! public tenant lookups: the HTTP challenge. Here every challenge fetch
//! connects to a small server of the test's (`MALIPO_DOMAIN_CHALLENGE_ADDR`),
//! which answers per `Host` what the test says the domain serves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Auth, Options, TestApp, code};

pub(crate) type Served = Arc<Mutex<HashMap<String, String>>>;

/// Answers `GET /.well-known/malipo-domain-verification` with the body the
/// test set for the request's `Host`, or 404.
pub(crate) async fn challenge_server() -> (String, Served) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let served: Served = Arc::default();
    let answers = Arc::clone(&served);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answers = Arc::clone(&answers);
            tokio::spawn(async move {
                let mut buffer = vec![0_u8; 4096];
                let n = socket.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..n]).to_string();
                let host = request
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("host: ")
                            .or_else(|| l.strip_prefix("Host: "))
                    })
                    .map(|h| h.trim().to_lowercase())
                    .unwrap_or_default();
                let right_path =
                    request.starts_with("GET /.well-known/malipo-domain-verification ");
                let body = answers.lock().ok().and_then(|a| a.get(&host).cloned());
                let response = match (right_path, body) {
                    (true, Some(body)) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .into(),
                };
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, served)
}

async fn on_host(
    app: &TestApp,
    method: Method,
    path: &str,
    host: &str,
    body: Option<Value>,
) -> (u16, Value) {
    app.call_with(method, path, &Auth::None, body, &[("Host", host)])
        .await
}

#[tokio::test]
async fn an_unverified_domain_routes_nothing_until_its_challenge_answers() {
    let (addr, served) = challenge_server().await;
    let app =
        TestApp::spawn_with(Options::default().with_env("MALIPO_DOMAIN_CHALLENGE_ADDR", &addr))
            .await;
    let alpha = app.register("Alpha Proof").await;
    let mallory = app.register("Mallory Proof").await;

    // Mallory claims a name it does not control.
    let (status, claim) = app
        .call(
            Method::PUT,
            "/api/v1/tenant/domain",
            &mallory.auth(),
            Some(json!({"hostname": "pay.alpha-proof.test"})),
        )
        .await;
    assert_eq!(status, 200, "{claim}");
    assert_eq!(claim["verified"], false, "{claim}");
    let token = claim["verification"]["token"]
        .as_str()
        .expect("a token to publish")
        .to_string();
    assert_eq!(
        claim["verification"]["url"],
        "http://pay.alpha-proof.test/.well-known/malipo-domain-verification"
    );

    // Unverified: no public page, and a login there is not bound to Mallory.
    let (status, body) = on_host(
        &app,
        Method::GET,
        "/api/v1/public/tenant",
        "pay.alpha-proof.test",
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (404, "unknown_host"), "{body}");
    let (status, login) = on_host(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        "pay.alpha-proof.test",
        Some(json!({"email": alpha.email, "password": crate::helpers::PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["tenant"]["id"], json!(alpha.tenant_id), "{login}");

    // Verifying without serving the token (or serving another) fails.
    let mallory_auth = mallory.auth();
    let verify = || app.post("/api/v1/tenant/domain/verify", &mallory_auth, json!({}));
    let (status, body) = verify().await;
    assert_eq!((status, code(&body)), (422, "domain_unverified"), "{body}");
    served
        .lock()
        .expect("lock")
        .insert("pay.alpha-proof.test".into(), "something else".into());
    let (status, body) = verify().await;
    assert_eq!((status, code(&body)), (422, "domain_unverified"), "{body}");
    assert!(
        !body.to_string().contains("something else"),
        "never echoes: {body}"
    );

    // Serving the token proves control: now the name routes.
    served
        .lock()
        .expect("lock")
        .insert("pay.alpha-proof.test".into(), format!("{token}\n"));
    let (status, body) = verify().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verified"], true, "{body}");
    let (status, face) = on_host(
        &app,
        Method::GET,
        "/api/v1/public/tenant",
        "pay.alpha-proof.test",
        None,
    )
    .await;
    assert_eq!(status, 200, "{face}");
    assert_eq!(face["tenant"]["id"], json!(mallory.tenant_id), "{face}");
    let (status, body) = on_host(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        "pay.alpha-proof.test",
        Some(json!({"email": alpha.email, "password": crate::helpers::PASSWORD})),
    )
    .await;
    assert_eq!(
        status, 403,
        "a verified name binds its organization: {body}"
    );
}
