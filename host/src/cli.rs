//! The command line: `malipo serve`, `malipo mcp`, `malipo bootstrap`,
//! `malipo migrate`, `malipo mpesa reconcile`, `malipo config show`,
//! `malipo tenant export|import`, `malipo backup`, `malipo restore`.
//! Every flag has an environment variable; flags win over the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Self-hosted multi-tenant M-Pesa payments platform.
#[derive(Debug, Parser)]
#[command(name = "malipo", version, about)]
pub struct Cli {
    /// Where control.db, tenants/<tenant-id>.db, plugins/ and keys live.
    #[arg(
        long,
        global = true,
        env = "MALIPO_DATA_DIR",
        default_value = "./tenants-data"
    )]
    pub data_dir: PathBuf,

    /// A TOML configuration file: `key = value` per setting (the
    /// environment variable's name without `MALIPO_`, lower-case, e.g.
    /// `listen = "0.0.0.0:8080"`). Flags beat the environment, which beats
    /// the file, which beats the embedded defaults.
    #[arg(long, global = true, env = "MALIPO_CONFIG")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API over HTTP.
    Serve(ServeArgs),
    /// Create the first platform super-admin (password from
    /// MALIPO_BOOTSTRAP_PASSWORD or standard input); refuses if one exists.
    Bootstrap(BootstrapArgs),
    /// Migrate control.db and every tenant file to this binary's schema.
    Migrate,
    /// M-Pesa operations.
    #[command(subcommand)]
    Mpesa(MpesaCommand),
    /// Serve MCP over stdin/stdout for a desktop AI assistant, acting with
    /// the API key in MALIPO_API_KEY (give it `mcp.use` and only what the
    /// assistant needs). Uses the same data directory as `serve`.
    Mcp(McpArgs),
    /// One organization (tenant).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Copy control.db and every tenant file, consistently, into a new
    /// generation `DIR/malipo-backup-<UTC time>/` while the server may run;
    /// keep the newest `--keep` generations.
    Backup(BackupArgs),
    /// Put a backup generation back as the data directory (stop the server
    /// first). Refuses to overwrite an existing control.db without --force.
    Restore(RestoreArgs),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `malipo config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting's effective value and where it comes from
    /// (flag, env, file, default), secrets redacted.
    Show {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `malipo tenant …`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Write the tenant's database to FILE: a consistent SQLite snapshot
    /// with secrets and one-time tokens removed (see docs/DATA.md).
    Export(TenantExportArgs),
    /// Make an exported file a tenant again: the same tenant id (refused if
    /// it exists) or a new one with --as-new. Refuses a file whose schema is
    /// newer than this binary's.
    Import(TenantImportArgs),
}

/// Flags of `malipo tenant export`.
#[derive(Debug, Args)]
pub struct TenantExportArgs {
    /// The tenant's id.
    pub id: String,
    /// The file to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Keep the sealed secrets (M-Pesa credentials, webhook secrets): only
    /// usable by an installation with the same master key.
    #[arg(long)]
    pub full: bool,
}

/// Flags of `malipo tenant import`.
#[derive(Debug, Args)]
pub struct TenantImportArgs {
    /// The exported file.
    pub file: PathBuf,
    /// Import as a new tenant with a fresh id instead of the file's.
    #[arg(long)]
    pub as_new: bool,
    /// The organization's name (default: the exported name).
    #[arg(long)]
    pub name: Option<String>,
    /// An existing account to make the tenant's Owner.
    #[arg(long)]
    pub owner_email: Option<String>,
}

/// Flags of `malipo backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The directory holding the backup generations.
    #[arg(long, env = "MALIPO_BACKUP_DIR")]
    pub to: PathBuf,
    /// How many generations to keep (older ones are removed).
    #[arg(long, env = "MALIPO_BACKUP_KEEP", default_value_t = 7)]
    pub keep: usize,
    /// Leave master.key and jwt.key out of the backup (keep them elsewhere;
    /// without the master key restored M-Pesa credentials cannot be read).
    #[arg(long)]
    pub no_keys: bool,
}

/// Flags of `malipo restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A generation directory, or a directory of generations (the newest
    /// complete one is used).
    #[arg(long)]
    pub from: PathBuf,
    /// Overwrite the data directory's control.db and tenant files.
    #[arg(long)]
    pub force: bool,
}

/// Flags of `malipo mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The API key to act with.
    #[arg(long, env = "MALIPO_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Base URL of a running Daraja emulator, for tenants whose environment
    /// is `sandbox` without their own URL (as with `serve --daraja-sim`).
    #[arg(long, env = "MALIPO_DARAJA_EMULATOR_URL")]
    pub daraja_emulator_url: Option<String>,
}

/// `malipo mpesa …`.
#[derive(Debug, Subcommand)]
pub enum MpesaCommand {
    /// Query every payment still pending after MALIPO_RECONCILE_AFTER_SECS
    /// and settle it by Daraja's answer, once, for every active tenant.
    /// Exits non-zero if any payment could not be queried.
    Reconcile {
        /// Base URL of a running Daraja emulator, for tenants whose
        /// environment is `sandbox` without their own URL (what
        /// `serve --daraja-sim` gives them).
        #[arg(long, env = "MALIPO_DARAJA_EMULATOR_URL")]
        daraja_emulator_url: Option<String>,
    },
}

/// Flags of `malipo serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, env = "MALIPO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Start the built-in Daraja emulator and point tenants without their
    /// own Daraja URL at it, so payments work offline.
    #[arg(long, env = "MALIPO_DARAJA_SIM")]
    pub daraja_sim: bool,
    /// Callback delay of the built-in emulator, in milliseconds.
    #[arg(long, env = "MALIPO_DARAJA_SIM_DELAY_MS", default_value_t = 1000)]
    pub daraja_sim_delay_ms: u64,
    /// Surfaces to serve: `hybrid` (REST and `/mcp`), `rest` (no `/mcp`),
    /// `mcp` (`/mcp` and the health routes only).
    #[arg(long, env = "MALIPO_MODE", value_enum, default_value_t = crate::app::Mode::Hybrid)]
    pub mode: crate::app::Mode,
}

/// Flags of `malipo bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The super-admin's email address.
    #[arg(long)]
    pub email: String,
    /// The super-admin's full name.
    #[arg(long, default_value = "Platform Admin")]
    pub full_name: String,
}
