//! Native test harness: the SDK's test database (an in-memory SQLite behind
//! the host's rules) with the plugin's migration, a fake host that records
//! events, and a movable clock.

use std::cell::{Cell, RefCell};

use malipo_plugin_sdk::testing::{SqliteDb, context};
use malipo_plugin_sdk::{Context, Db, Error, Input, Result};
use serde_json::Value;

use crate::Host;
use crate::period::{DAY_MS, days_from_civil};

/// A tenant with a movable clock.
pub struct Harness {
    pub db: SqliteDb,
    pub catalog: Option<String>,
    pub now: Cell<i64>,
    pub events: RefCell<Vec<(String, Value)>>,
}

impl Host for Harness {
    fn db(&self) -> &dyn Db {
        &self.db
    }

    fn config(&self, name: &str) -> Option<String> {
        (name == "plan-catalog")
            .then(|| self.catalog.clone())
            .flatten()
    }

    fn emit(&self, name: &str, payload: &Value) {
        self.events
            .borrow_mut()
            .push((name.to_owned(), payload.clone()));
    }
}

/// Midnight UTC of a date, in ms.
pub fn date(year: i64, month: i64, day: i64) -> i64 {
    days_from_civil(year, month, day) * DAY_MS
}

impl Harness {
    /// A fresh tenant at `now` with the test catalog.
    pub fn new(now: i64) -> Self {
        let manifest = crate::manifest::manifest();
        let db = SqliteDb::in_memory("billing", &manifest.read_tables).expect("in-memory SQLite");
        for migration in manifest.migrations {
            db.migrate(&migration.sql).expect("the migration applies");
        }
        Self {
            db,
            catalog: Some(crate::plans::tests::CATALOG.to_owned()),
            now: Cell::new(now),
            events: RefCell::new(Vec::new()),
        }
    }

    pub fn advance(&self, ms: i64) {
        self.now.set(self.now.get() + ms);
    }

    pub fn set_now(&self, ms: i64) {
        self.now.set(ms);
    }

    /// Runs an operation as user `u1` of tenant `t1` at the current clock,
    /// under the read-only rule its annotations declare.
    pub fn call(&self, operation: &str, input: Value) -> Result<Value> {
        let ctx = Context {
            tenant_id: "t1".to_owned(),
            request_id: "r1".to_owned(),
            ..context(Some("u1"), u64::try_from(self.now.get()).unwrap_or(0))
        };
        let read_only = crate::manifest::manifest()
            .operations
            .iter()
            .any(|op| op.name == operation && op.annotations.read_only);
        let input = Input::parse(&input.to_string())?;
        self.db
            .call(read_only, || crate::dispatch(self, &ctx, operation, &input))
    }

    /// Runs an operation that must succeed.
    pub fn ok(&self, operation: &str, input: Value) -> Value {
        self.call(operation, input)
            .unwrap_or_else(|err| panic!("{operation} failed: {err}"))
    }

    /// The error code of an operation that must fail.
    pub fn err(&self, operation: &str, input: Value) -> Error {
        match self.call(operation, input) {
            Ok(value) => panic!("{operation} succeeded: {value}"),
            Err(err) => err,
        }
    }

    /// Takes the events emitted so far.
    pub fn take_events(&self) -> Vec<(String, Value)> {
        self.events.borrow_mut().drain(..).collect()
    }

    /// Names of the events emitted so far (and forgets them).
    pub fn event_names(&self) -> Vec<String> {
        self.take_events()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    pub fn status(&self) -> String {
        self.ok("subscription.get", serde_json::json!({}))["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn renew(&self) -> Value {
        self.ok(
            "billing.renew",
            serde_json::json!({ "older_than_secs": 60 }),
        )
    }

    /// Open invoices, oldest first.
    pub fn open_invoices(&self) -> Vec<Value> {
        let mut list =
            self.ok("invoices.list", serde_json::json!({ "status": "open" }))["invoices"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        list.reverse();
        list
    }

    /// Pays an invoice in full through charge and settle.
    pub fn pay(&self, invoice_id: &str) -> Value {
        let charge = self.ok(
            "invoices.charge",
            serde_json::json!({ "invoice_id": invoice_id, "phone_number": "254712345678" }),
        );
        self.ok(
            "invoices.settle",
            serde_json::json!({
                "invoice_id": invoice_id,
                "attempt_id": charge["attempt_id"],
                "outcome": "completed",
                "transaction_id": "ws_CO_1",
                "receipt": "QK12AB34CD",
                "amount_kes": charge["amount_kes"],
                "reason": null,
            }),
        )
    }
}
