//! Alerts about tenants' abnormal behaviour (failed logins, failed payments,
//! server errors), for super-admins: [`store`] keeps them in `control.db`,
//! [`service`] counts and raises them, [`routes`] lists and acknowledges them.

pub mod routes;
pub mod service;
pub mod store;

pub use store::{AlertRecord, NewAlert};
