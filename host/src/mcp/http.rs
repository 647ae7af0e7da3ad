//! `/mcp` over Streamable HTTP, as an OAuth 2.1 resource server in the MCP
//! sense. A layer in front of rmcp's service authenticates every request
//! (bearer access token or API key; the token's audience is checked by the
//! token verifier) and answers `401` with `WWW-Authenticate` pointing at the
//! RFC 9728 metadata, or `403 insufficient_scope` for a credential without
//! [`MCP_PERMISSION`]. rmcp then checks `Host` and `Origin` and speaks both
//! the 2026-07-28 (stateless) and the legacy 2025-11-25 protocol. The
//! client's credential is used here and nowhere else: it is never forwarded.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;

use crate::core::Core;
use crate::error::{ApiError, current_request_id};
use crate::mcp::server::RequestIdentity;
use crate::mcp::{Identity, MCP_PERMISSION, McpServer, ToolCatalog};

/// Path of the protected-resource metadata of `/mcp`.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";

/// The base URL clients reach this server at: `MALIPO_PUBLIC_URL`, else
/// the request's `Host`.
fn base_url(state: &Core, headers: &HeaderMap) -> String {
    if let Some(public) = state.runtime.services().get("public-url") {
        return public.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// `GET /.well-known/oauth-protected-resource[/mcp]` (RFC 9728).
async fn metadata(State(state): State<Arc<Core>>, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers);
    let scopes: Vec<&str> = state.catalog.iter().map(|p| p.name.as_str()).collect();
    axum::Json(json!({
        "resource": format!("{base}/mcp"),
        "resource_name": "Malipo",
        "bearer_methods_supported": ["header"],
        "scopes_supported": scopes,
        "resource_documentation": format!("{base}/api/v1/openapi.json"),
    }))
    .into_response()
}

/// A `401` or `403` with its `WWW-Authenticate` challenge (RFC 6750).
fn challenge(state: &Core, headers: &HeaderMap, error: ApiError, scope: Option<&str>) -> Response {
    let base = base_url(state, headers);
    let presented =
        headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-api-key");
    let mut value = format!("Bearer resource_metadata=\"{base}{METADATA_PATH}\"");
    match (error.status(), scope) {
        (StatusCode::UNAUTHORIZED, _) if presented => value.push_str(
            ", error=\"invalid_token\", error_description=\"the access token or API key is missing, invalid or expired\"",
        ),
        (StatusCode::FORBIDDEN, Some(scope)) => {
            value.push_str(&format!(", error=\"insufficient_scope\", scope=\"{scope}\""));
        }
        _ => {}
    }
    let mut response = error.into_response();
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The authentication layer of `/mcp`.
async fn authenticate(
    State(state): State<Arc<Core>>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers().clone();
    let principal = match super::admit(&state, &headers).await {
        Ok(principal) => principal,
        Err(error @ ApiError::Unauthorized(_)) => return challenge(&state, &headers, error, None),
        Err(error @ ApiError::Forbidden(_)) => {
            return challenge(&state, &headers, error, Some(MCP_PERMISSION));
        }
        Err(error) => return error.into_response(),
    };
    let identity = RequestIdentity {
        principal,
        request_id: current_request_id(),
        ip: request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| {
                crate::rest::client_ip(addr.ip(), &headers, &state.config.trusted_proxies)
                    .to_string()
            }),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
    };
    request.extensions_mut().insert(identity);
    next.run(request).await
}

/// rmcp's Streamable HTTP settings from ours.
fn transport_config(state: &Core) -> StreamableHttpServerConfig {
    let mcp = &state.config.mcp;
    let mut config = StreamableHttpServerConfig::default()
        // Stateless: every request carries its credential and is served on
        // its own; 2026-07-28 has no sessions and legacy clients do not
        // need one.
        .with_legacy_session_mode(false)
        // Plain JSON answers unless a call sends progress notifications
        // first (then rmcp switches that answer to an SSE stream).
        .with_json_response(true)
        .with_max_request_body_bytes(state.config.max_body_bytes)
        .with_allowed_origins(mcp.allowed_origins.clone())
        .enforce_origin_validation();
    config = if mcp.allowed_hosts.iter().any(|h| h == "*") {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(mcp.allowed_hosts.clone())
    };
    config
}

/// `/mcp` and its metadata routes.
pub fn router(state: Arc<Core>, tools: Arc<ToolCatalog>) -> Router {
    let for_handlers = Arc::clone(&state);
    let service = StreamableHttpService::new(
        move || {
            Ok(McpServer::new(
                Arc::clone(&for_handlers),
                Arc::clone(&tools),
                Identity::Http,
            ))
        },
        Arc::new(NeverSessionManager::default()),
        transport_config(&state),
    );
    Router::new()
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ))
        .route("/.well-known/oauth-protected-resource", get(metadata))
        .route(METADATA_PATH, get(metadata))
        .with_state(state)
}
