//! The host's view of a plugin manifest: the WIT record, checked once at
//! load and turned into plain types the router, OpenAPI and catalog use.

use serde::Serialize;
use serde_json::Value;

use super::bindings;

/// Host tables a plugin may declare for reading.
pub const READABLE_HOST_TABLES: &[&str] = &["stores", "store_members", "members"];

/// HTTP method of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// Lower-case name, as OpenAPI spells it.
    pub fn lower(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Put => "put",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }
}

/// Hints for AI clients.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Annotations {
    /// Changes nothing.
    pub read_only: bool,
    /// May destroy or undo something.
    pub destructive: bool,
    /// Repeating it has no further effect.
    pub idempotent: bool,
    /// Reaches the world outside Malipo.
    pub open_world: bool,
}

/// One operation a plugin offers.
#[derive(Clone, Debug, Serialize)]
pub struct OperationSpec {
    /// Stable name, passed back to `invoke`.
    pub name: String,
    /// HTTP method.
    pub method: Method,
    /// Path under `/api/v1`; none for internal operations.
    pub path: Option<String>,
    /// Permission needed; none means any member.
    pub permission: Option<String>,
    /// One line.
    pub summary: String,
    /// For people and models.
    pub description: String,
    /// JSON Schema of the merged input.
    pub input_schema: Value,
    /// JSON Schema of the output.
    pub output_schema: Value,
    /// Status of a success.
    pub success_status: u16,
    /// MCP tool name.
    pub mcp_tool: Option<String>,
    /// Hints.
    pub annotations: Annotations,
    /// Money the operation moves, if any.
    pub money: Option<MoneyMovement>,
}

/// Which way money moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoneyDirection {
    /// Into the tenant's account.
    Incoming,
    /// Out of it.
    Outgoing,
}

/// Money an operation moves.
#[derive(Clone, Debug, Serialize)]
pub struct MoneyMovement {
    /// Which way.
    pub direction: MoneyDirection,
    /// JSON pointers to the amounts in the input.
    pub amount_fields: Vec<String>,
}

/// A permission a plugin defines.
#[derive(Clone, Debug, Serialize)]
pub struct PermissionSpec {
    /// `resource.action`.
    pub name: String,
    /// What it allows.
    pub description: String,
    /// Default roles that hold it.
    pub default_roles: Vec<String>,
}

/// A checked manifest.
#[derive(Clone, Debug, Serialize)]
pub struct PluginManifest {
    /// Plugin name: its table prefix and route owner.
    pub name: String,
    /// Version string.
    pub version: String,
    /// What it does.
    pub description: String,
    /// What it offers.
    pub operations: Vec<OperationSpec>,
    /// Permissions it defines.
    pub permissions: Vec<PermissionSpec>,
    /// Events it wants.
    pub subscriptions: Vec<String>,
    /// Host tables it reads.
    pub read_tables: Vec<String>,
    /// Secrets it reads and writes.
    pub secrets: Vec<String>,
    /// Hosts it may reach (`*`: any the operator allows).
    pub outbound_hosts: Vec<String>,
    /// Internal operations run periodically for every tenant.
    pub jobs: Vec<String>,
    /// Whether it takes callbacks.
    pub callbacks: bool,
    /// `(version, name, sql)`.
    #[serde(skip)]
    pub migrations: Vec<(u32, String, String)>,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
#[error("manifest of plugin `{plugin}`: {reason}")]
pub struct ManifestError {
    plugin: String,
    reason: String,
}

fn valid_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `resource.action`, lower-case with `_` and `-` allowed.
pub fn valid_permission_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 2
        && name.len() <= 64
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        })
}

fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 200
        && path[1..].split('/').all(|segment| {
            let inner = segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .unwrap_or(segment);
            !inner.is_empty()
                && inner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

impl PluginManifest {
    /// Checks a manifest as the plugin exported it.
    pub fn from_wit(raw: bindings::Manifest) -> Result<Self, ManifestError> {
        let plugin = raw.name.clone();
        let fail = |reason: String| ManifestError {
            plugin: plugin.clone(),
            reason,
        };
        if !valid_plugin_name(&raw.name) {
            return Err(fail(
                "name must be lower-case letters, digits and `_`, starting with a letter".into(),
            ));
        }
        for secret in &raw.secrets {
            if secret.starts_with("__") || secret.is_empty() || secret.len() > 64 {
                return Err(fail(format!("secret name `{secret}` is not allowed")));
            }
        }
        for table in &raw.read_tables {
            if !READABLE_HOST_TABLES.contains(&table.as_str()) {
                return Err(fail(format!(
                    "read table `{table}` is not a readable host table"
                )));
            }
        }
        let mut operations = Vec::new();
        for op in raw.operations {
            let parse_schema = |text: &str, which: &str| {
                serde_json::from_str::<Value>(text).map_err(|e| {
                    fail(format!(
                        "operation `{}`: {which} schema is not JSON: {e}",
                        op.name
                    ))
                })
            };
            if let Some(path) = &op.path
                && !valid_path(path)
            {
                return Err(fail(format!("operation `{}`: bad path `{path}`", op.name)));
            }
            if let Some(permission) = &op.permission
                && !valid_permission_name(permission)
            {
                return Err(fail(format!(
                    "operation `{}`: bad permission `{permission}`",
                    op.name
                )));
            }
            if !(200..300).contains(&op.success_status) {
                return Err(fail(format!(
                    "operation `{}`: success status must be 2xx",
                    op.name
                )));
            }
            operations.push(OperationSpec {
                method: match op.method {
                    bindings::HttpMethod::Get => Method::Get,
                    bindings::HttpMethod::Post => Method::Post,
                    bindings::HttpMethod::Put => Method::Put,
                    bindings::HttpMethod::Patch => Method::Patch,
                    bindings::HttpMethod::Delete => Method::Delete,
                },
                input_schema: parse_schema(&op.input_schema, "input")?,
                output_schema: parse_schema(&op.output_schema, "output")?,
                name: op.name,
                path: op.path,
                permission: op.permission,
                summary: op.summary,
                description: op.description,
                success_status: op.success_status,
                mcp_tool: op.mcp_tool,
                money: None,
                annotations: Annotations {
                    read_only: op.annotations.read_only,
                    destructive: op.annotations.destructive,
                    idempotent: op.annotations.idempotent,
                    open_world: op.annotations.open_world,
                },
            });
        }
        let mut permissions = Vec::new();
        for permission in raw.permissions {
            if !valid_permission_name(&permission.name) {
                return Err(fail(format!("bad permission name `{}`", permission.name)));
            }
            permissions.push(PermissionSpec {
                name: permission.name,
                description: permission.description,
                default_roles: permission.default_roles,
            });
        }
        Ok(Self {
            name: raw.name,
            version: raw.version,
            description: raw.description,
            operations,
            permissions,
            subscriptions: raw.subscriptions,
            read_tables: raw.read_tables,
            secrets: raw.secrets,
            outbound_hosts: raw
                .outbound_hosts
                .into_iter()
                .map(|h| h.to_lowercase())
                .collect(),
            jobs: raw.jobs,
            callbacks: raw.callbacks,
            migrations: raw
                .migrations
                .into_iter()
                .map(|m| (m.version, m.name, m.sql))
                .collect(),
        })
    }

    /// The operation with this name.
    pub fn operation(&self, name: &str) -> Option<&OperationSpec> {
        self.operations.iter().find(|op| op.name == name)
    }
}
