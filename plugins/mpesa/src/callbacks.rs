//! `callback.receive`: parses what Daraja posted to the tenant's callback URLs and hands it to the right handler.

use malipo_plugin_sdk::{Error, Input, Result};
use serde_json::{Map, Value, json};

use crate::daraja::code_text;
use crate::env::Env;
use crate::transactions::{self, Txn};
use crate::{b2c, c2b, requests, reversal, stk, validate};

/// Callback kinds the host delivers (the path after the tenant's callback
/// base); some end in a reference instead ([`REFERENCED`]).
pub const KINDS: &[&str] = &[
    "stk",
    "b2c/result",
    "b2c/timeout",
    "reversal/result",
    "reversal/timeout",
    "status/result",
    "status/timeout",
    "balance/result",
    "balance/timeout",
    "c2b/confirmation",
    "c2b/validation",
];

/// Kinds whose URL may end in a reference to the request it answers — an
/// STK push's `stk/<intent id>` ([`crate::intents::callback_kind`]), a
/// reversal's `reversal/result/<id>` and `reversal/timeout/<id>`. Daraja
/// posts to a URL exactly as given, so the answer finds its request even
/// when the synchronous answer that named it was lost.
const REFERENCED: &[&str] = &["stk", "reversal/result", "reversal/timeout"];

/// The callback kind `kind` with a reference to request `id` at its end.
pub fn with_reference(kind: &str, id: &str) -> String {
    format!("{kind}/{id}")
}

/// A callback kind and the reference at its end (a last segment that is a
/// UUID), if any — as the host's `control::split_reference` splits it.
pub fn split_reference(kind: &str) -> (&str, Option<&str>) {
    match kind.rsplit_once('/') {
        Some((head, last)) if validate::is_uuid(last) => (head, Some(last)),
        _ => (kind, None),
    }
}

/// The `{"Result":{…}}` envelope of the initiator APIs' result and
/// queue-timeout posts.
#[derive(Debug, Clone, Default)]
pub struct ResultEnvelope {
    /// `ResultCode` as text (`"0"`, `"2001"`, `"R000002"`); None on some timeouts.
    pub code: Option<String>,
    pub desc: String,
    pub originator_conversation_id: Option<String>,
    pub conversation_id: Option<String>,
    pub transaction_id: Option<String>,
    /// `ResultParameters.ResultParameter` as Key → Value (absent values are null).
    pub params: Map<String, Value>,
}

impl ResultEnvelope {
    pub fn parse(body: &Value) -> Result<Self> {
        let result = body
            .get("Result")
            .filter(|r| r.is_object())
            .ok_or_else(|| Error::bad_request("A result callback must be {\"Result\":{…}}."))?;
        let text = |name: &str| {
            result
                .get(name)
                .and_then(code_text)
                .filter(|s| !s.is_empty())
        };
        let mut params = Map::new();
        let list = result.pointer("/ResultParameters/ResultParameter");
        let items: Vec<&Value> = match list {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(item @ Value::Object(_)) => vec![item],
            _ => Vec::new(),
        };
        for item in items {
            if let Some(key) = item.get("Key").and_then(Value::as_str) {
                params.insert(
                    key.to_owned(),
                    item.get("Value").cloned().unwrap_or(Value::Null),
                );
            }
        }
        let envelope = Self {
            code: text("ResultCode"),
            desc: result
                .get("ResultDesc")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_owned(),
            originator_conversation_id: text("OriginatorConversationID"),
            conversation_id: text("ConversationID"),
            transaction_id: text("TransactionID"),
            params,
        };
        if envelope.originator_conversation_id.is_none() && envelope.conversation_id.is_none() {
            return Err(Error::bad_request(
                "The result callback names neither an OriginatorConversationID nor a ConversationID.",
            ));
        }
        Ok(envelope)
    }

    /// A result parameter as text (numbers without a trailing `.0`).
    pub fn param_text(&self, key: &str) -> Option<String> {
        self.params
            .get(key)
            .and_then(code_text)
            .filter(|s| !s.is_empty())
    }

    /// The ids to look a stored request up by, most specific first.
    pub fn ids(&self) -> Vec<(&'static str, &str)> {
        let mut ids = Vec::new();
        if let Some(id) = &self.originator_conversation_id {
            ids.push(("originator_conversation_id", id.as_str()));
        }
        if let Some(id) = &self.conversation_id {
            ids.push(("conversation_id", id.as_str()));
        }
        ids
    }
}

/// The stored transaction of `kind` a result callback is about.
pub fn find_transaction(
    env: &dyn Env,
    kind: &str,
    envelope: &ResultEnvelope,
) -> Result<Option<Txn>> {
    for (column, value) in envelope.ids() {
        if let Some(txn) = transactions::find_by(env.db(), kind, column, value)? {
            return Ok(Some(txn));
        }
    }
    Ok(None)
}

/// The answer to a callback that changed nothing.
pub fn ignored(txn: &Txn, reason: &str) -> Value {
    json!({ "applied": false, "transaction_id": txn.id, "status": txn.status, "reason": reason })
}

/// `callback.receive`: `{"kind", "body": "<the posted JSON>", "received_at": ms}`.
pub fn receive(env: &dyn Env, input: &Input) -> Result<Value> {
    let kind = input.req_trimmed("kind")?;
    let (base, reference) = split_reference(kind);
    if !KINDS.contains(&base) || (reference.is_some() && !REFERENCED.contains(&base)) {
        return Err(Error::bad_request(format!(
            "Unknown callback kind `{kind}`."
        )));
    }
    let (raw, body) = match input.get("body") {
        Some(Value::String(raw)) => {
            let body: Value = serde_json::from_str(raw).map_err(|err| {
                Error::bad_request(format!("The callback body is not JSON: {err}"))
            })?;
            (raw.clone(), body)
        }
        Some(body @ Value::Object(_)) => (body.to_string(), body.clone()),
        Some(_) => {
            return Err(Error::bad_request(
                "The callback body must be a JSON object.",
            ));
        }
        None => return Err(Error::bad_request("The callback has no body.")),
    };
    if !body.is_object() {
        return Err(Error::bad_request(
            "The callback body must be a JSON object.",
        ));
    }
    let raw = raw.as_str();
    let received_at = input.opt_u64("received_at")?.unwrap_or(env.ctx().now_ms);
    let answer = match base {
        "stk" => stk::on_callback(env, kind, &body, raw, received_at)?,
        "c2b/confirmation" => c2b::on_confirmation(env, &body, raw, received_at)?,
        "c2b/validation" => c2b::on_validation(&body),
        _ => {
            let envelope = ResultEnvelope::parse(&body)?;
            let timeout = base.ends_with("/timeout");
            match base.split('/').next().unwrap_or_default() {
                "b2c" => b2c::on_result(env, &envelope, raw, received_at, timeout)?,
                "reversal" => {
                    reversal::on_result(env, &envelope, reference, raw, received_at, timeout)?
                }
                "status" => {
                    requests::on_result(env, "status", &envelope, raw, received_at, timeout)?
                }
                _ => requests::on_result(env, "balance", &envelope, raw, received_at, timeout)?,
            }
        }
    };
    let mut answer = answer;
    if let Some(map) = answer.as_object_mut() {
        map.insert("kind".to_owned(), json!(kind));
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_references_off_kinds() {
        let id = "0b9e6a52-6d8f-4c1e-9a55-3f1c2d4e5f60";
        let kind = with_reference("reversal/result", id);
        assert_eq!(kind, format!("reversal/result/{id}"));
        assert_eq!(split_reference(&kind), ("reversal/result", Some(id)));
        assert_eq!(
            split_reference("reversal/result"),
            ("reversal/result", None)
        );
        assert_eq!(split_reference("b2c/timeout"), ("b2c/timeout", None));
        assert_eq!(split_reference("stk"), ("stk", None));
    }

    #[test]
    fn parses_result_envelopes() {
        let body = json!({"Result": {
            "ResultType": 0, "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
            "OriginatorConversationID": "abc", "ConversationID": "AG_1", "TransactionID": "SG632NMUAB",
            "ResultParameters": {"ResultParameter": [
                {"Key": "TransactionAmount", "Value": 10},
                {"Key": "TransactionReceipt", "Value": "SG632NMUAB"},
                {"Key": "TransactionReason"}
            ]},
            "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": "https://x"}}
        }});
        let envelope = ResultEnvelope::parse(&body).expect("valid");
        assert_eq!(envelope.code.as_deref(), Some("0"));
        assert_eq!(
            envelope.param_text("TransactionAmount").as_deref(),
            Some("10")
        );
        assert_eq!(envelope.param_text("TransactionReason"), None);
        assert_eq!(
            envelope.ids(),
            vec![
                ("originator_conversation_id", "abc"),
                ("conversation_id", "AG_1")
            ]
        );
        let failed = json!({"Result": {"ResultType": 0, "ResultCode": "R000002", "ResultDesc": "The OriginalTransactionID is invalid.", "ConversationID": "AG_2",
            "ResultParameters": {"ResultParameter": {"Key": "Amount", "Value": 1.00}}}});
        let envelope = ResultEnvelope::parse(&failed).expect("valid");
        assert_eq!(envelope.code.as_deref(), Some("R000002"));
        assert_eq!(envelope.param_text("Amount").as_deref(), Some("1"));
        assert!(ResultEnvelope::parse(&json!({"Body": {}})).is_err());
        assert!(ResultEnvelope::parse(&json!({"Result": {"ResultCode": 0}})).is_err());
    }
}
