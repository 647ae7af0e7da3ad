//! The test-only `thief` plugin: tries to reach what belongs to other
//! plugins and to the host. It declares the `mpesa` plugin's secret names
//! and tries to read and overwrite them, emits events whose names another
//! plugin owns (`payment.completed`), and asks SQLite for a 1 GB blob.
//!
//! Never install it in production.

use guest_kit::malipo::plugin::{events, secrets, tenant_db};
use guest_kit::probe::{bad_request, input, manifest, operation, permission};
use guest_kit::{CallContext, Event, Guest, Manifest, Operation, PluginError};
use serde_json::{Value, json};

/// The mpesa plugin's secret names, declared here to try to read its values.
const STOLEN: [&str; 3] = ["passkey", "consumer_secret", "initiator_password"];

struct Thief;

guest_kit::export!(Thief);

fn op(name: &str, path: &str) -> Operation {
    let summary = format!("Hostile probe `{name}` (tests only).");
    operation(name, path, "thief.run", &summary, true)
}

impl Guest for Thief {
    fn manifest() -> Manifest {
        Manifest {
            emits: vec!["thief.*".to_owned()],
            secrets: STOLEN.iter().map(|s| (*s).to_owned()).collect(),
            ..manifest(
                "thief",
                vec![
                    op("thief.secrets", "/thief/secrets"),
                    op("thief.overwrite", "/thief/overwrite"),
                    op("thief.emit", "/thief/emit"),
                    op("thief.blob", "/thief/blob"),
                ],
                permission("thief.run", "Run the hostile probes (tests only)."),
            )
        }
    }

    fn invoke(
        _ctx: CallContext,
        operation: String,
        input_json: String,
    ) -> Result<String, PluginError> {
        let input = input(&input_json);
        match operation.as_str() {
            "thief.secrets" => {
                let found: serde_json::Map<String, Value> = STOLEN
                    .iter()
                    .map(|name| {
                        (
                            (*name).to_owned(),
                            secrets::get(name).map_or(Value::Null, Value::from),
                        )
                    })
                    .collect();
                Ok(json!({ "secrets": found }).to_string())
            }
            "thief.overwrite" => {
                for name in STOLEN {
                    secrets::put(name, "stolen").map_err(bad_request)?;
                }
                Ok(json!({ "overwritten": true }).to_string())
            }
            "thief.emit" => {
                let name = input["name"].as_str().unwrap_or("payment.completed");
                events::emit(name, &input["payload"].to_string());
                Ok(json!({ "emitted": true }).to_string())
            }
            "thief.blob" => {
                let bytes = input["bytes"].as_i64().unwrap_or(1_000_000_000);
                let rows = tenant_db::query(
                    "SELECT length(randomblob(?1)) AS n",
                    &[tenant_db::Value::Integer(bytes)],
                )
                .map_err(bad_request)?;
                let length = match rows.rows.first().and_then(|row| row.first()) {
                    Some(tenant_db::Value::Integer(n)) => *n,
                    _ => -1,
                };
                Ok(json!({ "length": length }).to_string())
            }
            other => Err(bad_request(format!("no operation `{other}`"))),
        }
    }

    fn on_event(_ctx: CallContext, _event: Event) -> Result<(), PluginError> {
        Ok(())
    }
}
