//! The MCP surface: every plugin operation served as a tool to AI
//! assistants, over Streamable HTTP at `/mcp` ([`http`]) and over stdio
//! (`malipo mcp`, [`stdio`]). Tools come from the same operation list as
//! the REST routes ([`tools`]) and every call goes through the same
//! [`crate::core::execute::execute`] — permissions, rate limits, API-key
//! guardrails, approvals and audit (channel `mcp`) are REST's own.

pub mod http;
pub mod server;
pub mod stdio;
pub mod tools;

pub use server::{Identity, McpServer};
pub use tools::ToolCatalog;

pub use crate::core::authz::MCP_PERMISSION;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header};

use crate::auth::{Principal, principal};
use crate::core::Core;
use crate::error::ApiError;

/// Admits a caller to MCP: the request's credential, bound to a tenant and
/// holding [`MCP_PERMISSION`]. A credential without it is refused with a
/// `Forbidden` that says so.
pub async fn admit(state: &Arc<Core>, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let principal = principal::authenticate(state, headers, true).await?;
    match crate::core::authz::require(state, &principal, MCP_PERMISSION).await {
        Ok(()) => Ok(principal),
        Err(ApiError::Forbidden(_)) => Err(ApiError::Forbidden(format!(
            "this credential may not use MCP: it needs the `{MCP_PERMISSION}` permission"
        ))),
        Err(other) => Err(other),
    }
}

/// The headers of a request presenting `key` as a bearer credential.
pub fn bearer(key: &str) -> Result<HeaderMap, ApiError> {
    let value =
        HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| ApiError::unauthenticated())?;
    Ok(HeaderMap::from_iter([(header::AUTHORIZATION, value)]))
}
