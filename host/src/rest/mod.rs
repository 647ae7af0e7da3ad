//! The REST channel. Every route under `/api/v1` comes from an
//! [`Operation`] — the host's own (`crate::resources`) and each plugin
//! manifest's — and is served by [`serve::serve`]. The OpenAPI document is
//! generated from the same list ([`openapi`]).

pub mod event_stream;
pub mod openapi;
pub mod request_id;
pub mod serve;

pub use serve::client_ip;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter, get};

use crate::core::Core;
use crate::core::operation::Method;
use crate::error::{ApiError, blocking};

fn filter(method: Method) -> MethodFilter {
    match method {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
        Method::Put => MethodFilter::PUT,
        Method::Patch => MethodFilter::PATCH,
        Method::Delete => MethodFilter::DELETE,
    }
}

/// The router: `/api/v1/*` from the operations, plus health and OpenAPI.
pub fn router(state: Arc<Core>, openapi: Arc<serde_json::Value>) -> Router {
    let mut by_path: BTreeMap<String, MethodRouter<Arc<Core>>> = BTreeMap::new();
    for op in state.operations.iter() {
        let Some(path) = op.spec.path.clone() else {
            continue;
        };
        let method = filter(op.spec.method);
        let op = Arc::clone(op);
        let handler = move |State(state): State<Arc<Core>>, request: Request| {
            let op = Arc::clone(&op);
            async move { serve::serve(state, op, request).await }
        };
        let route = by_path.remove(&path).unwrap_or_default();
        by_path.insert(path, route.on(method, handler));
    }
    let mut api = Router::new();
    for (path, route) in by_path {
        api = api.route(&path, route.fallback(method_not_allowed));
    }
    Router::new()
        .nest("/api/v1", api)
        .route(event_stream::PATH, get(event_stream::serve))
        .fallback(not_found)
        .with_state(Arc::clone(&state))
        .merge(health_router(state))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let openapi = Arc::clone(&openapi);
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
}

/// `/health` and `/health/db`, served in every mode (no fallback: the
/// router it is merged into has one).
pub fn health_router(state: Arc<Core>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/db", get(health_db))
        .with_state(state)
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("this method is not served on this path".into())
}

/// The answer to a path no route serves.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn health_db(State(state): State<Arc<Core>>) -> Result<impl IntoResponse, ApiError> {
    let open = state.tenancy.open_count();
    let state = Arc::clone(&state);
    blocking(move || Ok(state.control.ping()?)).await?;
    Ok(axum::Json(
        serde_json::json!({"status": "ok", "control_db": "ok", "open_tenant_dbs": open}),
    ))
}
