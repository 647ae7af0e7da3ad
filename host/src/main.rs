//! The `malipo` binary: parses the command line and runs one command.
#![forbid(unsafe_code)]

mod commands;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use malipo::app::Application;
use malipo::cli::{BootstrapArgs, Cli, Command, ConfigCommand, McpArgs, MpesaCommand, ServeArgs};
use malipo::config::Config;
use malipo::control::{ControlDb, PlatformAuditEntry, UserRecord};
use malipo::ids::UserId;

fn main() -> anyhow::Result<()> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    commands::config::install_file(&args)?;
    let command = commands::config::with_file_defaults(Cli::command());
    let matches = command.clone().get_matches_from(args);
    let flags = commands::config::flags_given(&command, &matches);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    init_logs(matches!(cli.command, Command::Serve(_) | Command::Mcp(_)));
    let config = Config::from_env(&cli.data_dir);
    match cli.command {
        Command::Serve(args) => serve(config, args),
        Command::Bootstrap(args) => bootstrap(&config, args),
        Command::Migrate(args) => commands::operator::migrate(config, args),
        Command::Tenant(command) => commands::operator::tenant(config, command),
        Command::User(command) => commands::operator::user(config, command),
        Command::Mpesa(MpesaCommand::Reconcile {
            daraja_emulator_url,
            json,
        }) => commands::mpesa::reconcile(config, daraja_emulator_url, json),
        Command::Mcp(args) => mcp_stdio(config, args),
        Command::Config(ConfigCommand::Show { json }) => commands::config::show(&flags, json),
        Command::Backup(args) => commands::data::backup(&config, args),
        Command::Restore(args) => commands::data::restore(&config, args),
    }
}

/// Logs to stderr: `RUST_LOG` if set; else INFO for the server (`serve`,
/// `mcp`: start-up, one access line per request, jobs) and WARN for the
/// one-shot operator commands, whose answer is their output. Schema
/// migrations that find nothing to do stay quiet. ANSI colours only when
/// stderr is a terminal. `MALIPO_LOG_FORMAT=json`: one JSON object a line,
/// with the request's span (request id, tenant id, user id) on every line
/// logged inside it.
fn init_logs(server: bool) {
    use std::io::IsTerminal;
    let default = if server {
        "info,wasmtime=warn,cranelift=warn,refinery_core=warn"
    } else {
        "warn"
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if malipo::config::var("MALIPO_LOG_FORMAT").is_ok_and(|f| f.trim().eq_ignore_ascii_case("json"))
    {
        logs.json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        logs.init();
    }
}

/// Points tenants without their own Daraja URL at a running emulator.
fn use_emulator(state: &malipo::core::Core, url: &str) -> anyhow::Result<()> {
    let services = state.runtime.services();
    let (_, host, port) = malipo::config::url_host(url)
        .ok_or_else(|| anyhow::anyhow!("the Daraja emulator URL must be an http(s) URL"))?;
    services.set("daraja-emulator-url", url.trim_end_matches('/'));
    services.allow_host(&port.map_or(host.clone(), |p| format!("{host}:{p}")));
    Ok(())
}

/// Runs `work` on a fresh multi-threaded runtime with the state built
/// from `config` (on a blocking thread: it opens files and compiles plugins).
fn with_state<F, Fut>(config: Config, work: F) -> anyhow::Result<()>
where
    F: FnOnce(std::sync::Arc<malipo::core::Core>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let state = tokio::task::spawn_blocking(move || malipo::app::build_state(config)).await??;
        work(state).await
    })
}

fn mcp_stdio(config: Config, args: McpArgs) -> anyhow::Result<()> {
    with_state(config, |state| async move {
        if let Some(url) = &args.daraja_emulator_url {
            use_emulator(&state, url)?;
        }
        if let Ok(public) = malipo::config::var("MALIPO_PUBLIC_URL") {
            state.runtime.services().set("public-url", &public);
        }
        malipo::mcp::stdio::serve(state, args.api_key).await
    })
}

/// `<data-dir>/daraja-emulator.url`: the base URL of the emulator a
/// `serve --daraja-sim` on this data directory runs, while it runs.
const EMULATOR_URL_FILE: &str = "daraja-emulator.url";

/// The emulator of the server serving `config`'s data directory, if it
/// runs one (a file left by a server that is gone is ignored).
fn running_emulator(config: &Config) -> Option<String> {
    let url = std::fs::read_to_string(config.data_dir.join(EMULATOR_URL_FILE)).ok()?;
    let served = malipo::data_dir::ensure_not_served(&config.data_dir).is_err();
    served
        .then(|| url.trim().to_string())
        .filter(|u| !u.is_empty())
}

fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Held until the server stops: a second `serve`, a `restore` or a
    // `tenant delete --now` on this directory refuses meanwhile.
    let _lock = malipo::data_dir::lock(&config.data_dir)?;
    runtime.block_on(async move {
        let data_dir = config.data_dir.clone();
        let app = Application::build(config, args.listen)
            .await?
            .with_mode(args.mode);
        // The emulator lives as long as the server: dropping it stops it.
        let emulator = if args.daraja_sim {
            let emulator = daraja_sim::start(daraja_sim::Config {
                callback_delay: std::time::Duration::from_millis(args.daraja_sim_delay_ms),
                ..daraja_sim::Config::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("start the Daraja emulator: {e}"))?;
            let services = app.state().runtime.services().clone();
            services.set("daraja-emulator-url", emulator.base_url());
            services.allow_host(&emulator.addr().to_string());
            // `malipo mpesa reconcile` on this data directory reads it, so
            // that tenants set up under the emulator are reconciled there
            // and not at Safaricom's sandbox.
            let marker = data_dir.join(EMULATOR_URL_FILE);
            if let Err(error) = std::fs::write(&marker, emulator.base_url()) {
                tracing::warn!(%error, path = %marker.display(), "emulator URL not recorded");
            }
            Some(emulator)
        } else {
            None
        };
        let addr = app.local_addr()?;
        let surfaces = match args.mode {
            malipo::cli::Mode::Hybrid => format!("REST at /api/v1, MCP at http://{addr}/mcp"),
            malipo::cli::Mode::Rest => "REST at /api/v1".to_string(),
            malipo::cli::Mode::Mcp => format!("MCP at http://{addr}/mcp"),
        };
        println!(
            "malipo listening on http://{addr} (data directory {}; {surfaces})",
            data_dir.display(),
        );
        if let Some(emulator) = &emulator {
            println!(
                "daraja emulator at {} (tenants without their own Daraja URL use it)",
                emulator.base_url()
            );
        }
        let served = app.run(shutdown_signal()).await;
        if emulator.is_some() {
            let _ = std::fs::remove_file(data_dir.join(EMULATOR_URL_FILE));
        }
        served?;
        println!("malipo stopped");
        Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM (what `systemctl stop` and `kill` send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "SIGTERM not handled; stop with Ctrl-C");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
}

fn bootstrap(config: &Config, args: BootstrapArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let password = commands::operator::password("MALIPO_BOOTSTRAP_PASSWORD", &args.email)?;
    let email = args.email.trim().to_lowercase();
    anyhow::ensure!(email.contains('@'), "--email must be an email address");
    let control = ControlDb::open(&config.control_db_path()).context("open control.db")?;
    let user = UserRecord {
        id: UserId::new(),
        email: email.clone(),
        full_name: args.full_name,
        password_hash: malipo::passwords::hash(&password)?,
        is_super_admin: true,
        status: "active".into(),
        created_at: malipo::time_util::now_rfc3339(),
    };
    if !control.create_first_super_admin(&user)? {
        anyhow::bail!("a platform super-admin already exists; bootstrap refuses to make another");
    }
    control.platform_audit(&PlatformAuditEntry {
        actor_id: None,
        channel: "cli".into(),
        operation: "platform.bootstrap".into(),
        target: Some(email.clone()),
        outcome: "success".into(),
        ..Default::default()
    })?;
    println!("created platform super-admin {email}");
    Ok(())
}
