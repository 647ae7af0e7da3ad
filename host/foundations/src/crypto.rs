//! Encryption at rest for tenant secrets: AES-256-GCM under one master key,
//! with `<tenant-id>/<field>` as associated data so a ciphertext moved to
//! another tenant or another field does not decrypt. A plugin's secret's
//! field is `<plugin>/<name>` (see
//! [`secret_field`]), so a ciphertext moved to
//! another plugin's secret of the same name does not decrypt either.
//!
//! The master key comes from `MALIPO_MASTER_KEY` (64 hex characters) or from
//! `<data-dir>/master.key`, created with 0600 permissions on first run.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The master key is missing or malformed.
    #[error("master key: {0}")]
    Key(String),
    /// The ciphertext does not open with this key and associated data.
    #[error("secret does not decrypt (wrong key, tenant or field)")]
    Open,
    /// Encryption failed.
    #[error("secret could not be encrypted")]
    Seal,
}

/// Seals and opens secrets.
pub struct SecretBox {
    cipher: Aes256Gcm,
}

const NONCE_LEN: usize = 12;

impl SecretBox {
    /// The box of `MALIPO_MASTER_KEY`, else of `<data-dir>/master.key`.
    pub fn load(data_dir: &Path) -> Result<Self, CryptoError> {
        let key = match crate::config::var("MALIPO_MASTER_KEY") {
            Ok(hex_key) => {
                hex::decode(hex_key.trim()).map_err(|e| CryptoError::Key(e.to_string()))?
            }
            Err(_) => read_or_create(&data_dir.join("master.key"))?,
        };
        Self::from_key(&key)
    }

    /// A box over raw key bytes (32).
    pub fn from_key(key: &[u8]) -> Result<Self, CryptoError> {
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| {
            CryptoError::Key("the master key must be 32 bytes (64 hex characters)".into())
        })?;
        Ok(Self { cipher })
    }

    /// `nonce || ciphertext` of `plaintext`, bound to tenant and field.
    pub fn seal(
        &self,
        tenant: &str,
        field: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = format!("{tenant}/{field}");
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    /// Opens what [`Self::seal`] made for the same tenant and field.
    pub fn open(&self, tenant: &str, field: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let aad = format!("{tenant}/{field}");
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

fn read_or_create(path: &Path) -> Result<Vec<u8>, CryptoError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return hex::decode(text.trim())
            .map_err(|e| CryptoError::Key(format!("{}: {e}", path.display())));
    }
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    crate::jwt::write_private(path, hex::encode(key).as_bytes())
        .map_err(|e| CryptoError::Key(e.to_string()))?;
    Ok(key.to_vec())
}

/// The AES-GCM field of a secret (the associated data is
/// `<tenant>/<field>`): `<plugin>/<name>` for a plugin's secret, so that a
/// ciphertext moved to another plugin's row does not decrypt; the bare
/// `name` for the host's own.
pub fn secret_field(plugin: &str, name: &str) -> String {
    if plugin.is_empty() {
        name.to_string()
    } else {
        format!("{plugin}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_tenant_and_field() {
        let secret_box = SecretBox::from_key(&[7u8; 32]).expect("key");
        let sealed = secret_box
            .seal("tenant-a", "passkey", b"hunter2")
            .expect("seal");
        assert_eq!(
            secret_box
                .open("tenant-a", "passkey", &sealed)
                .expect("open"),
            b"hunter2"
        );
        assert!(secret_box.open("tenant-b", "passkey", &sealed).is_err());
        assert!(
            secret_box
                .open("tenant-a", "consumer_secret", &sealed)
                .is_err()
        );
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        let mpesa = secret_box
            .seal("tenant-a", "mpesa/passkey", b"hunter2")
            .expect("seal");
        assert!(
            secret_box
                .open("tenant-a", "thief/passkey", &mpesa)
                .is_err()
        );
        assert!(secret_box.open("tenant-a", "passkey", &mpesa).is_err());
    }
}
