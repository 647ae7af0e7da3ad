//! The tenant audit log. Its rows, their hash chain, verification and
//! queries are storage (`malipo_storage::audit`, re-exported here under the
//! old paths); [`heads`] keeps the chain's head out of the tenant file's
//! reach, in `control.db`, and needs the core to do so.

pub mod heads;

pub use malipo_storage::audit::*;
