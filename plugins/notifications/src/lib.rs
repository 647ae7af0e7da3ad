//! The `notifications` plugin: in-app notifications of payment, billing and
//! usage events, email (receipts, payouts, invoices, usage, subscription;
//! see [`emails`]), and outgoing webhooks, so a tenant's own shop or ERP
//! learns that a payment completed. Endpoints subscribe to event names;
//! `on-event` queues one message per endpoint and event, and the
//! `webhooks.deliver` job sends due messages signed the Standard Webhooks
//! way, retrying with backoff for about three days.
//!
//! This module holds the generated bindings and the glue to the host
//! imports; the logic is in the other modules.

mod deliveries;
mod emails;
mod inbox;
mod manifest;
mod schedule;
mod sign;
mod webhooks;

use malipo_plugin_sdk::{Context, Db, Error, Input};
use serde_json::Value;

wit_bindgen::generate!({ world: "plugin", path: "../../wit" });

/// The exported component.
struct Notifications;

export!(Notifications);
malipo_plugin_sdk::bindings_glue!();

/// The sealed tenant secret holding every endpoint's signing secret, as a
/// JSON object from endpoint id to `whsec_…`.
pub const SECRETS: &str = "webhook-secrets";

/// What the logic needs from the host besides the database.
pub trait Host {
    /// The tenant database of the call.
    fn db(&self) -> &dyn Db;
    /// A sealed secret.
    fn secret(&self, name: &str) -> Option<String>;
    /// Seals a secret (in the call's transaction).
    fn put_secret(&self, name: &str, value: &str) -> Result<(), String>;
    /// One HTTP POST; answers the status.
    fn post(&self, url: &str, headers: Vec<(String, String)>, body: &str) -> Result<u16, String>;
    /// Random bytes.
    fn random(&self) -> malipo_plugin_sdk::Result<[u8; 32]>;
    /// Sends one email through the host's `mail` import.
    fn mail(&self, message: &emails::Outgoing<'_>) -> emails::MailOutcome;
}

struct HostImports;

impl Host for HostImports {
    fn db(&self) -> &dyn Db {
        &HostDb
    }

    fn secret(&self, name: &str) -> Option<String> {
        malipo::plugin::secrets::get(name)
    }

    fn put_secret(&self, name: &str, value: &str) -> Result<(), String> {
        malipo::plugin::secrets::put(name, value)
    }

    fn post(&self, url: &str, headers: Vec<(String, String)>, body: &str) -> Result<u16, String> {
        use malipo::plugin::outbound_http;
        let request = outbound_http::Request {
            method: "POST".to_owned(),
            url: url.to_owned(),
            headers,
            body: Some(body.to_owned()),
            timeout_ms: 10_000,
        };
        outbound_http::send(&request).map(|response| response.status)
    }

    fn random(&self) -> malipo_plugin_sdk::Result<[u8; 32]> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|err| Error::internal(format!("could not read random bytes: {err}")))?;
        Ok(bytes)
    }

    fn mail(&self, message: &emails::Outgoing<'_>) -> emails::MailOutcome {
        use malipo::plugin::mail;
        let sent = mail::send(&mail::Message {
            to: message.to.to_owned(),
            subject: message.subject.to_owned(),
            text: message.text.to_owned(),
            html: message.html.map(str::to_owned),
            message_id: message.message_id.to_owned(),
        });
        match sent {
            Ok(()) => emails::MailOutcome::Sent,
            Err(mail::SendError::NotConfigured) => emails::MailOutcome::NotConfigured,
            Err(mail::SendError::Rejected(why)) => emails::MailOutcome::Rejected(why),
            Err(mail::SendError::Unavailable(why)) => emails::MailOutcome::Unavailable(why),
        }
    }
}

impl Guest for Notifications {
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
        let data: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
        let tell_people = tells_people(&event.name, &data);
        let told = if tell_people {
            inbox::record(&HostDb, &ctx, &event.id, &event.name, &data)
                .and_then(|()| emails::enqueue(&HostDb, &ctx, &event.id, &event.name, &data))
        } else {
            Ok(())
        };
        told.and_then(|()| {
            deliveries::enqueue(&HostImports, &ctx, &event.id, &event.name, &event.payload)
        })
        .map_err(plugin_error)
    }
}

/// Whether people hear of an event in the app and by email: not of a
/// subscription's start (`subscription.changed` without `from_status`),
/// which comes with signing up; webhooks still receive it.
fn tells_people(name: &str, data: &Value) -> bool {
    !(name == "subscription.changed" && data.get("from_status").is_none_or(Value::is_null))
}

/// Routes an operation name to its handler.
fn dispatch(
    host: &dyn Host,
    ctx: &Context,
    operation: &str,
    input: &Input,
) -> malipo_plugin_sdk::Result<Value> {
    match operation {
        "webhooks.create" => webhooks::create(host, ctx, input),
        "webhooks.list" => webhooks::list(host.db()),
        "webhooks.delete" => webhooks::delete(host, ctx, input),
        "webhooks.deliveries" => deliveries::list(host.db(), ctx, input),
        "webhooks.deliveries.retry" => deliveries::retry(host.db(), ctx, input),
        "webhooks.deliver" => deliveries::deliver_due(host, ctx),
        "notifications.list" => inbox::list(host.db(), ctx, input),
        "notifications.read" => inbox::mark_read(host.db(), ctx, input),
        "notification-templates.list" => emails::list(host.db()),
        "notification-templates.get" => emails::get(host.db(), input),
        "notification-templates.put" => emails::put(host.db(), ctx, input),
        "notification-templates.delete" => emails::reset(host.db(), input),
        "emails.send" => emails::send_due(host, ctx),
        other => Err(Error::bad_request(format!(
            "The notifications plugin has no operation named `{other}`."
        ))),
    }
}
