//! Malipo's core: operations and the one pipeline every channel runs them
//! through (`core::execute`: authentication's principal, authorization,
//! guardrails, approvals, billing's gate, metering, audit), the services
//! `Core` holds, the event dispatcher and the job runner.
//!
//! It builds on the foundations, storage and the plugin runtime. It knows
//! nothing of the channels (REST, MCP, callbacks, the CLI) nor of axum: it
//! speaks HTTP only through the `http` crate's status codes and headers.
//! The compiler keeps it so (docs/ARCHITECTURE.md, "Layers").
#![forbid(unsafe_code)]

pub mod alerts;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod core;
pub mod deletion;
pub mod events;
pub mod jobs;
pub mod metering;
