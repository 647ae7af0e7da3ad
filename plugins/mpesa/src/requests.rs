//! Asynchronous queries that are not payments: account balance and transaction status, stored in `mpesa_requests` until their result arrives.

use malipo_plugin_sdk::{Error, Input, Result, Row, Sql};
use serde_json::{Map, Value, json};

use crate::callbacks::ResultEnvelope;
use crate::clock::rfc3339_ms;
use crate::credentials::Credentials;
use crate::daraja::Daraja;
use crate::env::{Env, retry, upstream};
use crate::reversal::named_transaction;
use crate::transactions::{self, Outcome, Txn, settle};
use crate::validate;

const COLUMNS: &str = "id, kind, status, store_id, transaction_id, receipt, originator_conversation_id, \
     conversation_id, remarks, result_code, result_desc, result, created_by, created_at, updated_at, completed_at";

fn request_json(row: Row<'_>) -> Value {
    let mut map = row.to_json();
    let parsed = row.text("result").map(|text| {
        serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned()))
    });
    map.insert("result".to_owned(), parsed.unwrap_or(Value::Null));
    Value::Object(map)
}

fn load(env: &dyn Env, kind: &str, id: &str) -> Result<Value> {
    let table = env.db().query(
        &format!("SELECT {COLUMNS} FROM mpesa_requests WHERE id = ?1 AND kind = ?2"),
        &[Sql::from(id), Sql::from(kind)],
    )?;
    let row = table.first().filter(|row| {
        // A status query about a store's payment is visible in that store only.
        kind == "balance" || env.ctx().may_see_store(row.text("store_id"))
    });
    let what = if kind == "balance" {
        "balance query"
    } else {
        "transaction-status query"
    };
    row.map(request_json)
        .ok_or_else(|| Error::not_found(format!("No {what} `{id}`.")))
}

/// A sent request to remember.
struct Sent<'a> {
    kind: &'a str,
    store_id: Option<&'a str>,
    transaction_id: Option<&'a str>,
    receipt: Option<&'a str>,
    remarks: &'a str,
}

/// Sends an initiator query and stores it as pending; answers it.
fn send(
    env: &dyn Env,
    daraja: &Daraja<'_>,
    path: &str,
    body: Map<String, Value>,
    sent: &Sent<'_>,
) -> Result<Value> {
    let (db, ctx) = (env.db(), env.ctx());
    let what = if sent.kind == "balance" {
        "balance query"
    } else {
        "transaction-status query"
    };
    let ack = daraja
        .post(path, &Value::Object(body))?
        .into_accepted(what)?;
    let text = |name: &str| {
        ack.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let (originator, conversation) = (text("OriginatorConversationID"), text("ConversationID"));
    if originator.is_none() && conversation.is_none() {
        return Err(upstream(format!(
            "Daraja accepted the {what} but sent no conversation id."
        )));
    }
    let id = malipo_plugin_sdk::id::uuid_v4()?;
    let now = rfc3339_ms(ctx.now_ms);
    db.execute(
        "INSERT INTO mpesa_requests (id, kind, status, store_id, transaction_id, receipt, originator_conversation_id, \
         conversation_id, remarks, created_by, created_at, created_ms, updated_at) \
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?10)",
        &[
            Sql::from(id.as_str()),
            Sql::from(sent.kind),
            Sql::from(sent.store_id),
            Sql::from(sent.transaction_id),
            Sql::from(sent.receipt),
            Sql::from(originator),
            Sql::from(conversation),
            Sql::from(sent.remarks),
            Sql::from(ctx.user_id.clone()),
            Sql::from(now),
            Sql::Integer(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX)),
        ],
    )?;
    Ok(json!({ "request": load(env, sent.kind, &id)? }))
}

/// `mpesa.balance`: asks Daraja for the shortcode's account balances.
pub fn balance(env: &dyn Env, input: &Input) -> Result<Value> {
    let remarks = validate::opt_text_field(input, "remarks", 2, 100)?.unwrap_or("Account balance");
    let credentials = Credentials::load(env)?;
    let daraja = Daraja::new(env, &credentials);
    let mut body = daraja.initiator_fields("balance")?;
    body.insert(
        "Initiator".into(),
        json!(credentials.settings.initiator_name),
    );
    body.insert("CommandID".into(), json!("AccountBalance"));
    body.insert("PartyA".into(), json!(credentials.settings.shortcode));
    body.insert("IdentifierType".into(), json!("4"));
    body.insert("Remarks".into(), json!(remarks));
    let sent = Sent {
        kind: "balance",
        store_id: None,
        transaction_id: None,
        receipt: None,
        remarks,
    };
    send(env, &daraja, "/mpesa/accountbalance/v1/query", body, &sent)
}

/// `mpesa.transaction-status`: asks Daraja about a transaction, by its
/// receipt or (for a B2C payout without one) its OriginatorConversationID.
pub fn status(env: &dyn Env, input: &Input) -> Result<Value> {
    let remarks =
        validate::opt_text_field(input, "remarks", 2, 100)?.unwrap_or("Transaction status");
    let by_id = validate::opt_id(input, "transaction_id")?;
    let given_receipt = validate::opt_receipt(input, "receipt")?;
    // A receipt may name a transaction Malipo never stored (e.g. from the M-Pesa portal).
    let txn = match (by_id, given_receipt) {
        (None, Some(receipt)) => named_transaction(env, input)
            .ok()
            .filter(|t| t.receipt.as_deref() == Some(receipt)),
        _ => Some(named_transaction(env, input)?),
    };
    let receipt = given_receipt
        .map(str::to_owned)
        .or_else(|| txn.as_ref().and_then(|t| t.receipt.clone()));
    // A payout or reversal without a receipt is asked about by the
    // OriginatorConversationID it was sent with.
    let originator = txn
        .as_ref()
        .filter(|t| t.kind == "b2c" || t.kind == "reversal")
        .and_then(|t| {
            t.json
                .get("originator_conversation_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    // A reversal whose answer was lost has no id of its own yet: it is asked
    // about by the receipt of the payment it reverses, whose status says
    // whether it was reversed.
    let receipt = match (receipt, &originator, &txn) {
        (None, None, Some(t)) if t.kind == "reversal" => reversed_receipt(env, t)?,
        (receipt, _, _) => receipt,
    };
    if receipt.is_none() && originator.is_none() {
        return Err(Error::conflict(
            "This transaction has no M-Pesa receipt to ask about yet; for an STK push use \
             POST /api/v1/mpesa/transactions/{id}/query.",
        ));
    }
    let credentials = Credentials::load(env)?;
    let daraja = Daraja::new(env, &credentials);
    let mut body = daraja.initiator_fields("status")?;
    body.insert(
        "Initiator".into(),
        json!(credentials.settings.initiator_name),
    );
    body.insert("CommandID".into(), json!("TransactionStatusQuery"));
    if let Some(receipt) = &receipt {
        body.insert("TransactionID".into(), json!(receipt));
    }
    if let Some(originator) = &originator {
        body.insert("OriginalConversationID".into(), json!(originator));
    }
    body.insert("PartyA".into(), json!(credentials.settings.shortcode));
    body.insert("IdentifierType".into(), json!("4"));
    body.insert("Remarks".into(), json!(remarks));
    body.insert(
        "Occasion".into(),
        json!(txn.as_ref().map_or("status", |t| t.id.as_str())),
    );
    let store = txn
        .as_ref()
        .and_then(|t| t.store_id.clone())
        .or_else(|| env.ctx().store_id.clone());
    let sent = Sent {
        kind: "status",
        store_id: store.as_deref(),
        transaction_id: txn.as_ref().map(|t| t.id.as_str()),
        receipt: receipt.as_deref(),
        remarks,
    };
    send(
        env,
        &daraja,
        "/mpesa/transactionstatus/v1/query",
        body,
        &sent,
    )
}

/// The receipt of the payment reversal `txn` reverses, if known.
fn reversed_receipt(env: &dyn Env, txn: &Txn) -> Result<Option<String>> {
    Ok(txn
        .original_transaction_id
        .as_deref()
        .map(|id| transactions::find(env.db(), id))
        .transpose()?
        .flatten()
        .and_then(|original| original.receipt))
}

/// `mpesa.balance.get`.
pub fn get_balance(env: &dyn Env, input: &Input) -> Result<Value> {
    Ok(json!({ "request": load(env, "balance", validate::req_id(input, "id")?)? }))
}

/// `mpesa.transaction-status.get`.
pub fn get_status(env: &dyn Env, input: &Input) -> Result<Value> {
    Ok(json!({ "request": load(env, "status", validate::req_id(input, "id")?)? }))
}

/// Splits Daraja's `AccountBalance` value (`Name|KES|available|…&Name|…`) into accounts.
pub fn parse_accounts(text: &str) -> Vec<Value> {
    text.split('&')
        .filter(|account| !account.trim().is_empty())
        .map(|account| {
            let mut fields = account.split('|').map(str::trim);
            let name = fields.next().unwrap_or_default();
            let currency = fields.next().unwrap_or_default();
            let amounts: Vec<&str> = fields.collect();
            json!({
                "name": name,
                "currency": currency,
                "available": amounts.first().copied(),
                "amounts": amounts,
            })
        })
        .collect()
}

/// What a successful result says, shaped per kind.
fn result_of(kind: &str, envelope: &ResultEnvelope) -> Value {
    let mut result = Map::new();
    if kind == "balance" {
        let accounts = envelope
            .param_text("AccountBalance")
            .map(|t| parse_accounts(&t))
            .unwrap_or_default();
        result.insert("accounts".into(), Value::Array(accounts));
        result.insert(
            "completed_time".into(),
            json!(envelope.param_text("BOCompletedTime")),
        );
    }
    result.insert("parameters".into(), Value::Object(envelope.params.clone()));
    Value::Object(result)
}

/// Applies a balance or status result (or queue timeout) callback.
pub fn on_result(
    env: &dyn Env,
    kind: &str,
    envelope: &ResultEnvelope,
    raw: &str,
    received_at: u64,
    timeout: bool,
) -> Result<Value> {
    let db = env.db();
    let mut found = None;
    for (column, value) in envelope.ids() {
        let table = db.query(
            &format!("SELECT id, status, transaction_id, receipt FROM mpesa_requests WHERE kind = ?1 AND {column} = ?2 LIMIT 1"),
            &[Sql::from(kind), Sql::from(value)],
        )?;
        if let Some(row) = table.first() {
            found = Some((
                row.req_text("id")?.to_owned(),
                row.req_text("status")?.to_owned(),
                row.text("transaction_id").map(str::to_owned),
                row.text("receipt").map(str::to_owned),
            ));
            break;
        }
    }
    let (id, status, transaction_id, asked_receipt) =
        found.ok_or_else(|| retry(format!("No {kind} query matches this result (yet).")))?;
    if status != "pending" {
        return Ok(
            json!({ "applied": false, "request_id": id, "status": status, "reason": "the query already has its result" }),
        );
    }
    let code = envelope.code.as_deref();
    let new_status = match (timeout, code) {
        (true, _) => "timeout",
        (false, Some("0")) => "completed",
        (false, _) => "failed",
    };
    let result = (new_status == "completed").then(|| result_of(kind, envelope).to_string());
    let at = rfc3339_ms(received_at);
    db.execute(
        "UPDATE mpesa_requests SET status = ?1, result_code = ?2, result_desc = ?3, result = ?4, raw_callback = ?5, \
         updated_at = ?6, completed_at = ?6 WHERE id = ?7 AND status = 'pending'",
        &[
            Sql::from(new_status),
            Sql::from(code),
            Sql::from(envelope.desc.as_str()),
            Sql::from(result),
            Sql::from(raw),
            Sql::from(at),
            Sql::from(id.as_str()),
        ],
    )?;
    // A status result that a pending payout or reversal completed settles
    // it (as its own result callback would have): a reversal also marks the
    // payment it reversed `reversed`.
    let mut settled = false;
    if kind == "status"
        && new_status == "completed"
        && let Some(txn) = transaction_id
            .as_deref()
            .map(|t| transactions::find(db, t))
            .transpose()?
            .flatten()
        && (txn.kind == "b2c" || txn.kind == "reversal")
        && txn.is_pending()
    {
        let state = envelope.param_text("TransactionStatus").unwrap_or_default();
        // A reversal asked about by the payment it reverses (its own answer
        // was lost): that payment's state tells, and its receipt is not the
        // reversal's.
        let by_payment = txn.kind == "reversal"
            && asked_receipt.is_some()
            && asked_receipt == reversed_receipt(env, &txn)?;
        let (done, receipt, desc) = if by_payment {
            (
                state.eq_ignore_ascii_case("reversed"),
                None,
                "Reversed, according to a transaction-status query of the payment it reverses.",
            )
        } else {
            (
                state.eq_ignore_ascii_case("completed"),
                envelope
                    .param_text("ReceiptNo")
                    .or_else(|| envelope.transaction_id.clone()),
                "Completed, according to a transaction-status query.",
            )
        };
        if done {
            if txn.kind == "reversal"
                && let Some(original) = txn.original_transaction_id.as_deref()
            {
                // Before settling, so the reversal's event follows the original's change.
                transactions::mark_reversed(db, original, &txn.id, received_at)?;
            }
            settled = settle(
                env,
                &txn,
                &Outcome {
                    status: "completed",
                    result_code: Some("0"),
                    result_desc: Some(desc),
                    receipt: receipt.as_deref(),
                    at_ms: received_at,
                    ..Outcome::default()
                },
            )?;
        }
    }
    Ok(
        json!({ "applied": true, "request_id": id, "status": new_status, "settled_transaction": settled }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_account_balances() {
        let accounts = parse_accounts(
            "Working Account|KES|700000.00|700000.00|0.00|0.00&Charges Paid Account|KES|-1540.00|-1540.00|0.00|0.00",
        );
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[0]["name"], "Working Account");
        assert_eq!(accounts[0]["available"], "700000.00");
        assert_eq!(accounts[1]["available"], "-1540.00");
        assert_eq!(accounts[1]["amounts"].as_array().map(Vec::len), Some(4));
    }
}
