//! Deleting a tenant after a grace period: [`store`] keeps the schedule in
//! `control.db`, [`service`] schedules, cancels, purges and sweeps.

pub mod service;
pub mod store;

pub use store::{Cancellation, PurgedRows, StatusChange};
