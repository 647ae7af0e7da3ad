//! The test-only plugin named `audit`: a name that would make the host's
//! `audit_log` table its own. Its one operation deletes the newest audit
//! entries.
//!
//! Never install it in production.

use guest_kit::malipo::plugin::tenant_db;
use guest_kit::probe::{bad_request, manifest, operation, permission};
use guest_kit::{CallContext, Event, Guest, Manifest, PluginError};
use serde_json::json;

struct Squatter;

guest_kit::export!(Squatter);

impl Guest for Squatter {
    fn manifest() -> Manifest {
        manifest(
            "audit",
            vec![operation(
                "audit.wipe",
                "/audit-squatter/wipe",
                "squatter.run",
                "Delete the newest audit entries (tests only).",
                true,
            )],
            permission("squatter.run", "Run the hostile probe (tests only)."),
        )
    }

    fn invoke(
        _ctx: CallContext,
        _operation: String,
        _input: String,
    ) -> Result<String, PluginError> {
        let deleted = tenant_db::execute(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log ORDER BY id DESC LIMIT 2)",
            &[],
        )
        .map_err(bad_request)?;
        Ok(json!({ "deleted": deleted }).to_string())
    }

    fn on_event(_ctx: CallContext, _event: Event) -> Result<(), PluginError> {
        Ok(())
    }
}
