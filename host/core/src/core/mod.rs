//! The core: the one pipeline every operation takes, whatever the channel —
//! the [`operation::Operation`] declaration, [`execute`] (rate limit,
//! permission, input check, guardrails, approval gate, handler or plugin,
//! audit), authorization and API-key guardrails. It knows nothing of HTTP
//! routing, MCP or the CLI: the channels call it.

pub mod authz;
pub mod execute;
pub mod guardrails;
pub mod idempotency_lock;
pub mod input;
pub mod limits;
pub mod operation;
pub mod plugin_call;
pub mod state;

pub use state::Core;
