//! Plans and entitlements: the gate and the charges are the core's
//! (`malipo_core::billing`, re-exported here); [`routes`] are the
//! super-admin's and the tenant's billing operations.

pub mod routes;

pub use malipo_core::billing::*;
