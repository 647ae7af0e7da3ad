//! Plugin runtime and tenancy benchmarks (run with `cargo bench -p malipo
//! --bench runtime`). Prints figures; records nothing by itself — copy them
//! into docs/PERFORMANCE.md with the machine and the date.
//!
//! 1. `invoke` of the sandbox plugin's no-op operation on a live instance,
//!    median and p99, next to the same work done natively in the host
//!    (pooled connection, transaction, JSON answer).
//! 2. Scaling: calls per second with 1 and with 2 worker threads.
//! 3. Cold open of a tenant not in the cache, and resident memory after
//!    touching 10,000 tenants (`MALIPO_BENCH_TENANTS` to change).
//! 4. Events delivered per second through the outbox: the sandbox plugin
//!    emits 5,000 events (`MALIPO_BENCH_EVENTS`), then delivery passes hand
//!    each to its subscriber's `on-event`, one transaction per delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use malipo::app::build_state;
use malipo::config::Config;
use malipo::core::Core;
use malipo::ids::TenantId;
use malipo::plugins::CallRequest;
use malipo::plugins::bindings::CallContext;

fn ctx(tenant: TenantId) -> CallContext {
    CallContext {
        tenant_id: tenant.to_string(),
        user_id: None,
        store_id: None,
        request_id: "bench".into(),
        channel: "system".into(),
        now_ms: 0,
        allowed_stores: None,
    }
}

fn noop(state: &Core, tenant: TenantId, db: &malipo::tenancy::TenantDb) {
    let request = CallRequest {
        db,
        ctx: ctx(tenant),
        operation: "sandbox.noop",
        input: "{}",
        read_only: true,
        progress: None,
    };
    let out = state
        .runtime
        .invoke("sandbox", request, |_, _| Ok(()))
        .expect("noop");
    assert_eq!(out, r#"{"ok":true}"#);
}

fn native(db: &malipo::tenancy::TenantDb) {
    let conn = db.conn().expect("conn");
    conn.execute_batch("BEGIN DEFERRED").expect("begin");
    let out = serde_json::json!({"ok": true}).to_string();
    std::hint::black_box(out);
    conn.execute_batch("COMMIT").expect("commit");
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99))
}

fn time_each(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect()
}

fn throughput(threads: usize, window: Duration, work: Arc<dyn Fn(usize) + Send + Sync>) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|index| {
            let work = Arc::clone(&work);
            std::thread::spawn(move || {
                let mut calls = 0u64;
                while start.elapsed() < window {
                    work(index);
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Section 4: emit, then deliver and time it.
fn events(state: &Core, tenant: TenantId, db: &malipo::tenancy::TenantDb) {
    let count: usize = std::env::var("MALIPO_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    for i in 0..count {
        let input = format!(r#"{{"name":"sandbox.pinged","payload":{{"n":{i}}}}}"#);
        let request = CallRequest {
            db,
            ctx: ctx(tenant),
            operation: "sandbox.emit",
            input: &input,
            read_only: false,
            progress: None,
        };
        state
            .runtime
            .invoke("sandbox", request, |_, _| Ok(()))
            .expect("emit");
    }
    let started = Instant::now();
    let mut delivered = 0;
    while delivered < count {
        let report = malipo::events::deliver_tenant(state, db, 1_000).expect("delivery pass");
        assert!(report.delivered > 0, "a pass delivered nothing: {report:?}");
        delivered += report.delivered;
    }
    let elapsed = started.elapsed();
    println!(
        "outbox delivery: {delivered} events to on-event in {elapsed:?}: {:.0} events/s",
        delivered as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(
        std::path::Path::new(env!("MALIPO_TEST_GUESTS_DIR")).join("malipo_test_sandbox.wasm"),
        plugins.join("malipo_test_sandbox.wasm"),
    )
    .expect("copy sandbox plugin");
    let state = build_state(Config::from_env(dir.path())).expect("state");
    let tenants: Vec<TenantId> = (0..2).map(|_| TenantId::new()).collect();
    let dbs: Vec<_> = tenants
        .iter()
        .map(|t| state.tenancy.create(*t).expect("tenant"))
        .collect();

    // Warm up: instantiate, fill caches.
    for _ in 0..2_000 {
        noop(&state, tenants[0], &dbs[0]);
        native(&dbs[0]);
    }
    let n = 20_000;
    let (plugin_p50, plugin_p99) = percentiles(time_each(n, || noop(&state, tenants[0], &dbs[0])));
    let (native_p50, native_p99) = percentiles(time_each(n, || native(&dbs[0])));
    println!("invoke no-op (live instance, txn):  p50 {plugin_p50:?}  p99 {plugin_p99:?}");
    println!("native same work (conn, txn, JSON): p50 {native_p50:?}  p99 {native_p99:?}");
    println!(
        "ratio plugin/native: p50 {:.2}x  p99 {:.2}x",
        plugin_p50.as_secs_f64() / native_p50.as_secs_f64(),
        plugin_p99.as_secs_f64() / native_p99.as_secs_f64()
    );

    let window = Duration::from_secs(3);
    let work: Arc<dyn Fn(usize) + Send + Sync> = {
        let state = Arc::clone(&state);
        let tenants = tenants.clone();
        let dbs = dbs.clone();
        Arc::new(move |i| noop(&state, tenants[i % 2], &dbs[i % 2]))
    };
    let one = throughput(1, window, Arc::clone(&work));
    let two = throughput(2, window, work);
    println!(
        "scaling (one tenant per thread): 1 thread {one:.0}/s, 2 threads {two:.0}/s, +{:.0}%",
        (two / one - 1.0) * 100.0
    );
    let same: Arc<dyn Fn(usize) + Send + Sync> = {
        let state = Arc::clone(&state);
        let (tenant, db) = (tenants[0], dbs[0].clone());
        Arc::new(move |_| noop(&state, tenant, &db))
    };
    let one_same = throughput(1, window, Arc::clone(&same));
    let two_same = throughput(2, window, same);
    println!(
        "scaling (both threads on one tenant): 1 thread {one_same:.0}/s, 2 threads {two_same:.0}/s, +{:.0}%",
        (two_same / one_same - 1.0) * 100.0
    );

    events(&state, tenants[1], &dbs[1]);

    let count: usize = std::env::var("MALIPO_BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let before = rss_kib();
    let started = Instant::now();
    let many: Vec<TenantId> = (0..count)
        .map(|_| {
            let id = TenantId::new();
            state.tenancy.create(id).expect("create");
            noop(&state, id, &state.tenancy.get(id).expect("get"));
            id
        })
        .collect();
    println!(
        "created and touched {count} tenants in {:?}; RSS {} MiB -> {} MiB (tenant cache {} open)",
        started.elapsed(),
        before / 1024,
        rss_kib() / 1024,
        state.tenancy.open_count()
    );
    let mut cold = Vec::new();
    for id in many.iter().take(200) {
        state.tenancy.close(*id);
        let start = Instant::now();
        let db = state.tenancy.get(*id).expect("reopen");
        cold.push(start.elapsed());
        drop(db);
    }
    let (cold_p50, cold_p99) = percentiles(cold);
    println!(
        "cold open of an evicted tenant (pool + migration check + catalog check): p50 {cold_p50:?} p99 {cold_p99:?}"
    );
    println!(
        "RSS after touching {count} tenants: {} MiB",
        rss_kib() / 1024
    );
}
