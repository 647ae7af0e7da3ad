//! Deleting a tenant after a grace period: [`store`] keeps the schedule in
//! `control.db`, [`service`] schedules, cancels, purges and sweeps,
//! [`routes`] are the super-admin's operations.

pub mod routes;
pub mod service;
pub mod store;

pub use store::{Cancellation, PurgedRows, StatusChange};
