//! What a plugin instance may reach, held in its store: the WASI context
//! with nothing granted, the memory limiter, and — only while a call is in
//! progress — the calling tenant's connection inside the call's transaction.
//!
//! One capability per WIT interface: `tenant-db`, `secrets`, `events`, `log`.
//! Each reaches only the tenant of the current call; between calls an
//! instance holds no connection at all.

use std::sync::Arc;

use rusqlite::types::{ToSqlOutput, ValueRef};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{events, log, secrets, tenant_db};
use crate::tenancy::TenantConn;
use crate::tenancy::authorizer::PluginAccess;

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
    /// Bytes of query results the call may still read.
    pub read_budget: usize,
    /// Events written so far.
    pub emitted: u32,
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

impl tenant_db::Host for HostState {
    fn execute(&mut self, sql: String, params: Vec<tenant_db::Value>) -> Result<u64, String> {
        let call = self.call.as_mut().ok_or(NO_CALL)?;
        // `prepare`, not `prepare_cached`: the authorizer runs at prepare time,
        // and a cached statement would skip it.
        let mut stmt = call.conn.prepare(&sql).map_err(|e| e.to_string())?;
        if stmt.parameter_count() != params.len() {
            return Err(format!(
                "statement takes {} parameters, got {}",
                stmt.parameter_count(),
                params.len()
            ));
        }
        bind(&mut stmt, &params).map_err(|e| e.to_string())?;
        let changed = stmt.raw_execute().map_err(|e| e.to_string())?;
        Ok(changed as u64)
    }

    fn query(
        &mut self,
        sql: String,
        params: Vec<tenant_db::Value>,
    ) -> Result<tenant_db::Rows, String> {
        let call = self.call.as_mut().ok_or(NO_CALL)?;
        let mut stmt = call.conn.prepare(&sql).map_err(|e| e.to_string())?;
        if stmt.parameter_count() != params.len() {
            return Err(format!(
                "statement takes {} parameters, got {}",
                stmt.parameter_count(),
                params.len()
            ));
        }
        bind(&mut stmt, &params).map_err(|e| e.to_string())?;
        let columns: Vec<String> = stmt
            .column_names()
            .into_iter()
            .map(str::to_string)
            .collect();
        let width = columns.len();
        let mut rows = Vec::new();
        let mut raw = stmt.raw_query();
        while let Some(row) = raw.next().map_err(|e| e.to_string())? {
            let mut values = Vec::with_capacity(width);
            for index in 0..width {
                let (value, size) = from_sql(row.get_ref(index).map_err(|e| e.to_string())?);
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
        let call = self.call.as_mut()?;
        if !call.secrets.contains(&name) {
            return None;
        }
        let conn = &call.conn;
        call.access.as_host(|| {
            conn.query_row(
                "SELECT value FROM secrets WHERE name = ?1",
                [&name],
                |row| row.get::<_, Vec<u8>>(0),
            )
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
        })
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
        call.emitted += 1;
        let conn = &call.conn;
        let written = call.access.as_host(|| {
            conn.execute(
                "INSERT INTO outbox (event_id, name, payload, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    uuid::Uuid::new_v4().to_string(),
                    name,
                    payload,
                    plugin,
                    crate::time_util::now_rfc3339()
                ],
            )
        });
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

impl super::bindings::malipo::plugin::types::Host for HostState {}
