//! M-Pesa Express (STK push): the push (intent committed before it is sent), its callback, the STK query, and the reconciliation job that asks about what stayed pending (STK pushes, B2C payouts and reversals).

use malipo_plugin_sdk::{Error, Input, Result, Sql};
use serde_json::{Value, json};

use crate::clock::DAY_MS;
use crate::credentials::Credentials;
use crate::daraja::{Daraja, amount_value, code_text};
use crate::env::{Env, codes, retry, upstream};
use crate::idempotency::Keyed;
use crate::transactions::{self, NewTxn, Outcome, RECONCILE_BATCH, Txn, settle, status_for_code};
use crate::validate;
use crate::{b2c, intents, reversal, submission};

/// A pending STK payment with no final answer after this long times out.
pub const GIVE_UP_MS: i64 = DAY_MS;
/// A pending payout or reversal is asked about again after this long.
const ASK_AGAIN_MS: i64 = 10 * 60 * 1000;

/// `AccountReference` when neither the request nor the organization's
/// `payments.account_reference` setting gives one (the host's default in
/// `host/src/settings.rs`).
const DEFAULT_ACCOUNT_REFERENCE: &str = "Malipo";
/// `TransactionDesc` likewise (`payments.transaction_desc`).
const DEFAULT_TRANSACTION_DESC: &str = "Payment";

/// A text setting of the organization (`settings` table, JSON values), or
/// `default` when it is not set.
fn setting_text(db: &dyn malipo_plugin_sdk::Db, key: &str, default: &str) -> Result<String> {
    let rows = db.query(
        "SELECT value FROM settings WHERE key = ?1",
        &[Sql::from(key)],
    )?;
    Ok(rows
        .first()
        .and_then(|row| row.text("value"))
        .and_then(|value| serde_json::from_str::<String>(value).ok())
        .unwrap_or_else(|| default.to_owned()))
}

/// `mpesa.stk-push`: asks the customer's phone to pay.
pub fn push(env: &dyn Env, input: &Input) -> Result<Value> {
    let (db, ctx) = (env.db(), env.ctx());
    let phone = validate::phone_field(input.get("phone_number"), "phone_number")?;
    let amount = validate::amount_field(input.get("amount"), "amount", 1, 250_000)?;
    // Left out (or null): the organization's default; given: checked (a
    // blank one is refused, not defaulted).
    let given = |field: &str| input.get(field).is_some_and(|v| !v.is_null());
    let account_reference = if given("account_reference") {
        validate::text_field(input, "account_reference", 1, 12)?.to_owned()
    } else {
        setting_text(db, "payments.account_reference", DEFAULT_ACCOUNT_REFERENCE)?
    };
    let description = if given("description") {
        validate::text_field(input, "description", 1, 13)?.to_owned()
    } else {
        setting_text(db, "payments.transaction_desc", DEFAULT_TRANSACTION_DESC)?
    };
    let (account_reference, description) = (account_reference.as_str(), description.as_str());
    let store_id = transactions::resolve_store(db, ctx, input)?;
    let request = json!({
        "phone_number": phone,
        "amount": amount,
        "account_reference": account_reference,
        "description": description,
        "store_id": store_id,
    });
    let keyed = Keyed::new(
        "mpesa.stk-push",
        validate::idempotency_key(input)?,
        &request,
    );
    if let Some(keyed) = &keyed
        && let Some(answer) = keyed.replay(db)?
    {
        return Ok(answer);
    }
    // A call with this key began and its answer was not recorded: the push
    // may have reached the customer's phone. It is never sent again; the
    // caller gets its payment as it stands (pending until its callback, or
    // failed by reconciliation if none comes).
    if let Some(keyed) = &keyed
        && let Some(intent) = keyed.begun(db)?
    {
        if let Some(txn) = intents::resume(env, &intent)? {
            return Ok(json!({ "transaction": txn.to_json() }));
        }
        return Err(Error::conflict(format!(
            "An earlier STK push with this Idempotency-Key (intent {intent}) was sent to Daraja and \
             its answer was not recorded; it is not sent again. Use a new key for a new payment."
        )));
    }
    let credentials = Credentials::load(env)?;
    let daraja = Daraja::new(env, &credentials);
    let shortcode = &credentials.settings.shortcode;
    let (password, timestamp) = daraja.stk_password();
    // The intent's id ends the CallBackURL, so that the callback finds the
    // intent even if Daraja's answer (the CheckoutRequestID) is lost.
    let id = malipo_plugin_sdk::id::uuid_v4()?;
    let body = json!({
        "BusinessShortCode": shortcode.parse::<u64>().map_or_else(|_| json!(shortcode), |n| json!(n)),
        "Password": password,
        "Timestamp": timestamp,
        "TransactionType": "CustomerPayBillOnline",
        "Amount": amount,
        "PartyA": phone,
        "PartyB": shortcode,
        "PhoneNumber": phone,
        "CallBackURL": daraja.callback_url(&intents::callback_kind(&id))?,
        "AccountReference": account_reference,
        "TransactionDesc": description,
    });
    // Phase one: the intent (with what its transaction will need) and the
    // key are written; the host commits them before the push leaves.
    db.execute(
        "INSERT INTO mpesa_submissions (id, operation, idempotency_key, phone_number, amount, created_at, created_ms, \
         store_id, account_reference, description, created_by) \
         VALUES (?1, 'mpesa.stk-push', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        &[
            Sql::from(id.as_str()),
            Sql::from(keyed.as_ref().map(|k| k.key)),
            Sql::from(phone.as_str()),
            Sql::Integer(amount),
            Sql::from(crate::clock::rfc3339_ms(ctx.now_ms)),
            Sql::Integer(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX)),
            Sql::from(store_id.as_deref()),
            Sql::from(account_reference),
            Sql::from(description),
            Sql::from(ctx.user_id.clone()),
        ],
    )?;
    if let Some(keyed) = &keyed {
        keyed.begin(db, ctx, &id)?;
    }
    let ack = daraja
        .post("/mpesa/stkpush/v1/processrequest", &body)?
        .into_accepted("STK push")?;
    // Phase two: the answer.
    let text = |name: &str| {
        ack.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let checkout = text("CheckoutRequestID")
        .ok_or_else(|| upstream("Daraja accepted the STK push but sent no CheckoutRequestID."))?;
    // The push's callback may have come first and made the transaction
    // from the intent (its URL names the intent): then it gets the ids.
    let txn = if transactions::find(db, &id)?.is_some() {
        intents::record_ids(env, &id, text("MerchantRequestID"), Some(checkout))?
    } else {
        transactions::insert(
            db,
            ctx,
            &NewTxn {
                id: &id,
                kind: "stk",
                status: "pending",
                store_id: store_id.as_deref(),
                phone_number: Some(&phone),
                amount,
                account_reference: Some(account_reference),
                description: Some(description),
                merchant_request_id: text("MerchantRequestID"),
                checkout_request_id: Some(checkout),
                ..NewTxn::default()
            },
        )?
    };
    intents::forget(env, &id)?;
    let answer = json!({ "transaction": txn.to_json() });
    if let Some(keyed) = &keyed {
        keyed.remember(db, ctx, &answer)?;
    }
    Ok(answer)
}

/// What an STK query said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryAnswer {
    /// A final result code (`0`, `1032`, `1037`, …) and its description.
    Final { code: String, desc: String },
    /// Daraja is still processing (`4999`, or `500.001.1001` "being processed").
    Processing(String),
    /// No usable answer (refused, malformed); the payment stays pending.
    NoAnswer(String),
}

/// Classifies the body of an STK query reply.
pub fn classify_query(reply: &crate::daraja::Reply) -> QueryAnswer {
    let desc = reply
        .json
        .get("ResultDesc")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(code) = reply.json.get("ResultCode").and_then(code_text)
        && (200..300).contains(&reply.status)
    {
        return match code.as_str() {
            "4999" => QueryAnswer::Processing(desc),
            "" => QueryAnswer::NoAnswer(reply.describe()),
            _ => QueryAnswer::Final { code, desc },
        };
    }
    match reply.error() {
        // Daraja's "being processed" (and its flaky empty variant): no answer yet.
        Some((code, message)) if code == "500.001.1001" => QueryAnswer::Processing(message),
        _ => QueryAnswer::NoAnswer(reply.describe()),
    }
}

/// Asks Daraja about one STK push.
pub fn query_at_daraja(daraja: &Daraja<'_>, checkout_request_id: &str) -> Result<QueryAnswer> {
    let (password, timestamp) = daraja.stk_password();
    let body = json!({
        "BusinessShortCode": daraja.credentials().settings.shortcode,
        "Password": password,
        "Timestamp": timestamp,
        "CheckoutRequestID": checkout_request_id,
    });
    let reply = daraja.post("/mpesa/stkpushquery/v1/query", &body)?;
    Ok(classify_query(&reply))
}

/// Applies a query answer to a pending STK payment: a final code settles
/// it; without one it stays pending until it is [`GIVE_UP_MS`] old, then
/// times out. Answers whether it changed.
pub fn apply_answer(env: &dyn Env, txn: &Txn, answer: &QueryAnswer) -> Result<bool> {
    let now = env.ctx().now_ms;
    match answer {
        QueryAnswer::Final { code, desc } => settle(
            env,
            txn,
            &Outcome {
                status: status_for_code(code),
                result_code: Some(code),
                result_desc: Some(desc),
                note: Some(if code == "0" {
                    "confirmed by an STK query; the receipt comes with the callback"
                } else {
                    "settled by an STK query"
                }),
                at_ms: now,
                ..Outcome::default()
            },
        ),
        QueryAnswer::Processing(_) | QueryAnswer::NoAnswer(_) => {
            let age = i64::try_from(now)
                .unwrap_or(i64::MAX)
                .saturating_sub(txn.created_ms);
            if age < GIVE_UP_MS {
                return Ok(false);
            }
            settle(
                env,
                txn,
                &Outcome {
                    status: "timeout",
                    result_desc: Some("No final answer from Daraja within 24 hours."),
                    note: Some("timed out by reconciliation"),
                    at_ms: now,
                    ..Outcome::default()
                },
            )
        }
    }
}

fn answer_json(answer: &QueryAnswer) -> Value {
    match answer {
        QueryAnswer::Final { code, desc } => {
            json!({ "answered": true, "result_code": code, "result_desc": desc })
        }
        QueryAnswer::Processing(desc) => {
            json!({ "answered": false, "processing": true, "result_desc": desc })
        }
        QueryAnswer::NoAnswer(desc) => {
            json!({ "answered": false, "processing": false, "result_desc": desc })
        }
    }
}

/// `mpesa.transactions.query`: asks Daraja about a pending STK payment and applies the answer.
pub fn query(env: &dyn Env, input: &Input) -> Result<Value> {
    let (db, ctx) = (env.db(), env.ctx());
    let id = validate::req_id(input, "id")?;
    let txn = transactions::visible(db, ctx, id)?;
    if txn.kind != "stk" {
        return Err(Error::conflict(
            "Only STK push payments can be queried; use POST /api/v1/mpesa/transaction-status for others.",
        ));
    }
    if !txn.is_pending() {
        return Ok(json!({
            "transaction": txn.to_json(),
            "query": { "answered": false, "applied": false, "result_desc": "The transaction is already final." },
        }));
    }
    let checkout = txn
        .checkout_request_id
        .as_deref()
        .ok_or_else(|| Error::internal("a pending STK payment without a CheckoutRequestID"))?;
    let credentials = Credentials::load(env)?;
    let daraja = Daraja::new(env, &credentials);
    let answer = query_at_daraja(&daraja, checkout)?;
    let applied = apply_answer(env, &txn, &answer)?;
    let current = transactions::find(db, &txn.id)?.unwrap_or(txn);
    let mut query = answer_json(&answer);
    query["applied"] = json!(applied);
    Ok(json!({ "transaction": current.to_json(), "query": query }))
}

/// `payments.reconcile` (job): queries every pending STK payment older than
/// `older_than_secs` (oldest first, a batch per run) and applies the answers.
pub fn reconcile(env: &dyn Env, input: &Input) -> Result<Value> {
    let (db, ctx) = (env.db(), env.ctx());
    let older_than = input.opt_u64("older_than_secs")?.unwrap_or(60);
    let now = i64::try_from(ctx.now_ms).unwrap_or(i64::MAX);
    let cutoff =
        now.saturating_sub(i64::try_from(older_than.saturating_mul(1000)).unwrap_or(i64::MAX));
    let pending = transactions::select(
        db,
        &format!(
            "WHERE kind = 'stk' AND status = 'pending' AND checkout_request_id IS NOT NULL AND created_ms <= ?1 \
             ORDER BY created_ms, id LIMIT {RECONCILE_BATCH}"
        ),
        &[Sql::Integer(cutoff)],
    )?;
    let credentials = match Credentials::load(env) {
        Ok(credentials) => Some(credentials),
        Err(error) if error.code == Error::CONFLICT => None,
        Err(error) => return Err(error),
    };
    let daraja = credentials.as_ref().map(|c| Daraja::new(env, c));
    let mut counts = serde_json::Map::new();
    let mut errors = Vec::new();
    // Pushes whose answer was lost and whose callback never came: nothing
    // to ask Daraja about (no CheckoutRequestID), so past their time they
    // fail — they are never sent again.
    let mut unanswered = intents::fail_unanswered(env)?;
    // Reversals whose answer was lost and whose result did not come likewise
    // (before the asking below, which they have had).
    unanswered.extend(reversal::fail_unanswered(env)?);
    for txn in &unanswered {
        let slot = counts.entry(txn.status.clone()).or_insert(json!(0));
        *slot = json!(slot.as_u64().unwrap_or(0) + 1);
    }
    // Payments this run settled (the host audits the run only if any).
    let mut changed = unanswered.len();
    // After Daraja fails to answer once, this run stops asking.
    let mut unreachable: Option<String> = None;
    for txn in &pending {
        let answer = match (&daraja, &unreachable, txn.checkout_request_id.as_deref()) {
            (None, _, _) => QueryAnswer::NoAnswer("M-Pesa is not configured".to_owned()),
            (_, Some(reason), _) => QueryAnswer::NoAnswer(reason.clone()),
            (_, _, None) => QueryAnswer::NoAnswer("no CheckoutRequestID".to_owned()),
            (Some(daraja), None, Some(checkout)) => match query_at_daraja(daraja, checkout) {
                Ok(answer) => answer,
                Err(error) if error.code == Error::INTERNAL => return Err(error),
                Err(error) => {
                    if error.code == codes::UNAVAILABLE || error.code == codes::UPSTREAM {
                        unreachable = Some(error.message.clone());
                    }
                    QueryAnswer::NoAnswer(error.message)
                }
            },
        };
        if let QueryAnswer::NoAnswer(reason) = &answer
            && errors.len() < 20
        {
            env.warn(&format!(
                "reconcile: no answer for STK payment {}: {reason}",
                txn.id
            ));
            errors.push(json!({ "transaction_id": txn.id, "error": reason }));
        }
        apply_answer(env, txn, &answer)?;
        let status =
            transactions::find(db, &txn.id)?.map_or_else(|| txn.status.clone(), |t| t.status);
        changed += usize::from(status != txn.status);
        let slot = counts.entry(status).or_insert(json!(0));
        *slot = json!(slot.as_u64().unwrap_or(0) + 1);
    }
    // B2C payouts and reversals pending past the cutoff (a result lost, a
    // send interrupted) are asked about by a transaction-status query —
    // never sent again — at most once per ASK_AGAIN_MS each.
    let mut asked = 0;
    if credentials.is_some() && unreachable.is_none() {
        let recent = now.saturating_sub(ASK_AGAIN_MS);
        let stale = transactions::select(
            db,
            &format!(
                "WHERE kind IN ('b2c', 'reversal') AND status = 'pending' AND created_ms <= ?1 \
                 AND (submission IS NULL OR submission = 'submitting') \
                 AND NOT EXISTS (SELECT 1 FROM mpesa_requests r WHERE r.transaction_id = mpesa_transactions.id \
                 AND r.created_ms > ?2) ORDER BY created_ms, id LIMIT {RECONCILE_BATCH}"
            ),
            &[Sql::Integer(cutoff), Sql::Integer(recent)],
        )?;
        for txn in &stale {
            let remarks = if txn.kind == "reversal" {
                reversal::ASK_REMARKS
            } else {
                b2c::ASK_REMARKS
            };
            if submission::ask(env, &txn.id, remarks)? {
                asked += 1;
            } else if errors.len() < 20 {
                errors.push(
                    json!({ "transaction_id": txn.id, "error": "Daraja could not be asked" }),
                );
            }
        }
    }
    Ok(json!({
        "checked": pending.len() + unanswered.len(),
        "changed": changed,
        "configured": credentials.is_some(),
        "by_status": counts,
        "asked_payouts": asked,
        "errors": errors,
    }))
}

/// Reads a `CallbackMetadata` item by name (never by position).
fn metadata<'a>(callback: &'a Value, name: &str) -> Option<&'a Value> {
    callback
        .pointer("/CallbackMetadata/Item")
        .and_then(Value::as_array)?
        .iter()
        .find(|item| item.get("Name").and_then(Value::as_str) == Some(name))?
        .get("Value")
        .filter(|v| !v.is_null())
}

/// Why a successful callback does not match the stored request, if it does not.
fn mismatch(callback: &Value, txn: &Txn) -> Option<String> {
    let amount = metadata(callback, "Amount").and_then(amount_value);
    #[expect(clippy::cast_precision_loss, reason = "amounts are at most 250 000")]
    let expected = txn.amount as f64;
    match amount {
        None => return Some("the callback carries no Amount".to_owned()),
        Some(paid) if (paid - expected).abs() > 0.005 => {
            return Some(format!(
                "the callback Amount {paid} differs from the requested {}",
                txn.amount
            ));
        }
        Some(_) => {}
    }
    let phone = metadata(callback, "PhoneNumber").and_then(code_text);
    match (
        phone.as_deref().and_then(validate::normalize_phone),
        txn.phone_number.as_deref(),
    ) {
        (Some(paid_by), Some(asked)) if paid_by == asked => None,
        (None, _) => Some("the callback carries no valid PhoneNumber".to_owned()),
        (Some(paid_by), _) => Some(format!(
            "the callback PhoneNumber {paid_by} differs from the requested number"
        )),
    }
}

/// Applies an STK callback (`{"Body":{"stkCallback":{…}}}`) posted to
/// `kind` (`stk`, or `stk/<intent id>` for pushes since the URL names the
/// intent).
pub fn on_callback(
    env: &dyn Env,
    kind: &str,
    body: &Value,
    raw: &str,
    received_at: u64,
) -> Result<Value> {
    let callback = body
        .pointer("/Body/stkCallback")
        .filter(|v| v.is_object())
        .ok_or_else(|| {
            Error::bad_request("An STK callback must be {\"Body\":{\"stkCallback\":{…}}}.")
        })?;
    let text = |name: &str| {
        callback
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let checkout = text("CheckoutRequestID")
        .ok_or_else(|| Error::bad_request("The STK callback has no CheckoutRequestID."))?;
    let code = callback
        .get("ResultCode")
        .and_then(code_text)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::bad_request("The STK callback has no ResultCode."))?;
    let desc = text("ResultDesc").unwrap_or_default();
    // By its CheckoutRequestID; else (the push's answer was lost, or has
    // not been recorded yet) by the intent its URL names.
    let txn = match transactions::find_by(env.db(), "stk", "checkout_request_id", checkout)? {
        Some(txn) => txn,
        None => intents::for_callback(env, kind, text("MerchantRequestID"), checkout)?.ok_or_else(
            || {
                retry(format!(
                    "No STK payment with CheckoutRequestID `{checkout}` (yet)."
                ))
            },
        )?,
    };
    let ignored = |reason: &str| json!({ "applied": false, "transaction_id": txn.id, "status": txn.status, "reason": reason });
    if let (Some(given), Some(stored)) = (
        text("MerchantRequestID"),
        txn.merchant_request_id.as_deref(),
    ) && given != stored
    {
        return Ok(ignored(
            "the MerchantRequestID does not match the payment's",
        ));
    }
    let receipt = metadata(callback, "MpesaReceiptNumber")
        .and_then(code_text)
        .filter(|r| !r.is_empty());
    if !txn.is_pending() {
        // A payment an STK query confirmed learns its receipt from the late callback.
        if txn.status == "completed"
            && txn.receipt.is_none()
            && code == "0"
            && mismatch(callback, &txn).is_none()
            && let Some(receipt) = &receipt
        {
            env.db().execute(
                "UPDATE mpesa_transactions SET receipt = ?1, raw_callback = ?2, updated_at = ?3 \
                 WHERE id = ?4 AND receipt IS NULL",
                &[
                    Sql::from(receipt.as_str()),
                    Sql::from(raw),
                    Sql::from(crate::clock::rfc3339_ms(received_at)),
                    Sql::from(txn.id.as_str()),
                ],
            )?;
            return Ok(
                json!({ "applied": true, "transaction_id": txn.id, "status": txn.status, "reason": "receipt added" }),
            );
        }
        return Ok(ignored("the payment is already final"));
    }
    let status = status_for_code(&code);
    let mismatched = if status == "completed" {
        mismatch(callback, &txn)
    } else {
        None
    };
    let outcome = match &mismatched {
        Some(reason) => Outcome {
            status: "failed",
            result_code: Some(&code),
            result_desc: Some("callback did not match the request"),
            note: Some(reason),
            raw_callback: Some(raw),
            at_ms: received_at,
            ..Outcome::default()
        },
        None => Outcome {
            status,
            result_code: Some(&code),
            result_desc: Some(desc),
            receipt: receipt.as_deref().filter(|_| status == "completed"),
            raw_callback: Some(raw),
            at_ms: received_at,
            ..Outcome::default()
        },
    };
    if let Some(reason) = &mismatched {
        env.warn(&format!(
            "STK callback for {} did not match the request: {reason}",
            txn.id
        ));
    }
    let applied = settle(env, &txn, &outcome)?;
    let current =
        transactions::find(env.db(), &txn.id)?.map_or_else(|| txn.status.clone(), |t| t.status);
    Ok(json!({ "applied": applied, "transaction_id": txn.id, "status": current }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daraja::Reply;

    #[test]
    fn classifies_query_answers() {
        let final_ = Reply {
            status: 200,
            json: json!({"ResponseCode": "0", "ResultCode": "1032", "ResultDesc": "Request cancelled by user"}),
        };
        assert_eq!(
            classify_query(&final_),
            QueryAnswer::Final {
                code: "1032".into(),
                desc: "Request cancelled by user".into()
            }
        );
        let paid = Reply {
            status: 200,
            json: json!({"ResponseCode": "0", "ResultCode": 0, "ResultDesc": "ok"}),
        };
        assert!(matches!(classify_query(&paid), QueryAnswer::Final { code, .. } if code == "0"));
        let busy = Reply {
            status: 500,
            json: json!({"errorCode": "500.001.1001", "errorMessage": "The transaction is being processed"}),
        };
        assert!(matches!(classify_query(&busy), QueryAnswer::Processing(_)));
        let still = Reply {
            status: 200,
            json: json!({"ResultCode": "4999", "ResultDesc": "The transaction is still under processing"}),
        };
        assert!(matches!(classify_query(&still), QueryAnswer::Processing(_)));
        let refused = Reply {
            status: 400,
            json: json!({"errorCode": "400.002.02", "errorMessage": "Bad Request - Invalid CheckoutRequestID"}),
        };
        assert!(matches!(classify_query(&refused), QueryAnswer::NoAnswer(_)));
    }

    fn txn(amount: i64, phone: &str) -> Txn {
        Txn {
            id: "t".into(),
            kind: "stk".into(),
            status: "pending".into(),
            store_id: None,
            phone_number: Some(phone.into()),
            amount,
            merchant_request_id: None,
            checkout_request_id: Some("ws_CO_1".into()),
            receipt: None,
            original_transaction_id: None,
            created_ms: 0,
            json: serde_json::Map::new(),
        }
    }

    #[test]
    fn checks_callbacks_against_the_request() {
        let callback = json!({"CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": 1.00},
            {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
            {"Name": "Balance"},
            {"Name": "TransactionDate", "Value": 20191219102115_u64},
            {"Name": "PhoneNumber", "Value": 254708374149_u64}
        ]}});
        assert_eq!(mismatch(&callback, &txn(1, "254708374149")), None);
        assert!(mismatch(&callback, &txn(2, "254708374149")).is_some());
        assert!(mismatch(&callback, &txn(1, "254708374150")).is_some());
        assert!(mismatch(&json!({}), &txn(1, "254708374149")).is_some());
        assert_eq!(metadata(&callback, "Balance"), None);
    }
}
