//! The invoice operations: list and read, and the internal charge and settle steps the host drives.

use malipo_plugin_sdk::{Error, Input, Result};
use serde_json::{Value, json};

use crate::call::Call;
use crate::period::ATTEMPT_PENDING_MS;
use crate::store::{self, ACTIVE, Invoice, PAST_DUE, SUSPENDED};
use crate::subscription::invoice_plan_name;

/// `invoices.list`: newest first, without lines.
pub fn list(call: &Call<'_>, input: &Input) -> Result<Value> {
    let status = input.opt_trimmed("status")?;
    if let Some(status) = status
        && !matches!(status, "open" | "paid" | "void")
    {
        return Err(Error::validation(
            "`status` must be one of open, paid, void.",
        ));
    }
    let invoices: Vec<Value> = store::list_invoices(call.db(), status)?
        .iter()
        .map(Invoice::to_json)
        .collect();
    Ok(json!({ "invoices": invoices }))
}

/// The whole invoice: lines and payment attempts included.
pub fn detail(call: &Call<'_>, invoice: &Invoice) -> Result<Value> {
    let mut value = invoice.to_json();
    value["lines"] = Value::Array(store::invoice_lines(call.db(), &invoice.id)?);
    value["attempts"] = Value::Array(
        store::attempts(call.db(), &invoice.id)?
            .iter()
            .map(store::Attempt::to_json)
            .collect(),
    );
    Ok(value)
}

/// `invoices.get`.
pub fn get(call: &Call<'_>, input: &Input) -> Result<Value> {
    let invoice = store::get_invoice(call.db(), input.req_trimmed("id")?)?;
    detail(call, &invoice)
}

fn closed(invoice: &Invoice) -> Option<Error> {
    match invoice.status.as_str() {
        "paid" => Some(Error::conflict(format!(
            "invoice {} is already paid",
            invoice.number
        ))),
        "void" => Some(Error::conflict(format!(
            "invoice {} is void",
            invoice.number
        ))),
        _ => None,
    }
}

/// `invoices.charge`: records a pending attempt for the STK push the host
/// is about to make, and keeps the phone number for dunning retries.
pub fn charge(call: &Call<'_>, input: &Input) -> Result<Value> {
    let invoice = store::get_invoice(call.db(), input.req_trimmed("invoice_id")?)?;
    let phone = input.req_trimmed("phone_number")?;
    if let Some(err) = closed(&invoice) {
        return Err(err);
    }
    for attempt in store::attempts(call.db(), &invoice.id)? {
        if attempt.status != "pending" {
            continue;
        }
        let age = call.now - attempt.created_ms;
        if age < ATTEMPT_PENDING_MS {
            return Err(Error::conflict(format!(
                "a payment of invoice {} is already in progress; try again in {} seconds",
                invoice.number,
                (ATTEMPT_PENDING_MS - age + 999) / 1000
            )));
        }
        store::finish_attempt(
            call.db(),
            &attempt.id,
            store::Outcome {
                status: "failed",
                transaction_id: None,
                amount_kes: None,
                receipt: None,
                reason: Some("no answer; superseded by a new attempt"),
            },
            call.now,
        )?;
    }
    let attempt_id = store::insert_attempt(
        call.db(),
        &invoice.id,
        "pending",
        Some(phone),
        None,
        call.now,
    )?;
    if let Some(mut sub) = store::load_subscription(call.db())? {
        sub.phone_number = Some(phone.to_owned());
        store::save_subscription(call.db(), &sub)?;
    }
    let plan = invoice_plan_name(call, &invoice)?;
    Ok(json!({
        "attempt_id": attempt_id,
        "invoice_id": invoice.id,
        "number": invoice.number,
        "amount_kes": invoice.amount_kes,
        "account_reference": invoice.number,
        "description": format!("Malipo {plan} subscription"),
    }))
}

fn attempt_answer(call: &Call<'_>, id: &str, changed: bool) -> Result<Value> {
    let attempt = store::get_attempt(call.db(), id)?;
    Ok(json!({
        "changed": changed,
        "attempt_id": attempt.id,
        "invoice_id": attempt.invoice_id,
        "status": attempt.status,
        "transaction_id": attempt.transaction_id,
        "failure_reason": attempt.failure_reason,
    }))
}

/// `invoices.charge-started`: the STK push was accepted; remembers its transaction id.
pub fn charge_started(call: &Call<'_>, input: &Input) -> Result<Value> {
    let id = input.req_trimmed("attempt_id")?;
    let transaction_id = input.req_trimmed("transaction_id")?;
    store::get_attempt(call.db(), id)?;
    let changed = call.db().execute(
        "UPDATE billing_payment_attempts SET transaction_id = ?2
          WHERE id = ?1 AND (transaction_id IS NULL OR transaction_id <> ?2)",
        &[id.into(), transaction_id.into()],
    )? > 0;
    attempt_answer(call, id, changed)
}

/// `invoices.charge-failed`: the STK push could not be made.
pub fn charge_failed(call: &Call<'_>, input: &Input) -> Result<Value> {
    let id = input.req_trimmed("attempt_id")?;
    let reason = input.opt_trimmed("reason")?.unwrap_or("the charge failed");
    store::get_attempt(call.db(), id)?;
    let changed = store::finish_attempt(
        call.db(),
        id,
        store::Outcome {
            status: "failed",
            transaction_id: None,
            amount_kes: None,
            receipt: None,
            reason: Some(reason),
        },
        call.now,
    )?;
    attempt_answer(call, id, changed)
}

/// The attempt a settlement is about: the given one (which must belong to
/// the invoice), else one with the same transaction id, else a new one.
fn settle_attempt(call: &Call<'_>, invoice: &Invoice, input: &Input) -> Result<String> {
    let transaction_id = input.opt_trimmed("transaction_id")?;
    if let Some(id) = input.opt_trimmed("attempt_id")? {
        let attempt = store::get_attempt(call.db(), id)?;
        if attempt.invoice_id != invoice.id {
            return Err(Error::validation(format!(
                "payment attempt {id:?} is not for invoice {}",
                invoice.number
            )));
        }
        return Ok(attempt.id);
    }
    if let Some(txn) = transaction_id
        && let Some(attempt) = store::attempts(call.db(), &invoice.id)?
            .into_iter()
            .find(|a| a.transaction_id.as_deref() == Some(txn))
    {
        return Ok(attempt.id);
    }
    store::insert_attempt(
        call.db(),
        &invoice.id,
        "pending",
        None,
        transaction_id,
        call.now,
    )
}

/// `invoices.settle`: the outcome of a charge. Idempotent: settling a paid
/// invoice again changes nothing.
pub fn settle(call: &Call<'_>, input: &Input) -> Result<Value> {
    let invoice = store::get_invoice(call.db(), input.req_trimmed("invoice_id")?)?;
    let outcome = input.req_trimmed("outcome")?;
    if !matches!(outcome, "completed" | "failed") {
        return Err(Error::validation("`outcome` must be completed or failed."));
    }
    let transaction_id = input.opt_trimmed("transaction_id")?;
    let receipt = input.opt_trimmed("receipt")?;
    let mut changed = false;
    let mut note = None;
    if invoice.status == "paid" {
        note = Some("the invoice is already paid");
    } else if outcome == "failed" {
        let attempt = settle_attempt(call, &invoice, input)?;
        let reason = input.opt_trimmed("reason")?.unwrap_or("the payment failed");
        changed = store::finish_attempt(
            call.db(),
            &attempt,
            store::Outcome {
                status: "failed",
                transaction_id,
                amount_kes: None,
                receipt,
                reason: Some(reason),
            },
            call.now,
        )?;
    } else {
        let amount = input
            .get("amount_kes")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                Error::validation("`amount_kes` is required and must be a whole number.")
            })?;
        let attempt = settle_attempt(call, &invoice, input)?;
        if amount < invoice.amount_kes {
            let reason = format!("paid {amount} of {}", invoice.amount_kes);
            changed = store::finish_attempt(
                call.db(),
                &attempt,
                store::Outcome {
                    status: "failed",
                    transaction_id,
                    amount_kes: Some(amount),
                    receipt,
                    reason: Some(&reason),
                },
                call.now,
            )?;
        } else {
            changed = store::finish_attempt(
                call.db(),
                &attempt,
                store::Outcome {
                    status: "completed",
                    transaction_id,
                    amount_kes: Some(amount),
                    receipt,
                    reason: None,
                },
                call.now,
            )?;
            if invoice.status == "void" {
                // Money for a voided invoice: recorded on the attempt for a
                // refund or credit by a person; the invoice stays void.
                note = Some("the invoice is void; the payment is recorded on its attempt");
            } else {
                store::mark_paid(call.db(), &invoice.id, call.now, receipt)?;
                changed = true;
                let paid = store::get_invoice(call.db(), &invoice.id)?;
                call.emit_invoice("invoice.paid", &paid, &invoice_plan_name(call, &paid)?);
                reactivate(call)?;
            }
        }
    }
    let invoice = store::get_invoice(call.db(), &invoice.id)?;
    let sub = store::load_subscription(call.db())?;
    let catalog = call.catalog().ok();
    Ok(json!({
        "changed": changed,
        "note": note,
        "invoice": detail(call, &invoice)?,
        "subscription": match (&sub, &catalog) {
            (Some(sub), Some(catalog)) => sub.to_json(&sub.plan(catalog)),
            (Some(sub), None) => sub.to_json(&sub.plan(&crate::plans::Catalog::default())),
            _ => Value::Null,
        },
    }))
}

/// After a payment: a past-due or suspended subscription with no other
/// overdue invoice is active again. A suspended one whose period has
/// lapsed starts a new period now (on its pending plan, if any).
fn reactivate(call: &Call<'_>) -> Result<()> {
    let Some(mut sub) = store::load_subscription(call.db())? else {
        return Ok(());
    };
    if !matches!(sub.status.as_str(), PAST_DUE | SUSPENDED) {
        return Ok(());
    }
    let overdue = store::open_invoices(call.db())?
        .iter()
        .any(|invoice| invoice.due_ms <= call.now);
    if overdue {
        return Ok(());
    }
    let catalog = call.catalog().unwrap_or_default();
    let (from_status, from_plan) = (sub.status.clone(), sub.plan_id.clone());
    if sub.status == SUSPENDED && sub.period_end_ms <= call.now {
        let next = crate::subscription::next_plan(&sub, &catalog);
        sub.set_plan(&next);
        sub.pending_plan_id = None;
        sub.restart_periods(call.now);
    }
    sub.status = ACTIVE.to_owned();
    sub.past_due_since_ms = None;
    sub.suspended_at_ms = None;
    sub.updated_ms = call.now;
    store::save_subscription(call.db(), &sub)?;
    let plan = sub.plan(&catalog);
    call.emit_changed(Some(&from_status), Some(&from_plan), &sub, &plan, "paid");
    Ok(())
}
