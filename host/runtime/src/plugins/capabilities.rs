//! What a plugin instance may reach, held in its store: the WASI context
//! with nothing granted, the memory limiter, and — only while a call is in
//! progress — the calling tenant's connection inside the call's transaction.
//!
//! One capability per WIT interface: `tenant-db`, `secrets`, `config`,
//! `outbound-http`, `daraja`, `events`, `log`, `progress`. Each reaches only
//! the tenant of the current call; between calls an instance holds no
//! connection at all.

use crate::plugins::services::daraja_host;
use malipo_foundations::telemetry::Outbound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::OptionalExtension;
use rusqlite::types::{ToSqlOutput, ValueRef};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::plugins::bindings::{
    config, daraja, events, log, mail, outbound_http, progress, secrets, tenant_db,
};
use crate::plugins::services::HostServices;
use malipo_storage::tenancy::TenantConn;
use malipo_storage::tenancy::authorizer::PluginAccess;

/// The state of one call, present only while the call runs.
pub struct ActiveCall {
    /// The tenant's connection, inside the host's transaction.
    pub conn: TenantConn,
    /// The plugin's access rules (shared with the authorizer).
    pub access: Arc<PluginAccess>,
    /// Tenant id, for log lines.
    pub tenant_id: String,
    /// Request id, for log lines and events.
    pub request_id: String,
    /// Secrets the manifest declared.
    pub secrets: Arc<[String]>,
    /// Event names (or `prefix.*` patterns) the manifest declared it emits.
    pub emits: Arc<[String]>,
    /// Bytes of query results the call may still read.
    pub read_budget: usize,
    /// Events written so far.
    pub emitted: u32,
    /// Host services (secret box, HTTP, settings).
    pub services: Arc<HostServices>,
    /// Hosts the manifest declared for `outbound-http`.
    pub outbound_hosts: Arc<[String]>,
    /// Whether the plugin takes callbacks.
    pub callbacks: bool,
    /// Whether the plugin may send mail.
    pub sends_mail: bool,
    /// When the call started.
    pub started: Instant,
    /// Nanoseconds spent waiting on outbound I/O: not counted against the
    /// deadline (shared with the SQL progress handler).
    pub io_nanos: Arc<std::sync::atomic::AtomicU64>,
    /// Where the call's progress reports go, if anyone listens.
    pub progress: Option<super::ProgressSink>,
    /// The statement that opened the call's transaction (`BEGIN IMMEDIATE`,
    /// `BEGIN DEFERRED`), reopened after each outbound I/O; `None` when the
    /// call runs outside a transaction.
    pub transaction: Option<&'static str>,
    /// Events written since the last commit (the dispatcher is woken when
    /// a commit before outbound I/O makes them visible).
    pub uncommitted_events: u32,
    /// Woken when events become visible to the dispatcher.
    pub events_emitted: Arc<tokio::sync::Notify>,
    /// Set when the transaction could not be reopened after outbound I/O:
    /// the call can write nothing more and fails.
    pub transaction_lost: Option<String>,
    /// Set when one of the call's statements (or reopening its transaction)
    /// met a busy or locked database: if the call then fails, it failed of
    /// contention.
    pub contended: bool,
}

impl ActiveCall {
    /// CPU time used so far: wall time minus time waiting on outbound I/O.
    pub fn busy_time(&self) -> Duration {
        busy_since(self.started, &self.io_nanos)
    }

    /// Two-phase outbound: runs `io` (network or SMTP I/O) with no
    /// transaction open and no SQLite lock held. The call's work so far —
    /// its rows and the events it emitted — is COMMITTED first, so what the
    /// plugin recorded before sending (its intent) survives whatever happens
    /// during or after the I/O; then a new transaction is begun in the same
    /// mode for the rest of the call, which alone rolls back if the call
    /// later fails. A call with a refused statement sends nothing (its work
    /// will not commit). The time spent here counts as I/O, not CPU.
    pub fn outside_transaction<T>(
        &mut self,
        io: impl FnOnce(&ActiveCall) -> T,
    ) -> Result<T, String> {
        if let Some(lost) = &self.transaction_lost {
            return Err(format!("the call's transaction is gone: {lost}"));
        }
        let Some(begin) = self.transaction else {
            return Ok(io(self));
        };
        if let Some(violation) = self.access.violation() {
            return Err(format!(
                "nothing is sent after a refused statement: {violation}"
            ));
        }
        let waited = Instant::now();
        let conn = &self.conn;
        // The plugin's authorizer refuses transaction control; the host
        // runs it as itself.
        self.access
            .as_host(|| conn.execute_batch("COMMIT"))
            .map_err(|e| format!("could not commit the call's work before sending: {e}"))?;
        if self.uncommitted_events > 0 {
            self.uncommitted_events = 0;
            self.events_emitted.notify_one();
        }
        let answer = io(self);
        let conn = &self.conn;
        if let Err(error) = self.access.as_host(|| conn.execute_batch(begin)) {
            tracing::error!(%error, tenant_id = %self.tenant_id, "could not reopen a plugin call's transaction after outbound I/O");
            self.contended |= malipo_foundations::error::is_sqlite_busy(&error);
            self.transaction_lost = Some(error.to_string());
        }
        self.add_io(waited.elapsed());
        Ok(answer)
    }

    fn writable(&self) -> Result<(), String> {
        match &self.transaction_lost {
            Some(lost) => Err(format!("the call's transaction is gone: {lost}")),
            None => Ok(()),
        }
    }

    fn add_io(&self, waited: Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.io_nanos
            .fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Wall time since `started` minus the I/O wait recorded in `io_nanos`.
pub fn busy_since(started: Instant, io_nanos: &std::sync::atomic::AtomicU64) -> Duration {
    let io = Duration::from_nanos(io_nanos.load(std::sync::atomic::Ordering::Relaxed));
    started.elapsed().saturating_sub(io)
}

/// The host-owned secret holding a plugin's callback token.
fn callback_token_name(plugin: &str) -> String {
    format!("__callback_token_{plugin}")
}

/// The owner column of the host's own secrets (callback tokens), and of
/// secrets written before secrets were kept per plugin until they move.
pub const HOST_SECRETS: &str = "";

use malipo_foundations::crypto::secret_field;

/// Moves the tenant's secrets written before secrets were kept per plugin
/// (`plugin = ''`, a name not starting with `__`, sealed with
/// `<tenant>/<name>`) to the plugin that owned them then, resealed with
/// `<tenant>/<plugin>/<name>`, in one transaction. `owners` maps a secret
/// name to that plugin: only first-party plugins declared secrets before
/// the change (`mpesa`: its credentials and `oauth_token`;
/// `notifications`: `webhook-secrets`), so the caller builds it from the
/// embedded plugins only — a plugin installed later that declares the same
/// name never receives the value. A name with no owner, or two, is left
/// where it is (unread) and logged. Idempotent. Answers how many moved.
pub fn migrate_legacy_secrets(
    conn: &rusqlite::Connection,
    services: &HostServices,
    tenant: &str,
    owners: &std::collections::HashMap<String, String>,
) -> Result<usize, String> {
    let legacy: Vec<(String, Vec<u8>)> = conn
        .prepare("SELECT name, value FROM secrets WHERE plugin = '' AND substr(name, 1, 2) <> '__'")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| e.to_string())?;
    if legacy.is_empty() {
        return Ok(0);
    }
    let mut moved = 0;
    let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    for (name, sealed) in legacy {
        let Some(owner) = owners.get(&name) else {
            tracing::warn!(
                tenant,
                secret = name,
                "a secret with no owning plugin is left unread"
            );
            continue;
        };
        let Ok(plain) = services.secrets.open(tenant, &name, &sealed) else {
            tracing::warn!(
                tenant,
                secret = name,
                "a legacy secret does not decrypt; left as is"
            );
            continue;
        };
        let resealed = services
            .secrets
            .seal(tenant, &secret_field(owner, &name), &plain)
            .map_err(|e| e.to_string())?;
        tx.execute(
            "INSERT INTO secrets (plugin, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (plugin, name) DO NOTHING",
            rusqlite::params![
                owner,
                name,
                resealed,
                malipo_foundations::time_util::now_rfc3339()
            ],
        )
        .map_err(|e| e.to_string())?;
        tx.execute(
            "DELETE FROM secrets WHERE plugin = '' AND name = ?1",
            [&name],
        )
        .map_err(|e| e.to_string())?;
        moved += 1;
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(moved)
}

/// Reads one sealed secret of `plugin` (or of the host: [`HOST_SECRETS`])
/// for the tenant on `conn`.
pub fn read_secret(
    conn: &rusqlite::Connection,
    services: &HostServices,
    tenant: &str,
    plugin: &str,
    name: &str,
) -> Option<String> {
    let sealed: Vec<u8> = conn
        .query_row(
            "SELECT value FROM secrets WHERE plugin = ?1 AND name = ?2",
            [plugin, name],
            |row| row.get(0),
        )
        .optional()
        .ok()
        .flatten()?;
    let plain = services
        .secrets
        .open(tenant, &secret_field(plugin, name), &sealed)
        .ok()?;
    String::from_utf8(plain).ok()
}

/// Seals and writes one secret of `plugin` (or of the host) for the tenant
/// on `conn`; an empty value deletes it.
pub fn write_secret(
    conn: &rusqlite::Connection,
    services: &HostServices,
    tenant: &str,
    plugin: &str,
    name: &str,
    value: &str,
) -> Result<(), String> {
    if value.is_empty() {
        conn.execute(
            "DELETE FROM secrets WHERE plugin = ?1 AND name = ?2",
            [plugin, name],
        )
        .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let sealed = services
        .secrets
        .seal(tenant, &secret_field(plugin, name), value.as_bytes())
        .map_err(|e| e.to_string())?;
    conn.execute(
        "INSERT INTO secrets (plugin, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (plugin, name) DO UPDATE SET value = ?3, updated_at = ?4",
        rusqlite::params![
            plugin,
            name,
            sealed,
            malipo_foundations::time_util::now_rfc3339()
        ],
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// The tenant's callback token for `plugin`, made on first use.
pub fn callback_token(
    conn: &rusqlite::Connection,
    services: &HostServices,
    tenant: &str,
    plugin: &str,
) -> Result<String, String> {
    let name = callback_token_name(plugin);
    if let Some(token) = read_secret(conn, services, tenant, HOST_SECRETS, &name) {
        return Ok(token);
    }
    let token = malipo_foundations::tokens::generate("cb_");
    write_secret(conn, services, tenant, HOST_SECRETS, &name, &token)?;
    Ok(token)
}

/// Replaces the tenant's callback token for `plugin`.
pub fn rotate_callback_token(
    conn: &rusqlite::Connection,
    services: &HostServices,
    tenant: &str,
    plugin: &str,
) -> Result<String, String> {
    let token = malipo_foundations::tokens::generate("cb_");
    write_secret(
        conn,
        services,
        tenant,
        HOST_SECRETS,
        &callback_token_name(plugin),
        &token,
    )?;
    Ok(token)
}

/// Whether `presented` is the tenant's callback token for `plugin`.
pub fn callback_token_matches(
    conn: &rusqlite::Connection,
    services: &HostServices,
    tenant: &str,
    plugin: &str,
    presented: &str,
) -> bool {
    read_secret(
        conn,
        services,
        tenant,
        HOST_SECRETS,
        &callback_token_name(plugin),
    )
    .is_some_and(|token| {
        // Compare digests so the comparison time says nothing about the token.
        malipo_foundations::tokens::digest(&token) == malipo_foundations::tokens::digest(presented)
    })
}

/// Records whether a memory limit stopped the instance.
pub struct MemoryLimiter {
    cap: usize,
    /// Set when a grow beyond the cap was refused.
    pub exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "plugin memory cap of {} MiB reached",
                self.cap >> 20
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The data of one plugin instance's store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory cap of the instance.
    pub limiter: MemoryLimiter,
    /// The plugin's name, for log lines.
    pub plugin: String,
    /// Present only during a call.
    pub call: Option<ActiveCall>,
}

impl HostState {
    /// A fresh state: WASI with no files, sockets, environment or arguments.
    pub fn new(plugin: &str, memory_cap: usize) -> Self {
        let wasi = WasiCtxBuilder::new()
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                cap: memory_cap,
                exceeded: false,
            },
            plugin: plugin.to_string(),
            call: None,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn to_sql(value: &tenant_db::Value) -> ToSqlOutput<'_> {
    use tenant_db::Value;
    ToSqlOutput::Borrowed(match value {
        Value::Null => ValueRef::Null,
        Value::Integer(i) => ValueRef::Integer(*i),
        Value::Real(f) => ValueRef::Real(*f),
        Value::Text(s) => ValueRef::Text(s.as_bytes()),
        Value::Blob(b) => ValueRef::Blob(b),
    })
}

fn from_sql(value: ValueRef<'_>) -> (tenant_db::Value, usize) {
    use tenant_db::Value;
    match value {
        ValueRef::Null => (Value::Null, 1),
        ValueRef::Integer(i) => (Value::Integer(i), 8),
        ValueRef::Real(f) => (Value::Real(f), 8),
        ValueRef::Text(t) => (
            Value::Text(String::from_utf8_lossy(t).into_owned()),
            t.len(),
        ),
        ValueRef::Blob(b) => (Value::Blob(b.to_vec()), b.len()),
    }
}

fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[tenant_db::Value]) -> rusqlite::Result<()> {
    for (index, value) in params.iter().enumerate() {
        stmt.raw_bind_parameter(index + 1, to_sql(value))?;
    }
    Ok(())
}

const NO_CALL: &str = "no call in progress";

/// A failed statement's message for the plugin; notes on the call when the
/// database was busy or locked, so the host can tell contention from a
/// refusal whatever the plugin makes of the message.
fn sql_failed(contended: &mut bool, error: rusqlite::Error) -> String {
    *contended |= malipo_foundations::error::is_sqlite_busy(&error);
    error.to_string()
}

impl tenant_db::Host for HostState {
    fn execute(&mut self, sql: String, params: Vec<tenant_db::Value>) -> Result<u64, String> {
        let call = self.call.as_mut().ok_or(NO_CALL)?;
        call.writable()?;
        // `prepare`, not `prepare_cached`: the authorizer runs at prepare time,
        // and a cached statement would skip it.
        let mut stmt = call
            .conn
            .prepare(&sql)
            .map_err(|e| sql_failed(&mut call.contended, e))?;
        if stmt.parameter_count() != params.len() {
            return Err(format!(
                "statement takes {} parameters, got {}",
                stmt.parameter_count(),
                params.len()
            ));
        }
        bind(&mut stmt, &params).map_err(|e| sql_failed(&mut call.contended, e))?;
        let changed = stmt
            .raw_execute()
            .map_err(|e| sql_failed(&mut call.contended, e))?;
        Ok(changed as u64)
    }

    fn query(
        &mut self,
        sql: String,
        params: Vec<tenant_db::Value>,
    ) -> Result<tenant_db::Rows, String> {
        let call = self.call.as_mut().ok_or(NO_CALL)?;
        call.writable()?;
        let mut stmt = call
            .conn
            .prepare(&sql)
            .map_err(|e| sql_failed(&mut call.contended, e))?;
        if stmt.parameter_count() != params.len() {
            return Err(format!(
                "statement takes {} parameters, got {}",
                stmt.parameter_count(),
                params.len()
            ));
        }
        bind(&mut stmt, &params).map_err(|e| sql_failed(&mut call.contended, e))?;
        let columns: Vec<String> = stmt
            .column_names()
            .into_iter()
            .map(str::to_string)
            .collect();
        let width = columns.len();
        let mut rows = Vec::new();
        let mut raw = stmt.raw_query();
        while let Some(row) = raw.next().map_err(|e| sql_failed(&mut call.contended, e))? {
            let mut values = Vec::with_capacity(width);
            for index in 0..width {
                let (value, size) = from_sql(
                    row.get_ref(index)
                        .map_err(|e| sql_failed(&mut call.contended, e))?,
                );
                if size > call.read_budget {
                    return Err("query result exceeds the plugin output limit".into());
                }
                call.read_budget -= size;
                values.push(value);
            }
            rows.push(values);
        }
        Ok(tenant_db::Rows { columns, rows })
    }
}

impl secrets::Host for HostState {
    fn get(&mut self, name: String) -> Option<String> {
        let plugin = self.plugin.clone();
        let call = self.call.as_mut()?;
        if !call.secrets.contains(&name) {
            return None;
        }
        let (conn, services, tenant) = (&call.conn, &call.services, &call.tenant_id);
        call.access
            .as_host(|| read_secret(conn, services, tenant, &plugin, &name))
    }

    fn put(&mut self, name: String, value: String) -> Result<(), String> {
        let call = self.call.as_mut().ok_or(NO_CALL)?;
        call.writable()?;
        if !call.secrets.contains(&name) {
            return Err(format!("secret `{name}` is not declared in the manifest"));
        }
        if value.len() > 16 * 1024 {
            return Err("a secret may hold at most 16 KiB".into());
        }
        let plugin = self.plugin.clone();
        let (conn, services, tenant) = (&call.conn, &call.services, &call.tenant_id);
        call.access
            .as_host(|| write_secret(conn, services, tenant, &plugin, &name, &value))
    }
}

impl config::Host for HostState {
    fn get(&mut self, name: String) -> Option<String> {
        let plugin = self.plugin.clone();
        let call = self.call.as_mut()?;
        match name.as_str() {
            "callback-base" | "callback-base-opaque" if call.callbacks => {
                let public = call.services.get("public-url")?;
                let public = public.trim_end_matches('/');
                let (conn, services, tenant) = (&call.conn, &call.services, &call.tenant_id);
                let token = call
                    .access
                    .as_host(|| callback_token(conn, services, tenant, &plugin))
                    .ok()?;
                Some(if name == "callback-base" {
                    format!("{public}/callbacks/{plugin}/{tenant}/{token}")
                } else {
                    format!("{public}/hooks/{tenant}/{token}")
                })
            }
            "public-url" | "daraja-emulator-url" | "plan-catalog" => call.services.get(&name),
            "entitlements" => call
                .services
                .entitlements
                .get(&call.tenant_id)
                .map(|json| json.to_string()),
            _ => None,
        }
    }
}

/// The manifest entry for "any host on a public address": loopback,
/// private and link-local addresses only where the operator allows them.
pub const PUBLIC_HOSTS: &str = "public";

/// The plugin's side of the outbound policy: the URL's form, and whether
/// its manifest declares the host (`*`: any host the operator allows;
/// `public`: also any public address). The address side is
/// `malipo_foundations::outbound`'s, applied when the request connects.
fn outbound_policy(
    call: &ActiveCall,
    url: &str,
) -> Result<
    (
        malipo_foundations::outbound::Target,
        malipo_foundations::outbound::Reach,
    ),
    String,
> {
    let target = malipo_foundations::outbound::parse(url).map_err(|e| e.to_string())?;
    let (host, port) = (&target.host, target.port);
    let public_declared = call.outbound_hosts.iter().any(|h| h == PUBLIC_HOSTS);
    let declared = call
        .outbound_hosts
        .iter()
        .any(|h| h == "*" || h == host || port.is_some_and(|p| *h == format!("{host}:{p}")));
    if public_declared {
        Ok((target, malipo_foundations::outbound::Reach::Public))
    } else if declared {
        Ok((target, malipo_foundations::outbound::Reach::OperatorOnly))
    } else {
        Err(format!(
            "host `{host}` is not declared in the plugin's manifest"
        ))
    }
}

/// Longest wait on one outbound request.
const MAX_OUTBOUND_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest outbound response body read.
const MAX_OUTBOUND_BODY: u64 = 1024 * 1024;

impl outbound_http::Host for HostState {
    fn check(&mut self, url: String) -> Result<(), String> {
        let call = self.call.as_ref().ok_or(NO_CALL)?;
        let (target, reach) = outbound_policy(call, &url)?;
        call.services
            .outbound
            .check(target.url.as_str(), reach)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn send(&mut self, request: outbound_http::Request) -> Result<outbound_http::Response, String> {
        let call = self.call.as_mut().ok_or(NO_CALL)?;
        let (target, reach) = match outbound_policy(call, &request.url) {
            Ok(found) => found,
            Err(error) => {
                // `/metrics` (malipo_foundations::telemetry): refusals, by host.
                if let Ok(parsed) = malipo_foundations::outbound::parse(&request.url) {
                    let host = daraja_host(&call.services, &parsed.host, parsed.port);
                    malipo_foundations::telemetry::outbound(&self.plugin, host, Outbound::Refused);
                }
                return Err(error);
            }
        };
        let (host, port) = (target.host.clone(), target.port);
        let timeout =
            Duration::from_millis(u64::from(request.timeout_ms.max(1))).min(MAX_OUTBOUND_TIMEOUT);
        let plugin = self.plugin.clone();
        // Two-phase outbound: the call's work so far commits before the
        // request leaves, and no lock is held while it waits.
        call.outside_transaction(|call| {
            let (_, outgoing) = call
                .services
                .outbound
                .request(&request.method, target.url.as_str(), reach)
                .map_err(|e| e.to_string())?;
            let mut outgoing = outgoing.timeout(timeout);
            for (name, value) in &request.headers {
                outgoing = outgoing.set(name, value);
            }
            let answer = match &request.body {
                Some(body) => outgoing.send_string(body),
                None => outgoing.call(),
            };
            let response = match answer {
                Ok(response) | Err(ureq::Error::Status(_, response)) => response,
                Err(error) => {
                    let refused = matches!(&error, ureq::Error::Transport(t) if t.kind() == ureq::ErrorKind::Dns);
                    let outcome = if refused {
                        Outbound::Refused
                    } else {
                        Outbound::Failed
                    };
                    let label = daraja_host(&call.services, &host, port);
                    malipo_foundations::telemetry::outbound(&plugin, label, outcome);
                    return Err(malipo_foundations::outbound::Outbound::describe(&error, &host, reach));
                }
            };
            let status = response.status();
            let label = daraja_host(&call.services, &host, port);
            malipo_foundations::telemetry::outbound(&plugin, label, Outbound::Status(status));
            let headers = response
                .headers_names()
                .into_iter()
                .filter_map(|name| {
                    response
                        .header(&name)
                        .map(|value| (name.clone(), value.to_string()))
                })
                .collect();
            let mut body = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(response.into_reader(), MAX_OUTBOUND_BODY),
                &mut body,
            )
            .map_err(|e| format!("reading the answer of {host}: {e}"))?;
            Ok(outbound_http::Response {
                status,
                headers,
                body,
            })
        })?
    }
}

impl daraja::Host for HostState {
    fn security_credential(
        &mut self,
        environment: String,
        base_url: Option<String>,
        initiator_password: String,
    ) -> Result<String, String> {
        let call = self.call.as_mut().ok_or(NO_CALL)?;
        let seal = |call: &ActiveCall| {
            call.services.daraja.security_credential(
                &environment,
                base_url.as_deref(),
                &initiator_password,
            )
        };
        if call
            .services
            .daraja
            .needs_fetch(&environment, base_url.as_deref())
        {
            // Fetching a certificate is network I/O: outside the transaction.
            call.outside_transaction(seal)?
        } else {
            seal(call)
        }
    }
}

/// Events one call may emit.
const MAX_EVENTS_PER_CALL: u32 = 1000;

impl events::Host for HostState {
    fn emit(&mut self, name: String, payload: String) {
        let plugin = self.plugin.clone();
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if call.emitted >= MAX_EVENTS_PER_CALL
            || serde_json::from_str::<serde_json::Value>(&payload).is_err()
        {
            if let Ok(mut slot) = call.access_violation_slot() {
                slot.get_or_insert_with(|| {
                    "event payload must be JSON; at most 1000 events a call".into()
                });
            }
            return;
        }
        if !call
            .emits
            .iter()
            .any(|pattern| super::manifest::pattern_covers(pattern, &name))
        {
            // The call fails (capability denied): an event name belongs to
            // the plugin that declares it in `emits`.
            if let Ok(mut slot) = call.access_violation_slot() {
                slot.get_or_insert_with(|| {
                    format!(
                        "emit of `{name}`, which the plugin's manifest does not declare in `emits` \
                         (an event name belongs to the plugin that declares it)"
                    )
                });
            }
            return;
        }
        if call.writable().is_err() {
            return;
        }
        call.emitted += 1;
        call.uncommitted_events += 1;
        let conn = &call.conn;
        let written = call
            .access
            .as_host(|| malipo_storage::tenancy::outbox::append(conn, &name, &payload, &plugin));
        if let Err(error) = written {
            tracing::error!(%error, plugin, "could not write event to outbox");
        }
    }
}

impl ActiveCall {
    fn access_violation_slot(&self) -> Result<std::sync::MutexGuard<'_, Option<String>>, ()> {
        self.access.violation_slot().map_err(|_| ())
    }
}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) {
        let (tenant, request) = self
            .call
            .as_ref()
            .map(|c| (c.tenant_id.as_str(), c.request_id.as_str()))
            .unwrap_or(("", ""));
        let plugin = self.plugin.as_str();
        let message: String = message.chars().take(4096).collect();
        match level {
            log::Level::Trace => tracing::trace!(
                plugin,
                tenant_id = tenant,
                request_id = request,
                "{message}"
            ),
            log::Level::Debug => tracing::debug!(
                plugin,
                tenant_id = tenant,
                request_id = request,
                "{message}"
            ),
            log::Level::Info => tracing::info!(
                plugin,
                tenant_id = tenant,
                request_id = request,
                "{message}"
            ),
            log::Level::Warn => tracing::warn!(
                plugin,
                tenant_id = tenant,
                request_id = request,
                "{message}"
            ),
            log::Level::Error => tracing::error!(
                plugin,
                tenant_id = tenant,
                request_id = request,
                "{message}"
            ),
        }
    }
}

/// Longest progress message passed on, in characters.
const MAX_PROGRESS_MESSAGE_CHARS: usize = 200;

impl progress::Host for HostState {
    fn report(&mut self, done: u64, total: Option<u64>, message: Option<String>) {
        let Some(sink) = self.call.as_ref().and_then(|call| call.progress.as_ref()) else {
            return;
        };
        let message = message.map(|m| m.chars().take(MAX_PROGRESS_MESSAGE_CHARS).collect());
        // Nobody listening any more is not the plugin's problem.
        let _ = sink.send(super::Progress {
            done,
            total,
            message,
        });
    }
}

impl mail::Host for HostState {
    fn send(&mut self, message: mail::Message) -> Result<(), mail::SendError> {
        let Some(call) = self.call.as_mut() else {
            return Err(mail::SendError::Unavailable(NO_CALL.into()));
        };
        if !call.sends_mail {
            if let Ok(mut slot) = call.access_violation_slot() {
                slot.get_or_insert_with(|| "mail.send without `sends-mail` in the manifest".into());
            }
            return Err(mail::SendError::Rejected(
                "this plugin may not send mail".into(),
            ));
        }
        // SMTP is network I/O: outside the transaction.
        call.outside_transaction(|call| call.services.mail.send(&message))
            .map_err(mail::SendError::Unavailable)?
    }
}

impl super::bindings::malipo::plugin::types::Host for HostState {}
