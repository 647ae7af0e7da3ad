//! Initiator-based asynchronous APIs: B2C v1/v3, Transaction Status, Account Balance and
//! Reversal. Each checks the SecurityCredential and answers with a sync acknowledgement, then
//! POSTs a `{"Result":{…}}` envelope to ResultURL.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::parse_object;
use crate::callbacks;
use crate::config::Code;
use crate::error::ApiError;
use crate::fields::Fields;
use crate::identity::{CredentialError, decode_credential};
use crate::ids;
use crate::state::{Outcome, ResultKind, ResultTx, Shared, Target, TokenFlavor};

#[derive(Serialize)]
struct B2cAck {
    #[serde(rename = "ConversationID")]
    conversation_id: String,
    #[serde(rename = "OriginatorConversationID")]
    originator_conversation_id: String,
    #[serde(rename = "ResponseCode")]
    response_code: &'static str,
    #[serde(rename = "ResponseDescription")]
    response_description: &'static str,
}

#[derive(Serialize)]
struct Ack {
    #[serde(rename = "OriginatorConversationID")]
    originator_conversation_id: String,
    #[serde(rename = "ConversationID")]
    conversation_id: String,
    #[serde(rename = "ResponseCode")]
    response_code: &'static str,
    #[serde(rename = "ResponseDescription")]
    response_description: &'static str,
}

/// Result of the SecurityCredential check: `Ok(true)` valid, `Ok(false)` → async 2001.
fn credential_ok(s: &Shared, initiator: &str, credential: &str) -> Result<bool, ApiError> {
    match decode_credential(credential) {
        Err(CredentialError::Malformed) => return Err(ApiError::invalid("SecurityCredential")),
        Err(CredentialError::Decrypt) | Ok(_) => {}
    }
    if s.cfg.lenient_credentials {
        return Ok(true);
    }
    let expected = {
        let inner = s.lock();
        match inner.initiators.get(initiator) {
            Some(p) => Some(p.clone()),
            None if s.cfg.strict => None,
            None => Some(s.cfg.default_initiator_password.clone()),
        }
    };
    let Some(expected) = expected else {
        return Ok(false);
    };
    Ok(s.identity
        .decrypt_credential(credential)
        .is_ok_and(|p| p == expected))
}

/// Everything needed to register a Result transaction.
struct NewResult {
    kind: ResultKind,
    originator: Option<String>,
    credential_ok: bool,
    result_url: String,
    queue_timeout_url: String,
    shortcode: String,
    msisdn: Option<String>,
    amount: Option<u64>,
    command_id: String,
    transaction_id: Option<String>,
    original_conversation_id: Option<String>,
    occasion: Option<String>,
}

/// Registers the transaction and schedules its result; returns (OriginatorConversationID, ConversationID).
async fn submit(s: &Arc<Shared>, n: NewResult) -> Result<(String, String), ApiError> {
    let (originator, conversation, job, before_response) = {
        let mut inner = s.lock();
        if n.originator
            .as_ref()
            .is_some_and(|o| inner.originator_index.contains_key(o))
        {
            return Err(ApiError::new(
                "500.002.1001",
                "Duplicate OriginatorConversationID.",
            ));
        }
        let originator = n.originator.clone().unwrap_or_else(ids::proxy_id);
        let conversation = ids::conversation_id();
        let shortcode_known = n.shortcode.len() > 7 || s.shortcode_known(&inner, &n.shortcode);
        let by_id = inner
            .id_outcomes
            .remove(&originator)
            .or_else(|| inner.id_outcomes.remove(&conversation));
        let (outcome, delay) = match by_id {
            Some((o, d)) => (o, d),
            None if !n.credential_ok => (Outcome::code(Code::Num(2001)), None),
            None if !shortcode_known => (Outcome::code(Code::Num(2028)), None),
            None => {
                // Phone/amount rules from the control API apply to B2C only.
                let (o, d) = if n.kind == ResultKind::B2c {
                    inner.take_outcome(&s.cfg, &[], n.msisdn.as_deref(), n.amount, false)
                } else {
                    (None, None)
                };
                let o = o.unwrap_or_else(|| match (n.kind, n.amount) {
                    (ResultKind::B2c, Some(a)) if a < 10 => Outcome::code(Code::Num(2)),
                    (ResultKind::B2c, Some(a)) if a > 250_000 => Outcome::code(Code::Num(3)),
                    _ => Outcome::success(),
                });
                (o, d)
            }
        };
        let delay = s.delay(&inner, delay);
        let before_response = inner.faults.callback_before_response;
        inner
            .originator_index
            .insert(originator.clone(), conversation.clone());
        inner.results.insert(
            conversation.clone(),
            ResultTx {
                kind: n.kind,
                conversation_id: conversation.clone(),
                originator_conversation_id: originator.clone(),
                result_url: n.result_url,
                queue_timeout_url: n.queue_timeout_url,
                shortcode: n.shortcode,
                msisdn: n.msisdn,
                amount: n.amount,
                command_id: n.command_id,
                transaction_id: n.transaction_id,
                original_conversation_id: n.original_conversation_id,
                occasion: n.occasion,
                outcome,
                job: None,
                done: None,
            },
        );
        let job = callbacks::schedule(s, &mut inner, Target::Result(conversation.clone()), delay);
        if let Some(tx) = inner.results.get_mut(&conversation) {
            tx.job = Some(job);
        }
        (originator, conversation, job, before_response)
    };
    if before_response {
        callbacks::fire(s, job).await;
    }
    Ok((originator, conversation))
}

fn ack(originator: String, conversation: String, description: &'static str) -> Response {
    Json(Ack {
        originator_conversation_id: originator,
        conversation_id: conversation,
        response_code: "0",
        response_description: description,
    })
    .into_response()
}

fn receipt_like(s: &str) -> bool {
    s.len() == 10
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

async fn b2c(
    s: Arc<Shared>,
    headers: HeaderMap,
    body: Bytes,
    v3: bool,
) -> Result<Response, ApiError> {
    s.gate(&headers, TokenFlavor::Unauthorized)?;
    let obj = parse_object(&headers, &body)?;
    let f = Fields::new(&obj);
    let originator = if v3 {
        Some(f.required("OriginatorConversationID")?)
    } else {
        None
    };
    let initiator = f.required("InitiatorName")?;
    let credential = f.required("SecurityCredential")?;
    let command_id = f.one_of(
        "CommandID",
        &["SalaryPayment", "BusinessPayment", "PromotionPayment"],
    )?;
    let amount = f.whole_amount("Amount")?;
    let party_a = f.shortcode("PartyA")?;
    let party_b = f.phone("PartyB")?;
    f.text_len("Remarks", 2, 100)?;
    let queue_timeout_url = f.url("QueueTimeOutURL", &s.cfg.callback_url_rules)?;
    let result_url = f.url("ResultURL", &s.cfg.callback_url_rules)?;
    let occasion = f.text("Occassion").or_else(|| f.text("Occasion"));
    let credential_ok = credential_ok(&s, &initiator, &credential)?;
    let (originator, conversation) = submit(
        &s,
        NewResult {
            kind: ResultKind::B2c,
            originator,
            credential_ok,
            result_url,
            queue_timeout_url,
            shortcode: party_a,
            msisdn: Some(party_b),
            amount: Some(amount),
            command_id,
            transaction_id: None,
            original_conversation_id: None,
            occasion,
        },
    )
    .await?;
    Ok(Json(B2cAck {
        conversation_id: conversation,
        originator_conversation_id: originator,
        response_code: "0",
        response_description: "Accept the service request successfully.",
    })
    .into_response())
}

pub(crate) async fn b2c_v1(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    b2c(s, headers, body, false).await
}

pub(crate) async fn b2c_v3(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    b2c(s, headers, body, true).await
}

pub(crate) async fn transaction_status(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.gate(&headers, TokenFlavor::NotFound)?;
    let obj = parse_object(&headers, &body)?;
    let f = Fields::new(&obj);
    let initiator = f.required("Initiator")?;
    let credential = f.required("SecurityCredential")?;
    let command_id = f.one_of("CommandID", &["TransactionStatusQuery"])?;
    let transaction_id = f.text("TransactionID");
    let original_conversation_id = f.text("OriginalConversationID");
    match &transaction_id {
        Some(t) if !receipt_like(t) => return Err(ApiError::invalid("TransactionID")),
        None if original_conversation_id.is_none() => {
            return Err(ApiError::invalid("TransactionID"));
        }
        _ => {}
    }
    let party_a = f.digits("PartyA", 5, 12)?;
    f.one_of("IdentifierType", &["1", "2", "4"])?;
    let result_url = f.url("ResultURL", &s.cfg.callback_url_rules)?;
    let queue_timeout_url = f.url("QueueTimeOutURL", &s.cfg.callback_url_rules)?;
    f.text_len("Remarks", 1, 100)?;
    let occasion = f.text("Occasion").or_else(|| f.text("Occassion"));
    let credential_ok = credential_ok(&s, &initiator, &credential)?;
    let (originator, conversation) = submit(
        &s,
        NewResult {
            kind: ResultKind::TransactionStatus,
            originator: None,
            credential_ok,
            result_url,
            queue_timeout_url,
            shortcode: party_a,
            msisdn: None,
            amount: None,
            command_id,
            transaction_id,
            original_conversation_id,
            occasion,
        },
    )
    .await?;
    Ok(ack(
        originator,
        conversation,
        "Accept the service request successfully.",
    ))
}

pub(crate) async fn account_balance(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.gate(&headers, TokenFlavor::Unauthorized)?;
    let obj = parse_object(&headers, &body)?;
    let f = Fields::new(&obj);
    let initiator = f.required("Initiator")?;
    let credential = f.required("SecurityCredential")?;
    let command_id = f.one_of("CommandID", &["AccountBalance"])?;
    let party_a = f.digits("PartyA", 5, 12)?;
    f.one_of("IdentifierType", &["1", "2", "4"])?;
    f.text_len("Remarks", 1, 100)?;
    let queue_timeout_url = f.url("QueueTimeOutURL", &s.cfg.callback_url_rules)?;
    let result_url = f.url("ResultURL", &s.cfg.callback_url_rules)?;
    let credential_ok = credential_ok(&s, &initiator, &credential)?;
    let (originator, conversation) = submit(
        &s,
        NewResult {
            kind: ResultKind::AccountBalance,
            originator: None,
            credential_ok,
            result_url,
            queue_timeout_url,
            shortcode: party_a,
            msisdn: None,
            amount: None,
            command_id,
            transaction_id: None,
            original_conversation_id: None,
            occasion: None,
        },
    )
    .await?;
    // The AccountBalance documentation omits the trailing period.
    Ok(ack(
        originator,
        conversation,
        "Accept the service request successfully",
    ))
}

pub(crate) async fn reversal(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.gate(&headers, TokenFlavor::NotFound)?;
    let obj = parse_object(&headers, &body)?;
    let f = Fields::new(&obj);
    let initiator = f.required("Initiator")?;
    let credential = f.required("SecurityCredential")?;
    let command_id = f.one_of("CommandID", &["TransactionReversal"])?;
    let transaction_id = f.required("TransactionID")?;
    if !receipt_like(&transaction_id) {
        return Err(ApiError::invalid("TransactionID"));
    }
    let amount = f.whole_amount("Amount")?;
    let receiver = f.digits("ReceiverParty", 5, 12)?;
    // Daraja's spelling; the correct spelling is simply a missing field.
    f.one_of("RecieverIdentifierType", &["1", "2", "4", "11"])?;
    let result_url = f.url("ResultURL", &s.cfg.callback_url_rules)?;
    let queue_timeout_url = f.url("QueueTimeOutURL", &s.cfg.callback_url_rules)?;
    f.text_len("Remarks", 1, 100)?;
    let occasion = f.text("Occasion").or_else(|| f.text("Occassion"));
    let credential_ok = credential_ok(&s, &initiator, &credential)?;
    let (originator, conversation) = submit(
        &s,
        NewResult {
            kind: ResultKind::Reversal,
            originator: None,
            credential_ok,
            result_url,
            queue_timeout_url,
            shortcode: receiver,
            msisdn: None,
            amount: Some(amount),
            command_id,
            transaction_id: Some(transaction_id),
            original_conversation_id: None,
            occasion,
        },
    )
    .await?;
    Ok(ack(
        originator,
        conversation,
        "Accept the service request successfully.",
    ))
}
