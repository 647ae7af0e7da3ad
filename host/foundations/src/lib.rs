//! Malipo's foundations: what every layer above may use and which uses none
//! of them (identifiers, errors, time, configuration, crypto, the data
//! directory, the one outbound HTTP client, tokens, passwords, JWT, the
//! settings registry, telemetry, JSON-schema shorthands). A crate of its own,
//! so the compiler refuses an import from storage, the runtime, the core or
//! a channel; the host re-exports each module under its old path.
#![forbid(unsafe_code)]

pub mod config;
pub mod crypto;
pub mod data_dir;
pub mod domain_proof;
pub mod error;
pub mod ids;
pub mod json_schema;
pub mod jwt;
pub mod outbound;
pub mod passwords;
pub mod settings;
pub mod telemetry;
pub mod time_util;
pub mod tokens;
