//! Malipo's plugin runtime: loads WebAssembly components, keeps live
//! instances per tenant and plugin, runs each call inside limits and a
//! transaction on the tenant's file, and grants plugins their capabilities
//! (storage, events, outbound HTTP, mail, secrets, Daraja credentials).
//!
//! It builds on the foundations and storage only. It knows nothing of
//! operations, permissions or channels and has no HTTP-server dependency:
//! the compiler keeps it so (docs/ARCHITECTURE.md, "Layers").
#![forbid(unsafe_code)]

pub mod daraja_certs;
pub mod plugins;
