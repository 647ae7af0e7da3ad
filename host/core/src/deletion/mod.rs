//! Deleting a tenant after a grace period: [`service`] schedules, cancels,
//! purges and sweeps; the schedule is storage (`malipo_storage::control`),
//! the super-admin's operations the host's `deletion::routes`.

pub mod service;

pub use malipo_storage::control::{Cancellation, PurgedRows, StatusChange};
