//! Test support: shared RSA identity, emulator start-up, a real callback receiver and a small
//! Daraja client over reqwest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use daraja_sim::{Config, Identity, Running};
use serde_json::{Value, json};

pub const PASSKEY: &str = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";
pub const PHONE: &str = "254712345678";

/// One RSA key for the whole test binary (key generation is slow in debug builds).
pub fn identity() -> Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::generate().expect("generate identity"))
        .clone()
}

/// Starts an emulator with the shared identity and `edit` applied to the default config.
pub async fn sim(edit: impl FnOnce(&mut Config)) -> Running {
    let mut cfg = Config {
        identity: Some(identity()),
        ..Config::default()
    };
    edit(&mut cfg);
    daraja_sim::start(cfg).await.expect("start emulator")
}

/// Emulator whose callbacks wait a minute unless flushed (for pending-state tests).
pub async fn slow_sim() -> Running {
    sim(|c| c.callback_delay = Duration::from_secs(60)).await
}

/// A request received by the callback receiver.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub headers: HeaderMap,
    pub raw: String,
    pub json: Value,
}

#[derive(Clone, Default)]
struct ReceiverState {
    hits: Arc<Mutex<Vec<Hit>>>,
    replies: Arc<Mutex<HashMap<String, (u16, String)>>>,
}

/// A real HTTP server receiving callbacks.
pub struct Receiver {
    pub base_url: String,
    state: ReceiverState,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = ReceiverState::default();
        let app = Router::new().fallback(receive).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver serve");
        });
        Receiver {
            base_url: format!("http://127.0.0.1:{}", addr.port()),
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Answer requests to `path` with this status and body (default 200 `{"ResultCode":0,...}`).
    pub fn reply(&self, path: &str, status: u16, body: &str) {
        self.state
            .replies
            .lock()
            .expect("lock")
            .insert(path.to_owned(), (status, body.to_owned()));
    }

    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.state
            .hits
            .lock()
            .expect("lock")
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    /// Polls (bounded: 400 × 25 ms) until `path` received at least `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Hit> {
        for _ in 0..400 {
            let hits = self.hits(path);
            if hits.len() >= n {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "expected {n} callback(s) on {path}, got {:?}",
            self.hits(path)
        );
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let json = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    state.hits.lock().expect("lock").push(Hit {
        path: path.clone(),
        headers,
        raw,
        json,
    });
    let reply = state.replies.lock().expect("lock").get(&path).cloned();
    match reply {
        Some((status, body)) => (StatusCode::from_u16(status).expect("status"), body),
        None => (
            StatusCode::OK,
            r#"{"ResultCode":0,"ResultDesc":"Accepted"}"#.to_owned(),
        ),
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Fetches a token with HTTP Basic `key:secret`.
pub async fn token(base: &str, key: &str, secret: &str) -> String {
    let resp = http()
        .get(format!(
            "{base}/oauth/v1/generate?grant_type=client_credentials"
        ))
        .basic_auth(key, Some(secret))
        .send()
        .await
        .expect("oauth");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("oauth json");
    v["access_token"].as_str().expect("access_token").to_owned()
}

/// Minimal Daraja client used by the tests.
pub struct Client {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl Client {
    pub async fn new(sim: &Running) -> Client {
        let base = sim.base_url().to_owned();
        let token = token(&base, "test-key", "test-secret").await;
        Client {
            base,
            token,
            http: http(),
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, &body.to_string(), "application/json")
            .await
    }

    pub async fn post_raw(&self, path: &str, body: &str, content_type: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Content-Type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("post");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("control");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn flush(&self) -> Value {
        self.control(reqwest::Method::POST, "/simulator/callbacks/flush", None)
            .await
            .1
    }

    pub async fn faults(&self, body: Value) -> Value {
        let (status, v) = self
            .control(reqwest::Method::PUT, "/simulator/faults", Some(body))
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }
}

/// `Timestamp` as Daraja clients build it.
pub fn timestamp() -> String {
    daraja_sim::timestamp_now()
}

pub fn password(shortcode: &str, passkey: &str, ts: &str) -> String {
    STANDARD.encode(format!("{shortcode}{passkey}{ts}"))
}

/// A valid STK push body for shortcode 174379.
pub fn stk_body(phone: &str, amount: Value, callback: &str) -> Value {
    let ts = timestamp();
    json!({
        "BusinessShortCode": 174379,
        "Password": password("174379", PASSKEY, &ts),
        "Timestamp": ts,
        "TransactionType": "CustomerPayBillOnline",
        "Amount": amount,
        "PartyA": phone,
        "PartyB": "174379",
        "PhoneNumber": phone,
        "CallBackURL": callback,
        "AccountReference": "INV-001",
        "TransactionDesc": "Payment"
    })
}

pub fn stk_query_body(checkout: &str) -> Value {
    let ts = timestamp();
    json!({
        "BusinessShortCode": "174379",
        "Password": password("174379", PASSKEY, &ts),
        "Timestamp": ts,
        "CheckoutRequestID": checkout
    })
}

/// Pushes and returns the CheckoutRequestID.
pub async fn push(c: &Client, phone: &str, amount: u64, callback: &str) -> String {
    let (status, v) = c
        .post(
            "/mpesa/stkpush/v1/processrequest",
            &stk_body(phone, json!(amount), callback),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v["CheckoutRequestID"]
        .as_str()
        .expect("CheckoutRequestID")
        .to_owned()
}

/// Encrypts `password` with the certificate published at `/simulator/certificate`, using the
/// `rsa` and `x509-cert` crates directly (PKCS#1 v1.5, base64) as a Daraja client would.
pub async fn credential(sim: &Running, password: &str) -> String {
    use rsa::pkcs8::DecodePublicKey;
    use x509_cert::der::{DecodePem, Encode};
    let pem = http()
        .get(format!("{}/simulator/certificate", sim.base_url()))
        .send()
        .await
        .expect("cert")
        .text()
        .await
        .expect("cert body");
    assert_eq!(pem, sim.certificate_pem());
    let cert = x509_cert::Certificate::from_pem(pem.as_bytes()).expect("parse cert");
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .expect("spki der");
    let key = rsa::RsaPublicKey::from_public_key_der(&spki).expect("rsa key");
    let ct = key
        .encrypt(
            &mut rand::thread_rng(),
            rsa::Pkcs1v15Encrypt,
            password.as_bytes(),
        )
        .expect("encrypt");
    STANDARD.encode(ct)
}

/// Item `name` of an STK callback's CallbackMetadata.
pub fn item<'a>(cb: &'a Value, name: &str) -> &'a Value {
    cb["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["Name"] == name)
        .map(|i| &i["Value"])
        .unwrap_or(&Value::Null)
}

/// Result parameter `key` of a Result envelope.
pub fn param<'a>(result: &'a Value, key: &str) -> &'a Value {
    result["Result"]["ResultParameters"]["ResultParameter"]
        .as_array()
        .expect("params")
        .iter()
        .find(|i| i["Key"] == key)
        .map(|i| &i["Value"])
        .unwrap_or(&Value::Null)
}

pub fn is_receipt(s: &str) -> bool {
    s.len() == 10
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}
