//! The `usage` plugin: what one tenant uses of the platform. It keeps, per
//! day, the API calls the host metered (by channel, operation and store),
//! the money operations requested, and the payments, payouts and reversals
//! that completed; it sums them per calendar month (UTC) and compares them
//! with the limits of the tenant's plan, announcing `usage.threshold` when
//! a monthly quota reaches 80 % and 100 %.
//!
//! This module holds the generated bindings, the glue to the host imports
//! and the dispatch; the logic is in the other modules.

mod manifest;
mod money;
mod period;
mod plan;
mod record;
mod report;
#[cfg(test)]
mod testing;

use malipo_plugin_sdk::{Context, Db, Error, Input};
use serde_json::Value;

wit_bindgen::generate!({ world: "plugin", path: "../../wit" });

/// The exported component.
struct Usage;

export!(Usage);
malipo_plugin_sdk::bindings_glue!();

/// Channels whose calls count as API calls against the monthly quota.
pub const API_CHANNELS: [&str; 2] = ["rest", "mcp"];

/// What the logic needs from the host.
pub trait Host {
    /// The tenant database of the call.
    fn db(&self) -> &dyn Db;
    /// A host setting (`entitlements`).
    fn config(&self, name: &str) -> Option<String>;
    /// Emits an event in the call's transaction.
    fn emit(&self, name: &str, payload: &Value);
}

struct HostImports;

impl Host for HostImports {
    fn db(&self) -> &dyn Db {
        &HostDb
    }

    fn config(&self, name: &str) -> Option<String> {
        malipo::plugin::config::get(name)
    }

    fn emit(&self, name: &str, payload: &Value) {
        malipo::plugin::events::emit(name, &payload.to_string());
    }
}

impl Guest for Usage {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn invoke(ctx: CallContext, operation: String, input: String) -> Result<String, PluginError> {
        let ctx = context(ctx);
        Input::parse(&input)
            .and_then(|input| dispatch(&HostImports, &ctx, &operation, &input))
            .map(|output| output.to_string())
            .map_err(plugin_error)
    }

    fn on_event(ctx: CallContext, event: Event) -> Result<(), PluginError> {
        let ctx = context(ctx);
        money::on_event(&HostDb, &ctx, &event.id, &event.name, &event.payload).map_err(plugin_error)
    }
}

/// Routes an operation name to its handler.
fn dispatch(
    host: &dyn Host,
    ctx: &Context,
    operation: &str,
    input: &Input,
) -> malipo_plugin_sdk::Result<Value> {
    match operation {
        "usage.record" => record::record(host, ctx, input),
        "usage.totals" => report::totals(host.db(), ctx, input),
        "usage.summary" => report::summary(host.db(), ctx, input),
        "usage.get" => report::current(host, ctx),
        "usage.history" => report::history(host.db(), ctx, input),
        other => Err(Error::bad_request(format!(
            "The usage plugin has no operation named `{other}`."
        ))),
    }
}
