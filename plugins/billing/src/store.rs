//! Rows of the billing tables and the SQL that reads and writes them.

use malipo_plugin_sdk::{Db, Error, Result, Row, Sql};
use serde_json::{Value, json};

use crate::period::{Interval, text};
use crate::plans::Plan;

/// Status of a subscription.
pub const TRIAL: &str = "trial";
pub const ACTIVE: &str = "active";
pub const PAST_DUE: &str = "past_due";
pub const SUSPENDED: &str = "suspended";
pub const CANCELLED: &str = "cancelled";

/// The subscription row.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub plan_id: String,
    pub plan_name: String,
    pub plan_price_kes: i64,
    pub plan_interval: Interval,
    pub status: String,
    pub trial_ends_ms: Option<i64>,
    pub anchor_ms: i64,
    pub period_index: i64,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub pending_plan_id: Option<String>,
    pub cancel_at_period_end: bool,
    pub past_due_since_ms: Option<i64>,
    pub suspended_at_ms: Option<i64>,
    pub cancelled_at_ms: Option<i64>,
    pub phone_number: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Subscription {
    /// Switches to `plan`, remembering its name, price and interval.
    pub fn set_plan(&mut self, plan: &Plan) {
        self.plan_id.clone_from(&plan.id);
        self.plan_name.clone_from(&plan.name);
        self.plan_price_kes = plan.price_kes;
        self.plan_interval = plan.interval;
    }

    /// Starts a new run of periods at `at` on the current plan.
    pub fn restart_periods(&mut self, at: i64) {
        self.anchor_ms = at;
        self.period_index = 0;
        self.period_start_ms = at;
        self.period_end_ms = crate::period::period_end(at, self.plan_interval, 0);
    }

    /// The plan as the catalog has it, or as it was when chosen if the
    /// catalog no longer lists it.
    pub fn plan(&self, catalog: &crate::plans::Catalog) -> Plan {
        catalog
            .find(&self.plan_id)
            .cloned()
            .unwrap_or_else(|| Plan {
                id: self.plan_id.clone(),
                name: self.plan_name.clone(),
                price_kes: self.plan_price_kes,
                interval: self.plan_interval,
                trial_days: 0,
                active: false,
            })
    }

    /// The answer shape of `subscription.get`.
    pub fn to_json(&self, plan: &Plan) -> Value {
        json!({
            "plan_id": self.plan_id,
            "plan": plan.summary(),
            "status": self.status,
            "trial_ends_at": self.trial_ends_ms.map(text),
            "current_period_start": text(self.period_start_ms),
            "current_period_end": text(self.period_end_ms),
            "pending_plan_id": self.pending_plan_id,
            "cancel_at_period_end": self.cancel_at_period_end,
            "past_due_since": self.past_due_since_ms.map(text),
            "suspended_at": self.suspended_at_ms.map(text),
            "updated_at": text(self.updated_ms),
        })
    }

    fn from_row(row: Row<'_>) -> Result<Self> {
        Ok(Self {
            plan_id: row.req_text("plan_id")?.to_owned(),
            plan_name: row.req_text("plan_name")?.to_owned(),
            plan_price_kes: row.req_int("plan_price_kes")?,
            plan_interval: Interval::parse(row.req_text("plan_interval")?)
                .ok_or_else(|| Error::internal("the subscription has an unknown interval"))?,
            status: row.req_text("status")?.to_owned(),
            trial_ends_ms: row.int("trial_ends_ms"),
            anchor_ms: row.req_int("anchor_ms")?,
            period_index: row.req_int("period_index")?,
            period_start_ms: row.req_int("period_start_ms")?,
            period_end_ms: row.req_int("period_end_ms")?,
            pending_plan_id: row.text("pending_plan_id").map(str::to_owned),
            cancel_at_period_end: row.int("cancel_at_period_end").unwrap_or(0) != 0,
            past_due_since_ms: row.int("past_due_since_ms"),
            suspended_at_ms: row.int("suspended_at_ms"),
            cancelled_at_ms: row.int("cancelled_at_ms"),
            phone_number: row.text("phone_number").map(str::to_owned),
            created_ms: row.req_int("created_ms")?,
            updated_ms: row.req_int("updated_ms")?,
        })
    }
}

/// The subscription, if the tenant has one.
pub fn load_subscription(db: &dyn Db) -> Result<Option<Subscription>> {
    let table = db.query("SELECT * FROM billing_subscription WHERE id = 1", &[])?;
    table.first().map(Subscription::from_row).transpose()
}

/// Writes the subscription row (insert or replace all fields).
pub fn save_subscription(db: &dyn Db, sub: &Subscription) -> Result<()> {
    db.execute(
        "INSERT INTO billing_subscription (id, plan_id, plan_name, plan_price_kes, plan_interval, status,
             trial_ends_ms, anchor_ms, period_index, period_start_ms, period_end_ms, pending_plan_id,
             cancel_at_period_end, past_due_since_ms, suspended_at_ms, cancelled_at_ms, phone_number,
             created_ms, updated_ms)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
         ON CONFLICT (id) DO UPDATE SET plan_id = ?1, plan_name = ?2, plan_price_kes = ?3,
             plan_interval = ?4, status = ?5, trial_ends_ms = ?6, anchor_ms = ?7, period_index = ?8,
             period_start_ms = ?9, period_end_ms = ?10, pending_plan_id = ?11,
             cancel_at_period_end = ?12, past_due_since_ms = ?13, suspended_at_ms = ?14,
             cancelled_at_ms = ?15, phone_number = ?16, updated_ms = ?18",
        &[
            Sql::from(&sub.plan_id),
            Sql::from(&sub.plan_name),
            Sql::Integer(sub.plan_price_kes),
            Sql::from(sub.plan_interval.as_str()),
            Sql::from(&sub.status),
            Sql::from(sub.trial_ends_ms),
            Sql::Integer(sub.anchor_ms),
            Sql::Integer(sub.period_index),
            Sql::Integer(sub.period_start_ms),
            Sql::Integer(sub.period_end_ms),
            Sql::from(sub.pending_plan_id.clone()),
            Sql::from(sub.cancel_at_period_end),
            Sql::from(sub.past_due_since_ms),
            Sql::from(sub.suspended_at_ms),
            Sql::from(sub.cancelled_at_ms),
            Sql::from(sub.phone_number.clone()),
            Sql::Integer(sub.created_ms),
            Sql::Integer(sub.updated_ms),
        ],
    )?;
    Ok(())
}

/// Why an invoice was issued.
pub const TRIAL_END: &str = "trial_end";
pub const RENEWAL: &str = "renewal";
pub const PRORATION: &str = "proration";
pub const NEW_PERIOD: &str = "new_period";

/// An invoice row.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    pub id: String,
    pub number: String,
    pub status: String,
    pub amount_kes: i64,
    pub plan_id: String,
    pub reason: String,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub issued_ms: i64,
    pub due_ms: i64,
    pub paid_ms: Option<i64>,
    pub receipt: Option<String>,
}

impl Invoice {
    fn from_row(row: Row<'_>) -> Result<Self> {
        Ok(Self {
            id: row.req_text("id")?.to_owned(),
            number: row.req_text("number")?.to_owned(),
            status: row.req_text("status")?.to_owned(),
            amount_kes: row.req_int("amount_kes")?,
            plan_id: row.req_text("plan_id")?.to_owned(),
            reason: row.req_text("reason")?.to_owned(),
            period_start_ms: row.req_int("period_start_ms")?,
            period_end_ms: row.req_int("period_end_ms")?,
            issued_ms: row.req_int("issued_ms")?,
            due_ms: row.req_int("due_ms")?,
            paid_ms: row.int("paid_ms"),
            receipt: row.text("receipt").map(str::to_owned),
        })
    }

    /// The invoice without its lines and attempts.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "number": self.number,
            "status": self.status,
            "currency": "KES",
            "amount_kes": self.amount_kes,
            "period_start": text(self.period_start_ms),
            "period_end": text(self.period_end_ms),
            "issued_at": text(self.issued_ms),
            "due_at": text(self.due_ms),
            "paid_at": self.paid_ms.map(text),
            "receipt": self.receipt,
            "plan_id": self.plan_id,
            "reason": self.reason,
        })
    }
}

/// One line of a new invoice.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub description: String,
    pub amount_kes: i64,
    pub plan_id: Option<String>,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
}

/// What a new invoice says; its number and id are assigned by [`insert_invoice`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewInvoice {
    pub plan_id: String,
    pub reason: &'static str,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub issued_ms: i64,
    pub due_ms: i64,
    pub lines: Vec<Line>,
}

/// The next value of a named counter (starting at 1, never reused).
pub fn next_counter(db: &dyn Db, name: &str) -> Result<i64> {
    db.execute(
        "INSERT INTO billing_counters (name, value) VALUES (?1, 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1",
        &[Sql::from(name)],
    )?;
    db.query_int(
        "SELECT value FROM billing_counters WHERE name = ?1",
        &[Sql::from(name)],
    )
}

/// `INV-000001` for 1.
pub fn invoice_number(seq: i64) -> String {
    format!("INV-{seq:06}")
}

/// Writes a new open invoice with its lines; its amount is the sum of the
/// lines, never below zero.
pub fn insert_invoice(db: &dyn Db, new: &NewInvoice) -> Result<Invoice> {
    let seq = next_counter(db, "invoice")?;
    let id = malipo_plugin_sdk::id::uuid_v4()?;
    let amount = new
        .lines
        .iter()
        .map(|line| line.amount_kes)
        .sum::<i64>()
        .max(0);
    let invoice = Invoice {
        id,
        number: invoice_number(seq),
        status: "open".to_owned(),
        amount_kes: amount,
        plan_id: new.plan_id.clone(),
        reason: new.reason.to_owned(),
        period_start_ms: new.period_start_ms,
        period_end_ms: new.period_end_ms,
        issued_ms: new.issued_ms,
        due_ms: new.due_ms,
        paid_ms: None,
        receipt: None,
    };
    db.execute(
        "INSERT INTO billing_invoices (id, seq, number, status, currency, amount_kes, plan_id, reason,
             period_start_ms, period_end_ms, issued_ms, due_ms)
         VALUES (?1, ?2, ?3, 'open', 'KES', ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        &[
            Sql::from(&invoice.id),
            Sql::Integer(seq),
            Sql::from(&invoice.number),
            Sql::Integer(amount),
            Sql::from(&invoice.plan_id),
            Sql::from(new.reason),
            Sql::Integer(new.period_start_ms),
            Sql::Integer(new.period_end_ms),
            Sql::Integer(new.issued_ms),
            Sql::Integer(new.due_ms),
        ],
    )?;
    for (position, line) in (1_i64..).zip(&new.lines) {
        db.execute(
            "INSERT INTO billing_invoice_lines (invoice_id, position, description, amount_kes, plan_id,
                 period_start_ms, period_end_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &[
                Sql::from(&invoice.id),
                Sql::Integer(position),
                Sql::from(&line.description),
                Sql::Integer(line.amount_kes),
                Sql::from(line.plan_id.clone()),
                Sql::Integer(line.period_start_ms),
                Sql::Integer(line.period_end_ms),
            ],
        )?;
    }
    Ok(invoice)
}

const INVOICE_COLUMNS: &str = "id, number, status, amount_kes, plan_id, reason, period_start_ms, \
     period_end_ms, issued_ms, due_ms, paid_ms, receipt";

pub fn find_invoice(db: &dyn Db, id: &str) -> Result<Option<Invoice>> {
    db.query(
        &format!("SELECT {INVOICE_COLUMNS} FROM billing_invoices WHERE id = ?1"),
        &[Sql::from(id)],
    )?
    .first()
    .map(Invoice::from_row)
    .transpose()
}

/// The invoice, or not_found.
pub fn get_invoice(db: &dyn Db, id: &str) -> Result<Invoice> {
    find_invoice(db, id)?.ok_or_else(|| Error::not_found(format!("No invoice with id {id:?}.")))
}

/// Invoices newest first, optionally of one status.
pub fn list_invoices(db: &dyn Db, status: Option<&str>) -> Result<Vec<Invoice>> {
    db.query(
        &format!(
            "SELECT {INVOICE_COLUMNS} FROM billing_invoices WHERE (?1 IS NULL OR status = ?1)
              ORDER BY seq DESC LIMIT 500"
        ),
        &[Sql::from(status)],
    )?
    .iter()
    .map(Invoice::from_row)
    .collect()
}

/// Open invoices, oldest due first.
pub fn open_invoices(db: &dyn Db) -> Result<Vec<Invoice>> {
    db.query(
        &format!(
            "SELECT {INVOICE_COLUMNS} FROM billing_invoices WHERE status = 'open' ORDER BY due_ms, seq"
        ),
        &[],
    )?
    .iter()
    .map(Invoice::from_row)
    .collect()
}

/// The trial-end or renewal invoice (open or paid) for the period starting at `start`.
pub fn upcoming_invoice(db: &dyn Db, start: i64) -> Result<Option<Invoice>> {
    db.query(
        &format!(
            "SELECT {INVOICE_COLUMNS} FROM billing_invoices
              WHERE period_start_ms = ?1 AND reason IN ('trial_end', 'renewal') AND status <> 'void'
              ORDER BY seq DESC LIMIT 1"
        ),
        &[Sql::Integer(start)],
    )?
    .first()
    .map(Invoice::from_row)
    .transpose()
}

pub fn void_invoice(db: &dyn Db, id: &str, now: i64) -> Result<()> {
    db.execute(
        "UPDATE billing_invoices SET status = 'void', voided_ms = ?2 WHERE id = ?1 AND status = 'open'",
        &[Sql::from(id), Sql::Integer(now)],
    )?;
    Ok(())
}

pub fn mark_paid(db: &dyn Db, id: &str, now: i64, receipt: Option<&str>) -> Result<()> {
    db.execute(
        "UPDATE billing_invoices SET status = 'paid', paid_ms = ?2, receipt = ?3 WHERE id = ?1",
        &[Sql::from(id), Sql::Integer(now), Sql::from(receipt)],
    )?;
    Ok(())
}

pub fn invoice_lines(db: &dyn Db, id: &str) -> Result<Vec<Value>> {
    let table = db.query(
        "SELECT description, amount_kes, plan_id, period_start_ms, period_end_ms
           FROM billing_invoice_lines WHERE invoice_id = ?1 ORDER BY position",
        &[Sql::from(id)],
    )?;
    Ok(table
        .iter()
        .map(|row| {
            json!({
                "description": row.text("description"),
                "amount_kes": row.int("amount_kes"),
                "plan_id": row.text("plan_id"),
                "period_start": row.int("period_start_ms").map(text),
                "period_end": row.int("period_end_ms").map(text),
            })
        })
        .collect())
}

/// A payment attempt row.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: String,
    pub invoice_id: String,
    pub status: String,
    pub phone_number: Option<String>,
    pub transaction_id: Option<String>,
    pub failure_reason: Option<String>,
    pub created_ms: i64,
    pub completed_ms: Option<i64>,
}

impl Attempt {
    fn from_row(row: Row<'_>) -> Result<Self> {
        Ok(Self {
            id: row.req_text("id")?.to_owned(),
            invoice_id: row.req_text("invoice_id")?.to_owned(),
            status: row.req_text("status")?.to_owned(),
            phone_number: row.text("phone_number").map(str::to_owned),
            transaction_id: row.text("transaction_id").map(str::to_owned),
            failure_reason: row.text("failure_reason").map(str::to_owned),
            created_ms: row.req_int("created_ms")?,
            completed_ms: row.int("completed_ms"),
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "phone_number": self.phone_number,
            "transaction_id": self.transaction_id,
            "failure_reason": self.failure_reason,
            "created_at": text(self.created_ms),
            "completed_at": self.completed_ms.map(text),
        })
    }
}

const ATTEMPT_COLUMNS: &str = "id, invoice_id, status, phone_number, transaction_id, failure_reason, \
     created_ms, completed_ms";

pub fn attempts(db: &dyn Db, invoice_id: &str) -> Result<Vec<Attempt>> {
    db.query(
        &format!(
            "SELECT {ATTEMPT_COLUMNS} FROM billing_payment_attempts WHERE invoice_id = ?1
              ORDER BY created_ms, rowid"
        ),
        &[Sql::from(invoice_id)],
    )?
    .iter()
    .map(Attempt::from_row)
    .collect()
}

pub fn find_attempt(db: &dyn Db, id: &str) -> Result<Option<Attempt>> {
    db.query(
        &format!("SELECT {ATTEMPT_COLUMNS} FROM billing_payment_attempts WHERE id = ?1"),
        &[Sql::from(id)],
    )?
    .first()
    .map(Attempt::from_row)
    .transpose()
}

pub fn get_attempt(db: &dyn Db, id: &str) -> Result<Attempt> {
    find_attempt(db, id)?
        .ok_or_else(|| Error::not_found(format!("No payment attempt with id {id:?}.")))
}

pub fn insert_attempt(
    db: &dyn Db,
    invoice_id: &str,
    status: &str,
    phone: Option<&str>,
    transaction_id: Option<&str>,
    now: i64,
) -> Result<String> {
    let id = malipo_plugin_sdk::id::uuid_v4()?;
    db.execute(
        "INSERT INTO billing_payment_attempts (id, invoice_id, status, phone_number, transaction_id, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &[
            Sql::from(&id),
            Sql::from(invoice_id),
            Sql::from(status),
            Sql::from(phone),
            Sql::from(transaction_id),
            Sql::Integer(now),
        ],
    )?;
    Ok(id)
}

/// The outcome of a payment attempt.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome<'a> {
    /// `completed` or `failed`.
    pub status: &'a str,
    pub transaction_id: Option<&'a str>,
    pub amount_kes: Option<i64>,
    pub receipt: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// Records the outcome of an attempt; true if it changed. A completed
/// attempt keeps its outcome, and a failed one is not failed again.
pub fn finish_attempt(db: &dyn Db, id: &str, outcome: Outcome<'_>, now: i64) -> Result<bool> {
    let changed = db.execute(
        "UPDATE billing_payment_attempts
            SET status = ?2, transaction_id = COALESCE(?3, transaction_id), amount_kes = COALESCE(?4, amount_kes),
                receipt = COALESCE(?5, receipt), failure_reason = ?6, completed_ms = ?7
          WHERE id = ?1 AND status <> 'completed' AND NOT (status = ?2 AND ?2 = 'failed')",
        &[
            Sql::from(id),
            Sql::from(outcome.status),
            Sql::from(outcome.transaction_id),
            Sql::from(outcome.amount_kes),
            Sql::from(outcome.receipt),
            Sql::from(outcome.reason),
            Sql::Integer(now),
        ],
    )?;
    Ok(changed > 0)
}

/// Marks a once-only notice for an invoice; true if it was not done before.
pub fn claim_notice(db: &dyn Db, invoice_id: &str, kind: &str, now: i64) -> Result<bool> {
    let changed = db.execute(
        "INSERT INTO billing_notices (invoice_id, kind, done_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (invoice_id, kind) DO NOTHING",
        &[Sql::from(invoice_id), Sql::from(kind), Sql::Integer(now)],
    )?;
    Ok(changed > 0)
}
