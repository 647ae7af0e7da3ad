//! Alerts about tenants' abnormal behaviour (failed logins, failed payments,
//! server errors): [`service`] counts and raises them; their rows are
//! storage (`malipo_storage::control`), their operations the host's
//! `alerts::routes`.

pub mod service;

pub use malipo_storage::control::{AlertRecord, NewAlert};
