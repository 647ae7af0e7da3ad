//! STK push intents (`mpesa_submissions`) whose Daraja answer was lost: a retry with the same key, the push's own callback (its URL names the intent) or reconciliation turns the intent into its transaction — the push is never sent again.
//!
//! An intent is written and committed before the push leaves (two-phase
//! outbound) and deleted when Daraja's answer — the CheckoutRequestID — is
//! recorded with the transaction. If the server stops (or Daraja does not
//! answer) in between, the intent stays and nothing knows the
//! CheckoutRequestID, so an STK query is impossible. What remains is the
//! callback: the push's `CallBackURL` ends in `stk/<intent id>`, and Daraja
//! posts to that URL exactly as given.

use malipo_plugin_sdk::{Error, Result, Sql};

use crate::callbacks;
use crate::env::Env;
use crate::transactions::{self, NewTxn, RECONCILE_BATCH, Txn};

/// An intent with neither an answer nor a callback after this long is
/// failed by reconciliation (Daraja's callback comes within about a
/// minute of the push, and is never retried); a reversal whose answer was
/// lost likewise ([`crate::reversal::fail_unanswered`]).
pub const UNANSWERED_MS: i64 = 10 * 60 * 1000;

/// The note of a transaction a retry made from an intent.
const NOTE_LOST: &str = "Daraja's answer to this push was lost; the push was not sent again. \
     Its callback settles it; without one it fails after 10 minutes.";

/// Why reconciliation failed an intent.
const UNANSWERED_DESC: &str = "The STK push was sent but Daraja's answer was lost and no callback came \
     within 10 minutes: it was never confirmed, and it is not sent again.";

/// The callback kind (the path under the tenant's callback base) of the
/// push whose intent is `id`.
pub fn callback_kind(id: &str) -> String {
    callbacks::with_reference("stk", id)
}

/// The intent a callback kind `stk/<id>` names, if it names one.
pub fn intent_of_kind(kind: &str) -> Option<&str> {
    match callbacks::split_reference(kind) {
        ("stk", reference) => reference,
        _ => None,
    }
}

/// A stored STK push intent.
struct Intent {
    phone_number: Option<String>,
    amount: i64,
    store_id: Option<String>,
    account_reference: Option<String>,
    description: Option<String>,
    created_by: Option<String>,
    created_at: String,
    created_ms: i64,
}

fn load(env: &dyn Env, id: &str) -> Result<Option<Intent>> {
    let table = env.db().query(
        "SELECT phone_number, amount, store_id, account_reference, description, created_by, created_at, created_ms \
         FROM mpesa_submissions WHERE id = ?1 AND operation = 'mpesa.stk-push'",
        &[Sql::from(id)],
    )?;
    let Some(row) = table.first() else {
        return Ok(None);
    };
    let text = |name: &str| row.text(name).map(str::to_owned);
    Ok(Some(Intent {
        phone_number: text("phone_number"),
        amount: row.int("amount").unwrap_or(0),
        store_id: text("store_id"),
        account_reference: text("account_reference"),
        description: text("description"),
        created_by: text("created_by"),
        created_at: row.req_text("created_at")?.to_owned(),
        created_ms: row.int("created_ms").unwrap_or(0),
    }))
}

/// Forgets an intent (its transaction holds what it said).
pub fn forget(env: &dyn Env, id: &str) -> Result<()> {
    env.db().execute(
        "DELETE FROM mpesa_submissions WHERE id = ?1",
        &[Sql::from(id)],
    )?;
    Ok(())
}

/// Records the ids Daraja gave a transaction made from an intent (those it
/// does not have yet).
pub fn record_ids(
    env: &dyn Env,
    id: &str,
    merchant_request_id: Option<&str>,
    checkout_request_id: Option<&str>,
) -> Result<Txn> {
    let db = env.db();
    db.execute(
        "UPDATE mpesa_transactions SET checkout_request_id = COALESCE(checkout_request_id, ?1), \
         merchant_request_id = COALESCE(merchant_request_id, ?2) WHERE id = ?3",
        &[
            Sql::from(checkout_request_id),
            Sql::from(merchant_request_id),
            Sql::from(id),
        ],
    )?;
    transactions::find(db, id)?.ok_or_else(|| Error::internal("an STK payment vanished"))
}

/// Turns the intent `id` into its pending STK transaction (same id, same
/// creation time and creator), with whatever ids Daraja gave, and forgets
/// the intent. `None` when there is no such intent.
fn materialize(
    env: &dyn Env,
    id: &str,
    merchant_request_id: Option<&str>,
    checkout_request_id: Option<&str>,
    note: Option<&str>,
) -> Result<Option<Txn>> {
    let Some(intent) = load(env, id)? else {
        return Ok(None);
    };
    let db = env.db();
    if transactions::find(db, id)?.is_none() {
        transactions::insert(
            db,
            env.ctx(),
            &NewTxn {
                id,
                kind: "stk",
                status: "pending",
                store_id: intent.store_id.as_deref(),
                phone_number: intent.phone_number.as_deref(),
                amount: intent.amount,
                account_reference: intent.account_reference.as_deref(),
                description: intent.description.as_deref(),
                merchant_request_id,
                checkout_request_id,
                note,
                ..NewTxn::default()
            },
        )?;
        db.execute(
            "UPDATE mpesa_transactions SET created_by = COALESCE(?1, created_by), created_at = ?2, \
             created_ms = ?3 WHERE id = ?4",
            &[
                Sql::from(intent.created_by.as_deref()),
                Sql::from(intent.created_at.as_str()),
                Sql::Integer(intent.created_ms),
                Sql::from(id),
            ],
        )?;
    }
    forget(env, id)?;
    record_ids(env, id, merchant_request_id, checkout_request_id).map(Some)
}

/// A retry with the key of a push whose answer was never recorded: the
/// transaction of that push as it stands (made from its intent if need
/// be). `None` when the key names neither.
pub fn resume(env: &dyn Env, id: &str) -> Result<Option<Txn>> {
    if let Some(txn) = transactions::find(env.db(), id)?.filter(|t| t.kind == "stk") {
        return Ok(Some(txn));
    }
    materialize(env, id, None, None, Some(NOTE_LOST))
}

/// The STK payment a callback posted to `stk/<intent>` is about when no
/// payment has its CheckoutRequestID: the intent's (made now if the
/// answer was lost), given that CheckoutRequestID. `None` if the kind
/// names no intent, or one whose payment has another CheckoutRequestID.
pub fn for_callback(
    env: &dyn Env,
    kind: &str,
    merchant_request_id: Option<&str>,
    checkout_request_id: &str,
) -> Result<Option<Txn>> {
    let Some(id) = intent_of_kind(kind) else {
        return Ok(None);
    };
    match transactions::find(env.db(), id)?.filter(|t| t.kind == "stk") {
        Some(txn) if txn.checkout_request_id.is_none() => {
            record_ids(env, id, merchant_request_id, Some(checkout_request_id)).map(Some)
        }
        Some(_) => Ok(None),
        None => materialize(
            env,
            id,
            merchant_request_id,
            Some(checkout_request_id),
            None,
        ),
    }
}

/// Reconciliation: every push whose answer was lost and whose callback did
/// not come within [`UNANSWERED_MS`] fails (it was never confirmed; it is
/// not sent again). Answers the transactions it failed.
pub fn fail_unanswered(env: &dyn Env) -> Result<Vec<Txn>> {
    let db = env.db();
    let cutoff = transactions::created_before(env, UNANSWERED_MS);
    let stale = db.query(
        &format!(
            "SELECT id FROM mpesa_submissions WHERE operation = 'mpesa.stk-push' AND created_ms <= ?1 \
             ORDER BY created_ms, id LIMIT {RECONCILE_BATCH}"
        ),
        &[Sql::Integer(cutoff)],
    )?;
    let mut unanswered = Vec::new();
    for row in stale.iter() {
        if let Some(txn) = materialize(env, row.req_text("id")?, None, None, None)? {
            unanswered.push(txn);
        }
    }
    unanswered.extend(transactions::select(
        db,
        &format!(
            "WHERE kind = 'stk' AND status = 'pending' AND checkout_request_id IS NULL AND created_ms <= ?1 \
             ORDER BY created_ms, id LIMIT {RECONCILE_BATCH}"
        ),
        &[Sql::Integer(cutoff)],
    )?);
    transactions::fail_unconfirmed(env, unanswered, UNANSWERED_DESC, "STK push")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_kinds_name_intents() {
        let id = "0b9e6a52-6d8f-4c1e-9a55-3f1c2d4e5f60";
        assert_eq!(callback_kind(id), format!("stk/{id}"));
        assert_eq!(intent_of_kind(&callback_kind(id)), Some(id));
        assert_eq!(intent_of_kind("stk"), None);
        assert_eq!(intent_of_kind("stk/not-an-id"), None);
        assert_eq!(intent_of_kind("b2c/result"), None);
        assert_eq!(intent_of_kind(&format!("stk/{id}/x")), None);
    }
}
