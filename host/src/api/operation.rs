//! An operation is the one declaration behind a REST route, its OpenAPI
//! entry (and, later, its MCP tool): a spec (method, path, permission,
//! schemas, annotations) plus who may call it and what runs it — a host
//! handler or a plugin's `invoke`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::app::AppState;
use crate::audit::AuditEntry;
use crate::auth::Principal;
use crate::error::ApiError;
pub use crate::plugins::manifest::{Annotations, Method, OperationSpec};

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (register, login, ...).
    Public,
    /// Any valid credential, with or without a tenant.
    Authenticated,
    /// A credential bound to an active tenant the user belongs to.
    Tenant,
    /// A platform super-admin.
    SuperAdmin,
}

/// The request facts a handler may use. The tenant and store are in the
/// principal; `input` never overrides them.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    /// The request id.
    pub request_id: String,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// `rest` (MCP later).
    pub channel: String,
    /// The hostname the request was sent to (`Host`, lower-case, no port),
    /// for the custom-domain lookups of public pages and login only
    /// ([`crate::hostnames`]); never the tenant of a credential.
    pub host: Option<String>,
}

/// One call of a host operation.
pub struct HostCall {
    /// The checked caller (none for public operations).
    pub principal: Option<Principal>,
    /// Path parameters, query string and body fields merged.
    pub input: Value,
    /// Request facts.
    pub meta: RequestMeta,
    /// The audit row prepared for this call (mutating operations).
    pub audit: AuditEntry,
    /// Set by a handler that wrote its success audit row itself, inside
    /// its own transaction.
    pub audited: Arc<AtomicBool>,
}

impl HostCall {
    /// The principal of a non-public operation.
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal
            .as_ref()
            .ok_or_else(ApiError::unauthenticated)
    }

    /// Marks the success audit row as written by the handler.
    pub fn mark_audited(&self) {
        self.audited.store(true, Ordering::SeqCst);
    }

    /// A required string field of the input.
    pub fn str_field(&self, name: &str) -> Result<String, ApiError> {
        self.opt_str_field(name)?
            .ok_or_else(|| ApiError::Validation(format!("`{name}` is required")))
    }

    /// An optional string field of the input.
    pub fn opt_str_field(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.input.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::Validation(format!("`{name}` must be a string"))),
        }
    }
}

/// A boxed host handler future.
pub type HostFuture = Pin<Box<dyn Future<Output = Result<Value, ApiError>> + Send>>;

/// A host handler: same shape as a plugin operation, JSON in, JSON out.
pub type HostHandler = fn(Arc<AppState>, HostCall) -> HostFuture;

/// What runs an operation.
#[derive(Clone, Debug)]
pub enum Target {
    /// A handler in the host.
    Host(HostHandler),
    /// A plugin's `invoke`.
    Plugin(String),
}

/// One operation on every surface.
#[derive(Clone, Debug)]
pub struct Operation {
    /// The declaration.
    pub spec: OperationSpec,
    /// Who may call it.
    pub access: Access,
    /// What runs it.
    pub target: Target,
    /// OpenAPI tag.
    pub tag: String,
}

impl Operation {
    /// Whether a success changes state (and is audited).
    pub fn mutating(&self) -> bool {
        !self.spec.annotations.read_only
    }
}

/// Builds a host operation spec.
#[allow(clippy::too_many_arguments)]
pub fn host_op(
    name: &str,
    method: Method,
    path: &str,
    permission: Option<&str>,
    summary: &str,
    input_schema: Value,
    output_schema: Value,
    success_status: u16,
    annotations: Annotations,
) -> OperationSpec {
    OperationSpec {
        name: name.into(),
        method,
        path: Some(path.into()),
        permission: permission.map(str::to_string),
        summary: summary.into(),
        description: summary.into(),
        input_schema,
        output_schema,
        success_status,
        mcp_tool: None,
        annotations,
        money: None,
        feature: None,
    }
}

/// Annotations of a read.
pub const READ: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};
/// Annotations of a create.
pub const CREATE: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};
/// Annotations of an update.
pub const UPDATE: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: true,
    open_world: false,
};
/// Annotations of a delete.
pub const DELETE: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: true,
    open_world: false,
};

/// A host handler's answer that is not JSON (e.g. a CSV export). The
/// handler returns [`RawBody::into_value`]; the REST layer finds it with
/// [`RawBody::from_value`] and answers this body, content type and headers
/// with the operation's success status instead of JSON. Only host
/// handlers' answers are read this way: a plugin's output is always JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawBody {
    /// The `Content-Type`, e.g. `text/csv; charset=utf-8`.
    pub content_type: String,
    /// The body.
    pub body: String,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

/// Sets the content type and the extra headers of a [`RawBody`] or
/// [`FileBody`] answer (headers that are not valid HTTP are left out).
fn set_headers(
    headers: &mut axum::http::HeaderMap,
    content_type: &str,
    extra: Vec<(String, String)>,
) {
    use axum::http::{HeaderName, HeaderValue, header};
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    for (name, value) in extra {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// Response headers as the JSON object a [`RawBody`] or [`FileBody`] carries.
fn headers_to_json(headers: Vec<(String, String)>) -> serde_json::Map<String, Value> {
    headers
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect()
}

/// The headers a [`RawBody`] or [`FileBody`] carried (`headers` of `carrier`).
fn headers_from_json(carrier: &Value) -> Vec<(String, String)> {
    carrier
        .get("headers")
        .and_then(Value::as_object)
        .map(|headers| {
            headers
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The one key of the JSON object that carries a [`RawBody`].
const RAW_BODY_KEY: &str = "$malipo_raw_body";

impl RawBody {
    /// The JSON a host handler answers to have this body sent.
    pub fn into_value(self) -> Value {
        let headers = headers_to_json(self.headers);
        serde_json::json!({RAW_BODY_KEY: {
            "content_type": self.content_type,
            "body": self.body,
            "headers": headers,
        }})
    }

    /// The body a host handler's answer carries, if it is one.
    pub fn from_value(value: &Value) -> Option<Self> {
        let fields = value.as_object().filter(|o| o.len() == 1)?;
        let raw = fields.get(RAW_BODY_KEY)?;
        Some(Self {
            content_type: raw.get("content_type")?.as_str()?.to_string(),
            body: raw.get("body")?.as_str()?.to_string(),
            headers: headers_from_json(raw),
        })
    }

    /// The HTTP response (headers that are not valid HTTP are left out).
    pub fn into_response(self, status: axum::http::StatusCode) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut response = (status, self.body).into_response();
        set_headers(response.headers_mut(), &self.content_type, self.headers);
        response
    }
}

/// A host handler's answer that is a file on disk (e.g. a tenant export),
/// streamed by the REST layer without loading it into memory. Like
/// [`RawBody`] it travels as one JSON key that only host handlers' answers
/// are searched for. With `delete` set, the file is unlinked once opened:
/// its space is freed when the stream ends, however it ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileBody {
    /// The file.
    pub path: std::path::PathBuf,
    /// The `Content-Type`, e.g. `application/vnd.sqlite3`.
    pub content_type: String,
    /// Extra response headers (e.g. `content-disposition`).
    pub headers: Vec<(String, String)>,
    /// Remove the file once it is opened for sending.
    pub delete: bool,
}

/// The one key of the JSON object that carries a [`FileBody`].
const FILE_BODY_KEY: &str = "$malipo_file_body";

impl FileBody {
    /// The JSON a host handler answers to have this file sent.
    pub fn into_value(self) -> Value {
        let headers = headers_to_json(self.headers);
        serde_json::json!({FILE_BODY_KEY: {
            "path": self.path.to_string_lossy(),
            "content_type": self.content_type,
            "headers": headers,
            "delete": self.delete,
        }})
    }

    /// The file a host handler's answer names, if it is one.
    pub fn from_value(value: &Value) -> Option<Self> {
        let fields = value.as_object().filter(|o| o.len() == 1)?;
        let file = fields.get(FILE_BODY_KEY)?;
        Some(Self {
            path: std::path::PathBuf::from(file.get("path")?.as_str()?),
            content_type: file.get("content_type")?.as_str()?.to_string(),
            headers: headers_from_json(file),
            delete: file.get("delete").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The streamed HTTP response (headers that are not valid HTTP are left
    /// out); a file that cannot be opened is a 500.
    pub async fn into_response(self, status: axum::http::StatusCode) -> axum::response::Response {
        use axum::http::{HeaderValue, header};
        use axum::response::IntoResponse;
        let file = match tokio::fs::File::open(&self.path).await {
            Ok(file) => file,
            Err(error) => {
                return ApiError::Unexpected(anyhow::anyhow!(
                    "open {}: {error}",
                    self.path.display()
                ))
                .into_response();
            }
        };
        let length = file.metadata().await.ok().map(|m| m.len());
        if self.delete
            && let Err(error) = tokio::fs::remove_file(&self.path).await
        {
            tracing::warn!(%error, path = %self.path.display(), "could not remove a streamed file");
        }
        let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            file,
            64 * 1024,
        ));
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        if let Some(length) = length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        set_headers(headers, &self.content_type, self.headers);
        response
    }
}
