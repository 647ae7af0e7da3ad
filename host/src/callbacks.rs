//! Inbound callbacks (e.g. Daraja results) at
//! `/callbacks/<plugin>/<tenant-id>/<token>/<kind…>`, or at
//! `/hooks/<tenant-id>/<token>/<kind…>` where the URL must not name the plugin.
//!
//! The route checks the plugin, the tenant and the tenant's callback token
//! (unknown → 404, nothing stored), stores the body in the callback inbox,
//! and acknowledges at once. A worker then hands each stored callback to the
//! plugin's internal `callback.receive` operation, retrying with backoff
//! while the plugin answers `retry` (the request it answers may not have
//! committed yet). Malformed JSON is acknowledged and not stored.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::audit::AuditEntry;
use crate::core::Core;
use crate::core::plugin_call::call_plugin;
use crate::error::{ApiError, blocking};
use crate::ids::TenantId;
use crate::plugins::capabilities::callback_token_matches;
use crate::plugins::host_context;

/// Largest callback body accepted.
const MAX_CALLBACK_BYTES: usize = 64 * 1024;
/// Deliveries tried before a callback is given up.
const MAX_ATTEMPTS: i64 = 40;

/// Daraja's expected acknowledgement.
fn accepted() -> Response {
    axum::Json(json!({"ResultCode": 0, "ResultDesc": "Accepted"})).into_response()
}

/// The callback routes: `/callbacks/{plugin}/{tenant}/{token}/{*kind}` (a
/// plugin's own callbacks, e.g. Daraja's) and `/hooks/{tenant}/{token}/{*kind}`.
pub fn router(state: Arc<Core>) -> axum::Router {
    axum::Router::new()
        .route(
            "/callbacks/{plugin}/{tenant}/{token}/{*kind}",
            axum::routing::post(receive),
        )
        .route(
            "/hooks/{tenant}/{token}/{*kind}",
            axum::routing::post(receive_opaque),
        )
        .with_state(state)
}

/// `POST /callbacks/{plugin}/{tenant}/{token}/{*kind}`.
pub async fn receive(
    State(state): State<Arc<Core>>,
    Path((plugin, tenant, token, kind)): Path<(String, String, String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let known = state
        .runtime
        .plugin(&plugin)
        .is_some_and(|p| p.manifest.callbacks);
    let candidates = if known { vec![plugin] } else { Vec::new() };
    accept(state, candidates, &tenant, token, kind, peer, body).await
}

/// `POST /hooks/{tenant}/{token}/{*kind}`: the same, for URLs that must not
/// name the plugin (Safaricom refuses C2B URLs containing "mpesa"); the
/// token tells which plugin the callback is for.
pub async fn receive_opaque(
    State(state): State<Arc<Core>>,
    Path((tenant, token, kind)): Path<(String, String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let candidates = state
        .runtime
        .plugins()
        .filter(|p| p.manifest.callbacks)
        .map(|p| p.manifest.name.clone())
        .collect();
    accept(state, candidates, &tenant, token, kind, peer, body).await
}

/// Checks tenant and token against the candidate plugins, then stores the
/// callback for the one whose token it is and acknowledges.
async fn accept(
    state: Arc<Core>,
    candidates: Vec<String>,
    tenant: &str,
    token: String,
    kind: String,
    peer: SocketAddr,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = TenantId::parse(tenant)
        .filter(|_| !candidates.is_empty())
        .ok_or_else(|| ApiError::not_found("callback"))?;
    if let Ok(allowed) = crate::config::var("MALIPO_CALLBACK_ALLOW_IPS") {
        let ip = peer.ip().to_string();
        if !allowed.split(',').any(|a| a.trim() == ip) {
            return Err(ApiError::Forbidden(
                "callbacks are not accepted from this address".into(),
            ));
        }
    }
    if body.len() > MAX_CALLBACK_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "callbacks are limited to {MAX_CALLBACK_BYTES} bytes"
        )));
    }
    let state_for_db = Arc::clone(&state);
    let plugin = blocking(move || {
        if state_for_db.control.tenant(tenant)?.is_none() {
            return Ok(None);
        }
        let db = state_for_db.tenancy.get(tenant)?;
        let conn = db.conn()?;
        let services = state_for_db.runtime.services();
        Ok(candidates.into_iter().find(|plugin| {
            callback_token_matches(&conn, services, &tenant.to_string(), plugin, &token)
        }))
    })
    .await?
    .ok_or_else(|| ApiError::not_found("callback"))?;
    let Ok(text) = std::str::from_utf8(&body) else {
        return Ok(accepted());
    };
    if serde_json::from_str::<serde_json::Value>(text).is_err() {
        tracing::warn!(%tenant, plugin, kind, "malformed callback acknowledged and dropped");
        return Ok(accepted());
    }
    let text = text.to_string();
    let ip = peer.ip().to_string();
    let state_for_db = Arc::clone(&state);
    blocking(move || {
        Ok(state_for_db
            .control
            .inbox_push(tenant, &plugin, &kind, &text, Some(&ip))?)
    })
    .await?;
    state.callback_signal.notify_one();
    Ok(accepted())
}

/// Hands stored callbacks to their plugins, forever.
pub async fn worker(state: Arc<Core>) {
    loop {
        let _ = tokio::time::timeout(Duration::from_millis(500), state.callback_signal.notified())
            .await;
        if let Err(error) = deliver_due(&state).await {
            tracing::error!(?error, "callback delivery failed");
        }
    }
}

/// Delivers every callback due now; answers how many were applied.
pub async fn deliver_due(state: &Arc<Core>) -> Result<usize, ApiError> {
    let state_for_db = Arc::clone(state);
    let due = blocking(move || Ok(state_for_db.control.inbox_due(100)?)).await?;
    let mut applied = 0;
    for item in due {
        let ctx = host_context(
            item.tenant_id,
            None,
            "callback",
            format!("callback-{}", item.id),
        );
        let audit = AuditEntry {
            actor_type: "callback".into(),
            channel: "callback".into(),
            operation: format!("{}.callback.{}", item.plugin, audited_kind(&item.kind)),
            target: Some(format!("callback-inbox/{}", item.id)),
            outcome: "success".into(),
            request_id: Some(ctx.request_id.clone()),
            ..AuditEntry::default()
        };
        let input = json!({"kind": item.kind, "body": item.body, "received_at": item.received_at});
        let outcome = call_plugin(
            state,
            item.tenant_id,
            &item.plugin,
            "callback.receive",
            ctx,
            input,
            false,
            Some(audit),
            None,
        )
        .await;
        let settled = match outcome {
            Ok(_) => {
                applied += 1;
                Ok(())
            }
            Err(ApiError::Unavailable(message)) if item.attempts + 1 < MAX_ATTEMPTS => {
                let backoff = 200i64.saturating_mul(1 << item.attempts.min(8)).min(30_000);
                Err((message, Some(backoff)))
            }
            // A busy or locked tenant database (SQLite's result code, seen by
            // the host or by the plugin's statements) is contention, not a
            // refusal: retried with backoff for as long as it lasts, never
            // dropped.
            Err(error @ ApiError::Busy(_)) => {
                let backoff = 200i64.saturating_mul(1 << item.attempts.min(8)).min(30_000);
                Err((error.to_string(), Some(backoff)))
            }
            Err(error) => Err((error.to_string(), None)),
        };
        let state_for_db = Arc::clone(state);
        let id = item.id;
        blocking(move || Ok(state_for_db.control.inbox_settle(id, settled)?)).await?;
    }
    Ok(applied)
}

/// The kind a callback is audited under: without the reference a plugin
/// put at the end of its path ([`crate::control::split_reference`]), so one
/// kind is one audited operation.
fn audited_kind(kind: &str) -> &str {
    crate::control::split_reference(kind).0
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reference_segment_is_not_part_of_the_audited_kind() {
        assert_eq!(
            super::audited_kind("stk/0b9e6a52-6d8f-4c1e-9a55-3f1c2d4e5f60"),
            "stk"
        );
        assert_eq!(super::audited_kind("stk"), "stk");
        assert_eq!(super::audited_kind("b2c/result"), "b2c/result");
    }
}
