//! Every response carries `X-Request-ID`: the client's own if it sent a sane
//! one (1–64 characters of `[A-Za-z0-9._-]`), else a fresh UUID. The id is
//! also set as a task-local so error bodies and log lines can carry it.
//!
//! The same middleware writes the access log: one INFO line per request
//! (target `malipo::access`) with the method, the route template (never a
//! concrete path, which may carry callback tokens), the status, the
//! duration and the tenant the credential acts in.

use std::cell::RefCell;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::error::REQUEST_ID;

const HEADER: &str = "x-request-id";

tokio::task_local! {
    /// The tenant the request's credential acts in, once authenticated
    /// (for the access log line).
    static ACCESS_TENANT: RefCell<Option<String>>;
}

/// Notes the tenant of the request being served (for its access-log line).
pub fn note_tenant(tenant: impl std::fmt::Display) {
    let _ = ACCESS_TENANT.try_with(|cell| *cell.borrow_mut() = Some(tenant.to_string()));
}

fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The path as log lines show it: the token of a callback URL
/// (`/callbacks/<plugin>/<tenant>/<token>/…`, `/hooks/<tenant>/<token>/…`)
/// is a credential and is replaced by `[redacted]`.
pub fn redacted_path(path: &str) -> String {
    let mut segments: Vec<&str> = path.split('/').collect();
    // segments[0] is the empty text before the leading slash.
    let token_at = match segments.get(1).copied() {
        Some("callbacks") => Some(4),
        Some("hooks") => Some(3),
        _ => None,
    };
    if let Some(at) = token_at
        && let Some(segment) = segments.get_mut(at)
    {
        *segment = "[redacted]";
    }
    segments.join("/")
}

/// The middleware.
pub async fn layer(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| sane(id))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // At ERROR level so that the context stays on every line even when
    // RUST_LOG keeps only warnings and errors.
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let span = tracing::error_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %redacted_path(request.uri().path()),
        tenant_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    let (tenant, mut response) = ACCESS_TENANT
        .scope(RefCell::new(None), async {
            let response = REQUEST_ID
                .scope(id.clone(), next.run(request))
                .instrument(span)
                .await;
            let tenant = ACCESS_TENANT.with(|cell| cell.borrow_mut().take());
            (tenant, response)
        })
        .await;
    tracing::info!(
        target: "malipo::access",
        request_id = %id,
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_millis() as u64,
        tenant_id = tenant.as_deref().unwrap_or("-"),
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::redacted_path;

    #[test]
    fn callback_tokens_never_reach_the_log() {
        assert_eq!(
            redacted_path("/callbacks/mpesa/t1/secret-token/stk"),
            "/callbacks/mpesa/t1/[redacted]/stk"
        );
        assert_eq!(
            redacted_path("/hooks/t1/secret-token/b2c/result"),
            "/hooks/t1/[redacted]/b2c/result"
        );
        assert_eq!(redacted_path("/api/v1/stores"), "/api/v1/stores");
    }
}
