//! The process's metrics registry (Prometheus, by `prometheus-client`) and
//! the one-line hooks that feed it, with plain labels only — so that every
//! layer can report without knowing who serves `/metrics` (`malipo::ops::metrics`).
//!
//! No label ever holds a tenant id, a user id or a concrete path: routes
//! are route templates (`/api/v1/stores/{id}`) or MCP tool names, plugin
//! operations come from manifests, outbound hosts are folded into a short
//! fixed list by the runtime. The metrics are listed in `malipo::ops::metrics`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::ids::TenantId;

/// The `route` of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunningLabels {
    plugin: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertSignalLabels {
    kind: &'static str,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertRaisedLabels {
    kind: &'static str,
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
    plugin_running: Family<RunningLabels, Gauge>,
    alert_signals: Family<AlertSignalLabels, Counter>,
    alerts_raised: Family<AlertRaisedLabels, Counter>,
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
        let plugin_running = Family::<RunningLabels, Gauge>::default();
        let alert_signals = Family::<AlertSignalLabels, Counter>::default();
        let alerts_raised = Family::<AlertRaisedLabels, Counter>::default();
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
            "plugin_calls_running",
            "Plugin calls executing in a plugin instance now, by plugin and operation",
            plugin_running.clone(),
        );
        registry.register(
            "alert_signals",
            "Occurrences counted by the abnormal-behaviour detector, by kind and decision (below_threshold, alert, suppressed, disabled)",
            alert_signals.clone(),
        );
        registry.register(
            "alerts_raised",
            "Alerts whose raising has finished, by kind and outcome (notified, unnotified, not_stored)",
            alerts_raised.clone(),
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
            plugin_running,
            alert_signals,
            alerts_raised,
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

/// Records one HTTP request (from the HTTP layer, `malipo::ops::metrics::track`).
pub fn http_request(method: String, route: String, status: u16, elapsed: Duration) {
    let labels = HttpLabels {
        method,
        route,
        status,
    };
    let m = metrics();
    m.http_requests.get_or_create(&labels).inc();
    m.http_duration
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
}

/// Records one operation call (from `crate::core::execute`). `route` is
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

/// Records one plugin call: its `outcome` is `ok` or the failure kind.
pub fn plugin_call(plugin: &str, operation: &str, outcome: &'static str, elapsed: Duration) {
    let labels = PluginLabels {
        plugin: plugin.to_string(),
        operation: operation.to_string(),
        outcome,
    };
    metrics()
        .plugin_duration
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
}

/// One plugin call executing in an instance: counted in
/// `malipo_plugin_calls_running` from [`plugin_running`] until dropped.
#[must_use = "the call counts as running only while this is held"]
#[derive(Debug)]
pub struct Running {
    gauge: Gauge,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Counts one plugin call as running until the answer is dropped (held
/// by the plugin runtime around the guest's export).
pub fn plugin_running(plugin: &str, operation: &str) -> Running {
    let labels = RunningLabels {
        plugin: plugin.to_string(),
        operation: operation.to_string(),
    };
    let gauge = metrics().plugin_running.get_or_create(&labels).clone();
    gauge.inc();
    Running { gauge }
}

/// Records one occurrence counted by the abnormal-behaviour detector
/// (`malipo_core::alerts::service`): its `kind` (`failed_logins`…)
/// and what it decided (`below_threshold`, `alert`, `suppressed`,
/// `disabled`).
pub fn alert_signal(kind: &'static str, decision: &'static str) {
    let labels = AlertSignalLabels { kind, decision };
    metrics().alert_signals.get_or_create(&labels).inc();
}

/// Records an alert whose raising has finished: `outcome` is `notified`,
/// `unnotified` or `not_stored`.
pub fn alert_raised(kind: &'static str, outcome: &'static str) {
    let labels = AlertRaisedLabels { kind, outcome };
    metrics().alerts_raised.get_or_create(&labels).inc();
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

/// Records one outbound request of a plugin (the `outbound-http`
/// capability); `host` is the runtime's folded host label.
pub fn outbound(plugin: &str, host: &'static str, outcome: Outbound) {
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
        host,
        outcome,
    };
    metrics().outbound.get_or_create(&labels).inc();
}

/// Sets a tenant's undelivered-event count (after the event dispatcher's
/// pass over it) in the outbox-depth estimate.
pub fn outbox_depth(tenant: TenantId, depth: i64) {
    let m = metrics();
    let Ok(mut by_tenant) = m.outbox_by_tenant.lock() else {
        return;
    };
    by_tenant.insert(tenant, depth);
    m.outbox_depth.set(by_tenant.values().sum());
}

/// Sets the number of tenant databases open now.
pub fn open_tenant_dbs(open: u64) {
    metrics()
        .open_tenant_dbs
        .set(i64::try_from(open).unwrap_or(i64::MAX));
}
