//! Custom domains: the hostname a request was sent to (its `Host`, port
//! stripped), the rules a hostname a tenant claims must meet, and the
//! cached hostname → tenant lookup. A hostname only ever picks the tenant
//! of a public page or a login; an authenticated request acts in its
//! credential's tenant whatever its `Host`.

use std::time::Duration;

use moka::sync::Cache;

use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::TenantId;

/// How long a lookup is trusted (claims and releases drop it at once).
const TTL: Duration = Duration::from_secs(60);
/// Longest hostname (RFC 1035).
const MAX_LEN: usize = 253;
/// Longest label.
const MAX_LABEL: usize = 63;

/// The hostname an authority (a request's `Host`) names: lower-case,
/// without port or trailing dot.
pub fn normalize(authority: &str) -> Option<String> {
    let host = strip_port(authority.trim());
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// The host part of a URL such as `MALIPO_PUBLIC_URL`.
pub fn of_url(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = strip_port(authority)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// Checks a hostname a tenant claims: a DNS name of at least two labels
/// (letters, digits, `-`), not an IP address, not `localhost`, and neither
/// the platform's own host nor a name under it. Answers it lower-case.
pub fn validate(raw: &str, platform_host: Option<&str>) -> Result<String, String> {
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |label: &&str| {
        (1..=MAX_LABEL).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let shaped = name.len() <= MAX_LEN && labels.len() >= 2 && labels.iter().all(label_ok);
    // A last label of digits only is an IPv4 address (or no real domain).
    let numeric_tld = labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
    if !shaped || numeric_tld {
        return Err(
            "`hostname` must be a DNS name such as pay.example.com (letters, digits and `-`, not an IP address)"
                .into(),
        );
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return Err("`hostname` must not be localhost".into());
    }
    if let Some(platform) = platform_host
        && (name == platform || name.ends_with(&format!(".{platform}")))
    {
        return Err(format!(
            "`hostname` must not be the platform's own host ({platform}) or a name under it"
        ));
    }
    Ok(name)
}

/// Cached hostname → tenant lookups.
pub struct Hostnames {
    cache: Cache<String, Option<TenantId>>,
}

impl Default for Hostnames {
    fn default() -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(TTL)
                .build(),
        }
    }
}

impl Hostnames {
    /// The tenant that claimed `hostname`, if any.
    pub fn resolve(
        &self,
        control: &ControlDb,
        hostname: &str,
    ) -> Result<Option<TenantId>, ControlError> {
        if let Some(known) = self.cache.get(hostname) {
            return Ok(known);
        }
        let tenant = control.tenant_of_hostname(hostname)?;
        self.cache.insert(hostname.to_string(), tenant);
        Ok(tenant)
    }

    /// Drops what is known of `hostname` (it was just claimed or released).
    pub fn forget(&self, hostname: &str) {
        self.cache.invalidate(&hostname.to_ascii_lowercase());
    }

    /// Drops every lookup (e.g. after a tenant was deleted).
    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_checked() {
        assert_eq!(
            validate("Pay.Example.COM.", None).as_deref(),
            Ok("pay.example.com")
        );
        for bad in [
            "localhost",
            "a.localhost",
            "10.0.0.1",
            "[::1]",
            "example",
            "-a.example.com",
            "a..example.com",
            "a_b.example.com",
            "pay.example.com:8080",
            "",
        ] {
            assert!(validate(bad, None).is_err(), "{bad}");
        }
        let platform = Some("malipo.example.com");
        assert!(validate("malipo.example.com", platform).is_err());
        assert!(validate("x.malipo.example.com", platform).is_err());
        assert!(validate("pay.duka.co.ke", platform).is_ok());
    }

    #[test]
    fn the_request_host_loses_its_port() {
        assert_eq!(
            normalize("Pay.Alpha.test:8080").as_deref(),
            Some("pay.alpha.test")
        );
        assert_eq!(normalize("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(
            of_url("https://pay.malipo.co.ke:8443/base").as_deref(),
            Some("pay.malipo.co.ke")
        );
    }
}
