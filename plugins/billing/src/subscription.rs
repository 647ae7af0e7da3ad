//! The subscription operations: get, start, change, cancel, the super-admin override and entitlements,
//! with the helpers that issue invoices for them.

use malipo_plugin_sdk::{Error, Input, Result};
use serde_json::{Value, json};

use crate::call::{Call, plan_name};
use crate::period::{CHANGE_DUE_DAYS, DAY_MS, INVOICE_LEAD_DAYS, period_end, text};
use crate::plans::{Catalog, Plan, proration, unused_credit};
use crate::store::{
    self, ACTIVE, CANCELLED, Invoice, Line, NewInvoice, PAST_DUE, SUSPENDED, Subscription, TRIAL,
};

/// The subscription, or not_found with what to do.
pub fn require(call: &Call<'_>) -> Result<Subscription> {
    store::load_subscription(call.db())?.ok_or_else(|| {
        Error::not_found(
            "This organization has no subscription yet; choose a plan with PUT /subscription {\"plan_id\": …}.",
        )
    })
}

/// `subscription.get`.
pub fn get(call: &Call<'_>) -> Result<Value> {
    let sub = require(call)?;
    let catalog = call.catalog()?;
    Ok(sub.to_json(&sub.plan(&catalog)))
}

/// `subscription.start`: a no-op if a subscription exists.
pub fn start(call: &Call<'_>, input: &Input) -> Result<Value> {
    let catalog = call.catalog()?;
    let sub = match store::load_subscription(call.db())? {
        Some(sub) => sub,
        None => start_with(call, catalog.known(input.req_trimmed("plan_id")?)?)?.0,
    };
    Ok(sub.to_json(&sub.plan(&catalog)))
}

/// Starts a subscription on `plan`: a trial for a paid plan with trial
/// days, else active (with an invoice for the first period if paid).
pub fn start_with(call: &Call<'_>, plan: &Plan) -> Result<(Subscription, Option<Invoice>)> {
    let now = call.now;
    let mut sub = Subscription {
        plan_id: plan.id.clone(),
        plan_name: plan.name.clone(),
        plan_price_kes: plan.price_kes,
        plan_interval: plan.interval,
        status: ACTIVE.to_owned(),
        trial_ends_ms: None,
        anchor_ms: now,
        period_index: 0,
        period_start_ms: now,
        period_end_ms: now,
        pending_plan_id: None,
        cancel_at_period_end: false,
        past_due_since_ms: None,
        suspended_at_ms: None,
        cancelled_at_ms: None,
        phone_number: None,
        created_ms: now,
        updated_ms: now,
    };
    let mut invoice = None;
    if !plan.is_free() && plan.trial_days > 0 {
        let ends = now + plan.trial_days * DAY_MS;
        sub.status = TRIAL.to_owned();
        sub.trial_ends_ms = Some(ends);
        sub.period_end_ms = ends;
    } else {
        sub.restart_periods(now);
        if !plan.is_free() {
            invoice = Some(new_period_invoice(call, &sub, plan, Vec::new())?);
        }
    }
    store::save_subscription(call.db(), &sub)?;
    call.emit_changed(None, None, &sub, plan, "started");
    Ok((sub, invoice))
}

/// Issues an invoice and announces it; a zero invoice is paid at once.
pub fn issue(call: &Call<'_>, new: &NewInvoice, plan_name: &str) -> Result<Invoice> {
    let mut invoice = store::insert_invoice(call.db(), new)?;
    call.emit_invoice("invoice.issued", &invoice, plan_name);
    if invoice.amount_kes == 0 {
        store::mark_paid(call.db(), &invoice.id, call.now, None)?;
        invoice.status = "paid".to_owned();
        invoice.paid_ms = Some(call.now);
        call.emit_invoice("invoice.paid", &invoice, plan_name);
    }
    Ok(invoice)
}

fn date(ms: i64) -> String {
    text(ms).chars().take(10).collect()
}

fn period_line(plan: &Plan, start: i64, end: i64) -> Line {
    Line {
        description: format!("{} plan, {} to {}", plan.name, date(start), date(end)),
        amount_kes: plan.price_kes,
        plan_id: Some(plan.id.clone()),
        period_start_ms: start,
        period_end_ms: end,
    }
}

/// The full invoice of a period that starts now, due in three days,
/// with `extra` lines (e.g. a credit) after the plan's line.
fn new_period_invoice(
    call: &Call<'_>,
    sub: &Subscription,
    plan: &Plan,
    extra: Vec<Line>,
) -> Result<Invoice> {
    let mut lines = vec![period_line(plan, sub.period_start_ms, sub.period_end_ms)];
    lines.extend(extra);
    issue(
        call,
        &NewInvoice {
            plan_id: plan.id.clone(),
            reason: store::NEW_PERIOD,
            period_start_ms: sub.period_start_ms,
            period_end_ms: sub.period_end_ms,
            issued_ms: call.now,
            due_ms: call.now + CHANGE_DUE_DAYS * DAY_MS,
            lines,
        },
        &plan.name,
    )
}

/// The plan that applies from the next period: the pending one, else the current one.
pub fn next_plan(sub: &Subscription, catalog: &Catalog) -> Plan {
    sub.pending_plan_id
        .as_deref()
        .and_then(|id| catalog.find(id))
        .cloned()
        .unwrap_or_else(|| sub.plan(catalog))
}

/// The plan the upcoming trial-end or renewal invoice should bill, if any.
pub fn wanted_upcoming(sub: &Subscription, catalog: &Catalog) -> Option<Plan> {
    if sub.cancel_at_period_end || !matches!(sub.status.as_str(), TRIAL | ACTIVE | PAST_DUE) {
        return None;
    }
    Some(next_plan(sub, catalog)).filter(|plan| !plan.is_free())
}

/// The next period after the current one on `next`: (start, end, anchor, index).
pub fn next_period(sub: &Subscription, next: &Plan) -> (i64, i64, i64, i64) {
    let start = sub.period_end_ms;
    // Periods count from the anchor while they can (no drift on clamped
    // month ends); after a trial, an interval change or an override that
    // kept another interval's period, a new anchor starts at the boundary.
    let anchored = sub.status != TRIAL
        && next.interval == sub.plan_interval
        && period_end(sub.anchor_ms, sub.plan_interval, sub.period_index) == start;
    if !anchored {
        (start, period_end(start, next.interval, 0), start, 0)
    } else {
        let index = sub.period_index + 1;
        (
            start,
            period_end(sub.anchor_ms, next.interval, index),
            sub.anchor_ms,
            index,
        )
    }
}

/// When the upcoming invoice is issued: `INVOICE_LEAD_DAYS` before the
/// period end, but not before the period starts.
pub fn issue_time(sub: &Subscription) -> i64 {
    (sub.period_end_ms - INVOICE_LEAD_DAYS * DAY_MS).max(sub.period_start_ms)
}

/// Issues the trial-end or renewal invoice for the next period at `at`.
pub fn issue_upcoming(
    call: &Call<'_>,
    sub: &Subscription,
    plan: &Plan,
    at: i64,
) -> Result<Invoice> {
    let (start, end, _, _) = next_period(sub, plan);
    issue(
        call,
        &NewInvoice {
            plan_id: plan.id.clone(),
            reason: if sub.status == TRIAL {
                store::TRIAL_END
            } else {
                store::RENEWAL
            },
            period_start_ms: start,
            period_end_ms: end,
            issued_ms: at,
            due_ms: sub.period_end_ms,
            lines: vec![period_line(plan, start, end)],
        },
        &plan.name,
    )
}

/// After a change: voids an open upcoming invoice that no longer matches
/// (plan, price, cancellation) and issues the right one if it is due.
pub fn refresh_upcoming(call: &Call<'_>, sub: &Subscription, catalog: &Catalog) -> Result<()> {
    let wanted = wanted_upcoming(sub, catalog);
    let existing = store::upcoming_invoice(call.db(), sub.period_end_ms)?;
    if let Some(invoice) = &existing {
        if invoice.status != "open" {
            return Ok(());
        }
        let (start, end, _, _) = wanted
            .as_ref()
            .map_or((0, 0, 0, 0), |plan| next_period(sub, plan));
        let matches = wanted.as_ref().is_some_and(|plan| {
            plan.id == invoice.plan_id
                && plan.price_kes == invoice.amount_kes
                && (start, end) == (invoice.period_start_ms, invoice.period_end_ms)
        });
        if matches {
            return Ok(());
        }
        store::void_invoice(call.db(), &invoice.id, call.now)?;
    }
    if let Some(plan) = wanted
        && call.now >= issue_time(sub)
        && call.now < sub.period_end_ms
    {
        issue_upcoming(call, sub, &plan, call.now)?;
    }
    Ok(())
}

/// Voids every open invoice (a move to a free plan while unpaid, a cancellation).
pub fn void_open(call: &Call<'_>) -> Result<()> {
    for invoice in store::open_invoices(call.db())? {
        store::void_invoice(call.db(), &invoice.id, call.now)?;
    }
    Ok(())
}

fn answer(sub: &Subscription, plan: &Plan, invoice: Option<&Invoice>, effective: &str) -> Value {
    json!({
        "subscription": sub.to_json(plan),
        "invoice": invoice.map(Invoice::to_json),
        "effective": effective,
    })
}

/// `subscription.change` (`PUT /subscription {plan_id}`).
pub fn change(call: &Call<'_>, input: &Input) -> Result<Value> {
    let plan_id = input.req_trimmed("plan_id")?;
    let catalog = call.catalog()?;
    let Some(mut sub) = store::load_subscription(call.db())? else {
        let plan = catalog.choosable(plan_id)?;
        let (sub, invoice) = start_with(call, plan)?;
        return Ok(answer(&sub, plan, invoice.as_ref(), "now"));
    };
    let current = sub.plan(&catalog);
    // Existing subscribers keep a plan the catalog no longer offers.
    let new = if plan_id == sub.plan_id {
        current.clone()
    } else {
        catalog.choosable(plan_id)?.clone()
    };
    let (from_status, from_plan) = (sub.status.clone(), sub.plan_id.clone());
    let now = call.now;
    let mut invoice = None;
    let effective;

    match sub.status.as_str() {
        PAST_DUE | SUSPENDED => {
            if !new.is_free() {
                let open = store::open_invoices(call.db())?;
                let numbers: Vec<&str> = open.iter().map(|i| i.number.as_str()).collect();
                return Err(Error::conflict(format!(
                    "pay invoice {} first",
                    if numbers.is_empty() {
                        "(none open)".to_owned()
                    } else {
                        numbers.join(", ")
                    }
                )));
            }
            void_open(call)?;
            sub.set_plan(&new);
            sub.status = ACTIVE.to_owned();
            sub.past_due_since_ms = None;
            sub.suspended_at_ms = None;
            sub.restart_periods(now);
            effective = "now";
        }
        CANCELLED => {
            sub.set_plan(&new);
            sub.status = ACTIVE.to_owned();
            sub.cancelled_at_ms = None;
            sub.restart_periods(now);
            if !new.is_free() {
                invoice = Some(new_period_invoice(call, &sub, &new, Vec::new())?);
            }
            effective = "now";
        }
        TRIAL => {
            sub.set_plan(&new);
            if new.is_free() {
                void_open(call)?;
                sub.status = ACTIVE.to_owned();
                sub.restart_periods(now);
            }
            effective = "now";
        }
        _ if new.id == current.id => {
            effective = "now";
        }
        _ if current.is_free() && !new.is_free() => {
            sub.set_plan(&new);
            sub.restart_periods(now);
            invoice = Some(new_period_invoice(call, &sub, &new, Vec::new())?);
            effective = "now";
        }
        _ if new.costs_more_than(&current) => {
            let remaining = sub.period_end_ms - now;
            let length = sub.period_end_ms - sub.period_start_ms;
            if new.interval == current.interval {
                let (amount, days, of) = proration(&current, &new, remaining, length);
                sub.set_plan(&new);
                if amount > 0 {
                    invoice = Some(issue(
                        call,
                        &NewInvoice {
                            plan_id: new.id.clone(),
                            reason: store::PRORATION,
                            period_start_ms: now,
                            period_end_ms: sub.period_end_ms,
                            issued_ms: now,
                            due_ms: now + CHANGE_DUE_DAYS * DAY_MS,
                            lines: vec![Line {
                                description: format!(
                                    "{} → {}, {days} of {of} days",
                                    current.name, new.name
                                ),
                                amount_kes: amount,
                                plan_id: Some(new.id.clone()),
                                period_start_ms: now,
                                period_end_ms: sub.period_end_ms,
                            }],
                        },
                        &new.name,
                    )?);
                }
            } else {
                // Another interval: a new period starts now, less the unused
                // part of the current one.
                if let Some(upcoming) = store::upcoming_invoice(call.db(), sub.period_end_ms)?
                    && upcoming.status == "open"
                {
                    store::void_invoice(call.db(), &upcoming.id, now)?;
                }
                let (credit, days, of) = unused_credit(&current, remaining, length);
                let (start, end) = (sub.period_start_ms, sub.period_end_ms);
                sub.set_plan(&new);
                sub.restart_periods(now);
                let extra = (credit > 0)
                    .then(|| Line {
                        description: format!("Unused {}, {days} of {of} days", current.name),
                        amount_kes: -credit,
                        plan_id: Some(current.id.clone()),
                        period_start_ms: now.max(start),
                        period_end_ms: end,
                    })
                    .into_iter()
                    .collect();
                invoice = Some(new_period_invoice(call, &sub, &new, extra)?);
            }
            effective = "now";
        }
        _ => {
            sub.pending_plan_id = Some(new.id.clone());
            sub.cancel_at_period_end = false;
            effective = "renewal";
        }
    }
    if effective == "now" {
        sub.pending_plan_id = None;
        sub.cancel_at_period_end = false;
    }
    sub.updated_ms = now;
    refresh_upcoming(call, &sub, &catalog)?;
    store::save_subscription(call.db(), &sub)?;
    let plan = sub.plan(&catalog);
    call.emit_changed(
        Some(&from_status),
        Some(&from_plan),
        &sub,
        &plan,
        "plan_changed",
    );
    Ok(answer(&sub, &plan, invoice.as_ref(), effective))
}

/// `subscription.cancel`: the subscription ends at the end of the current
/// period (or trial); nothing more is invoiced.
pub fn cancel(call: &Call<'_>) -> Result<Value> {
    let mut sub = require(call)?;
    let catalog = call.catalog()?;
    if sub.status != CANCELLED && !sub.cancel_at_period_end {
        sub.cancel_at_period_end = true;
        sub.pending_plan_id = None;
        sub.updated_ms = call.now;
        refresh_upcoming(call, &sub, &catalog)?;
        store::save_subscription(call.db(), &sub)?;
    }
    Ok(sub.to_json(&sub.plan(&catalog)))
}

/// `subscription.set`: a super-admin override; switches the plan now, no
/// charge, status and period kept.
pub fn set(call: &Call<'_>, input: &Input) -> Result<Value> {
    let catalog = call.catalog()?;
    let plan = catalog.known(input.req_trimmed("plan_id")?)?;
    let Some(mut sub) = store::load_subscription(call.db())? else {
        let (sub, _) = start_with(call, plan)?;
        return Ok(sub.to_json(plan));
    };
    let from_plan = sub.plan_id.clone();
    sub.set_plan(plan);
    sub.pending_plan_id = None;
    sub.updated_ms = call.now;
    refresh_upcoming(call, &sub, &catalog)?;
    store::save_subscription(call.db(), &sub)?;
    call.emit_changed(Some(&sub.status), Some(&from_plan), &sub, plan, "override");
    Ok(sub.to_json(plan))
}

/// `entitlements.get`: what the host needs to gate the tenant; starts a
/// subscription on `default_plan_id` if there is none.
pub fn entitlements(call: &Call<'_>, input: &Input) -> Result<Value> {
    let sub = match store::load_subscription(call.db())? {
        Some(sub) => sub,
        None => {
            let catalog = call.catalog()?;
            let plan = catalog.known(input.req_trimmed("default_plan_id")?)?;
            start_with(call, plan)?.0
        }
    };
    let open = store::open_invoices(call.db())?;
    Ok(json!({
        "plan_id": sub.plan_id,
        "status": sub.status,
        "trial_ends_at": sub.trial_ends_ms.map(text),
        "current_period_start": text(sub.period_start_ms),
        "current_period_end": text(sub.period_end_ms),
        "open_invoice_id": open.first().map(|invoice| invoice.id.clone()),
        "amount_due_kes": open.iter().map(|invoice| invoice.amount_kes).sum::<i64>(),
    }))
}

/// The plan name for an invoice's events and charges.
pub fn invoice_plan_name(call: &Call<'_>, invoice: &Invoice) -> Result<String> {
    let catalog = call.catalog().ok();
    let sub = store::load_subscription(call.db())?;
    Ok(plan_name(catalog.as_ref(), sub.as_ref(), &invoice.plan_id))
}
