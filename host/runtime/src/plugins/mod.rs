//! The plugin runtime: loads WebAssembly components, keeps live instances
//! per tenant, and runs each call inside limits and a transaction.
//!
//! Instance strategy (chosen by measurement, see docs/PERFORMANCE.md): an
//! instance is kept alive and reused for one tenant and one plugin — never
//! shared across tenants — and thrown away after a trap, a broken limit, or
//! [`malipo_foundations::config::PluginLimits::max_calls_per_instance`] calls. A call on a
//! live instance costs well under a microsecond; instantiating per call cost
//! tens and scaled badly across cores.
//!
//! Every call: the host opens a transaction on the tenant's connection,
//! installs the plugin's authorizer, hands the connection to the instance,
//! sets the CPU deadline, calls, takes the connection back, and commits only
//! if the plugin succeeded without breaking a rule. Otherwise it rolls back:
//! nothing the plugin wrote stays since its last outbound I/O.
//!
//! Two-phase outbound (docs/ARCHITECTURE.md): `outbound-http.send`,
//! `mail.send` and a certificate fetch by `daraja.security-credential`
//! never run inside the transaction. The host commits the call's work so
//! far, does the I/O with no transaction and no lock held, and begins a new
//! transaction in the same mode for the rest of the call
//! ([`capabilities::ActiveCall::outside_transaction`]).
//!
//! A caller that wants to follow a long call passes a [`ProgressSink`] in
//! its [`CallRequest`]; the plugin's `progress.report` calls arrive there as
//! [`Progress`] values while the call runs.

pub mod bindings;
pub mod capabilities;
pub mod engine;
pub mod mailer;
pub mod manifest;
pub mod services;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use moka::sync::Cache;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Instance, InstancePre, Linker};
use wasmtime::{Engine, Store, Trap};

use crate::plugins::bindings::{CallContext, Event, Plugin};
use crate::plugins::capabilities::{ActiveCall, HostState};
use crate::plugins::manifest::PluginManifest;
use crate::plugins::services::HostServices;
use malipo_foundations::config::PluginLimits;
use malipo_foundations::ids::TenantId;
use malipo_storage::tenancy::authorizer::{self, Phase, PluginAccess};
use malipo_storage::tenancy::{PluginMigrations, TenantDb};

/// Why a plugin call failed. Each fails only its own call.
#[derive(Debug, thiserror::Error)]
pub enum PluginCallError {
    /// No plugin of that name is loaded.
    #[error("no plugin named `{0}`")]
    UnknownPlugin(String),
    /// The input is over the limit.
    #[error("input of {size} bytes is over the plugin input limit of {limit} bytes")]
    InputTooLarge {
        /// Bytes given.
        size: usize,
        /// Bytes allowed.
        limit: usize,
    },
    /// The plugin answered with an error of its own.
    #[error("{message}")]
    Failed {
        /// The plugin's error code.
        code: String,
        /// The plugin's message.
        message: String,
    },
    /// The plugin ran past its CPU deadline.
    #[error("plugin `{plugin}` ran past its CPU deadline of {ms} ms and was stopped")]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The deadline.
        ms: u128,
    },
    /// The plugin tried to grow its memory past the cap.
    #[error("plugin `{plugin}` tried to use more than its memory cap of {mib} MiB and was stopped")]
    MemoryExceeded {
        /// The plugin.
        plugin: String,
        /// The cap.
        mib: usize,
    },
    /// The plugin trapped (panicked, or executed an invalid instruction).
    #[error("plugin `{plugin}` crashed: {detail}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap.
        detail: String,
    },
    /// The plugin touched something its manifest does not grant.
    #[error("plugin `{plugin}` was refused: {detail}")]
    CapabilityDenied {
        /// The plugin.
        plugin: String,
        /// What it tried.
        detail: String,
    },
    /// The plugin's answer is too large or not JSON.
    #[error("plugin `{plugin}` answered badly: {detail}")]
    BadOutput {
        /// The plugin.
        plugin: String,
        /// What was wrong.
        detail: String,
    },
    /// The tenant's database stayed locked by other work (`SQLITE_BUSY` /
    /// `SQLITE_LOCKED`, seen by the host or by one of the plugin's
    /// statements): the call may succeed when retried.
    #[error("the tenant database is busy: {0}")]
    Busy(String),
    /// The host could not run the call.
    #[error("plugin host: {0}")]
    Host(String),
}

impl From<rusqlite::Error> for PluginCallError {
    fn from(error: rusqlite::Error) -> Self {
        if malipo_foundations::error::is_sqlite_busy(&error) {
            Self::Busy(error.to_string())
        } else {
            Self::Host(error.to_string())
        }
    }
}

impl From<malipo_storage::tenancy::TenancyError> for PluginCallError {
    fn from(error: malipo_storage::tenancy::TenancyError) -> Self {
        match error {
            malipo_storage::tenancy::TenancyError::Sqlite(error) => error.into(),
            other => Self::Host(other.to_string()),
        }
    }
}

/// The context of a call the host makes on its own behalf (a job, a
/// callback, a sync): no store, and no user unless one is named.
pub fn host_context(
    tenant: TenantId,
    user: Option<String>,
    channel: &str,
    request_id: String,
) -> CallContext {
    CallContext {
        tenant_id: tenant.to_string(),
        user_id: user,
        store_id: None,
        request_id,
        channel: channel.into(),
        now_ms: malipo_foundations::time_util::business_now_ms(),
        allowed_stores: None,
    }
}

/// One loaded component.
pub struct LoadedPlugin {
    /// Its checked manifest.
    pub manifest: PluginManifest,
    /// `embedded` or the file it came from.
    pub source: String,
    /// SHA-256 of the component bytes.
    pub sha256: String,
    /// Whether it exports the typed `authorize`.
    pub authorizes: bool,
    pre: InstancePre<HostState>,
    secrets: Arc<[String]>,
    emits: Arc<[String]>,
    outbound_hosts: Arc<[String]>,
}

struct LiveInstance {
    store: Store<HostState>,
    instance: Instance,
    bindings: Plugin,
    calls: u64,
}

type IdleKey = (TenantId, String);
type IdleList = Arc<Mutex<Vec<LiveInstance>>>;

/// The plugin runtime.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    plugins: HashMap<String, Arc<LoadedPlugin>>,
    order: Vec<String>,
    idle: Cache<IdleKey, IdleList>,
    limits: PluginLimits,
    services: Arc<HostServices>,
    events_emitted: Arc<tokio::sync::Notify>,
}

/// One progress report of a running call.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Units of work done so far.
    pub done: u64,
    /// Units of work in all, when the plugin knows.
    pub total: Option<u64>,
    /// A short note for people (at most 200 characters).
    pub message: Option<String>,
}

/// Where a call's progress reports go.
pub type ProgressSink = tokio::sync::mpsc::UnboundedSender<Progress>;

/// What a call needs from its caller.
pub struct CallRequest<'a> {
    /// The tenant's open database.
    pub db: &'a TenantDb,
    /// Who is calling.
    pub ctx: CallContext,
    /// Operation name.
    pub operation: &'a str,
    /// Input JSON.
    pub input: &'a str,
    /// The operation is declared read-only: writes are refused.
    pub read_only: bool,
    /// Where to send the call's progress reports, if anyone listens.
    pub progress: Option<ProgressSink>,
}

impl PluginRuntime {
    /// An empty runtime over a configured engine.
    pub fn new(
        engine: Engine,
        limits: PluginLimits,
        services: Arc<HostServices>,
    ) -> anyhow::Result<Self> {
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
        let idle = Cache::builder()
            .max_capacity(limits.instance_cache_capacity)
            .time_to_idle(std::time::Duration::from_secs(300))
            .build();
        Ok(Self {
            engine,
            linker,
            plugins: HashMap::new(),
            order: Vec::new(),
            idle,
            limits,
            services,
            events_emitted: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Notified after every call that committed at least one event to a
    /// tenant's outbox (whatever the channel), so the event dispatcher
    /// need not wait for its interval.
    pub fn events_emitted(&self) -> &Arc<tokio::sync::Notify> {
        &self.events_emitted
    }

    /// Compiles (or loads from the compiled-code cache), pre-instantiates,
    /// and reads the manifest of one component.
    pub fn load(&mut self, bytes: &[u8], source: &str) -> anyhow::Result<Arc<LoadedPlugin>> {
        let component = Component::new(&self.engine, bytes)?;
        let pre = self.linker.instantiate_pre(&component)?;
        let mut store = self.new_store("loading");
        store.set_epoch_deadline(self.deadline_ticks());
        let instance = pre.instantiate(&mut store)?;
        let plugin = Plugin::new(&mut store, &instance)?;
        let raw = plugin.call_manifest(&mut store)?;
        let manifest = PluginManifest::from_wit(raw)?;
        let authorizes = instance
            .get_typed_func::<(&str, &str, Option<&str>), (bool,)>(&mut store, "authorize")
            .is_ok();
        if self.plugins.contains_key(&manifest.name) {
            anyhow::bail!("a plugin named `{}` is already loaded", manifest.name);
        }
        self.check_isolation(&manifest)?;
        let loaded = Arc::new(LoadedPlugin {
            secrets: manifest.secrets.clone().into(),
            emits: manifest.emits.clone().into(),
            outbound_hosts: manifest.outbound_hosts.clone().into(),
            manifest,
            source: source.to_string(),
            sha256: hex::encode(Sha256::digest(bytes)),
            authorizes,
            pre,
        });
        self.order.push(loaded.manifest.name.clone());
        self.plugins
            .insert(loaded.manifest.name.clone(), Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Refuses a plugin that would reach into the host's or another
    /// plugin's data through its name or its events: a name reserved for the
    /// host's tables, a name whose table prefix overlaps another plugin's
    /// (`mpesa` would own `mpesa_x_…`), or `emits` overlapping what another
    /// plugin emits.
    fn check_isolation(&self, manifest: &PluginManifest) -> anyhow::Result<()> {
        let name = &manifest.name;
        let host_tables = malipo_storage::tenancy::host_tables()?;
        if let Some(reason) = manifest::reserved_name_reason(name, &host_tables) {
            anyhow::bail!("plugin `{name}` refused: {reason}");
        }
        for other in self.plugins() {
            let theirs = &other.manifest.name;
            if name.starts_with(&format!("{theirs}_")) || theirs.starts_with(&format!("{name}_")) {
                anyhow::bail!(
                    "plugin `{name}` refused: its tables (`{name}_…`) and those of plugin \
                     `{theirs}` (`{theirs}_…`) would overlap"
                );
            }
            for mine in &manifest.emits {
                if let Some(clash) = other
                    .manifest
                    .emits
                    .iter()
                    .find(|p| manifest::patterns_overlap(p, mine))
                {
                    anyhow::bail!(
                        "plugin `{name}` refused: it declares it emits `{mine}`, but `{clash}` \
                         belongs to plugin `{theirs}`"
                    );
                }
            }
        }
        Ok(())
    }

    /// The sqlite limits a plugin's statements run under
    /// ([`PluginLimits`]): a string or blob is at most the larger of the
    /// plugin input and output limits, so `randomblob(1000000000)` fails
    /// inside the call instead of allocating on the host.
    fn sql_limits(&self) -> Vec<(rusqlite::limits::Limit, i32)> {
        sql_limits(&self.limits)
    }

    /// Loaded plugins, in load order.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.order.iter().filter_map(|name| self.plugins.get(name))
    }

    /// The plugin with this name.
    pub fn plugin(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.get(name)
    }

    /// The plugin that answers `authorize`, if any.
    pub fn authorizer_plugin(&self) -> Option<&Arc<LoadedPlugin>> {
        self.plugins().find(|p| p.authorizes)
    }

    /// Every plugin's migrations, for the tenant store.
    pub fn migrations(&self) -> Vec<PluginMigrations> {
        self.plugins()
            .map(|p| PluginMigrations {
                plugin: p.manifest.name.clone(),
                read_tables: p.manifest.read_tables.clone(),
                migrations: p.manifest.migrations.clone(),
            })
            .collect()
    }

    /// Drops every live instance of a tenant (e.g. when it is deleted).
    pub fn forget_tenant(&self, tenant: TenantId) {
        for name in &self.order {
            self.idle.invalidate(&(tenant, name.clone()));
        }
    }

    /// Host services (secret box, HTTP policy, settings).
    pub fn services(&self) -> &Arc<HostServices> {
        &self.services
    }

    fn new_store(&self, plugin: &str) -> Store<HostState> {
        let mut store = Store::new(
            &self.engine,
            HostState::new(plugin, self.limits.memory_bytes),
        );
        store.limiter(|state| &mut state.limiter);
        // The deadline counts the plugin's own running time: time spent
        // waiting on outbound I/O (bounded by its own timeout) is given back.
        let deadline = self.limits.deadline;
        store.epoch_deadline_callback(move |context| {
            let Some(call) = context.data().call.as_ref() else {
                return Ok(wasmtime::UpdateDeadline::Interrupt);
            };
            let busy = call.busy_time();
            if busy >= deadline {
                return Ok(wasmtime::UpdateDeadline::Interrupt);
            }
            let left = (deadline - busy).as_millis() / engine::EPOCH_TICK.as_millis();
            Ok(wasmtime::UpdateDeadline::Continue(left.max(1) as u64))
        });
        store
    }

    fn deadline_ticks(&self) -> u64 {
        (self.limits.deadline.as_millis() / engine::EPOCH_TICK.as_millis()).max(1) as u64 + 1
    }

    fn checkout(
        &self,
        tenant: TenantId,
        plugin: &LoadedPlugin,
    ) -> Result<LiveInstance, PluginCallError> {
        let key = (tenant, plugin.manifest.name.clone());
        let list = self.idle.get_with(key, || Arc::new(Mutex::new(Vec::new())));
        if let Some(live) = list.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(live);
        }
        let mut store = self.new_store(&plugin.manifest.name);
        store.set_epoch_deadline(self.deadline_ticks());
        let instance = plugin.pre.instantiate(&mut store).map_err(|e| {
            PluginCallError::Host(format!("instantiate `{}`: {e}", plugin.manifest.name))
        })?;
        let bindings =
            Plugin::new(&mut store, &instance).map_err(|e| PluginCallError::Host(e.to_string()))?;
        Ok(LiveInstance {
            store,
            instance,
            bindings,
            calls: 0,
        })
    }

    fn checkin(&self, tenant: TenantId, plugin: &LoadedPlugin, live: LiveInstance) {
        if live.calls >= self.limits.max_calls_per_instance {
            return;
        }
        let key = (tenant, plugin.manifest.name.clone());
        let list = self.idle.get_with(key, || Arc::new(Mutex::new(Vec::new())));
        if let Ok(mut idle) = list.lock()
            && idle.len() < self.limits.idle_instances_per_key
        {
            idle.push(live);
        }
    }

    /// Runs `body` on a live instance of `plugin` for the tenant of `db`,
    /// with the connection handed to the instance under the plugin's rules.
    /// `body` answers whether the call succeeded; the connection comes back
    /// to `finish` with the violation, if any, so it can commit or roll back.
    #[allow(clippy::too_many_arguments)]
    fn with_instance<B, T>(
        &self,
        plugin: &LoadedPlugin,
        db: &TenantDb,
        request_id: &str,
        phase: Phase,
        transaction: Option<&'static str>,
        progress: Option<ProgressSink>,
        body: impl FnOnce(&mut LiveInstance) -> wasmtime::Result<B>,
        finish: impl FnOnce(
            &rusqlite::Connection,
            Result<B, PluginCallError>,
        ) -> Result<T, PluginCallError>,
    ) -> Result<T, PluginCallError> {
        let name = plugin.manifest.name.as_str();
        let conn = db.conn()?;
        if let Some(begin) = transaction {
            conn.execute_batch(begin)?;
        }
        let access = PluginAccess::new(name, &plugin.manifest.read_tables);
        let started = Instant::now();
        let deadline = self.limits.deadline;
        // SQL shares the call's deadline; waiting on outbound I/O does not count.
        let io_nanos = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let io_for_sql = Arc::clone(&io_nanos);
        let saved_limits = match apply_limits(&conn, &self.sql_limits()) {
            Ok(saved) => saved,
            Err(error) => {
                if transaction.is_some() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                return Err(error.into());
            }
        };
        let prepared = authorizer::install(&conn, &access, phase).and_then(|()| {
            conn.progress_handler(
                10_000,
                Some(move || capabilities::busy_since(started, &io_for_sql) > deadline),
            )
        });
        if let Err(error) = prepared {
            let _ = apply_limits(&conn, &saved_limits);
            let _ = authorizer::remove(&conn);
            if transaction.is_some() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(error.into());
        }
        let mut live = match self.checkout(db.id(), plugin) {
            Ok(live) => live,
            Err(error) => {
                let _ = apply_limits(&conn, &saved_limits);
                let _ = authorizer::remove(&conn);
                let _ = conn.progress_handler(0, None::<fn() -> bool>);
                if transaction.is_some() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                return Err(error);
            }
        };
        live.store.data_mut().limiter.exceeded = false;
        live.store.data_mut().call = Some(ActiveCall {
            conn,
            access: Arc::clone(&access),
            tenant_id: db.id().to_string(),
            request_id: request_id.to_string(),
            secrets: Arc::clone(&plugin.secrets),
            emits: Arc::clone(&plugin.emits),
            read_budget: self.limits.max_output_bytes,
            emitted: 0,
            services: Arc::clone(&self.services),
            outbound_hosts: Arc::clone(&plugin.outbound_hosts),
            callbacks: plugin.manifest.callbacks,
            sends_mail: plugin.manifest.sends_mail,
            started,
            io_nanos: Arc::clone(&io_nanos),
            progress,
            transaction,
            uncommitted_events: 0,
            events_emitted: Arc::clone(&self.events_emitted),
            transaction_lost: None,
            contended: false,
        });
        live.store.set_epoch_deadline(self.deadline_ticks());
        let outcome = body(&mut live);
        live.calls += 1;
        let memory_exceeded = live.store.data().limiter.exceeded;
        let Some(call) = live.store.data_mut().call.take() else {
            return Err(PluginCallError::Host("call state vanished".into()));
        };
        let emitted = call.uncommitted_events;
        let transaction_lost = call.transaction_lost;
        let contended = call.contended;
        let conn = call.conn;
        // The host's own statements (commit, audit rows) run without the
        // plugin's limits again.
        let _ = apply_limits(&conn, &saved_limits);
        let _ = authorizer::remove(&conn);
        let _ = conn.progress_handler(0, None::<fn() -> bool>);
        let violation = access.violation();
        let result = match outcome {
            Ok(value) => {
                self.checkin(db.id(), plugin, live);
                match violation {
                    Some(detail) => Err(PluginCallError::CapabilityDenied {
                        plugin: name.into(),
                        detail,
                    }),
                    None => Ok(value),
                }
            }
            Err(error) => {
                // The instance may be in any state: never reuse it.
                drop(live);
                Err(if memory_exceeded {
                    PluginCallError::MemoryExceeded {
                        plugin: name.into(),
                        mib: self.limits.memory_bytes >> 20,
                    }
                } else if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
                    PluginCallError::Timeout {
                        plugin: name.into(),
                        ms: self.limits.deadline.as_millis(),
                    }
                } else if let Some(detail) = violation {
                    PluginCallError::CapabilityDenied {
                        plugin: name.into(),
                        detail,
                    }
                } else {
                    PluginCallError::Trap {
                        plugin: name.into(),
                        detail: trap_summary(&error),
                    }
                })
            }
        };
        // The transaction could not be reopened after outbound I/O: what the
        // call did before it is committed; nothing after it may be written.
        let result = match (result, transaction_lost) {
            (Ok(_), Some(lost)) if contended => Err(PluginCallError::Busy(format!(
                "the call's transaction could not be reopened after outbound I/O: {lost}"
            ))),
            (Ok(_), Some(lost)) => Err(PluginCallError::Host(format!(
                "the call's transaction could not be reopened after outbound I/O: {lost}"
            ))),
            // One of the plugin's statements met a locked database and the
            // call then failed (however the plugin worded or wrapped it):
            // contention, not the plugin's refusal.
            (
                Err(
                    PluginCallError::Failed { message, .. }
                    | PluginCallError::Trap {
                        detail: message, ..
                    },
                ),
                _,
            ) if contended => Err(PluginCallError::Busy(message)),
            (result, _) => result,
        };
        let result = finish(&conn, result);
        if transaction.is_some() {
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            if let Err(error) = conn.execute_batch(end) {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(error.into());
            }
            if result.is_ok() && emitted > 0 {
                self.events_emitted.notify_one();
            }
        }
        result
    }

    /// Runs one operation of a plugin. `before_commit` runs on the same
    /// connection inside the call's transaction after the plugin succeeded
    /// (the host writes its audit row there); if it fails, all rolls back.
    pub fn invoke(
        &self,
        plugin_name: &str,
        request: CallRequest<'_>,
        before_commit: impl FnOnce(&rusqlite::Connection, &str) -> rusqlite::Result<()>,
    ) -> Result<String, PluginCallError> {
        let plugin = self
            .plugin(plugin_name)
            .ok_or_else(|| PluginCallError::UnknownPlugin(plugin_name.into()))?;
        if request.input.len() > self.limits.max_input_bytes {
            return Err(PluginCallError::InputTooLarge {
                size: request.input.len(),
                limit: self.limits.max_input_bytes,
            });
        }
        let max_output = self.limits.max_output_bytes;
        let name = plugin.manifest.name.clone();
        let begin = if request.read_only {
            "BEGIN DEFERRED"
        } else {
            "BEGIN IMMEDIATE"
        };
        let ctx = request.ctx;
        let request_id = ctx.request_id.clone();
        let started = Instant::now();
        let result = self.with_instance(
            plugin,
            request.db,
            &request_id,
            Phase::Call {
                read_only: request.read_only,
            },
            Some(begin),
            request.progress,
            |live| {
                let _running =
                    malipo_foundations::telemetry::plugin_running(plugin_name, request.operation);
                live.bindings
                    .call_invoke(&mut live.store, &ctx, request.operation, request.input)
            },
            |conn, result| {
                let output = match result? {
                    Ok(output) => output,
                    Err(error) => {
                        return Err(PluginCallError::Failed {
                            code: error.code,
                            message: error.message,
                        });
                    }
                };
                if output.len() > max_output {
                    return Err(PluginCallError::BadOutput {
                        plugin: name,
                        detail: format!(
                            "output of {} bytes is over the limit of {max_output} bytes",
                            output.len()
                        ),
                    });
                }
                if serde_json::from_str::<serde::de::IgnoredAny>(&output).is_err() {
                    return Err(PluginCallError::BadOutput {
                        plugin: name,
                        detail: "output is not JSON".into(),
                    });
                }
                before_commit(conn, &output)?;
                Ok(output)
            },
        );
        malipo_foundations::telemetry::plugin_call(
            plugin_name,
            request.operation,
            outcome_label(&result),
            started.elapsed(),
        );
        result
    }

    /// Hands one outbox event to a plugin's `on-event` export, with the same
    /// limits (the payload counts as input), authorizer and transaction as
    /// [`Self::invoke`]: the plugin's
    /// writes (and any events it emits) commit only if it answers `Ok` and
    /// `before_commit` succeeds on the same connection inside the same
    /// transaction (the dispatcher marks the delivery done there, so a
    /// delivery that committed is never made again). Otherwise all rolls back.
    pub fn deliver_event(
        &self,
        plugin_name: &str,
        db: &TenantDb,
        ctx: CallContext,
        event: &Event,
        before_commit: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<()>,
    ) -> Result<(), PluginCallError> {
        let plugin = self
            .plugin(plugin_name)
            .ok_or_else(|| PluginCallError::UnknownPlugin(plugin_name.into()))?;
        if event.payload.len() > self.limits.max_input_bytes {
            return Err(PluginCallError::InputTooLarge {
                size: event.payload.len(),
                limit: self.limits.max_input_bytes,
            });
        }
        let request_id = ctx.request_id.clone();
        let started = Instant::now();
        let result = self.with_instance(
            plugin,
            db,
            &request_id,
            Phase::Call { read_only: false },
            Some("BEGIN IMMEDIATE"),
            None,
            |live| {
                let _running =
                    malipo_foundations::telemetry::plugin_running(plugin_name, "on-event");
                live.bindings.call_on_event(&mut live.store, &ctx, event)
            },
            |conn, result| {
                if let Err(error) = result? {
                    return Err(PluginCallError::Failed {
                        code: error.code,
                        message: error.message,
                    });
                }
                before_commit(conn)?;
                Ok(())
            },
        );
        malipo_foundations::telemetry::plugin_call(
            plugin_name,
            "on-event",
            outcome_label(&result),
            started.elapsed(),
        );
        result
    }

    /// Asks the authorizing plugin whether `user` may use `permission`
    /// (in `store`, if given). Deny by default: no authorizing plugin, or a
    /// failed call, answers no.
    pub fn authorize(
        &self,
        db: &TenantDb,
        request_id: &str,
        user: &str,
        permission: &str,
        store: Option<&str>,
    ) -> Result<bool, PluginCallError> {
        let Some(plugin) = self.authorizer_plugin() else {
            return Ok(false);
        };
        self.with_instance(
            plugin,
            db,
            request_id,
            Phase::Call { read_only: true },
            None,
            None,
            |live| {
                let func = live
                    .instance
                    .get_typed_func::<(&str, &str, Option<&str>), (bool,)>(
                        &mut live.store,
                        "authorize",
                    )?;
                let (allowed,) = func.call(&mut live.store, (user, permission, store))?;
                Ok(allowed)
            },
            |_, result| result,
        )
    }
}

/// The sqlite limits of a plugin's statements under `limits`.
pub fn sql_limits(limits: &PluginLimits) -> Vec<(rusqlite::limits::Limit, i32)> {
    use rusqlite::limits::Limit;
    let length = limits
        .max_output_bytes
        .max(limits.max_input_bytes)
        .clamp(1 << 20, 1 << 30);
    vec![
        (
            Limit::SQLITE_LIMIT_LENGTH,
            i32::try_from(length).unwrap_or(1 << 30),
        ),
        (Limit::SQLITE_LIMIT_SQL_LENGTH, 1 << 20),
        (Limit::SQLITE_LIMIT_COLUMN, 500),
        (Limit::SQLITE_LIMIT_EXPR_DEPTH, 200),
        (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 100),
        (Limit::SQLITE_LIMIT_VDBE_OP, 1_000_000),
        (Limit::SQLITE_LIMIT_FUNCTION_ARG, 64),
        (Limit::SQLITE_LIMIT_ATTACHED, 0),
        (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000),
        (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 10_000),
        (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 10),
    ]
}

/// Sets each limit on `conn`; answers the previous values, to restore them
/// with the same call.
pub fn apply_limits(
    conn: &rusqlite::Connection,
    limits: &[(rusqlite::limits::Limit, i32)],
) -> rusqlite::Result<Vec<(rusqlite::limits::Limit, i32)>> {
    let mut previous = Vec::with_capacity(limits.len());
    for (limit, value) in limits {
        previous.push((*limit, conn.set_limit(*limit, *value)?));
    }
    Ok(previous)
}

/// The innermost cause of a trap, in one line.
fn trap_summary(error: &wasmtime::Error) -> String {
    let root = error.root_cause().to_string();
    let line = root.lines().next().unwrap_or("trap").to_string();
    match error.downcast_ref::<Trap>() {
        Some(trap) => format!("{trap}"),
        None => line,
    }
}

/// The `outcome` label of a plugin call's result.
pub fn outcome_label<T>(result: &Result<T, PluginCallError>) -> &'static str {
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
        Err(E::Busy(_)) => "busy",
        Err(E::Host(_)) => "host_error",
    }
}
