//! Malipo's host: one process that serves many tenants, each with its own
//! SQLite file, and runs business features as sandboxed WebAssembly plugins.
//!
//! Layout:
//! - [`config`]: the effective configuration (flags < environment < defaults).
//! - [`ids`]: parsed identifiers; a file path is only ever built from these.
//! - [`control`]: the platform database (`control.db`): users, tenants,
//!   memberships, sessions, API keys, invitations, reset tokens, platform audit.
//! - [`tenancy`]: the one seam that opens tenant databases (bounded cache,
//!   migrations, pools).
//! - [`plugins`]: the WebAssembly runtime: engine, capabilities granted to
//!   plugins, instance reuse, limits.
//! - [`auth`]: passwords, access tokens, and the principal a request carries.
//! - [`api`]: operations (host and plugin) and the HTTP surface built from them.
//! - [`deletion::service`]: deleting a tenant after a grace period (schedule,
//!   cancel, purge, the sweeper).
//! - [`events`]: the outbox dispatcher: delivers plugin events to subscribers.
//! - [`app`]: wiring: state, router, server start and stop.
#![forbid(unsafe_code)]

// The foundations are a crate of their own (the compiler keeps them below
// every other layer); their modules keep their paths here.
pub use malipo_foundations::{
    config, crypto, data_dir, domain_proof, error, ids, json_schema, jwt, outbound, passwords,
    settings, telemetry, time_util, tokens,
};
// Storage and the plugin runtime are crates too (the compiler keeps each
// below the core and the channels); their modules keep their paths here.
pub use malipo_runtime::{daraja_certs, plugins};
pub use malipo_storage::{control, hostnames, tenancy};

pub mod alerts;
pub mod app;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod callbacks;
pub mod cli;
pub mod core;
pub mod dashboard;
pub mod deletion;
pub mod events;
pub mod jobs;
pub mod mcp;
pub mod metering;
pub mod ops;
pub mod platform_mail;
pub mod resources;
pub mod rest;
