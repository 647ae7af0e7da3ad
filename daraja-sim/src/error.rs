//! Library errors (thiserror) and the Daraja synchronous error envelope
//! `{requestId, errorCode, errorMessage}` whose HTTP status is the code's prefix.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ids;

/// Errors starting or configuring the emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Key or certificate problem.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Could not bind the listen address.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: std::net::SocketAddr,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// Could not build the callback HTTP client.
    #[error("cannot build the callback HTTP client: {0}")]
    HttpClient(String),
    /// Other I/O problem.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Key/certificate errors.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// RSA key generation, parsing or encryption failed.
    #[error("RSA key error: {0}")]
    Key(String),
    /// Certificate building or parsing failed.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// The certificate's public key is not the private key's.
    #[error("certificate does not match the private key")]
    Mismatch,
}

/// Errors of the control API ([`crate::Handle`] and `/simulator/*`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The request is incomplete or contradictory.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The referenced transaction already completed; its outcome can no longer change.
    #[error("transaction {0} already completed")]
    AlreadyCompleted(String),
}

/// A Daraja synchronous error: `{"requestId":…,"errorCode":"400.002.02","errorMessage":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    /// Gateway request id (or the CheckoutRequestID for "being processed").
    pub request_id: String,
    /// Dotted error code; its first segment is the HTTP status.
    pub error_code: String,
    /// Human readable message.
    pub error_message: String,
}

impl ApiError {
    /// Error with a generated request id.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ApiError {
            request_id: ids::request_id(),
            error_code: code.to_owned(),
            error_message: message.into(),
        }
    }

    /// Error with a chosen request id.
    pub fn with_request_id(request_id: &str, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            request_id: request_id.to_owned(),
            error_code: code.to_owned(),
            error_message: message.into(),
        }
    }

    /// `400.002.02 Bad Request - Invalid <field>`.
    pub fn invalid(field: &str) -> Self {
        ApiError::new("400.002.02", format!("Bad Request - Invalid {field}"))
    }

    /// `400.002.05 Invalid Request Payload`.
    pub fn payload() -> Self {
        ApiError::new("400.002.05", "Invalid Request Payload")
    }

    /// `500.001.1001` with the given message.
    pub fn server(message: &str) -> Self {
        ApiError::new("500.001.1001", message)
    }

    /// HTTP status from the code prefix (`404.001.03` → 404); 500 if unparsable.
    pub fn status(&self) -> StatusCode {
        self.error_code
            .split('.')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .and_then(|n| StatusCode::from_u16(n).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(&self)).into_response()
    }
}
