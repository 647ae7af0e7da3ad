//! Proof of control of a custom domain, before it routes logins and
//! public tenant lookups: the HTTP challenge. The tenant publishes the
//! token it was given at `http://<hostname>/.well-known/malipo-domain-verification`
//! and asks `POST /tenant/domain/verify`; the host fetches that URL (no
//! redirects, a short timeout, a small body) and compares.
//!
//! The fetch goes through the process's one outbound client
//! ([`crate::outbound::Outbound`]): no redirects, no user-info, and the
//! domain's addresses must be public — a tenant cannot make the host fetch
//! from loopback or a private network by claiming a name that resolves
//! there. Only the operator can point it elsewhere: the `host:port` in
//! `MALIPO_DOMAIN_CHALLENGE_ADDR` (tests, or domains served through one
//! front proxy) is used for every domain, the request still naming the
//! domain in its `Host`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::outbound::{Outbound, Reach};

/// The path the challenge is fetched from.
pub const CHALLENGE_PATH: &str = "/.well-known/malipo-domain-verification";

/// The environment variable naming the `host:port` every challenge fetch
/// connects to instead of the domain's own address.
pub const CHALLENGE_ADDR_ENV: &str = "MALIPO_DOMAIN_CHALLENGE_ADDR";

/// The most of an answer read.
const MAX_BODY: usize = 1024;

/// Why a challenge failed; the text never echoes what the fetch found.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The challenge URL could not be reached, or did not answer 200.
    #[error("{0} did not answer with 200 OK")]
    Unreachable(String),
    /// It answered something other than the token.
    #[error("{0} did not answer the verification token")]
    WrongToken(String),
    /// `MALIPO_DOMAIN_CHALLENGE_ADDR` is not a `host:port`.
    #[error("MALIPO_DOMAIN_CHALLENGE_ADDR must be an address such as 127.0.0.1:8080")]
    BadOverride,
}

/// The challenge URL of a hostname.
pub fn challenge_url(hostname: &str) -> String {
    format!("http://{hostname}{CHALLENGE_PATH}")
}

/// Where every fetch connects, if the operator said so.
fn override_addr() -> Result<Option<SocketAddr>, ProofError> {
    match std::env::var(CHALLENGE_ADDR_ENV) {
        Ok(text) if !text.trim().is_empty() => {
            use std::net::ToSocketAddrs;
            text.trim()
                .to_socket_addrs()
                .ok()
                .and_then(|mut addrs| addrs.next())
                .map(Some)
                .ok_or(ProofError::BadOverride)
        }
        _ => Ok(None),
    }
}

/// Fetches the challenge of `hostname` (blocking: call it off the async
/// runtime) and answers its (trimmed) body, at most 1 KiB of it.
pub fn fetch_token(outbound: &Outbound, hostname: &str) -> Result<String, ProofError> {
    use std::io::Read;
    let url = challenge_url(hostname);
    let unreachable = || ProofError::Unreachable(url.clone());
    let request = match override_addr()? {
        Some(addr) => outbound
            .pinned("GET", &url, addr)
            .map_err(|_| unreachable())?,
        None => {
            outbound
                .request("GET", &url, Reach::Public)
                .map_err(|_| unreachable())?
                .1
        }
    };
    let response = request
        .timeout(Duration::from_secs(5))
        .call()
        .map_err(|_| unreachable())?;
    if response.status() != 200 {
        return Err(unreachable());
    }
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_BODY as u64)
        .read_to_end(&mut body)
        .map_err(|_| unreachable())?;
    Ok(String::from_utf8_lossy(&body).trim().to_string())
}

/// Proves control of `hostname` (blocking): its challenge answers `token`.
pub fn prove(outbound: &Outbound, hostname: &str, token: &str) -> Result<(), ProofError> {
    let answered = fetch_token(outbound, hostname)?;
    // Constant-time is not needed: the token is not a secret from the
    // tenant, only unguessable by others.
    if answered == token {
        Ok(())
    } else {
        Err(ProofError::WrongToken(challenge_url(hostname)))
    }
}
