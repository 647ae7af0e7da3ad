//! Host services shared by every plugin instance: the secret box, Daraja
//! certificates, the outbound-HTTP policy and agent, and host settings such
//! as the public URL callbacks reach.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::crypto::SecretBox;
use crate::daraja_certs::DarajaCerts;

/// Hosts reachable by default (Safaricom's Daraja).
const DEFAULT_ALLOWED: &[&str] = &["sandbox.safaricom.co.ke", "api.safaricom.co.ke"];

/// Everything a capability needs beyond the call itself.
pub struct HostServices {
    /// Encrypts tenant secrets.
    pub secrets: SecretBox,
    /// Daraja certificates.
    pub daraja: DarajaCerts,
    /// The HTTP client of `outbound-http`.
    pub http: ureq::Agent,
    /// Hosts the operator allows (`MALIPO_OUTBOUND_ALLOW`, comma-separated,
    /// `*` for any), plus Safaricom's and the built-in emulator's.
    allowed_hosts: RwLock<Vec<String>>,
    /// `public-url`, `daraja-emulator-url`, ...
    settings: RwLock<HashMap<String, String>>,
    /// The transport of the `mail` import.
    pub mail: super::mailer::Mailer,
    /// Each tenant's `entitlements` setting (JSON), kept by
    /// [`crate::billing::Billing`].
    pub entitlements: moka::sync::Cache<String, std::sync::Arc<str>>,
}

impl HostServices {
    /// Services with the operator's allow-list from the environment.
    pub fn new(secrets: SecretBox) -> Self {
        let mut allowed: Vec<String> = DEFAULT_ALLOWED.iter().map(|h| h.to_string()).collect();
        if let Ok(extra) = crate::config::var("MALIPO_OUTBOUND_ALLOW") {
            allowed.extend(
                extra
                    .split(',')
                    .map(|h| h.trim().to_lowercase())
                    .filter(|h| !h.is_empty()),
            );
        }
        Self {
            secrets,
            daraja: DarajaCerts::default(),
            http: ureq::AgentBuilder::new().redirects(0).build(),
            allowed_hosts: RwLock::new(allowed),
            mail: super::mailer::Mailer::from_env(),
            entitlements: moka::sync::Cache::new(100_000),
            settings: RwLock::new(HashMap::new()),
        }
    }

    /// Sets a host setting.
    pub fn set(&self, name: &str, value: &str) {
        if let Ok(mut settings) = self.settings.write() {
            settings.insert(name.to_string(), value.to_string());
        }
    }

    /// A host setting.
    pub fn get(&self, name: &str) -> Option<String> {
        self.settings.read().ok().and_then(|s| s.get(name).cloned())
    }

    /// Lets plugins reach `host` (e.g. the in-process emulator's `127.0.0.1:port`).
    pub fn allow_host(&self, host: &str) {
        if let Ok(mut allowed) = self.allowed_hosts.write() {
            allowed.push(host.to_lowercase());
        }
    }

    /// Whether the operator allows `host` (`name` or `name:port`).
    pub fn operator_allows(&self, host: &str, port: Option<u16>) -> bool {
        let with_port = port.map(|p| format!("{host}:{p}"));
        self.allowed_hosts.read().is_ok_and(|allowed| {
            allowed
                .iter()
                .any(|a| a == "*" || a == host || Some(a) == with_port.as_ref())
        })
    }
}

/// Whether an address is one the open internet routes to (not loopback,
/// private, link-local, shared, documentation or unspecified).
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Whether `host` resolves, and only to public addresses. (The request
/// resolves again when it connects; a name that changes its answer in
/// between is not caught here.)
pub fn resolves_public(host: &str, port: Option<u16>) -> bool {
    use std::net::ToSocketAddrs;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match (bare, port.unwrap_or(443)).to_socket_addrs() {
        Ok(addresses) => {
            let addresses: Vec<_> = addresses.collect();
            !addresses.is_empty() && addresses.iter().all(|a| is_public(a.ip()))
        }
        Err(_) => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_for_the_allow_list() {
        assert_eq!(
            url_host("https://sandbox.safaricom.co.ke/oauth/v1/generate"),
            Some(("https".into(), "sandbox.safaricom.co.ke".into(), None))
        );
        assert_eq!(
            url_host("http://127.0.0.1:9000/x"),
            Some(("http".into(), "127.0.0.1".into(), Some(9000)))
        );
        assert_eq!(url_host("http://user@evil.example/"), None);
        assert_eq!(url_host("file:///etc/passwd"), None);
    }

    #[test]
    fn private_and_loopback_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.9",
            "172.16.5.5",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            let ip: std::net::IpAddr = private.parse().expect("ip");
            assert!(!is_public(ip), "{private}");
        }
        for public in ["8.8.8.8", "41.90.1.1", "2606:4700::1111"] {
            let ip: std::net::IpAddr = public.parse().expect("ip");
            assert!(is_public(ip), "{public}");
        }
        assert!(!resolves_public("localhost", Some(80)));
        assert!(!resolves_public("127.0.0.1", Some(80)));
    }
}
