//! The `billing.renew` job: advances the subscription's state machine to `ctx.now_ms`, step by step
//! in time order (so a clock that jumped weeks catches up), then sends reminders and asks for
//! dunning retries.
//!
//! Steps, each at its own instant: issue the trial-end or renewal invoice
//! `INVOICE_LEAD_DAYS` before the period end; at the period end, cancel
//! (if asked) or move to the next period (applying a pending downgrade),
//! `past_due` if its invoice is unpaid; `past_due` when any other invoice
//! passes its due date; `suspended` `GRACE_DAYS` after becoming past due.
//! A suspended subscription stays put until paid, cancelled or moved to a
//! free plan.

use malipo_plugin_sdk::Result;
use serde_json::{Value, json};

use crate::call::{Call, plan_name};
use crate::period::{DAY_MS, DUNNING_DAYS, GRACE_DAYS, text};
use crate::plans::Catalog;
use crate::store::{self, ACTIVE, CANCELLED, PAST_DUE, SUSPENDED, Subscription, TRIAL};
use crate::subscription::{
    issue_time, issue_upcoming, next_period, next_plan, void_open, wanted_upcoming,
};

/// At most this many steps per run; a longer catch-up continues next run.
pub const MAX_STEPS: usize = 400;

/// What happens next, in the order steps at the same instant run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Issue,
    PeriodEnd,
    Overdue,
    Suspend,
}

/// The next step and its instant, if any.
fn next_step(
    call: &Call<'_>,
    sub: &Subscription,
    catalog: &Catalog,
) -> Result<Option<(i64, Step)>> {
    let mut steps = Vec::new();
    let running = matches!(sub.status.as_str(), TRIAL | ACTIVE | PAST_DUE);
    if running {
        if wanted_upcoming(sub, catalog).is_some()
            && store::upcoming_invoice(call.db(), sub.period_end_ms)?.is_none()
        {
            steps.push((issue_time(sub), Step::Issue));
        }
        steps.push((sub.period_end_ms, Step::PeriodEnd));
    }
    if sub.status == SUSPENDED && sub.cancel_at_period_end {
        steps.push((sub.period_end_ms, Step::PeriodEnd));
    }
    if matches!(sub.status.as_str(), TRIAL | ACTIVE)
        && let Some(due) = store::open_invoices(call.db())?
            .iter()
            .map(|invoice| invoice.due_ms)
            .min()
    {
        steps.push((due, Step::Overdue));
    }
    if sub.status == PAST_DUE {
        let since = sub.past_due_since_ms.unwrap_or(sub.updated_ms);
        steps.push((since + GRACE_DAYS * DAY_MS, Step::Suspend));
    }
    Ok(steps.into_iter().min())
}

fn transition(at: i64, reason: &str, from: (&str, &str), sub: &Subscription) -> Value {
    json!({
        "at": text(at),
        "reason": reason,
        "from_status": from.0,
        "to_status": sub.status,
        "from_plan_id": from.1,
        "plan_id": sub.plan_id,
    })
}

/// Runs the job.
pub fn run(call: &Call<'_>) -> Result<Value> {
    let Some(mut sub) = store::load_subscription(call.db())? else {
        return Ok(json!({ "transitions": [], "invoices_issued": 0, "charges": [] }));
    };
    let catalog = call.catalog()?;
    let mut transitions = Vec::new();
    let mut issued = 0;
    for _ in 0..MAX_STEPS {
        let Some((at, step)) = next_step(call, &sub, &catalog)? else {
            break;
        };
        if at > call.now {
            break;
        }
        let (from_status, from_plan) = (sub.status.clone(), sub.plan_id.clone());
        let reason = match step {
            Step::Issue => {
                if let Some(plan) = wanted_upcoming(&sub, &catalog) {
                    issue_upcoming(call, &sub, &plan, at)?;
                    issued += 1;
                }
                continue;
            }
            Step::PeriodEnd => period_end(call, &mut sub, &catalog, at)?,
            Step::Overdue => {
                sub.status = PAST_DUE.to_owned();
                sub.past_due_since_ms = Some(at);
                "invoice_overdue"
            }
            Step::Suspend => {
                sub.status = SUSPENDED.to_owned();
                sub.suspended_at_ms = Some(at);
                "grace_period_over"
            }
        };
        sub.updated_ms = call.now;
        store::save_subscription(call.db(), &sub)?;
        let plan = sub.plan(&catalog);
        call.emit_changed(Some(&from_status), Some(&from_plan), &sub, &plan, reason);
        transitions.push(transition(at, reason, (&from_status, &from_plan), &sub));
    }
    let charges = notices(call, &sub, &catalog)?;
    Ok(json!({ "transitions": transitions, "invoices_issued": issued, "charges": charges }))
}

/// The end of the period (or trial) at `at`: cancellation, or the next
/// period on the next plan, past due if its invoice is unpaid.
fn period_end(
    call: &Call<'_>,
    sub: &mut Subscription,
    catalog: &Catalog,
    at: i64,
) -> Result<&'static str> {
    let upcoming = store::upcoming_invoice(call.db(), sub.period_end_ms)?;
    let paid = upcoming
        .as_ref()
        .is_some_and(|invoice| invoice.status == "paid");
    if sub.cancel_at_period_end && (!paid || sub.status == SUSPENDED) {
        void_open(call)?;
        sub.status = CANCELLED.to_owned();
        sub.cancel_at_period_end = false;
        sub.pending_plan_id = None;
        sub.past_due_since_ms = None;
        sub.suspended_at_ms = None;
        sub.cancelled_at_ms = Some(at);
        return Ok("cancelled");
    }
    let was_trial = sub.status == TRIAL;
    let next = next_plan(sub, catalog);
    let (start, end, anchor, index) = next_period(sub, &next);
    sub.set_plan(&next);
    sub.pending_plan_id = None;
    sub.anchor_ms = anchor;
    sub.period_index = index;
    sub.period_start_ms = start;
    sub.period_end_ms = end;
    let unpaid = upcoming
        .as_ref()
        .is_some_and(|invoice| invoice.status == "open");
    if unpaid {
        if sub.status != PAST_DUE {
            sub.past_due_since_ms = Some(at);
        }
        sub.status = PAST_DUE.to_owned();
    } else if sub.status == TRIAL {
        sub.status = ACTIVE.to_owned();
    }
    Ok(match (was_trial, unpaid) {
        (true, true) => "trial_ended_unpaid",
        (true, false) => "trial_ended",
        (false, true) => "renewal_unpaid",
        (false, false) => "renewed",
    })
}

/// Once-only reminders (`invoice.due` a day before, `invoice.overdue` once
/// past due) and the dunning retries due now (days 1, 3, 5 past due, one
/// charge per invoice per run, only with a phone number on file).
fn notices(call: &Call<'_>, sub: &Subscription, catalog: &Catalog) -> Result<Vec<Value>> {
    let mut charges = Vec::new();
    for invoice in store::open_invoices(call.db())? {
        let name = plan_name(Some(catalog), Some(sub), &invoice.plan_id);
        if invoice.due_ms <= call.now {
            if store::claim_notice(call.db(), &invoice.id, "overdue", call.now)? {
                call.emit_invoice("invoice.overdue", &invoice, &name);
            }
        } else if invoice.due_ms - DAY_MS <= call.now
            && store::claim_notice(call.db(), &invoice.id, "due", call.now)?
        {
            call.emit_invoice("invoice.due", &invoice, &name);
        }
        let (Some(phone), Some(since)) = (&sub.phone_number, sub.past_due_since_ms) else {
            continue;
        };
        if !matches!(sub.status.as_str(), PAST_DUE | SUSPENDED) || invoice.due_ms > call.now {
            continue;
        }
        let mut retry = false;
        for day in DUNNING_DAYS {
            if since + day * DAY_MS <= call.now
                && store::claim_notice(call.db(), &invoice.id, &format!("retry_{day}"), call.now)?
            {
                retry = true;
            }
        }
        if retry {
            charges.push(json!({ "invoice_id": invoice.id, "phone_number": phone }));
        }
    }
    Ok(charges)
}
