//! Malipo's storage layer: the platform database (`control.db`), the tenant
//! files (the one seam that opens them, their migrations, the authorizer
//! that confines a plugin's statements, snapshots), the tenant audit log's
//! rows and hash chain, and the custom-domain lookup.
//!
//! It builds on the foundations only. It knows nothing of plugins,
//! operations or channels, and has no HTTP dependency: the compiler keeps
//! it so (docs/ARCHITECTURE.md, "Layers").
#![forbid(unsafe_code)]

pub mod audit;
pub mod control;
pub mod hostnames;
pub mod tenancy;
