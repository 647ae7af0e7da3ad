//! `malipo mcp`: the MCP server over stdin/stdout for desktop assistants,
//! acting with the API key in `MALIPO_API_KEY`. It opens the same data
//! directory as `malipo serve` (SQLite in WAL mode takes both) and runs no
//! background work: callbacks and jobs stay with the server.

use std::sync::Arc;

use anyhow::Context;
use rmcp::ServiceExt;

use crate::core::Core;
use crate::mcp::{Identity, McpServer};

/// Checks the key once (for a clear error at start), then serves stdio
/// until the client closes it.
pub async fn serve(state: Arc<Core>, api_key: String) -> anyhow::Result<()> {
    let refused = |e: crate::error::ApiError| {
        anyhow::anyhow!("MALIPO_API_KEY was refused: {}", e.public_message())
    };
    let headers = super::bearer(&api_key).map_err(refused)?;
    let principal = super::admit(&state, &headers).await.map_err(refused)?;
    tracing::info!(tenant = ?principal.tenant_id, "serving MCP over stdio");
    let tools = Arc::new(super::ToolCatalog::build(&state.operations)?);
    let running = McpServer::new(state, tools, Identity::ApiKey(api_key))
        .serve(rmcp::transport::stdio())
        .await
        .context("start the MCP stdio server")?;
    running.waiting().await.context("MCP stdio server")?;
    Ok(())
}
