//! The host capabilities an operation uses, behind one trait so the logic never names generated bindings.

use malipo_plugin_sdk::{Context, Db, Error, Result};
use serde_json::Value;

/// One outbound HTTP request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub timeout_ms: u32,
}

/// The answer to an outbound HTTP request.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// Everything the host lends one call: the tenant database, the declared
/// secrets, host settings, outbound HTTP, the SecurityCredential helper,
/// the outbox, the log and progress reports. All of it is scoped to the
/// calling tenant.
pub trait Env {
    /// The tenant database inside the call's transaction.
    fn db(&self) -> &dyn Db;
    /// The caller.
    fn ctx(&self) -> &Context;
    /// A declared secret, if set.
    fn secret(&self, name: &str) -> Option<String>;
    /// Stores a declared secret (an empty value deletes it).
    fn put_secret(&self, name: &str, value: &str) -> Result<()>;
    /// A host setting (`callback-base`, `daraja-emulator-url`, `public-url`).
    fn config(&self, name: &str) -> Option<String>;
    /// Sends one HTTP request; `Err` when no answer came (refused, timed out, unreachable).
    fn http(&self, request: HttpRequest) -> std::result::Result<HttpResponse, String>;
    /// Whether the host's outbound policy would let a request to `url`
    /// through (nothing is sent); `Err` says why not, naming
    /// `MALIPO_OUTBOUND_ALLOW`. Test environments allow everything.
    fn check_url(&self, url: &str) -> std::result::Result<(), String> {
        let _ = url;
        Ok(())
    }
    /// Encrypts the initiator password into a Daraja SecurityCredential.
    fn security_credential(
        &self,
        environment: &str,
        base_url: Option<&str>,
        initiator_password: &str,
    ) -> std::result::Result<String, String>;
    /// Writes an event to the tenant's outbox (delivered if the call succeeds).
    fn emit(&self, name: &str, payload: &Value);
    /// Writes a warning to the host log.
    fn warn(&self, message: &str);
    /// Reports how far a long call has come (a no-op when nobody listens).
    fn progress(&self, done: u64, total: Option<u64>, message: &str);
}

/// Error codes beyond the SDK's, mapped by the host: `upstream_error`
/// (502, Daraja failed or refused), `unavailable` (503, Daraja or a host
/// setting could not be reached), `retry` (internal: redeliver the callback later).
pub mod codes {
    pub const UPSTREAM: &str = "upstream_error";
    pub const UNAVAILABLE: &str = "unavailable";
    pub const RETRY: &str = "retry";
}

/// Daraja answered with an error or an answer we cannot use. HTTP 502.
pub fn upstream(message: impl Into<String>) -> Error {
    Error::new(codes::UPSTREAM, message)
}

/// Daraja (or a host setting) could not be reached. HTTP 503.
pub fn unavailable(message: impl Into<String>) -> Error {
    Error::new(codes::UNAVAILABLE, message)
}

/// The callback matches nothing stored yet; the host redelivers it later.
pub fn retry(message: impl Into<String>) -> Error {
    Error::new(codes::RETRY, message)
}
