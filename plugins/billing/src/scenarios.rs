//! Scenario tests: whole operations against SQLite over a simulated timeline.

use serde_json::{Value, json};

use crate::period::DAY_MS;
use crate::testkit::{Harness, date};

const HOUR: i64 = 3_600_000;

fn s(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

#[test]
fn trial_unpaid_past_due_suspended_then_paid() {
    let start = date(2025, 1, 10) + 9 * HOUR;
    let t = Harness::new(start);
    assert_eq!(
        t.err("subscription.get", json!({})).code,
        "not_found",
        "no subscription before the first call"
    );
    let ent = t.ok("entitlements.get", json!({ "default_plan_id": "standard" }));
    assert_eq!(ent["status"], "trial");
    assert_eq!(ent["trial_ends_at"], "2025-01-24T09:00:00Z");
    assert_eq!(ent["open_invoice_id"], Value::Null);
    assert_eq!(ent["amount_due_kes"], 0);
    let events = t.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "subscription.changed");
    assert_eq!(events[0].1["tenant_id"], "t1");
    assert_eq!(events[0].1["to_status"], "trial");
    assert_eq!(events[0].1["from_status"], Value::Null);

    // Nothing before the lead time.
    t.set_now(date(2025, 1, 21) + 8 * HOUR);
    assert_eq!(t.renew()["invoices_issued"], 0);

    // Three days before the trial end: the trial-end invoice.
    t.set_now(date(2025, 1, 21) + 9 * HOUR);
    let out = t.renew();
    assert_eq!(out["invoices_issued"], 1);
    let open = t.open_invoices();
    assert_eq!(open.len(), 1);
    let invoice = &open[0];
    assert_eq!(invoice["number"], "INV-000001");
    assert_eq!(invoice["reason"], "trial_end");
    assert_eq!(invoice["amount_kes"], 2500);
    assert_eq!(invoice["due_at"], "2025-01-24T09:00:00Z");
    assert_eq!(invoice["period_start"], "2025-01-24T09:00:00Z");
    assert_eq!(invoice["period_end"], "2025-02-24T09:00:00Z");
    let id = s(&invoice["id"]).to_owned();
    let events = t.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "invoice.issued");
    for key in [
        "invoice_id",
        "number",
        "amount_kes",
        "currency",
        "due_at",
        "status",
        "plan_id",
        "plan_name",
        "period_start",
        "period_end",
        "tenant_id",
    ] {
        assert!(!events[0].1[key].is_null(), "invoice.issued has {key}");
    }
    assert_eq!(events[0].1["plan_name"], "Standard");
    assert_eq!(t.renew()["invoices_issued"], 0, "issued once");

    // A day before due: one reminder.
    t.set_now(date(2025, 1, 23) + 10 * HOUR);
    t.renew();
    t.renew();
    assert_eq!(t.event_names(), vec!["invoice.due"]);

    // The customer tries and the push fails.
    let charge = t.ok(
        "invoices.charge",
        json!({ "invoice_id": id, "phone_number": "254712345678" }),
    );
    assert_eq!(charge["account_reference"], "INV-000001");
    assert_eq!(charge["description"], "Malipo Standard subscription");
    assert_eq!(charge["amount_kes"], 2500);
    let attempt = s(&charge["attempt_id"]).to_owned();
    t.ok(
        "invoices.charge-started",
        json!({ "attempt_id": attempt, "transaction_id": "ws_CO_9" }),
    );
    t.ok(
        "invoices.settle",
        json!({ "invoice_id": id, "attempt_id": attempt, "outcome": "failed",
                "transaction_id": "ws_CO_9", "receipt": null, "amount_kes": null, "reason": "cancelled by user" }),
    );
    let detail = t.ok("invoices.get", json!({ "id": id }));
    assert_eq!(detail["attempts"][0]["status"], "failed");
    assert_eq!(detail["attempts"][0]["failure_reason"], "cancelled by user");
    assert_eq!(detail["attempts"][0]["transaction_id"], "ws_CO_9");
    assert_eq!(detail["status"], "open");

    // Due date passes unpaid: past due, the period still advances.
    t.set_now(date(2025, 1, 24) + 9 * HOUR);
    let out = t.renew();
    assert_eq!(out["transitions"][0]["to_status"], "past_due");
    assert_eq!(out["transitions"][0]["reason"], "trial_ended_unpaid");
    assert_eq!(out["charges"], json!([]), "no retry on day 0");
    let sub = t.ok("subscription.get", json!({}));
    assert_eq!(sub["status"], "past_due");
    assert_eq!(sub["past_due_since"], "2025-01-24T09:00:00Z");
    assert_eq!(sub["current_period_start"], "2025-01-24T09:00:00Z");
    assert_eq!(sub["current_period_end"], "2025-02-24T09:00:00Z");
    assert_eq!(sub["plan_id"], "standard");
    let names = t.event_names();
    assert!(
        names.contains(&"subscription.changed".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"invoice.overdue".to_owned()), "{names:?}");

    // Dunning: day 1, once.
    t.set_now(date(2025, 1, 25) + 9 * HOUR);
    let out = t.renew();
    assert_eq!(
        out["charges"],
        json!([{ "invoice_id": id, "phone_number": "254712345678" }])
    );
    assert_eq!(t.renew()["charges"], json!([]));
    t.set_now(date(2025, 1, 27) + 9 * HOUR);
    assert_eq!(
        t.renew()["charges"].as_array().map(Vec::len),
        Some(1),
        "day 3"
    );

    // Seven days past due: suspended.
    t.set_now(date(2025, 1, 31) + 9 * HOUR - 1);
    let out = t.renew();
    assert_eq!(
        out["charges"].as_array().map(Vec::len),
        Some(1),
        "day 5, late"
    );
    assert_eq!(t.status(), "past_due");
    t.set_now(date(2025, 1, 31) + 9 * HOUR);
    let out = t.renew();
    assert_eq!(out["transitions"][0]["to_status"], "suspended");
    assert_eq!(out["charges"], json!([]), "three retries at most");
    assert_eq!(t.status(), "suspended");
    t.take_events();

    // Paid: active again, the period kept.
    let settled = t.pay(&id);
    assert_eq!(settled["changed"], true);
    assert_eq!(settled["invoice"]["status"], "paid");
    assert_eq!(settled["invoice"]["receipt"], "QK12AB34CD");
    assert_eq!(settled["subscription"]["status"], "active");
    assert_eq!(
        settled["subscription"]["current_period_end"],
        "2025-02-24T09:00:00Z"
    );
    assert_eq!(settled["subscription"]["suspended_at"], Value::Null);
    assert_eq!(
        t.event_names(),
        vec!["invoice.paid", "subscription.changed"]
    );

    // The same settlement again changes nothing.
    let again = t.ok(
        "invoices.settle",
        json!({ "invoice_id": id, "attempt_id": null, "outcome": "completed",
                "transaction_id": "ws_CO_1", "receipt": "QK12AB34CD", "amount_kes": 2500, "reason": null }),
    );
    assert_eq!(again["changed"], false);
    assert!(t.take_events().is_empty());
    let ent = t.ok("entitlements.get", json!({ "default_plan_id": "free" }));
    assert_eq!(ent["status"], "active");
    assert_eq!(ent["plan_id"], "standard");
    assert_eq!(ent["amount_due_kes"], 0);
}

#[test]
fn paid_trial_renews_on_month_ends_without_drift() {
    // Trial from Jan 17 ends Jan 31.
    let t = Harness::new(date(2024, 1, 17));
    t.ok("subscription.start", json!({ "plan_id": "standard" }));
    t.set_now(date(2024, 1, 28));
    t.renew();
    let invoice = t.open_invoices()[0].clone();
    assert_eq!(invoice["period_end"], "2024-02-29T00:00:00Z", "leap year");
    t.pay(s(&invoice["id"]));
    assert_eq!(t.status(), "trial", "paid early, still in trial");
    t.set_now(date(2024, 1, 31));
    let out = t.renew();
    assert_eq!(out["transitions"][0]["reason"], "trial_ended");
    assert_eq!(t.status(), "active");

    // Renewal invoices: Feb 29 → Mar 31 → Apr 30, paid each time.
    let mut ends = Vec::new();
    for _ in 0..3 {
        let sub = t.ok("subscription.get", json!({}));
        ends.push(s(&sub["current_period_end"]).to_owned());
        t.set_now(t.now.get() + 28 * DAY_MS);
        t.renew();
        let open = t.open_invoices();
        assert_eq!(open.len(), 1, "one renewal invoice");
        assert_eq!(open[0]["reason"], "renewal");
        t.pay(s(&open[0]["id"]));
        t.set_now(t.now.get() + 4 * DAY_MS);
        t.renew();
        assert_eq!(t.status(), "active");
    }
    assert_eq!(
        ends,
        vec![
            "2024-02-29T00:00:00Z",
            "2024-03-31T00:00:00Z",
            "2024-04-30T00:00:00Z"
        ]
    );
    let numbers: Vec<String> = t.ok("invoices.list", json!({}))["invoices"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| s(&i["number"]).to_owned())
        .collect();
    assert_eq!(
        numbers,
        vec!["INV-000004", "INV-000003", "INV-000002", "INV-000001"],
        "sequential, newest first"
    );
}

#[test]
fn cancel_ends_the_subscription_at_the_period_end() {
    let t = Harness::new(date(2025, 3, 1));
    let ent = t.ok("entitlements.get", json!({ "default_plan_id": "direct" }));
    assert_eq!(ent["status"], "active");
    assert_eq!(ent["amount_due_kes"], 1000, "first period invoiced");
    let first = s(&ent["open_invoice_id"]).to_owned();
    t.pay(&first);
    // In the lead window the renewal invoice exists; cancelling voids it.
    t.set_now(date(2025, 3, 29));
    t.renew();
    assert_eq!(t.open_invoices().len(), 1);
    let sub = t.ok("subscription.cancel", json!({}));
    assert_eq!(sub["cancel_at_period_end"], true);
    assert_eq!(sub["status"], "active");
    assert!(t.open_invoices().is_empty(), "renewal voided");
    assert_eq!(
        t.ok("invoices.list", json!({ "status": "void" }))["invoices"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    t.set_now(date(2025, 4, 1) - 1);
    t.renew();
    assert_eq!(t.status(), "active");
    t.set_now(date(2025, 4, 1));
    t.take_events();
    let out = t.renew();
    assert_eq!(out["transitions"][0]["to_status"], "cancelled");
    assert_eq!(out["invoices_issued"], 0);
    assert_eq!(t.status(), "cancelled");
    let events = t.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["from_status"], "active");
    assert_eq!(events[0].1["to_status"], "cancelled");
    // Nothing more happens.
    t.set_now(date(2025, 9, 1));
    assert_eq!(t.renew()["transitions"], json!([]));
    assert!(t.open_invoices().is_empty());

    // Coming back on a paid plan: a new period now, fully invoiced.
    let back = t.ok("subscription.change", json!({ "plan_id": "standard" }));
    assert_eq!(back["effective"], "now");
    assert_eq!(back["subscription"]["status"], "active");
    assert_eq!(
        back["subscription"]["current_period_start"],
        "2025-09-01T00:00:00Z"
    );
    assert_eq!(back["invoice"]["reason"], "new_period");
    assert_eq!(back["invoice"]["amount_kes"], 2500);
    assert_eq!(back["invoice"]["due_at"], "2025-09-04T00:00:00Z");
}

#[test]
fn choosing_the_current_plan_withdraws_a_cancellation() {
    let t = Harness::new(date(2025, 3, 1));
    t.ok("subscription.start", json!({ "plan_id": "free" }));
    t.ok("subscription.cancel", json!({}));
    let back = t.ok("subscription.change", json!({ "plan_id": "free" }));
    assert_eq!(back["subscription"]["cancel_at_period_end"], false);
    t.set_now(date(2025, 5, 2));
    let out = t.renew();
    assert_eq!(t.status(), "active");
    assert_eq!(
        out["transitions"].as_array().map(Vec::len),
        Some(2),
        "two renewals"
    );
    assert_eq!(out["invoices_issued"], 0, "free plans are not invoiced");
}

#[test]
fn downgrade_applies_at_renewal() {
    let t = Harness::new(date(2025, 4, 1));
    t.ok("subscription.start", json!({ "plan_id": "premium_yearly" }));
    t.ok("subscription.set", json!({ "plan_id": "premium" }));
    // Override keeps the period; pay the first invoice.
    let first = t.open_invoices()[0].clone();
    t.pay(s(&first["id"]));
    t.take_events();
    let changed = t.ok("subscription.change", json!({ "plan_id": "standard" }));
    assert_eq!(changed["effective"], "renewal");
    assert_eq!(changed["invoice"], Value::Null);
    assert_eq!(changed["subscription"]["plan_id"], "premium");
    assert_eq!(changed["subscription"]["pending_plan_id"], "standard");
    assert!(t.take_events().is_empty(), "no status or plan change yet");
    // The period ends a year after the start (the yearly plan's period).
    let end = s(&changed["subscription"]["current_period_end"]).to_owned();
    assert_eq!(end, "2026-04-01T00:00:00Z");
    t.set_now(date(2026, 3, 29));
    t.renew();
    let open = t.open_invoices();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["plan_id"], "standard");
    assert_eq!(open[0]["amount_kes"], 2500);
    assert_eq!(
        open[0]["period_end"], "2026-05-01T00:00:00Z",
        "a standard month"
    );
    t.pay(s(&open[0]["id"]));
    t.set_now(date(2026, 4, 1));
    let out = t.renew();
    assert_eq!(out["transitions"][0]["from_plan_id"], "premium");
    assert_eq!(out["transitions"][0]["plan_id"], "standard");
    let sub = t.ok("subscription.get", json!({}));
    assert_eq!(sub["plan_id"], "standard");
    assert_eq!(sub["pending_plan_id"], Value::Null);
    assert_eq!(sub["current_period_end"], "2026-05-01T00:00:00Z");
    assert!(
        t.event_names().contains(&"subscription.changed".to_owned()),
        "the plan change is announced"
    );
}

#[test]
fn downgrade_in_the_lead_window_reissues_the_renewal() {
    let t = Harness::new(date(2025, 4, 1));
    t.ok("subscription.start", json!({ "plan_id": "direct" }));
    t.pay(s(&t.open_invoices()[0]["id"]));
    t.ok("subscription.set", json!({ "plan_id": "premium" }));
    t.set_now(date(2025, 4, 28));
    t.renew();
    assert_eq!(t.open_invoices()[0]["amount_kes"], 7500);
    t.ok("subscription.change", json!({ "plan_id": "standard" }));
    let open = t.open_invoices();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["amount_kes"], 2500);
    assert_eq!(
        open[0]["number"], "INV-000003",
        "a new number, never reused"
    );
    // Withdrawing the downgrade bills premium again.
    t.ok("subscription.change", json!({ "plan_id": "premium" }));
    let open = t.open_invoices();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["amount_kes"], 7500);
    assert_eq!(open[0]["number"], "INV-000004");
}

#[test]
fn upgrade_halfway_is_prorated() {
    // April has 30 days; upgrade with 15 left.
    let t = Harness::new(date(2025, 4, 1));
    t.ok("subscription.start", json!({ "plan_id": "direct" }));
    t.ok("subscription.set", json!({ "plan_id": "standard" }));
    t.pay(s(&t.open_invoices()[0]["id"]));
    t.set_now(date(2025, 4, 16));
    let out = t.ok("subscription.change", json!({ "plan_id": "premium" }));
    assert_eq!(out["effective"], "now");
    assert_eq!(out["subscription"]["plan_id"], "premium");
    assert_eq!(
        out["subscription"]["current_period_end"],
        "2025-05-01T00:00:00Z"
    );
    let invoice = &out["invoice"];
    assert_eq!(invoice["reason"], "proration");
    assert_eq!(invoice["amount_kes"], 2500);
    assert_eq!(invoice["due_at"], "2025-04-19T00:00:00Z");
    let detail = t.ok("invoices.get", json!({ "id": invoice["id"] }));
    assert_eq!(
        detail["lines"][0]["description"],
        "Standard → Premium, 15 of 30 days"
    );
    assert_eq!(detail["lines"][0]["amount_kes"], 2500);

    // Unpaid past its due date: past due, plan unchanged.
    t.set_now(date(2025, 4, 19));
    let out = t.renew();
    assert_eq!(out["transitions"][0]["reason"], "invoice_overdue");
    assert_eq!(t.status(), "past_due");
    let err = t.err("subscription.change", json!({ "plan_id": "standard" }));
    assert_eq!(err.code, "conflict");
    assert!(
        err.message.contains("pay invoice INV-000002 first"),
        "{err}"
    );
    // A free plan is always possible: open invoices are voided.
    let out = t.ok("subscription.change", json!({ "plan_id": "free" }));
    assert_eq!(out["subscription"]["status"], "active");
    assert_eq!(out["subscription"]["plan_id"], "free");
    assert!(t.open_invoices().is_empty());
    assert_eq!(
        t.ok("invoices.get", json!({ "id": invoice["id"] }))["status"],
        "void"
    );
}

#[test]
fn upgrade_to_another_interval_credits_the_unused_part() {
    let t = Harness::new(date(2025, 4, 1));
    t.ok("subscription.start", json!({ "plan_id": "direct" }));
    t.ok("subscription.set", json!({ "plan_id": "standard" }));
    t.pay(s(&t.open_invoices()[0]["id"]));
    t.set_now(date(2025, 4, 16));
    let out = t.ok(
        "subscription.change",
        json!({ "plan_id": "premium_yearly" }),
    );
    assert_eq!(out["invoice"]["reason"], "new_period");
    assert_eq!(out["invoice"]["amount_kes"], 75_000 - 1250);
    assert_eq!(
        out["subscription"]["current_period_end"],
        "2026-04-16T00:00:00Z"
    );
    let detail = t.ok("invoices.get", json!({ "id": out["invoice"]["id"] }));
    assert_eq!(detail["lines"][1]["amount_kes"], -1250);
}

#[test]
fn changes_during_a_trial_switch_the_plan() {
    let t = Harness::new(date(2025, 6, 1));
    t.ok("subscription.start", json!({ "plan_id": "standard" }));
    let out = t.ok("subscription.change", json!({ "plan_id": "premium" }));
    assert_eq!(out["invoice"], Value::Null);
    assert_eq!(out["subscription"]["status"], "trial");
    assert_eq!(out["subscription"]["trial_ends_at"], "2025-06-15T00:00:00Z");
    t.set_now(date(2025, 6, 13));
    t.renew();
    assert_eq!(t.open_invoices()[0]["amount_kes"], 7500);
    let out = t.ok("subscription.change", json!({ "plan_id": "free" }));
    assert_eq!(out["subscription"]["status"], "active");
    assert!(
        t.open_invoices().is_empty(),
        "the trial-end invoice is void"
    );
    // From free to paid: a new period now with a full invoice.
    let out = t.ok("subscription.change", json!({ "plan_id": "standard" }));
    assert_eq!(out["invoice"]["reason"], "new_period");
    assert_eq!(out["invoice"]["amount_kes"], 2500);
    assert_eq!(
        out["subscription"]["current_period_start"],
        "2025-06-13T00:00:00Z"
    );
}

#[test]
fn plan_choices_are_validated() {
    let t = Harness::new(date(2025, 6, 1));
    let err = t.err("subscription.change", json!({ "plan_id": "gold" }));
    assert_eq!(err.code, "validation_failed");
    assert!(err.message.contains("free, standard, premium"), "{err}");
    let err = t.err("subscription.change", json!({ "plan_id": "legacy" }));
    assert_eq!(err.code, "validation_failed");
    assert_eq!(
        t.err("subscription.change", json!({})).code,
        "validation_failed"
    );
    // Starting through change, like a first choice.
    let out = t.ok("subscription.change", json!({ "plan_id": "free" }));
    assert_eq!(out["subscription"]["status"], "active");
    // The override may use a retired plan; the subscriber keeps it.
    t.ok("subscription.set", json!({ "plan_id": "legacy" }));
    let out = t.ok("subscription.change", json!({ "plan_id": "legacy" }));
    assert_eq!(out["subscription"]["plan"]["name"], "Legacy");
    assert_eq!(
        t.err("subscription.set", json!({ "plan_id": "gold" })).code,
        "validation_failed"
    );
    // start is a no-op once there is a subscription.
    let sub = t.ok("subscription.start", json!({ "plan_id": "premium" }));
    assert_eq!(sub["plan_id"], "legacy");
}

#[test]
fn a_missing_catalog_is_an_internal_error() {
    let mut t = Harness::new(date(2025, 6, 1));
    t.catalog = None;
    let err = t.err("entitlements.get", json!({ "default_plan_id": "free" }));
    assert_eq!(err.code, "internal");
    assert_eq!(err.message, "no plan catalog");
}

#[test]
fn charges_are_guarded() {
    let t = Harness::new(date(2025, 6, 1));
    t.ok("subscription.start", json!({ "plan_id": "direct" }));
    let id = s(&t.open_invoices()[0]["id"]).to_owned();
    assert_eq!(
        t.err(
            "invoices.charge",
            json!({ "invoice_id": "nope", "phone_number": "254700000000" })
        )
        .code,
        "not_found"
    );
    let first = t.ok(
        "invoices.charge",
        json!({ "invoice_id": id, "phone_number": "254700000000" }),
    );
    t.advance(119_000);
    let err = t.err(
        "invoices.charge",
        json!({ "invoice_id": id, "phone_number": "254700000000" }),
    );
    assert_eq!(err.code, "conflict");
    t.advance(1_000);
    t.ok(
        "invoices.charge",
        json!({ "invoice_id": id, "phone_number": "254700000001" }),
    );
    let detail = t.ok("invoices.get", json!({ "id": id }));
    assert_eq!(detail["attempts"][0]["id"], first["attempt_id"]);
    assert_eq!(detail["attempts"][0]["status"], "failed");
    assert_eq!(detail["attempts"][1]["status"], "pending");
    // A short payment does not pay the invoice.
    let out = t.ok(
        "invoices.settle",
        json!({ "invoice_id": id, "attempt_id": detail["attempts"][1]["id"], "outcome": "completed",
                "transaction_id": "ws_2", "receipt": "R2", "amount_kes": 400, "reason": null }),
    );
    assert_eq!(out["invoice"]["status"], "open");
    assert_eq!(out["invoice"]["attempts"][1]["status"], "failed");
    assert_eq!(
        out["invoice"]["attempts"][1]["failure_reason"],
        "paid 400 of 1000"
    );
    t.pay(&id);
    let err = t.err(
        "invoices.charge",
        json!({ "invoice_id": id, "phone_number": "254700000000" }),
    );
    assert_eq!(err.code, "conflict");
    assert_eq!(err.message, "invoice INV-000001 is already paid");
}

#[test]
fn a_settlement_without_attempt_is_recorded_once() {
    let t = Harness::new(date(2025, 6, 1));
    t.ok("subscription.start", json!({ "plan_id": "direct" }));
    let id = s(&t.open_invoices()[0]["id"]).to_owned();
    let input = json!({ "invoice_id": id, "attempt_id": null, "outcome": "completed",
                        "transaction_id": "ws_X", "receipt": "RX", "amount_kes": 1000, "reason": null });
    let first = t.ok("invoices.settle", input.clone());
    assert_eq!(first["changed"], true);
    let second = t.ok("invoices.settle", input);
    assert_eq!(second["changed"], false);
    assert_eq!(
        second["invoice"]["attempts"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(second["invoice"]["paid_at"], "2025-06-01T00:00:00Z");
}

#[test]
fn a_long_jump_catches_up_and_stays_bounded() {
    let t = Harness::new(date(2025, 1, 31));
    t.ok("subscription.start", json!({ "plan_id": "free" }));
    t.set_now(date(2028, 2, 29) + 1);
    let out = t.renew();
    assert_eq!(out["transitions"].as_array().map(Vec::len), Some(37));
    let sub = t.ok("subscription.get", json!({}));
    assert_eq!(sub["current_period_start"], "2028-02-29T00:00:00Z");
    assert_eq!(sub["current_period_end"], "2028-03-31T00:00:00Z");
    assert_eq!(t.renew()["transitions"], json!([]));

    // A paid plan left unpaid for months stops at suspended.
    let t = Harness::new(date(2025, 1, 1));
    t.ok("subscription.start", json!({ "plan_id": "standard" }));
    t.set_now(date(2025, 9, 1));
    let out = t.renew();
    let reasons: Vec<&str> = out["transitions"]
        .as_array()
        .map(|list| list.iter().map(|v| s(&v["reason"])).collect())
        .unwrap_or_default();
    assert_eq!(reasons, vec!["trial_ended_unpaid", "grace_period_over"]);
    assert_eq!(out["invoices_issued"], 1);
    assert_eq!(t.status(), "suspended");
    assert_eq!(out["charges"], json!([]), "no phone on file");
    // Paid months later: a new period starts now.
    let id = s(&t.open_invoices()[0]["id"]).to_owned();
    let out = t.pay(&id);
    assert_eq!(out["subscription"]["status"], "active");
    assert_eq!(
        out["subscription"]["current_period_start"],
        "2025-09-01T00:00:00Z"
    );
}

#[test]
fn the_override_keeps_status_and_period() {
    let t = Harness::new(date(2025, 1, 1));
    t.ok("subscription.start", json!({ "plan_id": "direct" }));
    t.set_now(date(2025, 1, 4));
    t.renew();
    assert_eq!(t.status(), "past_due");
    let before = t.ok("subscription.get", json!({}));
    t.take_events();
    let after = t.ok("subscription.set", json!({ "plan_id": "premium" }));
    assert_eq!(after["status"], "past_due");
    assert_eq!(after["plan_id"], "premium");
    assert_eq!(after["current_period_end"], before["current_period_end"]);
    let events = t.take_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["from_plan_id"], "direct");
    assert_eq!(events[0].1["plan_name"], "Premium");
    assert_eq!(t.open_invoices()[0]["amount_kes"], 1000, "no charge");
}

#[test]
fn entitlements_report_the_oldest_open_invoice_and_the_total_due() {
    let t = Harness::new(date(2025, 4, 1));
    t.ok("entitlements.get", json!({ "default_plan_id": "direct" }));
    t.ok("subscription.set", json!({ "plan_id": "standard" }));
    t.set_now(date(2025, 4, 2));
    t.ok("subscription.change", json!({ "plan_id": "premium" }));
    let open = t.open_invoices();
    assert_eq!(open.len(), 2);
    let ent = t.ok("entitlements.get", json!({}));
    assert_eq!(ent["open_invoice_id"], open[0]["id"]);
    let total =
        open[0]["amount_kes"].as_i64().unwrap_or(0) + open[1]["amount_kes"].as_i64().unwrap_or(0);
    assert_eq!(ent["amount_due_kes"], total);
    assert_eq!(open[1]["amount_kes"], 4834, "ceil(5000 × 29 / 30)");
    assert_eq!(
        t.err("invoices.list", json!({ "status": "late" })).code,
        "validation_failed"
    );
    assert_eq!(
        t.err("invoices.get", json!({ "id": "x" })).code,
        "not_found"
    );
    assert_eq!(t.err("nope", json!({})).code, "bad_request");
}

#[test]
fn a_trial_cancelled_in_the_lead_window_ends_without_invoice() {
    let t = Harness::new(date(2025, 6, 1));
    t.ok("subscription.start", json!({ "plan_id": "premium" }));
    t.set_now(date(2025, 6, 13));
    t.renew();
    assert_eq!(t.open_invoices().len(), 1);
    t.ok("subscription.cancel", json!({}));
    assert!(t.open_invoices().is_empty());
    // Cancelling twice changes nothing.
    let sub = t.ok("subscription.cancel", json!({}));
    assert_eq!(sub["cancel_at_period_end"], true);
    t.set_now(date(2025, 6, 15));
    let out = t.renew();
    assert_eq!(out["invoices_issued"], 0, "no new trial-end invoice");
    assert_eq!(out["transitions"][0]["from_status"], "trial");
    assert_eq!(out["transitions"][0]["to_status"], "cancelled");
    let ent = t.ok("entitlements.get", json!({ "default_plan_id": "free" }));
    assert_eq!(ent["status"], "cancelled");
    assert_eq!(ent["open_invoice_id"], Value::Null);
}

#[test]
fn a_downgrade_to_free_needs_no_invoice() {
    let t = Harness::new(date(2025, 6, 1));
    t.ok("subscription.start", json!({ "plan_id": "direct" }));
    t.pay(s(&t.open_invoices()[0]["id"]));
    let out = t.ok("subscription.change", json!({ "plan_id": "free" }));
    assert_eq!(out["effective"], "renewal");
    t.set_now(date(2025, 7, 1));
    let out = t.renew();
    assert_eq!(out["invoices_issued"], 0);
    assert_eq!(out["transitions"][0]["plan_id"], "free");
    assert_eq!(t.status(), "active");
    assert!(t.open_invoices().is_empty());
}

#[test]
fn attempt_outcomes_are_recorded_once() {
    let t = Harness::new(date(2025, 6, 1));
    t.ok("subscription.start", json!({ "plan_id": "direct" }));
    let id = s(&t.open_invoices()[0]["id"]).to_owned();
    let charge = t.ok(
        "invoices.charge",
        json!({ "invoice_id": id, "phone_number": "254711111111" }),
    );
    let attempt = charge["attempt_id"].clone();
    let failed = t.ok(
        "invoices.charge-failed",
        json!({ "attempt_id": attempt, "reason": "Daraja refused" }),
    );
    assert_eq!(failed["changed"], true);
    assert_eq!(failed["status"], "failed");
    let again = t.ok(
        "invoices.charge-failed",
        json!({ "attempt_id": attempt, "reason": "Daraja refused" }),
    );
    assert_eq!(again["changed"], false);
    assert_eq!(
        t.err(
            "invoices.charge-started",
            json!({ "attempt_id": "x", "transaction_id": "y" })
        )
        .code,
        "not_found"
    );
    // A failed attempt no longer blocks a new charge.
    t.ok(
        "invoices.charge",
        json!({ "invoice_id": id, "phone_number": "254711111111" }),
    );
}

#[test]
fn money_for_a_void_invoice_is_recorded_but_changes_nothing_else() {
    let t = Harness::new(date(2025, 1, 1));
    t.ok("subscription.start", json!({ "plan_id": "direct" }));
    let id = s(&t.open_invoices()[0]["id"]).to_owned();
    let charge = t.ok(
        "invoices.charge",
        json!({ "invoice_id": id, "phone_number": "254711111111" }),
    );
    t.set_now(date(2025, 1, 4));
    t.renew();
    t.ok("subscription.change", json!({ "plan_id": "free" }));
    t.take_events();
    let out = t.ok(
        "invoices.settle",
        json!({ "invoice_id": id, "attempt_id": charge["attempt_id"], "outcome": "completed",
                "transaction_id": "ws_1", "receipt": "R1", "amount_kes": 1000, "reason": null }),
    );
    assert_eq!(out["invoice"]["status"], "void");
    assert_eq!(out["invoice"]["attempts"][0]["status"], "completed");
    assert!(out["note"].is_string());
    assert!(t.take_events().is_empty());
    assert_eq!(out["subscription"]["plan_id"], "free");
}
