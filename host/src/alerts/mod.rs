//! Alerts about tenants' abnormal behaviour, for super-admins: counted and
//! raised by the core (`malipo_core::alerts::service`), stored in
//! `control.db` by the storage crate, listed and acknowledged by [`routes`].

pub mod routes;

pub use malipo_core::alerts::*;
