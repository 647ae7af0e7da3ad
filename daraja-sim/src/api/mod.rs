//! HTTP surface: the Daraja endpoints (recorded) and the `/simulator/*` control API.

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::records;
use crate::state::Shared;

pub(crate) mod c2b;
pub(crate) mod control;
pub(crate) mod initiator;
pub(crate) mod oauth;
pub(crate) mod stk;

/// Builds the full router (Daraja API + control API).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/v1/generate", get(oauth::generate))
        .route("/mpesa/stkpush/v1/processrequest", post(stk::push))
        .route("/mpesa/stkpushquery/v1/query", post(stk::query))
        .route("/mpesa/b2c/v1/paymentrequest", post(initiator::b2c_v1))
        .route("/mpesa/b2c/v3/paymentrequest", post(initiator::b2c_v3))
        .route(
            "/mpesa/transactionstatus/v1/query",
            post(initiator::transaction_status),
        )
        .route(
            "/mpesa/accountbalance/v1/query",
            post(initiator::account_balance),
        )
        .route("/mpesa/reversal/v1/request", post(initiator::reversal))
        .route("/mpesa/c2b/v1/registerurl", post(c2b::register_v1))
        .route("/mpesa/c2b/v2/registerurl", post(c2b::register_v2))
        .route("/mpesa/c2b/v1/simulate", post(c2b::simulate_v1))
        .route("/mpesa/c2b/v2/simulate", post(c2b::simulate_v2))
        .route_layer(from_fn_with_state(Arc::clone(&shared), apply_faults))
        .route_layer(from_fn_with_state(Arc::clone(&shared), records::record))
        .merge(control::routes())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(shared)
}

/// The faults that act on every Daraja request (recorded like any answer):
/// `http_500_burst` and `quota_violation` answer before the request is
/// processed; `response_delay_ms` holds the answer after it was processed.
async fn apply_faults(
    axum::extract::State(s): axum::extract::State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (burst, quota, delay) = {
        let mut inner = s.lock();
        let burst = inner.burst_left > 0;
        if burst {
            inner.burst_left -= 1;
        }
        (
            burst,
            inner.faults.quota_violation,
            inner.faults.response_delay_ms,
        )
    };
    if burst {
        return ApiError::server("Internal Server Error").into_response();
    }
    if quota {
        return ApiError::new("500.003.03", "Error Occurred: Quota Violation").into_response();
    }
    let response = next.run(req).await;
    if let Some(ms) = delay {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    response
}

async fn method_not_allowed(method: axum::http::Method) -> Response {
    ApiError::new("405.001", format!("{method} Method Not Allowed")).into_response()
}

async fn not_found() -> Response {
    ApiError::new("404.001.01", "Resource not found").into_response()
}

/// Reads the request body as a JSON object.
///
/// A body sent with a non-JSON Content-Type is not parsed at all, so the first required field is
/// then reported invalid (Daraja FAQ: wrong Content-Type → `Invalid BusinessShortCode`).
/// Malformed JSON or a non-object → `400.002.05 Invalid Request Payload`.
pub(crate) fn parse_object(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.is_empty() && !content_type.to_ascii_lowercase().contains("json") {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::payload()),
    }
}
