//! Plugin errors with the codes the host maps to HTTP statuses.

use std::fmt;

/// Result of an operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error returned to the host: `code` is one of the codes below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: &'static str,
    pub message: String,
}

impl Error {
    pub const BAD_REQUEST: &'static str = "bad_request";
    pub const VALIDATION_FAILED: &'static str = "validation_failed";
    pub const NOT_FOUND: &'static str = "not_found";
    pub const CONFLICT: &'static str = "conflict";
    pub const FORBIDDEN: &'static str = "forbidden";
    pub const INTERNAL: &'static str = "internal";

    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The request cannot be understood (malformed JSON, unknown operation). HTTP 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Self::BAD_REQUEST, message)
    }

    /// The request is understood but its values are invalid. HTTP 422.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(Self::VALIDATION_FAILED, message)
    }

    /// HTTP 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Self::NOT_FOUND, message)
    }

    /// HTTP 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Self::CONFLICT, message)
    }

    /// HTTP 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Self::FORBIDDEN, message)
    }

    /// HTTP 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Self::INTERNAL, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Self::internal(format!("could not encode the response as JSON: {err}"))
    }
}
