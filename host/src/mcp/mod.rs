//! The MCP surface: every plugin operation served as a tool to AI
//! assistants, over Streamable HTTP at `/mcp` ([`http`]) and over stdio
//! (`malipo mcp`, [`stdio`]). Tools come from the same operation list as
//! the REST routes ([`tools`]) and every call goes through the same
//! [`crate::api::dispatch::execute`] — permissions, rate limits, API-key
//! guardrails, approvals and audit (channel `mcp`) are REST's own.

pub mod http;
pub mod server;
pub mod stdio;
pub mod tools;

pub use server::{Identity, McpServer};
pub use tools::ToolCatalog;

/// The permission a credential needs to reach `/mcp` at all. Without it
/// the server answers `403 insufficient_scope`.
pub const MCP_PERMISSION: &str = "mcp.use";
