//! `daraja-sim` command line: runs the Daraja sandbox emulator as a standalone server.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use daraja_sim::{Config, Faults, Identity, LimitPolicy, QueryPendingShape, ShortcodeConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Shape {
    Classic,
    Modern,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RefLimit {
    Ignore,
    Reject,
    AsyncFail,
}

/// Offline emulator of Safaricom's M-Pesa Daraja sandbox.
#[derive(Debug, Parser)]
#[command(name = "daraja-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "DARAJA_SIM_LISTEN", default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// Delay before callbacks are sent, in milliseconds (the real sandbox takes 14–26 s).
    #[arg(long, env = "DARAJA_SIM_CALLBACK_DELAY_MS", default_value_t = 200)]
    callback_delay_ms: u64,
    /// Timeout of one callback POST, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    callback_timeout_ms: u64,
    /// Strict mode: only configured apps (if any), shortcodes and initiators exist.
    #[arg(long, env = "DARAJA_SIM_STRICT")]
    strict: bool,
    /// Accept any well-formed base64 SecurityCredential without decrypting it.
    #[arg(long)]
    lenient_credentials: bool,
    /// Register an STK shortcode: SHORTCODE=PASSKEY (repeatable).
    #[arg(long = "shortcode", value_name = "SHORTCODE=PASSKEY")]
    shortcodes: Vec<String>,
    /// Register an initiator: NAME=PASSWORD (repeatable).
    #[arg(long = "initiator", value_name = "NAME=PASSWORD")]
    initiators: Vec<String>,
    /// Register an app: KEY:SECRET (repeatable; enforced in strict mode).
    #[arg(long = "app", value_name = "KEY:SECRET")]
    apps: Vec<String>,
    /// Passkey for shortcodes without one (non-strict mode).
    #[arg(long)]
    default_passkey: Option<String>,
    /// Password assumed for unknown initiators (non-strict mode).
    #[arg(long)]
    initiator_password: Option<String>,
    /// STK-query answer while a push is pending.
    #[arg(long, value_enum, default_value = "modern")]
    query_pending_shape: Shape,
    /// Policy for AccountReference longer than 12 characters.
    #[arg(long, value_enum, default_value = "reject")]
    account_reference_limit: RefLimit,
    /// Reject a second push to an MSISDN that has one pending.
    #[arg(long)]
    lock_subscriber: bool,
    /// Emit `expires_in` as a number instead of the observed string.
    #[arg(long)]
    expires_in_number: bool,
    /// Each new token invalidates the app's previous ones.
    #[arg(long)]
    invalidate_previous_token: bool,
    /// PEM private key to use instead of generating one (needs --cert-pem).
    #[arg(long, requires = "cert_pem")]
    key_pem: Option<PathBuf>,
    /// PEM certificate matching --key-pem.
    #[arg(long, requires = "key_pem")]
    cert_pem: Option<PathBuf>,
    /// Write the certificate clients must encrypt with to this file.
    #[arg(long)]
    write_cert: Option<PathBuf>,
}

fn pair(s: &str, sep: char) -> Result<(String, String), String> {
    s.split_once(sep)
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .ok_or_else(|| format!("expected A{sep}B, got `{s}`"))
}

fn config(args: &Args) -> Result<Config, String> {
    let mut cfg = Config {
        listen: args.listen,
        callback_delay: Duration::from_millis(args.callback_delay_ms),
        callback_timeout: Duration::from_millis(args.callback_timeout_ms),
        strict: args.strict,
        lenient_credentials: args.lenient_credentials,
        lock_subscriber: args.lock_subscriber,
        expires_in_as_number: args.expires_in_number,
        invalidate_previous_token: args.invalidate_previous_token,
        account_reference_limit: match args.account_reference_limit {
            RefLimit::Ignore => LimitPolicy::Ignore,
            RefLimit::Reject => LimitPolicy::Reject,
            RefLimit::AsyncFail => LimitPolicy::AsyncFail,
        },
        faults: Faults {
            query_pending_shape: match args.query_pending_shape {
                Shape::Classic => QueryPendingShape::Classic,
                Shape::Modern => QueryPendingShape::Modern,
            },
            ..Faults::default()
        },
        ..Config::default()
    };
    if let Some(p) = &args.default_passkey {
        cfg.default_passkey = p.clone();
    }
    if let Some(p) = &args.initiator_password {
        cfg.default_initiator_password = p.clone();
    }
    for s in &args.shortcodes {
        let (code, passkey) = pair(s, '=')?;
        cfg.shortcodes.retain(|c| c.short_code != code);
        cfg.shortcodes
            .push(ShortcodeConfig::with_passkey(&code, &passkey));
    }
    for s in &args.initiators {
        let (name, password) = pair(s, '=')?;
        cfg.initiators.insert(name, password);
    }
    let apps: BTreeMap<String, String> = args
        .apps
        .iter()
        .map(|s| pair(s, ':'))
        .collect::<Result<_, _>>()?;
    cfg.apps = apps;
    if let (Some(k), Some(c)) = (&args.key_pem, &args.cert_pem) {
        let key = std::fs::read_to_string(k).map_err(|e| format!("{}: {e}", k.display()))?;
        let cert = std::fs::read_to_string(c).map_err(|e| format!("{}: {e}", c.display()))?;
        cfg.identity = Some(Identity::from_pem(&key, &cert).map_err(|e| e.to_string())?);
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("daraja-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let running = match daraja_sim::start(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("daraja-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.write_cert
        && let Err(e) = std::fs::write(path, running.certificate_pem())
    {
        eprintln!("daraja-sim: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("daraja-sim listening on {}", running.base_url());
    println!(
        "certificate: GET {}/simulator/certificate",
        running.base_url()
    );
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("daraja-sim: cannot wait for Ctrl-C: {e}");
    }
    running.shutdown().await;
    ExitCode::SUCCESS
}
