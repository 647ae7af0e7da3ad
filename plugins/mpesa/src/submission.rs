//! Two-phase sends of initiator requests (B2C payouts, reversals): the transaction is marked `submitting` — committed by the host before its request leaves — and Daraja's synchronous answer is recorded after; one whose answer or result was lost is asked about, never sent again.

use malipo_plugin_sdk::{Db, Error, Input, Result, Sql};
use serde_json::{Value, json};

use crate::daraja::{Daraja, code_text};
use crate::env::{Env, codes};
use crate::transactions::{self, Outcome, settle};

/// Recorded and not sent yet (a B2C item of a batch).
pub const QUEUED: &str = "queued";
/// Committed and being sent; the answer is not recorded. After a crash it
/// is asked about, never sent again.
pub const SUBMITTING: &str = "submitting";

/// How a send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Daraja accepted it: its ids are recorded; its result settles it.
    Accepted,
    /// Daraja refused it (or it was refused before it left): failed.
    Refused,
    /// No answer came: it may have reached Daraja, so it stays pending (and
    /// `submitting`) until its result or a transaction-status answer
    /// settles it.
    Unanswered,
}

/// Sets how far a transaction's request got (`None` once its answer is recorded).
pub fn mark(db: &dyn Db, id: &str, submission: Option<&str>) -> Result<()> {
    db.execute(
        "UPDATE mpesa_transactions SET submission = ?1 WHERE id = ?2",
        &[Sql::from(submission), Sql::from(id)],
    )?;
    Ok(())
}

/// Posts the request of transaction `id` — which the caller marked
/// [`SUBMITTING`]; the host commits that before the request leaves — and
/// records what came back. `what` names it in the log ("B2C payout").
pub fn send(
    env: &dyn Env,
    daraja: &Daraja<'_>,
    id: &str,
    path: &str,
    body: &Value,
    what: &str,
) -> Result<Sent> {
    let db = env.db();
    let refused = |result_code: Option<&str>, result_desc: &str| -> Result<Sent> {
        mark(db, id, None)?;
        if let Some(txn) = transactions::find(db, id)? {
            settle(
                env,
                &txn,
                &Outcome {
                    status: "failed",
                    result_code,
                    result_desc: Some(result_desc),
                    at_ms: env.ctx().now_ms,
                    ..Outcome::default()
                },
            )?;
        }
        Ok(Sent::Refused)
    };
    match daraja.post(path, body) {
        Ok(reply) if reply.accepted() => {
            let text = |name: &str| {
                reply
                    .json
                    .get(name)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
            };
            // Its result may have come first (a reversal's result URL names
            // it) and recorded the same ids already.
            db.execute(
                "UPDATE mpesa_transactions SET conversation_id = COALESCE(?1, conversation_id), \
                 originator_conversation_id = COALESCE(?2, originator_conversation_id), submission = NULL \
                 WHERE id = ?3",
                &[
                    Sql::from(text("ConversationID")),
                    Sql::from(text("OriginatorConversationID")),
                    Sql::from(id),
                ],
            )?;
            Ok(Sent::Accepted)
        }
        Ok(reply) => {
            let (result_code, result_desc) = reply
                .error()
                .or_else(|| {
                    let code = reply.json.get("ResponseCode").and_then(code_text)?;
                    Some((code, reply.describe()))
                })
                .unwrap_or_else(|| (reply.status.to_string(), reply.describe()));
            refused(Some(&result_code), &result_desc)
        }
        Err(error) if error.code == codes::UNAVAILABLE => {
            // The request may have reached Daraja.
            let note = format!("Daraja did not answer ({}); unconfirmed", error.message);
            env.warn(&format!("{what} {id}: {note}"));
            db.execute(
                "UPDATE mpesa_transactions SET note = ?1 WHERE id = ?2",
                &[Sql::from(note.as_str()), Sql::from(id)],
            )?;
            Ok(Sent::Unanswered)
        }
        // Refused before sending (e.g. no new token): nothing moved.
        Err(error) if error.code == codes::UPSTREAM => refused(None, &error.message),
        Err(error) => Err(error),
    }
}

/// Asks Daraja about a payout or reversal whose answer or result may have
/// been lost (a transaction-status query, sent with `remarks`; its result
/// settles the transaction). Never sends it again. Answers whether Daraja
/// was asked.
pub fn ask(env: &dyn Env, id: &str, remarks: &str) -> Result<bool> {
    let input = Input::parse(&json!({ "transaction_id": id, "remarks": remarks }).to_string())?;
    match crate::requests::status(env, &input) {
        Ok(_) => mark(env.db(), id, None).map(|()| true),
        Err(error) if error.code == Error::INTERNAL => Err(error),
        Err(error) => {
            env.warn(&format!(
                "transaction {id}: could not ask Daraja about it yet: {}",
                error.message
            ));
            Ok(false)
        }
    }
}
