//! Collecting invoices through the platform tenant's M-Pesa account: the
//! host asks the tenant's billing plugin for a charge, pushes it as an STK
//! push from the platform tenant (configured like any tenant), remembers the
//! transaction in `control.db`, and — when the platform tenant's
//! `payment.completed` or `payment.failed` event names that transaction —
//! settles the invoice in the tenant's billing plugin.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::billing::{PLUGIN, charge_context};
use crate::core::Core;
use crate::core::plugin_call::call_plugin;
use malipo_foundations::error::{ApiError, blocking};
use malipo_foundations::ids::TenantId;
use malipo_runtime::plugins::CallRequest;
use malipo_runtime::plugins::bindings::Event;
use malipo_storage::control::PlatformCharge;

/// The plugin whose STK push collects invoices.
const MPESA: &str = "mpesa";
/// The events that settle a charge.
pub const SETTLING_EVENTS: &[&str] = &["payment.completed", "payment.failed"];

/// Charges `invoice_id` of `tenant` by STK push to `phone_number` from the
/// platform's account. Answers the pending charge.
pub async fn pay_invoice(
    state: &Arc<Core>,
    tenant: TenantId,
    user: Option<String>,
    invoice_id: &str,
    phone_number: &str,
) -> Result<Value, ApiError> {
    // What the caller can fix comes first: an unknown invoice is 404, a
    // paid or void one 409, a malformed phone 422 — whether or not the
    // platform can collect yet (503 below).
    let invoice = call_plugin(
        state,
        tenant,
        PLUGIN,
        "invoices.get",
        charge_context(tenant, user.clone()),
        json!({"id": invoice_id}),
        true,
        None,
        None,
    )
    .await?;
    if let Some(status @ ("paid" | "void")) = invoice["status"].as_str() {
        return Err(ApiError::Conflict(format!(
            "invoice {} is {}",
            invoice["number"].as_str().unwrap_or(invoice_id),
            if status == "paid" {
                "already paid"
            } else {
                "void"
            }
        )));
    }
    if !is_safaricom_mobile(phone_number) {
        return Err(ApiError::Validation(
            "`phone_number` must be a Safaricom mobile number such as 0712345678, 712345678, \
             254712345678 or +254712345678."
                .into(),
        ));
    }
    let platform = state.billing.platform_tenant().ok_or_else(|| {
        ApiError::Unavailable(
            "invoices cannot be paid yet: the platform's own M-Pesa account is not set up \
             (a super-admin names it with PUT /api/v1/admin/platform)"
                .into(),
        )
    })?;
    let charge = call_plugin(
        state,
        tenant,
        PLUGIN,
        "invoices.charge",
        charge_context(tenant, user.clone()),
        json!({"invoice_id": invoice_id, "phone_number": phone_number}),
        false,
        None,
        None,
    )
    .await?;
    let attempt_id = charge["attempt_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let amount = charge["amount_kes"].as_i64().unwrap_or(0);
    let push = json!({
        "phone_number": phone_number,
        "amount": amount,
        "account_reference": charge["account_reference"],
        "description": "Subscription",
        "idempotency_key": format!("invoice-attempt:{attempt_id}"),
    });
    let pushed = call_plugin(
        state,
        platform,
        MPESA,
        "mpesa.stk-push",
        charge_context(platform, None),
        push,
        false,
        None,
        None,
    )
    .await;
    let transaction = match pushed {
        Ok(transaction) => transaction,
        Err(error) => {
            let reason = error.public_message();
            let _ = call_plugin(
                state,
                tenant,
                PLUGIN,
                "invoices.charge-failed",
                charge_context(tenant, user),
                json!({"attempt_id": attempt_id, "reason": reason}),
                false,
                None,
                None,
            )
            .await;
            return Err(match error {
                ApiError::Validation(message) => ApiError::Validation(message),
                other => ApiError::Unavailable(format!(
                    "the platform could not send the M-Pesa prompt: {}",
                    other.public_message()
                )),
            });
        }
    };
    let transaction_id = transaction["transaction"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let record = PlatformCharge {
        transaction_id: transaction_id.clone(),
        tenant_id: tenant,
        invoice_id: invoice_id.to_string(),
        attempt_id: attempt_id.clone(),
        amount_kes: amount,
        status: "pending".into(),
    };
    let state_for_db = Arc::clone(state);
    blocking(move || Ok(state_for_db.control.record_charge(&record)?)).await?;
    call_plugin(
        state,
        tenant,
        PLUGIN,
        "invoices.charge-started",
        charge_context(tenant, user),
        json!({"attempt_id": attempt_id, "transaction_id": transaction_id}),
        false,
        None,
        None,
    )
    .await?;
    Ok(json!({
        "invoice_id": invoice_id,
        "attempt_id": attempt_id,
        "transaction_id": transaction_id,
        "amount_kes": amount,
        "status": "pending",
        "message": "An M-Pesa prompt was sent to the phone; the invoice is marked paid once the payment completes.",
    }))
}

/// Whether `text` is a Kenyan mobile number the `mpesa` plugin accepts
/// (`07…`/`01…`, `7…`/`1…`, `2547…`/`2541…`, `+254…`; spaces and hyphens
/// ignored) — the same rule as its `validate::normalize_phone`, checked here
/// so that a typo is 422 before the platform account is looked for.
fn is_safaricom_mobile(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = compact.strip_prefix('+').unwrap_or(&compact);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if compact.starts_with('+') && !digits.starts_with("254") {
        return false;
    }
    let subscriber = match digits.len() {
        12 => digits.strip_prefix("254"),
        10 => digits.strip_prefix('0'),
        9 => Some(digits),
        _ => None,
    };
    subscriber.is_some_and(|s| matches!(s.as_bytes().first(), Some(b'7' | b'1')))
}

/// Settles the charge a platform payment event names (a no-op for events
/// of other tenants or of payments that are not charges). Idempotent: the
/// billing plugin ignores an invoice already settled. Runs on a blocking
/// thread, inside event delivery.
pub fn settle_from_event(state: &Core, tenant: TenantId, event: &Event) -> Result<(), String> {
    if state.billing.platform_tenant() != Some(tenant)
        || !SETTLING_EVENTS.contains(&event.name.as_str())
    {
        return Ok(());
    }
    // Only the mpesa plugin's own payment events settle a charge: the
    // outbox records who emitted each event, and a payment event from any
    // other source (which the host refuses to write anyway) is ignored.
    if event.source != MPESA {
        tracing::warn!(
            tenant = %tenant, source = event.source, event = event.name,
            "a payment event not emitted by mpesa was ignored by billing"
        );
        return Ok(());
    }
    let payload: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
    let Some(transaction_id) = payload["transaction_id"].as_str() else {
        return Ok(());
    };
    let Some(charge) = state
        .control
        .charge(transaction_id)
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    if charge.status == "settled" {
        return Ok(());
    }
    let completed = event.name == "payment.completed";
    let input = json!({
        "invoice_id": charge.invoice_id,
        "attempt_id": charge.attempt_id,
        "outcome": if completed { "completed" } else { "failed" },
        "transaction_id": charge.transaction_id,
        "receipt": payload["receipt"],
        "amount_kes": payload["amount"].as_i64().unwrap_or(charge.amount_kes),
        "reason": if completed { Value::Null } else { json!(format!("payment {}", payload["status"].as_str().unwrap_or("failed"))) },
    })
    .to_string();
    let db = state
        .tenancy
        .get(charge.tenant_id)
        .map_err(|e| e.to_string())?;
    let request = CallRequest {
        db: &db,
        ctx: charge_context(charge.tenant_id, None),
        operation: "invoices.settle",
        input: &input,
        read_only: false,
        progress: None,
    };
    let settled = state
        .runtime
        .invoke(PLUGIN, request, |_, _| Ok(()))
        .map_err(|e| e.to_string());
    state.billing.invalidate(charge.tenant_id);
    settled?;
    state
        .control
        .settle_charge(transaction_id)
        .map_err(|e| e.to_string())
}
