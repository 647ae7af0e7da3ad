//! Asynchronous completion of transactions: per-transaction timers, outcome selection at
//! completion, Daraja's exact callback payloads (STK, Result envelopes, C2B validation and
//! confirmation), single-shot delivery with fault modes, and the control-API outcome/flush logic.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::codes;
use crate::config::{Code, Faults};
use crate::error::ControlError;
use crate::ids;
use crate::json::{Item, KeyVal, Val, cents_text};
use crate::records::{CallbackKind, CallbackRecord, DeliveryStatus};
use crate::state::{
    Done, Inner, Job, Outcome, OutcomeAction, OutcomeApplied, OutcomeRequest, Receipt, ResultKind,
    Rule, Shared, Target, TransactionView, customer_name,
};

/// Content type Daraja uses for callbacks.
pub const CALLBACK_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// C2B validation/confirmation body (all values are strings).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct C2bNotification {
    pub transaction_type: String,
    #[serde(rename = "TransID")]
    pub trans_id: String,
    pub trans_time: String,
    pub trans_amount: String,
    pub business_short_code: String,
    pub bill_ref_number: String,
    pub invoice_number: String,
    pub org_account_balance: String,
    #[serde(rename = "ThirdPartyTransID")]
    pub third_party_trans_id: String,
    #[serde(rename = "MSISDN")]
    pub msisdn: String,
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
}

pub(crate) enum Payload {
    Json(String),
    C2b(Box<C2bNotification>),
}

impl Payload {
    fn render(&self, third_party: Option<&str>) -> String {
        match self {
            Payload::Json(s) => s.clone(),
            Payload::C2b(n) => {
                let mut n = (**n).clone();
                if let Some(t) = third_party {
                    n.third_party_trans_id = t.to_owned();
                }
                serde_json::to_string(&n).unwrap_or_default()
            }
        }
    }
}

pub(crate) struct Delivery {
    kind: CallbackKind,
    url: String,
    shortcode: String,
    transaction: String,
    payload: Payload,
    /// C2B validation: decides whether the following deliveries happen; the flag says what to
    /// do when the validation URL is unreachable (ResponseType Completed = continue).
    gate: Option<bool>,
    suppressed: bool,
}

// ---------------------------------------------------------------------------------------------
// Scheduling

/// Registers a pending job completing `target` after `delay` and starts its timer.
pub(crate) fn schedule(
    shared: &Arc<Shared>,
    inner: &mut Inner,
    target: Target,
    delay: Duration,
) -> u64 {
    inner.next_job += 1;
    let id = inner.next_job;
    let (tx, rx) = watch::channel(Instant::now() + delay);
    inner.pending.insert(
        id,
        Job {
            target,
            deadline: tx,
        },
    );
    tokio::spawn(timer(Arc::clone(shared), id, rx));
    id
}

async fn timer(shared: Arc<Shared>, id: u64, mut rx: watch::Receiver<Instant>) {
    loop {
        let deadline = *rx.borrow_and_update();
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            changed = rx.changed() => {
                if changed.is_err() {
                    // Job removed (flushed, fired by the handler, or emulator shut down).
                    return;
                }
            }
        }
    }
    fire(&shared, id).await;
}

fn reschedule(inner: &Inner, job: Option<u64>, delay: Duration) {
    if let Some(j) = job.and_then(|j| inner.pending.get(&j)) {
        j.deadline.send_replace(Instant::now() + delay);
    }
}

/// Completes the job's transaction and delivers its callbacks. Returns the transaction id, or
/// `None` if the job was already taken by someone else.
pub(crate) async fn fire(shared: &Arc<Shared>, job_id: u64) -> Option<String> {
    let (key, deliveries, faults) = {
        let mut inner = shared.lock();
        let job = inner.pending.remove(&job_id)?;
        let key = job.target.key().to_owned();
        let deliveries = complete(&mut inner, &job.target);
        (key, deliveries, inner.faults.clone())
    };
    execute(shared, deliveries, &faults).await;
    Some(key)
}

/// Fires every pending job now, oldest first, waiting for the deliveries.
pub(crate) async fn flush(shared: &Arc<Shared>) -> Vec<String> {
    let mut jobs: Vec<u64> = shared.lock().pending.keys().copied().collect();
    jobs.sort_unstable();
    let mut fired = Vec::new();
    for j in jobs {
        if let Some(k) = fire(shared, j).await {
            fired.push(k);
        }
    }
    fired
}

// ---------------------------------------------------------------------------------------------
// Delivery

async fn execute(shared: &Arc<Shared>, deliveries: Vec<Delivery>, faults: &Faults) {
    let mut third_party: Option<String> = None;
    for d in deliveries {
        let body = d.payload.render(third_party.as_deref());
        if faults.no_callback || d.suppressed {
            record(
                shared,
                &d,
                body,
                1,
                DeliveryStatus::Suppressed,
                None,
                None,
                None,
            );
            if d.gate.is_some() && !d.gate.unwrap_or(true) {
                c2b_rejected(shared, &d.transaction);
                return;
            }
            continue;
        }
        let copies = if faults.duplicate_callback { 2 } else { 1 };
        let mut first: Option<(Option<u16>, Option<String>)> = None;
        for attempt in 1..=copies {
            let seq = shared.next_seq();
            let at = ids::rfc3339_utc(ids::now());
            let sent = shared
                .http
                .post(&d.url)
                .header(CONTENT_TYPE, CALLBACK_CONTENT_TYPE)
                .header("BusinessShortCode", &d.shortcode)
                .body(body.clone())
                .send()
                .await;
            let (status, http_status, response_body, error) = match sent {
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    (DeliveryStatus::Delivered, Some(code), Some(text), None)
                }
                Err(e) => {
                    tracing::warn!(url = %d.url, error = %e, "callback delivery failed (not retried)");
                    (DeliveryStatus::Failed, None, None, Some(e.to_string()))
                }
            };
            if first.is_none() {
                first = Some((http_status, response_body.clone()));
            }
            push_record(
                shared,
                seq,
                at,
                &d,
                body.clone(),
                attempt,
                status,
                http_status,
                response_body,
                error,
            );
        }
        if let Some(continue_if_unreachable) = d.gate {
            let (http_status, response_body) = first.unwrap_or((None, None));
            match validation_verdict(http_status, response_body.as_deref()) {
                Verdict::Accepted(tp) => third_party = tp,
                Verdict::Rejected => {
                    c2b_rejected(shared, &d.transaction);
                    return;
                }
                Verdict::Unreachable if continue_if_unreachable => {}
                Verdict::Unreachable => {
                    c2b_rejected(shared, &d.transaction);
                    return;
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    shared: &Shared,
    d: &Delivery,
    body: String,
    attempt: u32,
    status: DeliveryStatus,
    http_status: Option<u16>,
    response_body: Option<String>,
    error: Option<String>,
) {
    let seq = shared.next_seq();
    let at = ids::rfc3339_utc(ids::now());
    push_record(
        shared,
        seq,
        at,
        d,
        body,
        attempt,
        status,
        http_status,
        response_body,
        error,
    );
}

#[allow(clippy::too_many_arguments)]
fn push_record(
    shared: &Shared,
    seq: u64,
    at: String,
    d: &Delivery,
    body: String,
    attempt: u32,
    delivery: DeliveryStatus,
    http_status: Option<u16>,
    response_body: Option<String>,
    error: Option<String>,
) {
    shared.push_callback(CallbackRecord {
        seq,
        at,
        kind: d.kind,
        url: d.url.clone(),
        transaction: d.transaction.clone(),
        business_short_code: d.shortcode.clone(),
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        raw_body: body,
        attempt,
        delivery,
        http_status,
        response_body,
        error,
    });
}

enum Verdict {
    Accepted(Option<String>),
    Rejected,
    Unreachable,
}

fn validation_verdict(http_status: Option<u16>, body: Option<&str>) -> Verdict {
    let Some(status) = http_status else {
        return Verdict::Unreachable;
    };
    if !(200..300).contains(&status) {
        return Verdict::Unreachable;
    }
    let Some(v) = body.and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok()) else {
        return Verdict::Unreachable;
    };
    let accepted = match v.get("ResultCode") {
        Some(serde_json::Value::Number(n)) => n.as_i64() == Some(0),
        Some(serde_json::Value::String(s)) => s.trim() == "0",
        _ => return Verdict::Unreachable,
    };
    if accepted {
        let tp = v
            .get("ThirdPartyTransID")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Verdict::Accepted(tp)
    } else {
        Verdict::Rejected
    }
}

fn c2b_rejected(shared: &Shared, trans_id: &str) {
    let mut inner = shared.lock();
    let Some(tx) = inner.c2b.get(trans_id) else {
        return;
    };
    let (shortcode, amount) = (tx.shortcode.clone(), tx.amount);
    if inner.receipts.remove(trans_id).is_some() {
        inner.accounts(&shortcode).utility -= amount as i64 * 100;
    }
}

// ---------------------------------------------------------------------------------------------
// Completion

fn complete(inner: &mut Inner, target: &Target) -> Vec<Delivery> {
    match target {
        Target::Stk(id) => complete_stk(inner, id),
        Target::Result(id) => complete_result(inner, id),
        Target::C2b(id) => complete_c2b(inner, id),
    }
}

#[derive(Serialize)]
struct StkEnvelope<'a> {
    #[serde(rename = "Body")]
    body: StkBody<'a>,
}

#[derive(Serialize)]
struct StkBody<'a> {
    #[serde(rename = "stkCallback")]
    stk_callback: StkCallback<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StkCallback<'a> {
    #[serde(rename = "MerchantRequestID")]
    merchant_request_id: &'a str,
    #[serde(rename = "CheckoutRequestID")]
    checkout_request_id: &'a str,
    result_code: Val,
    result_desc: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_metadata: Option<Metadata>,
}

#[derive(Serialize)]
struct Metadata {
    #[serde(rename = "Item")]
    item: Vec<Item>,
}

fn complete_stk(inner: &mut Inner, id: &str) -> Vec<Delivery> {
    let Some(tx) = inner.stk.get_mut(id) else {
        return Vec::new();
    };
    if tx.done.is_some() {
        return Vec::new();
    }
    tx.job = None;
    let outcome = tx.outcome.clone();
    let code = outcome.code.clone();
    let desc = outcome
        .desc
        .clone()
        .unwrap_or_else(|| codes::stk_callback_desc(&code));
    let query_desc = outcome
        .desc
        .clone()
        .unwrap_or_else(|| codes::stk_query_desc(&code));
    let receipt = code.is_success().then(ids::receipt);
    tx.done = Some(Done {
        code: code.clone(),
        desc: desc.clone(),
        query_desc,
        receipt: receipt.clone(),
    });
    let (merchant, shortcode, phone, amount, url) = (
        tx.merchant_id.clone(),
        tx.shortcode.clone(),
        tx.phone.clone(),
        tx.amount,
        tx.callback_url.clone(),
    );
    let now = ids::now();

    let metadata = receipt.as_ref().map(|r| Metadata {
        item: vec![
            Item {
                name: "Amount",
                value: Some(Val::dec(amount as i64 * 100)),
            },
            Item {
                name: "MpesaReceiptNumber",
                value: Some(Val::s(r.clone())),
            },
            Item {
                name: "TransactionDate",
                value: Some(Val::Int(ids::timestamp14(now).parse().unwrap_or_default())),
            },
            Item {
                name: "PhoneNumber",
                value: Some(Val::Int(phone.parse().unwrap_or_default())),
            },
        ],
    });
    if let Some(r) = &receipt {
        inner.accounts(&shortcode).utility += amount as i64 * 100;
        let conversation_id = ids::conversation_id();
        inner.receipts.insert(
            r.clone(),
            Receipt {
                receipt: r.clone(),
                amount,
                reason: "Pay Bill Online".to_owned(),
                debit_party: customer_name(&phone),
                credit_party: inner.shortcode_name(&shortcode),
                shortcode: shortcode.clone(),
                originator_conversation_id: merchant.clone(),
                conversation_id,
                at: now,
                reversed: false,
            },
        );
    }
    let envelope = StkEnvelope {
        body: StkBody {
            stk_callback: StkCallback {
                merchant_request_id: &merchant,
                checkout_request_id: id,
                result_code: Val::code(&code),
                result_desc: &desc,
                callback_metadata: metadata,
            },
        },
    };
    vec![Delivery {
        kind: CallbackKind::Stk,
        url,
        shortcode,
        transaction: id.to_owned(),
        payload: Payload::Json(serde_json::to_string(&envelope).unwrap_or_default()),
        gate: None,
        suppressed: outcome.action != OutcomeAction::Complete,
    }]
}

#[derive(Serialize)]
struct ResultEnvelope {
    #[serde(rename = "Result")]
    result: ResultBody,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResultBody {
    result_type: Val,
    result_code: Val,
    result_desc: String,
    #[serde(rename = "OriginatorConversationID")]
    originator_conversation_id: String,
    #[serde(rename = "ConversationID")]
    conversation_id: String,
    #[serde(rename = "TransactionID")]
    transaction_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_parameters: Option<ResultParameters>,
    reference_data: ReferenceData,
}

#[derive(Serialize)]
struct ResultParameters {
    #[serde(rename = "ResultParameter")]
    result_parameter: Vec<KeyVal>,
}

#[derive(Serialize)]
struct ReferenceData {
    #[serde(rename = "ReferenceItem")]
    reference_item: KeyVal,
}

fn reference_item(kind: ResultKind, occasion: Option<&str>) -> KeyVal {
    let internal = |path: &str| {
        KeyVal::new(
            "QueueTimeoutURL",
            Val::s(format!(
                "https://internalsandbox.safaricom.co.ke/mpesa/{path}/v1/submit"
            )),
        )
    };
    match kind {
        ResultKind::B2c => internal("b2cresults"),
        ResultKind::AccountBalance => internal("abresults"),
        ResultKind::Reversal => internal("reversalresults"),
        ResultKind::TransactionStatus => match occasion {
            Some(o) if !o.is_empty() => KeyVal::new("Occasion", Val::s(o)),
            _ => KeyVal::bare("Occasion"),
        },
    }
}

fn complete_result(inner: &mut Inner, id: &str) -> Vec<Delivery> {
    let Some(tx) = inner.results.get_mut(id) else {
        return Vec::new();
    };
    if tx.done.is_some() {
        return Vec::new();
    }
    tx.job = None;
    let kind = tx.kind;
    let outcome = tx.outcome.clone();
    let originator = tx.originator_conversation_id.clone();
    let result_url = tx.result_url.clone();
    let queue_url = tx.queue_timeout_url.clone();
    let shortcode = tx.shortcode.clone();
    let msisdn = tx.msisdn.clone().unwrap_or_default();
    let amount = tx.amount.unwrap_or(0);
    let transaction_ref = tx.transaction_id.clone();
    let original_conv = tx.original_conversation_id.clone();
    let occasion = tx.occasion.clone();
    let command_id = tx.command_id.clone();
    let now = ids::now();

    let mut code = outcome.code.clone();
    let mut params: Option<Vec<KeyVal>> = None;
    let mut transaction_id = ids::zero_receipt();
    let mut receipt_out = None;

    if outcome.action == OutcomeAction::QueueTimeout {
        let desc = outcome
            .desc
            .clone()
            .unwrap_or_else(|| codes::QUEUE_TIMEOUT_DESC.to_owned());
        let body = ResultEnvelope {
            result: ResultBody {
                result_type: Val::Int(0),
                result_code: Val::code(&code),
                result_desc: desc.clone(),
                originator_conversation_id: originator,
                conversation_id: id.to_owned(),
                transaction_id,
                result_parameters: None,
                reference_data: ReferenceData {
                    reference_item: reference_item(kind, occasion.as_deref()),
                },
            },
        };
        set_done(
            inner,
            id,
            Done {
                code,
                desc: desc.clone(),
                query_desc: desc,
                receipt: None,
            },
        );
        return vec![Delivery {
            kind: CallbackKind::QueueTimeout,
            url: queue_url,
            shortcode,
            transaction: id.to_owned(),
            payload: Payload::Json(serde_json::to_string(&body).unwrap_or_default()),
            gate: None,
            suppressed: false,
        }];
    }

    match kind {
        ResultKind::B2c => {
            let cents = amount as i64 * 100;
            let sufficient = inner.accounts(&shortcode).utility >= cents;
            if code.is_success() && !sufficient && !outcome.explicit {
                code = Code::Num(1);
            }
            let receipt = ids::receipt();
            transaction_id = receipt.clone();
            if code.is_success() {
                let acc = {
                    let acc = inner.accounts(&shortcode);
                    acc.utility -= cents;
                    *acc
                };
                params = Some(vec![
                    KeyVal::new("TransactionAmount", Val::Int(amount as i64)),
                    KeyVal::new("TransactionReceipt", Val::s(receipt.clone())),
                    KeyVal::new("ReceiverPartyPublicName", Val::s(customer_name(&msisdn))),
                    KeyVal::new(
                        "TransactionCompletedDateTime",
                        Val::s(ids::dotted_datetime(now)),
                    ),
                    KeyVal::new("B2CUtilityAccountAvailableFunds", Val::dec(acc.utility)),
                    KeyVal::new("B2CWorkingAccountAvailableFunds", Val::dec(acc.working)),
                    KeyVal::new("B2CRecipientIsRegisteredCustomer", Val::s("Y")),
                    KeyVal::new(
                        "B2CChargesPaidAccountAvailableFunds",
                        Val::dec(acc.charges_paid),
                    ),
                ]);
                let debit = inner.shortcode_name(&shortcode);
                inner.receipts.insert(
                    receipt.clone(),
                    Receipt {
                        receipt: receipt.clone(),
                        amount,
                        reason: b2c_reason(&command_id).to_owned(),
                        debit_party: debit,
                        credit_party: customer_name(&msisdn),
                        shortcode: shortcode.clone(),
                        originator_conversation_id: originator.clone(),
                        conversation_id: id.to_owned(),
                        at: now,
                        reversed: false,
                    },
                );
                receipt_out = Some(receipt);
            }
        }
        ResultKind::AccountBalance => {
            if code.is_success() {
                let a = *inner.accounts(&shortcode);
                let acct = |name: &str, c: i64| {
                    let t = cents_text(c);
                    format!("{name}|KES|{t}|{t}|0.00|0.00")
                };
                let value = [
                    acct("Working Account", a.working),
                    acct("Float Account", a.float),
                    acct("Utility Account", a.utility),
                    acct("Charges Paid Account", a.charges_paid),
                    acct("Organization Settlement Account", a.settlement),
                ]
                .join("&");
                params = Some(vec![
                    KeyVal::new("AccountBalance", Val::s(value)),
                    KeyVal::new("BOCompletedTime", Val::s(ids::timestamp14(now))),
                ]);
            }
        }
        ResultKind::TransactionStatus => {
            if code.is_success() {
                let found = transaction_ref
                    .as_ref()
                    .and_then(|r| inner.receipts.get(r))
                    .or_else(|| {
                        original_conv.as_ref().and_then(|oc| {
                            inner.receipts.values().find(|r| {
                                &r.originator_conversation_id == oc || &r.conversation_id == oc
                            })
                        })
                    });
                match found {
                    Some(r) => params = Some(status_params(r, now)),
                    None if !outcome.explicit => code = Code::Num(2032),
                    None => {}
                }
            }
        }
        ResultKind::Reversal => {
            if code.is_success() {
                let key = transaction_ref.clone().unwrap_or_default();
                let state = inner
                    .receipts
                    .get(&key)
                    .map(|r| (r.reversed, r.shortcode.clone(), r.debit_party.clone()));
                match state {
                    Some((true, _, _)) if !outcome.explicit => {
                        code = Code::Text("R000001".to_owned())
                    }
                    None if !outcome.explicit => code = Code::Text("R000002".to_owned()),
                    known => {
                        let debit_shortcode = known
                            .as_ref()
                            .map(|k| k.1.clone())
                            .unwrap_or_else(|| shortcode.clone());
                        let credit_name = known
                            .as_ref()
                            .map(|k| k.2.clone())
                            .unwrap_or_else(|| customer_name(&msisdn));
                        if let Some(r) = inner.receipts.get_mut(&key) {
                            r.reversed = true;
                        }
                        let cents = amount as i64 * 100;
                        let utility = {
                            let acc = inner.accounts(&debit_shortcode);
                            acc.utility -= cents;
                            acc.utility
                        };
                        let receipt = ids::receipt();
                        transaction_id = receipt.clone();
                        let u = cents_text(utility);
                        params = Some(vec![
                            KeyVal::new(
                                "DebitAccountBalance",
                                Val::s(format!("Utility Account|KES|{u}|{u}|0.00|0.00")),
                            ),
                            KeyVal::new("Amount", Val::dec(cents)),
                            KeyVal::new(
                                "TransCompletedTime",
                                Val::Int(ids::timestamp14(now).parse().unwrap_or_default()),
                            ),
                            KeyVal::new("OriginalTransactionID", Val::s(key.clone())),
                            KeyVal::new("Charge", Val::dec(0)),
                            KeyVal::new("CreditPartyPublicName", Val::s(credit_name.clone())),
                            KeyVal::new(
                                "DebitPartyPublicName",
                                Val::s(inner.shortcode_name(&debit_shortcode)),
                            ),
                        ]);
                        // The reversal is a transaction of its own: a
                        // transaction-status query (by its receipt or its
                        // OriginatorConversationID) finds it.
                        let debit_name = inner.shortcode_name(&debit_shortcode);
                        inner.receipts.insert(
                            receipt.clone(),
                            Receipt {
                                receipt: receipt.clone(),
                                amount,
                                reason: "Reversal".to_owned(),
                                debit_party: debit_name,
                                credit_party: credit_name,
                                shortcode: debit_shortcode,
                                originator_conversation_id: originator.clone(),
                                conversation_id: id.to_owned(),
                                at: now,
                                reversed: false,
                            },
                        );
                        receipt_out = Some(receipt);
                    }
                }
            }
        }
    }

    let desc = outcome.desc.clone().unwrap_or_else(|| match (kind, &code) {
        (ResultKind::AccountBalance, Code::Num(0)) => {
            "The service request is processed successfully".to_owned()
        }
        _ => codes::result_desc(&code),
    });
    // The AccountBalance documentation sample carries string ResultType/ResultCode.
    let (result_type, result_code) = match kind {
        ResultKind::AccountBalance => (Val::s("0"), Val::s(code.to_string())),
        _ => (Val::Int(0), Val::code(&code)),
    };
    let body = ResultEnvelope {
        result: ResultBody {
            result_type,
            result_code,
            result_desc: desc.clone(),
            originator_conversation_id: originator,
            conversation_id: id.to_owned(),
            transaction_id,
            result_parameters: if code.is_success() {
                params.map(|p| ResultParameters {
                    result_parameter: p,
                })
            } else {
                None
            },
            reference_data: ReferenceData {
                reference_item: reference_item(kind, occasion.as_deref()),
            },
        },
    };
    set_done(
        inner,
        id,
        Done {
            code,
            desc: desc.clone(),
            query_desc: desc,
            receipt: receipt_out,
        },
    );
    vec![Delivery {
        kind: CallbackKind::Result,
        url: result_url,
        shortcode,
        transaction: id.to_owned(),
        payload: Payload::Json(serde_json::to_string(&body).unwrap_or_default()),
        gate: None,
        suppressed: outcome.action == OutcomeAction::NoCallback,
    }]
}

fn b2c_reason(command_id: &str) -> &'static str {
    match command_id {
        "SalaryPayment" => "Salary Payment to Customer via API",
        "PromotionPayment" => "Promotion Payment to Customer via API",
        _ => "Business Payment to Customer via API",
    }
}

fn set_done(inner: &mut Inner, id: &str, done: Done) {
    if let Some(tx) = inner.results.get_mut(id) {
        tx.done = Some(done);
    }
}

fn status_params(r: &Receipt, now: time::OffsetDateTime) -> Vec<KeyVal> {
    let at = ids::timestamp14(r.at);
    vec![
        KeyVal::new("DebitPartyName", Val::s(r.debit_party.clone())),
        KeyVal::new("CreditPartyName", Val::s(r.credit_party.clone())),
        KeyVal::new(
            "OriginatorConversationID",
            Val::s(r.originator_conversation_id.clone()),
        ),
        KeyVal::new("InitiatedTime", Val::s(at.clone())),
        KeyVal::new("DebitAccountType", Val::s("Utility Account")),
        KeyVal::new("DebitPartyCharges", Val::s("")),
        KeyVal::bare("TransactionReason"),
        KeyVal::new("ReasonType", Val::s(r.reason.clone())),
        KeyVal::new(
            "TransactionStatus",
            Val::s(if r.reversed { "Reversed" } else { "Completed" }),
        ),
        KeyVal::new(
            "FinalisedTime",
            Val::s(if r.reversed {
                ids::timestamp14(now)
            } else {
                at
            }),
        ),
        KeyVal::new("Amount", Val::s(r.amount.to_string())),
        KeyVal::new("ConversationID", Val::s(r.conversation_id.clone())),
        KeyVal::new("ReceiptNo", Val::s(r.receipt.clone())),
    ]
}

fn complete_c2b(inner: &mut Inner, id: &str) -> Vec<Delivery> {
    let Some(tx) = inner.c2b.get_mut(id) else {
        return Vec::new();
    };
    if tx.done {
        return Vec::new();
    }
    tx.done = true;
    tx.job = None;
    let (shortcode, amount, msisdn, bill_ref, command) = (
        tx.shortcode.clone(),
        tx.amount,
        tx.msisdn.clone(),
        tx.bill_ref.clone(),
        tx.command_id.clone(),
    );
    let now = ids::now();
    let cents = amount as i64 * 100;
    let balance = {
        let acc = inner.accounts(&shortcode);
        acc.utility += cents;
        acc.utility
    };
    let credit = inner.shortcode_name(&shortcode);
    inner.receipts.insert(
        id.to_owned(),
        Receipt {
            receipt: id.to_owned(),
            amount,
            reason: if command == "CustomerBuyGoodsOnline" {
                "Buy Goods"
            } else {
                "Pay Bill"
            }
            .to_owned(),
            debit_party: customer_name(&msisdn),
            credit_party: credit,
            shortcode: shortcode.clone(),
            originator_conversation_id: String::new(),
            conversation_id: String::new(),
            at: now,
            reversed: false,
        },
    );
    let Some(reg) = inner.c2b_urls.get(&shortcode).cloned() else {
        // No URLs registered: M-Pesa completes the payment without notifying anyone.
        return Vec::new();
    };
    let external_validation = inner
        .shortcodes
        .get(&shortcode)
        .is_some_and(|s| s.c2b_external_validation);
    // The registration's API version decides how the MSISDN is presented.
    let shown_msisdn = if reg.version >= 2 {
        mask_msisdn(&msisdn)
    } else {
        hex_sha256(&msisdn)
    };
    let note = C2bNotification {
        transaction_type: if command == "CustomerBuyGoodsOnline" {
            "Buy Goods"
        } else {
            "Pay Bill"
        }
        .to_owned(),
        trans_id: id.to_owned(),
        trans_time: ids::timestamp14(now),
        trans_amount: cents_text(cents),
        business_short_code: shortcode.clone(),
        bill_ref_number: bill_ref,
        invoice_number: String::new(),
        org_account_balance: cents_text(balance),
        third_party_trans_id: String::new(),
        msisdn: shown_msisdn,
        first_name: "John".to_owned(),
        middle_name: "J.".to_owned(),
        last_name: "Doe".to_owned(),
    };
    let mut out = Vec::new();
    if external_validation {
        let validation = C2bNotification {
            org_account_balance: String::new(),
            ..note.clone()
        };
        out.push(Delivery {
            kind: CallbackKind::C2bValidation,
            url: reg.validation_url.clone(),
            shortcode: shortcode.clone(),
            transaction: id.to_owned(),
            payload: Payload::C2b(Box::new(validation)),
            gate: Some(reg.response_type == "Completed"),
            suppressed: false,
        });
    }
    out.push(Delivery {
        kind: CallbackKind::C2bConfirmation,
        url: reg.confirmation_url,
        shortcode,
        transaction: id.to_owned(),
        payload: Payload::C2b(Box::new(note)),
        gate: None,
        suppressed: false,
    });
    out
}

/// `254708374149` → `2547 ***** 149` (C2B v2 presentation).
pub(crate) fn mask_msisdn(msisdn: &str) -> String {
    if msisdn.len() < 7 {
        return msisdn.to_owned();
    }
    format!("{} ***** {}", &msisdn[..4], &msisdn[msisdn.len() - 3..])
}

/// Lowercase hex SHA-256 (C2B v1 presentation of the MSISDN).
pub(crate) fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Control

pub(crate) fn set_outcome(
    shared: &Arc<Shared>,
    req: OutcomeRequest,
) -> Result<OutcomeApplied, ControlError> {
    let action = req.action.unwrap_or_default();
    let code = match (&req.result_code, action) {
        (Some(c), _) => c.clone(),
        (None, OutcomeAction::QueueTimeout) => Code::Num(codes::QUEUE_TIMEOUT_CODE),
        (None, OutcomeAction::NoCallback) => Code::Num(0),
        (None, OutcomeAction::Complete) => {
            return Err(ControlError::BadRequest(
                "result_code is required".to_owned(),
            ));
        }
    };
    let desc = req.result_desc.clone().or_else(|| {
        (action == OutcomeAction::QueueTimeout && req.result_code.is_none())
            .then(|| codes::QUEUE_TIMEOUT_DESC.to_owned())
    });
    let outcome = Outcome {
        code,
        desc,
        action,
        explicit: true,
    };
    let delay = req.delay_ms.map(Duration::from_millis);
    let ids: Vec<String> = [
        &req.checkout_request_id,
        &req.originator_conversation_id,
        &req.conversation_id,
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.is_empty())
    .cloned()
    .collect();
    let phone = req.phone_number.clone().filter(|p| !p.is_empty());
    if ids.is_empty() && phone.is_none() && req.amount.is_none() {
        return Err(ControlError::BadRequest(
            "give checkout_request_id, originator_conversation_id, conversation_id, phone_number or amount".to_owned(),
        ));
    }

    let mut inner = shared.lock();
    let mut applied = OutcomeApplied::default();
    for id in ids {
        let job = if let Some(tx) = inner.stk.get_mut(&id) {
            if tx.done.is_some() {
                return Err(ControlError::AlreadyCompleted(id));
            }
            tx.outcome = outcome.clone();
            Some(tx.job)
        } else {
            let conv = if inner.results.contains_key(&id) {
                Some(id.clone())
            } else {
                inner.originator_index.get(&id).cloned()
            };
            match conv.and_then(|c| inner.results.get_mut(&c)) {
                Some(tx) if tx.done.is_some() => return Err(ControlError::AlreadyCompleted(id)),
                Some(tx) => {
                    tx.outcome = outcome.clone();
                    Some(tx.job)
                }
                None => None,
            }
        };
        match job {
            Some(job) => {
                if let Some(d) = delay {
                    reschedule(&inner, job, d);
                }
                applied.applied_to.push(id);
            }
            None => {
                inner
                    .id_outcomes
                    .insert(id.clone(), (outcome.clone(), delay));
                applied.registered_ids.push(id);
            }
        }
    }

    if phone.is_some() || req.amount.is_some() {
        let matches = |p: &str, a: u64| {
            phone.as_deref().is_none_or(|x| x == p) && req.amount.is_none_or(|x| x == a)
        };
        let mut jobs = Vec::new();
        for tx in inner
            .stk
            .values_mut()
            .filter(|t| t.done.is_none() && matches(&t.phone, t.amount))
        {
            tx.outcome = outcome.clone();
            jobs.push(tx.job);
            applied.applied_to.push(tx.checkout_id.clone());
        }
        for tx in inner.results.values_mut().filter(|t| {
            t.kind == ResultKind::B2c
                && t.done.is_none()
                && matches(t.msisdn.as_deref().unwrap_or(""), t.amount.unwrap_or(0))
        }) {
            tx.outcome = outcome.clone();
            jobs.push(tx.job);
            applied.applied_to.push(tx.conversation_id.clone());
        }
        if let Some(d) = delay {
            for j in jobs {
                reschedule(&inner, j, d);
            }
        }
        inner.rules.push(Rule {
            phone,
            amount: req.amount,
            outcome,
            delay,
            remaining: req.times,
        });
        applied.rule_stored = true;
    }
    Ok(applied)
}

pub(crate) fn transactions(shared: &Shared) -> Vec<TransactionView> {
    let inner = shared.lock();
    let mut out: Vec<TransactionView> = Vec::new();
    for tx in inner.stk.values() {
        out.push(TransactionView {
            kind: "stk".to_owned(),
            id: tx.checkout_id.clone(),
            secondary_id: tx.merchant_id.clone(),
            status: if tx.done.is_some() {
                "completed"
            } else {
                "pending"
            }
            .to_owned(),
            result_code: tx.done.as_ref().map(|d| d.code.clone()),
            result_desc: tx.done.as_ref().map(|d| d.desc.clone()),
            receipt: tx.done.as_ref().and_then(|d| d.receipt.clone()),
            amount: Some(tx.amount),
            phone: Some(tx.phone.clone()),
        });
    }
    for tx in inner.results.values() {
        let kind = serde_json::to_value(tx.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        out.push(TransactionView {
            kind,
            id: tx.conversation_id.clone(),
            secondary_id: tx.originator_conversation_id.clone(),
            status: if tx.done.is_some() {
                "completed"
            } else {
                "pending"
            }
            .to_owned(),
            result_code: tx.done.as_ref().map(|d| d.code.clone()),
            result_desc: tx.done.as_ref().map(|d| d.desc.clone()),
            receipt: tx.done.as_ref().and_then(|d| d.receipt.clone()),
            amount: tx.amount,
            phone: tx.msisdn.clone(),
        });
    }
    for tx in inner.c2b.values() {
        out.push(TransactionView {
            kind: "c2b".to_owned(),
            id: tx.trans_id.clone(),
            secondary_id: tx.bill_ref.clone(),
            status: if tx.done { "completed" } else { "pending" }.to_owned(),
            result_code: tx.done.then_some(Code::Num(0)),
            result_desc: None,
            receipt: Some(tx.trans_id.clone()),
            amount: Some(tx.amount),
            phone: Some(tx.msisdn.clone()),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}
