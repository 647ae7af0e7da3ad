//! Approvals: money out asked for by an API key or an AI assistant waits
//! for a person. The gate and the queue are the core's
//! (`malipo_core::approvals::service`); [`routes`] are the operations that
//! list, approve and reject.

pub mod routes;

pub use malipo_core::approvals::*;
