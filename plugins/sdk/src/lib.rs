//! Pure-Rust helpers shared by Malipo guest plugins; nothing here depends on generated bindings.
//!
//! Each plugin converts its generated `call-context` into a [`Context`],
//! implements [`Db`] over its `tenant-db` import, and converts [`Error`]
//! back into its generated `plugin-error`; [`bindings_glue!`] writes that
//! glue, plus a `progress` helper over the `progress` import.
//!
//! With the `testing` feature (for plugins' dev-dependencies only),
//! [`testing`] runs a plugin's SQL natively against an in-memory SQLite
//! database behind the host's access rules.
#![forbid(unsafe_code)]

pub mod context;
pub mod db;
pub mod error;
mod glue;
pub mod id;
pub mod input;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;

pub use context::Context;
pub use db::{Db, Row, Sql, Table};
pub use error::{Error, Result};
pub use input::Input;
