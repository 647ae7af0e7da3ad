//! Malipo's host: one process that serves many tenants, each with its own
//! SQLite file, and runs business features as sandboxed WebAssembly plugins.
//!
//! The layers, bottom to top (docs/ARCHITECTURE.md), the lower four crates of
//! their own, re-exported here under their module paths:
//! - foundations (`malipo-foundations`): [`config`], [`ids`], [`error`],
//!   [`crypto`], [`outbound`], [`telemetry`], …
//! - storage (`malipo-storage`): [`control`] (`control.db`), [`tenancy`] (the
//!   one seam that opens tenant files), [`hostnames`], the audit chain.
//! - the plugin runtime (`malipo-runtime`): [`plugins`], [`daraja_certs`].
//! - the core (`malipo-core`): [`core`] (operations and the one `execute`
//!   pipeline), [`auth`], [`audit`], [`events`], [`jobs`], [`metering`], and
//!   the services of [`billing`], [`approvals`], [`alerts`], [`deletion`].
//! - this crate: the host's own operations ([`resources`] and each feature's
//!   `routes`, [`platform_mail`]), the channels ([`rest`], [`mcp`],
//!   [`callbacks`], [`dashboard`], [`ops`], [`cli`]) and the wiring ([`app`]).
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
// So is the core; the channels and the features above it are this crate.
pub use malipo_core::{audit, auth, core, events, jobs, metering};

pub mod alerts;
pub mod app;
pub mod approvals;
pub mod billing;
pub mod callbacks;
pub mod cli;
pub mod dashboard;
pub mod deletion;
pub mod mcp;
pub mod ops;
pub mod platform_mail;
pub mod resources;
pub mod rest;
