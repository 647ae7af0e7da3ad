//! The operator commands of the `malipo` binary that are more than a few
//! lines: each module does one command family and prints what it did
//! (human text, or JSON with `--json`). `main.rs` only parses and dispatches.

pub mod config;
pub mod data;
pub mod guard;
pub mod mpesa;
pub mod operator;
