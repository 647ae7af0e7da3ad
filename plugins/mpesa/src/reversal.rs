//! Reversals of completed payments: the request to Daraja and its result, which marks the original `reversed`.

use malipo_plugin_sdk::{Error, Input, Result, Sql};
use serde_json::{Map, Value, json};

use crate::callbacks::{ResultEnvelope, find_transaction, ignored};
use crate::credentials::Credentials;
use crate::daraja::Daraja;
use crate::env::{Env, retry, upstream};
use crate::idempotency::Keyed;
use crate::transactions::{self, NewTxn, Outcome, Txn, settle};
use crate::validate;

/// Kinds of transaction that can be reversed: money the tenant received.
const REVERSIBLE: &[&str] = &["stk", "c2b"];

/// The transaction a request names by `transaction_id` or `receipt` (both
/// may be given if they agree), among those the caller may see.
pub fn named_transaction(env: &dyn Env, input: &Input) -> Result<Txn> {
    let (db, ctx) = (env.db(), env.ctx());
    let by_id = validate::opt_id(input, "transaction_id")?;
    let receipt = validate::opt_id(input, "receipt")?;
    let txn = match (by_id, receipt) {
        (None, None) => return Err(Error::validation("Give `transaction_id` or `receipt`.")),
        (Some(id), _) => transactions::visible(db, ctx, id)?,
        (None, Some(receipt)) => {
            let found = transactions::select(
                db,
                "WHERE receipt = ?1 AND kind IN ('stk', 'c2b', 'b2c') ORDER BY created_ms, id LIMIT 1",
                &[Sql::from(receipt)],
            )?
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found(format!("No M-Pesa transaction with receipt `{receipt}`.")))?;
            transactions::visible(db, ctx, &found.id)?
        }
    };
    if let (Some(_), Some(receipt)) = (by_id, receipt)
        && txn.receipt.as_deref() != Some(receipt)
    {
        return Err(Error::validation(
            "`receipt` is not the receipt of `transaction_id`.",
        ));
    }
    Ok(txn)
}

/// `mpesa.reversals.create`: asks Daraja to reverse (part of) a completed payment.
pub fn create(env: &dyn Env, input: &Input) -> Result<Value> {
    let (db, ctx) = (env.db(), env.ctx());
    let original = named_transaction(env, input)?;
    if !REVERSIBLE.contains(&original.kind.as_str()) {
        return Err(Error::validation(
            "Only payments received (STK push or C2B) can be reversed.",
        ));
    }
    match original.status.as_str() {
        "completed" => {}
        "reversed" => return Err(Error::conflict("This payment has already been reversed.")),
        other => {
            return Err(Error::conflict(format!(
                "Only a completed payment can be reversed; this one is {other}."
            )));
        }
    }
    let receipt = original.receipt.clone().ok_or_else(|| {
        Error::conflict("The payment's M-Pesa receipt is not known yet, so it cannot be reversed.")
    })?;
    let amount = match input.get("amount") {
        None => original.amount,
        value => validate::amount_field(value, "amount", 1, original.amount)?,
    };
    let remarks = validate::text_field(input, "remarks", 2, 100)?;
    let request = json!({ "original": original.id, "amount": amount, "remarks": remarks });
    let keyed = Keyed::new(
        "mpesa.reversals.create",
        validate::idempotency_key(input)?,
        &request,
    );
    if let Some(keyed) = &keyed
        && let Some(answer) = keyed.replay(db)?
    {
        return Ok(answer);
    }
    if db.exists(
        "SELECT 1 FROM mpesa_transactions WHERE kind = 'reversal' AND original_transaction_id = ?1 \
         AND status IN ('pending', 'completed')",
        &[Sql::from(original.id.as_str())],
    )? {
        return Err(Error::conflict(
            "A reversal of this payment is already under way.",
        ));
    }
    let credentials = Credentials::load(env)?;
    let daraja = Daraja::new(env, &credentials);
    let mut body: Map<String, Value> = daraja.initiator_fields("reversal")?;
    body.insert(
        "Initiator".into(),
        json!(credentials.settings.initiator_name),
    );
    body.insert("CommandID".into(), json!("TransactionReversal"));
    body.insert("TransactionID".into(), json!(receipt));
    body.insert("Amount".into(), json!(amount));
    body.insert(
        "ReceiverParty".into(),
        json!(credentials.settings.shortcode),
    );
    body.insert("RecieverIdentifierType".into(), json!("11"));
    body.insert("Remarks".into(), json!(remarks));
    body.insert("Occasion".into(), json!(original.id));
    let ack = daraja
        .post("/mpesa/reversal/v1/request", &Value::Object(body))?
        .into_accepted("reversal")?;
    let text = |name: &str| {
        ack.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let (originator, conversation) = (text("OriginatorConversationID"), text("ConversationID"));
    if originator.is_none() && conversation.is_none() {
        return Err(upstream(
            "Daraja accepted the reversal but sent no conversation id.",
        ));
    }
    let id = malipo_plugin_sdk::id::uuid_v4()?;
    let txn = transactions::insert(
        db,
        ctx,
        &NewTxn {
            id: &id,
            kind: "reversal",
            status: "pending",
            store_id: original.store_id.as_deref(),
            phone_number: original.phone_number.as_deref(),
            amount,
            originator_conversation_id: originator,
            conversation_id: conversation,
            original_transaction_id: Some(&original.id),
            command_id: Some("TransactionReversal"),
            remarks: Some(remarks),
            ..NewTxn::default()
        },
    )?;
    let answer = json!({ "transaction": txn.to_json() });
    if let Some(keyed) = &keyed {
        keyed.remember(db, ctx, &answer)?;
    }
    Ok(answer)
}

/// Applies a reversal result (or queue timeout) callback.
pub fn on_result(
    env: &dyn Env,
    envelope: &ResultEnvelope,
    raw: &str,
    received_at: u64,
    timeout: bool,
) -> Result<Value> {
    let txn = find_transaction(env, "reversal", envelope)?
        .ok_or_else(|| retry("No reversal matches this result (yet)."))?;
    if !txn.is_pending() {
        return Ok(ignored(&txn, "the reversal is already final"));
    }
    let code = envelope.code.as_deref();
    let status = match (timeout, code) {
        (true, _) => "timeout",
        (false, Some("0")) => "completed",
        (false, _) => "failed",
    };
    if status == "completed"
        && let Some(original) = txn.original_transaction_id.as_deref()
    {
        // Before settling, so the reversal's event follows the original's change.
        transactions::mark_reversed(env.db(), original, &txn.id, received_at)?;
    }
    let desc = if envelope.desc.is_empty() && timeout {
        "The request timed out in Daraja's queue."
    } else {
        &envelope.desc
    };
    let applied = settle(
        env,
        &txn,
        &Outcome {
            status,
            result_code: code,
            result_desc: Some(desc),
            receipt: envelope
                .transaction_id
                .as_deref()
                .filter(|_| status == "completed"),
            raw_callback: Some(raw),
            at_ms: received_at,
            ..Outcome::default()
        },
    )?;
    Ok(json!({ "applied": applied, "transaction_id": txn.id, "status": status }))
}
