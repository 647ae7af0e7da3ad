//! An operation is the one declaration behind a REST route, its OpenAPI
//! entry (and, later, its MCP tool): a spec (method, path, permission,
//! schemas, annotations) plus who may call it and what runs it — a host
//! handler or a plugin's `invoke`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::audit::AuditEntry;
use crate::auth::Principal;
use crate::core::Core;
use malipo_foundations::error::ApiError;
pub use malipo_runtime::plugins::manifest::{Annotations, Method, OperationSpec};

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
    /// ([`malipo_storage::hostnames`]); never the tenant of a credential.
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

/// What a host handler answers: JSON (the usual), or a body that is not
/// JSON — text such as a CSV export, or a file streamed from disk. The
/// channels decide how to send each (REST: the body with its content type;
/// MCP: JSON only).
#[derive(Debug)]
pub enum Answer {
    /// A JSON document.
    Json(Value),
    /// A text body with its content type and extra headers.
    Raw(RawBody),
    /// A file on disk.
    File(FileBody),
}

impl From<Value> for Answer {
    fn from(value: Value) -> Self {
        Self::Json(value)
    }
}

impl From<RawBody> for Answer {
    fn from(body: RawBody) -> Self {
        Self::Raw(body)
    }
}

impl From<FileBody> for Answer {
    fn from(file: FileBody) -> Self {
        Self::File(file)
    }
}

impl Answer {
    /// The answer as JSON, for channels that only speak JSON (MCP, the
    /// approvals that replay a call): a text body becomes
    /// `{"content_type", "body"}`, a file `{"content_type", "path"}`.
    pub fn into_json(self) -> Value {
        match self {
            Self::Json(value) => value,
            Self::Raw(raw) => {
                serde_json::json!({"content_type": raw.content_type, "body": raw.body})
            }
            Self::File(file) => serde_json::json!({
                "content_type": file.content_type,
                "path": file.path.to_string_lossy(),
            }),
        }
    }

    /// The JSON document, if the answer is one.
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Self::Json(value) => Some(value),
            _ => None,
        }
    }
}

/// A boxed host handler future.
pub type HostFuture = Pin<Box<dyn Future<Output = Result<Answer, ApiError>> + Send>>;

/// A host handler: any `async fn(Arc<Core>, HostCall) -> Result<A, ApiError>`
/// whose `A` is an [`Answer`] (a `serde_json::Value` is one), boxed once
/// by [`handler`].
pub type HostHandler = Arc<dyn Fn(Arc<Core>, HostCall) -> HostFuture + Send + Sync>;

/// The one adapter from a handler `async fn` to a [`HostHandler`].
pub fn handler<F, Fut, A>(f: F) -> HostHandler
where
    F: Fn(Arc<Core>, HostCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<A, ApiError>> + Send + 'static,
    A: Into<Answer>,
{
    Arc::new(move |core, call| {
        let answer = f(core, call);
        Box::pin(async move { answer.await.map(Into::into) })
    })
}

/// What runs an operation.
#[derive(Clone)]
pub enum Target {
    /// A handler in the host.
    Host(HostHandler),
    /// A plugin's `invoke`.
    Plugin(String),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Host(_) => f.write_str("Host"),
            Self::Plugin(name) => f.debug_tuple("Plugin").field(name).finish(),
        }
    }
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

    /// Its name as an MCP tool: the declared one, else its name with `.`
    /// and `-` turned into `_`.
    pub fn tool_name(&self) -> String {
        self.spec
            .mcp_tool
            .clone()
            .unwrap_or_else(|| self.spec.name.replace(['.', '-'], "_"))
    }

    /// Whether it is offered as an MCP tool: every public plugin operation.
    pub fn is_tool(&self) -> bool {
        matches!(self.target, Target::Plugin(_)) && self.spec.path.is_some()
    }
}

/// A host operation being declared, next to its handler:
///
/// ```ignore
/// Op::get("/stores", "stores.list")
///     .permission("stores.read")
///     .summary("List stores.")
///     .read_only()
///     .handle(list)
/// ```
///
/// Defaults: tenant access, JSON object in and out, status 200 (201 for
/// [`Op::create`]), tag = the name's first word.
#[must_use]
pub struct Op {
    spec: OperationSpec,
    access: Access,
    tag: String,
}

impl Op {
    fn new(method: Method, path: &str, name: &str) -> Self {
        Self {
            spec: OperationSpec {
                name: name.into(),
                method,
                path: Some(path.into()),
                permission: None,
                summary: String::new(),
                description: String::new(),
                input_schema: serde_json::json!({"type": "object"}),
                output_schema: serde_json::json!({"type": "object"}),
                success_status: 200,
                mcp_tool: None,
                annotations: READ,
                money: None,
                feature: None,
            },
            access: Access::Tenant,
            tag: name.split('.').next().unwrap_or(name).to_string(),
        }
    }

    /// `GET path` (a read).
    pub fn get(path: &str, name: &str) -> Self {
        Self::new(Method::Get, path, name)
    }

    /// `POST path` (a create unless told otherwise).
    pub fn post(path: &str, name: &str) -> Self {
        Self::new(Method::Post, path, name).create()
    }

    /// `PUT path` (an update).
    pub fn put(path: &str, name: &str) -> Self {
        Self::new(Method::Put, path, name).update()
    }

    /// `PATCH path` (an update).
    pub fn patch(path: &str, name: &str) -> Self {
        Self::new(Method::Patch, path, name).update()
    }

    /// `DELETE path` (a delete).
    pub fn delete(path: &str, name: &str) -> Self {
        Self::new(Method::Delete, path, name).destroy()
    }

    /// The permission a caller needs.
    pub fn permission(mut self, permission: &str) -> Self {
        self.spec.permission = Some(permission.into());
        self
    }

    /// One sentence for people (summary and description).
    pub fn summary(mut self, summary: &str) -> Self {
        self.spec.summary = summary.into();
        self.spec.description = summary.into();
        self
    }

    /// The input's JSON schema.
    pub fn input(mut self, schema: Value) -> Self {
        self.spec.input_schema = schema;
        self
    }

    /// The success answer's JSON schema.
    pub fn output(mut self, schema: Value) -> Self {
        self.spec.output_schema = schema;
        self
    }

    /// The success status.
    pub fn status(mut self, status: u16) -> Self {
        self.spec.success_status = status;
        self
    }

    /// Changes nothing.
    pub fn read_only(mut self) -> Self {
        self.spec.annotations = READ;
        self
    }

    /// Creates something (not idempotent).
    pub fn create(mut self) -> Self {
        self.spec.annotations = CREATE;
        self
    }

    /// Changes something in place (idempotent).
    pub fn update(mut self) -> Self {
        self.spec.annotations = UPDATE;
        self
    }

    /// Removes something.
    pub fn destroy(mut self) -> Self {
        self.spec.annotations = DELETE;
        self
    }

    /// Who may call it (default: a member of the tenant).
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// The OpenAPI tag.
    pub fn tag(mut self, tag: &str) -> Self {
        self.tag = tag.into();
        self
    }

    /// The plan feature it needs.
    pub fn feature(mut self, feature: &str) -> Self {
        self.spec.feature = Some(feature.into());
        self
    }

    /// Its MCP tool name, when not derived from its name.
    pub fn mcp_tool(mut self, tool: &str) -> Self {
        self.spec.mcp_tool = Some(tool.into());
        self
    }

    /// The operation, run by `f` (an `async fn(Arc<Core>, HostCall)`).
    pub fn handle<F, Fut, A>(self, f: F) -> Operation
    where
        F: Fn(Arc<Core>, HostCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<A, ApiError>> + Send + 'static,
        A: Into<Answer>,
    {
        Operation {
            spec: self.spec,
            access: self.access,
            target: Target::Host(handler(f)),
            tag: self.tag,
        }
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

/// A host handler's answer that is not JSON (e.g. a CSV export): the body,
/// its content type and extra headers, sent with the operation's success
/// status ([`Answer::Raw`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawBody {
    /// The `Content-Type`, e.g. `text/csv; charset=utf-8`.
    pub content_type: String,
    /// The body.
    pub body: String,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

/// A host handler's answer that is a file on disk (e.g. a tenant export),
/// streamed without loading it into memory ([`Answer::File`]). With
/// `delete` set, the file is unlinked once opened: its space is freed when
/// the stream ends, however it ends.
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
