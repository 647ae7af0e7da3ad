//! Issue 12 §4: no server-side request forgery. A listener on loopback
//! records every connection; a tenant's custom Daraja `base_url` spelling
//! loopback in many ways is refused at `PUT /mpesa/credentials` with a 4xx
//! naming `MALIPO_OUTBOUND_ALLOW` (nothing echoed of any connection
//! attempt) and the listener sees nothing; a webhook on loopback gets no
//! delivery; a redirect from a host the operator allows to loopback is not
//! followed. The built-in emulator stays allowed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{Options, Session, TestApp};
use crate::mpesa;

/// A loopback listener counting the connections it accepts; it answers
/// each with `answer` (raw HTTP) when given one.
struct Listener {
    port: u16,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Listener {
    fn start(answer: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (Arc::clone(&hits), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        if let Some(answer) = &answer {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                            let mut buffer = [0u8; 4096];
                            let _ = stream.read(&mut buffer);
                            let _ = stream.write_all(answer.as_bytes());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { port, hits, stop }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn put_credentials(
    app: &TestApp,
    owner: &Session,
    base_url: &str,
) -> (u16, serde_json::Value) {
    mpesa::put_credentials(app, owner, mpesa::custom_credentials(base_url)).await
}

#[tokio::test]
async fn a_custom_daraja_url_on_loopback_is_refused_in_every_spelling_and_reaches_nothing() {
    let target = Listener::start(None);
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Forgery Ltd").await;
    let p = target.port;
    let spellings = [
        format!("http://127.0.0.1:{p}"),
        format!("http://127.1:{p}"),
        format!("http://0x7f000001:{p}"),
        format!("http://2130706433:{p}"),
        format!("http://0177.0.0.1:{p}"),
        format!("http://[::1]:{p}"),
        format!("http://[::ffff:127.0.0.1]:{p}"),
        format!("http://localhost:{p}"),
        format!("http://0.0.0.0:{p}"),
        format!("http://10.0.0.1:{p}"),
        format!("http://169.254.169.254:{p}"),
    ];
    for url in &spellings {
        let (status, body) = put_credentials(&app, &owner, url).await;
        assert!(
            (400..500).contains(&status),
            "{url} must be refused with a 4xx: {status} {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("MALIPO_OUTBOUND_ALLOW"),
            "{url}: the refusal names the operator's allow-list: {body}"
        );
        for echo in [
            "Connection refused",
            "connection",
            "os error",
            "timed out",
            "certificate of http",
        ] {
            assert!(!message.contains(echo), "{url}: echoes `{echo}`: {body}");
        }
    }
    for url in [
        format!("http://evil@127.0.0.1:{p}"),
        format!("http://evil.example\\@127.0.0.1:{p}"),
    ] {
        let (status, body) = put_credentials(&app, &owner, &url).await;
        assert!((400..500).contains(&status), "{url}: {status} {body}");
    }
    // Refused URLs are not stored, so no later job can use them: what
    // reached nothing while the request ran reaches nothing afterwards.
    let (status, stored) = app.get("/api/v1/mpesa/credentials", &owner.auth()).await;
    assert_eq!(status, 200, "{stored}");
    assert_ne!(
        stored["configured"], true,
        "a refused URL was stored: {stored}"
    );
    assert_eq!(
        target.hits(),
        0,
        "a refused URL reached the loopback listener"
    );

    // The built-in emulator stays allowed.
    let emulator = app.emulator.clone().expect("emulator url");
    let (status, body) = put_credentials(&app, &owner, &emulator).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_operator_may_allow_a_loopback_daraja() {
    let target = Listener::start(Some(
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    ));
    let listed = format!("127.0.0.1:{}", target.port);
    let app =
        TestApp::spawn_with(Options::default().with_env("MALIPO_OUTBOUND_ALLOW", &listed)).await;
    let owner = app.register("Listed Ltd").await;
    let (status, body) = put_credentials(&app, &owner, &format!("http://{listed}")).await;
    // Allowed by the policy: the host then fetches the certificate (and
    // the listener, which is no Daraja, answers nothing useful).
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        !message.contains("MALIPO_OUTBOUND_ALLOW"),
        "a listed host is not refused by the policy: {status} {body}"
    );
    assert!(target.hits() >= 1, "the listed host was reached");
}

#[tokio::test]
async fn webhooks_to_loopback_and_redirects_to_loopback_reach_nothing() {
    let target = Listener::start(None);
    let p = target.port;
    let redirect = Listener::start(Some(format!(
        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{p}/hook\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )));
    let allowed = format!("127.0.0.1:{}", redirect.port);
    let app = TestApp::spawn_with(
        Options::daraja_sim()
            .with_env("MALIPO_JOB_INTERVAL_SECS", "1")
            .with_env("MALIPO_EVENT_INTERVAL_MS", "200")
            .with_env("MALIPO_OUTBOUND_ALLOW", &allowed),
    )
    .await;
    let owner = app.register("Hooked Ltd").await;
    app.configure_mpesa(&owner).await;
    let mut accepted = Vec::new();
    for url in [
        format!("http://127.0.0.1:{p}/hook"),
        format!("http://127.1:{p}/hook"),
        format!("http://2130706433:{p}/hook"),
        format!("http://localhost:{p}/hook"),
        format!("http://[::ffff:127.0.0.1]:{p}/hook"),
        format!("http://{allowed}/hook"),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/webhooks",
                &owner.auth(),
                json!({"url": url, "events": ["payment.completed"]}),
            )
            .await;
        // Refused at once, or accepted and never delivered: either way
        // nothing may reach the listener.
        assert!(
            status == 201 || (400..500).contains(&status),
            "{url}: {status} {body}"
        );
        if status == 201 {
            accepted.push(body["id"].as_str().expect("endpoint id").to_string());
        }
    }
    mpesa::pay(&app, &owner, 10).await;
    for _ in 0..100 {
        if redirect.hits() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(redirect.hits() > 0, "the allowed host got its delivery");
    // Every accepted endpoint's first attempt is over (a followed redirect
    // would have connected within it): then the loopback target is checked.
    for id in &accepted {
        let mut attempts = 0;
        for _ in 0..200 {
            let (_, log) = app
                .get(&format!("/api/v1/webhooks/{id}/deliveries"), &owner.auth())
                .await;
            attempts = log["deliveries"][0]["attempts"].as_i64().unwrap_or(0);
            if attempts >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(attempts >= 1, "endpoint {id} was never attempted");
    }
    assert_eq!(target.hits(), 0, "a webhook or a redirect reached loopback");
}
