//! The core's state: the narrow set of services the core and the host's
//! own operations run with — built once by `malipo::app`, shared by every
//! channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use moka::sync::Cache;

use crate::core::authz::DecisionKey;
use crate::core::operation::Operation;
use malipo_foundations::config::Config;
use malipo_foundations::ids::TenantId;
use malipo_foundations::jwt::JwtKeys;
use malipo_runtime::plugins::PluginRuntime;
use malipo_runtime::plugins::manifest::PermissionSpec;
use malipo_storage::control::ControlDb;
use malipo_storage::tenancy::Tenancy;

/// The services every channel calls the core with: storage, the plugin
/// runtime, the operations and what guards them. Channels keep their own
/// surfaces (the OpenAPI document, the MCP tool catalog, `/metrics` access)
/// beside it.
pub struct Core {
    /// Effective configuration.
    pub config: Config,
    /// The platform database.
    pub control: ControlDb,
    /// The tenant store.
    pub tenancy: Arc<Tenancy>,
    /// The plugin runtime.
    pub runtime: Arc<PluginRuntime>,
    /// Access-token keys.
    pub jwt: JwtKeys,
    /// Every operation served.
    pub operations: Vec<Arc<Operation>>,
    /// Every permission: the host's and each plugin's.
    pub catalog: Vec<PermissionSpec>,
    /// Cached authorization answers.
    pub authz_cache: Cache<DecisionKey, bool>,
    /// Per-tenant generation of the authorization cache.
    pub authz_generations: Mutex<HashMap<TenantId, u64>>,
    /// A real Argon2id hash checked when a login names an unknown email.
    pub dummy_hash: String,
    /// Wakes the callback worker when a callback is stored.
    pub callback_signal: tokio::sync::Notify,
    /// Wakes the event dispatcher when a plugin call commits events (the
    /// runtime's [`PluginRuntime::events_emitted`]).
    pub event_signal: Arc<tokio::sync::Notify>,
    /// The outbox's change counter: bumped by the event dispatcher when a
    /// committed emit woke it; channels that follow the outbox (REST's
    /// event streams) subscribe, so the core names none of them.
    pub outbox_changes: tokio::sync::watch::Sender<u64>,
    /// Per-address limit on the unauthenticated routes (login, register, resets).
    pub public_limiter: crate::core::limits::PublicLimiter,
    /// Per-tenant limit on authenticated calls, REST and MCP together.
    pub tenant_limiter: crate::core::limits::TenantLimiter,
    /// Plans, entitlements and the platform tenant.
    pub billing: crate::billing::Billing,
    /// Usage counts not yet flushed to the usage plugin.
    pub meter: crate::metering::Meter,
    /// Abnormal-behaviour detector (`crate::alerts::service`).
    pub alerts: crate::alerts::service::Alerts,
    /// Custom domains: cached hostname → tenant lookups.
    pub hostnames: malipo_storage::hostnames::Hostnames,
}

impl Core {
    /// The authorizing plugin's data changed in `tenant`: cached
    /// authorization answers of that tenant are stale.
    pub fn authz_changed(&self, tenant: TenantId) {
        if let Ok(mut generations) = self.authz_generations.lock() {
            *generations.entry(tenant).or_insert(0) += 1;
        }
    }
}
