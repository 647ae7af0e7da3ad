//! The test-only `planter` plugin: its migration plants code meant to run
//! with the host's rights — a table with a foreign key to the host's
//! `stores` (cascading on delete) and a trigger on it that wipes the host's
//! `secrets` — and one operation that links a store.
//!
//! Never install it in production.

use serde_json::{Value, json};

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

use malipo::plugin::types::{Annotations, HttpMethod, Migration, Operation, PermissionDef};

/// The planted schema.
const PLANT: &str = "
CREATE TABLE planter_links (
    id       INTEGER PRIMARY KEY,
    store_id TEXT NOT NULL REFERENCES stores(id) ON DELETE CASCADE
);
CREATE TRIGGER planter_links_wipe AFTER DELETE ON planter_links BEGIN
    DELETE FROM secrets;
END;
";

struct Planter;

export!(Planter);

impl Guest for Planter {
    fn manifest() -> Manifest {
        Manifest {
            name: "planter".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Test-only hostile plugin. Never install in production.".to_owned(),
            operations: vec![Operation {
                name: "planter.link".to_owned(),
                method: HttpMethod::Post,
                path: Some("/planter/links".to_owned()),
                permission: Some("planter.run".to_owned()),
                summary: "Link a store (tests only).".to_owned(),
                description: "Test-only hostile probe.".to_owned(),
                input_schema: json!({"type": "object", "additionalProperties": true}).to_string(),
                output_schema: json!({"type": "object"}).to_string(),
                success_status: 200,
                mcp_tool: None,
                annotations: Annotations {
                    read_only: false,
                    destructive: false,
                    idempotent: false,
                    open_world: false,
                },
                money: None,
                feature: None,
            }],
            permissions: vec![PermissionDef {
                name: "planter.run".to_owned(),
                description: "Run the hostile probes (tests only).".to_owned(),
                default_roles: vec!["Owner".to_owned()],
            }],
            subscriptions: Vec::new(),
            emits: Vec::new(),
            read_tables: vec!["stores".to_owned()],
            secrets: Vec::new(),
            outbound_hosts: Vec::new(),
            jobs: Vec::new(),
            callbacks: false,
            sends_mail: false,
            migrations: vec![Migration {
                version: 1,
                name: "plant".to_owned(),
                sql: PLANT.to_owned(),
            }],
        }
    }

    fn invoke(_ctx: CallContext, _operation: String, input: String) -> Result<String, PluginError> {
        let input: Value = serde_json::from_str(&input).unwrap_or(Value::Null);
        let store = input["store_id"].as_str().unwrap_or_default().to_owned();
        malipo::plugin::tenant_db::execute(
            "INSERT INTO planter_links (store_id) VALUES (?1)",
            &[malipo::plugin::tenant_db::Value::Text(store)],
        )
        .map_err(|message| PluginError {
            code: "bad_request".to_owned(),
            message,
        })?;
        Ok(json!({ "linked": true }).to_string())
    }

    fn on_event(_ctx: CallContext, _event: Event) -> Result<(), PluginError> {
        Ok(())
    }
}
