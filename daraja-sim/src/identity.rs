//! The emulator's RSA-2048 key pair and self-signed X.509 certificate, used the way Safaricom's
//! public certificate is: clients encrypt the initiator password with the certificate
//! (RSA PKCS#1 v1.5, then base64) and the emulator decrypts the SecurityCredential.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey};
use x509_cert::Certificate;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::{DecodePem, Encode, EncodePem};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

use crate::error::IdentityError;

/// Subject of generated certificates.
pub const CERT_SUBJECT: &str = "CN=daraja-sim.local,OU=Daraja Emulator,O=daraja-sim,L=Nairobi,C=KE";

/// RSA private key + matching X.509 certificate (PEM). Cheap to clone.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<IdentityInner>,
}

struct IdentityInner {
    key: RsaPrivateKey,
    key_pem: String,
    cert_pem: String,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("cert_pem", &self.inner.cert_pem)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Generates a fresh RSA-2048 key and a self-signed certificate valid for ten years.
    pub fn generate() -> Result<Identity, IdentityError> {
        let mut rng = rand::thread_rng();
        let key =
            RsaPrivateKey::new(&mut rng, 2048).map_err(|e| IdentityError::Key(e.to_string()))?;
        let cert_pem = self_signed_pem(&key)?;
        Identity::assemble(key, cert_pem)
    }

    /// Loads a private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY` PEM) and its certificate PEM.
    /// Fails if the certificate's public key does not belong to the private key.
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Identity, IdentityError> {
        let key = RsaPrivateKey::from_pkcs8_pem(key_pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(key_pem))
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        let cert_public = certificate_public_key(cert_pem)?;
        if cert_public != key.to_public_key() {
            return Err(IdentityError::Mismatch);
        }
        Identity::assemble(key, cert_pem.to_owned())
    }

    fn assemble(key: RsaPrivateKey, cert_pem: String) -> Result<Identity, IdentityError> {
        let key_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| IdentityError::Key(e.to_string()))?
            .to_string();
        Ok(Identity {
            inner: Arc::new(IdentityInner {
                key,
                key_pem,
                cert_pem,
            }),
        })
    }

    /// The certificate in PEM form (what clients encrypt the initiator password with).
    pub fn certificate_pem(&self) -> &str {
        &self.inner.cert_pem
    }

    /// The private key in PKCS#8 PEM form.
    pub fn private_key_pem(&self) -> &str {
        &self.inner.key_pem
    }

    /// The public key in SPKI PEM form.
    pub fn public_key_pem(&self) -> Result<String, IdentityError> {
        self.inner
            .key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| IdentityError::Key(e.to_string()))
    }

    /// Decrypts a SecurityCredential: base64 → RSA PKCS#1 v1.5 → UTF-8 password.
    pub fn decrypt_credential(&self, credential: &str) -> Result<String, CredentialError> {
        let bytes = decode_credential(credential)?;
        let plain = self
            .inner
            .key
            .decrypt(Pkcs1v15Encrypt, &bytes)
            .map_err(|_| CredentialError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CredentialError::Decrypt)
    }
}

/// Why a SecurityCredential could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Not base64 (sync `400.002.02 Bad Request - Invalid SecurityCredential`).
    #[error("SecurityCredential is not valid base64")]
    Malformed,
    /// Base64, but not decryptable with the emulator's key (async 2001).
    #[error("SecurityCredential cannot be decrypted with the emulator key")]
    Decrypt,
}

/// Decodes a base64 SecurityCredential, tolerating embedded whitespace.
pub(crate) fn decode_credential(credential: &str) -> Result<Vec<u8>, CredentialError> {
    let compact: String = credential.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(CredentialError::Malformed);
    }
    STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| CredentialError::Malformed)
}

/// Encrypts an initiator password with a certificate PEM, exactly as Daraja clients do:
/// `base64(RSA_PKCS1v15_encrypt(password, cert.public_key))`.
pub fn security_credential(cert_pem: &str, password: &str) -> Result<String, IdentityError> {
    let public = certificate_public_key(cert_pem)?;
    let mut rng = rand::thread_rng();
    let ct = public
        .encrypt(&mut rng, Pkcs1v15Encrypt, password.as_bytes())
        .map_err(|e| IdentityError::Key(e.to_string()))?;
    Ok(STANDARD.encode(ct))
}

/// Extracts the RSA public key of a PEM certificate.
pub fn certificate_public_key(cert_pem: &str) -> Result<RsaPublicKey, IdentityError> {
    let cert = Certificate::from_pem(cert_pem.trim().as_bytes())
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    let spki_der = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    RsaPublicKey::from_public_key_der(&spki_der)
        .map_err(|e| IdentityError::Certificate(e.to_string()))
}

fn self_signed_pem(key: &RsaPrivateKey) -> Result<String, IdentityError> {
    let cert_err = |e: &dyn fmt::Display| IdentityError::Certificate(e.to_string());
    let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(key.clone());
    let spki =
        SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).map_err(|e| cert_err(&e))?;
    let subject = Name::from_str(CERT_SUBJECT).map_err(|e| cert_err(&e))?;
    let serial = SerialNumber::from(rand::random::<u32>() as u64 | 1);
    let validity =
        Validity::from_now(Duration::from_secs(10 * 365 * 24 * 3600)).map_err(|e| cert_err(&e))?;
    let profile = Profile::Leaf {
        issuer: subject.clone(),
        enable_key_agreement: false,
        enable_key_encipherment: true,
    };
    let builder = CertificateBuilder::new(profile, serial, validity, subject, spki, &signer)
        .map_err(|e| cert_err(&e))?;
    let cert = builder
        .build::<rsa::pkcs1v15::Signature>()
        .map_err(|e| cert_err(&e))?;
    cert.to_pem(x509_cert::der::pem::LineEnding::LF)
        .map_err(|e| cert_err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_encrypt_decrypt_and_reload() {
        let id = Identity::generate().expect("generate");
        let cred = security_credential(id.certificate_pem(), "Safaricom999!*!").expect("encrypt");
        assert_eq!(cred.len(), 344);
        assert_eq!(
            id.decrypt_credential(&cred).expect("decrypt"),
            "Safaricom999!*!"
        );
        assert_eq!(id.decrypt_credential("%%"), Err(CredentialError::Malformed));
        assert_eq!(
            id.decrypt_credential("c29tZXRoaW5n"),
            Err(CredentialError::Decrypt)
        );
        let again = Identity::from_pem(id.private_key_pem(), id.certificate_pem()).expect("reload");
        assert_eq!(
            again.decrypt_credential(&cred).expect("decrypt"),
            "Safaricom999!*!"
        );
        let other = Identity::generate().expect("other");
        assert!(matches!(
            Identity::from_pem(other.private_key_pem(), id.certificate_pem()),
            Err(IdentityError::Mismatch)
        ));
    }
}
