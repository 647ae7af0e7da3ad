//! C2B (customer pays the paybill directly): URL registration, and the validation and confirmation posts.

use malipo_plugin_sdk::{Error, Input, Result, Sql};
use serde_json::{Value, json};

use crate::credentials::Credentials;
use crate::daraja::{Daraja, amount_value, code_text};
use crate::env::Env;
use crate::transactions::{self, NewTxn};
use crate::validate;

pub const RESPONSE_TYPES: &[&str] = &["Completed", "Cancelled"];

/// `mpesa.c2b.register`: registers the tenant's confirmation and validation URLs for its shortcode.
pub fn register(env: &dyn Env, input: &Input) -> Result<Value> {
    let response_type = match input.opt_trimmed("response_type")? {
        None => "Completed",
        Some(given) => validate::one_of(given, "response_type", RESPONSE_TYPES)?,
    };
    let credentials = Credentials::load(env)?;
    let daraja = Daraja::new(env, &credentials);
    let body = json!({
        "ShortCode": credentials.settings.shortcode,
        "ResponseType": response_type,
        "ConfirmationURL": crate::daraja::opaque_callback_url(env, "c2b/confirmation")?,
        "ValidationURL": crate::daraja::opaque_callback_url(env, "c2b/validation")?,
    });
    let ack = daraja
        .post("/mpesa/c2b/v2/registerurl", &body)?
        .into_accepted("C2B URL registration")?;
    let now = crate::clock::rfc3339_ms(env.ctx().now_ms);
    env.db().execute(
        "UPDATE mpesa_settings SET c2b_response_type = ?1, c2b_registered_at = ?2 WHERE id = 1",
        &[Sql::from(response_type), Sql::from(now.as_str())],
    )?;
    Ok(json!({
        "registered": true,
        "shortcode": credentials.settings.shortcode,
        "response_type": response_type,
        "registered_at": now,
        "response_description": ack.get("ResponseDescription").and_then(Value::as_str),
    }))
}

/// A C2B validation post: every payment is accepted (the answer Daraja expects is included).
pub fn on_validation(body: &Value) -> Value {
    json!({
        "applied": false,
        "accepted": true,
        "trans_id": body.get("TransID").and_then(code_text),
        "ResultCode": "0",
        "ResultDesc": "Accepted",
    })
}

/// A C2B confirmation post: records the payment (once per `TransID`) as completed.
pub fn on_confirmation(env: &dyn Env, body: &Value, raw: &str, received_at: u64) -> Result<Value> {
    let text = |name: &str| body.get(name).and_then(code_text).filter(|s| !s.is_empty());
    let receipt = text("TransID")
        .ok_or_else(|| Error::bad_request("The C2B confirmation has no TransID."))?;
    let amount = body
        .get("TransAmount")
        .and_then(amount_value)
        .filter(|a| *a > 0.0 && *a < 1e12)
        .ok_or_else(|| Error::bad_request("The C2B confirmation has no valid TransAmount."))?;
    if let Some(existing) = transactions::find_by(env.db(), "c2b", "receipt", &receipt)? {
        return Ok(json!({
            "applied": false,
            "transaction_id": existing.id,
            "status": existing.status,
            "reason": "this payment was already recorded",
            "ResultCode": 0,
            "ResultDesc": "Success",
        }));
    }
    // v2 masks the MSISDN and v1 hashes it: keep what came if it is not a plain number.
    let msisdn = text("MSISDN");
    let phone = msisdn
        .as_deref()
        .map(|m| validate::normalize_phone(m).unwrap_or_else(|| m.to_owned()));
    let payer = ["FirstName", "MiddleName", "LastName"]
        .iter()
        .filter_map(|n| text(n))
        .collect::<Vec<_>>()
        .join(" ");
    let note = format!(
        "{} via {}{}",
        text("TransactionType").unwrap_or_else(|| "C2B".to_owned()),
        text("BusinessShortCode").unwrap_or_default(),
        if payer.is_empty() {
            String::new()
        } else {
            format!(" from {payer}")
        }
    );
    #[expect(
        clippy::cast_possible_truncation,
        reason = "bounded above, rounded to whole shillings"
    )]
    let shillings = amount.round() as i64;
    let bill_ref = text("BillRefNumber");
    let id = malipo_plugin_sdk::id::uuid_v4()?;
    let mut ctx = env.ctx().clone();
    ctx.now_ms = received_at;
    let txn = transactions::insert(
        env.db(),
        &ctx,
        &NewTxn {
            id: &id,
            kind: "c2b",
            status: "completed",
            phone_number: phone.as_deref(),
            amount: shillings,
            account_reference: bill_ref.as_deref(),
            receipt: Some(&receipt),
            result_code: Some("0"),
            result_desc: Some("C2B payment confirmed"),
            note: Some(&note),
            raw_callback: Some(raw),
            ..NewTxn::default()
        },
    )?;
    transactions::emit(env, &txn);
    Ok(json!({
        "applied": true,
        "transaction_id": txn.id,
        "status": txn.status,
        "ResultCode": 0,
        "ResultDesc": "Success",
    }))
}
