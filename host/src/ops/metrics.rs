//! Prometheus metrics, served at `/metrics` in the Prometheus text format
//! (0.0.4) by the `prometheus-client` crate.
//!
//! One process-wide registry (`crate::telemetry`, a foundation every layer
//! may report to with plain labels); the hooks that feed it are one line
//! each: the HTTP layer ([`track`], every request), the operation path
//! (`crate::core::execute`, REST and MCP), the plugin runtime (its calls
//! and the `outbound-http` capability) and the event dispatcher.
//!
//! No label ever holds a tenant id, a user id or a concrete path: routes
//! are route templates (`/api/v1/stores/{id}`) or MCP tool names, plugin
//! operations come from manifests, outbound hosts are folded into a short
//! fixed list. Every label's values are bounded by the binary and its
//! plugins, not by the traffic.
//!
//! Metrics:
//! - `malipo_http_requests_total{method,route,status}` and
//!   `malipo_http_request_duration_seconds{method,route,status}`: every
//!   HTTP request; `route` is the matched route template, `unmatched` for
//!   paths no route serves. Durations are to the response head (a streamed
//!   MCP answer's body is not included).
//! - `malipo_operation_calls_total{channel,route,status}` and
//!   `malipo_operation_duration_seconds{channel,route,status}`: every call
//!   of an operation, whichever the channel (`rest`: route template; `mcp`:
//!   tool name).
//! - `malipo_plugin_call_duration_seconds{plugin,operation,outcome}`:
//!   plugin calls (`operation` is `on-event` for event deliveries);
//!   `outcome` is `ok` or the failure kind, so failures are the `_count` of
//!   the series whose outcome is not `ok`.
//! - `malipo_plugin_calls_running{plugin,operation}`: plugin calls
//!   executing in a plugin instance now (`operation` is `on-event` for event
//!   deliveries): from the guest export's start to its answer, trap or
//!   timeout; not while the host opens the call's transaction or readies
//!   an instance.
//! - `malipo_outbound_http_requests_total{plugin,host,outcome}`: what
//!   plugins sent through `outbound-http`; `host` is the Daraja host
//!   (`api.safaricom.co.ke`, `sandbox.safaricom.co.ke`, `daraja-emulator`),
//!   `safaricom-other`, or `other`; `outcome` the status class (`2xx`…),
//!   `error` (no answer) or `refused` (not allowed, nothing sent).
//! - `malipo_open_tenant_databases`: tenant databases open now.
//! - `malipo_outbox_undelivered_events`: an estimate of outbox depth — the
//!   sum, over the tenants the event dispatcher has visited since start, of
//!   their undelivered events counted at the end of the latest pass that
//!   visited them. Tenants not visited since start count as 0; a tenant
//!   whose file was closed keeps its last count until visited again.
//!   Counting every tenant on each scrape would open every file.
//! - `malipo_alert_signals_total{kind,decision}`: every occurrence the
//!   abnormal-behaviour detector counted (`crate::alerts::service`; `kind`
//!   is `failed_logins`, `failed_payments` or `server_errors`), with what it
//!   decided: `below_threshold`, `alert` (this one crossed the threshold: an
//!   alert is raised), `suppressed` (at or over the threshold, but the
//!   tenant already had an alert of this kind within the window) or
//!   `disabled` (threshold 0). Counted in the request that saw it.
//! - `malipo_alerts_raised_total{kind,outcome}`: alerts whose raising has
//!   finished (off the request path): `notified` (stored, every super-admin
//!   emailed or the mail queued), `unnotified` (stored, some super-admin not
//!   told) or `not_stored` (`control.db` refused it). `decision="alert"`
//!   signals less these is the number being raised now.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::core::Core;
use crate::error::ApiError;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// HTTP layer: counts and times every request by route template.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Methods are the client's to choose: any beyond the standard ones fold.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(crate::telemetry::UNMATCHED, MatchedPath::as_str)
        .to_string();
    let response = next.run(request).await;
    crate::telemetry::http_request(method, route, response.status().as_u16(), started.elapsed());
    response
}

/// `/metrics`, in every mode.
pub fn router(state: Arc<Core>, ops: Arc<super::Ops>) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .with_state((state, ops))
}

/// Whether `headers` carry `Authorization: Bearer <expected>`. Compares
/// digests, so the time taken says nothing about the token.
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    else {
        return false;
    };
    Sha256::digest(given.trim().as_bytes()) == Sha256::digest(expected.as_bytes())
}

/// Admits a scrape: with a token set, only its bearer; without one, only
/// when the server listens on loopback.
pub fn admit(ops: &super::Ops, headers: &HeaderMap) -> Result<(), ApiError> {
    match ops.metrics_token() {
        Some(token) if bearer_matches(headers, token) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized(
            "`/metrics` needs `Authorization: Bearer <MALIPO_METRICS_TOKEN>`".into(),
        )),
        None if ops.exposed() => Err(ApiError::Forbidden(
            "`/metrics` is closed: this server listens beyond loopback and no \
             MALIPO_METRICS_TOKEN is set. Set it and scrape with `Authorization: Bearer <token>`"
                .into(),
        )),
        None => Ok(()),
    }
}

async fn serve(
    State((state, ops)): State<(Arc<Core>, Arc<super::Ops>)>,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = admit(&ops, &headers) {
        let unauthorized = matches!(error, ApiError::Unauthorized(_));
        let mut response = error.into_response();
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
        }
        return response;
    }
    crate::telemetry::open_tenant_dbs(state.tenancy.open_count());
    match crate::telemetry::metrics().encode() {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            text,
        )
            .into_response(),
        Err(error) => {
            ApiError::Unexpected(anyhow::anyhow!("encode metrics: {error}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            headers.insert(header::AUTHORIZATION, value);
        }
        headers
    }

    #[test]
    fn a_token_is_required_when_set_and_loopback_is_open_without_one() {
        let loopback: std::net::SocketAddr = ([127, 0, 0, 1], 8080).into();
        let anywhere: std::net::SocketAddr = ([0, 0, 0, 0], 8080).into();

        let open = super::super::Ops::new(None);
        open.set_listen(loopback);
        assert!(admit(&open, &HeaderMap::new()).is_ok());
        open.set_listen(anywhere);
        assert!(matches!(
            admit(&open, &HeaderMap::new()),
            Err(ApiError::Forbidden(_))
        ));

        let guarded = super::super::Ops::new(Some("s3cret".into()));
        guarded.set_listen(loopback);
        assert!(matches!(
            admit(&guarded, &HeaderMap::new()),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            admit(&guarded, &with_bearer("wrong")),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(admit(&guarded, &with_bearer("s3cret")).is_ok());
        guarded.set_listen(anywhere);
        assert!(admit(&guarded, &with_bearer("s3cret")).is_ok());
    }

    #[test]
    fn recorded_series_appear_in_the_exposition() {
        crate::telemetry::operation(
            "rest",
            "/api/v1/unit-test/{id}",
            404,
            std::time::Duration::from_millis(3),
        );
        let text = crate::telemetry::metrics().encode().unwrap_or_default();
        assert!(
            text.contains(
                r#"malipo_operation_calls_total{channel="rest",route="/api/v1/unit-test/{id}",status="404"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE malipo_open_tenant_databases gauge"),
            "{text}"
        );
    }
}
