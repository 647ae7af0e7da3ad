//! The outbox dispatcher: hands every event a plugin emitted to each plugin
//! whose manifest subscribes to its name, through that plugin's `on-event`.
//!
//! Delivery is at least once, per subscriber: `event_deliveries` holds one
//! row per (event, subscriber), so one subscriber's failure neither blocks
//! nor repeats another's delivery. A delivery that succeeds is marked done
//! inside the subscriber's own transaction (see
//! [`PluginRuntime::deliver_event`]): once its writes commit, the event is
//! never handed to it again. A subscriber that answers an error, traps or
//! breaks a limit has its writes rolled back and is retried after
//! `MALIPO_EVENT_RETRY_BASE_MS` (default 1000) doubled on each failure,
//! capped at ten minutes, and given up (logged, `failed_at` set) after
//! [`MAX_ATTEMPTS`]. `outbox.delivered_at` is set once every subscriber is
//! done (delivered or given up); an event nobody subscribes to is done at
//! once. Events under retry do not hold back later events: there is no
//! ordering guarantee between events.
//!
//! The worker runs a pass over the active tenants whose database is open
//! when a call commits events and every `MALIPO_EVENT_INTERVAL_MS` (default
//! 1000; `0` turns delivery off in this process), and over every active
//! tenant every `MALIPO_JOB_SWEEP_SECS` (default 3600), like the jobs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};

use crate::core::Core;
pub use crate::jobs::Scope;
use malipo_runtime::plugins::bindings::Event;
use malipo_runtime::plugins::{PluginRuntime, host_context};
use malipo_storage::tenancy::TenantDb;

/// Failed attempts after which a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 50;
/// The longest wait between two attempts of one delivery.
pub const MAX_BACKOFF_MS: i64 = 600_000;
/// The channel of a delivery's call context.
pub const CHANNEL: &str = "event";
/// Outbox rows read at a time.
const PAGE: i64 = 200;
/// Deliveries attempted per tenant in one pass, so that one busy tenant
/// does not hold up the others.
const MAX_ATTEMPTS_PER_PASS: usize = 500;
/// Longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 500;

/// Why a dispatch pass could not run (a plugin's failure is not one: it is
/// recorded on its delivery and retried).
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The tenant's database.
    #[error("tenant database: {0}")]
    Db(#[from] rusqlite::Error),
    /// Opening the tenant's database.
    #[error(transparent)]
    Tenancy(#[from] malipo_storage::tenancy::TenancyError),
    /// The platform database.
    #[error(transparent)]
    Control(#[from] malipo_storage::control::ControlError),
    /// The blocking task died.
    #[error("dispatch task failed: {0}")]
    Task(String),
}

/// What a pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Deliveries that committed.
    pub delivered: usize,
    /// Deliveries that failed and will be retried.
    pub retrying: usize,
    /// Deliveries given up for good in this pass.
    pub given_up: usize,
    /// Outbox events every subscriber is now done with.
    pub settled: usize,
}

impl DeliveryReport {
    fn add(&mut self, other: &Self) {
        self.delivered += other.delivered;
        self.retrying += other.retrying;
        self.given_up += other.given_up;
        self.settled += other.settled;
    }
}

/// Timing of the dispatcher, from the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DispatchSettings {
    /// Wake-up interval; `None` when delivery is off (`MALIPO_EVENT_INTERVAL_MS=0`).
    pub interval: Option<Duration>,
    /// Wait after a first failure (`MALIPO_EVENT_RETRY_BASE_MS`).
    pub retry_base_ms: i64,
    /// Full sweep period (`MALIPO_JOB_SWEEP_SECS`).
    pub sweep: Duration,
}

impl DispatchSettings {
    /// Reads `MALIPO_EVENT_INTERVAL_MS`, `MALIPO_EVENT_RETRY_BASE_MS` and
    /// `MALIPO_JOB_SWEEP_SECS`.
    pub fn from_env() -> Self {
        let number = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        let interval = number("MALIPO_EVENT_INTERVAL_MS", 1000);
        Self {
            interval: (interval > 0).then(|| Duration::from_millis(interval)),
            retry_base_ms: i64::try_from(number("MALIPO_EVENT_RETRY_BASE_MS", 1000))
                .unwrap_or(MAX_BACKOFF_MS)
                .clamp(1, MAX_BACKOFF_MS),
            sweep: Duration::from_secs(number("MALIPO_JOB_SWEEP_SECS", 3600).max(1)),
        }
    }
}

/// The wait before the next attempt after `failures` failed attempts
/// (at least one): `base`, doubled per failure, capped at [`MAX_BACKOFF_MS`].
pub fn backoff_ms(base_ms: i64, failures: i64) -> i64 {
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base_ms
        .saturating_mul(1i64 << doublings)
        .clamp(1, MAX_BACKOFF_MS)
}

/// Delivers, forever: on every committed emit, every interval, and a full
/// sweep of all active tenants every sweep period. Returns at once when
/// delivery is off.
pub async fn worker(state: Arc<Core>) {
    let settings = DispatchSettings::from_env();
    let Some(interval) = settings.interval else {
        tracing::info!("event delivery is off (MALIPO_EVENT_INTERVAL_MS=0)");
        return;
    };
    let signal = Arc::clone(&state.event_signal);
    let mut last_sweep = Instant::now();
    loop {
        if tokio::time::timeout(interval, signal.notified())
            .await
            .is_ok()
        {
            // Open event streams read the outbox too (`signal` has one
            // consumer: this loop); they follow the change counter.
            state
                .outbox_changes
                .send_modify(|generation| *generation = generation.wrapping_add(1));
        }
        let scope = if last_sweep.elapsed() >= settings.sweep {
            last_sweep = Instant::now();
            Scope::AllTenants
        } else {
            Scope::OpenTenants
        };
        if let Err(error) = run_once(&state, scope).await {
            tracing::error!(%error, "event delivery pass failed");
        }
    }
}

/// One pass over the active tenants of `scope` (for the worker, tests and
/// tools). A tenant whose pass fails is logged and skipped.
pub async fn run_once(state: &Arc<Core>, scope: Scope) -> Result<DeliveryReport, DispatchError> {
    let retry_base_ms = DispatchSettings::from_env().retry_base_ms;
    let for_list = Arc::clone(state);
    let tenants = tokio::task::spawn_blocking(move || scope.tenants(&for_list))
        .await
        .map_err(|e| DispatchError::Task(e.to_string()))??;
    let mut report = DeliveryReport::default();
    for id in tenants {
        let state = Arc::clone(state);
        let outcome = tokio::task::spawn_blocking(move || {
            let db = state.tenancy.get(id)?;
            let report = deliver_tenant(&state, &db, retry_base_ms);
            // The outbox-depth estimate of `/metrics` (malipo_foundations::telemetry).
            observe_outbox(&db);
            report
        })
        .await
        .map_err(|e| DispatchError::Task(e.to_string()))?;
        match outcome {
            Ok(done) => report.add(&done),
            Err(error) => {
                tracing::warn!(tenant = %id, %error, "event delivery failed for a tenant")
            }
        }
    }
    Ok(report)
}

/// Writes an event of the host's own (e.g. `invitation.created`) to a
/// tenant's outbox with `source = 'host'`, on `conn` (inside the caller's
/// transaction when it has one). Answers the event id. The caller wakes the
/// worker with [`wake`] once its transaction committed.
pub fn emit_host_event(
    conn: &rusqlite::Connection,
    name: &str,
    payload: &serde_json::Value,
) -> rusqlite::Result<String> {
    append(conn, name, &payload.to_string(), "host")
}

use malipo_storage::tenancy::outbox::append;

/// Wakes the delivery worker (after a host event committed).
pub fn wake(state: &Core) {
    state.event_signal.notify_one();
}

/// The state of one (event, subscriber) delivery.
struct Delivery {
    attempts: i64,
    next_attempt_ms: i64,
    finished: bool,
}

/// The host's own subscriber: settles invoices from the platform
/// tenant's payment events ([`crate::billing::charges`]).
pub const HOST_BILLING: &str = "host:billing";

/// Delivers the due events of one tenant's outbox to their subscribers:
/// the plugins that subscribe to each, and the host's own.
pub fn deliver_tenant(
    state: &Core,
    db: &TenantDb,
    retry_base_ms: i64,
) -> Result<DeliveryReport, DispatchError> {
    let runtime = &state.runtime;
    let platform = state.billing.platform_tenant() == Some(db.id());
    let mut report = DeliveryReport::default();
    let mut budget = MAX_ATTEMPTS_PER_PASS;
    let mut after = 0i64;
    loop {
        let page = pending_page(db, after)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = *last;
        for (id, event) in page {
            let mut subscribers: Vec<String> = runtime
                .plugins()
                .filter(|p| p.manifest.subscriptions.contains(&event.name))
                .map(|p| p.manifest.name.clone())
                .collect();
            if platform && crate::billing::charges::SETTLING_EVENTS.contains(&event.name.as_str()) {
                subscribers.push(HOST_BILLING.to_string());
            }
            let mut done = true;
            for plugin in &subscribers {
                let delivery = delivery(db, &event.id, plugin)?;
                if delivery.finished {
                    continue;
                }
                let now = now_ms();
                if delivery.next_attempt_ms > now || budget == 0 {
                    done = false;
                    continue;
                }
                budget -= 1;
                let outcome = if plugin == HOST_BILLING {
                    deliver_to_host(state, db, &event)
                } else {
                    deliver_one(runtime, db, plugin, &event)
                };
                match outcome {
                    Ok(()) => report.delivered += 1,
                    Err(error) => {
                        let message: String = error.chars().take(MAX_ERROR_CHARS).collect();
                        let wait = backoff_ms(retry_base_ms, delivery.attempts + 1);
                        match record_failure(db, &event.id, plugin, &message, now + wait)? {
                            // Delivered by someone else meanwhile.
                            None => {}
                            Some(true) => {
                                report.given_up += 1;
                                tracing::error!(
                                    tenant = %db.id(), plugin, event = event.name,
                                    event_id = event.id, error = message,
                                    "event delivery given up after {MAX_ATTEMPTS} attempts"
                                );
                            }
                            Some(false) => {
                                report.retrying += 1;
                                done = false;
                                tracing::warn!(
                                    tenant = %db.id(), plugin, event = event.name,
                                    event_id = event.id, error = message, retry_in_ms = wait,
                                    "event delivery failed; will retry"
                                );
                            }
                        }
                    }
                }
            }
            if done {
                let conn = db.conn()?;
                let changed = conn.execute(
                    "UPDATE outbox SET delivered_at = ?1 WHERE id = ?2 AND delivered_at IS NULL",
                    params![malipo_foundations::time_util::now_rfc3339(), id],
                )?;
                report.settled += changed;
                if changed == 1
                    && event.name == "payment.failed"
                    && let Some(crossed) = state
                        .alerts
                        .observe(db.id(), crate::alerts::service::Kind::FailedPayments)
                {
                    crate::alerts::service::raise(state, &crossed);
                }
            }
        }
        if budget == 0 {
            break;
        }
    }
    Ok(report)
}

fn now_ms() -> i64 {
    i64::try_from(malipo_foundations::time_util::unix_now_ms()).unwrap_or(i64::MAX)
}

/// Undelivered outbox events after row `after`, oldest first.
fn pending_page(db: &TenantDb, after: i64) -> Result<Vec<(i64, Event)>, DispatchError> {
    let conn = db.conn()?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, event_id, name, payload, source FROM outbox
         WHERE delivered_at IS NULL AND id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![after, PAGE], |row| {
            Ok((
                row.get(0)?,
                Event {
                    id: row.get(1)?,
                    name: row.get(2)?,
                    payload: row.get(3)?,
                    source: row.get(4)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The delivery row of (event, plugin), made if new.
fn delivery(db: &TenantDb, event_id: &str, plugin: &str) -> Result<Delivery, DispatchError> {
    let conn = db.conn()?;
    conn.execute(
        "INSERT OR IGNORE INTO event_deliveries (event_id, plugin) VALUES (?1, ?2)",
        params![event_id, plugin],
    )?;
    let row = conn
        .query_row(
            "SELECT attempts, next_attempt_ms, delivered_at IS NOT NULL OR failed_at IS NOT NULL
             FROM event_deliveries WHERE event_id = ?1 AND plugin = ?2",
            params![event_id, plugin],
            |row| {
                Ok(Delivery {
                    attempts: row.get(0)?,
                    next_attempt_ms: row.get(1)?,
                    finished: row.get(2)?,
                })
            },
        )
        .optional()?;
    // The row was just made: only a deleted tenant file could lose it.
    Ok(row.unwrap_or(Delivery {
        attempts: 0,
        next_attempt_ms: 0,
        finished: true,
    }))
}

/// Runs the plugin's `on-event`; the delivery is marked done in the same
/// transaction as the plugin's writes. Answers the failure as text.
fn deliver_one(
    runtime: &PluginRuntime,
    db: &TenantDb,
    plugin: &str,
    event: &Event,
) -> Result<(), String> {
    let ctx = host_context(
        db.id(),
        None,
        CHANNEL,
        format!("event-{}", uuid::Uuid::new_v4()),
    );
    runtime
        .deliver_event(plugin, db, ctx, event, |conn| {
            let changed = mark_delivered(conn, &event.id, plugin)?;
            // Another dispatcher delivered it first: roll this one back.
            if changed != 1 {
                return Err(rusqlite::Error::StatementChangedRows(changed));
            }
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1 WHERE event_id = ?1",
                [&event.id],
            )?;
            Ok(())
        })
        .map_err(|error| error.to_string())
}

/// Hands an event to the host's billing subscriber, then marks it
/// delivered. The settlement is idempotent, so a crash between the two
/// only repeats a no-op.
fn deliver_to_host(state: &Core, db: &TenantDb, event: &Event) -> Result<(), String> {
    crate::billing::charges::settle_from_event(state, db.id(), event)?;
    let conn = db.conn().map_err(|e| e.to_string())?;
    mark_delivered(&conn, &event.id, HOST_BILLING).map_err(|e| e.to_string())?;
    Ok(())
}

/// Marks a delivery done (one more attempt, no error); answers the rows
/// changed: 0 when it was already finished.
fn mark_delivered(
    conn: &rusqlite::Connection,
    event_id: &str,
    subscriber: &str,
) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE event_deliveries
         SET attempts = attempts + 1, delivered_at = ?3, last_error = NULL
         WHERE event_id = ?1 AND plugin = ?2 AND delivered_at IS NULL AND failed_at IS NULL",
        params![
            event_id,
            subscriber,
            malipo_foundations::time_util::now_rfc3339()
        ],
    )
}

/// Records a failed attempt. Answers whether the delivery is now given up,
/// or `None` if it was already finished.
fn record_failure(
    db: &TenantDb,
    event_id: &str,
    plugin: &str,
    message: &str,
    next_attempt_ms: i64,
) -> Result<Option<bool>, DispatchError> {
    let conn = db.conn()?;
    let given_up = conn
        .query_row(
            "UPDATE event_deliveries
             SET attempts = attempts + 1, last_error = ?3, next_attempt_ms = ?4,
                 failed_at = CASE WHEN attempts + 1 >= ?5 THEN ?6 END
             WHERE event_id = ?1 AND plugin = ?2
               AND delivered_at IS NULL AND failed_at IS NULL
             RETURNING failed_at IS NOT NULL",
            params![
                event_id,
                plugin,
                message,
                next_attempt_ms,
                MAX_ATTEMPTS,
                malipo_foundations::time_util::now_rfc3339()
            ],
            |row| row.get::<_, bool>(0),
        )
        .optional()?;
    if given_up.is_some() {
        conn.execute(
            "UPDATE outbox SET attempts = attempts + 1 WHERE event_id = ?1",
            [event_id],
        )?;
    }
    Ok(given_up)
}

/// After the dispatcher's pass over a tenant: counts its undelivered events
/// (the partial index `outbox_undelivered` makes this cheap) for the
/// outbox-depth estimate. A failure leaves the estimate as it was.
fn observe_outbox(db: &TenantDb) {
    let counted = db.conn().ok().and_then(|conn| {
        conn.query_row(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NULL",
            [],
            |row| row.get::<_, i64>(0),
        )
        .ok()
    });
    if let Some(depth) = counted {
        malipo_foundations::telemetry::outbox_depth(db.id(), depth);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_is_capped() {
        assert_eq!(backoff_ms(1000, 1), 1000);
        assert_eq!(backoff_ms(1000, 2), 2000);
        assert_eq!(backoff_ms(1000, 3), 4000);
        assert_eq!(backoff_ms(1000, 10), 512_000);
        assert_eq!(backoff_ms(1000, 11), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(1000, 1_000), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(1000, 0), 1000);
    }
}
