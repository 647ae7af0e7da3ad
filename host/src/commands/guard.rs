//! Which commands may run beside a server on the same data directory, and
//! the lock the others take (`<data-dir>/malipo.lock`, held by `serve`).
//!
//! Refused while a server runs (they take the lock for their duration, so
//! a server started meanwhile refuses too): `restore` (replaces the files
//! the server has open) and `migrate` (changes the schema under a running,
//! maybe older, binary). Safe beside a running server, by design and by
//! test: row changes made in SQLite transactions the server sees at once
//! (`tenant create|suspend|reactivate|delete|cancel-deletion|import`,
//! `user …`, `bootstrap`), `mpesa reconcile` (it uses the running server's
//! emulator), `mcp` (a second front door to the same data), and the
//! read-only `tenant list|export`, `user list`, `backup`, `config show`.

use malipo::config::Config;
use malipo::data_dir::{DataDirError, DataDirLock};

use super::operator::Failure;

/// The stable error code of a refusal because the directory is in use.
pub const IN_USE: &str = "data_dir_in_use";

/// Takes the data directory's lock for `command` (e.g. `restore`), or
/// refuses with [`IN_USE`] naming the server (its pid) that holds it.
pub fn exclusive(config: &Config, command: &str) -> anyhow::Result<DataDirLock> {
    malipo::data_dir::lock_for(&config.data_dir, command).map_err(|error| match error {
        DataDirError::Busy { .. } | DataDirError::Command { .. } => {
            Failure::error(IN_USE, error.to_string())
        }
        DataDirError::Io { .. } => anyhow::Error::new(error),
    })
}
