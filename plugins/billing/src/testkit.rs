//! Native test harness: the SDK `Db` over an in-memory SQLite with the plugin's migration, a fake host
//! that records events, and a movable clock.

use std::cell::{Cell, RefCell};

use malipo_plugin_sdk::{Context, Db, Error, Input, Result, Sql, Table};
use rusqlite::types::Value as SqlValue;
use serde_json::Value;

use crate::Host;
use crate::period::{DAY_MS, days_from_civil};

/// The SDK database over rusqlite.
pub struct SqliteDb(pub rusqlite::Connection);

fn to_sqlite(params: &[Sql]) -> Vec<SqlValue> {
    params
        .iter()
        .map(|param| match param {
            Sql::Null => SqlValue::Null,
            Sql::Integer(i) => SqlValue::Integer(*i),
            Sql::Real(r) => SqlValue::Real(*r),
            Sql::Text(s) => SqlValue::Text(s.clone()),
            Sql::Blob(b) => SqlValue::Blob(b.clone()),
        })
        .collect()
}

fn db_err(err: rusqlite::Error) -> Error {
    Error::internal(format!("database error: {err}"))
}

impl Db for SqliteDb {
    fn execute(&self, sql: &str, params: &[Sql]) -> Result<u64> {
        check_sql(sql);
        let n = self
            .0
            .execute(sql, rusqlite::params_from_iter(to_sqlite(params)))
            .map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn query(&self, sql: &str, params: &[Sql]) -> Result<Table> {
        check_sql(sql);
        let mut statement = self.0.prepare(sql).map_err(db_err)?;
        let columns: Vec<String> = statement
            .column_names()
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let width = columns.len();
        let rows = statement
            .query_map(rusqlite::params_from_iter(to_sqlite(params)), |row| {
                (0..width)
                    .map(|i| {
                        row.get::<_, SqlValue>(i).map(|value| match value {
                            SqlValue::Null => Sql::Null,
                            SqlValue::Integer(i) => Sql::Integer(i),
                            SqlValue::Real(r) => Sql::Real(r),
                            SqlValue::Text(s) => Sql::Text(s),
                            SqlValue::Blob(b) => Sql::Blob(b),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Sql>>>()
            })
            .map_err(db_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err)?;
        Ok(Table { columns, rows })
    }
}

/// What the host refuses: other tables, PRAGMA, transactions, schema changes.
fn check_sql(sql: &str) {
    let upper = sql.to_uppercase();
    for word in [
        "PRAGMA",
        "ATTACH",
        "BEGIN",
        "COMMIT",
        "SAVEPOINT",
        "CREATE ",
        "DROP ",
        "ALTER ",
    ] {
        assert!(!upper.contains(word), "the host would refuse: {sql}");
    }
    for keyword in ["FROM ", "INTO ", "UPDATE ", "JOIN "] {
        for (index, _) in upper.match_indices(keyword) {
            if upper[..index].ends_with("DO ") {
                continue; // ON CONFLICT … DO UPDATE SET
            }
            let rest = sql[index + keyword.len()..].trim_start();
            assert!(
                rest.starts_with("billing_"),
                "a table not owned by billing: {sql}"
            );
        }
    }
}

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
        let conn = rusqlite::Connection::open_in_memory().expect("in-memory SQLite");
        conn.execute_batch(include_str!("../migrations/V1__init.sql"))
            .expect("the migration applies");
        Self {
            db: SqliteDb(conn),
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

    /// Runs an operation as a user of tenant `t1` at the current clock.
    pub fn call(&self, operation: &str, input: Value) -> Result<Value> {
        let ctx = Context {
            tenant_id: "t1".to_owned(),
            user_id: Some("u1".to_owned()),
            store_id: None,
            request_id: "r1".to_owned(),
            channel: "rest".to_owned(),
            now_ms: u64::try_from(self.now.get()).unwrap_or(0),
            allowed_stores: None,
        };
        let input = Input::parse(&input.to_string())?;
        crate::dispatch(self, &ctx, operation, &input)
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
