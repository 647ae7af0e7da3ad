//! Daraja's SecurityCredential: the initiator password encrypted with the
//! public key of the environment's certificate (RSA, PKCS#1 v1.5, base64).
//!
//! Certificates: Safaricom's sandbox certificate is embedded; production's
//! comes from `MALIPO_DARAJA_PRODUCTION_CERT` (a PEM file); a `custom`
//! Daraja-compatible server (such as the built-in emulator) publishes its own
//! at `<base-url>/simulator/certificate`, fetched once and cached, through
//! the one outbound client (`malipo_foundations::outbound`): only a host the operator
//! allows (`MALIPO_OUTBOUND_ALLOW`, or the built-in emulator) is reached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey};
use x509_cert::Certificate;
use x509_cert::der::{DecodePem, Encode};

const SANDBOX_CERT: &str = include_str!("../certs/daraja-sandbox.cer");

/// Certificates by environment, and the credential computation.
pub struct DarajaCerts {
    custom: Mutex<HashMap<String, RsaPublicKey>>,
    outbound: Arc<malipo_foundations::outbound::Outbound>,
}

fn public_key(pem: &str) -> Result<RsaPublicKey, String> {
    let cert =
        Certificate::from_pem(pem.trim().as_bytes()).map_err(|e| format!("certificate: {e}"))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("public key: {e}"))?;
    RsaPublicKey::from_public_key_der(&spki).map_err(|e| format!("RSA public key: {e}"))
}

impl DarajaCerts {
    /// Certificates fetched through `outbound`.
    pub fn new(outbound: Arc<malipo_foundations::outbound::Outbound>) -> Self {
        Self {
            custom: Mutex::new(HashMap::new()),
            outbound,
        }
    }

    fn key_for(&self, environment: &str, base_url: Option<&str>) -> Result<RsaPublicKey, String> {
        match environment {
            "sandbox" if base_url.is_none() => public_key(SANDBOX_CERT),
            "production" => {
                let path = malipo_foundations::config::var("MALIPO_DARAJA_PRODUCTION_CERT").map_err(|_| {
                    "production credentials need MALIPO_DARAJA_PRODUCTION_CERT (Safaricom's production certificate)"
                        .to_string()
                })?;
                public_key(&std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?)
            }
            "sandbox" | "custom" => {
                let base = base_url
                    .ok_or("a custom environment needs a base URL")?
                    .trim_end_matches('/');
                if let Some(key) = self.custom.lock().ok().and_then(|m| m.get(base).cloned()) {
                    return Ok(key);
                }
                let reach = malipo_foundations::outbound::Reach::OperatorOnly;
                let (target, request) = self
                    .outbound
                    .request("GET", &format!("{base}/simulator/certificate"), reach)
                    .map_err(|e| e.to_string())?;
                let pem = request
                    .timeout(Duration::from_secs(10))
                    .call()
                    .map_err(|e| {
                        let why = malipo_foundations::outbound::Outbound::describe(
                            &e,
                            &target.host,
                            reach,
                        );
                        format!("fetch the certificate of the Daraja server: {why}")
                    })?
                    .into_string()
                    .map_err(|_| {
                        "read the certificate of the Daraja server: not text".to_string()
                    })?;
                let key = public_key(&pem)?;
                if let Ok(mut cache) = self.custom.lock() {
                    cache.insert(base.to_string(), key.clone());
                }
                Ok(key)
            }
            other => Err(format!("unknown environment `{other}`")),
        }
    }

    /// Whether [`Self::security_credential`] would fetch a certificate over
    /// the network (a custom base URL whose certificate is not cached yet).
    pub fn needs_fetch(&self, environment: &str, base_url: Option<&str>) -> bool {
        match (environment, base_url) {
            ("sandbox" | "custom", Some(base)) => !self
                .custom
                .lock()
                .is_ok_and(|m| m.contains_key(base.trim_end_matches('/'))),
            _ => false,
        }
    }

    /// The SecurityCredential for `password` in `environment`.
    pub fn security_credential(
        &self,
        environment: &str,
        base_url: Option<&str>,
        password: &str,
    ) -> Result<String, String> {
        let key = self.key_for(environment, base_url)?;
        let sealed = key
            .encrypt(&mut rand::rngs::OsRng, Pkcs1v15Encrypt, password.as_bytes())
            .map_err(|e| format!("encrypt: {e}"))?;
        Ok(STANDARD.encode(sealed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sandbox_certificate_encrypts_a_credential() {
        let certs = DarajaCerts::new(Arc::new(malipo_foundations::outbound::Outbound::new(&[])));
        let credential = certs
            .security_credential("sandbox", None, "Safaricom999!*!")
            .expect("credential");
        // RSA-2048 → 256 bytes → 344 base64 characters; random padding makes each differ.
        assert_eq!(STANDARD.decode(&credential).expect("base64").len(), 256);
        assert_ne!(
            credential,
            certs
                .security_credential("sandbox", None, "Safaricom999!*!")
                .expect("again")
        );
    }
}
