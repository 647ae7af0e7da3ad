//! Wiring: builds the state (control DB, plugin runtime, tenant store,
//! operations), the router, and runs the server until shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use moka::sync::Cache;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cli::Mode;
use crate::config::Config;
use crate::control::ControlDb;
use crate::core::Core;
use crate::core::operation::{Access, Operation, Target};
use crate::jwt::JwtKeys;
use crate::plugins::manifest::PermissionSpec;
use crate::plugins::{CallRequest, PluginRuntime, engine};
use crate::tenancy::Tenancy;

/// First-party plugins, compiled to components by `host/build.rs` and
/// embedded so that one file is the whole product.
const EMBEDDED_PLUGINS: &[(&str, &[u8])] = &[
    (
        "rbac",
        include_bytes!(concat!(env!("OUT_DIR"), "/plugins/malipo_plugin_rbac.wasm")),
    ),
    (
        "mpesa",
        include_bytes!(concat!(
            env!("OUT_DIR"),
            "/plugins/malipo_plugin_mpesa.wasm"
        )),
    ),
    (
        "notifications",
        include_bytes!(concat!(
            env!("OUT_DIR"),
            "/plugins/malipo_plugin_notifications.wasm"
        )),
    ),
    (
        "billing",
        include_bytes!(concat!(
            env!("OUT_DIR"),
            "/plugins/malipo_plugin_billing.wasm"
        )),
    ),
    (
        "usage",
        include_bytes!(concat!(
            env!("OUT_DIR"),
            "/plugins/malipo_plugin_usage.wasm"
        )),
    ),
];

/// Every operation: the host's, then each plugin's public ones. A host
/// operation that answers a plugin operation's answer as it is
/// ([`crate::billing::routes::PLUGIN_ANSWERS`]) is documented with that
/// operation's output schema, as its plugin declares it.
pub fn all_operations(runtime: &PluginRuntime) -> anyhow::Result<Vec<Arc<Operation>>> {
    let mut operations: Vec<Arc<Operation>> = crate::resources::operations()
        .into_iter()
        .map(|mut op| {
            let answered = crate::billing::routes::PLUGIN_ANSWERS
                .iter()
                .filter(|(host, _, _)| *host == op.spec.name)
                .find_map(|(_, plugin, name)| runtime.plugin(plugin)?.manifest.operation(name));
            if let Some(spec) = answered {
                op.spec.output_schema = spec.output_schema.clone();
            }
            Arc::new(op)
        })
        .collect();
    for plugin in runtime.plugins() {
        for spec in &plugin.manifest.operations {
            if spec.path.is_none() {
                continue;
            }
            operations.push(Arc::new(Operation {
                spec: spec.clone(),
                access: Access::Tenant,
                target: Target::Plugin(plugin.manifest.name.clone()),
                tag: plugin.manifest.name.clone(),
            }));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for op in &operations {
        let key = (op.spec.method, op.spec.path.clone());
        anyhow::ensure!(
            seen.insert(key),
            "operation `{}` declares {:?} {:?}, which another operation already serves",
            op.spec.name,
            op.spec.method,
            op.spec.path
        );
    }
    Ok(operations)
}

/// What the channels add to the core: the OpenAPI document (REST), the
/// tool catalog (MCP) and who may read `/metrics` (operators).
pub struct Surfaces {
    /// The OpenAPI document of every operation.
    pub openapi: Arc<serde_json::Value>,
    /// The MCP tools, from the same operations.
    pub tools: Arc<crate::mcp::ToolCatalog>,
    /// Operator surfaces: who may read `/metrics`.
    pub ops: Arc<crate::ops::Ops>,
}

impl Surfaces {
    /// The surfaces of the core's operations.
    pub fn of(core: &Core) -> anyhow::Result<Self> {
        Ok(Self {
            openapi: Arc::new(crate::rest::openapi::document(&core.operations)),
            tools: Arc::new(crate::mcp::ToolCatalog::build(&core.operations)?),
            ops: Arc::new(crate::ops::Ops::from_env()),
        })
    }
}

/// The routes of a mode.
pub fn router(state: Arc<Core>, surfaces: &Surfaces, mode: Mode) -> axum::Router {
    // Operator routes (`crate::ops`): `/metrics` in every mode, `/docs`
    // wherever the OpenAPI document is served; the dashboard
    // (`crate::dashboard`) wherever the REST API is; the plugins' callback
    // routes (`crate::callbacks`) with the REST API.
    let ops = crate::ops::metrics::router(Arc::clone(&state), Arc::clone(&surfaces.ops));
    let rest = || {
        crate::rest::router(Arc::clone(&state), Arc::clone(&surfaces.openapi))
            .merge(crate::callbacks::router(Arc::clone(&state)))
            .merge(crate::ops::docs::router())
            .merge(crate::dashboard::router())
    };
    let mcp = || crate::mcp::http::router(Arc::clone(&state), Arc::clone(&surfaces.tools));
    let router = match mode {
        Mode::Hybrid => rest().merge(mcp()),
        Mode::Rest => rest(),
        Mode::Mcp => crate::rest::health_router(Arc::clone(&state))
            .merge(mcp())
            .fallback(crate::rest::not_found),
    };
    router
        .merge(ops)
        .layer(axum::middleware::from_fn(crate::ops::metrics::track))
        .layer(axum::middleware::from_fn(crate::rest::request_id::layer))
}

/// Loads the embedded plugins, then every `*.wasm` in `<data-dir>/plugins/`.
fn load_plugins(
    runtime: &mut PluginRuntime,
    control: &ControlDb,
    dir: &Path,
) -> anyhow::Result<()> {
    for (name, bytes) in EMBEDDED_PLUGINS {
        let loaded = runtime
            .load(bytes, "embedded")
            .with_context(|| format!("load embedded plugin `{name}`"))?;
        control.register_plugin(
            &loaded.manifest.name,
            &loaded.manifest.version,
            "embedded",
            &loaded.sha256,
        )?;
    }
    let mut extra: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect(),
        Err(_) => Vec::new(),
    };
    extra.sort();
    for path in extra {
        let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        let source = path.display().to_string();
        let loaded = runtime
            .load(&bytes, &source)
            .with_context(|| format!("load plugin {source}"))?;
        control.register_plugin(
            &loaded.manifest.name,
            &loaded.manifest.version,
            &source,
            &loaded.sha256,
        )?;
        tracing::info!(plugin = loaded.manifest.name, %source, "loaded plugin");
    }
    Ok(())
}

/// The host's permissions followed by every plugin's.
fn catalog(runtime: &PluginRuntime) -> Vec<PermissionSpec> {
    let mut all = crate::resources::permissions();
    for plugin in runtime.plugins() {
        for permission in &plugin.manifest.permissions {
            if !all.iter().any(|p| p.name == permission.name) {
                all.push(permission.clone());
            }
        }
    }
    all
}

/// Who owned each secret name before secrets were kept per plugin: the
/// embedded (first-party) plugin declaring it, when exactly one does. A
/// plugin installed from `<data-dir>/plugins/` never inherits a secret.
fn legacy_secret_owners(runtime: &PluginRuntime) -> std::collections::HashMap<String, String> {
    let mut owners = std::collections::HashMap::new();
    let mut shared = std::collections::HashSet::new();
    for plugin in runtime.plugins().filter(|p| p.source == "embedded") {
        for name in &plugin.manifest.secrets {
            if owners
                .insert(name.clone(), plugin.manifest.name.clone())
                .is_some()
            {
                shared.insert(name.clone());
            }
        }
    }
    for name in shared {
        owners.remove(&name);
    }
    owners
}

/// Moves secrets written before secrets were kept per plugin to their
/// owners, then syncs the permission catalog into the authorizing plugin whenever a
/// tenant file is opened with an older catalog than this binary's.
fn install_catalog_sync(
    tenancy: &Tenancy,
    runtime: &Arc<PluginRuntime>,
    catalog: &[PermissionSpec],
) {
    let rbac = runtime.authorizer_plugin().map(|p| p.manifest.name.clone());
    let input = json!({"permissions": catalog}).to_string();
    let hash = hex::encode(Sha256::digest(input.as_bytes()));
    let owners = legacy_secret_owners(runtime);
    let runtime = Arc::clone(runtime);
    tenancy.set_open_hook(Arc::new(move |db| {
        let conn = db.conn().map_err(|e| e.to_string())?;
        let moved = crate::plugins::capabilities::migrate_legacy_secrets(
            &conn,
            runtime.services(),
            &db.id().to_string(),
            &owners,
        )
        .map_err(|e| format!("moving secrets to their plugins: {e}"))?;
        if moved > 0 {
            tracing::info!(tenant = %db.id(), moved, "secrets moved to their owning plugins");
        }
        // Callback tokens exist before any request needs one: a token made
        // inside a request's transaction would be invisible to a callback
        // arriving before that transaction commits.
        for plugin in runtime.plugins().filter(|p| p.manifest.callbacks) {
            crate::plugins::capabilities::callback_token(
                &conn,
                runtime.services(),
                &db.id().to_string(),
                &plugin.manifest.name,
            )?;
        }
        let current: Option<String> = conn
            .query_row(
                "SELECT value FROM host_meta WHERE key = 'catalog_hash'",
                [],
                |row| row.get(0),
            )
            .ok();
        drop(conn);
        let Some(rbac) = rbac.as_deref() else {
            return Ok(());
        };
        if current.as_deref() == Some(hash.as_str()) {
            return Ok(());
        }
        let ctx = crate::plugins::host_context(db.id(), None, "system", "catalog-sync".into());
        let request = CallRequest {
            db,
            ctx,
            operation: "catalog.sync",
            input: &input,
            read_only: false,
            progress: None,
        };
        runtime
            .invoke(rbac, request, |conn, _| {
                conn.execute(
                    "INSERT INTO host_meta (key, value) VALUES ('catalog_hash', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = ?1",
                    [&hash],
                )
                .map(|_| ())
            })
            .map(|_| ())
            .map_err(|e| format!("permission catalog sync: {e}"))
    }));
}

/// Builds the whole state from a configuration.
pub fn build_state(config: Config) -> anyhow::Result<Arc<Core>> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create data directory {}", config.data_dir.display()))?;
    let control = ControlDb::open(&config.control_db_path()).context("open control.db")?;
    std::fs::create_dir_all(config.tenants_dir())
        .with_context(|| format!("create {}", config.tenants_dir().display()))?;
    crate::data_dir::restrict_all(&config.data_dir);
    let engine = engine::build(&config.cache_dir(), config.plugin_limits.memory_bytes)?;
    let secret_box = crate::crypto::SecretBox::load(&config.data_dir)?;
    let services = Arc::new(crate::plugins::services::HostServices::new(secret_box));
    let mut runtime = PluginRuntime::new(engine, config.plugin_limits.clone(), services)?;
    load_plugins(&mut runtime, &control, &config.plugins_dir())?;
    let runtime = Arc::new(runtime);
    let tenancy = Arc::new(Tenancy::new(
        &config.tenants_dir(),
        config.tenant_cache_capacity,
        runtime.migrations(),
    )?);
    let catalog = catalog(&runtime);
    install_catalog_sync(&tenancy, &runtime, &catalog);
    let operations = all_operations(&runtime)?;
    // An operation needing a permission no role or API key can hold could
    // never be called: refuse to start rather than serve it.
    for op in operations.iter() {
        if let Some(permission) = &op.spec.permission {
            anyhow::ensure!(
                catalog.iter().any(|p| &p.name == permission),
                "operation {} needs the permission {permission}, which no plugin or the host defines",
                op.spec.name
            );
        }
    }
    // Two operations claiming one MCP tool name cannot start.
    crate::mcp::ToolCatalog::build(&operations)?;
    let jwt = JwtKeys::load(&config.data_dir, config.access_token_ttl.as_secs() as i64)?;
    let dummy_hash = crate::passwords::hash("not-a-real-password-for-timing")?;
    let event_signal = Arc::clone(runtime.events_emitted());
    let plans = control.plans().context("read the plan catalog")?;
    let platform = control
        .platform_setting(crate::billing::PLATFORM_TENANT_SETTING)
        .context("read platform settings")?
        .and_then(|id| crate::ids::TenantId::parse(&id));
    let billing = crate::billing::Billing::new(plans, platform, Arc::clone(runtime.services()));
    let state_rate = config.auth_rate_per_minute;
    let tenant_rate = config.tenant_rate_per_minute;
    Ok(Arc::new(Core {
        config,
        control,
        tenancy,
        runtime,
        jwt,
        operations,
        catalog,
        authz_cache: Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(300))
            .build(),
        authz_generations: Mutex::new(HashMap::new()),
        dummy_hash,
        public_limiter: crate::core::limits::PublicLimiter::new(state_rate),
        tenant_limiter: crate::core::limits::TenantLimiter::new(tenant_rate),
        callback_signal: tokio::sync::Notify::new(),
        event_signal,
        outbox_changes: tokio::sync::watch::channel(0).0,
        billing,
        meter: crate::metering::Meter::default(),
        alerts: crate::alerts::service::Alerts::default(),
        hostnames: crate::hostnames::Hostnames::default(),
    }))
}

/// A bound, ready server.
pub struct Application {
    listener: tokio::net::TcpListener,
    state: Arc<Core>,
    surfaces: Surfaces,
    mode: Mode,
}

impl Application {
    /// Builds the state and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config, listen: SocketAddr) -> anyhow::Result<Self> {
        let state = tokio::task::spawn_blocking(move || build_state(config)).await??;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listen on {listen}"))?;
        // Where callbacks reach this host: MALIPO_PUBLIC_URL behind a proxy,
        // else the address just bound.
        let public = crate::config::var("MALIPO_PUBLIC_URL").unwrap_or_else(|_| {
            match listener.local_addr() {
                Ok(addr) => format!("http://{addr}"),
                Err(_) => format!("http://{listen}"),
            }
        });
        state.runtime.services().set("public-url", &public);
        let surfaces = Surfaces::of(&state)?;
        // `/metrics` is open without a token on loopback only.
        surfaces
            .ops
            .set_listen(listener.local_addr().unwrap_or(listen));
        Ok(Self {
            listener,
            state,
            surfaces,
            mode: Mode::default(),
        })
    }

    /// Serves only the surfaces of `mode`.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The state, for benchmarks and tools.
    pub fn state(&self) -> Arc<Core> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tokio::spawn(crate::callbacks::worker(Arc::clone(&self.state)));
        tokio::spawn(crate::jobs::scheduler(Arc::clone(&self.state)));
        tokio::spawn(crate::events::worker(Arc::clone(&self.state)));
        tokio::spawn(crate::platform_mail::worker(Arc::clone(&self.state)));
        tokio::spawn(crate::metering::worker(Arc::clone(&self.state)));
        tokio::spawn(crate::deletion::service::worker(Arc::clone(&self.state)));
        let router = router(Arc::clone(&self.state), &self.surfaces, self.mode);
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        finish(&self.state).await;
        Ok(())
    }
}

/// After the listener stopped and in-flight requests were answered: apply
/// stored callbacks, deliver what the open tenants' outboxes hold, write the
/// last metered counts, then close every tenant file cleanly (WAL folded
/// into the file). Bounded by `MALIPO_SHUTDOWN_GRACE_SECS` (30); what is
/// left waits in the files for the next start.
async fn finish(state: &Arc<Core>) {
    let grace = Duration::from_secs(
        crate::config::var("MALIPO_SHUTDOWN_GRACE_SECS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(30),
    );
    let flush = async {
        if let Err(error) = crate::callbacks::deliver_due(state).await {
            tracing::warn!(?error, "shutdown: stored callbacks not applied");
        }
        let delivered = if crate::events::DispatchSettings::from_env()
            .interval
            .is_some()
        {
            match crate::events::run_once(state, crate::events::Scope::OpenTenants).await {
                Ok(report) => Some(report),
                Err(error) => {
                    tracing::warn!(%error, "shutdown: outbox not flushed");
                    None
                }
            }
        } else {
            None
        };
        // Counts of the last calls would otherwise be lost.
        crate::metering::flush_all(state).await;
        delivered
    };
    let delivered = match tokio::time::timeout(grace, flush).await {
        Ok(delivered) => delivered,
        Err(_) => {
            tracing::warn!(
                ?grace,
                "shutdown: flushing took longer than the grace period"
            );
            None
        }
    };
    let for_close = Arc::clone(state);
    let closed = tokio::task::spawn_blocking(move || {
        let closed = for_close.tenancy.close_all();
        let folded = for_close
            .control
            .conn()
            .map_err(|e| e.to_string())
            .and_then(|conn| {
                conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                    .map_err(|e| e.to_string())
            });
        if let Err(error) = folded {
            tracing::warn!(%error, "control.db not checkpointed at shutdown");
        }
        closed
    })
    .await
    .unwrap_or_default();
    tracing::info!(
        events = ?delivered,
        tenant_files_closed = closed,
        "shutdown complete"
    );
}

#[cfg(test)]
mod tests {
    use crate::ids::TenantId;
    use crate::plugins::{CallRequest, Progress, host_context};

    /// The embedded mpesa plugin, run by the state's runtime, reports each month of a report as it
    /// aggregates it, through the sink of the call.
    #[test]
    fn a_call_reports_progress_to_its_sink() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state =
            crate::app::build_state(malipo_foundations::config::Config::from_env(dir.path()))
                .expect("state");
        let tenant = TenantId::new();
        let db = state.tenancy.create(tenant).expect("tenant");
        {
            let conn = db.conn().expect("conn");
            for (id, at, ms) in [
                ("a", "2026-01-10T00:00:00.000Z", 1_768_003_200_000_i64),
                ("b", "2026-02-10T00:00:00.000Z", 1_770_681_600_000),
                ("c", "2026-03-10T00:00:00.000Z", 1_773_100_800_000),
            ] {
                conn.execute(
                    "INSERT INTO mpesa_transactions (id, kind, status, amount, created_at, created_ms, updated_at) \
                     VALUES (?1, 'stk', 'completed', 10, ?2, ?3, ?2)",
                    rusqlite::params![id, at, ms],
                )
                .expect("insert");
            }
        }
        let (sink, mut reports) = tokio::sync::mpsc::unbounded_channel();
        let request = CallRequest {
            db: &db,
            ctx: host_context(tenant, None, "mcp", "progress-test".into()),
            operation: "mpesa.reports",
            input: r#"{"from":"2026-01-01","to":"2026-12-31"}"#,
            read_only: true,
            progress: Some(sink),
        };
        let output = state
            .runtime
            .invoke("mpesa", request, |_, _| Ok(()))
            .expect("report");
        let output: serde_json::Value = serde_json::from_str(&output).expect("JSON");
        assert_eq!(output["totals"]["count"], 3, "{output}");
        let mut seen = Vec::new();
        while let Ok(report) = reports.try_recv() {
            seen.push(report);
        }
        let expected: Vec<Progress> = (1..=3)
            .map(|done| Progress {
                done,
                total: Some(3),
                message: Some(format!("aggregated month {done} of 3")),
            })
            .collect();
        assert_eq!(seen, expected);
    }
}
