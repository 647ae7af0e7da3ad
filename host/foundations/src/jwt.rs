//! Access tokens: short-lived HS256 JWTs. The algorithm is pinned, and
//! `iss`, `aud`, `exp` and `sub` are required. A token carries the user, the
//! tenant and the session — never roles: those are looked up per request.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::time_util::unix_now;

/// Issuer of every token.
pub const ISSUER: &str = "malipo";
/// Audience of access tokens for the API.
pub const AUDIENCE: &str = "malipo-api";

/// What an access token says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Tenant id, if the session is bound to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// Session id (refresh-token family).
    pub sid: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
}

/// Signs and checks access tokens.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

impl JwtKeys {
    /// Keys from `MALIPO_JWT_SECRET`, or from `<data-dir>/jwt.key`, created
    /// with 0600 permissions on first run.
    pub fn load(data_dir: &Path, ttl_secs: i64) -> anyhow::Result<Self> {
        let secret = match crate::config::var("MALIPO_JWT_SECRET") {
            Ok(secret) if secret.len() >= 32 => secret.into_bytes(),
            Ok(_) => anyhow::bail!("MALIPO_JWT_SECRET must be at least 32 characters"),
            Err(_) => read_or_create_key(&data_dir.join("jwt.key"))?,
        };
        Ok(Self::from_secret(&secret, ttl_secs))
    }

    /// Keys from raw secret bytes.
    pub fn from_secret(secret: &[u8], ttl_secs: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // No leeway: a token is refused from the second its `exp` passes
        // (the issuer and the verifier are the same clock).
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    /// Seconds an access token lives.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// Signs an access token.
    pub fn issue(&self, user: &str, tenant: Option<&str>, session: &str) -> anyhow::Result<String> {
        let now = unix_now();
        let claims = Claims {
            sub: user.to_string(),
            tid: tenant.map(str::to_string),
            sid: session.to_string(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + self.ttl_secs,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Checks a token: [`TokenRejection::Expired`] for a token we signed
    /// whose `exp` has passed (no leeway), [`TokenRejection::Invalid`] for
    /// anything not signed by us, for another audience, or with another
    /// algorithm. The signature is checked before the expiry, so only our
    /// own tokens are ever called expired.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenRejection> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenRejection::Expired,
                _ => TokenRejection::Invalid,
            })
    }
}

/// Why an access token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRejection {
    /// Ours, but past its `exp`: get a new one with `POST /auth/refresh`.
    Expired,
    /// Not a token this server signed for this API.
    Invalid,
}

fn read_or_create_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let key = hex::decode(text.trim())?;
        anyhow::ensure!(
            key.len() >= 32,
            "{} holds a key that is too short",
            path.display()
        );
        return Ok(key);
    }
    let mut key = vec![0u8; 64];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    write_private(path, hex::encode(&key).as_bytes())?;
    Ok(key)
}

/// Writes a file readable by its owner only.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    Ok(())
}
