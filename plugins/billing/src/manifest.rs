//! The billing manifest: subscription and invoice operations with their JSON Schemas, the internal
//! operations the host drives, the renewal job, permissions and tables.

use serde_json::{Value, json};

use crate::malipo::plugin::types::{
    Annotations, HttpMethod, Manifest, Migration, Operation, PermissionDef,
};

pub const READ_PERMISSION: &str = "billing.read";
pub const MANAGE_PERMISSION: &str = "billing.manage";

/// One operation, written with static strings and schema values.
struct Op {
    name: &'static str,
    method: HttpMethod,
    /// None for internal operations.
    path: Option<&'static str>,
    permission: Option<&'static str>,
    summary: &'static str,
    description: &'static str,
    input: Value,
    output: Value,
    status: u16,
    tool: Option<&'static str>,
    hints: Annotations,
}

impl From<Op> for Operation {
    fn from(op: Op) -> Self {
        Operation {
            name: op.name.to_owned(),
            method: op.method,
            path: op.path.map(str::to_owned),
            permission: op.permission.map(str::to_owned),
            summary: op.summary.to_owned(),
            description: op.description.to_owned(),
            input_schema: op.input.to_string(),
            output_schema: op.output.to_string(),
            success_status: op.status,
            mcp_tool: op.tool.map(str::to_owned),
            annotations: op.hints,
            money: None,
            feature: None,
        }
    }
}

/// Only reads.
const READ: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};
/// Changes the subscription; repeating it with the same input changes nothing more.
const CHANGE: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: true,
    open_world: false,
};
/// Ends the subscription at the period end; repeating it changes nothing more.
const END: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: true,
    open_world: false,
};
/// Host-internal: records something new each time.
const RECORD: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};

fn input(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required })
}

fn time(description: &str) -> Value {
    json!({ "type": "string", "format": "date-time", "description": description })
}

fn nullable_time(description: &str) -> Value {
    json!({ "type": ["string", "null"], "format": "date-time", "description": description })
}

fn plan_id(description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 64, "description": description })
}

const STATUSES: [&str; 5] = ["trial", "active", "past_due", "suspended", "cancelled"];

fn subscription_schema() -> Value {
    object(
        json!({
            "plan_id": { "type": "string" },
            "plan": object(json!({
                "id": { "type": "string" },
                "name": { "type": "string" },
                "price_kes": { "type": "integer", "minimum": 0, "description": "Price per interval, whole KES." },
                "interval": { "type": "string", "enum": ["month", "year"] }
            }), &["id", "name", "price_kes", "interval"]),
            "status": { "type": "string", "enum": STATUSES },
            "trial_ends_at": nullable_time("End of the free trial, if there was one."),
            "current_period_start": time("Start of the current period (or trial)."),
            "current_period_end": time("End of the current period (or trial): the next invoice is due then."),
            "pending_plan_id": { "type": ["string", "null"], "description": "A downgrade that takes effect at the period end." },
            "cancel_at_period_end": { "type": "boolean" },
            "past_due_since": nullable_time("When an invoice went unpaid past its due date."),
            "suspended_at": nullable_time("When the subscription was suspended for non-payment."),
            "updated_at": time("Last change.")
        }),
        &[
            "plan_id",
            "plan",
            "status",
            "trial_ends_at",
            "current_period_start",
            "current_period_end",
            "pending_plan_id",
            "cancel_at_period_end",
            "past_due_since",
            "suspended_at",
            "updated_at",
        ],
    )
}

fn invoice_summary_properties() -> Value {
    json!({
        "id": { "type": "string" },
        "number": { "type": "string", "description": "INV-000001, sequential per organization." },
        "status": { "type": "string", "enum": ["open", "paid", "void"] },
        "currency": { "type": "string", "const": "KES" },
        "amount_kes": { "type": "integer", "minimum": 0 },
        "period_start": time("Start of the period billed."),
        "period_end": time("End of the period billed."),
        "issued_at": time("When the invoice was issued."),
        "due_at": time("When payment is due."),
        "paid_at": nullable_time("When it was paid."),
        "receipt": { "type": ["string", "null"], "description": "M-Pesa receipt of the payment." },
        "plan_id": { "type": "string" },
        "reason": { "type": "string", "enum": ["trial_end", "renewal", "proration", "new_period"] }
    })
}

const INVOICE_REQUIRED: [&str; 13] = [
    "id",
    "number",
    "status",
    "currency",
    "amount_kes",
    "period_start",
    "period_end",
    "issued_at",
    "due_at",
    "paid_at",
    "receipt",
    "plan_id",
    "reason",
];

fn invoice_summary_schema() -> Value {
    object(invoice_summary_properties(), &INVOICE_REQUIRED)
}

fn invoice_schema() -> Value {
    let mut properties = invoice_summary_properties();
    properties["lines"] = json!({ "type": "array", "items": object(json!({
        "description": { "type": "string" },
        "amount_kes": { "type": "integer", "description": "Negative for a credit." },
        "plan_id": { "type": ["string", "null"] },
        "period_start": nullable_time("Start of what the line bills."),
        "period_end": nullable_time("End of what the line bills.")
    }), &["description", "amount_kes"]) });
    properties["attempts"] = json!({ "type": "array", "items": object(json!({
        "id": { "type": "string" },
        "status": { "type": "string", "enum": ["pending", "completed", "failed"] },
        "phone_number": { "type": ["string", "null"] },
        "transaction_id": { "type": ["string", "null"] },
        "failure_reason": { "type": ["string", "null"] },
        "created_at": time("When the charge was asked for."),
        "completed_at": nullable_time("When its outcome was known.")
    }), &["id", "status", "created_at"]) });
    let mut required: Vec<&str> = INVOICE_REQUIRED.to_vec();
    required.extend(["lines", "attempts"]);
    object(properties, &required)
}

fn attempt_answer_schema() -> Value {
    object(
        json!({
            "changed": { "type": "boolean" },
            "attempt_id": { "type": "string" },
            "invoice_id": { "type": "string" },
            "status": { "type": "string", "enum": ["pending", "completed", "failed"] },
            "transaction_id": { "type": ["string", "null"] },
            "failure_reason": { "type": ["string", "null"] }
        }),
        &["changed", "attempt_id", "invoice_id", "status"],
    )
}

fn public_operations() -> Vec<Op> {
    vec![
        Op {
            name: "subscription.get",
            method: HttpMethod::Get,
            path: Some("/subscription"),
            permission: Some(READ_PERMISSION),
            summary: "Show the subscription",
            description: "The organization's Malipo plan and subscription: status (trial, active, past_due, \
                          suspended, cancelled), the current period, a downgrade or cancellation waiting for the \
                          period end, and since when payment is overdue. Not found before a plan was chosen.",
            input: input(json!({}), &[]),
            output: subscription_schema(),
            status: 200,
            tool: Some("billing_get_subscription"),
            hints: READ,
        },
        Op {
            name: "subscription.change",
            method: HttpMethod::Put,
            path: Some("/subscription"),
            permission: Some(MANAGE_PERMISSION),
            summary: "Change the plan",
            description: "Moves the organization to another plan. An upgrade takes effect now, with an invoice for \
                          the price difference over the rest of the period (due in 3 days); a downgrade takes \
                          effect at the period end; during a trial the plan just switches. From a free plan or a \
                          cancelled subscription, a paid plan starts a new period now with a full invoice. \
                          Choosing the current plan withdraws a pending downgrade or cancellation. While payment \
                          is overdue only a free plan can be chosen (open invoices are voided); pay first \
                          otherwise.",
            input: input(
                json!({ "plan_id": plan_id("Id of a plan of the catalog, e.g. free, standard, premium.") }),
                &["plan_id"],
            ),
            output: object(
                json!({
                    "subscription": subscription_schema(),
                    "invoice": { "oneOf": [invoice_summary_schema(), { "type": "null" }], "description": "The invoice the change issued, if any." },
                    "effective": { "type": "string", "enum": ["now", "renewal"] }
                }),
                &["subscription", "invoice", "effective"],
            ),
            status: 200,
            tool: Some("billing_change_plan"),
            hints: CHANGE,
        },
        Op {
            name: "subscription.cancel",
            method: HttpMethod::Post,
            path: Some("/subscription/cancel"),
            permission: Some(MANAGE_PERMISSION),
            summary: "Cancel the subscription",
            description: "Cancels at the end of the current period (or trial): nothing more is invoiced and the \
                          subscription becomes cancelled then; open invoices are voided at that point. Choosing \
                          the current plan again before then withdraws the cancellation.",
            input: input(json!({}), &[]),
            output: subscription_schema(),
            status: 200,
            tool: Some("billing_cancel_subscription"),
            hints: END,
        },
        Op {
            name: "invoices.list",
            method: HttpMethod::Get,
            path: Some("/invoices"),
            permission: Some(READ_PERMISSION),
            summary: "List invoices",
            description: "The organization's subscription invoices, newest first (at most 500), optionally only \
                          open, paid or void ones; without lines (see invoices.get).",
            input: input(
                json!({ "status": { "type": "string", "enum": ["open", "paid", "void"] } }),
                &[],
            ),
            output: object(
                json!({ "invoices": { "type": "array", "items": invoice_summary_schema() } }),
                &["invoices"],
            ),
            status: 200,
            tool: Some("billing_list_invoices"),
            hints: READ,
        },
        Op {
            name: "invoices.get",
            method: HttpMethod::Get,
            path: Some("/invoices/{id}"),
            permission: Some(READ_PERMISSION),
            summary: "Show an invoice",
            description: "One invoice with its lines and the M-Pesa payment attempts made for it.",
            input: input(
                json!({ "id": { "type": "string", "minLength": 1, "description": "Id of the invoice." } }),
                &["id"],
            ),
            output: invoice_schema(),
            status: 200,
            tool: Some("billing_get_invoice"),
            hints: READ,
        },
    ]
}

fn internal(
    name: &'static str,
    summary: &'static str,
    description: &'static str,
    input: Value,
    output: Value,
    hints: Annotations,
) -> Op {
    Op {
        name,
        method: HttpMethod::Post,
        path: None,
        permission: None,
        summary,
        description,
        input,
        output,
        status: 200,
        tool: None,
        hints,
    }
}

fn internal_operations() -> Vec<Op> {
    let settle_input = input(
        json!({
            "invoice_id": { "type": "string", "minLength": 1 },
            "attempt_id": { "type": ["string", "null"] },
            "outcome": { "type": "string", "enum": ["completed", "failed"] },
            "transaction_id": { "type": ["string", "null"] },
            "receipt": { "type": ["string", "null"] },
            "amount_kes": { "type": ["integer", "null"], "minimum": 0, "description": "Required when completed." },
            "reason": { "type": ["string", "null"] }
        }),
        &["invoice_id", "outcome"],
    );
    vec![
        internal(
            "entitlements.get",
            "The tenant's plan and standing",
            "Plan, status, periods, the oldest open invoice and the total due. Starts a subscription on \
             `default_plan_id` (like subscription.start) if there is none.",
            input(
                json!({ "default_plan_id": plan_id("Plan to start on if there is no subscription.") }),
                &[],
            ),
            object(
                json!({
                    "plan_id": { "type": "string" },
                    "status": { "type": "string", "enum": STATUSES },
                    "trial_ends_at": nullable_time("End of the trial."),
                    "current_period_start": time("Start of the current period."),
                    "current_period_end": time("End of the current period."),
                    "open_invoice_id": { "type": ["string", "null"], "description": "The oldest open invoice." },
                    "amount_due_kes": { "type": "integer", "minimum": 0, "description": "Sum of the open invoices." }
                }),
                &[
                    "plan_id",
                    "status",
                    "current_period_start",
                    "current_period_end",
                    "open_invoice_id",
                    "amount_due_kes",
                ],
            ),
            CHANGE,
        ),
        internal(
            "subscription.start",
            "Start a subscription",
            "Starts the subscription on a plan: a trial for a paid plan with trial days, else active (with an \
             invoice for the first period, due in 3 days, if paid). Answers the existing subscription unchanged \
             if there is one.",
            input(
                json!({ "plan_id": plan_id("Id of a plan of the catalog.") }),
                &["plan_id"],
            ),
            subscription_schema(),
            CHANGE,
        ),
        internal(
            "subscription.set",
            "Override the plan",
            "Super-admin override: switches the plan now without charge, keeping status and period; a pending \
             downgrade is dropped. Starts a subscription if there is none.",
            input(
                json!({ "plan_id": plan_id("Id of a plan of the catalog.") }),
                &["plan_id"],
            ),
            subscription_schema(),
            CHANGE,
        ),
        internal(
            "invoices.charge",
            "Prepare a charge of an invoice",
            "Records a pending payment attempt for the STK push the host is about to make and keeps the phone \
             number for dunning retries. Answers what the push needs. Conflict if the invoice is paid or void, \
             or a charge of it is pending and younger than 2 minutes.",
            input(
                json!({
                    "invoice_id": { "type": "string", "minLength": 1 },
                    "phone_number": { "type": "string", "minLength": 1 }
                }),
                &["invoice_id", "phone_number"],
            ),
            object(
                json!({
                    "attempt_id": { "type": "string" },
                    "invoice_id": { "type": "string" },
                    "number": { "type": "string" },
                    "amount_kes": { "type": "integer", "minimum": 0 },
                    "account_reference": { "type": "string" },
                    "description": { "type": "string" }
                }),
                &[
                    "attempt_id",
                    "invoice_id",
                    "number",
                    "amount_kes",
                    "account_reference",
                    "description",
                ],
            ),
            RECORD,
        ),
        internal(
            "invoices.charge-started",
            "A charge was sent",
            "Records the transaction id of the STK push of an attempt.",
            input(
                json!({ "attempt_id": { "type": "string" }, "transaction_id": { "type": "string" } }),
                &["attempt_id", "transaction_id"],
            ),
            attempt_answer_schema(),
            CHANGE,
        ),
        internal(
            "invoices.charge-failed",
            "A charge could not be sent",
            "Marks a pending attempt failed with the reason.",
            input(
                json!({ "attempt_id": { "type": "string" }, "reason": { "type": ["string", "null"] } }),
                &["attempt_id"],
            ),
            attempt_answer_schema(),
            CHANGE,
        ),
        internal(
            "invoices.settle",
            "The outcome of a charge",
            "completed: the invoice is paid (unless the amount is short: then the attempt fails with \
             \"paid X of Y\"), `invoice.paid` is emitted, and a past-due or suspended subscription with no other \
             overdue invoice is active again. failed: the attempt fails with the reason. Settling a paid invoice \
             again changes nothing (`changed: false`).",
            settle_input,
            object(
                json!({
                    "changed": { "type": "boolean" },
                    "note": { "type": ["string", "null"] },
                    "invoice": invoice_schema(),
                    "subscription": { "oneOf": [subscription_schema(), { "type": "null" }] }
                }),
                &["changed", "invoice", "subscription"],
            ),
            CHANGE,
        ),
        internal(
            "billing.renew",
            "Advance renewals and dunning",
            "Job: advances the subscription to now (catching up if the clock jumped): issues trial-end and \
             renewal invoices 3 days before the period end, moves to the next period, to past_due when an \
             invoice is unpaid past its due date, to suspended after 7 days past due, to cancelled at the end of \
             a cancelled period; sends due and overdue reminders, and answers the dunning charges the host \
             should retry now (days 1, 3 and 5 past due). Its input (`older_than_secs`) is ignored.",
            input(json!({ "older_than_secs": { "type": "integer" } }), &[]),
            object(
                json!({
                    "transitions": { "type": "array", "items": object(json!({
                        "at": time("When it happened (by the subscription's schedule)."),
                        "reason": { "type": "string" },
                        "from_status": { "type": "string" },
                        "to_status": { "type": "string" },
                        "from_plan_id": { "type": "string" },
                        "plan_id": { "type": "string" }
                    }), &["at", "reason", "from_status", "to_status", "plan_id"]) },
                    "invoices_issued": { "type": "integer", "minimum": 0 },
                    "charges": { "type": "array", "items": object(json!({
                        "invoice_id": { "type": "string" },
                        "phone_number": { "type": "string" }
                    }), &["invoice_id", "phone_number"]) }
                }),
                &["transitions", "invoices_issued", "charges"],
            ),
            RECORD,
        ),
    ]
}

pub fn manifest() -> Manifest {
    Manifest {
        name: "billing".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description:
            "The organization's Malipo subscription: plan, trial, invoices paid by M-Pesa, renewal \
                      and dunning."
                .to_owned(),
        operations: public_operations()
            .into_iter()
            .chain(internal_operations())
            .map(Operation::from)
            .collect(),
        permissions: vec![
            PermissionDef {
                name: READ_PERMISSION.to_owned(),
                description: "See the organization's subscription and invoices.".to_owned(),
                default_roles: vec!["Owner".to_owned(), "Admin".to_owned()],
            },
            PermissionDef {
                name: MANAGE_PERMISSION.to_owned(),
                description: "Change or cancel the organization's subscription.".to_owned(),
                default_roles: vec!["Owner".to_owned()],
            },
        ],
        subscriptions: Vec::new(),
        emits: vec!["invoice.*".to_owned(), "subscription.*".to_owned()],
        read_tables: Vec::new(),
        secrets: Vec::new(),
        outbound_hosts: Vec::new(),
        jobs: vec!["billing.renew".to_owned()],
        callbacks: false,
        sends_mail: false,
        migrations: vec![Migration {
            version: 1,
            name: "init".to_owned(),
            sql: include_str!("../migrations/V1__init.sql").to_owned(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declares_the_contract() {
        let manifest = manifest();
        assert_eq!(manifest.name, "billing");
        assert_eq!(manifest.jobs, vec!["billing.renew"]);
        assert!(manifest.subscriptions.is_empty() && manifest.secrets.is_empty());
        assert!(!manifest.callbacks && !manifest.sends_mail);
        let find = |name: &str| {
            manifest
                .operations
                .iter()
                .find(|op| op.name == name)
                .unwrap_or_else(|| panic!("operation {name}"))
        };
        let public = [
            ("subscription.get", "/subscription", READ_PERMISSION),
            ("subscription.change", "/subscription", MANAGE_PERMISSION),
            (
                "subscription.cancel",
                "/subscription/cancel",
                MANAGE_PERMISSION,
            ),
            ("invoices.list", "/invoices", READ_PERMISSION),
            ("invoices.get", "/invoices/{id}", READ_PERMISSION),
        ];
        for (name, path, permission) in public {
            let op = find(name);
            assert_eq!(op.path.as_deref(), Some(path), "{name}");
            assert_eq!(op.permission.as_deref(), Some(permission), "{name}");
            assert!(
                op.mcp_tool
                    .as_deref()
                    .is_some_and(|t| t.starts_with("billing_"))
            );
        }
        let internal = [
            "entitlements.get",
            "subscription.start",
            "subscription.set",
            "invoices.charge",
            "invoices.charge-started",
            "invoices.charge-failed",
            "invoices.settle",
            "billing.renew",
        ];
        for name in internal {
            assert!(find(name).path.is_none(), "{name} is internal");
        }
        assert_eq!(manifest.operations.len(), public.len() + internal.len());
        assert!(!find("entitlements.get").annotations.read_only);
        for op in &manifest.operations {
            assert!(op.money.is_none() && op.feature.is_none());
            let input: Value =
                serde_json::from_str(&op.input_schema).expect("input schema is JSON");
            let output: Value =
                serde_json::from_str(&op.output_schema).expect("output schema is JSON");
            assert_eq!(input["type"], "object", "{}", op.name);
            assert_eq!(output["type"], "object", "{}", op.name);
            if op.annotations.read_only {
                assert!(op.path.is_some(), "{}", op.name);
            }
        }
        assert!(
            manifest.migrations[0]
                .sql
                .contains("CREATE TABLE billing_subscription")
        );
    }

    #[test]
    fn every_table_is_billing_owned() {
        let sql = include_str!("../migrations/V1__init.sql");
        for line in sql.lines() {
            let line = line.trim_start();
            for keyword in ["CREATE TABLE ", "CREATE INDEX "] {
                if let Some(rest) = line.strip_prefix(keyword) {
                    assert!(rest.starts_with("billing_"), "{line}");
                }
            }
            assert!(!line.to_uppercase().contains("PRAGMA"), "{line}");
        }
    }
}
