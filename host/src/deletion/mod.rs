//! Deleting a tenant after a grace period: scheduled, cancelled, purged and
//! swept by the core (`malipo_core::deletion::service`), kept in
//! `control.db` by the storage crate; [`routes`] are the super-admin's
//! operations.

pub mod routes;

pub use malipo_core::deletion::*;
