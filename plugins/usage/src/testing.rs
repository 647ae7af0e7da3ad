//! Native tests of the operations against a real SQLite database: the
//! plugin's migrations plus the host tables it reads.

use std::cell::RefCell;
use std::collections::HashMap;

use malipo_plugin_sdk::testing::{SqliteDb, code, context};
use malipo_plugin_sdk::{Db, Error, Input, Result};
use serde_json::{Value, json};

use crate::Host;

/// The tenant database: the host tables the plugin reads and the plugin's
/// migrations, behind the host's rules (see [`SqliteDb`]).
pub fn database() -> SqliteDb {
    let manifest = crate::manifest::manifest();
    let db = SqliteDb::in_memory("usage", &manifest.read_tables).expect("in-memory SQLite");
    db.seed(
        "CREATE TABLE stores (id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'active', \
                              created_at TEXT NOT NULL DEFAULT '', updated_at TEXT NOT NULL DEFAULT ''); \
         CREATE TABLE members (user_id TEXT PRIMARY KEY, email TEXT NOT NULL, full_name TEXT NOT NULL, \
                               status TEXT NOT NULL DEFAULT 'active', joined_at TEXT NOT NULL DEFAULT ''); \
         CREATE TABLE store_members (store_id TEXT NOT NULL, user_id TEXT NOT NULL);",
    )
    .expect("host tables");
    for migration in &manifest.migrations {
        db.migrate(&migration.sql)
            .expect("the plugin's migrations apply");
    }
    db
}

/// The host of a test: a database, settings and the events emitted.
pub struct FakeHost {
    pub db: SqliteDb,
    pub config: RefCell<HashMap<String, String>>,
    pub emitted: RefCell<Vec<(String, Value)>>,
}

impl FakeHost {
    pub fn new() -> Self {
        Self {
            db: database(),
            config: RefCell::new(HashMap::new()),
            emitted: RefCell::new(Vec::new()),
        }
    }

    /// Sets the tenant's entitlements to a plan with these monthly quotas.
    pub fn plan(&self, api_calls: Value, transactions: Value) {
        let entitlements = json!({
            "plan": {
                "id": "free", "name": "Free",
                "limits": {
                    "max_stores": 2, "max_users": 3,
                    "api_calls_per_month": api_calls,
                    "transactions_per_month": transactions,
                    "requests_per_minute": 60
                },
                "features": []
            },
            "status": "active"
        });
        self.config
            .borrow_mut()
            .insert("entitlements".to_owned(), entitlements.to_string());
    }

    /// Runs an operation, under the read-only rule its annotations declare.
    pub fn call(&self, now_ms: u64, operation: &str, input: Value) -> Result<Value> {
        let read_only = crate::manifest::manifest()
            .operations
            .iter()
            .any(|op| op.name == operation && op.annotations.read_only);
        let input = Input::parse(&input.to_string())?;
        self.db.call(read_only, || {
            crate::dispatch(self, &context(None, now_ms), operation, &input)
        })
    }

    /// Delivers an event.
    pub fn event(&self, now_ms: u64, id: &str, name: &str, payload: Value) -> Result<()> {
        self.db.call(false, || {
            crate::money::on_event(
                &self.db,
                &context(None, now_ms),
                id,
                name,
                &payload.to_string(),
            )
        })
    }

    /// The `(metric, threshold, used, period)` of each event emitted so far, then forgets them.
    pub fn take_thresholds(&self) -> Vec<(String, i64, i64, String)> {
        self.emitted
            .borrow_mut()
            .drain(..)
            .map(|(name, payload)| {
                assert_eq!(name, "usage.threshold");
                (
                    payload["metric"].as_str().unwrap_or_default().to_owned(),
                    payload["threshold"].as_i64().unwrap_or_default(),
                    payload["used"].as_i64().unwrap_or_default(),
                    payload["period"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

impl Host for FakeHost {
    fn db(&self) -> &dyn Db {
        &self.db
    }

    fn config(&self, name: &str) -> Option<String> {
        self.config.borrow().get(name).cloned()
    }

    fn emit(&self, name: &str, payload: &Value) {
        self.emitted
            .borrow_mut()
            .push((name.to_owned(), payload.clone()));
    }
}

/// Milliseconds at noon UTC of a `YYYY-MM-DD` day.
pub fn at(day: &str) -> u64 {
    let date = crate::period::Date::parse(day).expect("a valid test day");
    date.days() * 86_400_000 + 43_200_000
}

/// One `usage.record` entry.
pub fn entry(
    day: &str,
    channel: &str,
    store: Option<&str>,
    calls: u64,
    transactions: u64,
) -> Value {
    json!({
        "day": day, "channel": channel, "operation": "mpesa.stk_push", "store_id": store,
        "calls": calls, "errors": 0, "transactions": transactions
    })
}

#[test]
fn records_and_sums_only_rest_and_mcp_as_api_calls() {
    let host = FakeHost::new();
    let now = at("2026-05-20");
    let out = host
        .call(
            now,
            "usage.record",
            json!({ "entries": [
                entry("2026-05-20", "rest", Some("s1"), 10, 2),
                entry("2026-05-20", "mcp", None, 5, 1),
                entry("2026-05-20", "cli", None, 100, 4),
                entry("2026-05-20", "rest", Some("s1"), 1, 0),
                entry("2026-04-30", "rest", None, 1000, 50),
            ] }),
        )
        .expect("recorded");
    assert_eq!(
        out,
        json!({ "recorded": 5, "period": "2026-05", "api_calls": 16, "transactions": 7 })
    );
    // Same key twice in one batch and again later: added, not replaced.
    host.call(
        now,
        "usage.record",
        json!({ "entries": [entry("2026-05-20", "rest", Some("s1"), 4, 0)] }),
    )
    .expect("recorded");
    let rest = host
        .db
        .query_int(
            "SELECT calls FROM usage_daily WHERE day = '2026-05-20' AND channel = 'rest' AND store_id = 's1'",
            &[],
        )
        .expect("one row");
    assert_eq!(rest, 15);
    assert_eq!(
        host.call(now, "usage.totals", json!({})).expect("totals"),
        json!({ "period": "2026-05", "api_calls": 20, "transactions": 7 })
    );
    assert_eq!(
        host.call(now, "usage.totals", json!({ "period": "2026-04" }))
            .expect("totals"),
        json!({ "period": "2026-04", "api_calls": 1000, "transactions": 50 })
    );
    assert_eq!(
        code(host.call(now, "usage.totals", json!({ "period": "May" }))),
        "validation_failed"
    );
}

#[test]
fn validates_entries() {
    let host = FakeHost::new();
    let now = at("2026-05-20");
    let bad = [
        json!({}),
        json!({ "entries": "x" }),
        json!({ "entries": [1] }),
        json!({ "entries": [{ "day": "2026-05-32", "channel": "rest", "calls": 1 }] }),
        json!({ "entries": [{ "day": "20-05-2026", "channel": "rest", "calls": 1 }] }),
        json!({ "entries": [{ "channel": "rest", "calls": 1 }] }),
        json!({ "entries": [{ "day": "2026-05-20", "channel": "", "calls": 1 }] }),
        json!({ "entries": [{ "day": "2026-05-20", "calls": 1 }] }),
        json!({ "entries": [{ "day": "2026-05-20", "channel": "rest", "calls": -1 }] }),
        json!({ "entries": [{ "day": "2026-05-20", "channel": "rest", "calls": 1.5 }] }),
        json!({ "entries": [{ "day": "2026-05-20", "channel": "rest", "calls": "3" }] }),
        json!({ "entries": [{ "day": "2026-05-20", "channel": "rest", "errors": -2 }] }),
        json!({ "entries": [{ "day": "2026-05-20", "channel": "rest", "transactions": 1e20 }] }),
        json!({ "entries": [{ "day": "2026-05-20", "channel": "rest", "store_id": 7 }] }),
        json!({ "entries": [{ "day": "2026-05-20", "channel": "x".repeat(201) }] }),
    ];
    for input in bad {
        assert_eq!(
            code(host.call(now, "usage.record", input.clone())),
            "validation_failed",
            "{input}"
        );
    }
    let too_many: Vec<Value> = (0..=crate::record::MAX_ENTRIES)
        .map(|_| entry("2026-05-20", "rest", None, 1, 0))
        .collect();
    assert_eq!(
        code(host.call(now, "usage.record", json!({ "entries": too_many }))),
        "validation_failed"
    );
    // A bad entry anywhere in the batch records nothing.
    assert_eq!(
        code(host.call(
            now,
            "usage.record",
            json!({ "entries": [entry("2026-05-20", "rest", None, 5, 0), { "day": "x", "channel": "rest" }] })
        )),
        "validation_failed"
    );
    assert_eq!(
        host.db.query_int("SELECT COUNT(*) FROM usage_daily", &[]),
        Ok(0)
    );
    // The largest batch is fine, missing counts are 0, an empty batch too.
    let full: Vec<Value> = (0..crate::record::MAX_ENTRIES)
        .map(|_| json!({ "day": "2026-05-20", "channel": "rest", "operation": "x", "calls": 1 }))
        .collect();
    let out = host
        .call(now, "usage.record", json!({ "entries": full }))
        .expect("the largest batch");
    assert_eq!(out["recorded"], 10_000);
    assert_eq!(out["api_calls"], 10_000);
    assert_eq!(out["transactions"], 0);
    let out = host
        .call(now, "usage.record", json!({ "entries": [] }))
        .expect("an empty batch");
    assert_eq!(out["recorded"], 0);
    assert_eq!(out["api_calls"], 10_000);
}

#[test]
fn thresholds_fire_once_per_period_at_80_then_100() {
    let host = FakeHost::new();
    host.plan(json!(100), json!(10));
    let may = at("2026-05-10");
    let record = |now: u64, day: &str, calls: u64, transactions: u64| {
        host.call(
            now,
            "usage.record",
            json!({ "entries": [entry(day, "rest", None, calls, transactions)] }),
        )
        .expect("recorded")
    };
    record(may, "2026-05-10", 79, 0);
    assert_eq!(host.take_thresholds(), vec![]);
    record(may, "2026-05-10", 1, 0);
    assert_eq!(
        host.take_thresholds(),
        vec![("api_calls".to_owned(), 80, 80, "2026-05".to_owned())]
    );
    record(may, "2026-05-10", 5, 0);
    assert_eq!(host.take_thresholds(), vec![]);
    record(may, "2026-05-11", 15, 0);
    assert_eq!(
        host.take_thresholds(),
        vec![("api_calls".to_owned(), 100, 100, "2026-05".to_owned())]
    );
    record(may, "2026-05-11", 50, 0);
    assert_eq!(host.take_thresholds(), vec![]);
    // Non-API channels do not count towards the API quota.
    let june = at("2026-06-02");
    host.call(
        june,
        "usage.record",
        json!({ "entries": [entry("2026-06-02", "cli", None, 500, 0)] }),
    )
    .expect("recorded");
    assert_eq!(host.take_thresholds(), vec![]);
    // A new month starts again; one jump crosses both, 80 first.
    record(june, "2026-06-02", 120, 12);
    assert_eq!(
        host.take_thresholds(),
        vec![
            ("api_calls".to_owned(), 80, 120, "2026-06".to_owned()),
            ("api_calls".to_owned(), 100, 120, "2026-06".to_owned()),
            ("transactions".to_owned(), 80, 12, "2026-06".to_owned()),
            ("transactions".to_owned(), 100, 12, "2026-06".to_owned()),
        ]
    );
    record(june, "2026-06-03", 1, 1);
    assert_eq!(host.take_thresholds(), vec![]);
}

#[test]
fn threshold_event_payload() {
    let host = FakeHost::new();
    host.plan(json!(null), json!(5));
    host.call(
        at("2026-05-10"),
        "usage.record",
        json!({ "entries": [entry("2026-05-10", "mcp", None, 1_000_000, 4)] }),
    )
    .expect("recorded");
    let emitted = host.emitted.borrow().clone();
    assert_eq!(
        emitted,
        vec![(
            "usage.threshold".to_owned(),
            json!({
                "tenant_id": "t_1", "metric": "transactions", "threshold": 80, "used": 4, "limit": 5,
                "period": "2026-05", "plan_id": "free", "plan_name": "Free"
            })
        )]
    );
}

#[test]
fn no_thresholds_without_limits_or_usage() {
    let host = FakeHost::new();
    host.call(
        at("2026-05-10"),
        "usage.record",
        json!({ "entries": [entry("2026-05-10", "rest", None, 1_000_000, 1_000)] }),
    )
    .expect("recorded without entitlements");
    assert_eq!(host.take_thresholds(), vec![]);
    host.plan(json!(0), json!(0));
    host.call(at("2026-06-10"), "usage.record", json!({ "entries": [] }))
        .expect("recorded");
    assert_eq!(
        host.take_thresholds(),
        vec![],
        "nothing used: nothing announced"
    );
    host.call(
        at("2026-06-10"),
        "usage.record",
        json!({ "entries": [entry("2026-06-10", "rest", None, 1, 0)] }),
    )
    .expect("recorded");
    assert_eq!(
        host.take_thresholds().len(),
        2,
        "any use of a zero quota reaches it"
    );
}

#[test]
fn reached_thresholds() {
    use crate::record::reached;
    assert!(!reached(7_999, 10_000, 80));
    assert!(reached(8_000, 10_000, 80));
    assert!(!reached(9_999, 10_000, 100));
    assert!(reached(10_000, 10_000, 100));
    // 80 % of 3 is 2.4: reached at 3.
    assert!(!reached(2, 3, 80));
    assert!(reached(3, 3, 80));
    assert!(!reached(0, 0, 100));
    assert!(!reached(-1, 10, 80));
    // No overflow at the extremes.
    assert!(!reached(i64::MAX, u64::MAX, 100));
    assert!(reached(i64::MAX, 1, 100));
}

#[test]
fn events_are_counted_once() {
    let host = FakeHost::new();
    let now = at("2026-05-10");
    let payment = |store: Option<&str>, amount: i64| {
        json!({ "transaction_id": "t", "amount": amount, "currency": "KES", "phone_number": "254700000000",
                "receipt": "R", "store_id": store, "kind": "stk", "status": "completed" })
    };
    host.event(now, "e1", "payment.completed", payment(Some("s1"), 100))
        .expect("counted");
    host.event(now, "e1", "payment.completed", payment(Some("s1"), 100))
        .expect("a redelivery is accepted");
    host.event(now, "e2", "payment.completed", payment(Some("s1"), 50))
        .expect("counted");
    host.event(now, "e3", "payment.completed", payment(None, 7))
        .expect("counted");
    host.event(now, "e4", "payout.completed", payment(None, 1000))
        .expect("counted");
    host.event(now, "e5", "reversal.completed", payment(Some("s1"), 30))
        .expect("counted");
    host.event(now, "e6", "payment.failed", payment(Some("s1"), 9))
        .expect("ignored");
    host.event(now, "e7", "payment.completed", json!("garbage"))
        .expect("counted without an amount");
    let money = host
        .db
        .query(
            "SELECT day, store_id, kind, count, amount_kes FROM usage_money_daily ORDER BY kind, store_id",
            &[],
        )
        .expect("rows")
        .to_json();
    assert_eq!(
        money,
        vec![
            json!({ "day": "2026-05-10", "store_id": "", "kind": "payment", "count": 2, "amount_kes": 7 }),
            json!({ "day": "2026-05-10", "store_id": "s1", "kind": "payment", "count": 2, "amount_kes": 150 }),
            json!({ "day": "2026-05-10", "store_id": "", "kind": "payout", "count": 1, "amount_kes": 1000 }),
            json!({ "day": "2026-05-10", "store_id": "s1", "kind": "reversal", "count": 1, "amount_kes": 30 }),
        ]
    );
    assert_eq!(
        host.db
            .query_int("SELECT COUNT(*) FROM usage_seen_events", &[]),
        Ok(6),
        "ignored events are not remembered"
    );
}

#[test]
fn current_usage_against_the_plan() {
    let host = FakeHost::new();
    host.plan(json!(100), json!(null));
    host.db
        .seed(
            "INSERT INTO stores (id, name, status) VALUES ('s1', 'Westlands', 'active'), \
                 ('s2', 'airport', 'active'), ('s3', 'Old Town', 'archived'), ('s4', 'Unused', 'archived'); \
             INSERT INTO members (user_id, email, full_name, status) VALUES \
                 ('u1', 'a@x', 'A', 'active'), ('u2', 'b@x', 'B', 'deactivated');",
        )
        .expect("seed data");
    let now = at("2026-05-20");
    host.call(
        now,
        "usage.record",
        json!({ "entries": [
            entry("2026-05-20", "rest", Some("s1"), 40, 3),
            entry("2026-05-19", "mcp", Some("s3"), 5, 1),
            entry("2026-05-19", "cli", Some("s1"), 9, 0),
            entry("2026-05-19", "job", None, 2, 0),
            entry("2026-04-19", "rest", Some("s1"), 1000, 10),
        ] }),
    )
    .expect("recorded");
    host.event(
        now,
        "p1",
        "payment.completed",
        json!({ "amount": 500, "store_id": "s1" }),
    )
    .expect("counted");
    host.event(
        now,
        "p2",
        "payment.completed",
        json!({ "amount": 20, "store_id": "s9" }),
    )
    .expect("counted");
    host.event(
        now,
        "o1",
        "payout.completed",
        json!({ "amount": 300, "store_id": null }),
    )
    .expect("counted");
    host.event(
        now,
        "r1",
        "reversal.completed",
        json!({ "amount": 60, "store_id": "s1" }),
    )
    .expect("counted");
    let usage = host.call(now, "usage.get", json!({})).expect("usage");
    assert_eq!(
        usage,
        json!({
            "period": "2026-05",
            "period_start": "2026-05-01",
            "period_end": "2026-05-31",
            "plan": { "id": "free", "name": "Free" },
            "metrics": {
                "api_calls": { "used": 45, "limit": 100, "percent": 45.0 },
                "transactions": { "used": 4, "limit": null, "percent": null },
                "stores": { "used": 2, "limit": 2, "percent": 100.0 },
                "users": { "used": 1, "limit": 3, "percent": 33.3 }
            },
            "by_channel": { "cli": 9, "job": 2, "mcp": 5, "rest": 40 },
            "payments": { "count": 2, "amount_kes": 520 },
            "payouts": { "count": 1, "amount_kes": 300 },
            "reversals": { "count": 1, "amount_kes": 60 },
            "by_store": [
                { "store_id": "s2", "store_name": "airport", "calls": 0, "transactions": 0, "payments": 0, "payment_amount_kes": 0 },
                { "store_id": "s3", "store_name": "Old Town", "calls": 5, "transactions": 1, "payments": 0, "payment_amount_kes": 0 },
                { "store_id": "s1", "store_name": "Westlands", "calls": 40, "transactions": 3, "payments": 1, "payment_amount_kes": 500 },
                { "store_id": "s9", "store_name": null, "calls": 0, "transactions": 0, "payments": 1, "payment_amount_kes": 20 }
            ]
        })
    );
    let summary = host.call(now, "usage.summary", json!({})).expect("summary");
    assert_eq!(
        summary,
        json!({
            "period": "2026-05", "api_calls": 45,
            "by_channel": { "cli": 9, "job": 2, "mcp": 5, "rest": 40 },
            "transactions": 4, "errors": 0,
            "payments": { "count": 2, "amount_kes": 520 },
            "payouts": { "count": 1, "amount_kes": 300 },
            "reversals": { "count": 1, "amount_kes": 60 },
            "stores": 2, "members": 1
        })
    );
    let april = host
        .call(now, "usage.summary", json!({ "period": "2026-04" }))
        .expect("summary");
    assert_eq!(april["api_calls"], 1000);
    assert_eq!(april["by_channel"], json!({ "rest": 1000, "mcp": 0 }));
    assert_eq!(april["payments"], json!({ "count": 0, "amount_kes": 0 }));
}

#[test]
fn current_usage_without_a_plan() {
    let host = FakeHost::new();
    let usage = host
        .call(at("2026-02-03"), "usage.get", json!({}))
        .expect("usage");
    assert_eq!(usage["plan"], Value::Null);
    assert_eq!(usage["period_end"], "2026-02-28");
    assert_eq!(
        usage["metrics"]["api_calls"],
        json!({ "used": 0, "limit": null, "percent": null })
    );
    assert_eq!(usage["by_channel"], json!({ "rest": 0, "mcp": 0 }));
    assert_eq!(usage["by_store"], json!([]));
}

#[test]
fn history_per_day_and_month() {
    let host = FakeHost::new();
    let record = |now: u64, entries: Value| {
        host.call(now, "usage.record", json!({ "entries": entries }))
            .expect("recorded")
    };
    record(
        at("2026-05-31"),
        json!([
            { "day": "2026-04-30", "channel": "rest", "operation": "a", "calls": 3, "errors": 1, "transactions": 1 },
            { "day": "2026-05-01", "channel": "mcp", "operation": "a", "calls": 2, "errors": 0, "transactions": 0 },
            { "day": "2026-05-01", "channel": "rest", "operation": "b", "store_id": "s1", "calls": 4, "errors": 2, "transactions": 2 },
            { "day": "2026-05-01", "channel": "cli", "operation": "b", "calls": 100, "errors": 5 },
            { "day": "2026-05-31", "channel": "rest", "operation": "a", "calls": 1 },
            { "day": "2026-06-01", "channel": "rest", "operation": "a", "calls": 1000 },
        ]),
    );
    host.event(
        at("2026-05-03"),
        "p1",
        "payment.completed",
        json!({ "amount": 100 }),
    )
    .expect("counted");
    host.event(
        at("2026-05-03"),
        "o1",
        "payout.completed",
        json!({ "amount": 40 }),
    )
    .expect("counted");
    host.event(
        at("2026-05-04"),
        "r1",
        "reversal.completed",
        json!({ "amount": 40 }),
    )
    .expect("counted");
    let now = at("2026-05-31");
    let days = host
        .call(
            now,
            "usage.history",
            json!({ "from": "2026-04-30", "to": "2026-05-31" }),
        )
        .expect("history");
    let row = |period: &str,
               rest: i64,
               mcp: i64,
               errors: i64,
               tx: i64,
               pay: (i64, i64),
               out: (i64, i64)| {
        json!({
            "period": period, "api_calls": rest + mcp, "rest_calls": rest, "mcp_calls": mcp,
            "errors": errors, "transactions": tx, "payments": pay.0, "payment_amount_kes": pay.1,
            "payouts": out.0, "payout_amount_kes": out.1
        })
    };
    assert_eq!(
        days,
        json!({
            "group_by": "day", "from": "2026-04-30", "to": "2026-05-31",
            "rows": [
                row("2026-04-30", 3, 0, 1, 1, (0, 0), (0, 0)),
                row("2026-05-01", 4, 2, 7, 2, (0, 0), (0, 0)),
                row("2026-05-03", 0, 0, 0, 0, (1, 100), (1, 40)),
                row("2026-05-31", 1, 0, 0, 0, (0, 0), (0, 0)),
            ]
        })
    );
    let months = host
        .call(
            now,
            "usage.history",
            json!({ "from": "2026-04-01", "to": "2026-06-30", "group_by": "month" }),
        )
        .expect("history");
    assert_eq!(
        months["rows"],
        json!([
            row("2026-04", 3, 0, 1, 1, (0, 0), (0, 0)),
            row("2026-05", 5, 2, 7, 2, (1, 100), (1, 40)),
            row("2026-06", 1000, 0, 0, 0, (0, 0), (0, 0)),
        ])
    );
    // The range bounds months too.
    let part = host
        .call(
            now,
            "usage.history",
            json!({ "from": "2026-05-02", "group_by": "month" }),
        )
        .expect("history");
    assert_eq!(part["to"], "2026-05-31");
    assert_eq!(
        part["rows"],
        json!([row("2026-05", 1, 0, 0, 0, (1, 100), (1, 40))])
    );
    // Default: the 30 days to today.
    let default = host.call(now, "usage.history", json!({})).expect("history");
    assert_eq!(default["from"], "2026-05-02");
    assert_eq!(default["to"], "2026-05-31");
    assert_eq!(default["group_by"], "day");
    assert_eq!(
        default["rows"].as_array().map(Vec::len),
        Some(2),
        "2026-05-03 and 2026-05-31"
    );
}

#[test]
fn history_ranges() {
    use crate::report::{GroupBy, history_query};
    let now = at("2026-05-31");
    let query = |input: Value| {
        history_query(&Input::parse(&input.to_string()).expect("object"), now)
            .map(|q| (q.from.to_text(), q.to.to_text(), q.group_by))
    };
    assert_eq!(
        query(json!({ "to": "2026-03-01" })),
        Ok((
            "2026-01-31".to_owned(),
            "2026-03-01".to_owned(),
            GroupBy::Day
        ))
    );
    assert_eq!(
        query(json!({ "from": "2026-05-31", "to": "2026-05-31", "group_by": "month" })),
        Ok((
            "2026-05-31".to_owned(),
            "2026-05-31".to_owned(),
            GroupBy::Month
        ))
    );
    // Three calendar years, including a leap day, are allowed; a day more is not.
    assert!(query(json!({ "from": "2024-01-01", "to": "2026-12-31" })).is_ok());
    assert!(query(json!({ "from": "2023-12-31", "to": "2026-12-31" })).is_err());
    for bad in [
        json!({ "from": "2026-06-01", "to": "2026-05-31" }),
        json!({ "from": "2026-06-01" }),
        json!({ "from": "2020-01-01", "to": "2026-01-01" }),
        json!({ "from": "2026-02-30" }),
        json!({ "to": "31/05/2026" }),
        json!({ "from": 20_260_501 }),
        json!({ "group_by": "week" }),
    ] {
        assert_eq!(
            query(bad.clone()).map_err(|e| e.code),
            Err(Error::VALIDATION_FAILED),
            "{bad}"
        );
    }
    let host = FakeHost::new();
    assert_eq!(
        code(host.call(
            now,
            "usage.history",
            json!({ "from": "2026-06-01", "to": "2026-05-01" })
        )),
        "validation_failed"
    );
}

#[test]
fn the_test_database_enforces_the_host_rules() {
    let host = FakeHost::new();
    assert!(host.db.query("SELECT * FROM stores", &[]).is_ok());
    assert!(host.db.query("SELECT * FROM store_members", &[]).is_err());
    assert!(host.db.execute("DELETE FROM stores", &[]).is_err());
    assert!(host.db.execute("PRAGMA user_version = 3", &[]).is_err());
    assert!(host.db.execute("CREATE TABLE usage_x (a)", &[]).is_err());
    host.db.set_read_only(true);
    assert!(host.db.execute("DELETE FROM usage_daily", &[]).is_err());
}

#[test]
fn unknown_operations_are_bad_requests() {
    let host = FakeHost::new();
    assert_eq!(code(host.call(0, "usage.reset", json!({}))), "bad_request");
}
