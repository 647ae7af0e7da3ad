//! The `billing` plugin: one tenant's subscription to a plan of the
//! platform's catalog (host config `plan-catalog`), its invoices, their
//! payment, renewal and dunning.
//!
//! The host charges invoices by STK push through the platform's own M-Pesa
//! account and reports the outcome through internal operations
//! (`invoices.charge`, `.charge-started`, `.charge-failed`, `.settle`);
//! this plugin never calls M-Pesa. All time is `ctx.now_ms`.
//!
//! Subscription states: `trial` → `active` → `past_due` → `suspended`, and
//! `cancelled`. Constants (see [`period`]):
//!
//! - `INVOICE_LEAD_DAYS = 3`: trial-end and renewal invoices are issued 3
//!   days before the period (or trial) ends and are due at its end;
//! - `GRACE_DAYS = 7`: days `past_due` before `suspended`;
//! - `DUNNING_DAYS = [1, 3, 5]`: days past due on which `billing.renew` asks
//!   the host to retry the charge (once each, with a phone number on file);
//! - `CHANGE_DUE_DAYS = 3`: invoices of plan changes (proration, new
//!   period) are due 3 days after issue;
//! - a pending payment attempt younger than 2 minutes blocks a new charge.
//!
//! Periods: `month` adds one calendar month (the day clamped: Jan 31 →
//! Feb 28/29, and back to Mar 31 since periods count from an anchor),
//! `year` twelve. Money is whole KES. Invoice numbers are per tenant and
//! sequential (`INV-000001`), from a counter that never goes back.
//!
//! This module holds the generated bindings, the glue to the host imports
//! and the dispatcher; the logic is in the other modules, behind [`Host`]
//! so it runs natively in tests.

mod call;
mod invoices;
mod manifest;
mod period;
mod plans;
mod renew;
#[cfg(test)]
mod scenarios;
mod store;
mod subscription;
#[cfg(test)]
mod testkit;

use malipo_plugin_sdk::{Context, Db, Error, Input};
use serde_json::Value;

wit_bindgen::generate!({ world: "plugin", path: "../../wit" });

/// The exported component.
struct Billing;

export!(Billing);
malipo_plugin_sdk::bindings_glue!();

/// What the logic needs from the host.
pub trait Host {
    /// The tenant database of the call.
    fn db(&self) -> &dyn Db;
    /// A host setting (`plan-catalog`).
    fn config(&self, name: &str) -> Option<String>;
    /// Emits an event to the tenant's outbox (in the call's transaction).
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

impl Guest for Billing {
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

    fn on_event(_ctx: CallContext, _event: Event) -> Result<(), PluginError> {
        // The manifest subscribes to nothing.
        Ok(())
    }
}

/// Routes an operation name to its handler.
pub fn dispatch(
    host: &dyn Host,
    ctx: &Context,
    operation: &str,
    input: &Input,
) -> malipo_plugin_sdk::Result<Value> {
    let call = call::Call::new(host, ctx);
    match operation {
        "subscription.get" => subscription::get(&call),
        "subscription.change" => subscription::change(&call, input),
        "subscription.cancel" => subscription::cancel(&call),
        "subscription.start" => subscription::start(&call, input),
        "subscription.set" => subscription::set(&call, input),
        "entitlements.get" => subscription::entitlements(&call, input),
        "invoices.list" => invoices::list(&call, input),
        "invoices.get" => invoices::get(&call, input),
        "invoices.charge" => invoices::charge(&call, input),
        "invoices.charge-started" => invoices::charge_started(&call, input),
        "invoices.charge-failed" => invoices::charge_failed(&call, input),
        "invoices.settle" => invoices::settle(&call, input),
        "billing.renew" => renew::run(&call),
        other => Err(Error::bad_request(format!(
            "The billing plugin has no operation named `{other}`."
        ))),
    }
}
