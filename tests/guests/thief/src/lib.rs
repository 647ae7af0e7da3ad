//! The test-only `thief` plugin: tries to reach what belongs to other
//! plugins and to the host. It declares the `mpesa` plugin's secret names
//! and tries to read and overwrite them, emits events whose names another
//! plugin owns (`payment.completed`), and asks SQLite for a 1 GB blob.
//!
//! Never install it in production.

use serde_json::{Value, json};

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

use malipo::plugin::types::{Annotations, HttpMethod, Operation, PermissionDef};

/// The mpesa plugin's secret names, declared here to try to read its values.
const STOLEN: [&str; 3] = ["passkey", "consumer_secret", "initiator_password"];

struct Thief;

export!(Thief);

fn op(name: &str, path: &str) -> Operation {
    Operation {
        name: name.to_owned(),
        method: HttpMethod::Post,
        path: Some(path.to_owned()),
        permission: Some("thief.run".to_owned()),
        summary: format!("Hostile probe `{name}` (tests only)."),
        description: "Test-only hostile probe.".to_owned(),
        input_schema: json!({"type": "object", "additionalProperties": true}).to_string(),
        output_schema: json!({"type": "object"}).to_string(),
        success_status: 200,
        mcp_tool: None,
        annotations: Annotations {
            read_only: false,
            destructive: true,
            idempotent: false,
            open_world: false,
        },
        money: None,
        feature: None,
    }
}

fn failed(message: String) -> PluginError {
    PluginError {
        code: "bad_request".to_owned(),
        message,
    }
}

impl Guest for Thief {
    fn manifest() -> Manifest {
        Manifest {
            name: "thief".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Test-only hostile plugin. Never install in production.".to_owned(),
            operations: vec![
                op("thief.secrets", "/thief/secrets"),
                op("thief.overwrite", "/thief/overwrite"),
                op("thief.emit", "/thief/emit"),
                op("thief.blob", "/thief/blob"),
            ],
            permissions: vec![PermissionDef {
                name: "thief.run".to_owned(),
                description: "Run the hostile probes (tests only).".to_owned(),
                default_roles: vec!["Owner".to_owned()],
            }],
            subscriptions: Vec::new(),
            emits: vec!["thief.*".to_owned()],
            read_tables: Vec::new(),
            secrets: STOLEN.iter().map(|s| (*s).to_owned()).collect(),
            outbound_hosts: Vec::new(),
            jobs: Vec::new(),
            callbacks: false,
            sends_mail: false,
            migrations: Vec::new(),
        }
    }

    fn invoke(_ctx: CallContext, operation: String, input: String) -> Result<String, PluginError> {
        let input: Value = serde_json::from_str(&input).unwrap_or(Value::Null);
        match operation.as_str() {
            "thief.secrets" => {
                let found: serde_json::Map<String, Value> = STOLEN
                    .iter()
                    .map(|name| {
                        (
                            (*name).to_owned(),
                            malipo::plugin::secrets::get(name).map_or(Value::Null, Value::from),
                        )
                    })
                    .collect();
                Ok(json!({ "secrets": found }).to_string())
            }
            "thief.overwrite" => {
                for name in STOLEN {
                    malipo::plugin::secrets::put(name, "stolen").map_err(failed)?;
                }
                Ok(json!({ "overwritten": true }).to_string())
            }
            "thief.emit" => {
                let name = input["name"].as_str().unwrap_or("payment.completed");
                malipo::plugin::events::emit(name, &input["payload"].to_string());
                Ok(json!({ "emitted": true }).to_string())
            }
            "thief.blob" => {
                let bytes = input["bytes"].as_i64().unwrap_or(1_000_000_000);
                let rows = malipo::plugin::tenant_db::query(
                    "SELECT length(randomblob(?1)) AS n",
                    &[malipo::plugin::tenant_db::Value::Integer(bytes)],
                )
                .map_err(failed)?;
                let length = match rows.rows.first().and_then(|row| row.first()) {
                    Some(malipo::plugin::tenant_db::Value::Integer(n)) => *n,
                    _ => -1,
                };
                Ok(json!({ "length": length }).to_string())
            }
            other => Err(failed(format!("no operation `{other}`"))),
        }
    }

    fn on_event(_ctx: CallContext, _event: Event) -> Result<(), PluginError> {
        Ok(())
    }
}
