//! The manifest of a hostile probe plugin, its operations, and its errors.

use serde_json::{Value, json};

use crate::{Annotations, HttpMethod, Manifest, Operation, PermissionDef, PluginError};

/// What every hostile probe says of itself.
const DESCRIPTION: &str = "Test-only hostile plugin. Never install in production.";

/// A manifest named `name` with these operations and one permission
/// (see [`permission`]), at the guests' workspace version; it declares
/// nothing else (no events, tables, secrets, hosts, jobs or migrations),
/// so a guest adds only what its probes need.
pub fn manifest(name: &str, operations: Vec<Operation>, permission: PermissionDef) -> Manifest {
    Manifest {
        name: name.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: DESCRIPTION.to_owned(),
        operations,
        permissions: vec![permission],
        subscriptions: Vec::new(),
        emits: Vec::new(),
        read_tables: Vec::new(),
        secrets: Vec::new(),
        outbound_hosts: Vec::new(),
        jobs: Vec::new(),
        callbacks: false,
        sends_mail: false,
        migrations: Vec::new(),
    }
}

/// The permission `name`, held by the Owner role only.
pub fn permission(name: &str, description: &str) -> PermissionDef {
    PermissionDef {
        name: name.to_owned(),
        description: description.to_owned(),
        default_roles: vec!["Owner".to_owned()],
    }
}

/// A `POST` operation at `path` needing `permission`: any input object,
/// an object out with status 200, no MCP tool, no money; `destructive`
/// as it says.
pub fn operation(
    name: &str,
    path: &str,
    permission: &str,
    summary: &str,
    destructive: bool,
) -> Operation {
    Operation {
        name: name.to_owned(),
        method: HttpMethod::Post,
        path: Some(path.to_owned()),
        permission: Some(permission.to_owned()),
        summary: summary.to_owned(),
        description: "Test-only hostile probe.".to_owned(),
        input_schema: json!({"type": "object", "additionalProperties": true}).to_string(),
        output_schema: json!({"type": "object"}).to_string(),
        success_status: 200,
        mcp_tool: None,
        annotations: Annotations {
            read_only: false,
            destructive,
            idempotent: false,
            open_world: false,
        },
        money: None,
        feature: None,
    }
}

/// The call's input as JSON; null if it is not JSON.
pub fn input(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or(Value::Null)
}

/// A `bad_request` error carrying what the host answered.
pub fn bad_request(message: String) -> PluginError {
    PluginError {
        code: "bad_request".to_owned(),
        message,
    }
}
