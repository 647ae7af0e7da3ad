//! Test support for plugins' native unit tests (cargo feature `testing`):
//! a tenant database over in-memory SQLite behind the host's access rules,
//! and small shared helpers.
//!
//! Enable it only for tests:
//!
//! ```toml
//! [dev-dependencies]
//! malipo-plugin-sdk = { workspace = true, features = ["testing"] }
//! ```

mod guard;
mod helpers;
mod sqlite;
mod value;

#[cfg(test)]
mod tests;

pub use helpers::{code, context};
pub use sqlite::SqliteDb;
