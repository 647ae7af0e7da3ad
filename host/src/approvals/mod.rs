//! Approvals: money out asked for by an API key or an AI assistant waits
//! for a person. [`service`] holds the gate and the queue, [`routes`] the
//! operations that list, approve and reject.

pub mod routes;
pub mod service;
