//! The one error type of the HTTP surface and its JSON shape:
//! `{"error":{"code","message","request_id"}}`. The body carries a safe
//! message; the full cause of an unexpected error goes to the log only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

tokio::task_local! {
    /// The request id of the request being served on this task; set by the
    /// request-id middleware so that every error body can carry it.
    pub static REQUEST_ID: String;
}

/// The current request's id, or an empty string outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credential (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid credential that may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The tenant is suspended (403).
    #[error("{0}")]
    TenantSuspended(String),
    /// The tenant's deletion is scheduled: it is suspended until it is
    /// purged, unless a super-admin cancels the deletion (403).
    #[error("{0}")]
    TenantPendingDeletion(String),
    /// Missing, or belonging to someone else: the answer is the same (404).
    #[error("{0}")]
    NotFound(String),
    /// The method is not served on this path (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The request body is larger than allowed (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A guardrail of the credential refused the call (403): a tool not on
    /// an API key's allow-list, or an amount over its caps.
    #[error("{0}")]
    LimitExceeded(String),
    /// Well-formed but invalid input (422).
    #[error("{0}")]
    Validation(String),
    /// Too many requests (429), with the seconds to wait (`Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        /// What was limited.
        message: String,
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// A plugin failed its call: trap, broken limit, capability violation.
    #[error("{message}")]
    Plugin {
        /// The HTTP status to answer with.
        status: StatusCode,
        /// A stable machine-readable code, e.g. `plugin_timeout`.
        code: &'static str,
        /// A message a person can act on.
        message: String,
    },
    /// The tenant's plan or subscription does not allow this: `402` for
    /// what paying lifts (a suspended subscription, a limit, a monthly
    /// quota), `403` for a feature the plan lacks. The message names the
    /// plan and the limit.
    #[error("{message}")]
    Plan {
        /// 402 or 403.
        status: StatusCode,
        /// `subscription_suspended`, `plan_limit_reached`, `quota_exceeded`
        /// or `plan_feature_required`.
        code: &'static str,
        /// What was refused and how to lift it.
        message: String,
    },
    /// A refusal with a code of its own, e.g. `domain_taken` (409) or
    /// `unknown_host` (404).
    #[error("{message}")]
    Coded {
        /// The HTTP status to answer with.
        status: StatusCode,
        /// A stable machine-readable code.
        code: &'static str,
        /// What was refused.
        message: String,
    },
    /// The server is not able to serve this now (503).
    #[error("{0}")]
    Unavailable(String),
    /// The organization's database stayed locked by other work past the
    /// busy timeout (503, `database_busy`, `Retry-After: 1`): contention,
    /// worth retrying, never a refusal.
    #[error("{0}")]
    Busy(String),
    /// Anything else: logged in full, answered as a bare 500.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_)
            | Self::TenantSuspended(_)
            | Self::TenantPendingDeletion(_)
            | Self::LimitExceeded(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Plugin { status, .. }
            | Self::Plan { status, .. }
            | Self::Coded { status, .. } => *status,
            Self::Unavailable(_) | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::TenantSuspended(_) => "tenant_suspended",
            Self::TenantPendingDeletion(_) => "tenant_pending_deletion",
            Self::LimitExceeded(_) => "limit_exceeded",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Validation(_) => "validation_failed",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::Plugin { code, .. } | Self::Plan { code, .. } | Self::Coded { code, .. } => code,
            Self::Unavailable(_) => "unavailable",
            Self::Busy(_) => "database_busy",
            Self::Unexpected(_) => "internal",
        }
    }

    /// The message safe to show to the client.
    pub fn public_message(&self) -> String {
        match self {
            Self::Unexpected(_) => "internal error; quote the request id to the operator".into(),
            other => other.to_string(),
        }
    }

    /// A 404 for a thing of this kind.
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    /// The answer to an invalid credential (a token or API key this server
    /// does not accept, a signed-out session, a deactivated account).
    pub fn unauthenticated() -> Self {
        Self::Unauthorized(
            "invalid credentials: the access token or API key is not accepted".into(),
        )
    }

    /// The answer to a request that presented no credential at all.
    pub fn missing_credentials() -> Self {
        Self::Unauthorized(
            "missing credentials: send `Authorization: Bearer <access token or API key>`".into(),
        )
    }

    /// The answer when the organization's database stayed locked.
    pub fn busy() -> Self {
        Self::Busy(
            "the organization's database is busy with other work; try again in a moment".into(),
        )
    }

    /// The answer to an access token past its expiry: `401 unauthorized`
    /// (the code every credential failure keeps) with a message that says it
    /// expired and names `POST /api/v1/auth/refresh`.
    pub fn token_expired() -> Self {
        Self::Unauthorized(
            "the access token has expired; get a new one with POST /api/v1/auth/refresh and your refresh token".into(),
        )
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(error: rusqlite::Error) -> Self {
        if is_sqlite_busy(&error) {
            Self::busy()
        } else {
            Self::Unexpected(error.into())
        }
    }
}

/// Whether SQLite refused because another connection holds the database
/// (`SQLITE_BUSY`, `SQLITE_LOCKED`, by their result codes): contention that
/// passes, not a fault in the statement.
pub fn is_sqlite_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl From<r2d2::Error> for ApiError {
    fn from(error: r2d2::Error) -> Self {
        Self::Unexpected(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        let body = json!({
            "error": {
                "code": self.code(),
                "message": self.public_message(),
                "request_id": current_request_id(),
            }
        });
        let mut response = (status, axum::Json(body)).into_response();
        let retry_after = match &self {
            Self::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Busy(_) => Some(1),
            _ => None,
        };
        if let Some(retry_after_secs) = retry_after
            && let Ok(value) = axum::http::HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

/// Runs blocking work (SQLite, password hashing, plugin calls) off the async
/// threads, carrying the request id and the tracing span across.
pub async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    let request_id = current_request_id();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        REQUEST_ID.sync_scope(request_id, work)
    })
    .await
    .map_err(|join| ApiError::Unexpected(anyhow::anyhow!("blocking task failed: {join}")))?
}

#[cfg(test)]
mod tests {
    use super::{ApiError, is_sqlite_busy};

    #[test]
    fn a_locked_database_is_busy_and_a_bad_statement_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let holder = rusqlite::Connection::open(&path).expect("open");
        holder
            .execute_batch("CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
            .expect("lock");
        let other = rusqlite::Connection::open(&path).expect("open");
        other
            .busy_timeout(std::time::Duration::ZERO)
            .expect("timeout");
        let locked = other
            .execute("INSERT INTO t VALUES (2)", [])
            .expect_err("the file is locked");
        assert!(is_sqlite_busy(&locked), "{locked}");
        let error = ApiError::from(locked);
        assert_eq!(
            (error.status().as_u16(), error.code()),
            (503, "database_busy")
        );

        let wrong = holder
            .execute("INSERT INTO missing VALUES (1)", [])
            .expect_err("no such table");
        assert!(!is_sqlite_busy(&wrong), "{wrong}");
        assert_eq!(ApiError::from(wrong).code(), "internal");
    }
}
