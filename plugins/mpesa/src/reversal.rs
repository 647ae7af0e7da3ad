//! Reversals of completed payments: the request to Daraja — two-phase: the reversal and its idempotency key are committed before it is sent, and its result URLs name it — and its result, which marks the original `reversed`.

use malipo_plugin_sdk::{Error, Input, Result, Sql};
use serde_json::{Map, Value, json};

use crate::callbacks::{ResultEnvelope, find_transaction, ignored};
use crate::credentials::Credentials;
use crate::daraja::Daraja;
use crate::env::{Env, retry};
use crate::idempotency::Keyed;
use crate::intents::UNANSWERED_MS;
use crate::submission::{self, SUBMITTING, Sent};
use crate::transactions::{self, NewTxn, Outcome, RECONCILE_BATCH, Txn, settle};
use crate::validate;

/// Where reversals are sent.
const PATH: &str = "/mpesa/reversal/v1/request";

/// The remarks of a transaction-status query about a reversal.
pub const ASK_REMARKS: &str = "Unconfirmed reversal";

/// Why reconciliation failed a reversal.
const UNANSWERED_DESC: &str = "The reversal was sent but Daraja's answer was lost and no result came \
     within 10 minutes: it was never confirmed, and it is not sent again.";

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
///
/// Two-phase: the reversal (`pending`, `submitting`) and the idempotency
/// key are written first — the host commits them before the request
/// leaves — and Daraja's answer is recorded after. Its ResultURL and
/// QueueTimeOutURL end in the reversal's id, so its result settles it even
/// if that answer is lost.
pub fn create(env: &dyn Env, input: &Input) -> Result<Value> {
    let (db, ctx) = (env.db(), env.ctx());
    let original = named_transaction(env, input)?;
    if !REVERSIBLE.contains(&original.kind.as_str()) {
        return Err(Error::validation(
            "Only payments received (STK push or C2B) can be reversed.",
        ));
    }
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
    // Before the payment's state is checked: the reversal a key made may
    // have reversed it since.
    if let Some(keyed) = &keyed {
        if let Some(answer) = keyed.replay(db)? {
            return Ok(answer);
        }
        // A call with this key began and its answer was not recorded (the
        // server stopped while Daraja held it): the reversal may have
        // reached Daraja. It is never sent again; the caller gets it as it
        // stands (pending until its result or reconciliation settles it).
        if let Some(id) = keyed.begun(db)? {
            return resume(env, &id);
        }
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
    let credentials = Credentials::load(env)?;
    let daraja = Daraja::new(env, &credentials);
    // Settle the prerequisites before recording anything: a failure here
    // reverses nothing.
    let id = malipo_plugin_sdk::id::uuid_v4()?;
    let mut body: Map<String, Value> = daraja.initiator_fields_for("reversal", Some(&id))?;
    daraja.token()?;
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
    // Checked after the prerequisites (which may talk to Daraja, and so
    // commit), in the same transaction as the reversal it allows: one at a
    // time — a reversal sent and not answered is under way too.
    if db.exists(
        "SELECT 1 FROM mpesa_transactions WHERE kind = 'reversal' AND original_transaction_id = ?1 \
         AND status IN ('pending', 'completed')",
        &[Sql::from(original.id.as_str())],
    )? {
        return Err(Error::conflict(
            "A reversal of this payment is already under way.",
        ));
    }
    // Phase one: the reversal and the key; the host commits them before
    // the request leaves.
    transactions::insert(
        db,
        ctx,
        &NewTxn {
            id: &id,
            kind: "reversal",
            status: "pending",
            store_id: original.store_id.as_deref(),
            phone_number: original.phone_number.as_deref(),
            amount,
            original_transaction_id: Some(&original.id),
            command_id: Some("TransactionReversal"),
            remarks: Some(remarks),
            ..NewTxn::default()
        },
    )?;
    submission::mark(db, &id, Some(SUBMITTING))?;
    if let Some(keyed) = &keyed {
        keyed.begin(db, ctx, &id)?;
    }
    // Phase two: the answer — its ids, a refusal (failed), or none (still
    // pending and submitting).
    let sent = submission::send(env, &daraja, &id, PATH, &Value::Object(body), "Reversal")?;
    let txn = transactions::find(db, &id)?.ok_or_else(|| Error::internal("a reversal vanished"))?;
    let answer = json!({ "transaction": txn.to_json() });
    // Unanswered, the key stays begun: a retry answers the reversal as it
    // then stands.
    if let Some(keyed) = &keyed
        && sent != Sent::Unanswered
    {
        keyed.remember(db, ctx, &answer)?;
    }
    Ok(answer)
}

/// A retry with the key of a reversal whose answer was never recorded: that
/// reversal as it stands.
fn resume(env: &dyn Env, id: &str) -> Result<Value> {
    let txn = transactions::find(env.db(), id)?
        .filter(|t| t.kind == "reversal")
        .ok_or_else(|| {
            Error::conflict(format!(
                "An earlier reversal with this Idempotency-Key ({id}) was sent to Daraja and its answer \
                 was not recorded; it is not sent again. Use a new key for a new reversal."
            ))
        })?;
    Ok(json!({ "transaction": txn.to_json() }))
}

/// The reversal a result posted to `reversal/<result|timeout>/<id>` names,
/// when no reversal has the result's conversation ids: one whose answer was
/// lost (or is not recorded yet) learns them now. `None` if the reference
/// names no reversal, or one Daraja gave other ids.
fn named_by(
    env: &dyn Env,
    reference: Option<&str>,
    envelope: &ResultEnvelope,
) -> Result<Option<Txn>> {
    let db = env.db();
    let Some(txn) = reference
        .map(|id| transactions::find(db, id))
        .transpose()?
        .flatten()
        .filter(|t| t.kind == "reversal")
    else {
        return Ok(None);
    };
    let known = |column: &str| txn.json.get(column).is_some_and(|v| !v.is_null());
    if known("originator_conversation_id") || known("conversation_id") {
        return Ok(None);
    }
    db.execute(
        "UPDATE mpesa_transactions SET originator_conversation_id = ?1, conversation_id = ?2, \
         submission = NULL WHERE id = ?3",
        &[
            Sql::from(envelope.originator_conversation_id.as_deref()),
            Sql::from(envelope.conversation_id.as_deref()),
            Sql::from(txn.id.as_str()),
        ],
    )?;
    transactions::find(db, &txn.id)
}

/// Reconciliation: every reversal whose answer was lost (no conversation id
/// of its own), with no result within [`UNANSWERED_MS`] and about which
/// Daraja was asked without that settling it, fails (it was never
/// confirmed; it is not sent again). Answers the reversals it failed.
pub fn fail_unanswered(env: &dyn Env) -> Result<Vec<Txn>> {
    let unanswered = transactions::select(
        env.db(),
        &format!(
            "WHERE kind = 'reversal' AND status = 'pending' AND originator_conversation_id IS NULL \
             AND conversation_id IS NULL AND created_ms <= ?1 \
             AND EXISTS (SELECT 1 FROM mpesa_requests r WHERE r.transaction_id = mpesa_transactions.id) \
             ORDER BY created_ms, id LIMIT {RECONCILE_BATCH}"
        ),
        &[Sql::Integer(transactions::created_before(
            env,
            UNANSWERED_MS,
        ))],
    )?;
    transactions::fail_unconfirmed(env, unanswered, UNANSWERED_DESC, "reversal")
}

/// Applies a reversal result (or queue timeout) callback, posted to a URL
/// that ends in `reference` (the reversal's id) for reversals sent since
/// their result URLs name them.
pub fn on_result(
    env: &dyn Env,
    envelope: &ResultEnvelope,
    reference: Option<&str>,
    raw: &str,
    received_at: u64,
    timeout: bool,
) -> Result<Value> {
    // By its conversation ids; else (its answer was lost, or is not
    // recorded yet) by the reversal its URL names.
    let txn = match find_transaction(env, "reversal", envelope)? {
        Some(txn) => txn,
        None => named_by(env, reference, envelope)?
            .ok_or_else(|| retry("No reversal matches this result (yet)."))?,
    };
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
