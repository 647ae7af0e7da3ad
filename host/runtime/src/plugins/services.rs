//! Host services shared by every plugin instance: the secret box, Daraja
//! certificates, the outbound-HTTP policy and agent, and host settings such
//! as the public URL callbacks reach.

use malipo_foundations::config::url_host;
use std::collections::HashMap;
use std::sync::RwLock;

use crate::daraja_certs::DarajaCerts;
use malipo_foundations::crypto::SecretBox;

/// Everything a capability needs beyond the call itself.
pub struct HostServices {
    /// Encrypts tenant secrets.
    pub secrets: SecretBox,
    /// Daraja certificates.
    pub daraja: DarajaCerts,
    /// The one outbound client (`malipo_foundations::outbound`): `outbound-http` and
    /// the certificate fetch of a custom Daraja server go through it.
    pub outbound: std::sync::Arc<malipo_foundations::outbound::Outbound>,
    /// `public-url`, `daraja-emulator-url`, ...
    settings: RwLock<HashMap<String, String>>,
    /// The transport of the `mail` import.
    pub mail: super::mailer::Mailer,
    /// Each tenant's `entitlements` setting (JSON), kept by
    /// the host's `malipo::billing::Billing`.
    pub entitlements: moka::sync::Cache<String, std::sync::Arc<str>>,
}

impl HostServices {
    /// Services with the operator's allow-list from the environment.
    pub fn new(secrets: SecretBox) -> Self {
        let outbound = std::sync::Arc::new(malipo_foundations::outbound::Outbound::from_env());
        Self {
            secrets,
            daraja: DarajaCerts::new(std::sync::Arc::clone(&outbound)),
            outbound,
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
        self.outbound.allow_host(host);
    }

    /// Whether the operator allows `host` (`name` or `name:port`).
    pub fn operator_allows(&self, host: &str, port: Option<u16>) -> bool {
        self.outbound.operator_allows(host, port)
    }
}

/// The `host` label of an outbound request: the Daraja hosts by name, the
/// emulator the operator configured, anything else folded.
pub fn daraja_host(services: &HostServices, host: &str, port: Option<u16>) -> &'static str {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "api.safaricom.co.ke" => return "api.safaricom.co.ke",
        "sandbox.safaricom.co.ke" => return "sandbox.safaricom.co.ke",
        other if other.ends_with(".safaricom.co.ke") || other == "safaricom.co.ke" => {
            return "safaricom-other";
        }
        _ => {}
    }
    let emulator = services
        .get("daraja-emulator-url")
        .and_then(|url| url_host(&url));
    match emulator {
        Some((_, emulator_host, emulator_port))
            if emulator_host.eq_ignore_ascii_case(&host) && emulator_port == port =>
        {
            "daraja-emulator"
        }
        _ => "other",
    }
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
