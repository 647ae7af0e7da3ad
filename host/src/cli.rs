//! The command line: `malipo serve`, `malipo mcp`, `malipo bootstrap`,
//! `malipo migrate`, `malipo mpesa reconcile`, `malipo config show`,
//! `malipo tenant export|import`, `malipo backup`, `malipo restore`, and the
//! operator's `malipo tenant …` and `malipo user …`.
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
    ///
    /// Every `<data-dir>/tenants/<tenant-id>.db` is brought to the host's
    /// newest schema and given every plugin's tables. A file that fails is
    /// reported (tenant id and reason) and the others carry on; the exit
    /// status is non-zero if any failed. A progress bar is drawn on stderr
    /// when it is a terminal; the summary goes to stdout.
    #[command(after_help = "Examples:\n  malipo migrate\n  malipo migrate --json --jobs 4")]
    Migrate(MigrateArgs),
    /// Manage organizations (tenants): create, list, suspend, reactivate,
    /// delete, export, import.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage user accounts: create, list, assign a role in an organization.
    #[command(subcommand)]
    User(UserCommand),
    /// M-Pesa operations.
    #[command(subcommand)]
    Mpesa(MpesaCommand),
    /// Serve MCP over stdin/stdout for a desktop AI assistant, acting with
    /// the API key in MALIPO_API_KEY (give it `mcp.use` and only what the
    /// assistant needs). Uses the same data directory as `serve`.
    Mcp(McpArgs),
    /// Copy control.db and every tenant file, consistently, into a new
    /// generation `DIR/malipo-backup-<UTC time>/` while the server may run;
    /// keep the newest `--keep` generations.
    #[command(
        after_help = "Examples:\n  malipo backup --to /var/backups/malipo\n  malipo backup --to /var/backups/malipo --keep 14 --no-keys --json"
    )]
    Backup(BackupArgs),
    /// Put a backup generation back as the data directory. Refuses while a
    /// server serves the directory (stop it first), and refuses to
    /// overwrite an existing control.db without --force.
    #[command(
        after_help = "Examples:\n  malipo restore --from /var/backups/malipo            # the newest generation, into an empty data directory\n  malipo restore --from /var/backups/malipo/malipo-backup-20261204T020000Z --force --json"
    )]
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

/// Flags of `malipo tenant export`.
#[derive(Debug, Args)]
pub struct TenantExportArgs {
    /// The tenant's id or slug.
    pub id: String,
    /// The file to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Keep the sealed secrets (M-Pesa credentials, webhook secrets): only
    /// usable by an installation with the same master key.
    #[arg(long)]
    pub full: bool,
    /// Print one JSON object on stdout instead of text (errors too:
    /// `{"error":{"code","message"}}`, with a non-zero exit).
    #[arg(long)]
    pub json: bool,
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
    /// Print one JSON object on stdout instead of text (errors too:
    /// `{"error":{"code","message"}}`, with a non-zero exit).
    #[arg(long)]
    pub json: bool,
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
    /// Print one JSON object on stdout instead of text (errors too:
    /// `{"error":{"code","message"}}`, with a non-zero exit).
    #[arg(long)]
    pub json: bool,
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
    /// Print one JSON object on stdout instead of text (errors too:
    /// `{"error":{"code","message"}}`, with a non-zero exit).
    #[arg(long)]
    pub json: bool,
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
    #[command(
        after_help = "Examples:\n  malipo mpesa reconcile\n  malipo mpesa reconcile --json\n  malipo mpesa reconcile --daraja-emulator-url http://127.0.0.1:40123"
    )]
    Reconcile {
        /// Base URL of a running Daraja emulator, for tenants whose
        /// environment is `sandbox` without their own URL (what
        /// `serve --daraja-sim` gives them).
        #[arg(long, env = "MALIPO_DARAJA_EMULATOR_URL")]
        daraja_emulator_url: Option<String>,
        /// Print one JSON object on stdout instead of text (errors too:
        /// `{"error":{"code","message"}}`, with a non-zero exit).
        #[arg(long)]
        json: bool,
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
    #[arg(long, env = "MALIPO_MODE", value_enum, default_value_t = Mode::Hybrid)]
    pub mode: Mode,
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

/// Flags of `malipo migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Print one JSON summary object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Tenant files migrated at once (default: the number of CPUs, at most 8).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
}

/// Which tenants `malipo tenant list` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TenantStatusFilter {
    /// Active, not scheduled for deletion.
    Active,
    /// Suspended, not scheduled for deletion.
    Suspended,
    /// Scheduled for deletion (suspended until purged).
    PendingDeletion,
}

/// `malipo tenant …`: the operator's tenant commands. Each mutating command
/// writes the platform audit (channel `cli`).
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create an organization exactly as registration does: its file, its
    /// owner (created if the email has no account; password from
    /// MALIPO_OWNER_PASSWORD or standard input) as Owner, a default store
    /// and a subscription to the plan (or the default plan's trial).
    #[command(
        after_help = "Examples:\n  MALIPO_OWNER_PASSWORD='a long passphrase' malipo tenant create --name 'Duka Ltd' --owner-email owner@duka.example\n  malipo tenant create --name 'Duka Ltd' --owner-email owner@duka.example --plan standard --json"
    )]
    Create(TenantCreateArgs),
    /// List organizations with their status, plan and scheduled deletion.
    #[command(
        after_help = "Examples:\n  malipo tenant list\n  malipo tenant list --status suspended --json"
    )]
    List {
        /// Only the tenants in this state.
        #[arg(long, value_enum)]
        status: Option<TenantStatusFilter>,
        /// Print one JSON array on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Suspend an organization: its members' logins and requests are
    /// refused (`tenant_suspended`) until it is reactivated.
    #[command(after_help = "Example:\n  malipo tenant suspend 0b5e…-tenant-id --json")]
    Suspend(TenantIdArgs),
    /// Reactivate a suspended organization.
    #[command(after_help = "Example:\n  malipo tenant reactivate 0b5e…-tenant-id")]
    Reactivate(TenantIdArgs),
    /// Delete an organization: it is suspended at once and purged (its file
    /// and every control.db row about it) after the grace period
    /// (MALIPO_TENANT_DELETION_GRACE_SECS, default 30 days), by a running
    /// server's sweeper; `--now` purges it at once. `--now` on a tenant not
    /// already scheduled for deletion prints what will be deleted and asks
    /// for the tenant's slug to confirm (on a terminal), or needs `--yes`.
    #[command(
        after_help = "Examples:\n  malipo tenant delete 0b5e…-tenant-id\n  malipo tenant delete 0b5e…-tenant-id --now --json\n  malipo tenant delete 0b5e…-tenant-id --now --yes   # scripts: no question asked"
    )]
    Delete {
        /// The tenant's id.
        id: String,
        /// Purge at once instead of after the grace period.
        #[arg(long)]
        now: bool,
        /// With `--now`: do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
        /// Print one JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cancel an organization's scheduled deletion during its grace period:
    /// it gets its earlier status back.
    #[command(after_help = "Example:\n  malipo tenant cancel-deletion 0b5e…-tenant-id")]
    CancelDeletion(TenantIdArgs),
    /// Write the tenant's database to FILE: a consistent SQLite snapshot
    /// with secrets and one-time tokens removed (see docs/DATA.md).
    #[command(
        after_help = "Examples:\n  malipo tenant export duka-ltd --out duka.sqlite\n  malipo tenant export 0b5e…-tenant-id --out duka-full.sqlite --full --json"
    )]
    Export(TenantExportArgs),
    /// Make an exported file a tenant again: the same tenant id (refused if
    /// it exists) or a new one with --as-new. Refuses a file whose schema is
    /// newer than this binary's.
    #[command(
        after_help = "Examples:\n  malipo tenant import duka.sqlite\n  malipo tenant import duka.sqlite --as-new --name 'Duka Copy' --owner-email owner@duka.example --json"
    )]
    Import(TenantImportArgs),
}

/// Flags of `malipo tenant create`.
#[derive(Debug, Args)]
pub struct TenantCreateArgs {
    /// The organization's name (`organization_name` in `POST /admin/tenants`
    /// and `POST /auth/register`; `--name` is accepted too).
    #[arg(long = "organization-name", visible_alias = "name")]
    pub name: String,
    /// The owner's email; an existing account becomes the owner as it is.
    #[arg(long)]
    pub owner_email: String,
    /// The owner's full name, for a new account (default: the organization's
    /// name; `owner_full_name` over REST, `--owner-name` accepted too).
    #[arg(long = "owner-full-name", visible_alias = "owner-name")]
    pub owner_name: Option<String>,
    /// The plan to subscribe to (e.g. free, standard, premium; default: the
    /// platform's default plan).
    #[arg(long)]
    pub plan: Option<String>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A tenant id and `--json`.
#[derive(Debug, Args)]
pub struct TenantIdArgs {
    /// The tenant's id.
    pub id: String,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `malipo user …`: the operator's user commands. Each mutating command
/// writes the platform audit (channel `cli`).
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user account (password from MALIPO_USER_PASSWORD or standard
    /// input; the password policy applies).
    #[command(
        after_help = "Examples:\n  MALIPO_USER_PASSWORD='a long passphrase' malipo user create --email ann@duka.example --full-name 'Ann W'\n  malipo user create --email ops@platform.example --super-admin --json < password.txt"
    )]
    Create {
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// The user's full name (default: the part of the email before `@`).
        #[arg(long)]
        full_name: Option<String>,
        /// Make the user a platform super-admin.
        #[arg(long)]
        super_admin: bool,
        /// Print one JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List user accounts with their memberships, or an organization's members.
    #[command(
        after_help = "Examples:\n  malipo user list\n  malipo user list --tenant 0b5e…-tenant-id --json"
    )]
    List {
        /// Only the members of this tenant (with their membership status).
        #[arg(long)]
        tenant: Option<String>,
        /// Print one JSON array on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Give a user a role in an organization, making them a member first if
    /// they are not (as the REST people and role endpoints do). The role is
    /// named as in `GET /roles` (e.g. Owner, Admin, Manager, Member).
    #[command(
        after_help = "Example:\n  malipo user assign-role --email ann@duka.example --tenant 0b5e…-tenant-id --role Manager --json"
    )]
    AssignRole {
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        /// The role's name.
        #[arg(long)]
        role: String,
        /// Print one JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Which surfaces `malipo serve` offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// REST (`/api/v1`, callbacks) and MCP (`/mcp`).
    #[default]
    Hybrid,
    /// REST only: no `/mcp`.
    Rest,
    /// MCP only: `/mcp` and the health routes.
    Mcp,
}
