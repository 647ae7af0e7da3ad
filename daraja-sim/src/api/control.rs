//! `/simulator/*` control API: certificate, records, outcomes, callback flush, faults, token
//! invalidation, merchant/initiator/app registration and a transaction listing.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::config::Faults;
use crate::error::ControlError;
use crate::state::{Handle, OutcomeRequest, Shared};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/simulator/certificate", get(certificate))
        .route("/simulator/requests", get(requests))
        .route("/simulator/callbacks", get(callbacks))
        .route("/simulator/records", axum::routing::delete(clear_records))
        .route(
            "/simulator/outcomes",
            post(set_outcome).delete(clear_outcomes),
        )
        .route("/simulator/callbacks/flush", post(flush))
        .route("/simulator/faults", get(get_faults).put(put_faults))
        .route("/simulator/tokens/invalidate", post(invalidate_tokens))
        .route("/simulator/shortcodes", post(register_shortcode))
        .route("/simulator/initiators", post(register_initiator))
        .route("/simulator/apps", post(register_app))
        .route("/simulator/transactions", get(transactions))
}

fn handle(s: Arc<Shared>) -> Handle {
    Handle { shared: s }
}

fn control_error(e: ControlError) -> Response {
    let status = match e {
        ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ControlError::AlreadyCompleted(_) => StatusCode::CONFLICT,
    };
    (status, Json(json!({ "error": e.to_string() }))).into_response()
}

fn bad_json(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": format!("invalid JSON: {e}") })),
    )
        .into_response()
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Box<Response>> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| Box::new(bad_json(e)))
}

async fn certificate(State(s): State<Arc<Shared>>) -> Response {
    (
        [(CONTENT_TYPE, "application/x-pem-file")],
        s.identity.certificate_pem().to_owned(),
    )
        .into_response()
}

async fn requests(State(s): State<Arc<Shared>>) -> Response {
    Json(handle(s).requests()).into_response()
}

async fn callbacks(State(s): State<Arc<Shared>>) -> Response {
    Json(handle(s).callbacks()).into_response()
}

async fn clear_records(State(s): State<Arc<Shared>>) -> StatusCode {
    handle(s).clear_records();
    StatusCode::NO_CONTENT
}

async fn set_outcome(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let req: OutcomeRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match handle(s).set_outcome(req) {
        Ok(applied) => Json(applied).into_response(),
        Err(e) => control_error(e),
    }
}

async fn clear_outcomes(State(s): State<Arc<Shared>>) -> StatusCode {
    handle(s).clear_outcomes();
    StatusCode::NO_CONTENT
}

async fn flush(State(s): State<Arc<Shared>>) -> Response {
    let fired = handle(s).flush_callbacks().await;
    Json(json!({ "fired": fired })).into_response()
}

async fn get_faults(State(s): State<Arc<Shared>>) -> Response {
    Json(handle(s).faults()).into_response()
}

/// `PUT /simulator/faults`: replaces the fault set (absent fields = off); the extra boolean
/// `invalidate_tokens` invalidates every issued token once.
async fn put_faults(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let mut raw: serde_json::Value = match parse(&body) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    let invalidate = match raw
        .as_object_mut()
        .and_then(|m| m.remove("invalidate_tokens"))
    {
        None => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => return bad_json("`invalidate_tokens` must be a boolean"),
    };
    let faults: Faults = match serde_json::from_value(raw) {
        Ok(f) => f,
        Err(e) => return bad_json(e),
    };
    let h = handle(s);
    h.set_faults(faults);
    let invalidated = if invalidate { h.invalidate_tokens() } else { 0 };
    let mut out = serde_json::to_value(h.faults()).unwrap_or_default();
    if let Some(m) = out.as_object_mut() {
        m.insert("invalidated_tokens".to_owned(), json!(invalidated));
    }
    Json(out).into_response()
}

async fn invalidate_tokens(State(s): State<Arc<Shared>>) -> Response {
    let n = handle(s).invalidate_tokens();
    Json(json!({ "invalidated_tokens": n })).into_response()
}

#[derive(Deserialize)]
struct ShortcodeBody {
    short_code: String,
    passkey: Option<String>,
    c2b_external_validation: Option<bool>,
}

async fn register_shortcode(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let b: ShortcodeBody = match parse(&body) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let h = handle(s);
    h.register_shortcode(&b.short_code, b.passkey.as_deref());
    if let Some(v) = b.c2b_external_validation {
        h.set_c2b_validation(&b.short_code, v);
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct InitiatorBody {
    name: String,
    password: String,
}

async fn register_initiator(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    match parse::<InitiatorBody>(&body) {
        Ok(b) => {
            handle(s).register_initiator(&b.name, &b.password);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(resp) => *resp,
    }
}

#[derive(Deserialize)]
struct AppBody {
    consumer_key: String,
    consumer_secret: String,
}

async fn register_app(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    match parse::<AppBody>(&body) {
        Ok(b) => {
            handle(s).register_app(&b.consumer_key, &b.consumer_secret);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(resp) => *resp,
    }
}

async fn transactions(State(s): State<Arc<Shared>>) -> Response {
    Json(handle(s).transactions()).into_response()
}
