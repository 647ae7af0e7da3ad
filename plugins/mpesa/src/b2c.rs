//! B2C bulk payouts: a batch of payments to phones, one Daraja request per item (with a progress
//! report after each), settled by result callbacks.

use malipo_plugin_sdk::{Error, Input, Result, Sql};
use serde_json::{Map, Value, json};

use crate::callbacks::{ResultEnvelope, find_transaction, ignored};
use crate::credentials::Credentials;
use crate::daraja::Daraja;
use crate::env::{Env, retry};
use crate::idempotency::Keyed;
use crate::submission::{self, QUEUED, SUBMITTING};
use crate::transactions::{self, NewTxn, Outcome, settle};
use crate::validate;

pub const COMMANDS: &[&str] = &["SalaryPayment", "BusinessPayment", "PromotionPayment"];
pub const MAX_ITEMS: usize = 100;
pub const MIN_AMOUNT: i64 = 10;
pub const MAX_AMOUNT: i64 = 250_000;
/// The remarks of a transaction-status query about a payout whose send was interrupted.
pub const ASK_REMARKS: &str = "Interrupted payout";

/// One validated payout.
struct Item {
    phone: String,
    amount: i64,
    remarks: String,
}

fn parse_items(input: &Input) -> Result<Vec<Item>> {
    let items = match input.get("items") {
        None => return Err(Error::validation("`items` is required.")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(Error::validation("`items` must be a list of payouts.")),
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(Error::validation(format!(
            "`items` must hold 1 to {MAX_ITEMS} payouts."
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let at = |err: Error| Error::validation(format!("items[{index}]: {}", err.message));
            if !item.is_object() {
                return Err(Error::validation(format!(
                    "items[{index}] must be an object."
                )));
            }
            let fields = Input::parse(&item.to_string()).map_err(at)?;
            Ok(Item {
                phone: validate::phone_field(fields.get("phone_number"), "phone_number")
                    .map_err(at)?,
                amount: validate::amount_field(
                    fields.get("amount"),
                    "amount",
                    MIN_AMOUNT,
                    MAX_AMOUNT,
                )
                .map_err(at)?,
                remarks: validate::text_field(&fields, "remarks", 2, 100)
                    .map_err(at)?
                    .to_owned(),
            })
        })
        .collect()
}

/// `mpesa.b2c.bulk`: pays every item, one Daraja request each.
pub fn bulk(env: &dyn Env, input: &Input) -> Result<Value> {
    let (db, ctx) = (env.db(), env.ctx());
    let items = parse_items(input)?;
    let command_id = validate::one_of(input.req_trimmed("command_id")?, "command_id", COMMANDS)?;
    let occasion = validate::opt_text_field(input, "occasion", 1, 100)?;
    let store_id = transactions::resolve_store(db, ctx, input)?;
    let request = json!({
        "command_id": command_id,
        "occasion": occasion,
        "store_id": store_id,
        "items": items.iter().map(|i| json!([i.phone, i.amount, i.remarks])).collect::<Vec<_>>(),
    });
    let keyed = Keyed::new(
        "mpesa.b2c.bulk",
        validate::idempotency_key(input)?,
        &request,
    );
    if let Some(keyed) = &keyed
        && let Some(answer) = keyed.replay(db)?
    {
        return Ok(answer);
    }
    // A call with this key began and did not finish (the server stopped
    // mid-batch): resume that batch instead of starting another.
    let resumed = match &keyed {
        Some(keyed) => keyed.begun(db)?,
        None => None,
    };
    let credentials = Credentials::load(env)?;
    let daraja = Daraja::new(env, &credentials);
    // Settle the prerequisites before paying anything: a failure here pays nobody.
    let shared = daraja.initiator_fields("b2c")?;
    daraja.token()?;
    let resuming = resumed.is_some();
    let batch_id = match resumed {
        Some(batch_id) => batch_id,
        None => {
            let batch_id = record_batch(env, &items, command_id, occasion, store_id.as_deref())?;
            if let Some(keyed) = &keyed {
                keyed.begin(db, ctx, &batch_id)?;
            }
            batch_id
        }
    };
    // Phase one is done: the batch, every item (`queued`, with the
    // OriginatorConversationID Daraja will echo) and the key are written;
    // the host commits them before the first request leaves.
    let rows = db.query(
        "SELECT id, submission, status, phone_number, amount, remarks FROM mpesa_transactions \
         WHERE batch_id = ?1 ORDER BY batch_seq, id",
        &[Sql::from(batch_id.as_str())],
    )?;
    let of = rows.len() as u64;
    for (seq, row) in rows.iter().enumerate() {
        let id = row.req_text("id")?.to_owned();
        match (row.text("submission"), row.text("status")) {
            (Some(QUEUED), _) => {
                let item = Item {
                    phone: row.req_text("phone_number")?.to_owned(),
                    amount: row.int("amount").unwrap_or(0),
                    remarks: row.text("remarks").unwrap_or_default().to_owned(),
                };
                send_item(
                    env,
                    &daraja,
                    &credentials,
                    &shared,
                    &id,
                    command_id,
                    occasion,
                    &item,
                )?;
            }
            // Sent before the server stopped, its answer unrecorded, or
            // accepted and its result lost: ask Daraja, never send again.
            (Some(SUBMITTING), _) => {
                submission::ask(env, &id, ASK_REMARKS)?;
            }
            (None, Some("pending")) if resuming => {
                submission::ask(env, &id, ASK_REMARKS)?;
            }
            _ => {}
        }
        let sent = seq as u64 + 1;
        env.progress(sent, Some(of), &format!("sent {sent} of {of}"));
    }
    let answer = batch_json(env, &batch_id)?;
    if let Some(keyed) = &keyed {
        keyed.remember(db, ctx, &answer)?;
    }
    Ok(answer)
}

/// Phase one of a batch: the batch row and one `queued` item per payout,
/// each with its own OriginatorConversationID. Answers the batch id.
fn record_batch(
    env: &dyn Env,
    items: &[Item],
    command_id: &str,
    occasion: Option<&str>,
    store_id: Option<&str>,
) -> Result<String> {
    let (db, ctx) = (env.db(), env.ctx());
    let batch_id = malipo_plugin_sdk::id::uuid_v4()?;
    let total: i64 = items.iter().map(|i| i.amount).sum();
    db.execute(
        "INSERT INTO mpesa_b2c_batches (id, command_id, occasion, item_count, total_amount, store_id, created_by, created_at, created_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        &[
            Sql::from(batch_id.as_str()),
            Sql::from(command_id),
            Sql::from(occasion),
            Sql::Integer(i64::try_from(items.len()).unwrap_or(0)),
            Sql::Integer(total),
            Sql::from(store_id),
            Sql::from(ctx.user_id.clone()),
            Sql::from(crate::clock::rfc3339_ms(ctx.now_ms)),
            Sql::Integer(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX)),
        ],
    )?;
    for (seq, item) in items.iter().enumerate() {
        let id = malipo_plugin_sdk::id::uuid_v4()?;
        transactions::insert(
            db,
            ctx,
            &NewTxn {
                id: &id,
                kind: "b2c",
                status: "pending",
                store_id,
                phone_number: Some(&item.phone),
                amount: item.amount,
                batch_id: Some(&batch_id),
                batch_seq: Some(i64::try_from(seq).unwrap_or(0)),
                command_id: Some(command_id),
                remarks: Some(&item.remarks),
                originator_conversation_id: Some(&id),
                ..NewTxn::default()
            },
        )?;
        submission::mark(db, &id, Some(QUEUED))?;
    }
    Ok(batch_id)
}

/// Sends one queued payout: marks it `submitting` (committed by the host
/// before the request leaves), sends, records the answer.
#[allow(clippy::too_many_arguments)]
fn send_item(
    env: &dyn Env,
    daraja: &Daraja<'_>,
    credentials: &Credentials,
    shared: &Map<String, Value>,
    id: &str,
    command_id: &str,
    occasion: Option<&str>,
    item: &Item,
) -> Result<()> {
    submission::mark(env.db(), id, Some(SUBMITTING))?;
    let mut body: Map<String, Value> = shared.clone();
    body.insert("OriginatorConversationID".into(), json!(id));
    body.insert(
        "InitiatorName".into(),
        json!(credentials.settings.initiator_name),
    );
    body.insert("CommandID".into(), json!(command_id));
    body.insert("Amount".into(), json!(item.amount));
    body.insert("PartyA".into(), json!(credentials.settings.shortcode));
    body.insert("PartyB".into(), json!(item.phone));
    body.insert("Remarks".into(), json!(item.remarks));
    body.insert("Occassion".into(), json!(occasion.unwrap_or(&item.remarks)));
    submission::send(
        env,
        daraja,
        id,
        "/mpesa/b2c/v3/paymentrequest",
        &Value::Object(body),
        "B2C payout",
    )?;
    Ok(())
}

/// A batch with its items (in request order) and a count per status.
fn batch_json(env: &dyn Env, id: &str) -> Result<Value> {
    let db = env.db();
    let table = db.query(
        "SELECT id, command_id, occasion, item_count, total_amount, store_id, created_by, created_at \
         FROM mpesa_b2c_batches WHERE id = ?1",
        &[Sql::from(id)],
    )?;
    let Some(row) = table.first() else {
        return Err(Error::not_found(format!("No B2C batch `{id}`.")));
    };
    if !env.ctx().may_see_store(row.text("store_id")) {
        return Err(Error::not_found(format!("No B2C batch `{id}`.")));
    }
    let items = transactions::select(
        db,
        "WHERE batch_id = ?1 ORDER BY batch_seq, id",
        &[Sql::from(id)],
    )?;
    let mut by_status = Map::new();
    let mut completed_amount = 0;
    for item in &items {
        let slot = by_status.entry(item.status.clone()).or_insert(json!(0));
        *slot = json!(slot.as_u64().unwrap_or(0) + 1);
        if item.status == "completed" {
            completed_amount += item.amount;
        }
    }
    let mut batch = row.to_json();
    batch.insert("currency".into(), json!("KES"));
    batch.insert("by_status".into(), Value::Object(by_status));
    batch.insert("completed_amount".into(), json!(completed_amount));
    Ok(json!({
        "batch": batch,
        "items": items.iter().map(transactions::Txn::to_json).collect::<Vec<_>>(),
    }))
}

/// `mpesa.b2c.batches.get`.
pub fn get(env: &dyn Env, input: &Input) -> Result<Value> {
    batch_json(env, validate::req_id(input, "id")?)
}

/// Applies a B2C result (or queue timeout) callback.
pub fn on_result(
    env: &dyn Env,
    envelope: &ResultEnvelope,
    raw: &str,
    received_at: u64,
    timeout: bool,
) -> Result<Value> {
    let txn = find_transaction(env, "b2c", envelope)?
        .ok_or_else(|| retry("No B2C payout matches this result (yet)."))?;
    if !txn.is_pending() {
        return Ok(ignored(&txn, "the payout is already final"));
    }
    let code = envelope.code.as_deref();
    let receipt = envelope
        .param_text("TransactionReceipt")
        .or_else(|| envelope.transaction_id.clone());
    let status = match (timeout, code) {
        (true, _) => "timeout",
        (false, Some("0")) => "completed",
        (false, _) => "failed",
    };
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
            receipt: receipt.as_deref().filter(|_| status == "completed"),
            raw_callback: Some(raw),
            at_ms: received_at,
            ..Outcome::default()
        },
    )?;
    Ok(json!({ "applied": applied, "transaction_id": txn.id, "status": status }))
}
