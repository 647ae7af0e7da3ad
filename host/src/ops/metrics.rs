//! Prometheus metrics, served at `/metrics` in the Prometheus text format
//! (0.0.4) by the `prometheus-client` crate.
//!
//! One process-wide registry ([`metrics`]); the hooks that feed it are one
//! line each: the HTTP layer ([`track`], every request), the operation path
//! ([`operation`], from `api::dispatch::execute`, REST and MCP), the plugin
//! runtime ([`plugin_call`]), the `outbound-http` capability
//! ([`outbound`]) and the event dispatcher ([`observe_outbox`]).
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

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;
use crate::ids::TenantId;
use crate::plugins::PluginCallError;
use crate::plugins::services::HostServices;
use crate::tenancy::TenantDb;

/// The `route` of a request no route matched.
pub const UNMATCHED: &str = "unmatched";
/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    channel: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
    operation: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboundLabels {
    plugin: String,
    host: &'static str,
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 0.5 ms to ~16 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<HttpLabels>,
    operation_calls: Family<OperationLabels, Counter>,
    operation_duration: Histograms<OperationLabels>,
    plugin_duration: Histograms<PluginLabels>,
    outbound: Family<OutboundLabels, Counter>,
    open_tenant_dbs: Gauge,
    outbox_depth: Gauge,
    outbox_by_tenant: Mutex<HashMap<TenantId, i64>>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("malipo");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Histograms::<HttpLabels>::new_with_constructor(latency);
        let operation_calls = Family::<OperationLabels, Counter>::default();
        let operation_duration = Histograms::<OperationLabels>::new_with_constructor(latency);
        let plugin_duration = Histograms::<PluginLabels>::new_with_constructor(latency);
        let outbound = Family::<OutboundLabels, Counter>::default();
        let open_tenant_dbs = Gauge::default();
        let outbox_depth = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head of HTTP requests, by method, route template and status",
            http_duration.clone(),
        );
        registry.register(
            "operation_calls",
            "Operation calls by channel, route (REST route template or MCP tool) and status",
            operation_calls.clone(),
        );
        registry.register(
            "operation_duration_seconds",
            "Duration of operation calls by channel, route and status",
            operation_duration.clone(),
        );
        registry.register(
            "plugin_call_duration_seconds",
            "Duration of plugin calls by plugin, operation and outcome (ok or the failure kind)",
            plugin_duration.clone(),
        );
        registry.register(
            "outbound_http_requests",
            "Plugins' outbound HTTP requests by plugin, host (the Daraja host or other) and outcome",
            outbound.clone(),
        );
        registry.register(
            "open_tenant_databases",
            "Tenant databases open now",
            open_tenant_dbs.clone(),
        );
        registry.register(
            "outbox_undelivered_events",
            "Estimated undelivered outbox events: the sum over tenants the event dispatcher visited since start of their count after its latest pass",
            outbox_depth.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            operation_calls,
            operation_duration,
            plugin_duration,
            outbound,
            open_tenant_dbs,
            outbox_depth,
            outbox_by_tenant: Mutex::new(HashMap::new()),
        }
    }

    /// The exposition of every metric, in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

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
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_string();
    let response = next.run(request).await;
    let labels = HttpLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    let m = metrics();
    m.http_requests.get_or_create(&labels).inc();
    m.http_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Records one operation call (from `api::dispatch::execute`). `route` is
/// the route template or the MCP tool name, never a concrete path.
pub fn operation(channel: &str, route: &str, status: u16, elapsed: Duration) {
    let labels = OperationLabels {
        channel: channel.to_string(),
        route: route.to_string(),
        status,
    };
    let m = metrics();
    m.operation_calls.get_or_create(&labels).inc();
    m.operation_duration
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
}

/// The `outcome` label of a plugin call's result.
pub fn plugin_outcome<T>(result: &Result<T, PluginCallError>) -> &'static str {
    use PluginCallError as E;
    match result {
        Ok(_) => "ok",
        Err(E::UnknownPlugin(_)) => "unknown_plugin",
        Err(E::InputTooLarge { .. }) => "input_too_large",
        Err(E::Failed { .. }) => "error",
        Err(E::Timeout { .. }) => "timeout",
        Err(E::MemoryExceeded { .. }) => "memory_exceeded",
        Err(E::Trap { .. }) => "trap",
        Err(E::CapabilityDenied { .. }) => "capability_denied",
        Err(E::BadOutput { .. }) => "bad_output",
        Err(E::Host(_)) => "host_error",
    }
}

/// Records one plugin call that began at `started`.
pub fn plugin_call<T>(
    plugin: &str,
    operation: &str,
    started: Instant,
    result: &Result<T, PluginCallError>,
) {
    let labels = PluginLabels {
        plugin: plugin.to_string(),
        operation: operation.to_string(),
        outcome: plugin_outcome(result),
    };
    metrics()
        .plugin_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
}

/// What became of an outbound request.
#[derive(Clone, Copy, Debug)]
pub enum Outbound {
    /// Not allowed: nothing was sent.
    Refused,
    /// Sent, and no answer came (connection, TLS, timeout).
    Failed,
    /// Answered with this status.
    Status(u16),
}

/// The `host` label of an outbound request: the Daraja hosts by name, the
/// emulator the operator configured, anything else folded.
pub fn daraja_host(services: &HostServices, host: &str, port: Option<u16>) -> &'static str {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "api.safaricom.co.ke" => return "api.safaricom.co.ke",
        "sandbox.safaricom.co.ke" => return "sandbox.safaricom.co.ke",
        other if other.ends_with(".safaricom.co.ke") || other == "safaricom.co.ke" => {
            return "safaricom-other";
        }
        _ => {}
    }
    let emulator = services
        .get("daraja-emulator-url")
        .and_then(|url| crate::plugins::services::url_host(&url));
    match emulator {
        Some((_, emulator_host, emulator_port))
            if emulator_host.eq_ignore_ascii_case(&host) && emulator_port == port =>
        {
            "daraja-emulator"
        }
        _ => "other",
    }
}

/// Records one outbound request of a plugin (the `outbound-http` capability).
pub fn outbound(
    plugin: &str,
    services: &HostServices,
    host: &str,
    port: Option<u16>,
    outcome: Outbound,
) {
    let outcome = match outcome {
        Outbound::Refused => "refused",
        Outbound::Failed => "error",
        Outbound::Status(100..=199) => "1xx",
        Outbound::Status(200..=299) => "2xx",
        Outbound::Status(300..=399) => "3xx",
        Outbound::Status(400..=499) => "4xx",
        Outbound::Status(500..=599) => "5xx",
        Outbound::Status(_) => "other",
    };
    let labels = OutboundLabels {
        plugin: plugin.to_string(),
        host: daraja_host(services, host, port),
        outcome,
    };
    metrics().outbound.get_or_create(&labels).inc();
}

/// After the event dispatcher's pass over a tenant: counts its undelivered
/// events (the partial index `outbox_undelivered` makes this cheap) and
/// updates the outbox-depth estimate. A failure leaves the estimate as it was.
pub fn observe_outbox(db: &TenantDb) {
    let counted = db.conn().ok().and_then(|conn| {
        conn.query_row(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NULL",
            [],
            |row| row.get::<_, i64>(0),
        )
        .ok()
    });
    let Some(depth) = counted else { return };
    let m = metrics();
    let Ok(mut by_tenant) = m.outbox_by_tenant.lock() else {
        return;
    };
    by_tenant.insert(db.id(), depth);
    m.outbox_depth.set(by_tenant.values().sum());
}

/// `/metrics`, in every mode.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .with_state(state)
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

async fn serve(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(error) = admit(&state.ops, &headers) {
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
    let m = metrics();
    m.open_tenant_dbs
        .set(i64::try_from(state.tenancy.open_count()).unwrap_or(i64::MAX));
    match m.encode() {
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
        operation(
            "rest",
            "/api/v1/unit-test/{id}",
            404,
            Duration::from_millis(3),
        );
        let text = metrics().encode().unwrap_or_default();
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
