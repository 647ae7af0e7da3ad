//! Alerts about tenants' abnormal behaviour (failed logins, failed payments,
//! server errors), for super-admins: stored in `control.db` by the storage
//! crate (`malipo_storage::control`'s alerts), counted and raised by
//! [`service`], listed and acknowledged by [`routes`].

pub mod routes;
pub mod service;

pub use malipo_storage::control::{AlertRecord, NewAlert};
