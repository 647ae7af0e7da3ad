//! One call's view of the host (database, plan catalog, events, clock) and the event payloads.

use malipo_plugin_sdk::{Context, Db, Error, Result};
use serde_json::{Value, json};

use crate::Host;
use crate::period::text;
use crate::plans::{Catalog, Plan};
use crate::store::{Invoice, Subscription};

/// The host, the caller and the call's time (`ctx.now_ms`, the only clock).
pub struct Call<'a> {
    pub host: &'a dyn Host,
    pub ctx: &'a Context,
    pub now: i64,
}

impl<'a> Call<'a> {
    pub fn new(host: &'a dyn Host, ctx: &'a Context) -> Self {
        Self {
            host,
            ctx,
            now: i64::try_from(ctx.now_ms).unwrap_or(i64::MAX),
        }
    }

    pub fn db(&self) -> &dyn Db {
        self.host.db()
    }

    /// The plan catalog from the host config; `internal` if missing.
    pub fn catalog(&self) -> Result<Catalog> {
        let text = self
            .host
            .config("plan-catalog")
            .ok_or_else(|| Error::internal("no plan catalog"))?;
        Catalog::parse(&text)
    }

    /// Emits an event with the tenant id added to its payload.
    pub fn emit(&self, name: &str, mut payload: Value) {
        if let Value::Object(map) = &mut payload {
            map.insert("tenant_id".into(), Value::from(self.ctx.tenant_id.clone()));
        }
        self.host.emit(name, &payload);
    }

    /// Emits an invoice event (`invoice.issued`, `.due`, `.paid`, `.overdue`).
    pub fn emit_invoice(&self, name: &str, invoice: &Invoice, plan_name: &str) {
        self.emit(
            name,
            json!({
                "invoice_id": invoice.id,
                "number": invoice.number,
                "amount_kes": invoice.amount_kes,
                "currency": "KES",
                "due_at": text(invoice.due_ms),
                "status": invoice.status,
                "plan_id": invoice.plan_id,
                "plan_name": plan_name,
                "period_start": text(invoice.period_start_ms),
                "period_end": text(invoice.period_end_ms),
                "reason": invoice.reason,
                "issued_at": text(invoice.issued_ms),
                "paid_at": invoice.paid_ms.map(text),
                "receipt": invoice.receipt,
            }),
        );
    }

    /// Emits `subscription.changed` if the status or the plan changed.
    pub fn emit_changed(
        &self,
        from_status: Option<&str>,
        from_plan_id: Option<&str>,
        sub: &Subscription,
        plan: &Plan,
        reason: &str,
    ) {
        if from_status == Some(sub.status.as_str()) && from_plan_id == Some(sub.plan_id.as_str()) {
            return;
        }
        self.emit(
            "subscription.changed",
            json!({
                "from_status": from_status,
                "to_status": sub.status,
                "from_plan_id": from_plan_id,
                "plan_id": sub.plan_id,
                "plan_name": plan.name,
                "price_kes": plan.price_kes,
                "interval": plan.interval.as_str(),
                "trial_ends_at": sub.trial_ends_ms.map(text),
                "current_period_start": text(sub.period_start_ms),
                "current_period_end": text(sub.period_end_ms),
                "pending_plan_id": sub.pending_plan_id,
                "cancel_at_period_end": sub.cancel_at_period_end,
                "reason": reason,
            }),
        );
    }
}

/// The name of a plan for messages: the catalog's, else the id.
pub fn plan_name(catalog: Option<&Catalog>, sub: Option<&Subscription>, plan_id: &str) -> String {
    if let Some(plan) = catalog.and_then(|c| c.find(plan_id)) {
        return plan.name.clone();
    }
    match sub {
        Some(sub) if sub.plan_id == plan_id => sub.plan_name.clone(),
        _ => plan_id.to_owned(),
    }
}
