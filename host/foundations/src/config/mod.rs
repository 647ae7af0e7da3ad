//! The effective configuration of a running host. Defaults are embedded so
//! that `malipo serve` works on a fresh machine; each knob can be overridden
//! by an environment variable named here.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod layers;

pub use layers::var;

/// Everything the host needs to know to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Root of all persistent state.
    pub data_dir: PathBuf,
    /// How long an access token lives (`MALIPO_ACCESS_TOKEN_TTL_SECS`, 900).
    pub access_token_ttl: Duration,
    /// How long a refresh token lives (`MALIPO_REFRESH_TOKEN_TTL_SECS`, 30 days).
    pub refresh_token_ttl: Duration,
    /// How long a password-reset token lives (1 hour).
    pub reset_token_ttl: Duration,
    /// How long an invitation lives (7 days).
    pub invitation_ttl: Duration,
    /// Tenant databases kept open at once (`MALIPO_TENANT_CACHE`, 1024).
    pub tenant_cache_capacity: u64,
    /// Largest request body accepted (`MALIPO_MAX_BODY_BYTES`, 1 MiB).
    pub max_body_bytes: usize,
    /// Calls per minute one client address may make to the unauthenticated
    /// auth routes (`MALIPO_AUTH_RATE_PER_MINUTE`, 60).
    pub auth_rate_per_minute: u32,
    /// Calls per minute one tenant's credentials may make, REST and MCP
    /// counted together (`MALIPO_TENANT_RATE_PER_MINUTE`, 6000; 0 = off).
    pub tenant_rate_per_minute: u32,
    /// Plugin sandbox limits.
    pub plugin_limits: PluginLimits,
    /// The MCP endpoint's settings.
    pub mcp: McpConfig,
    /// Reverse proxies whose `X-Forwarded-For` is believed
    /// (`MALIPO_TRUSTED_PROXIES`: comma-separated IPs or CIDRs; default none,
    /// so the header is ignored and the peer address is the client).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Reads `MALIPO_TRUSTED_PROXIES`: IPs (`10.0.0.5`) and CIDRs
/// (`10.0.0.0/8`, `fd00::/8`). An entry that is neither is logged and
/// ignored (it trusts nothing).
pub fn trusted_proxies(list: &str) -> Vec<ipnet::IpNet> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let parsed = entry.parse::<ipnet::IpNet>().ok().or_else(|| {
                entry
                    .parse::<std::net::IpAddr>()
                    .ok()
                    .map(ipnet::IpNet::from)
            });
            if parsed.is_none() {
                tracing::error!(
                    entry,
                    "MALIPO_TRUSTED_PROXIES: not an IP address or CIDR; ignored"
                );
            }
            parsed
        })
        .collect()
}

/// Settings of `/mcp`.
#[derive(Clone, Debug)]
pub struct McpConfig {
    /// `Host` values `/mcp` answers (`MALIPO_MCP_ALLOWED_HOSTS`, comma
    /// separated; default loopback names plus the host of
    /// `MALIPO_PUBLIC_URL`; `*` allows any). Guards against DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call `/mcp` (`MALIPO_MCP_ALLOWED_ORIGINS`,
    /// comma separated, e.g. `https://app.example.com`; default the origin
    /// of `MALIPO_PUBLIC_URL`). A request with any other `Origin` gets 403;
    /// requests without `Origin` (desktop and server clients) pass.
    pub allowed_origins: Vec<String>,
}

fn env_list(name: &str) -> Option<Vec<String>> {
    var(name).ok().map(|value| {
        value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    })
}

impl McpConfig {
    fn from_env() -> Self {
        let public = var("MALIPO_PUBLIC_URL").ok();
        let public_host = public
            .as_deref()
            .and_then(url_host)
            .map(|(_, host, _)| host);
        let public_origin = public.as_deref().and_then(|url| {
            let (scheme, rest) = url.split_once("://")?;
            let authority = rest.split('/').next()?;
            Some(format!("{scheme}://{authority}"))
        });
        let allowed_hosts = env_list("MALIPO_MCP_ALLOWED_HOSTS").unwrap_or_else(|| {
            let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
                .iter()
                .map(|h| h.to_string())
                .collect();
            hosts.extend(public_host);
            hosts
        });
        let allowed_origins = env_list("MALIPO_MCP_ALLOWED_ORIGINS")
            .unwrap_or_else(|| public_origin.into_iter().collect());
        Self {
            allowed_hosts,
            allowed_origins,
        }
    }
}

/// Limits applied to every plugin call.
#[derive(Clone, Debug)]
pub struct PluginLimits {
    /// Linear memory a plugin instance may grow to (`MALIPO_PLUGIN_MEMORY_MB`, 64).
    pub memory_bytes: usize,
    /// Wall-clock CPU deadline of one call (`MALIPO_PLUGIN_DEADLINE_MS`, 2000).
    pub deadline: Duration,
    /// Largest input JSON handed to a plugin (`MALIPO_PLUGIN_MAX_INPUT_BYTES`, 256 KiB).
    pub max_input_bytes: usize,
    /// Largest output a plugin may return, and largest query result it may
    /// read (`MALIPO_PLUGIN_MAX_OUTPUT_BYTES`, 4 MiB).
    pub max_output_bytes: usize,
    /// Calls after which a live instance is thrown away (`MALIPO_PLUGIN_MAX_CALLS`, 10000).
    pub max_calls_per_instance: u64,
    /// Idle live instances kept per tenant and plugin (`MALIPO_PLUGIN_IDLE_PER_TENANT`, 2).
    pub idle_instances_per_key: usize,
    /// Live instances kept across all tenants (`MALIPO_PLUGIN_INSTANCE_CACHE`, 512).
    pub instance_cache_capacity: u64,
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    var(name)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(default)
}

impl Config {
    /// Embedded defaults, overridden by the environment. The data
    /// directory is made absolute here, once (against the working directory
    /// at start), so that every path derived from it — the compiled-code
    /// cache above all, which wasmtime refuses when relative — is absolute.
    pub fn from_env(data_dir: &Path) -> Self {
        Self {
            data_dir: absolute(data_dir),
            access_token_ttl: Duration::from_secs(env_number("MALIPO_ACCESS_TOKEN_TTL_SECS", 900)),
            refresh_token_ttl: Duration::from_secs(env_number(
                "MALIPO_REFRESH_TOKEN_TTL_SECS",
                30 * 24 * 3600,
            )),
            reset_token_ttl: Duration::from_secs(3600),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            tenant_cache_capacity: env_number("MALIPO_TENANT_CACHE", 1024),
            max_body_bytes: env_number("MALIPO_MAX_BODY_BYTES", 1024 * 1024),
            auth_rate_per_minute: env_number("MALIPO_AUTH_RATE_PER_MINUTE", 60),
            tenant_rate_per_minute: env_number("MALIPO_TENANT_RATE_PER_MINUTE", 6000),
            mcp: McpConfig::from_env(),
            trusted_proxies: var("MALIPO_TRUSTED_PROXIES")
                .map(|list| trusted_proxies(&list))
                .unwrap_or_default(),
            plugin_limits: PluginLimits {
                memory_bytes: env_number::<usize>("MALIPO_PLUGIN_MEMORY_MB", 64) * 1024 * 1024,
                deadline: Duration::from_millis(env_number("MALIPO_PLUGIN_DEADLINE_MS", 2000)),
                max_input_bytes: env_number("MALIPO_PLUGIN_MAX_INPUT_BYTES", 256 * 1024),
                max_output_bytes: env_number("MALIPO_PLUGIN_MAX_OUTPUT_BYTES", 4 * 1024 * 1024),
                max_calls_per_instance: env_number("MALIPO_PLUGIN_MAX_CALLS", 10_000),
                idle_instances_per_key: env_number("MALIPO_PLUGIN_IDLE_PER_TENANT", 2),
                instance_cache_capacity: env_number("MALIPO_PLUGIN_INSTANCE_CACHE", 512),
            },
        }
    }

    /// `<data-dir>/control.db`.
    pub fn control_db_path(&self) -> PathBuf {
        self.data_dir.join("control.db")
    }

    /// `<data-dir>/tenants/`.
    pub fn tenants_dir(&self) -> PathBuf {
        self.data_dir.join("tenants")
    }

    /// `<data-dir>/plugins/`: extra plugins loaded at start.
    pub fn plugins_dir(&self) -> PathBuf {
        self.data_dir.join("plugins")
    }

    /// Where compiled plugin code is cached (`MALIPO_CACHE_DIR`, `<data-dir>/cache`).
    pub fn cache_dir(&self) -> PathBuf {
        var("MALIPO_CACHE_DIR")
            .ok()
            .map(|dir| absolute(Path::new(&dir)))
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }
}

/// `path` made absolute against the working directory (without touching
/// the file system, so a directory not created yet is fine); `path` itself
/// if the working directory cannot be read.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Splits a URL into scheme, host and port, for the allow-list.
pub fn url_host(url: &str) -> Option<(String, String, Option<u16>)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') || authority.is_empty() {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            (host, port.parse().ok())
        }
        _ => (authority, None),
    };
    Some((scheme, host.to_lowercase(), port))
}
