//! `GET /api/v1/events/stream`: the caller's tenant's own events as
//! server-sent events, so a browser sees a payment complete without asking
//! again and again.
//!
//! What a caller receives is what the caller could read anyway:
//! - the tenant comes from the credential (`Authorization: Bearer` access
//!   token or API key, or `X-API-Key`) only; the stream reads that
//!   tenant's outbox and nothing else;
//! - an event is sent only if the host knows which read permission covers
//!   it, from its emitter and name ([`permission_for`]): `payment.*`,
//!   `payout.*`, `reversal.*` from `mpesa` need `payments.read`;
//!   `invoice.*`, `subscription.*` from `billing` need `billing.read`;
//!   `usage.*` from `usage` needs `usage.read`. Anything else (the host's
//!   own events, other plugins') is never streamed. The permission is
//!   checked at the event's store (an API key must also list it);
//! - a caller limited to some stores (no `stores.access_all`, or a key
//!   with `store_ids`) gets only the events of those stores and those of
//!   no store, as with every list ([`Principal::may_see_store`]);
//! - the credential is checked again every [`REAUTH`]: a revoked session,
//!   an expired access token, a removed member or a suspended tenant ends
//!   the stream (the client reconnects, and is answered 401 or 403).
//!
//! Each event's `id:` is its outbox row id; a client that reconnects with
//! `Last-Event-ID` gets every event after it. Without the header the
//! stream starts at the newest event (nothing old is replayed).
//!
//! Between polls the stream holds no tenant connection, transaction or
//! lock: each poll borrows a pooled connection for one indexed `SELECT`.
//! A poll runs when the event dispatcher is woken by a committed emit
//! (the core's `outbox_changes` counter, bumped by `crate::events::worker`; the runtime's
//! `event_signal` is a single-consumer `Notify` that the dispatcher owns,
//! so streams must not wait on it), and at least every [`FALLBACK_POLL`].
//! A comment line is sent every [`KEEP_ALIVE`] so proxies keep the
//! connection. At most [`MAX_STREAMS_PER_TENANT`] streams are open per
//! tenant (429 beyond), and every stream ends when the process is asked to
//! stop (SIGTERM, Ctrl-C), so graceful shutdown is not held up.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::auth::{Credential, Principal, principal};
use crate::core::Core;
use crate::error::{ApiError, blocking};
use crate::ids::{StoreId, TenantId};

/// The path served.
pub const PATH: &str = "/api/v1/events/stream";
/// How often a comment line keeps an idle connection open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The longest wait between two polls when no wake-up came.
pub const FALLBACK_POLL: Duration = Duration::from_secs(2);
/// How often the credential is checked again.
pub const REAUTH: Duration = Duration::from_secs(30);
/// Streams one tenant may hold open at once.
pub const MAX_STREAMS_PER_TENANT: usize = 20;
/// Outbox rows read per poll.
const PAGE: i64 = 100;

/// The read permission that covers an event, from who emitted it and its
/// name; `None`: the event is not streamed.
pub fn permission_for(source: &str, name: &str) -> Option<&'static str> {
    let family = name.split('.').next().unwrap_or_default();
    match (source, family) {
        ("mpesa", "payment" | "payout" | "reversal") => Some("payments.read"),
        ("billing", "invoice" | "subscription") => Some("billing.read"),
        ("usage", "usage") => Some("usage.read"),
        _ => None,
    }
}

/// Every permission some event needs.
const STREAM_PERMISSIONS: [&str; 3] = ["payments.read", "billing.read", "usage.read"];

/// Turns true once the process is asked to stop. Tokio delivers a signal
/// to every listener, so this does not take it from `main`'s.
fn stopping() -> watch::Receiver<bool> {
    static STOPPING: OnceLock<watch::Receiver<bool>> = OnceLock::new();
    STOPPING
        .get_or_init(|| {
            let (tx, rx) = watch::channel(false);
            tokio::spawn(async move {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{SignalKind, signal};
                    match signal(SignalKind::terminate()) {
                        Ok(mut term) => {
                            tokio::select! {
                                _ = term.recv() => {}
                                _ = tokio::signal::ctrl_c() => {}
                            }
                        }
                        Err(_) => {
                            let _ = tokio::signal::ctrl_c().await;
                        }
                    }
                }
                #[cfg(not(unix))]
                {
                    let _ = tokio::signal::ctrl_c().await;
                }
                let _ = tx.send(true);
            });
            rx
        })
        .clone()
}

/// Open streams per tenant.
fn open_streams() -> &'static Mutex<HashMap<TenantId, usize>> {
    static OPEN: OnceLock<Mutex<HashMap<TenantId, usize>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

/// One open stream, counted while it lives.
struct Slot(TenantId);

impl Slot {
    fn take(tenant: TenantId) -> Result<Self, ApiError> {
        let mut open = open_streams()
            .lock()
            .map_err(|_| ApiError::Unexpected(anyhow::anyhow!("stream count poisoned")))?;
        let count = open.entry(tenant).or_insert(0);
        if *count >= MAX_STREAMS_PER_TENANT {
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "this organization already has {MAX_STREAMS_PER_TENANT} event streams open; close one"
                ),
                retry_after_secs: 15,
            });
        }
        *count += 1;
        Ok(Self(tenant))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = open_streams().lock()
            && let Some(count) = open.get_mut(&self.0)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.0);
            }
        }
    }
}

/// `GET /api/v1/events/stream`.
pub async fn serve(State(state): State<Arc<Core>>, headers: HeaderMap) -> Response {
    match open(state, headers).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn open(state: Arc<Core>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = principal::authenticate(&state, &headers, true).await?;
    let tenant = caller.tenant()?;
    let span = tracing::Span::current();
    span.record("user_id", tracing::field::display(caller.user_id));
    span.record("tenant_id", tracing::field::display(tenant));
    super::request_id::note_tenant(tenant);
    let per_minute = crate::billing::entitlements(&state, tenant)
        .await
        .ok()
        .flatten()
        .and_then(|e| e.requests_per_minute());
    state.tenant_limiter.check(tenant, per_minute)?;
    if !may_read_any(&state, &caller).await? {
        return Err(ApiError::Forbidden(format!(
            "you may read no kind of event here: the stream needs one of {}",
            STREAM_PERMISSIONS
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|id| *id >= 0)
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "Last-Event-ID must be the id of an event this stream sent (a whole number)"
                            .into(),
                    )
                })?,
        ),
    };
    let slot = Slot::take(tenant)?;
    let cursor = match resume {
        Some(id) => id,
        None => newest(&state, tenant).await?,
    };
    let mut wake = state.outbox_changes.subscribe();
    wake.mark_unchanged();
    let reader = Reader {
        state,
        headers: credential_headers(&headers),
        caller,
        tenant,
        cursor,
        queue: VecDeque::new(),
        wake,
        stopping: stopping(),
        checked_at: Instant::now(),
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(reader, |mut reader| async move {
        let event = reader.next().await?;
        Some((Ok::<Event, Infallible>(event), reader))
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // A proxy must pass each event on at once.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// May the caller read some kind of event, here or in one of their stores?
async fn may_read_any(state: &Arc<Core>, caller: &Principal) -> Result<bool, ApiError> {
    let tenant = caller.tenant()?;
    let mut places: Vec<Option<StoreId>> = vec![caller.store_id];
    if caller.store_id.is_none()
        && let Some(stores) = &caller.allowed_stores
    {
        places.extend(stores.iter().map(|s| Some(s.id)));
    }
    for permission in STREAM_PERMISSIONS {
        if !key_lists(caller, permission) {
            continue;
        }
        for store in &places {
            if crate::core::authz::permitted(state, tenant, caller.user_id, permission, *store)
                .await?
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// An API key acts only with the permissions it lists.
fn key_lists(caller: &Principal, permission: &str) -> bool {
    match &caller.credential {
        Credential::ApiKey { permissions, .. } => permissions.iter().any(|p| p == permission),
        Credential::Session { .. } => true,
    }
}

/// The headers that identify the caller, kept to check them again.
fn credential_headers(headers: &HeaderMap) -> HeaderMap {
    const KEPT: [HeaderName; 3] = [
        axum::http::header::AUTHORIZATION,
        HeaderName::from_static("x-api-key"),
        HeaderName::from_static("x-store-id"),
    ];
    let mut kept = HeaderMap::new();
    for name in KEPT {
        if let Some(value) = headers.get(&name) {
            kept.insert(name, value.clone());
        }
    }
    kept
}

/// The newest outbox id (0 when empty).
async fn newest(state: &Arc<Core>, tenant: TenantId) -> Result<i64, ApiError> {
    let state = Arc::clone(state);
    blocking(move || {
        let db = state.tenancy.get(tenant)?;
        let conn = db.conn()?;
        let id: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM outbox", [], |row| {
            row.get(0)
        })?;
        Ok(id)
    })
    .await
}

/// One outbox row.
struct Row {
    id: i64,
    event_id: String,
    name: String,
    payload: String,
    source: String,
    created_at: String,
}

/// The outbox rows after `cursor`, oldest first.
async fn after(state: &Arc<Core>, tenant: TenantId, cursor: i64) -> Result<Vec<Row>, ApiError> {
    let state = Arc::clone(state);
    blocking(move || {
        let db = state.tenancy.get(tenant)?;
        let conn = db.conn()?;
        let mut statement = conn.prepare_cached(
            "SELECT id, event_id, name, payload, source, created_at FROM outbox
              WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement
            .query_map(rusqlite::params![cursor, PAGE], |row| {
                Ok(Row {
                    id: row.get(0)?,
                    event_id: row.get(1)?,
                    name: row.get(2)?,
                    payload: row.get(3)?,
                    source: row.get(4)?,
                    created_at: row.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })
    .await
}

/// The state of one open stream.
struct Reader {
    state: Arc<Core>,
    headers: HeaderMap,
    caller: Principal,
    tenant: TenantId,
    /// The last outbox id looked at (sent or not).
    cursor: i64,
    /// Events read and allowed, not yet sent.
    queue: VecDeque<Event>,
    wake: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    checked_at: Instant,
    _slot: Slot,
}

impl Reader {
    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if *self.stopping.borrow() {
                return None;
            }
            if self.checked_at.elapsed() >= REAUTH {
                match principal::authenticate(&self.state, &self.headers, true).await {
                    Ok(caller) if caller.tenant_id == Some(self.tenant) => self.caller = caller,
                    _ => return None,
                }
                self.checked_at = Instant::now();
            }
            match after(&self.state, self.tenant, self.cursor).await {
                Ok(rows) if !rows.is_empty() => {
                    let full = rows.len() as i64 >= PAGE;
                    for row in rows {
                        self.cursor = row.id;
                        if let Some(event) = self.allowed(row).await {
                            self.queue.push_back(event);
                        }
                    }
                    if full || !self.queue.is_empty() {
                        continue;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(tenant = %self.tenant, %error, "event stream poll failed");
                }
            }
            tokio::select! {
                changed = self.wake.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(FALLBACK_POLL).await;
                    }
                }
                _ = tokio::time::sleep(FALLBACK_POLL) => {}
                _ = self.stopping.changed() => return None,
            }
        }
    }

    /// The row as an event, if this caller may read it.
    async fn allowed(&self, row: Row) -> Option<Event> {
        let permission = permission_for(&row.source, &row.name)?;
        let data: Value = serde_json::from_str(&row.payload).unwrap_or(Value::Null);
        let store = data.get("store_id").and_then(Value::as_str);
        if !self.caller.may_see_store(store) || !key_lists(&self.caller, permission) {
            return None;
        }
        let at = match store {
            Some(store) => Some(StoreId::parse(store)?),
            None => self.caller.store_id,
        };
        let permitted = crate::core::authz::permitted(
            &self.state,
            self.tenant,
            self.caller.user_id,
            permission,
            at,
        )
        .await
        .unwrap_or(false);
        if !permitted {
            return None;
        }
        let body = json!({
            "id": row.id,
            "event_id": row.event_id,
            "name": row.name,
            "source": row.source,
            "created_at": row.created_at,
            "data": data,
        });
        Some(
            Event::default()
                .id(row.id.to_string())
                .event(row.name)
                .data(body.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_of_a_known_emitter_have_a_permission() {
        assert_eq!(
            permission_for("mpesa", "payment.completed"),
            Some("payments.read")
        );
        assert_eq!(
            permission_for("mpesa", "reversal.failed"),
            Some("payments.read")
        );
        assert_eq!(
            permission_for("billing", "invoice.paid"),
            Some("billing.read")
        );
        assert_eq!(
            permission_for("usage", "usage.threshold"),
            Some("usage.read")
        );
        // Another emitter's event of the same name, and the host's own.
        assert_eq!(permission_for("thief", "payment.completed"), None);
        assert_eq!(permission_for("host", "invitation.created"), None);
        assert_eq!(permission_for("mpesa", "invoice.paid"), None);
    }
}
