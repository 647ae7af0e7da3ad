//! Transactions: the row model, the state machine (pending → final, completed → reversed), events, and the get/list operations.

use malipo_plugin_sdk::{Context, Db, Error, Input, Result, Row, Sql};
use serde_json::{Map, Value, json};

use crate::clock::{self, parse_bound};
use crate::codec;
use crate::env::Env;
use crate::validate::{self, normalize_phone};

/// Transaction kinds.
pub const KINDS: &[&str] = &["stk", "b2c", "reversal", "c2b"];
/// Transaction statuses.
pub const STATUSES: &[&str] = &[
    "pending",
    "completed",
    "failed",
    "cancelled",
    "timeout",
    "reversed",
];
/// Statuses a transaction leaves `pending` for.
pub const FINAL: &[&str] = &["completed", "failed", "cancelled", "timeout"];
/// Transactions one reconciliation run asks about (or fails) at most, per kind of work.
pub const RECONCILE_BATCH: usize = 100;

/// Every stored column an answer shows (the raw callback only in `get`).
const COLUMNS: &str = "id, kind, status, store_id, phone_number, amount, account_reference, description, \
     merchant_request_id, checkout_request_id, originator_conversation_id, conversation_id, batch_id, \
     batch_seq, original_transaction_id, command_id, remarks, receipt, result_code, result_desc, note, created_by, \
     created_at, created_ms, updated_at, completed_at";

/// One stored transaction: the fields the logic needs, and its JSON answer.
#[derive(Debug, Clone)]
pub struct Txn {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub store_id: Option<String>,
    pub phone_number: Option<String>,
    pub amount: i64,
    pub merchant_request_id: Option<String>,
    pub checkout_request_id: Option<String>,
    pub receipt: Option<String>,
    pub original_transaction_id: Option<String>,
    pub created_ms: i64,
    /// The answer shown to callers.
    pub json: Map<String, Value>,
}

impl Txn {
    fn from_row(row: Row<'_>) -> Result<Self> {
        let text = |name: &str| row.text(name).map(str::to_owned);
        let mut json = row.to_json();
        json.remove("created_ms");
        json.insert("currency".to_owned(), json!("KES"));
        Ok(Self {
            id: row.req_text("id")?.to_owned(),
            kind: row.req_text("kind")?.to_owned(),
            status: row.req_text("status")?.to_owned(),
            store_id: text("store_id"),
            phone_number: text("phone_number"),
            amount: row.req_int("amount")?,
            merchant_request_id: text("merchant_request_id"),
            checkout_request_id: text("checkout_request_id"),
            receipt: text("receipt"),
            original_transaction_id: text("original_transaction_id"),
            created_ms: row.req_int("created_ms")?,
            json,
        })
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.json.clone())
    }

    pub fn is_pending(&self) -> bool {
        self.status == "pending"
    }
}

/// Loads the transactions a `WHERE …` clause selects (in the given order).
pub fn select(db: &dyn Db, clause: &str, params: &[Sql]) -> Result<Vec<Txn>> {
    let table = db.query(
        &format!("SELECT {COLUMNS} FROM mpesa_transactions {clause}"),
        params,
    )?;
    table.iter().map(Txn::from_row).collect()
}

/// The transaction with this id.
pub fn find(db: &dyn Db, id: &str) -> Result<Option<Txn>> {
    Ok(select(db, "WHERE id = ?1", &[Sql::from(id)])?
        .into_iter()
        .next())
}

/// The first transaction of `kind` whose `column` equals `value`.
pub fn find_by(db: &dyn Db, kind: &str, column: &str, value: &str) -> Result<Option<Txn>> {
    let column = match column {
        "checkout_request_id" | "originator_conversation_id" | "conversation_id" | "receipt" => {
            column
        }
        other => {
            return Err(Error::internal(format!(
                "lookup by unknown column `{other}`"
            )));
        }
    };
    let clause = format!("WHERE kind = ?1 AND {column} = ?2 ORDER BY created_ms, id LIMIT 1");
    Ok(select(db, &clause, &[Sql::from(kind), Sql::from(value)])?
        .into_iter()
        .next())
}

/// A transaction to insert.
#[derive(Debug, Clone, Default)]
pub struct NewTxn<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub status: &'a str,
    pub store_id: Option<&'a str>,
    pub phone_number: Option<&'a str>,
    pub amount: i64,
    pub account_reference: Option<&'a str>,
    pub description: Option<&'a str>,
    pub merchant_request_id: Option<&'a str>,
    pub checkout_request_id: Option<&'a str>,
    pub originator_conversation_id: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
    pub batch_id: Option<&'a str>,
    /// Position in its batch, from 0.
    pub batch_seq: Option<i64>,
    pub original_transaction_id: Option<&'a str>,
    pub command_id: Option<&'a str>,
    pub remarks: Option<&'a str>,
    pub receipt: Option<&'a str>,
    pub result_code: Option<&'a str>,
    pub result_desc: Option<&'a str>,
    pub note: Option<&'a str>,
    pub raw_callback: Option<&'a str>,
}

/// Inserts a transaction created now by the caller, and answers it as stored.
pub fn insert(db: &dyn Db, ctx: &Context, new: &NewTxn<'_>) -> Result<Txn> {
    let now = clock::rfc3339_ms(ctx.now_ms);
    let completed_at = (new.status == "completed").then(|| now.clone());
    db.execute(
        "INSERT INTO mpesa_transactions (id, kind, status, store_id, phone_number, amount, account_reference, \
         description, merchant_request_id, checkout_request_id, originator_conversation_id, conversation_id, \
         batch_id, original_transaction_id, command_id, remarks, receipt, result_code, result_desc, note, \
         raw_callback, created_by, created_at, created_ms, updated_at, completed_at, batch_seq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, \
         ?22, ?23, ?24, ?23, ?25, ?26)",
        &[
            Sql::from(new.id),
            Sql::from(new.kind),
            Sql::from(new.status),
            Sql::from(new.store_id),
            Sql::from(new.phone_number),
            Sql::Integer(new.amount),
            Sql::from(new.account_reference),
            Sql::from(new.description),
            Sql::from(new.merchant_request_id),
            Sql::from(new.checkout_request_id),
            Sql::from(new.originator_conversation_id),
            Sql::from(new.conversation_id),
            Sql::from(new.batch_id),
            Sql::from(new.original_transaction_id),
            Sql::from(new.command_id),
            Sql::from(new.remarks),
            Sql::from(new.receipt),
            Sql::from(new.result_code),
            Sql::from(new.result_desc),
            Sql::from(new.note),
            Sql::from(new.raw_callback),
            Sql::from(ctx.user_id.clone()),
            Sql::from(now),
            Sql::Integer(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX)),
            Sql::from(completed_at),
            Sql::from(new.batch_seq),
        ],
    )?;
    find(db, new.id)?.ok_or_else(|| Error::internal("the inserted transaction vanished"))
}

/// How a pending transaction ends.
#[derive(Debug, Clone, Default)]
pub struct Outcome<'a> {
    /// One of [`FINAL`].
    pub status: &'a str,
    pub result_code: Option<&'a str>,
    pub result_desc: Option<&'a str>,
    pub receipt: Option<&'a str>,
    pub note: Option<&'a str>,
    pub raw_callback: Option<&'a str>,
    /// When it ended (ms since the epoch).
    pub at_ms: u64,
}

/// The status a Daraja result code stands for: 0 completed, 1032
/// cancelled, 1037 timeout, anything else failed.
pub fn status_for_code(code: &str) -> &'static str {
    match code {
        "0" => "completed",
        "1032" => "cancelled",
        "1037" => "timeout",
        _ => "failed",
    }
}

/// Moves a pending transaction to its final state and emits its event.
/// Answers false (and changes nothing) if it was no longer pending.
pub fn settle(env: &dyn Env, txn: &Txn, outcome: &Outcome<'_>) -> Result<bool> {
    if !FINAL.contains(&outcome.status) {
        return Err(Error::internal(format!(
            "`{}` is not a final status",
            outcome.status
        )));
    }
    let at = clock::rfc3339_ms(outcome.at_ms);
    let completed_at = (outcome.status == "completed").then(|| at.clone());
    let changed = env.db().execute(
        "UPDATE mpesa_transactions SET status = ?1, result_code = COALESCE(?2, result_code), \
         result_desc = COALESCE(?3, result_desc), receipt = COALESCE(?4, receipt), note = COALESCE(?5, note), \
         raw_callback = COALESCE(?6, raw_callback), updated_at = ?7, completed_at = COALESCE(?8, completed_at) \
         WHERE id = ?9 AND status = 'pending'",
        &[
            Sql::from(outcome.status),
            Sql::from(outcome.result_code),
            Sql::from(outcome.result_desc),
            Sql::from(outcome.receipt),
            Sql::from(outcome.note),
            Sql::from(outcome.raw_callback),
            Sql::from(at),
            Sql::from(completed_at),
            Sql::from(txn.id.as_str()),
        ],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    if let Some(updated) = find(env.db(), &txn.id)? {
        emit(env, &updated);
    }
    Ok(true)
}

/// The creation time (ms since the epoch) of a transaction that is
/// `age_ms` old now: older ones were created at or before it.
pub fn created_before(env: &dyn Env, age_ms: i64) -> i64 {
    i64::try_from(env.ctx().now_ms)
        .unwrap_or(i64::MAX)
        .saturating_sub(age_ms)
}

/// Reconciliation: fails each of `candidates` still pending — sent, but
/// Daraja's answer was lost and no result came in time, so it was never
/// confirmed; it is not sent again — with `desc` as the reason, and logs
/// a warning naming `what`. Answers those it failed, as they now stand.
pub fn fail_unconfirmed(
    env: &dyn Env,
    candidates: Vec<Txn>,
    desc: &str,
    what: &str,
) -> Result<Vec<Txn>> {
    let mut failed: Vec<Txn> = Vec::new();
    for txn in candidates {
        if failed.iter().any(|t| t.id == txn.id) {
            continue;
        }
        let changed = settle(
            env,
            &txn,
            &Outcome {
                status: "failed",
                result_desc: Some(desc),
                note: Some("failed by reconciliation: never confirmed, not sent again"),
                at_ms: env.ctx().now_ms,
                ..Outcome::default()
            },
        )?;
        if changed {
            env.warn(&format!(
                "reconcile: {what} {} was never confirmed by Daraja; failed",
                txn.id
            ));
            failed.push(find(env.db(), &txn.id)?.unwrap_or(txn));
        }
    }
    Ok(failed)
}

/// Marks a completed payment reversed (by the reversal `reversal_id`).
pub fn mark_reversed(db: &dyn Db, id: &str, reversal_id: &str, at_ms: u64) -> Result<bool> {
    let note = format!("reversed by {reversal_id}");
    let changed = db.execute(
        "UPDATE mpesa_transactions SET status = 'reversed', note = ?1, updated_at = ?2 \
         WHERE id = ?3 AND status = 'completed'",
        &[
            Sql::from(note),
            Sql::from(clock::rfc3339_ms(at_ms)),
            Sql::from(id),
        ],
    )?;
    Ok(changed == 1)
}

/// The event a transaction in its current state announces, if any.
pub fn event_name(kind: &str, status: &str) -> Option<&'static str> {
    let failed = matches!(status, "failed" | "cancelled" | "timeout");
    match kind {
        "stk" | "c2b" if status == "completed" => Some("payment.completed"),
        "stk" | "c2b" if failed => Some("payment.failed"),
        "b2c" if status == "completed" => Some("payout.completed"),
        "b2c" if failed => Some("payout.failed"),
        "reversal" if status == "completed" => Some("reversal.completed"),
        "reversal" if failed => Some("reversal.failed"),
        _ => None,
    }
}

/// Emits the event of a transaction's current state.
pub fn emit(env: &dyn Env, txn: &Txn) {
    let Some(name) = event_name(&txn.kind, &txn.status) else {
        return;
    };
    let field = |name: &str| txn.json.get(name).cloned().unwrap_or(Value::Null);
    let payload = json!({
        "transaction_id": txn.id,
        "amount": txn.amount,
        "currency": "KES",
        "phone_number": txn.phone_number,
        "receipt": txn.receipt,
        // What a shop matches a payment to its order by (webhooks, emails).
        "account_reference": field("account_reference"),
        "description": field("description"),
        "store_id": txn.store_id,
        "kind": txn.kind,
        "status": txn.status,
        "result_code": field("result_code"),
        "batch_id": field("batch_id"),
        "original_transaction_id": txn.original_transaction_id,
    });
    env.emit(name, &payload);
}

/// The store named by `X-Store-ID` (or the caller's only store).
pub fn caller_store(ctx: &Context) -> Option<&str> {
    ctx.store_id.as_deref()
}

/// The store a new transaction belongs to: `store_id` from the input
/// (which must exist, and be the caller's store if `X-Store-ID` named one,
/// and one of the stores the caller may use), else the caller's store.
pub fn resolve_store(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Option<String>> {
    let Some(given) = validate::opt_id(input, "store_id")? else {
        return Ok(ctx.store_id.clone());
    };
    if let Some(mine) = caller_store(ctx)
        && mine != given
    {
        return Err(Error::forbidden(
            "`store_id` must be the store named by the X-Store-ID header.",
        ));
    }
    ctx.check_store(given)?;
    if !db.exists("SELECT 1 FROM stores WHERE id = ?1", &[Sql::from(given)])? {
        return Err(Error::not_found(format!(
            "No store `{given}` in this tenant."
        )));
    }
    Ok(Some(given.to_owned()))
}

/// Finds a transaction the caller may see (404 otherwise).
pub fn visible(db: &dyn Db, ctx: &Context, id: &str) -> Result<Txn> {
    let txn = find(db, id)?.filter(|t| ctx.may_see_store(t.store_id.as_deref()));
    txn.ok_or_else(|| Error::not_found(format!("No M-Pesa transaction `{id}`.")))
}

/// `mpesa.transactions.get`.
pub fn get(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let id = validate::req_id(input, "id")?;
    let txn = visible(db, ctx, id)?;
    let mut answer = txn.json.clone();
    let raw = db.query(
        "SELECT raw_callback FROM mpesa_transactions WHERE id = ?1",
        &[Sql::from(id)],
    )?;
    let callback = raw
        .first()
        .and_then(|row| row.text("raw_callback"))
        .map(|text| {
            serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        });
    answer.insert("callback".to_owned(), callback.unwrap_or(Value::Null));
    let reversals = select(
        db,
        "WHERE original_transaction_id = ?1 ORDER BY created_ms, id",
        &[Sql::from(id)],
    )?;
    answer.insert(
        "reversals".to_owned(),
        Value::Array(reversals.iter().map(Txn::to_json).collect()),
    );
    Ok(json!({ "transaction": answer }))
}

/// Where a listing resumes: after (created_ms, id), newest first.
fn encode_cursor(created_ms: i64, id: &str) -> String {
    codec::encode_url(format!("{created_ms}:{id}").as_bytes())
}

fn decode_cursor(text: &str) -> Result<(i64, String)> {
    let invalid = || Error::validation("`cursor` is not a cursor this listing gave out.");
    let bytes = codec::decode_url(text.trim()).ok_or_else(invalid)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (ms, id) = text.split_once(':').ok_or_else(invalid)?;
    Ok((ms.parse().map_err(|_| invalid())?, id.to_owned()))
}

/// The shared filters of listings and reports: `from`, `to` (RFC 3339 or
/// `YYYY-MM-DD`, a whole UTC day), and the caller's store.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub clauses: Vec<String>,
    pub params: Vec<Sql>,
}

impl Filter {
    /// Adds `column <op> ?n`.
    pub fn push(&mut self, column: &str, op: &str, value: Sql) {
        self.params.push(value);
        self.clauses
            .push(format!("{column} {op} ?{}", self.params.len()));
    }

    /// Adds the date range of `from` / `to`; answers it as milliseconds,
    /// `from` inclusive and `to` exclusive.
    pub fn dates(&mut self, input: &Input) -> Result<(Option<i64>, Option<i64>)> {
        let bound = |field: &str| -> Result<Option<clock::Bound>> {
            match input.opt_trimmed(field)? {
                None => Ok(None),
                Some(text) => parse_bound(text).map(Some).ok_or_else(|| {
                    Error::validation(format!(
                        "`{field}` must be a date (YYYY-MM-DD) or an RFC 3339 date-time such as 2026-11-24T10:25:53Z."
                    ))
                }),
            }
        };
        let from = bound("from")?;
        let to = bound("to")?;
        if let (Some(from), Some(to)) = (from, to)
            && from.start_ms() >= to.end_ms_exclusive()
        {
            return Err(Error::validation("`from` must not be after `to`."));
        }
        let (from, to) = (
            from.map(clock::Bound::start_ms),
            to.map(clock::Bound::end_ms_exclusive),
        );
        if let Some(from) = from {
            self.push("created_ms", ">=", Sql::Integer(from));
        }
        if let Some(to) = to {
            self.push("created_ms", "<", Sql::Integer(to));
        }
        Ok((from, to))
    }

    /// Confines to the caller's stores (the `X-Store-ID` store, else the
    /// stores the host allows), and checks a `store_id` filter against them.
    pub fn store(&mut self, ctx: &Context, input: &Input) -> Result<()> {
        let wanted = validate::opt_id(input, "store_id")?;
        match (caller_store(ctx), wanted) {
            (Some(mine), Some(other)) if mine != other => Err(Error::forbidden(
                "`store_id` must be the store named by the X-Store-ID header.",
            )),
            (_, Some(store)) => {
                ctx.check_store(store)?;
                self.push("store_id", "=", Sql::from(store));
                Ok(())
            }
            (_, None) => {
                if let Some(condition) = ctx.store_condition("store_id", &mut self.params) {
                    self.clauses.push(condition);
                }
                Ok(())
            }
        }
    }

    pub fn where_clause(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// `mpesa.transactions.list`: filtered, newest first, by pages.
pub fn list(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let mut filter = Filter::default();
    if let Some(status) = input.opt_trimmed("status")? {
        filter.push(
            "status",
            "=",
            Sql::from(validate::one_of(status, "status", STATUSES)?),
        );
    }
    if let Some(kind) = input.opt_trimmed("kind")? {
        filter.push(
            "kind",
            "=",
            Sql::from(validate::one_of(kind, "kind", KINDS)?),
        );
    }
    if let Some(phone) = input.opt_trimmed("phone_number")? {
        let phone = normalize_phone(phone).ok_or_else(|| {
            Error::validation(
                "`phone_number` must be a Safaricom mobile number such as 0712345678.",
            )
        })?;
        filter.push("phone_number", "=", Sql::from(phone));
    }
    filter.store(ctx, input)?;
    filter.dates(input)?;
    let limit = match input.opt_u64("limit")? {
        None => 50,
        Some(n @ 1..=100) => n,
        Some(_) => return Err(Error::validation("`limit` must be from 1 to 100.")),
    };
    if let Some(cursor) = input.opt_trimmed("cursor")? {
        let (ms, id) = decode_cursor(cursor)?;
        filter.params.push(Sql::Integer(ms));
        let ms_param = filter.params.len();
        filter.params.push(Sql::from(id));
        let id_param = filter.params.len();
        filter.clauses.push(format!(
            "(created_ms < ?{ms_param} OR (created_ms = ?{ms_param} AND id < ?{id_param}))"
        ));
    }
    let clause = format!(
        "{} ORDER BY created_ms DESC, id DESC LIMIT {}",
        filter.where_clause(),
        limit + 1
    );
    let mut rows = select(db, &clause, &filter.params)?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(100));
    let next_cursor = match rows.last() {
        Some(last) if more => Some(encode_cursor(last.created_ms, &last.id)),
        _ => None,
    };
    Ok(json!({
        "transactions": rows.iter().map(Txn::to_json).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_codes_and_events() {
        assert_eq!(status_for_code("0"), "completed");
        assert_eq!(status_for_code("1032"), "cancelled");
        assert_eq!(status_for_code("1037"), "timeout");
        assert_eq!(status_for_code("2001"), "failed");
        assert_eq!(event_name("stk", "completed"), Some("payment.completed"));
        assert_eq!(event_name("stk", "cancelled"), Some("payment.failed"));
        assert_eq!(event_name("b2c", "completed"), Some("payout.completed"));
        assert_eq!(
            event_name("reversal", "completed"),
            Some("reversal.completed")
        );
        assert_eq!(event_name("stk", "pending"), None);
    }

    #[test]
    fn cursors_round_trip() {
        let cursor = encode_cursor(1_795_515_953_999, "0b9e-id");
        assert_eq!(
            decode_cursor(&cursor).ok(),
            Some((1_795_515_953_999, "0b9e-id".to_owned()))
        );
        assert!(decode_cursor("not a cursor").is_err());
    }
}
