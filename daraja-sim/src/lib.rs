//! Offline emulator of Safaricom's M-Pesa Daraja sandbox.
//!
//! Serves OAuth, M-Pesa Express (STK push + query), B2C v1/v3, Transaction Status, Account
//! Balance, Reversal and C2B register/simulate with Daraja's wire quirks, fires callbacks
//! asynchronously, supports outcome control and fault injection, and records all traffic.
//!
//! ```no_run
//! # async fn demo() -> Result<(), daraja_sim::Error> {
//! let running = daraja_sim::start(daraja_sim::Config::default()).await?;
//! let base = running.base_url();            // e.g. "http://127.0.0.1:41234"
//! let cert = running.certificate_pem();     // encrypt initiator passwords with this
//! running.handle().update_faults(|f| f.duplicate_callback = true);
//! # let _ = (base, cert);
//! running.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod api;
mod callbacks;
mod codes;
mod config;
mod error;
mod fields;
mod identity;
mod ids;
mod json;
mod records;
mod state;

pub use callbacks::CALLBACK_CONTENT_TYPE;
pub use config::{
    Code, Config, Faults, LimitPolicy, QueryPendingShape, SANDBOX_INITIATOR,
    SANDBOX_INITIATOR_PASSWORD, SANDBOX_PASSKEY, SANDBOX_SHORTCODE, SANDBOX_TEST_MSISDN,
    ShortcodeConfig, UrlRules,
};
pub use error::{ApiError, ControlError, Error, IdentityError};
pub use identity::{CredentialError, Identity, certificate_public_key, security_credential};
pub use records::{CallbackKind, CallbackRecord, DeliveryStatus, RequestRecord};
pub use state::{Handle, OutcomeAction, OutcomeApplied, OutcomeRequest, TransactionView};

use state::Shared;

/// `base64(shortcode + passkey + timestamp)`: the STK `Password` Daraja expects.
pub fn stk_password(short_code: &str, passkey: &str, timestamp: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{short_code}{passkey}{timestamp}"))
}

/// Current `YYYYMMDDHHmmss` timestamp in Nairobi time (as Daraja clients send it).
pub fn timestamp_now() -> String {
    ids::timestamp14(ids::now())
}

/// An emulator instance that is configured but not yet listening.
pub struct Emulator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").finish_non_exhaustive()
    }
}

impl Emulator {
    /// Builds an emulator. Generates an RSA-2048 identity if `config.identity` is `None`
    /// (CPU-heavy: prefer [`start`], which generates it off the async threads).
    pub fn new(config: Config) -> Result<Emulator, Error> {
        let identity = match config.identity.clone() {
            Some(identity) => identity,
            None => Identity::generate()?,
        };
        Emulator::with_identity(config, identity)
    }

    fn with_identity(config: Config, identity: Identity) -> Result<Emulator, Error> {
        let http = reqwest::Client::builder()
            .timeout(config.callback_timeout)
            .no_proxy()
            .user_agent("daraja-sim")
            .build()
            .map_err(|e| Error::HttpClient(e.to_string()))?;
        Ok(Emulator {
            shared: Arc::new(Shared::new(config, identity, http)),
        })
    }

    /// Control handle (works before and after [`Emulator::start`]).
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The axum router, to mount the emulator inside another server instead of [`Emulator::start`].
    pub fn router(&self) -> axum::Router {
        api::router(Arc::clone(&self.shared))
    }

    /// Binds `config.listen` and serves in a background tokio task.
    pub async fn start(self) -> Result<Running, Error> {
        let addr = self.shared.cfg.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = self.router();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "daraja-sim server stopped");
            }
        });
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            local.ip().to_string()
        };
        let base_url = match local {
            SocketAddr::V4(_) => format!("http://{host}:{}", local.port()),
            SocketAddr::V6(_) if host == "127.0.0.1" => format!("http://{host}:{}", local.port()),
            SocketAddr::V6(_) => format!("http://[{host}]:{}", local.port()),
        };
        tracing::info!(%base_url, "daraja-sim listening");
        Ok(Running {
            base_url,
            addr: local,
            handle: self.handle(),
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// Builds and starts an emulator (key generation runs on a blocking thread).
pub async fn start(config: Config) -> Result<Running, Error> {
    let identity = match config.identity.clone() {
        Some(identity) => identity,
        None => tokio::task::spawn_blocking(Identity::generate)
            .await
            .map_err(|e| Error::Identity(IdentityError::Key(e.to_string())))??,
    };
    Emulator::with_identity(config, identity)?.start().await
}

/// A running emulator. Dropping it stops the server and cancels pending callbacks.
pub struct Running {
    base_url: String,
    addr: SocketAddr,
    handle: Handle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// `http://127.0.0.1:<port>` — use it where a client expects `https://sandbox.safaricom.co.ke`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Control handle (faults, outcomes, flush, records, merchants).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The certificate (PEM) clients must encrypt initiator passwords with.
    pub fn certificate_pem(&self) -> &str {
        self.handle.certificate_pem()
    }

    /// Recorded inbound requests.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.handle.requests()
    }

    /// Recorded outbound callbacks.
    pub fn callbacks(&self) -> Vec<CallbackRecord> {
        self.handle.callbacks()
    }

    /// Stops accepting requests, cancels pending callbacks and waits (up to 5 s) for the server task.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Dropping the jobs' senders ends their timers.
        self.handle.shared.lock().pending.clear();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
