//! `GET /oauth/v1/generate?grant_type=client_credentials` with HTTP Basic consumer key/secret.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::ids;
use crate::state::{Shared, Token};

pub(crate) async fn generate(
    State(s): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let grant = query
        .as_deref()
        .and_then(|q| reqwest::Url::parse(&format!("http://q/?{q}")).ok())
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.into_owned())
        });
    if grant.as_deref() != Some("client_credentials") {
        return Err(ApiError::new("400.008.02", "Invalid grant type passed"));
    }
    let raw = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    let Some(encoded) = raw
        .strip_prefix("Basic ")
        .or_else(|| raw.strip_prefix("basic "))
    else {
        return Err(ApiError::new(
            "400.008.01",
            "Invalid authentication type passed",
        ));
    };
    let bad_credentials = || ApiError::new("400.008.01", "Invalid Authentication passed");
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad_credentials())?;
    let text = String::from_utf8(decoded).map_err(|_| bad_credentials())?;
    let (key, secret) = text.split_once(':').ok_or_else(bad_credentials)?;
    if key.is_empty() || secret.is_empty() {
        return Err(bad_credentials());
    }

    let token = ids::access_token();
    {
        let mut inner = s.lock();
        if s.cfg.strict && !inner.apps.is_empty() {
            if inner.apps.get(key).map(String::as_str) != Some(secret) {
                return Err(bad_credentials());
            }
        } else {
            // Non-strict: any key/secret pair is an app (created on first use).
            inner.apps.insert(key.to_owned(), secret.to_owned());
        }
        if s.cfg.invalidate_previous_token {
            inner.tokens.retain(|_, t| t.app != key);
        }
        let expires = Instant::now() + Duration::from_secs(s.cfg.token_ttl_secs + 1);
        inner.tokens.insert(
            token.clone(),
            Token {
                app: key.to_owned(),
                expires,
            },
        );
    }
    let expires_in = if s.cfg.expires_in_as_number {
        json!(s.cfg.token_ttl_secs)
    } else {
        json!(s.cfg.token_ttl_secs.to_string())
    };
    Ok(Json(json!({ "access_token": token, "expires_in": expires_in })).into_response())
}
