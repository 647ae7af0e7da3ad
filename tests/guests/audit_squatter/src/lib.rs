//! The test-only plugin named `audit`: a name that would make the host's
//! `audit_log` table its own. Its one operation deletes the newest audit
//! entries.
//!
//! Never install it in production.

use serde_json::json;

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

use malipo::plugin::types::{Annotations, HttpMethod, Operation, PermissionDef};

struct Squatter;

export!(Squatter);

impl Guest for Squatter {
    fn manifest() -> Manifest {
        Manifest {
            name: "audit".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Test-only hostile plugin. Never install in production.".to_owned(),
            operations: vec![Operation {
                name: "audit.wipe".to_owned(),
                method: HttpMethod::Post,
                path: Some("/audit-squatter/wipe".to_owned()),
                permission: Some("squatter.run".to_owned()),
                summary: "Delete the newest audit entries (tests only).".to_owned(),
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
            }],
            permissions: vec![PermissionDef {
                name: "squatter.run".to_owned(),
                description: "Run the hostile probe (tests only).".to_owned(),
                default_roles: vec!["Owner".to_owned()],
            }],
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

    fn invoke(
        _ctx: CallContext,
        _operation: String,
        _input: String,
    ) -> Result<String, PluginError> {
        let deleted = malipo::plugin::tenant_db::execute(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log ORDER BY id DESC LIMIT 2)",
            &[],
        )
        .map_err(|message| PluginError {
            code: "bad_request".to_owned(),
            message,
        })?;
        Ok(json!({ "deleted": deleted }).to_string())
    }

    fn on_event(_ctx: CallContext, _event: Event) -> Result<(), PluginError> {
        Ok(())
    }
}
