//! One call at a time per idempotency key: concurrent retries carrying the
//! same `Idempotency-Key` for the same tenant and plugin wait for the first
//! to finish, then replay its recorded answer. Without this, a retry that
//! arrives while the first call is talking to Daraja (its intent committed,
//! its answer not yet recorded — see "Two-phase outbound" in
//! docs/ARCHITECTURE.md) could only be refused.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use moka::sync::Cache;

use malipo_foundations::ids::TenantId;

type Key = (TenantId, String, String);

/// Locks of the keys in use; an entry idle for an hour is forgotten (no
/// call runs that long: the plugin deadline and outbound timeouts bound it).
static LOCKS: LazyLock<Cache<Key, Arc<tokio::sync::Mutex<()>>>> = LazyLock::new(|| {
    Cache::builder()
        .max_capacity(100_000)
        .time_to_idle(Duration::from_secs(3600))
        .build()
});

/// Waits until no other call of `plugin` in `tenant` holds `key`, and
/// holds it until the guard is dropped.
pub async fn hold(tenant: TenantId, plugin: &str, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
    let lock = LOCKS.get_with((tenant, plugin.to_string(), key.to_string()), || {
        Arc::new(tokio::sync::Mutex::new(()))
    });
    lock.lock_owned().await
}
