//! The host's view of a plugin manifest: the WIT record, checked once at
//! load and turned into plain types the router, OpenAPI and catalog use,
//! including the money each operation moves ([`MoneyMovement`]).

use serde::Serialize;
use serde_json::Value;

use crate::plugins::bindings;

/// Host tables a plugin may declare for reading. `event_deliveries` lets a
/// subscriber see how often a delivery was tried (the event dispatcher's
/// table, see the host's `malipo::events`); `settings` holds the organization's typed
/// settings ([`malipo_foundations::settings`]).
pub const READABLE_HOST_TABLES: &[&str] = &[
    "stores",
    "store_members",
    "members",
    "event_deliveries",
    "branding",
    "settings",
];

/// Event names the host itself emits (`malipo::events::emit_host_event`):
/// no plugin may declare them in `emits`.
pub const HOST_EVENTS: &[&str] = &["invitation.*", "password_reset.*"];

/// Plugin names refused whatever the host schema says: the host's own
/// namespaces (`host` is also the `source` of the host's events).
const ALWAYS_RESERVED: &[&str] = &["host", "sqlite", "refinery", "malipo"];

/// Why a plugin may not be called `name`, if it may not: its tables are
/// `<name>_…`, so a name that is a host table, or whose `<name>_` prefixes
/// one (`audit` → `audit_log`, `event` → `event_deliveries`), would own
/// host data. `host_tables` is the host's tenant schema (every table the
/// host's migrations create, see [`malipo_storage::tenancy::host_tables`]).
pub fn reserved_name_reason(name: &str, host_tables: &[String]) -> Option<String> {
    if ALWAYS_RESERVED.contains(&name) || name.starts_with("sqlite") {
        return Some(format!("the plugin name `{name}` is reserved for the host"));
    }
    let prefix = format!("{name}_");
    host_tables
        .iter()
        .find(|table| *table == name || table.starts_with(&prefix))
        .map(|table| {
            format!(
                "the plugin name `{name}` is reserved: a plugin owns the tables named `{name}_…`, \
                 and the host table `{table}` would be one of them (or share its name)"
            )
        })
}

/// Whether the `emits` pattern `pattern` (`a.b` or `a.*`) covers `name`.
pub fn pattern_covers(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix) && name.len() > prefix.len(),
        None => pattern == name,
    }
}

/// Whether two `emits` patterns could both cover one name.
pub fn patterns_overlap(a: &str, b: &str) -> bool {
    match (a.strip_suffix('*'), b.strip_suffix('*')) {
        (Some(pa), Some(pb)) => pa.starts_with(pb) || pb.starts_with(pa),
        (Some(_), None) => pattern_covers(a, b),
        (None, Some(_)) => pattern_covers(b, a),
        (None, None) => a == b,
    }
}

/// `resource.event` names, or `prefix.*`: lower-case segments separated
/// by dots, at least two.
fn valid_emits_pattern(pattern: &str) -> bool {
    let body = pattern.strip_suffix(".*").unwrap_or(pattern);
    let segments: Vec<&str> = body.split('.').collect();
    pattern.len() <= 100
        && (pattern.ends_with(".*") || segments.len() >= 2)
        && segments.iter().all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        })
}

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

/// Which way an operation moves money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoneyDirection {
    /// Money comes in to the tenant (e.g. a collection).
    Incoming,
    /// Money goes out of the tenant (e.g. a payout or a reversal).
    Outgoing,
}

/// Money an operation moves: the host applies each API key's amount limits
/// to it and asks a person to approve outgoing money requested over MCP.
#[derive(Clone, Debug, Serialize)]
pub struct MoneyMovement {
    /// Incoming or outgoing.
    pub direction: MoneyDirection,
    /// JSON pointers to the amounts (whole KES) in the input object, with
    /// `*` for every item of an array (`/amount`, `/items/*/amount`); the
    /// amounts are summed.
    pub amount_fields: Vec<String>,
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
    /// The plan feature a tenant needs for it, if any.
    pub feature: Option<String>,
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
    /// Event names (or `prefix.*` patterns) it owns and may emit.
    pub emits: Vec<String>,
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
    /// Whether it sends email through the `mail` import.
    pub sends_mail: bool,
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
            if secret.starts_with("__")
                || secret.is_empty()
                || secret.len() > 64
                || secret.contains('/')
            {
                return Err(fail(format!("secret name `{secret}` is not allowed")));
            }
        }
        for pattern in &raw.emits {
            if !valid_emits_pattern(pattern) {
                return Err(fail(format!(
                    "emits `{pattern}` is not an event name (`resource.event`) or a `prefix.*` pattern"
                )));
            }
            if let Some(host) = HOST_EVENTS.iter().find(|h| patterns_overlap(h, pattern)) {
                return Err(fail(format!(
                    "emits `{pattern}`: events `{host}` belong to the host"
                )));
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
            if let Some(money) = &op.money
                && let Some(field) = money
                    .amount_fields
                    .iter()
                    .find(|field| !field.starts_with('/'))
            {
                return Err(fail(format!(
                    "operation `{}`: amount field `{field}` must be a JSON pointer starting with `/`",
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
                annotations: Annotations {
                    read_only: op.annotations.read_only,
                    destructive: op.annotations.destructive,
                    idempotent: op.annotations.idempotent,
                    open_world: op.annotations.open_world,
                },
                money: op.money.map(|money| MoneyMovement {
                    direction: match money.direction {
                        bindings::MoneyDirection::Incoming => MoneyDirection::Incoming,
                        bindings::MoneyDirection::Outgoing => MoneyDirection::Outgoing,
                    },
                    amount_fields: money.amount_fields,
                }),
                feature: op.feature,
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
            emits: raw.emits,
            read_tables: raw.read_tables,
            secrets: raw.secrets,
            outbound_hosts: raw
                .outbound_hosts
                .into_iter()
                .map(|h| h.to_lowercase())
                .collect(),
            jobs: raw.jobs,
            callbacks: raw.callbacks,
            sends_mail: raw.sends_mail,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(money: Option<bindings::MoneyMovement>) -> bindings::Manifest {
        bindings::Manifest {
            name: "probe".into(),
            version: "1".into(),
            description: String::new(),
            operations: vec![bindings::Operation {
                name: "probe.pay".into(),
                method: bindings::HttpMethod::Post,
                path: Some("/probe/pay".into()),
                permission: Some("probe.pay".into()),
                summary: "Pay.".into(),
                description: "Pay.".into(),
                input_schema: "{}".into(),
                output_schema: "{}".into(),
                success_status: 201,
                mcp_tool: None,
                annotations: bindings::Annotations {
                    read_only: false,
                    destructive: true,
                    idempotent: false,
                    open_world: true,
                },
                money,
                feature: None,
            }],
            permissions: Vec::new(),
            subscriptions: Vec::new(),
            emits: vec!["probe.*".into()],
            read_tables: Vec::new(),
            secrets: Vec::new(),
            outbound_hosts: Vec::new(),
            jobs: Vec::new(),
            callbacks: false,
            sends_mail: false,
            migrations: Vec::new(),
        }
    }

    fn movement(fields: &[&str]) -> Option<bindings::MoneyMovement> {
        Some(bindings::MoneyMovement {
            direction: bindings::MoneyDirection::Outgoing,
            amount_fields: fields.iter().map(|f| (*f).to_string()).collect(),
        })
    }

    #[test]
    fn keeps_money_movement() {
        let manifest =
            PluginManifest::from_wit(raw(movement(&["/items/*/amount"]))).expect("valid manifest");
        let money = manifest.operations[0]
            .money
            .as_ref()
            .expect("money declared");
        assert_eq!(money.direction, MoneyDirection::Outgoing);
        assert_eq!(money.amount_fields, ["/items/*/amount"]);
        let none = PluginManifest::from_wit(raw(None)).expect("valid manifest");
        assert!(none.operations[0].money.is_none());
    }

    #[test]
    fn emits_patterns_cover_and_overlap_as_declared() {
        assert!(pattern_covers("payment.*", "payment.completed"));
        assert!(!pattern_covers("payment.*", "payment."));
        assert!(!pattern_covers("payment.*", "payout.completed"));
        assert!(pattern_covers("invoice.paid", "invoice.paid"));
        assert!(!pattern_covers("invoice.paid", "invoice.paid2"));
        assert!(patterns_overlap("payment.*", "payment.completed"));
        assert!(patterns_overlap("payment.completed", "payment.*"));
        assert!(patterns_overlap("a.*", "a.b.*"));
        assert!(!patterns_overlap("payment.*", "payout.*"));
        let mut host = raw(None);
        host.emits = vec!["invitation.created".into()];
        let error = PluginManifest::from_wit(host).expect_err("host event refused");
        assert!(error.to_string().contains("belong to the host"), "{error}");
        let mut bad = raw(None);
        bad.emits = vec!["*".into()];
        assert!(PluginManifest::from_wit(bad).is_err());
    }

    #[test]
    fn every_host_table_makes_its_prefixes_reserved() {
        let tables = malipo_storage::tenancy::host_tables().expect("host schema");
        assert!(tables.iter().any(|t| t == "audit_log"), "{tables:?}");
        for table in &tables {
            // Every name whose `<name>_` prefixes the table, and the table's own name.
            let mut candidates = vec![table.clone()];
            for (at, _) in table.match_indices('_') {
                candidates.push(table[..at].to_string());
            }
            for name in candidates.iter().filter(|n| valid_plugin_name(n)) {
                assert!(
                    reserved_name_reason(name, &tables).is_some(),
                    "plugin name `{name}` would own host table `{table}`"
                );
            }
        }
        for name in [
            "audit",
            "host",
            "store",
            "event",
            "refinery",
            "sqlite",
            "settings",
            "secrets",
            "outbox",
            "approvals",
            "members",
            "branding",
            "stores",
        ] {
            assert!(reserved_name_reason(name, &tables).is_some(), "{name}");
        }
        for name in [
            "mpesa",
            "billing",
            "rbac",
            "usage",
            "notifications",
            "sandbox",
            "thief",
        ] {
            assert_eq!(reserved_name_reason(name, &tables), None, "{name}");
        }
    }

    #[test]
    fn rejects_amount_field_without_slash() {
        let error = PluginManifest::from_wit(raw(movement(&["/amount", "amount"])))
            .expect_err("amount field without `/` is refused");
        assert!(
            error.to_string().contains("amount field `amount`"),
            "{error}"
        );
    }
}
