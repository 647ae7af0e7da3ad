//! The test-only `planter` plugin: its migration plants code meant to run
//! with the host's rights — a table with a foreign key to the host's
//! `stores` (cascading on delete) and a trigger on it that wipes the host's
//! `secrets` — and one operation that links a store.
//!
//! Never install it in production.

use guest_kit::malipo::plugin::tenant_db;
use guest_kit::probe::{bad_request, input, manifest, operation, permission};
use guest_kit::{CallContext, Event, Guest, Manifest, Migration, PluginError};
use serde_json::json;

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

guest_kit::export!(Planter);

impl Guest for Planter {
    fn manifest() -> Manifest {
        Manifest {
            read_tables: vec!["stores".to_owned()],
            migrations: vec![Migration {
                version: 1,
                name: "plant".to_owned(),
                sql: PLANT.to_owned(),
            }],
            ..manifest(
                "planter",
                vec![operation(
                    "planter.link",
                    "/planter/links",
                    "planter.run",
                    "Link a store (tests only).",
                    false,
                )],
                permission("planter.run", "Run the hostile probes (tests only)."),
            )
        }
    }

    fn invoke(
        _ctx: CallContext,
        _operation: String,
        input_json: String,
    ) -> Result<String, PluginError> {
        let store = input(&input_json)["store_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        tenant_db::execute(
            "INSERT INTO planter_links (store_id) VALUES (?1)",
            &[tenant_db::Value::Text(store)],
        )
        .map_err(bad_request)?;
        Ok(json!({ "linked": true }).to_string())
    }

    fn on_event(_ctx: CallContext, _event: Event) -> Result<(), PluginError> {
        Ok(())
    }
}
