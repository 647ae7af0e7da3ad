//! Operator surfaces: Prometheus metrics at `/metrics` ([`metrics`]), the
//! browsable API reference at `/docs` ([`docs`]) and alerts about tenants'
//! abnormal behaviour for super-admins ([`alerts`]).

pub mod docs;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Who may read `/metrics`: the operator's token, and whether the server
/// listens beyond loopback (then a token is required).
#[derive(Debug)]
pub struct Ops {
    /// `MALIPO_METRICS_TOKEN`: when set, `/metrics` needs
    /// `Authorization: Bearer <token>`.
    metrics_token: Option<String>,
    /// Whether the listener may be reached from other machines. True until
    /// [`Ops::set_listen`] says otherwise: an unknown address is treated as
    /// exposed.
    exposed: AtomicBool,
}

impl Default for Ops {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Ops {
    /// With a metrics token (none: open on loopback, refused elsewhere).
    pub fn new(metrics_token: Option<String>) -> Self {
        Self {
            metrics_token: metrics_token.filter(|t| !t.trim().is_empty()),
            exposed: AtomicBool::new(true),
        }
    }

    /// Reads `MALIPO_METRICS_TOKEN`.
    pub fn from_env() -> Self {
        Self::new(crate::config::var("MALIPO_METRICS_TOKEN").ok())
    }

    /// Records the address the server listens on.
    pub fn set_listen(&self, addr: SocketAddr) {
        self.exposed
            .store(!addr.ip().is_loopback(), Ordering::Relaxed);
    }

    /// The metrics token, if the operator set one.
    pub fn metrics_token(&self) -> Option<&str> {
        self.metrics_token.as_deref()
    }

    /// Whether the listener is on a non-loopback (or unknown) address.
    pub fn exposed(&self) -> bool {
        self.exposed.load(Ordering::Relaxed)
    }
}
