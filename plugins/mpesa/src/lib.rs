//! The `mpesa` plugin: M-Pesa payments through Safaricom's Daraja API for each tenant.
//!
//! This module holds the generated bindings, the [`env::Env`] over the host
//! imports, and the routing of operation names to the binding-independent
//! code in the other modules.

mod b2c;
mod c2b;
mod callbacks;
mod clock;
mod codec;
mod credentials;
mod daraja;
mod env;
mod idempotency;
mod intents;
mod manifest;
mod reports;
mod requests;
mod reversal;
mod stk;
mod submission;
mod transactions;
mod validate;

use malipo_plugin_sdk::{Context, Db, Error, Input};
use serde_json::Value;

use crate::env::{Env, HttpRequest, HttpResponse};

wit_bindgen::generate!({ world: "plugin", path: "../../wit" });

/// The exported component.
struct Mpesa;

export!(Mpesa);
malipo_plugin_sdk::bindings_glue!();

impl Guest for Mpesa {
    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn invoke(ctx: CallContext, operation: String, input: String) -> Result<String, PluginError> {
        let env = HostEnv { ctx: context(ctx) };
        Input::parse(&input)
            .and_then(|input| dispatch(&env, &operation, &input))
            .map(|output| output.to_string())
            .map_err(plugin_error)
    }

    fn on_event(_ctx: CallContext, _event: Event) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Routes an operation name to its handler.
fn dispatch(env: &dyn Env, operation: &str, input: &Input) -> malipo_plugin_sdk::Result<Value> {
    let (db, ctx) = (env.db(), env.ctx());
    match operation {
        "mpesa.credentials.put" => credentials::put(env, input),
        "mpesa.credentials.get" => credentials::get(env),
        "mpesa.credentials.test" => credentials::test(env),
        "mpesa.c2b.register" => c2b::register(env, input),
        "mpesa.stk-push" => stk::push(env, input),
        "mpesa.transactions.get" => transactions::get(db, ctx, input),
        "mpesa.transactions.list" => transactions::list(db, ctx, input),
        "mpesa.transactions.query" => stk::query(env, input),
        "mpesa.b2c.bulk" => b2c::bulk(env, input),
        "mpesa.b2c.batches.get" => b2c::get(env, input),
        "mpesa.reversals.create" => reversal::create(env, input),
        "mpesa.reports" => reports::report(env, input),
        "mpesa.balance" => requests::balance(env, input),
        "mpesa.balance.get" => requests::get_balance(env, input),
        "mpesa.transaction-status" => requests::status(env, input),
        "mpesa.transaction-status.get" => requests::get_status(env, input),
        "callback.receive" => callbacks::receive(env, input),
        "payments.reconcile" => stk::reconcile(env, input),
        other => Err(Error::bad_request(format!(
            "The mpesa plugin has no operation named `{other}`."
        ))),
    }
}

/// The host imports of the current call.
struct HostEnv {
    ctx: Context,
}

impl Env for HostEnv {
    fn db(&self) -> &dyn Db {
        &HostDb
    }

    fn ctx(&self) -> &Context {
        &self.ctx
    }

    fn secret(&self, name: &str) -> Option<String> {
        malipo::plugin::secrets::get(name)
    }

    fn put_secret(&self, name: &str, value: &str) -> malipo_plugin_sdk::Result<()> {
        malipo::plugin::secrets::put(name, value)
            .map_err(|err| Error::internal(format!("could not store the secret `{name}`: {err}")))
    }

    fn config(&self, name: &str) -> Option<String> {
        malipo::plugin::config::get(name)
    }

    fn http(&self, request: HttpRequest) -> Result<HttpResponse, String> {
        use malipo::plugin::outbound_http;
        let request = outbound_http::Request {
            method: request.method.to_owned(),
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        outbound_http::send(&request).map(|response| HttpResponse {
            status: response.status,
            body: response.body,
        })
    }

    fn check_url(&self, url: &str) -> Result<(), String> {
        malipo::plugin::outbound_http::check(url)
    }

    fn security_credential(
        &self,
        environment: &str,
        base_url: Option<&str>,
        initiator_password: &str,
    ) -> Result<String, String> {
        malipo::plugin::daraja::security_credential(environment, base_url, initiator_password)
    }

    fn emit(&self, name: &str, payload: &Value) {
        malipo::plugin::events::emit(name, &payload.to_string());
    }

    fn warn(&self, message: &str) {
        malipo::plugin::log::write(malipo::plugin::log::Level::Warn, message);
    }

    fn progress(&self, done: u64, total: Option<u64>, message: &str) {
        progress(done, total, Some(message));
    }
}
