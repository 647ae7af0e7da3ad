//! Shared emulator state (apps, tokens, merchants, initiators, transactions, balances, pending
//! callbacks, records, faults) and the public [`Handle`] used to control it at runtime.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Code, Config, Faults, ShortcodeConfig};
use crate::error::{ApiError, ControlError};
use crate::identity::Identity;
use crate::records::{CallbackRecord, RequestRecord};

/// Which invalid-token envelope an endpoint uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenFlavor {
    /// `404.001.03 Invalid Access Token` (STK, C2B, reversal, status).
    NotFound,
    /// `401.002.01 Error Occurred - Invalid Access Token - <token>` (B2C, account balance).
    Unauthorized,
}

/// What the emulator does when a pending transaction completes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeAction {
    /// Complete with the result code and POST the callback.
    #[default]
    Complete,
    /// Result APIs: POST a (modelled) Result envelope to QueueTimeOutURL instead of ResultURL.
    QueueTimeout,
    /// Complete with the result code but never POST the callback.
    NoCallback,
}

/// A chosen outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub code: Code,
    pub desc: Option<String>,
    pub action: OutcomeAction,
    /// Chosen through the control API/config rule (skips built-in lookups such as unknown receipts).
    pub explicit: bool,
}

impl Outcome {
    pub fn success() -> Outcome {
        Outcome {
            code: Code::Num(0),
            desc: None,
            action: OutcomeAction::Complete,
            explicit: false,
        }
    }

    pub fn code(code: Code) -> Outcome {
        Outcome {
            code,
            desc: None,
            action: OutcomeAction::Complete,
            explicit: false,
        }
    }
}

/// Request to pick the outcome of one or more transactions (`POST /simulator/outcomes`).
///
/// Give at least one selector. Ids (`checkout_request_id`, `originator_conversation_id`,
/// `conversation_id`) target one transaction: if it is pending its outcome changes now; if it
/// does not exist yet the outcome is kept for the request that will carry that id (B2C v3
/// `OriginatorConversationID`); if it already completed the call fails. `phone_number` and/or
/// `amount` change every matching pending transaction **and** become a rule for future requests
/// (consumed after `times` matches, unlimited if absent).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutcomeRequest {
    /// STK CheckoutRequestID.
    pub checkout_request_id: Option<String>,
    /// Result-API OriginatorConversationID.
    pub originator_conversation_id: Option<String>,
    /// Result-API ConversationID.
    pub conversation_id: Option<String>,
    /// MSISDN (STK PhoneNumber, B2C PartyB). Number or string.
    #[serde(deserialize_with = "de_opt_text")]
    pub phone_number: Option<String>,
    /// Whole amount.
    pub amount: Option<u64>,
    /// Result code (number or string). Required unless `action` is `queue_timeout`/`no_callback`.
    pub result_code: Option<Code>,
    /// Override of ResultDesc.
    pub result_desc: Option<String>,
    /// What to do at completion (default `complete`).
    pub action: Option<OutcomeAction>,
    /// Delay before the callback, counted from now for pending transactions.
    pub delay_ms: Option<u64>,
    /// For phone/amount rules: number of future requests the rule applies to.
    pub times: Option<u32>,
}

fn de_opt_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// What `set_outcome` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeApplied {
    /// Pending transactions whose outcome changed.
    pub applied_to: Vec<String>,
    /// Ids kept for requests that have not arrived yet.
    pub registered_ids: Vec<String>,
    /// Whether a phone/amount rule was stored for future requests.
    pub rule_stored: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub phone: Option<String>,
    pub amount: Option<u64>,
    pub outcome: Outcome,
    pub delay: Option<Duration>,
    pub remaining: Option<u32>,
}

pub(crate) struct Token {
    pub app: String,
    pub expires: Instant,
}

/// Account balances of a shortcode, in cents.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Accounts {
    pub working: i64,
    pub float: i64,
    pub utility: i64,
    pub charges_paid: i64,
    pub settlement: i64,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            working: 119_937_100,
            float: 0,
            utility: 895_926_960,
            charges_paid: -198_000,
            settlement: 0,
        }
    }
}

/// Final state of a transaction.
#[derive(Clone, Debug)]
pub(crate) struct Done {
    pub code: Code,
    pub desc: String,
    pub query_desc: String,
    pub receipt: Option<String>,
}

pub(crate) struct StkTx {
    pub checkout_id: String,
    pub merchant_id: String,
    pub shortcode: String,
    pub phone: String,
    pub amount: u64,
    pub callback_url: String,
    pub outcome: Outcome,
    pub job: Option<u64>,
    pub done: Option<Done>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ResultKind {
    B2c,
    TransactionStatus,
    AccountBalance,
    Reversal,
}

pub(crate) struct ResultTx {
    pub kind: ResultKind,
    pub conversation_id: String,
    pub originator_conversation_id: String,
    pub result_url: String,
    pub queue_timeout_url: String,
    /// PartyA (B2C, status, balance) or ReceiverParty (reversal).
    pub shortcode: String,
    /// B2C PartyB.
    pub msisdn: Option<String>,
    pub amount: Option<u64>,
    pub command_id: String,
    /// Status/reversal: TransactionID; status: OriginalConversationID.
    pub transaction_id: Option<String>,
    pub original_conversation_id: Option<String>,
    pub occasion: Option<String>,
    pub outcome: Outcome,
    pub job: Option<u64>,
    pub done: Option<Done>,
}

pub(crate) struct Receipt {
    pub receipt: String,
    pub amount: u64,
    pub reason: String,
    pub debit_party: String,
    pub credit_party: String,
    pub shortcode: String,
    pub originator_conversation_id: String,
    pub conversation_id: String,
    pub at: OffsetDateTime,
    pub reversed: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct C2bRegistration {
    pub confirmation_url: String,
    pub validation_url: String,
    pub response_type: String,
    pub version: u8,
}

pub(crate) struct C2bTx {
    pub trans_id: String,
    pub shortcode: String,
    pub command_id: String,
    pub amount: u64,
    pub msisdn: String,
    pub bill_ref: String,
    pub job: Option<u64>,
    pub done: bool,
}

/// Which transaction a pending job completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Stk(String),
    Result(String),
    C2b(String),
}

impl Target {
    pub fn key(&self) -> &str {
        match self {
            Target::Stk(k) | Target::Result(k) | Target::C2b(k) => k,
        }
    }
}

pub(crate) struct Job {
    pub target: Target,
    pub deadline: watch::Sender<Instant>,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub apps: HashMap<String, String>,
    pub tokens: HashMap<String, Token>,
    pub shortcodes: HashMap<String, ShortcodeConfig>,
    pub initiators: HashMap<String, String>,
    pub faults: Faults,
    pub rules: Vec<Rule>,
    pub id_outcomes: HashMap<String, (Outcome, Option<Duration>)>,
    pub stk: HashMap<String, StkTx>,
    pub results: HashMap<String, ResultTx>,
    pub originator_index: HashMap<String, String>,
    pub receipts: HashMap<String, Receipt>,
    pub c2b_urls: HashMap<String, C2bRegistration>,
    pub c2b: HashMap<String, C2bTx>,
    pub balances: HashMap<String, Accounts>,
    pub pending: HashMap<u64, Job>,
    pub next_job: u64,
    pub requests: Vec<RequestRecord>,
    pub callbacks: Vec<CallbackRecord>,
    pub query_count: u64,
    pub spike: VecDeque<Instant>,
    /// Requests of the `http_500_burst` fault still to fail.
    pub burst_left: u32,
}

impl Inner {
    /// Resolves the outcome for a new request: id outcome, then control rules (newest first),
    /// then (if `config_rules`, i.e. STK) the configured amount and MSISDN rules; `None` = built-in default.
    pub fn take_outcome(
        &mut self,
        cfg: &Config,
        ids: &[&str],
        phone: Option<&str>,
        amount: Option<u64>,
        config_rules: bool,
    ) -> (Option<Outcome>, Option<Duration>) {
        for id in ids {
            if let Some((o, d)) = self.id_outcomes.remove(*id) {
                return (Some(o), d);
            }
        }
        let matching = self.rules.iter().rposition(|r| {
            (r.phone.is_some() || r.amount.is_some())
                && r.phone.as_deref().is_none_or(|p| Some(p) == phone)
                && r.amount.is_none_or(|a| Some(a) == amount)
        });
        if let Some(i) = matching {
            let rule = &mut self.rules[i];
            let found = (Some(rule.outcome.clone()), rule.delay);
            if let Some(n) = rule.remaining.as_mut() {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.rules.remove(i);
                }
            }
            return found;
        }
        if !config_rules {
            return (None, None);
        }
        if let Some(code) = amount.and_then(|a| cfg.amount_outcomes.get(&a)) {
            return (
                Some(Outcome {
                    explicit: true,
                    ..Outcome::code(code.clone())
                }),
                None,
            );
        }
        if let Some(code) = phone.and_then(|p| cfg.phone_outcomes.get(p)) {
            return (
                Some(Outcome {
                    explicit: true,
                    ..Outcome::code(code.clone())
                }),
                None,
            );
        }
        (None, None)
    }

    pub fn accounts(&mut self, shortcode: &str) -> &mut Accounts {
        self.balances.entry(shortcode.to_owned()).or_default()
    }

    pub fn shortcode_name(&self, shortcode: &str) -> String {
        match self.shortcodes.get(shortcode).and_then(|s| s.name.clone()) {
            Some(name) => format!("{shortcode} - {name}"),
            None => {
                let tail = &shortcode[shortcode.len().saturating_sub(3)..];
                format!("{shortcode} - Safaricom Daraja {tail}")
            }
        }
    }
}

/// Customer display name used in result parameters.
pub(crate) fn customer_name(msisdn: &str) -> String {
    format!("{msisdn} - John Doe")
}

/// State shared by handlers, timers and the [`Handle`].
pub(crate) struct Shared {
    pub cfg: Config,
    pub identity: Identity,
    pub http: reqwest::Client,
    inner: Mutex<Inner>,
    seq: AtomicU64,
}

impl Shared {
    pub fn new(mut cfg: Config, identity: Identity, http: reqwest::Client) -> Shared {
        cfg.identity = None;
        let mut inner = Inner {
            faults: cfg.faults.clone(),
            ..Inner::default()
        };
        inner.apps = cfg
            .apps
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        inner.initiators = cfg
            .initiators
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if cfg.sandbox_shortcodes {
            // Sandbox shortcodes known out of the box.
            for code in std::iter::once(600_000u32)
                .chain(600_100..=600_999)
                .chain([603_021])
            {
                let code = code.to_string();
                inner
                    .shortcodes
                    .insert(code.clone(), ShortcodeConfig::plain(&code));
            }
        }
        for sc in &cfg.shortcodes {
            inner.shortcodes.insert(sc.short_code.clone(), sc.clone());
        }
        Shared {
            cfg,
            identity,
            http,
            inner: Mutex::new(inner),
            seq: AtomicU64::new(1),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    pub fn push_request(&self, rec: RequestRecord) {
        let mut inner = self.lock();
        let pos = inner.requests.partition_point(|r| r.seq < rec.seq);
        inner.requests.insert(pos, rec);
    }

    pub fn push_callback(&self, rec: CallbackRecord) {
        self.lock().callbacks.push(rec);
    }

    /// Spike arrest then bearer-token check, as the Apigee gateway does before the backend.
    pub fn gate(&self, headers: &HeaderMap, flavor: TokenFlavor) -> Result<(), ApiError> {
        let mut inner = self.lock();
        if let Some(limit) = inner.faults.spike_arrest {
            let now = Instant::now();
            while inner
                .spike
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                inner.spike.pop_front();
            }
            if inner.spike.len() >= limit as usize {
                return Err(ApiError::new(
                    "500.003.02",
                    "Error Occurred: Spike Arrest Violation",
                ));
            }
            inner.spike.push_back(now);
        }
        let raw = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim();
        let Some(token) = raw
            .strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("bearer "))
            .map(str::trim)
        else {
            return Err(ApiError::new("404.001.04", "Invalid Authentication Header"));
        };
        let valid = inner
            .tokens
            .get(token)
            .is_some_and(|t| t.expires > Instant::now());
        if valid {
            return Ok(());
        }
        Err(match flavor {
            TokenFlavor::NotFound => ApiError::new("404.001.03", "Invalid Access Token"),
            TokenFlavor::Unauthorized => ApiError::new(
                "401.002.01",
                format!("Error Occurred - Invalid Access Token - {token}"),
            ),
        })
    }

    /// Whether `shortcode` exists for strict-mode checks.
    pub fn shortcode_known(&self, inner: &Inner, shortcode: &str) -> bool {
        !self.cfg.strict || inner.shortcodes.contains_key(shortcode)
    }

    /// Effective callback delay for a new request.
    pub fn delay(&self, inner: &Inner, chosen: Option<Duration>) -> Duration {
        chosen
            .or(inner.faults.delay_ms.map(Duration::from_millis))
            .unwrap_or(self.cfg.callback_delay)
    }
}

/// Summary of a transaction known to the emulator (`GET /simulator/transactions`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransactionView {
    /// `stk`, `b2c`, `transaction_status`, `account_balance`, `reversal` or `c2b`.
    pub kind: String,
    /// CheckoutRequestID, ConversationID or C2B TransID.
    pub id: String,
    /// MerchantRequestID (STK) or OriginatorConversationID.
    pub secondary_id: String,
    /// `pending` or `completed`.
    pub status: String,
    /// Final result code, once completed.
    pub result_code: Option<Code>,
    /// Final ResultDesc, once completed.
    pub result_desc: Option<String>,
    /// M-Pesa receipt, if the transaction moved money.
    pub receipt: Option<String>,
    /// Amount, if any.
    pub amount: Option<u64>,
    /// MSISDN involved, if any.
    pub phone: Option<String>,
}

/// Runtime control of a running emulator: faults, outcomes, callbacks, records, merchants.
/// Cheap to clone; all methods are thread-safe.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// The emulator's certificate (PEM) to encrypt initiator passwords with.
    pub fn certificate_pem(&self) -> &str {
        self.shared.identity.certificate_pem()
    }

    /// The emulator's key and certificate.
    pub fn identity(&self) -> &Identity {
        &self.shared.identity
    }

    /// Current fault set.
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.clone()
    }

    /// Replaces the fault set.
    pub fn set_faults(&self, faults: Faults) {
        let mut inner = self.shared.lock();
        if inner.faults.spike_arrest != faults.spike_arrest {
            inner.spike.clear();
        }
        if inner.faults.flaky_query != faults.flaky_query {
            inner.query_count = 0;
        }
        inner.burst_left = faults.http_500_burst.unwrap_or(0);
        inner.faults = faults;
    }

    /// Edits the fault set in place.
    pub fn update_faults(&self, edit: impl FnOnce(&mut Faults)) {
        let mut faults = self.faults();
        edit(&mut faults);
        self.set_faults(faults);
    }

    /// Invalidates every token issued so far; returns how many there were.
    pub fn invalidate_tokens(&self) -> usize {
        let mut inner = self.shared.lock();
        let n = inner.tokens.len();
        inner.tokens.clear();
        n
    }

    /// Registers (or replaces) an STK passkey for a shortcode; the shortcode becomes known in strict mode.
    pub fn register_shortcode(&self, short_code: &str, passkey: Option<&str>) {
        let mut inner = self.shared.lock();
        let entry = inner
            .shortcodes
            .entry(short_code.to_owned())
            .or_insert_with(|| ShortcodeConfig::plain(short_code));
        entry.passkey = passkey.map(str::to_owned);
    }

    /// Enables/disables external C2B validation for a shortcode.
    pub fn set_c2b_validation(&self, short_code: &str, enabled: bool) {
        let mut inner = self.shared.lock();
        let entry = inner
            .shortcodes
            .entry(short_code.to_owned())
            .or_insert_with(|| ShortcodeConfig::plain(short_code));
        entry.c2b_external_validation = enabled;
    }

    /// Registers (or replaces) an initiator's password.
    pub fn register_initiator(&self, name: &str, password: &str) {
        self.shared
            .lock()
            .initiators
            .insert(name.to_owned(), password.to_owned());
    }

    /// Registers (or replaces) an app's consumer key/secret (enforced in strict mode).
    pub fn register_app(&self, consumer_key: &str, consumer_secret: &str) {
        self.shared
            .lock()
            .apps
            .insert(consumer_key.to_owned(), consumer_secret.to_owned());
    }

    /// Picks an outcome; see [`OutcomeRequest`].
    pub fn set_outcome(&self, req: OutcomeRequest) -> Result<OutcomeApplied, ControlError> {
        crate::callbacks::set_outcome(&self.shared, req)
    }

    /// Removes every stored phone/amount rule and pre-registered id outcome.
    pub fn clear_outcomes(&self) {
        let mut inner = self.shared.lock();
        inner.rules.clear();
        inner.id_outcomes.clear();
    }

    /// Fires every pending callback now and waits for the deliveries; returns the transaction ids.
    pub async fn flush_callbacks(&self) -> Vec<String> {
        crate::callbacks::flush(&self.shared).await
    }

    /// Number of transactions whose callback is still pending.
    pub fn pending_callbacks(&self) -> usize {
        self.shared.lock().pending.len()
    }

    /// Every recorded inbound request, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }

    /// Every recorded outbound callback, oldest first.
    pub fn callbacks(&self) -> Vec<CallbackRecord> {
        self.shared.lock().callbacks.clone()
    }

    /// Forgets recorded requests and callbacks.
    pub fn clear_records(&self) {
        let mut inner = self.shared.lock();
        inner.requests.clear();
        inner.callbacks.clear();
    }

    /// Every transaction known to the emulator.
    pub fn transactions(&self) -> Vec<TransactionView> {
        crate::callbacks::transactions(&self.shared)
    }
}
