//! The sandbox manifest: one permission, one table, the probe operations.

use serde_json::{Value, json};

use guest_kit::{Annotations, HttpMethod, Manifest, Migration, Operation, PermissionDef};

/// The permission every sandbox operation needs.
const RUN: &str = "sandbox.run";

pub fn manifest() -> Manifest {
    Manifest {
        name: "sandbox".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: "Test-only probes of the plugin sandbox. Never install in production."
            .to_owned(),
        operations: operations(),
        permissions: vec![PermissionDef {
            name: RUN.to_owned(),
            description: "Run the sandbox probe operations (tests only).".to_owned(),
            default_roles: vec!["Owner".to_owned(), "Admin".to_owned()],
        }],
        subscriptions: vec![crate::ops::PINGED.to_owned()],
        emits: vec!["sandbox.*".to_owned()],
        read_tables: vec!["stores".to_owned(), "event_deliveries".to_owned()],
        secrets: Vec::new(),
        outbound_hosts: Vec::new(),
        jobs: Vec::new(),
        callbacks: false,
        sends_mail: false,
        migrations: vec![
            Migration {
                version: 1,
                name: "init".to_owned(),
                sql: include_str!("../migrations/V1__init.sql").to_owned(),
            },
            Migration {
                version: 2,
                name: "events".to_owned(),
                sql: include_str!("../migrations/V2__events.sql").to_owned(),
            },
        ],
    }
}

/// Only reads.
const READ: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};
/// Writes something new.
const WRITE: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};
/// May destroy data (or try to).
const DESTRUCTIVE: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: false,
    open_world: false,
};

#[expect(
    clippy::too_many_arguments,
    reason = "a flat table of probe operations reads best"
)]
fn op(
    name: &str,
    method: HttpMethod,
    path: &str,
    summary: &str,
    input: Value,
    output: Value,
    status: u16,
    hints: Annotations,
) -> Operation {
    Operation {
        name: name.to_owned(),
        method,
        path: Some(path.to_owned()),
        permission: Some(RUN.to_owned()),
        summary: summary.to_owned(),
        description: format!("{summary} Test-only."),
        input_schema: input.to_string(),
        output_schema: output.to_string(),
        success_status: status,
        mcp_tool: Some(format!(
            "sandbox_{}",
            name.trim_start_matches("sandbox.").replace('.', "_")
        )),
        annotations: hints,
        money: None,
        feature: None,
    }
}

fn input(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": true })
}

fn note_input() -> Value {
    input(json!({ "note": { "type": "string" } }), &["note"])
}

fn item() -> Value {
    json!({
        "type": "object",
        "required": ["id", "note"],
        "properties": { "id": { "type": "integer" }, "note": { "type": "string" } }
    })
}

/// Output of an operation that never succeeds.
fn never() -> Value {
    json!({ "not": {} })
}

fn operations() -> Vec<Operation> {
    vec![
        op(
            "sandbox.noop",
            HttpMethod::Get,
            "/sandbox/noop",
            "Answer {\"ok\":true} without touching the database.",
            input(json!({}), &[]),
            json!({ "type": "object", "required": ["ok"], "properties": { "ok": { "type": "boolean" } } }),
            200,
            READ,
        ),
        op(
            "sandbox.items.create",
            HttpMethod::Post,
            "/sandbox/items",
            "Store a note.",
            note_input(),
            item(),
            201,
            WRITE,
        ),
        op(
            "sandbox.items.list",
            HttpMethod::Get,
            "/sandbox/items",
            "List the stored notes.",
            input(json!({}), &[]),
            json!({ "type": "object", "required": ["items"], "properties": { "items": { "type": "array", "items": item() } } }),
            200,
            READ,
        ),
        op(
            "sandbox.stores",
            HttpMethod::Get,
            "/sandbox/stores",
            "Read the declared host table `stores`.",
            input(json!({}), &[]),
            json!({
                "type": "object",
                "required": ["stores"],
                "properties": { "stores": { "type": "array", "items": {
                    "type": "object",
                    "required": ["id", "name"],
                    "properties": { "id": { "type": "string" }, "name": { "type": "string" } }
                } } }
            }),
            200,
            READ,
        ),
        op(
            "sandbox.spin",
            HttpMethod::Post,
            "/sandbox/spin",
            "Store a note, then loop forever.",
            note_input(),
            never(),
            200,
            WRITE,
        ),
        op(
            "sandbox.hog",
            HttpMethod::Post,
            "/sandbox/hog",
            "Store a note, then allocate memory until it runs out.",
            note_input(),
            never(),
            200,
            WRITE,
        ),
        op(
            "sandbox.trap",
            HttpMethod::Post,
            "/sandbox/trap",
            "Store a note, then panic.",
            note_input(),
            never(),
            200,
            WRITE,
        ),
        op(
            "sandbox.fail",
            HttpMethod::Post,
            "/sandbox/fail",
            "Store a note, then fail with a conflict.",
            note_input(),
            never(),
            200,
            WRITE,
        ),
        op(
            "sandbox.trespass",
            HttpMethod::Post,
            "/sandbox/trespass",
            "Store a note, then try a statement the host must refuse.",
            input(
                json!({
                    "note": { "type": "string" },
                    "target": { "type": "string", "enum": ["read", "audit", "attach", "pragma"], "default": "read" }
                }),
                &["note"],
            ),
            json!({ "type": "object" }),
            200,
            DESTRUCTIVE,
        ),
        op(
            "sandbox.big",
            HttpMethod::Get,
            "/sandbox/big",
            "Answer `bytes` bytes of data.",
            input(
                json!({ "bytes": { "type": ["integer", "string"], "minimum": 0, "pattern": "^[0-9]+$" } }),
                &["bytes"],
            ),
            json!({ "type": "object", "required": ["data"], "properties": { "data": { "type": "string" } } }),
            200,
            READ,
        ),
        op(
            "sandbox.echo",
            HttpMethod::Post,
            "/sandbox/echo",
            "Echo the call context and the input.",
            input(json!({}), &[]),
            json!({
                "type": "object",
                "required": ["tenant_id", "user_id", "store_id", "channel", "input"],
                "properties": {
                    "tenant_id": { "type": "string" },
                    "user_id": { "type": ["string", "null"] },
                    "store_id": { "type": ["string", "null"] },
                    "channel": { "type": "string" },
                    "input": { "type": "object" }
                }
            }),
            200,
            READ,
        ),
        op(
            "sandbox.emit",
            HttpMethod::Post,
            "/sandbox/emit",
            "Emit an event to the tenant's outbox.",
            input(
                json!({ "name": { "type": "string", "minLength": 1 }, "payload": {}, "fail": { "type": "boolean" } }),
                &["name"],
            ),
            json!({ "type": "object", "required": ["emitted"], "properties": { "emitted": { "type": "boolean" } } }),
            200,
            WRITE,
        ),
        op(
            "sandbox.events.list",
            HttpMethod::Get,
            "/sandbox/events",
            "List the events delivered to the sandbox's on-event, oldest first.",
            input(json!({}), &[]),
            json!({ "type": "object", "required": ["events"], "properties": { "events": { "type": "array", "items": { "type": "object" } } } }),
            200,
            READ,
        ),
    ]
}
