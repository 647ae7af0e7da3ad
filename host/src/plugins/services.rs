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
}

impl HostServices {
    /// Services with the operator's allow-list from the environment.
    pub fn new(secrets: SecretBox) -> Self {
        let mut allowed: Vec<String> = DEFAULT_ALLOWED.iter().map(|h| h.to_string()).collect();
        if let Ok(extra) = std::env::var("MALIPO_OUTBOUND_ALLOW") {
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
}
