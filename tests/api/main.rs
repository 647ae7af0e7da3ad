//! Black-box tests: the real `malipo` binary on a random port, with its own
//! data directory, real SQLite files and real compiled `.wasm` plugins,
//! driven over real HTTP.

mod account_takeover;
mod admin_tenant_name;
mod alerts;
mod approval_reason;
mod audit;
mod auth;
mod billing;
mod callback_replay;
mod cli_json;
mod configuration;
mod data;
mod domain_proof;
mod email;
mod errors;
mod event_stream;
mod events;
mod first_days;
mod helpers;
mod invoice_pay_checks;
mod isolation;
mod key_limits;
mod lifecycle;
mod mcp;
mod memberships;
mod migrations;
mod money_exactly_once;
mod mpesa;
mod notifications;
mod onboarding;
mod openapi_shapes;
mod operations;
mod operator;
mod operator_safety;
mod plugin_isolation;
mod readme_walkthrough;
mod report_partition;
mod sandbox;
mod settings;
mod shop_words;
mod shutdown;
mod ssrf;
mod store_scope;
mod strict_input;
mod webhooks;
