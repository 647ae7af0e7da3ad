//! Recording of every inbound Daraja request (with its answer) and every outbound callback,
//! exposed through `GET /simulator/requests`, `GET /simulator/callbacks` and the library handle.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::ids;
use crate::state::Shared;

const BODY_LIMIT: usize = 4 * 1024 * 1024;
const HEADERS_OF_INTEREST: &[&str] = &[
    "authorization",
    "content-type",
    "accept",
    "user-agent",
    "businessshortcode",
];

/// One inbound request and the emulator's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Sequence number shared by requests and callbacks (gives the global order).
    pub seq: u64,
    /// When it was received (RFC 3339, UTC).
    pub at: String,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers of interest (lowercase names): authorization, content-type, accept, user-agent.
    pub headers: BTreeMap<String, String>,
    /// Body parsed as JSON (`None` when empty or not JSON).
    pub body: Option<serde_json::Value>,
    /// Body as received (lossy UTF-8).
    pub raw_body: String,
    /// HTTP status of the answer.
    pub status: u16,
    /// Answer parsed as JSON (`None` when not JSON).
    pub response: Option<serde_json::Value>,
}

/// Kind of an outbound callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    /// STK push result to CallBackURL.
    Stk,
    /// Result envelope to ResultURL (B2C, status, balance, reversal).
    Result,
    /// Modelled notification to QueueTimeOutURL.
    QueueTimeout,
    /// C2B validation request to ValidationURL.
    C2bValidation,
    /// C2B confirmation to ConfirmationURL.
    C2bConfirmation,
}

/// Delivery outcome of a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The receiver answered (any HTTP status; see `http_status`). Never retried.
    Delivered,
    /// Connection or timeout error. Never retried.
    Failed,
    /// Not sent because of the `no_callback` fault.
    Suppressed,
}

/// One outbound callback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallbackRecord {
    /// Sequence number shared with requests.
    pub seq: u64,
    /// When the POST was attempted (RFC 3339, UTC).
    pub at: String,
    /// What kind of callback.
    pub kind: CallbackKind,
    /// Target URL.
    pub url: String,
    /// CheckoutRequestID, ConversationID or C2B TransID it belongs to.
    pub transaction: String,
    /// Value of the `BusinessShortCode` header sent.
    pub business_short_code: String,
    /// Body parsed as JSON.
    pub body: serde_json::Value,
    /// Exact body bytes sent.
    pub raw_body: String,
    /// 1 normally, 2 for the copy sent by the `duplicate_callback` fault.
    pub attempt: u32,
    /// Delivery outcome.
    pub delivery: DeliveryStatus,
    /// Receiver's HTTP status, if delivered.
    pub http_status: Option<u16>,
    /// Receiver's answer body, if delivered.
    pub response_body: Option<String>,
    /// Error text, if failed.
    pub error: Option<String>,
}

/// Middleware recording the request and the response around a Daraja handler.
pub(crate) async fn record(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let at = ids::rfc3339_utc(ids::now());
    let seq = shared.next_seq();
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| HEADERS_OF_INTEREST.contains(&name.as_str()))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let raw_body = String::from_utf8_lossy(&bytes).into_owned();
    let body_json = serde_json::from_slice(&bytes).ok();

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;

    let (rparts, rbody) = response.into_parts();
    let rbytes = to_bytes(rbody, BODY_LIMIT).await.unwrap_or_default();
    let rec = RequestRecord {
        seq,
        at,
        method,
        path,
        query,
        headers,
        body: body_json,
        raw_body,
        status: rparts.status.as_u16(),
        response: serde_json::from_slice(&rbytes).ok(),
    };
    shared.push_request(rec);
    Response::from_parts(rparts, Body::from(rbytes))
}
