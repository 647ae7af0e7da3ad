//! The one commented place where the WebAssembly engine is configured.
//!
//! - Component model, Cranelift, and a compiled-code cache on disk (wasmtime's
//!   own, keyed by the engine's compatibility hash) so a restart does not
//!   recompile plugins.
//! - Epoch interruption for CPU deadlines: a background thread bumps the
//!   epoch every [`EPOCH_TICK`]; a call's deadline is a number of ticks.
//! - The pooling allocator, because instances are created on every cache
//!   miss; some small VMs cannot reserve its address space, so we fall back
//!   to on-demand allocation and say so in the log.

use std::path::Path;
use std::time::Duration;

use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

/// How often the epoch advances; the resolution of plugin deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances the pooling allocator reserves room for (`MALIPO_POOL_INSTANCES`).
const POOL_INSTANCES: u32 = 1000;

fn base_config(cache_dir: &Path) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Linear memories reserve only what the memory cap needs, with a small
    // guard, so that many idle instances cost little address space.
    config.memory_reservation(128 << 20);
    config.memory_guard_size(32 << 20);
    config.memory_reservation_for_growth(0);
    if std::fs::create_dir_all(cache_dir).is_ok() {
        let mut cache = CacheConfig::new();
        cache.with_directory(cache_dir);
        match Cache::new(cache) {
            Ok(cache) => {
                config.cache(Some(cache));
            }
            Err(error) => tracing::warn!(%error, "compiled-code cache disabled"),
        }
    }
    config
}

/// Builds the engine (pooling allocator if the machine allows it) and starts
/// the epoch ticker.
pub fn build(cache_dir: &Path, memory_cap: usize) -> anyhow::Result<Engine> {
    let pooling = malipo_foundations::config::var("MALIPO_POOLING")
        .map(|v| v != "0")
        .unwrap_or(true);
    let engine = if pooling {
        let instances = malipo_foundations::config::var("MALIPO_POOL_INSTANCES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(POOL_INSTANCES);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances);
        pool.total_core_instances(instances * 4);
        pool.total_memories(instances * 2);
        pool.total_tables(instances * 4);
        pool.max_memory_size(memory_cap);
        pool.max_memories_per_component(4);
        pool.max_core_instances_per_component(16);
        let mut config = base_config(cache_dir);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&config) {
            Ok(engine) => engine,
            Err(error) => {
                tracing::warn!(%error, "pooling allocator unavailable; using on-demand allocation");
                Engine::new(&base_config(cache_dir))?
            }
        }
    } else {
        tracing::info!("pooling allocator disabled by MALIPO_POOLING=0");
        Engine::new(&base_config(cache_dir))?
    };
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("malipo-epoch".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(engine)
}
