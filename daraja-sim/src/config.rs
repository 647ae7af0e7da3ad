//! Emulator configuration: listen address, timing, strictness, known merchants, initiators,
//! apps, outcome rules and the initial fault set.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::Identity;

/// Passkey of Daraja's public sandbox shortcode 174379 (Lipa Na M-Pesa Online test till).
pub const SANDBOX_PASSKEY: &str =
    "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";
/// Daraja's public STK sandbox shortcode.
pub const SANDBOX_SHORTCODE: &str = "174379";
/// Daraja's public sandbox initiator name.
pub const SANDBOX_INITIATOR: &str = "testapi";
/// Password of the sandbox initiator `testapi` as published on the Daraja test-credentials page.
pub const SANDBOX_INITIATOR_PASSWORD: &str = "Safaricom999!*!";
/// The sandbox test MSISDN that never approves a push: it always ends in 1037.
pub const SANDBOX_TEST_MSISDN: &str = "254708374149";

/// A Daraja result code: numeric (`0`, `1032`) or textual (`"R000002"`, `"SFC_IC0003"`).
///
/// Deserializes from a JSON number or string; a string made only of digits becomes numeric.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// Numeric code, emitted as a JSON number in callbacks.
    Num(i64),
    /// Textual code, always emitted as a JSON string.
    Text(String),
}

impl Code {
    /// Whether this is the success code `0`.
    pub fn is_success(&self) -> bool {
        matches!(self, Code::Num(0))
    }

    /// Parses a code from text: digits become [`Code::Num`].
    pub fn parse(s: &str) -> Code {
        let t = s.trim();
        match t.parse::<i64>() {
            Ok(n) => Code::Num(n),
            Err(_) => Code::Text(t.to_owned()),
        }
    }
}

impl From<i64> for Code {
    fn from(n: i64) -> Self {
        Code::Num(n)
    }
}

impl From<&str> for Code {
    fn from(s: &str) -> Self {
        Code::parse(s)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Num(n) => write!(f, "{n}"),
            Code::Text(s) => f.write_str(s),
        }
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Code::Num(n) => s.serialize_i64(*n),
            Code::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Code::Num)
                .ok_or_else(|| serde::de::Error::custom("result code must be an integer")),
            serde_json::Value::String(s) if !s.trim().is_empty() => Ok(Code::parse(&s)),
            _ => Err(serde::de::Error::custom(
                "result code must be a number or a non-empty string",
            )),
        }
    }
}

/// Shape of the STK-query answer while a push is still pending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryPendingShape {
    /// HTTP 500 `{"requestId":<CheckoutRequestID>,"errorCode":"500.001.1001","errorMessage":"The transaction is being processed"}` (2018 onwards).
    Classic,
    /// HTTP 200 with `"ResultCode":"4999","ResultDesc":"The transaction is still under processing"` (sandbox 2026).
    #[default]
    Modern,
}

/// Runtime fault modes. `PUT /simulator/faults` replaces the whole set (absent fields = off).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Complete transactions but never POST their callbacks (recorded as `suppressed`).
    pub no_callback: bool,
    /// POST every callback twice with an identical body.
    pub duplicate_callback: bool,
    /// Deliver the callback before the synchronous answer is returned (the handler waits for it).
    pub callback_before_response: bool,
    /// Override the configured callback delay for requests made while set.
    pub delay_ms: Option<u64>,
    /// Every other STK query answers HTTP 500 `500.001.1001` (the first one after enabling fails).
    pub flaky_query: bool,
    /// Allow at most N Daraja API requests per rolling second; excess gets `500.003.02`.
    pub spike_arrest: Option<u32>,
    /// STK-query answer shape while a push is pending.
    pub query_pending_shape: QueryPendingShape,
    /// Every Daraja request is processed, then its synchronous answer waits
    /// this long (a slow Daraja; the work is done even if the caller gives up).
    pub response_delay_ms: Option<u64>,
    /// The next N Daraja requests answer HTTP 500 `500.001.1001` without being
    /// processed (counted from the `PUT` that sets it).
    pub http_500_burst: Option<u32>,
    /// Every Daraja request answers `500.003.03 Error Occurred: Quota Violation`
    /// without being processed.
    pub quota_violation: bool,
}

/// What to do with a 12+ character `AccountReference` on STK push.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitPolicy {
    /// Accept as is.
    Ignore,
    /// Reject synchronously with `400.002.02 Bad Request - Invalid <Field>`.
    #[default]
    Reject,
    /// Accept, then fail asynchronously with ResultCode 1025 (prompt too long).
    AsyncFail,
}

/// Rules applied to merchant-supplied callback URLs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UrlRules {
    /// Reject hosts containing uppercase letters (observed on the sandbox for CallBackURL).
    pub reject_uppercase_host: bool,
    /// Reject URLs that are not `https://`.
    pub require_https: bool,
    /// Case-insensitive words that may not appear anywhere in the URL.
    pub forbidden_keywords: Vec<String>,
}

impl Default for UrlRules {
    fn default() -> Self {
        UrlRules {
            reject_uppercase_host: true,
            require_https: false,
            forbidden_keywords: Vec::new(),
        }
    }
}

impl UrlRules {
    /// The keyword list the C2B Register URL documentation forbids.
    pub fn c2b_documented() -> Self {
        UrlRules {
            reject_uppercase_host: true,
            require_https: false,
            forbidden_keywords: [
                "m-pesa",
                "mpesa",
                "safaricom",
                "exe",
                "exec",
                "cmd",
                "sql",
                "query",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        }
    }
}

/// A merchant shortcode known to the emulator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShortcodeConfig {
    /// The shortcode (paybill, till/HO number or B2C shortcode).
    pub short_code: String,
    /// Lipa Na M-Pesa Online passkey; `None` = not enabled for STK in strict mode, default passkey otherwise.
    #[serde(default)]
    pub passkey: Option<String>,
    /// Public name used in result parameters (`"600992 - Safaricom Daraja 992"`).
    #[serde(default)]
    pub name: Option<String>,
    /// Whether C2B validation requests are sent to the registered ValidationURL (off by default, as on Daraja).
    #[serde(default)]
    pub c2b_external_validation: bool,
}

impl ShortcodeConfig {
    /// A shortcode with an STK passkey.
    pub fn with_passkey(short_code: &str, passkey: &str) -> Self {
        ShortcodeConfig {
            short_code: short_code.to_owned(),
            passkey: Some(passkey.to_owned()),
            name: None,
            c2b_external_validation: false,
        }
    }

    /// A shortcode without a passkey.
    pub fn plain(short_code: &str) -> Self {
        ShortcodeConfig {
            short_code: short_code.to_owned(),
            passkey: None,
            name: None,
            c2b_external_validation: false,
        }
    }
}

/// Configuration of an [`crate::Emulator`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to bind; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Delay between a request and its callback. Default 200 ms.
    pub callback_delay: Duration,
    /// Timeout of one callback POST. Default 10 s.
    pub callback_timeout: Duration,
    /// Strict mode: only configured apps (if any), shortcodes and initiators exist.
    pub strict: bool,
    /// Accept any well-formed base64 SecurityCredential without decrypting it.
    pub lenient_credentials: bool,
    /// Passkey used for shortcodes that have none registered (non-strict mode). Default: the sandbox passkey.
    pub default_passkey: String,
    /// Known shortcodes. Default: 174379 with the sandbox passkey.
    pub shortcodes: Vec<ShortcodeConfig>,
    /// Also know the shared sandbox B2C/C2B shortcodes 600000, 600100..=600999 and 603021
    /// (without passkey), in strict mode too. Default true.
    pub sandbox_shortcodes: bool,
    /// Initiator name → password. Default `testapi` → `Safaricom999!*!`.
    pub initiators: BTreeMap<String, String>,
    /// Password assumed for unknown initiators in non-strict mode. Default `Safaricom999!*!`.
    pub default_initiator_password: String,
    /// Consumer key → consumer secret. Only enforced in strict mode when non-empty.
    pub apps: BTreeMap<String, String>,
    /// Token lifetime in seconds (reported as `expires_in`). Default 3599.
    pub token_ttl_secs: u64,
    /// Emit `expires_in` as a JSON number instead of the observed string.
    pub expires_in_as_number: bool,
    /// Issuing a token invalidates the app's previous tokens (portal FAQ; unverified). Default false.
    pub invalidate_previous_token: bool,
    /// STK outcome by PhoneNumber. Default 254708374149 → 1037.
    pub phone_outcomes: BTreeMap<String, Code>,
    /// STK outcome by amount (checked before `phone_outcomes`). Default 1 → 1, 1032 → 1032, 1037 → 1037, 2001 → 2001.
    pub amount_outcomes: BTreeMap<u64, Code>,
    /// Policy for AccountReference longer than 12 characters. Default reject.
    pub account_reference_limit: LimitPolicy,
    /// Rules for STK CallBackURL and Result/QueueTimeOut URLs.
    pub callback_url_rules: UrlRules,
    /// Rules for C2B ConfirmationURL/ValidationURL (default: documented keyword list).
    pub c2b_url_rules: UrlRules,
    /// Reject a second push to an MSISDN with a pending push (`Unable to lock subscriber`). Default false.
    pub lock_subscriber: bool,
    /// Initial fault set.
    pub faults: Faults,
    /// RSA key and certificate; `None` generates a fresh RSA-2048 pair at start.
    pub identity: Option<Identity>,
}

impl Default for Config {
    fn default() -> Self {
        let mut initiators = BTreeMap::new();
        initiators.insert(
            SANDBOX_INITIATOR.to_owned(),
            SANDBOX_INITIATOR_PASSWORD.to_owned(),
        );
        let mut phone_outcomes = BTreeMap::new();
        phone_outcomes.insert(SANDBOX_TEST_MSISDN.to_owned(), Code::Num(1037));
        let amount_outcomes = [1, 1032, 1037, 2001]
            .into_iter()
            .map(|a| (a, Code::Num(a as i64)))
            .collect();
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            callback_delay: Duration::from_millis(200),
            callback_timeout: Duration::from_secs(10),
            strict: false,
            lenient_credentials: false,
            default_passkey: SANDBOX_PASSKEY.to_owned(),
            shortcodes: vec![ShortcodeConfig::with_passkey(
                SANDBOX_SHORTCODE,
                SANDBOX_PASSKEY,
            )],
            sandbox_shortcodes: true,
            initiators,
            default_initiator_password: SANDBOX_INITIATOR_PASSWORD.to_owned(),
            apps: BTreeMap::new(),
            token_ttl_secs: 3599,
            expires_in_as_number: false,
            invalidate_previous_token: false,
            phone_outcomes,
            amount_outcomes,
            account_reference_limit: LimitPolicy::Reject,
            callback_url_rules: UrlRules::default(),
            c2b_url_rules: UrlRules::c2b_documented(),
            lock_subscriber: false,
            faults: Faults::default(),
            identity: None,
        }
    }
}

impl Config {
    /// Default configuration with the callback delay set.
    pub fn with_delay(delay: Duration) -> Self {
        Config {
            callback_delay: delay,
            ..Config::default()
        }
    }
}
