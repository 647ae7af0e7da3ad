//! Approvals: money out asked for by an API key or an AI assistant waits
//! for a person. [`service`] holds the gate and the queue; the operations
//! that list, approve and reject are the host's `approvals::routes`.

pub mod service;
