//! The test-only `sandbox` plugin: operations that probe the host's sandbox (limits, traps, rollbacks, table access).
//!
//! Never install it in production: some operations loop forever, exhaust
//! memory or try to reach tables the plugin does not own.

mod manifest;
mod ops;

use guest_kit::{CallContext, Event, Guest, Manifest, PluginError, malipo};
use malipo_plugin_sdk::{Context, Db, Error, Input};
use serde_json::Value;

/// The exported component.
struct Sandbox;

guest_kit::export!(Sandbox);
malipo_plugin_sdk::bindings_glue!();

impl Guest for Sandbox {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn invoke(ctx: CallContext, operation: String, input: String) -> Result<String, PluginError> {
        let ctx = context(ctx);
        Input::parse(&input)
            .and_then(|input| dispatch(&HostDb, &ctx, &operation, &input))
            .map(|output| output.to_string())
            .map_err(plugin_error)
    }

    fn on_event(ctx: CallContext, event: Event) -> Result<(), PluginError> {
        ops::on_event(
            &HostDb,
            &context(ctx),
            &event.id,
            &event.name,
            &event.payload,
        )
        .map_err(plugin_error)
    }
}

/// Routes an operation name to its handler.
fn dispatch(
    db: &dyn Db,
    ctx: &Context,
    operation: &str,
    input: &Input,
) -> malipo_plugin_sdk::Result<Value> {
    match operation {
        "sandbox.noop" => Ok(ops::noop()),
        "sandbox.items.create" => ops::create_item(db, ctx, input),
        "sandbox.items.list" => ops::list_items(db),
        "sandbox.stores" => ops::stores(db),
        "sandbox.spin" => ops::spin(db, ctx, input),
        "sandbox.hog" => ops::hog(db, ctx, input),
        "sandbox.trap" => ops::trap(db, ctx, input),
        "sandbox.fail" => ops::fail(db, ctx, input),
        "sandbox.trespass" => ops::trespass(db, ctx, input),
        "sandbox.big" => ops::big(input),
        "sandbox.echo" => Ok(ops::echo(ctx, input)),
        "sandbox.emit" => ops::emit(input, malipo::plugin::events::emit),
        "sandbox.events.list" => ops::list_events(db),
        other => Err(Error::bad_request(format!(
            "The sandbox plugin has no operation named `{other}`."
        ))),
    }
}

/// Writes one structured log line through the host.
fn log_info(message: &str) {
    malipo::plugin::log::write(malipo::plugin::log::Level::Info, message);
}
