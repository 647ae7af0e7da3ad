//! The HTTP surface. Every route under `/api/v1` comes from an
//! [`operation::Operation`] — the host's own ([`host::operations`]) and each
//! plugin manifest's — and is served by [`dispatch::serve`]. The OpenAPI
//! document is generated from the same list.

pub mod approvals;
pub mod authz;
pub mod dispatch;
pub mod event_stream;
pub mod guardrails;
pub mod host;
pub mod idempotency_lock;
pub mod input;
pub mod limits;
pub mod openapi;
pub mod operation;
pub mod request_id;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter, get};

use self::operation::{Access, Method, Operation, Target};
use crate::app::AppState;
use crate::error::{ApiError, blocking};
use crate::plugins::PluginRuntime;

/// Every operation: the host's, then each plugin's public ones.
pub fn all_operations(runtime: &PluginRuntime) -> anyhow::Result<Vec<Arc<Operation>>> {
    let mut operations: Vec<Arc<Operation>> =
        host::operations().into_iter().map(Arc::new).collect();
    for plugin in runtime.plugins() {
        for spec in &plugin.manifest.operations {
            if spec.path.is_none() {
                continue;
            }
            operations.push(Arc::new(Operation {
                spec: spec.clone(),
                access: Access::Tenant,
                target: Target::Plugin(plugin.manifest.name.clone()),
                tag: plugin.manifest.name.clone(),
            }));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for op in &operations {
        let key = (op.spec.method, op.spec.path.clone());
        anyhow::ensure!(
            seen.insert(key),
            "operation `{}` declares {:?} {:?}, which another operation already serves",
            op.spec.name,
            op.spec.method,
            op.spec.path
        );
    }
    Ok(operations)
}

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
pub fn router(state: Arc<AppState>) -> Router {
    let mut by_path: BTreeMap<String, MethodRouter<Arc<AppState>>> = BTreeMap::new();
    for op in state.operations.iter() {
        let Some(path) = op.spec.path.clone() else {
            continue;
        };
        let method = filter(op.spec.method);
        let op = Arc::clone(op);
        let handler = move |State(state): State<Arc<AppState>>, request: Request| {
            let op = Arc::clone(&op);
            async move { dispatch::serve(state, op, request).await }
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
        .route("/api/v1/openapi.json", get(openapi_document))
        .route(event_stream::PATH, get(event_stream::serve))
        .route(
            "/callbacks/{plugin}/{tenant}/{token}/{*kind}",
            axum::routing::post(crate::callbacks::receive),
        )
        .route(
            "/hooks/{tenant}/{token}/{*kind}",
            axum::routing::post(crate::callbacks::receive_opaque),
        )
        .fallback(not_found)
        .with_state(Arc::clone(&state))
        .merge(health_router(state))
}

/// `/health` and `/health/db`, served in every mode (no fallback: the
/// router it is merged into has one).
pub fn health_router(state: Arc<AppState>) -> Router {
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

async fn openapi_document(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    axum::Json(state.openapi.clone())
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn health_db(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let open = state.tenancy.open_count();
    let state = Arc::clone(&state);
    blocking(move || Ok(state.control.ping()?)).await?;
    Ok(axum::Json(
        serde_json::json!({"status": "ok", "control_db": "ok", "open_tenant_dbs": open}),
    ))
}
