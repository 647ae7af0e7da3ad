//! Deleting a tenant after a grace period: the schedule is kept in
//! `control.db` by the storage crate (`malipo_storage::control`), [`service`]
//! schedules, cancels, purges and sweeps, [`routes`] are the super-admin's
//! operations.

pub mod routes;
pub mod service;

pub use malipo_storage::control::{Cancellation, PurgedRows, StatusChange};
