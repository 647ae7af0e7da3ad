//! Where a setting's value comes from: a flag beats the environment, the
//! environment beats the configuration file (`--config` / `MALIPO_CONFIG`,
//! TOML), and the file beats the embedded default. Every knob is listed
//! once in [`SETTINGS`]; the file may only name listed knobs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One knob of the host.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The environment variable, e.g. `MALIPO_LISTEN`; its TOML key is the
    /// same without `MALIPO_`, lower-case (`listen`).
    pub name: &'static str,
    /// The embedded default as text; `None` when unset means "off" or
    /// "derived" (see `about`).
    pub default: Option<&'static str>,
    /// Whether the value is a secret (`config show` redacts it).
    pub secret: bool,
    /// What it does.
    pub about: &'static str,
}

impl Setting {
    /// The key naming this setting in the configuration file.
    pub fn file_key(&self) -> String {
        self.name
            .strip_prefix("MALIPO_")
            .unwrap_or(self.name)
            .to_ascii_lowercase()
    }
}

const fn knob(name: &'static str, default: Option<&'static str>, about: &'static str) -> Setting {
    Setting {
        name,
        default,
        secret: false,
        about,
    }
}

const fn secret(name: &'static str, about: &'static str) -> Setting {
    Setting {
        name,
        default: None,
        secret: true,
        about,
    }
}

/// Every setting the host reads.
pub const SETTINGS: &[Setting] = &[
    knob(
        "MALIPO_CONFIG",
        None,
        "the TOML configuration file (`--config`)",
    ),
    knob(
        "MALIPO_DATA_DIR",
        Some("./tenants-data"),
        "control.db, tenants/, plugins/, keys and cache",
    ),
    knob(
        "MALIPO_LISTEN",
        Some("127.0.0.1:8080"),
        "`serve` listen address",
    ),
    knob(
        "MALIPO_MODE",
        Some("hybrid"),
        "`serve` surfaces: hybrid, rest, mcp",
    ),
    knob(
        "MALIPO_DARAJA_SIM",
        Some("false"),
        "`serve` runs the built-in Daraja emulator",
    ),
    knob(
        "MALIPO_DARAJA_SIM_DELAY_MS",
        Some("1000"),
        "the emulator's callback delay",
    ),
    knob(
        "MALIPO_DARAJA_EMULATOR_URL",
        None,
        "a running emulator for `mcp` and `mpesa reconcile`",
    ),
    knob(
        "MALIPO_PUBLIC_URL",
        None,
        "base URL Daraja calls back at (default http://<listen address>)",
    ),
    secret(
        "MALIPO_JWT_SECRET",
        "HS256 signing secret (default <data-dir>/jwt.key)",
    ),
    secret(
        "MALIPO_MASTER_KEY",
        "AES-256-GCM key of tenant secrets (default <data-dir>/master.key)",
    ),
    knob(
        "MALIPO_ACCESS_TOKEN_TTL_SECS",
        Some("900"),
        "access-token lifetime",
    ),
    knob(
        "MALIPO_REFRESH_TOKEN_TTL_SECS",
        Some("2592000"),
        "refresh-token lifetime",
    ),
    knob(
        "MALIPO_TENANT_CACHE",
        Some("1024"),
        "tenant databases kept open",
    ),
    knob(
        "MALIPO_MAX_BODY_BYTES",
        Some("1048576"),
        "request body limit",
    ),
    knob(
        "MALIPO_AUTH_RATE_PER_MINUTE",
        Some("60"),
        "calls a minute per address to the public auth routes",
    ),
    knob(
        "MALIPO_TENANT_RATE_PER_MINUTE",
        Some("6000"),
        "ceiling of any tenant's calls a minute (0 = off)",
    ),
    knob(
        "MALIPO_PLUGIN_MEMORY_MB",
        Some("64"),
        "memory cap of a plugin instance",
    ),
    knob(
        "MALIPO_PLUGIN_DEADLINE_MS",
        Some("2000"),
        "CPU deadline of one plugin call",
    ),
    knob(
        "MALIPO_PLUGIN_MAX_INPUT_BYTES",
        Some("262144"),
        "largest input handed to a plugin",
    ),
    knob(
        "MALIPO_PLUGIN_MAX_OUTPUT_BYTES",
        Some("4194304"),
        "largest plugin answer or query result",
    ),
    knob(
        "MALIPO_PLUGIN_MAX_CALLS",
        Some("10000"),
        "calls before a live instance is recycled",
    ),
    knob(
        "MALIPO_PLUGIN_IDLE_PER_TENANT",
        Some("2"),
        "idle live instances kept per tenant and plugin",
    ),
    knob(
        "MALIPO_PLUGIN_INSTANCE_CACHE",
        Some("512"),
        "(tenant, plugin) instance lists kept",
    ),
    knob(
        "MALIPO_POOLING",
        Some("on"),
        "wasmtime pooling allocator (falls back to on-demand)",
    ),
    knob(
        "MALIPO_POOL_INSTANCES",
        Some("1000"),
        "pooling allocator's instance slots",
    ),
    knob(
        "MALIPO_CACHE_DIR",
        None,
        "compiled-plugin cache (default <data-dir>/cache)",
    ),
    secret(
        "MALIPO_BOOTSTRAP_PASSWORD",
        "password for `malipo bootstrap` (default: read stdin)",
    ),
    secret("MALIPO_API_KEY", "the API key `malipo mcp` acts with"),
    secret(
        "MALIPO_SMTP_URL",
        "SMTP server for email (unset: email stays queued)",
    ),
    knob(
        "MALIPO_SMTP_FROM",
        Some("Malipo <no-reply@localhost>"),
        "the From of every email",
    ),
    knob(
        "MALIPO_OUTBOUND_ALLOW",
        None,
        "hosts (`name` or `name:port`, comma-separated; `*` any) outbound requests may reach besides public addresses; loopback/private only when listed",
    ),
    knob(
        "MALIPO_DOMAIN_CHALLENGE_ADDR",
        None,
        "if set (host:port), every custom-domain challenge fetch connects there (a front proxy; tests)",
    ),
    knob(
        "MALIPO_TRUSTED_PROXIES",
        None,
        "reverse proxies (IPs/CIDRs, comma-separated) whose X-Forwarded-For names the client; default none",
    ),
    knob(
        "MALIPO_CALLBACK_ALLOW_IPS",
        None,
        "if set, Daraja callbacks only from these addresses",
    ),
    knob(
        "MALIPO_DARAJA_PRODUCTION_CERT",
        None,
        "PEM file of Safaricom's production certificate",
    ),
    knob(
        "MALIPO_JOB_INTERVAL_SECS",
        Some("30"),
        "plugin jobs for tenants with open databases",
    ),
    knob(
        "MALIPO_JOB_SWEEP_SECS",
        Some("3600"),
        "plugin jobs and event delivery for every active tenant",
    ),
    knob(
        "MALIPO_JOB_CONCURRENCY",
        Some("8"),
        "tenants whose jobs run at the same time",
    ),
    knob(
        "MALIPO_JOB_TENANT_BUDGET_SECS",
        Some("60"),
        "time one tenant's jobs may take in a round",
    ),
    knob(
        "MALIPO_EVENT_INTERVAL_MS",
        Some("1000"),
        "event delivery for open tenants (0 = none in this process)",
    ),
    knob(
        "MALIPO_EVENT_RETRY_BASE_MS",
        Some("1000"),
        "first retry wait of a failed event delivery",
    ),
    knob(
        "MALIPO_RECONCILE_AFTER_SECS",
        Some("120"),
        "a payment pending this long is queried at Daraja",
    ),
    knob(
        "MALIPO_DEFAULT_PLAN",
        Some("standard"),
        "the plan a new organization starts a trial of",
    ),
    knob(
        "MALIPO_METERING",
        Some("on"),
        "`off` skips entitlement checks, quotas and metering",
    ),
    knob(
        "MALIPO_USAGE_FLUSH_MS",
        Some("5000"),
        "how often metered calls are written to the usage plugin",
    ),
    knob(
        "MALIPO_TEST_CLOCK",
        Some("off"),
        "`1` enables POST /api/v1/admin/clock (tests and demos only)",
    ),
    knob(
        "MALIPO_MCP_ALLOWED_HOSTS",
        None,
        "Host values /mcp answers (default loopback + MALIPO_PUBLIC_URL's host)",
    ),
    knob(
        "MALIPO_MCP_ALLOWED_ORIGINS",
        None,
        "browser origins allowed on /mcp (default MALIPO_PUBLIC_URL's origin)",
    ),
    secret(
        "MALIPO_METRICS_TOKEN",
        "bearer token of GET /metrics (unset: loopback only)",
    ),
    knob(
        "MALIPO_LOG_FORMAT",
        Some("text"),
        "`json`: one JSON object a line on stderr",
    ),
    knob(
        "MALIPO_ALERT_WINDOW_SECS",
        Some("600"),
        "window over which abnormal tenant behaviour is counted",
    ),
    knob(
        "MALIPO_ALERT_FAILED_LOGINS",
        Some("20"),
        "failed sign-ins in the window that raise an alert (0 = never)",
    ),
    knob(
        "MALIPO_ALERT_FAILED_PAYMENTS",
        Some("10"),
        "failed payments in the window that raise an alert (0 = never)",
    ),
    knob(
        "MALIPO_ALERT_SERVER_ERRORS",
        Some("25"),
        "5xx answers in the window that raise an alert (0 = never)",
    ),
    knob(
        "MALIPO_BACKUP_DIR",
        None,
        "`malipo backup --to`: the directory of backup generations",
    ),
    knob(
        "MALIPO_BACKUP_KEEP",
        Some("7"),
        "`malipo backup --keep`: generations kept",
    ),
    knob(
        "MALIPO_TENANT_DELETION_GRACE_SECS",
        Some("2592000"),
        "how long a deleted organization waits before it is purged",
    ),
    knob(
        "MALIPO_TENANT_DELETION_SWEEP_SECS",
        Some("60"),
        "how often due deletions are purged",
    ),
    secret(
        "MALIPO_OWNER_PASSWORD",
        "password of a new owner for `malipo tenant create` (default: read stdin)",
    ),
    secret(
        "MALIPO_USER_PASSWORD",
        "password for `malipo user create` (default: read stdin)",
    ),
    knob(
        "MALIPO_SHUTDOWN_GRACE_SECS",
        Some("30"),
        "how long shutdown waits for in-flight requests and the outbox",
    ),
];

/// The setting named `name`, if the host knows it.
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Problems with the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A key the host does not know, or a value of the wrong shape.
    #[error("configuration file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The values a configuration file sets, by environment-variable name.
#[derive(Clone, Debug, Default)]
pub struct FileLayer {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    values: BTreeMap<&'static str, String>,
}

impl FileLayer {
    /// Reads and checks a TOML file: flat `key = value` pairs whose keys are
    /// known settings (`listen`, `public_url`, …) and whose values are
    /// strings, integers or booleans.
    pub fn read(path: &Path) -> Result<Self, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, ConfigFileError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigFileError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
        let invalid = |message: String| ConfigFileError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut values = BTreeMap::new();
        for (key, value) in table {
            let known = SETTINGS
                .iter()
                .find(|s| s.file_key() == key)
                .ok_or_else(|| {
                    invalid(format!(
                        "unknown key `{key}` (keys are setting names without MALIPO_, lower-case, e.g. `listen`, `public_url`; `malipo config show` lists them)"
                    ))
                })?;
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Array(items) => {
                    let mut parts = Vec::new();
                    for item in items {
                        match item {
                            toml::Value::String(s) => parts.push(s),
                            other => {
                                return Err(invalid(format!(
                                    "`{key}`: list items must be strings, not {}",
                                    other.type_str()
                                )));
                            }
                        }
                    }
                    parts.join(",")
                }
                other => {
                    return Err(invalid(format!(
                        "`{key}` must be a string, number, boolean or list of strings, not a {}",
                        other.type_str()
                    )));
                }
            };
            values.insert(known.name, text);
        }
        Ok(Self {
            path: Some(path.to_path_buf()),
            values,
        })
    }

    /// The file's value of a setting.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

static FILE: OnceLock<FileLayer> = OnceLock::new();

/// Installs the configuration file's values for the whole process (once,
/// before anything reads a setting). Later calls are ignored.
pub fn install(layer: FileLayer) {
    let _ = FILE.set(layer);
}

/// The installed configuration file, if any.
pub fn file() -> Option<&'static FileLayer> {
    FILE.get()
}

/// A setting's value: the environment's, else the configuration file's.
/// Every `MALIPO_*` knob is read through here, so that the file and the
/// environment layer the same way everywhere (flags sit on top, in clap).
pub fn var(name: &str) -> Result<String, std::env::VarError> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => FILE
            .get()
            .and_then(|f| f.get(name))
            .map(str::to_string)
            .ok_or(std::env::VarError::NotPresent),
        other => other,
    }
}

/// Where a setting's effective value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// The environment.
    Env,
    /// The configuration file.
    File,
    /// The embedded default.
    Default,
    /// Not set, no default.
    Unset,
}

/// A setting's effective value and its source, as `config show` prints it
/// (`flags` holds what the command line set, by setting name).
pub fn effective(
    setting: &Setting,
    flags: &BTreeMap<&'static str, String>,
) -> (Option<String>, Source) {
    if let Some(value) = flags.get(setting.name) {
        return (Some(value.clone()), Source::Flag);
    }
    if let Ok(value) = std::env::var(setting.name) {
        return (Some(value), Source::Env);
    }
    if let Some(value) = FILE.get().and_then(|f| f.get(setting.name)) {
        return (Some(value.to_string()), Source::File);
    }
    match setting.default {
        Some(value) => (Some(value.to_string()), Source::Default),
        None => (None, Source::Unset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileLayer, ConfigFileError> {
        FileLayer::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn file_keys_map_to_settings() {
        let layer = parse(
            "listen = \"0.0.0.0:9000\"\ntenant_cache = 12\ndaraja_sim = true\noutbound_allow = [\"a.test\", \"b.test\"]\n",
        )
        .expect("valid file");
        assert_eq!(layer.get("MALIPO_LISTEN"), Some("0.0.0.0:9000"));
        assert_eq!(layer.get("MALIPO_TENANT_CACHE"), Some("12"));
        assert_eq!(layer.get("MALIPO_DARAJA_SIM"), Some("true"));
        assert_eq!(layer.get("MALIPO_OUTBOUND_ALLOW"), Some("a.test,b.test"));
    }

    #[test]
    fn unknown_keys_and_tables_are_refused() {
        let unknown = parse("lisen = \"x\"").expect_err("typo refused");
        assert!(unknown.to_string().contains("unknown key `lisen`"));
        let table = parse("[listen]\nport = 1").expect_err("table refused");
        assert!(table.to_string().contains("not a table"), "{table}");
        let syntax = parse("listen = ").expect_err("syntax error");
        assert!(matches!(syntax, ConfigFileError::Parse { .. }));
    }

    #[test]
    fn every_setting_the_code_reads_is_listed_and_documented() {
        // This crate is `host/foundations`; the host's other crates
        // (`host/src`, `host/storage/src`, `host/runtime/src`,
        // `host/core/src`, …) read settings too, so every one is scanned.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut read = std::collections::BTreeSet::new();
        let mut stack = vec![root.join("src")];
        for entry in std::fs::read_dir(&root).expect("read host/").flatten() {
            let src = entry.path().join("src");
            if src.is_dir() {
                stack.push(src);
            }
        }
        assert!(
            stack.len() >= 5,
            "the host's crates were not found: {stack:?}"
        );
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read src").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read source");
                    for piece in text.split('"').skip(1).step_by(2) {
                        if piece.len() > "MALIPO_".len()
                            && piece.starts_with("MALIPO_")
                            && piece
                                .chars()
                                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
                        {
                            read.insert(piece.to_string());
                        }
                    }
                }
            }
        }
        let readme =
            std::fs::read_to_string(root.join("../README.md")).expect("README.md next to host/");
        for name in &read {
            assert!(
                setting(name).is_some(),
                "{name} is read by the code but missing from config::layers::SETTINGS"
            );
        }
        for setting in SETTINGS {
            assert!(
                readme.contains(setting.name),
                "{} is not documented in README.md",
                setting.name
            );
        }
    }
}
