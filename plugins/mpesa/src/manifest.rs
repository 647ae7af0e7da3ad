//! The mpesa manifest: operations with their JSON Schemas, permissions, secrets, jobs, callbacks and migrations.

use serde_json::{Value, json};

use crate::malipo::plugin::types::{
    Annotations, HttpMethod, Manifest, Migration, MoneyDirection, MoneyMovement, Operation,
    PermissionDef,
};

pub fn manifest() -> Manifest {
    Manifest {
        name: "mpesa".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: "M-Pesa payments through Safaricom's Daraja API: STK push (M-Pesa Express) collections, \
                      B2C bulk payouts, reversals, account balance, transaction status and C2B, with callbacks \
                      matched to stored transactions and periodic reconciliation of pending payments."
            .to_owned(),
        operations: operations().into_iter().map(Operation::from).collect(),
        permissions: vec![
            permission(
                "mpesa.credentials.manage",
                "Set and test the tenant's Daraja credentials and register C2B URLs.",
                &["Owner", "Admin"],
            ),
            permission(
                "payments.create",
                "Request M-Pesa payments from customers (STK push).",
                &["Owner", "Admin", "Manager", "Member"],
            ),
            permission(
                "payments.read",
                "See M-Pesa transactions and batches, and ask Daraja about their status.",
                &["Owner", "Admin", "Manager", "Member"],
            ),
            permission("payouts.create", "Send money to phones (B2C bulk payouts).", &["Owner", "Admin"]),
            permission("payments.reverse", "Reverse completed M-Pesa payments.", &["Owner", "Admin"]),
            permission("mpesa.balance.read", "Query the M-Pesa account balance.", &["Owner", "Admin", "Manager"]),
            permission("reports.read", "See payment reports.", &["Owner", "Admin", "Manager"]),
        ],
        subscriptions: Vec::new(),
        emits: vec!["payment.*".to_owned(), "payout.*".to_owned(), "reversal.*".to_owned()],
        read_tables: vec!["stores".to_owned(), "settings".to_owned()],
        secrets: crate::credentials::SECRET_NAMES
            .iter()
            .chain([&crate::credentials::OAUTH_TOKEN])
            .map(|s| (*s).to_owned())
            .collect(),
        outbound_hosts: vec!["*".to_owned()],
        jobs: vec!["payments.reconcile".to_owned()],
        callbacks: true,
        sends_mail: false,
        migrations: vec![Migration {
            version: 1,
            name: "init".to_owned(),
            sql: include_str!("../migrations/V1__init.sql").to_owned(),
        },
        Migration {
            version: 2,
            name: "two_phase".to_owned(),
            sql: include_str!("../migrations/V2__two_phase.sql").to_owned(),
        },
        Migration {
            version: 3,
            name: "stk_intents".to_owned(),
            sql: include_str!("../migrations/V3__stk_intents.sql").to_owned(),
        }],
    }
}

fn permission(name: &str, description: &str, roles: &[&str]) -> PermissionDef {
    PermissionDef {
        name: name.to_owned(),
        description: description.to_owned(),
        default_roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

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
    /// Money the operation moves: its direction and the JSON pointers to its amounts.
    money: Option<(MoneyDirection, &'static [&'static str])>,
    /// The plan feature a tenant needs for it, if any.
    feature: Option<&'static str>,
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
            money: op.money.map(|(direction, fields)| MoneyMovement {
                direction,
                amount_fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            }),
            feature: op.feature.map(str::to_owned),
        }
    }
}

/// Only reads the tenant's data.
const READ: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};
/// Calls Daraja and records something new; repeating it does it again.
const SEND: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: true,
};
/// Calls Daraja and moves or returns money; repeating it does it again.
const MOVE_MONEY: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: false,
    open_world: true,
};
/// Calls Daraja; repeating it changes nothing more.
const SYNC: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: true,
    open_world: true,
};
/// Calls Daraja and replaces what was there; repeating it changes nothing more.
const REPLACE: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: true,
    open_world: true,
};
/// Host-internal: applies what Daraja posted; a duplicate changes nothing.
const APPLY: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: true,
    open_world: false,
};

/// An input object: the host merges path, query and body fields into it.
fn input(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

/// An input that names a transaction by `transaction_id` or `receipt`.
fn targeted_input(properties: Value, required: &[&str]) -> Value {
    let mut schema = input(properties, required);
    schema["anyOf"] = json!([{ "required": ["transaction_id"] }, { "required": ["receipt"] }]);
    schema
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required })
}

fn text(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn nullable_text(description: &str) -> Value {
    json!({ "type": ["string", "null"], "description": description })
}

fn id_param(what: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 128, "description": format!("Id of the {what}.") })
}

fn phone(description: &str) -> Value {
    json!({
        "type": "string",
        "description": format!("{description} A Safaricom number: 07XXXXXXXX, 01XXXXXXXX, 7XXXXXXXX, 2547XXXXXXXX or +2547XXXXXXXX; stored as 2547XXXXXXXX / 2541XXXXXXXX."),
        "examples": ["0712345678", "254712345678"]
    })
}

fn amount(min: i64, max: i64, description: &str) -> Value {
    json!({
        "type": ["integer", "string"],
        "minimum": min,
        "maximum": max,
        "pattern": "^[0-9]+$",
        "description": format!("{description} Whole Kenyan shillings, {min} to {max}."),
    })
}

fn idempotency_key() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "description": "Set from the Idempotency-Key header. The same key with the same request answers the first \
                        answer again without calling Daraja; with a different request it is a conflict (409).",
    })
}

fn date_bound(which: &str) -> Value {
    json!({
        "type": "string",
        "description": format!("{which}: an RFC 3339 date-time, or a date YYYY-MM-DD (a whole UTC day, inclusive)."),
        "examples": ["2026-11-24", "2026-11-24T10:25:53Z"],
    })
}

fn store_param(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

const STATUS_LIST: [&str; 6] = [
    "pending",
    "completed",
    "failed",
    "cancelled",
    "timeout",
    "reversed",
];
const KIND_LIST: [&str; 4] = ["stk", "b2c", "reversal", "c2b"];

fn transaction_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "kind", "status", "amount", "currency", "created_at", "updated_at"],
        "properties": {
            "id": { "type": "string", "description": "Malipo's id; for B2C also the OriginatorConversationID sent to Daraja." },
            "kind": { "type": "string", "enum": KIND_LIST },
            "status": {
                "type": "string",
                "enum": STATUS_LIST,
                "description": "pending → completed | failed | cancelled (1032) | timeout (1037); completed → reversed by a reversal. Final states never change otherwise."
            },
            "store_id": { "type": ["string", "null"] },
            "phone_number": nullable_text("2547XXXXXXXX / 2541XXXXXXXX (C2B: as Daraja sent it, possibly masked)."),
            "amount": { "type": "integer", "description": "Whole Kenyan shillings." },
            "currency": { "type": "string", "const": "KES" },
            "account_reference": { "type": ["string", "null"] },
            "description": { "type": ["string", "null"] },
            "merchant_request_id": { "type": ["string", "null"] },
            "checkout_request_id": { "type": ["string", "null"] },
            "originator_conversation_id": { "type": ["string", "null"] },
            "conversation_id": { "type": ["string", "null"] },
            "batch_id": { "type": ["string", "null"] },
            "batch_seq": { "type": ["integer", "null"], "description": "Position in the B2C batch, from 0." },
            "original_transaction_id": nullable_text("For a reversal: the payment it reverses."),
            "command_id": { "type": ["string", "null"] },
            "remarks": { "type": ["string", "null"] },
            "receipt": nullable_text("The M-Pesa receipt number."),
            "result_code": nullable_text("Daraja's ResultCode as text (e.g. \"0\", \"1032\", \"R000002\")."),
            "result_desc": { "type": ["string", "null"] },
            "note": { "type": ["string", "null"] },
            "created_by": { "type": ["string", "null"] },
            "created_at": { "type": "string", "format": "date-time" },
            "updated_at": { "type": "string", "format": "date-time" },
            "completed_at": { "type": ["string", "null"], "format": "date-time" }
        }
    })
}

fn transaction_answer() -> Value {
    object(
        json!({ "transaction": transaction_schema() }),
        &["transaction"],
    )
}

fn credentials_answer() -> Value {
    let flag = json!({ "type": "boolean" });
    object(
        json!({
            "configured": { "type": "boolean", "description": "Every field is set." },
            "environment": { "type": ["string", "null"], "enum": ["sandbox", "production", "custom", null] },
            "base_url": nullable_text("The tenant's base URL (custom only)."),
            "effective_base_url": nullable_text("Where calls go now: for sandbox, the built-in emulator when the operator runs it."),
            "uses_emulator": { "type": "boolean" },
            "shortcode": { "type": ["string", "null"] },
            "initiator_name": { "type": ["string", "null"] },
            "fields": {
                "type": "object",
                "description": "Which secrets are set (never their values).",
                "properties": {
                    "consumer_key": flag, "consumer_secret": flag, "passkey": flag,
                    "security_credential": flag, "initiator_password": flag
                },
                "required": ["consumer_key", "consumer_secret", "passkey", "security_credential", "initiator_password"]
            },
            "updated_at": { "type": ["string", "null"], "format": "date-time" }
        }),
        &[
            "configured",
            "environment",
            "base_url",
            "shortcode",
            "initiator_name",
            "fields",
        ],
    )
}

fn request_answer(kind: &str) -> Value {
    let result = if kind == "balance" {
        json!({
            "type": ["object", "null"],
            "description": "Once completed: the accounts and every result parameter.",
            "properties": {
                "accounts": { "type": "array", "items": object(json!({
                    "name": { "type": "string" },
                    "currency": { "type": "string" },
                    "available": { "type": ["string", "null"], "description": "Available funds, as Daraja wrote them (e.g. \"700000.00\")." },
                    "amounts": { "type": "array", "items": { "type": "string" }, "description": "Every amount Daraja listed for the account, in its order." }
                }), &["name", "currency", "available", "amounts"]) },
                "completed_time": { "type": ["string", "null"] },
                "parameters": { "type": "object" }
            }
        })
    } else {
        json!({
            "type": ["object", "null"],
            "description": "Once completed: Daraja's result parameters (TransactionStatus, ReceiptNo, Amount, DebitPartyName, …).",
            "properties": { "parameters": { "type": "object" } }
        })
    };
    object(
        json!({ "request": object(json!({
            "id": { "type": "string" },
            "kind": { "type": "string", "const": kind },
            "status": { "type": "string", "enum": ["pending", "completed", "failed", "timeout"] },
            "store_id": { "type": ["string", "null"] },
            "transaction_id": { "type": ["string", "null"] },
            "receipt": { "type": ["string", "null"] },
            "originator_conversation_id": { "type": ["string", "null"] },
            "conversation_id": { "type": ["string", "null"] },
            "remarks": { "type": ["string", "null"] },
            "result_code": { "type": ["string", "null"] },
            "result_desc": { "type": ["string", "null"] },
            "result": result,
            "created_by": { "type": ["string", "null"] },
            "created_at": { "type": "string", "format": "date-time" },
            "updated_at": { "type": "string", "format": "date-time" },
            "completed_at": { "type": ["string", "null"], "format": "date-time" }
        }), &["id", "kind", "status", "created_at"]) }),
        &["request"],
    )
}

fn batch_answer() -> Value {
    object(
        json!({
            "batch": object(json!({
                "id": { "type": "string" },
                "command_id": { "type": "string", "enum": crate::b2c::COMMANDS },
                "occasion": { "type": ["string", "null"] },
                "item_count": { "type": "integer" },
                "total_amount": { "type": "integer" },
                "completed_amount": { "type": "integer" },
                "currency": { "type": "string", "const": "KES" },
                "store_id": { "type": ["string", "null"] },
                "by_status": { "type": "object", "additionalProperties": { "type": "integer" }, "description": "Items per status." },
                "created_by": { "type": ["string", "null"] },
                "created_at": { "type": "string", "format": "date-time" }
            }), &["id", "command_id", "item_count", "total_amount", "by_status", "created_at"]),
            "items": { "type": "array", "items": transaction_schema(), "description": "One B2C transaction per item, in request order." }
        }),
        &["batch", "items"],
    )
}

fn target_params() -> Value {
    json!({
        "transaction_id": id_param("transaction"),
        "receipt": { "type": "string", "minLength": 1, "maxLength": 128, "description": "The M-Pesa receipt number." }
    })
}

fn totals_schema() -> Value {
    let int = json!({ "type": "integer", "minimum": 0 });
    object(
        json!({
            "count": int, "completed": int, "cancelled": int, "timeout": int,
            "pending": int, "reversed": int,
            "failed": { "type": "integer", "minimum": 0, "description": "Failed, cancelled and timed out together (a roll-up; `by_status` has each)." },
            "amount_completed": { "type": "integer", "description": "Shillings of transactions now completed, money in and out added together (kept for compatibility; use `money_in` and `money_out`)." },
            "success_rate": { "type": "number", "minimum": 0, "maximum": 1, "description": "completed / count (0 when count is 0)." },
            "by_status": object(json!({
                "pending": int, "completed": int,
                "failed": { "type": "integer", "minimum": 0, "description": "Failed only (not cancelled, not timed out)." },
                "cancelled": int, "timeout": int, "reversed": int
            }), &["pending", "completed", "failed", "cancelled", "timeout", "reversed"]),
            "money_in": object(json!({
                "count": { "type": "integer", "minimum": 0, "description": "Payments (STK push and C2B), any status." },
                "amount": { "type": "integer", "minimum": 0, "description": "Shillings received: completed payments, and payments later reversed (the reversal is money out)." }
            }), &["count", "amount"]),
            "money_out": object(json!({
                "count": { "type": "integer", "minimum": 0, "description": "Payouts (B2C) and reversals, any status." },
                "amount": { "type": "integer", "minimum": 0, "description": "Shillings sent out: completed payouts and reversals." }
            }), &["count", "amount"]),
            "net_amount": { "type": "integer", "description": "money_in.amount - money_out.amount." }
        }),
        &[
            "count",
            "completed",
            "failed",
            "amount_completed",
            "success_rate",
            "by_status",
            "money_in",
            "money_out",
            "net_amount",
        ],
    )
}

fn operations() -> Vec<Op> {
    let mut ops = credential_operations();
    ops.extend(payment_operations());
    ops.extend(account_operations());
    ops.extend(internal_operations());
    ops
}

fn credential_operations() -> Vec<Op> {
    vec![
        Op {
            name: "mpesa.credentials.put",
            method: HttpMethod::Put,
            path: Some("/mpesa/credentials"),
            permission: Some("mpesa.credentials.manage"),
            summary: "Set the Daraja credentials",
            description: "Replaces the tenant's complete set of Daraja credentials. The secrets (consumer key and \
                          secret, passkey, initiator password) are stored encrypted and never shown again; the \
                          initiator password is also turned into the SecurityCredential. Sandbox tenants use the \
                          built-in Daraja emulator when the operator runs one.",
            input: input(
                json!({
                    "consumer_key": text("Consumer key of the Daraja app."),
                    "consumer_secret": text("Consumer secret of the Daraja app."),
                    "shortcode": { "type": ["string", "integer"], "pattern": "^[0-9]{5,7}$", "description": "Paybill shortcode, 5 to 7 digits." },
                    "passkey": text("Lipa Na M-Pesa Online passkey."),
                    "initiator_name": { "type": "string", "minLength": 1, "maxLength": 64, "description": "API operator (initiator) user name." },
                    "initiator_password": text("API operator (initiator) password."),
                    "environment": { "type": "string", "enum": ["sandbox", "production", "custom"] },
                    "base_url": { "type": "string", "description": "Base URL of a Daraja-compatible server (http or https); required for, and only for, environment custom." }
                }),
                &[
                    "consumer_key",
                    "consumer_secret",
                    "shortcode",
                    "passkey",
                    "initiator_name",
                    "initiator_password",
                    "environment",
                ],
            ),
            output: credentials_answer(),
            status: 200,
            tool: None,
            hints: REPLACE,
            money: None,
            feature: None,
        },
        Op {
            name: "mpesa.credentials.get",
            method: HttpMethod::Get,
            path: Some("/mpesa/credentials"),
            permission: Some("mpesa.credentials.manage"),
            summary: "Show the Daraja configuration",
            description: "Shows whether the Daraja credentials are configured, the environment, shortcode and \
                          initiator name, and which secrets are set — never their values.",
            input: input(json!({}), &[]),
            output: credentials_answer(),
            status: 200,
            tool: None,
            hints: READ,
            money: None,
            feature: None,
        },
        Op {
            name: "mpesa.credentials.test",
            method: HttpMethod::Post,
            path: Some("/mpesa/credentials/test"),
            permission: Some("mpesa.credentials.manage"),
            summary: "Test the Daraja credentials",
            description: "Fetches a fresh OAuth token from Daraja with the stored consumer key and secret. Fails \
                          with upstream_error (502) if Daraja refuses them.",
            input: input(json!({}), &[]),
            output: object(
                json!({
                    "ok": { "type": "boolean", "const": true },
                    "expires_in": { "type": "integer", "description": "Seconds the token is valid." },
                    "environment": { "type": "string" },
                    "base_url": { "type": "string" }
                }),
                &["ok", "expires_in"],
            ),
            status: 200,
            tool: None,
            hints: SYNC,
            money: None,
            feature: None,
        },
        Op {
            name: "mpesa.c2b.register",
            method: HttpMethod::Post,
            path: Some("/mpesa/c2b/register"),
            permission: Some("mpesa.credentials.manage"),
            summary: "Register C2B URLs",
            description: "Registers this tenant's C2B confirmation and validation URLs for its shortcode at \
                          Daraja, replacing earlier ones. `response_type` says what M-Pesa does when validation \
                          cannot be reached.",
            input: input(
                json!({ "response_type": { "type": "string", "enum": ["Completed", "Cancelled"], "default": "Completed" } }),
                &[],
            ),
            output: object(
                json!({
                    "registered": { "type": "boolean", "const": true },
                    "shortcode": { "type": "string" },
                    "response_type": { "type": "string", "enum": ["Completed", "Cancelled"] },
                    "registered_at": { "type": "string", "format": "date-time" },
                    "response_description": { "type": ["string", "null"] }
                }),
                &["registered", "shortcode", "response_type", "registered_at"],
            ),
            status: 200,
            tool: None,
            hints: REPLACE,
            money: None,
            feature: None,
        },
    ]
}

fn payment_operations() -> Vec<Op> {
    vec![
        Op {
            name: "mpesa.stk-push",
            method: HttpMethod::Post,
            path: Some("/mpesa/stk-push"),
            permission: Some("payments.create"),
            summary: "Request a payment (STK push)",
            description: "Sends an M-Pesa Express prompt to the customer's phone to pay the tenant's paybill. The \
                          answer is a pending transaction; Daraja's callback (or a query) completes it. Send an \
                          Idempotency-Key header to make retries safe.",
            input: input(
                json!({
                    "phone_number": phone("The phone to prompt and charge."),
                    "amount": amount(1, 250_000, "Amount to collect."),
                    "account_reference": { "type": "string", "minLength": 1, "maxLength": 12, "description": "Shown to the customer and in their SMS; 1 to 12 characters. Default: the organization's `payments.account_reference` setting." },
                    "description": { "type": "string", "minLength": 1, "maxLength": 13, "description": "TransactionDesc; 1 to 13 characters. Default: the organization's `payments.transaction_desc` setting." },
                    "store_id": store_param("Store the payment is for (must exist); defaults to the X-Store-ID store."),
                    "idempotency_key": idempotency_key()
                }),
                &["phone_number", "amount"],
            ),
            output: transaction_answer(),
            status: 201,
            tool: Some("mpesa_stk_push"),
            hints: SEND,
            money: Some((MoneyDirection::Incoming, &["/amount"])),
            feature: None,
        },
        Op {
            name: "mpesa.transactions.get",
            method: HttpMethod::Get,
            path: Some("/mpesa/transactions/{id}"),
            permission: Some("payments.read"),
            summary: "Get a transaction",
            description: "Returns one M-Pesa transaction as stored (its status, receipt and result), the raw \
                          callback Daraja sent, and any reversals of it. Does not call Daraja.",
            input: input(json!({ "id": id_param("transaction") }), &["id"]),
            output: object(
                json!({ "transaction": {
                    "allOf": [transaction_schema()],
                    "properties": {
                        "callback": { "description": "The callback or result Daraja posted, as received (null if none)." },
                        "reversals": { "type": "array", "items": transaction_schema() }
                    }
                } }),
                &["transaction"],
            ),
            status: 200,
            tool: Some("mpesa_check_status"),
            hints: READ,
            money: None,
            feature: None,
        },
        Op {
            name: "mpesa.transactions.list",
            method: HttpMethod::Get,
            path: Some("/mpesa/transactions"),
            permission: Some("payments.read"),
            summary: "List transactions",
            description: "Lists M-Pesa transactions, newest first (by created_at, then id), a page at a time. \
                          Pass `next_cursor` back as `cursor` for the next page.",
            input: input(
                json!({
                    "status": { "type": "string", "enum": STATUS_LIST },
                    "kind": { "type": "string", "enum": KIND_LIST },
                    "phone_number": phone("Only this phone's transactions."),
                    "store_id": store_param("Only this store's transactions."),
                    "from": date_bound("Created at or after"),
                    "to": date_bound("Created at or before"),
                    "limit": { "type": "integer", "minimum": 1, "maximum": 100, "default": 50 },
                    "cursor": { "type": "string", "description": "Opaque; from a previous answer's next_cursor." }
                }),
                &[],
            ),
            output: object(
                json!({
                    "transactions": { "type": "array", "items": transaction_schema() },
                    "next_cursor": { "type": ["string", "null"] }
                }),
                &["transactions", "next_cursor"],
            ),
            status: 200,
            tool: Some("mpesa_transaction_history"),
            hints: READ,
            money: None,
            feature: None,
        },
        Op {
            name: "mpesa.transactions.query",
            method: HttpMethod::Post,
            path: Some("/mpesa/transactions/{id}/query"),
            permission: Some("payments.read"),
            summary: "Ask Daraja about a pending STK payment",
            description: "Runs an STK push query at Daraja for a pending STK payment and applies a final answer \
                          (completed, cancelled, timeout, failed). A payment still being processed stays pending.",
            input: input(json!({ "id": id_param("STK payment") }), &["id"]),
            output: object(
                json!({
                    "transaction": transaction_schema(),
                    "query": object(json!({
                        "answered": { "type": "boolean", "description": "Daraja gave a final result code." },
                        "processing": { "type": "boolean" },
                        "applied": { "type": "boolean", "description": "The transaction changed." },
                        "result_code": { "type": "string" },
                        "result_desc": { "type": "string" }
                    }), &["answered", "applied"])
                }),
                &["transaction", "query"],
            ),
            status: 200,
            tool: None,
            hints: SYNC,
            money: None,
            feature: None,
        },
        Op {
            name: "mpesa.b2c.bulk",
            method: HttpMethod::Post,
            path: Some("/mpesa/b2c/bulk"),
            permission: Some("payouts.create"),
            summary: "Pay many phones (B2C bulk)",
            description: "Sends money from the tenant's shortcode to up to 100 phones, one Daraja B2C request per \
                          item. Each item becomes a transaction (pending until Daraja's result, or failed if \
                          Daraja refused it). Send an Idempotency-Key header to make retries safe.",
            input: input(
                json!({
                    "items": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 100,
                        "items": {
                            "type": "object",
                            "properties": {
                                "phone_number": phone("Recipient."),
                                "amount": amount(10, 250_000, "Amount to send."),
                                "remarks": { "type": "string", "minLength": 2, "maxLength": 100 }
                            },
                            "required": ["phone_number", "amount", "remarks"]
                        }
                    },
                    "command_id": { "type": "string", "enum": crate::b2c::COMMANDS },
                    "occasion": { "type": "string", "minLength": 1, "maxLength": 100, "description": "Sent as Occassion; defaults to each item's remarks." },
                    "store_id": store_param("Store the payouts are for (must exist); defaults to the X-Store-ID store."),
                    "idempotency_key": idempotency_key()
                }),
                &["items", "command_id"],
            ),
            output: batch_answer(),
            status: 201,
            tool: Some("mpesa_bulk_payment"),
            hints: MOVE_MONEY,
            money: Some((MoneyDirection::Outgoing, &["/items/*/amount"])),
            feature: Some("bulk_payouts"),
        },
        Op {
            name: "mpesa.b2c.batches.get",
            method: HttpMethod::Get,
            path: Some("/mpesa/b2c/batches/{id}"),
            permission: Some("payments.read"),
            summary: "Get a B2C batch",
            description: "Returns a B2C batch with each item's transaction and a count per status.",
            input: input(json!({ "id": id_param("batch") }), &["id"]),
            output: batch_answer(),
            status: 200,
            tool: None,
            hints: READ,
            money: None,
            feature: None,
        },
        Op {
            name: "mpesa.reversals.create",
            method: HttpMethod::Post,
            path: Some("/mpesa/reversals"),
            permission: Some("payments.reverse"),
            summary: "Reverse a payment",
            description: "Asks Daraja to reverse a completed payment (STK push or C2B), in full or in part. The \
                          reversal is a transaction of its own, recorded before it is sent and pending until Daraja's \
                          result; when it completes, the original payment becomes `reversed`. One Daraja refuses is \
                          answered `failed`; a retry with the same Idempotency-Key answers the reversal as it stands \
                          and never sends it again.",
            input: targeted_input(
                {
                    let mut params = target_params();
                    params["amount"] = amount(
                        1,
                        250_000,
                        "Amount to reverse, at most the payment's; defaults to all of it.",
                    );
                    params["remarks"] =
                        json!({ "type": "string", "minLength": 2, "maxLength": 100 });
                    params["idempotency_key"] = idempotency_key();
                    params
                },
                &["remarks"],
            ),
            output: transaction_answer(),
            status: 201,
            tool: Some("mpesa_reverse_transaction"),
            hints: MOVE_MONEY,
            money: Some((MoneyDirection::Outgoing, &["/amount"])),
            feature: None,
        },
        Op {
            name: "mpesa.reports",
            method: HttpMethod::Get,
            path: Some("/mpesa/reports"),
            permission: Some("reports.read"),
            summary: "Payment report",
            description: "Totals of M-Pesa transactions created in a date range: count, completed, failed \
                          (cancelled and timed out included), pending, reversed, the amount completed and the \
                          success rate — overall and per day (UTC), store or kind. `by_status` partitions the \
                          count (each transaction in exactly one status: they sum to `count`); `money_in` \
                          (payments) and `money_out` (payouts and reversals) are never added together.",
            input: input(
                json!({
                    "from": date_bound("Created at or after"),
                    "to": date_bound("Created at or before"),
                    "group_by": { "type": "string", "enum": ["day", "store", "kind"], "default": "day" },
                    "kind": { "type": "string", "enum": KIND_LIST },
                    "store_id": store_param("Only this store's transactions.")
                }),
                &[],
            ),
            output: object(
                json!({
                    "from": { "type": ["string", "null"] },
                    "to": { "type": ["string", "null"] },
                    "group_by": { "type": "string", "enum": ["day", "store", "kind"] },
                    "currency": { "type": "string", "const": "KES" },
                    "totals": totals_schema(),
                    "groups": { "type": "array", "items": {
                        "allOf": [totals_schema()],
                        "properties": { "key": { "type": ["string", "null"], "description": "The day (YYYY-MM-DD), store id or kind." } },
                        "required": ["key"]
                    } }
                }),
                &["group_by", "totals", "groups"],
            ),
            status: 200,
            tool: Some("mpesa_generate_report"),
            hints: READ,
            money: None,
            feature: None,
        },
    ]
}

fn account_operations() -> Vec<Op> {
    vec![
        Op {
            name: "mpesa.balance",
            method: HttpMethod::Post,
            path: Some("/mpesa/balance"),
            permission: Some("mpesa.balance.read"),
            summary: "Query the account balance",
            description: "Asks Daraja for the shortcode's account balances. Daraja answers later: the answer is a \
                          pending query; read its result with GET /mpesa/balance/{id}.",
            input: input(
                json!({ "remarks": { "type": "string", "minLength": 2, "maxLength": 100 } }),
                &[],
            ),
            output: request_answer("balance"),
            status: 202,
            tool: Some("mpesa_check_balance"),
            hints: SEND,
            money: None,
            feature: None,
        },
        Op {
            name: "mpesa.balance.get",
            method: HttpMethod::Get,
            path: Some("/mpesa/balance/{id}"),
            permission: Some("mpesa.balance.read"),
            summary: "Get a balance query",
            description: "Returns a balance query and, once Daraja answered, the balances of each account.",
            input: input(json!({ "id": id_param("balance query") }), &["id"]),
            output: request_answer("balance"),
            status: 200,
            tool: None,
            hints: READ,
            money: None,
            feature: None,
        },
        Op {
            name: "mpesa.transaction-status",
            method: HttpMethod::Post,
            path: Some("/mpesa/transaction-status"),
            permission: Some("payments.read"),
            summary: "Query a transaction's status at M-Pesa",
            description: "Asks Daraja about a transaction by its receipt (or a B2C payout without one by its \
                          OriginatorConversationID). Daraja answers later: read the result with \
                          GET /mpesa/transaction-status/{id}. A result saying a pending payout or reversal \
                          completed settles it (a reversal also marks its payment `reversed`).",
            input: targeted_input(
                {
                    let mut params = target_params();
                    params["remarks"] =
                        json!({ "type": "string", "minLength": 2, "maxLength": 100 });
                    params
                },
                &[],
            ),
            output: request_answer("status"),
            status: 202,
            tool: None,
            hints: SEND,
            money: None,
            feature: None,
        },
        Op {
            name: "mpesa.transaction-status.get",
            method: HttpMethod::Get,
            path: Some("/mpesa/transaction-status/{id}"),
            permission: Some("payments.read"),
            summary: "Get a transaction-status query",
            description: "Returns a transaction-status query and, once Daraja answered, its result.",
            input: input(
                json!({ "id": id_param("transaction-status query") }),
                &["id"],
            ),
            output: request_answer("status"),
            status: 200,
            tool: None,
            hints: READ,
            money: None,
            feature: None,
        },
    ]
}

fn internal_operations() -> Vec<Op> {
    let applied = object(
        json!({
            "applied": { "type": "boolean", "description": "Something changed." },
            "kind": { "type": "string" },
            "transaction_id": { "type": "string" },
            "request_id": { "type": "string" },
            "status": { "type": "string" },
            "reason": { "type": "string" }
        }),
        &["applied"],
    );
    vec![
        Op {
            name: "callback.receive",
            method: HttpMethod::Post,
            path: None,
            permission: None,
            summary: "Apply a Daraja callback",
            description: "Applies what Daraja posted to one of the tenant's callback URLs to the stored \
                          transaction or query. Errors: bad_request (not JSON / not a callback), retry (matches \
                          nothing stored yet: deliver again later).",
            input: input(
                json!({
                    "kind": {
                        "type": "string",
                        "pattern": format!("^(stk/[0-9a-f-]{{36}}|{})$", crate::callbacks::KINDS.join("|")),
                        "description": "The path under the tenant's callback base: one of the callback kinds, or `stk/<intent id>` (an STK push's own callback URL, naming its intent)."
                    },
                    "body": { "type": ["string", "object"], "description": "The posted JSON, as received (a string; an object is accepted too)." },
                    "received_at": { "type": "integer", "minimum": 0, "description": "Milliseconds since the epoch." }
                }),
                &["kind", "body"],
            ),
            output: applied,
            status: 200,
            tool: None,
            hints: APPLY,
            money: None,
            feature: None,
        },
        Op {
            name: "payments.reconcile",
            method: HttpMethod::Post,
            path: None,
            permission: None,
            summary: "Reconcile pending STK payments",
            description: "Job: runs an STK query for each pending STK payment older than `older_than_secs` \
                          (oldest first, at most 100 per run) and applies final answers; one still without an answer after \
                          24 hours becomes `timeout`. An STK push whose Daraja answer was lost (no CheckoutRequestID) and \
                          whose callback did not come within 10 minutes becomes `failed` (never confirmed, never sent again). \
                          Pending B2C payouts and reversals are asked about with a transaction-status query.",
            input: input(
                json!({ "older_than_secs": { "type": "integer", "minimum": 0, "default": 60 } }),
                &[],
            ),
            output: object(
                json!({
                    "checked": { "type": "integer" },
                    "configured": { "type": "boolean" },
                    "by_status": { "type": "object", "additionalProperties": { "type": "integer" } },
                    "errors": { "type": "array", "items": object(json!({
                        "transaction_id": { "type": "string" },
                        "error": { "type": "string" }
                    }), &["transaction_id", "error"]) }
                }),
                &["checked", "by_status", "errors"],
            ),
            status: 200,
            tool: None,
            hints: SYNC,
            money: None,
            feature: None,
        },
    ]
}
