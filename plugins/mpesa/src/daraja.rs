//! The Daraja client: OAuth tokens cached per tenant, authenticated JSON calls retried once on a rejected token, and Daraja's number-or-string values.

use std::cell::RefCell;

use malipo_plugin_sdk::{Error, Result, Sql};
use serde_json::{Value, json};

use crate::codec;
use crate::credentials::{Credentials, OAUTH_TOKEN};
use crate::env::{Env, HttpRequest, unavailable, upstream};

/// Wait for an OAuth answer.
const OAUTH_TIMEOUT_MS: u32 = 10_000;
/// Wait for an API answer.
const API_TIMEOUT_MS: u32 = 20_000;
/// A cached token is used until this long before it expires.
const TOKEN_MARGIN_MS: i64 = 60_000;
/// Token lifetime assumed when Daraja does not say.
const DEFAULT_EXPIRES_IN: i64 = 3599;
/// Error codes meaning "the access token was refused" (STK/C2B/reversal, B2C/balance).
const TOKEN_REFUSED: [&str; 2] = ["404.001.03", "401.002.01"];

/// A fetched OAuth token.
#[derive(Debug, Clone)]
pub struct Token {
    pub access_token: String,
    pub expires_in: i64,
}

/// One answer from Daraja.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The body as JSON; `Null` when it was empty or not JSON.
    pub json: Value,
}

impl Reply {
    /// Daraja's error envelope `{requestId, errorCode, errorMessage}`, if this is one.
    pub fn error(&self) -> Option<(String, String)> {
        let code = self.json.get("errorCode").and_then(code_text)?;
        let message = self
            .json
            .get("errorMessage")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Some((code, message.to_owned()))
    }

    /// A 2xx answer whose `ResponseCode` (if any) is 0.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
            && self.error().is_none()
            && self.json.is_object()
            && self
                .json
                .get("ResponseCode")
                .and_then(code_text)
                .is_none_or(|c| c == "0")
    }

    /// What Daraja said, in one line: its error code and message, or the
    /// response code and description, or the HTTP status.
    pub fn describe(&self) -> String {
        if let Some((code, message)) = self.error() {
            return if message.is_empty() {
                code
            } else {
                format!("{code} {message}")
            };
        }
        if let Some(code) = self.json.get("ResponseCode").and_then(code_text) {
            let description = self
                .json
                .get("ResponseDescription")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return format!("ResponseCode {code} {description}")
                .trim_end()
                .to_owned();
        }
        format!("HTTP {} without a Daraja answer", self.status)
    }

    /// The answer of an accepted request, or `upstream_error` with Daraja's words.
    pub fn into_accepted(self, what: &str) -> Result<Value> {
        if self.accepted() {
            Ok(self.json)
        } else {
            Err(upstream(format!(
                "Daraja refused the {what}: {}",
                self.describe()
            )))
        }
    }

    fn token_refused(&self) -> bool {
        match self.error() {
            Some((code, _)) => TOKEN_REFUSED.contains(&code.as_str()),
            None => self.status == 401,
        }
    }
}

/// A Daraja value that may be a JSON number or a string (`ResultCode`,
/// `ResponseCode`, `errorCode`), as text; whole floats lose their `.0`.
pub fn code_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

/// A Daraja amount (number such as `1.00`, or string such as `"5.00"`) in shillings.
pub fn amount_value(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// Talks to the tenant's Daraja server with its credentials.
pub struct Daraja<'a> {
    env: &'a dyn Env,
    credentials: &'a Credentials,
    /// The token this call uses, once known.
    token: RefCell<Option<String>>,
    /// A token failure, remembered so one call asks only once.
    failure: RefCell<Option<Error>>,
}

impl<'a> Daraja<'a> {
    pub fn new(env: &'a dyn Env, credentials: &'a Credentials) -> Self {
        Self {
            env,
            credentials,
            token: RefCell::new(None),
            failure: RefCell::new(None),
        }
    }

    pub fn credentials(&self) -> &Credentials {
        self.credentials
    }

    fn base(&self) -> &str {
        &self.credentials.target.base_url
    }

    /// The access token: this call's, else the cached one while it has
    /// more than a minute left, else a fresh one.
    pub fn token(&self) -> Result<String> {
        if let Some(token) = self.token.borrow().clone() {
            return Ok(token);
        }
        if let Some(error) = self.failure.borrow().clone() {
            return Err(error);
        }
        let now = i64::try_from(self.env.ctx().now_ms).unwrap_or(i64::MAX);
        let fresh = self.env.db().query(
            "SELECT 1 AS fresh FROM mpesa_tokens WHERE base_url = ?1 AND expires_at_ms > ?2",
            &[
                Sql::from(self.base()),
                Sql::Integer(now.saturating_add(TOKEN_MARGIN_MS)),
            ],
        )?;
        if !fresh.is_empty()
            && let Some(token) = self.env.secret(OAUTH_TOKEN).filter(|t| !t.is_empty())
        {
            *self.token.borrow_mut() = Some(token.clone());
            return Ok(token);
        }
        match self.fresh_token() {
            Ok(token) => Ok(token.access_token),
            Err(error) => {
                *self.failure.borrow_mut() = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Fetches a new token from `/oauth/v1/generate` and caches it.
    pub fn fresh_token(&self) -> Result<Token> {
        let basic = codec::encode(
            format!(
                "{}:{}",
                self.credentials.consumer_key, self.credentials.consumer_secret
            )
            .as_bytes(),
        );
        let response = self
            .env
            .http(HttpRequest {
                method: "GET",
                url: format!(
                    "{}/oauth/v1/generate?grant_type=client_credentials",
                    self.base()
                ),
                headers: vec![
                    ("Authorization".to_owned(), format!("Basic {basic}")),
                    ("Accept".to_owned(), "application/json".to_owned()),
                ],
                body: None,
                timeout_ms: OAUTH_TIMEOUT_MS,
            })
            .map_err(|err| {
                unavailable(format!(
                    "Daraja could not be reached for an access token: {err}"
                ))
            })?;
        let reply = Reply {
            status: response.status,
            json: serde_json::from_str(&response.body).unwrap_or(Value::Null),
        };
        let access_token = reply
            .json
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && (200..300).contains(&reply.status));
        let Some(access_token) = access_token else {
            return Err(upstream(format!(
                "Daraja refused the consumer key and secret: {}",
                reply.describe()
            )));
        };
        let expires_in = reply
            .json
            .get("expires_in")
            .and_then(code_text)
            .and_then(|t| t.parse::<i64>().ok());
        let expires_in = expires_in.filter(|s| *s > 0).unwrap_or(DEFAULT_EXPIRES_IN);
        let ctx = self.env.ctx();
        let now = i64::try_from(ctx.now_ms).unwrap_or(i64::MAX);
        // One sealed token at a time: it belongs to this server's row only.
        self.env.db().execute(
            "DELETE FROM mpesa_tokens WHERE base_url <> ?1",
            &[Sql::from(self.base())],
        )?;
        self.env.put_secret(OAUTH_TOKEN, access_token)?;
        self.env.db().execute(
            "INSERT INTO mpesa_tokens (base_url, access_token, expires_at_ms, fetched_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (base_url) DO UPDATE SET access_token = excluded.access_token, \
             expires_at_ms = excluded.expires_at_ms, fetched_at = excluded.fetched_at",
            &[
                Sql::from(self.base()),
                Sql::from(""),
                Sql::Integer(now.saturating_add(expires_in.saturating_mul(1000))),
                Sql::from(crate::clock::rfc3339_ms(ctx.now_ms)),
            ],
        )?;
        *self.token.borrow_mut() = Some(access_token.to_owned());
        *self.failure.borrow_mut() = None;
        Ok(Token {
            access_token: access_token.to_owned(),
            expires_in,
        })
    }

    fn forget_token(&self) -> Result<()> {
        *self.token.borrow_mut() = None;
        self.env.db().execute(
            "DELETE FROM mpesa_tokens WHERE base_url = ?1",
            &[Sql::from(self.base())],
        )?;
        self.env.put_secret(OAUTH_TOKEN, "")
    }

    /// POSTs `body` to `path` with the token. If Daraja refuses the token
    /// (`404.001.03`, `401.002.01`), drops the cache, fetches a new token
    /// and tries once more. `unavailable` when no answer came.
    pub fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        let reply = self.post_once(path, body)?;
        if !reply.token_refused() {
            return Ok(reply);
        }
        self.forget_token()?;
        self.fresh_token()?;
        self.post_once(path, body)
    }

    fn post_once(&self, path: &str, body: &Value) -> Result<Reply> {
        let token = self.token()?;
        let response = self
            .env
            .http(HttpRequest {
                method: "POST",
                url: format!("{}{path}", self.base()),
                headers: vec![
                    ("Authorization".to_owned(), format!("Bearer {token}")),
                    ("Content-Type".to_owned(), "application/json".to_owned()),
                    ("Accept".to_owned(), "application/json".to_owned()),
                ],
                body: Some(body.to_string()),
                timeout_ms: API_TIMEOUT_MS,
            })
            .map_err(|err| unavailable(format!("Daraja could not be reached: {err}")))?;
        Ok(Reply {
            status: response.status,
            json: serde_json::from_str(&response.body).unwrap_or(Value::Null),
        })
    }

    /// The callback URL for `kind` (e.g. `stk`, `b2c/result`) under the
    /// host's per-tenant callback base.
    pub fn callback_url(&self, kind: &str) -> Result<String> {
        callback_url(self.env, kind)
    }

    /// The STK `Password` and `Timestamp` for now.
    pub fn stk_password(&self) -> (String, String) {
        let timestamp = crate::clock::daraja_timestamp(self.env.ctx().now_ms);
        let shortcode = &self.credentials.settings.shortcode;
        let password =
            codec::encode(format!("{shortcode}{}{timestamp}", self.credentials.passkey).as_bytes());
        (password, timestamp)
    }

    /// The fields every initiator call (B2C, reversal, status, balance) shares.
    pub fn initiator_fields(&self, result_kind: &str) -> Result<serde_json::Map<String, Value>> {
        self.initiator_fields_for(result_kind, None)
    }

    /// The same, with result URLs that end in `reference` (the request's
    /// own id: `<kind>/result/<id>`, `<kind>/timeout/<id>`), so that its
    /// result finds it even if the synchronous answer naming it was lost.
    pub fn initiator_fields_for(
        &self,
        result_kind: &str,
        reference: Option<&str>,
    ) -> Result<serde_json::Map<String, Value>> {
        let url = |end: &str| {
            let kind = format!("{result_kind}/{end}");
            self.callback_url(&match reference {
                Some(id) => crate::callbacks::with_reference(&kind, id),
                None => kind,
            })
        };
        let credential = self.credentials.security_credential(self.env)?;
        let mut fields = serde_json::Map::new();
        fields.insert("SecurityCredential".into(), json!(credential));
        fields.insert("ResultURL".into(), json!(url("result")?));
        fields.insert("QueueTimeOutURL".into(), json!(url("timeout")?));
        Ok(fields)
    }
}

/// The callback URL for `kind` under the host's `callback-base`.
pub fn callback_url(env: &dyn Env, kind: &str) -> Result<String> {
    callback_url_under(env, "callback-base", kind)
}

/// The callback URL for `kind` under the host's `callback-base-opaque`, whose
/// path does not say "mpesa": Safaricom refuses C2B URLs that do.
pub fn opaque_callback_url(env: &dyn Env, kind: &str) -> Result<String> {
    callback_url_under(env, "callback-base-opaque", kind)
}

fn callback_url_under(env: &dyn Env, setting: &str, kind: &str) -> Result<String> {
    let base = env
        .config(setting)
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| {
            unavailable(format!(
                "The host has no callback URL for this tenant (setting `{setting}`)."
            ))
        })?;
    Ok(format!("{}/{kind}", base.trim().trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_number_or_string_codes() {
        assert_eq!(code_text(&json!(0)), Some("0".into()));
        assert_eq!(code_text(&json!("1032")), Some("1032".into()));
        assert_eq!(code_text(&json!(1037.0)), Some("1037".into()));
        assert_eq!(code_text(&json!("R000002")), Some("R000002".into()));
        assert_eq!(code_text(&json!(null)), None);
        assert_eq!(amount_value(&json!(1.00)), Some(1.0));
        assert_eq!(amount_value(&json!("5.00")), Some(5.0));
        assert_eq!(amount_value(&json!("x")), None);
    }

    #[test]
    fn classifies_replies() {
        let ok = Reply {
            status: 200,
            json: json!({"ResponseCode": "0", "CheckoutRequestID": "ws_CO_1"}),
        };
        assert!(ok.accepted());
        let refused = Reply {
            status: 400,
            json: json!({"requestId": "1", "errorCode": "400.002.02", "errorMessage": "Bad Request - Invalid PhoneNumber"}),
        };
        assert!(!refused.accepted());
        assert_eq!(
            refused.describe(),
            "400.002.02 Bad Request - Invalid PhoneNumber"
        );
        let token = Reply {
            status: 404,
            json: json!({"errorCode": "404.001.03", "errorMessage": "Invalid Access Token"}),
        };
        assert!(token.token_refused());
        let b2c_token = Reply {
            status: 401,
            json: json!({"errorCode": "401.002.01", "errorMessage": "x"}),
        };
        assert!(b2c_token.token_refused());
        let busy = Reply {
            status: 500,
            json: json!({"errorCode": "500.001.1001", "errorMessage": "The transaction is being processed"}),
        };
        assert!(!busy.token_refused());
        let rejected = Reply {
            status: 200,
            json: json!({"ResponseCode": 1, "ResponseDescription": "Rejected"}),
        };
        assert!(!rejected.accepted());
        assert_eq!(rejected.describe(), "ResponseCode 1 Rejected");
    }
}
