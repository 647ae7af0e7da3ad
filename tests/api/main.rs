//! Black-box tests: the real `malipo` binary on a random port, with its own
//! data directory, real SQLite files and real compiled `.wasm` plugins,
//! driven over real HTTP.

mod alerts;
mod audit;
mod auth;
mod billing;
mod configuration;
mod data;
mod email;
mod errors;
mod events;
mod first_days;
mod helpers;
mod isolation;
mod lifecycle;
mod mcp;
mod migrations;
mod mpesa;
mod notifications;
mod onboarding;
mod operations;
mod operator;
mod operator_safety;
mod sandbox;
mod settings;
mod shop_words;
mod shutdown;
mod webhooks;
