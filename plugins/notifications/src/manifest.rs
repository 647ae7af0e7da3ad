//! The notifications manifest: in-app notification, email template and
//! webhook operations, the delivery jobs, the events it subscribes to, and
//! its tables.

use serde_json::{Value, json};

use crate::malipo::plugin::types::{
    Annotations, HttpMethod, Manifest, Migration, Operation, PermissionDef,
};

/// Events an endpoint may subscribe to ("*" for all of them).
pub const EVENTS: &[&str] = &[
    "payment.completed",
    "payment.failed",
    "payout.completed",
    "payout.failed",
    "reversal.completed",
    "reversal.failed",
    "invoice.issued",
    "invoice.due",
    "invoice.paid",
    "invoice.overdue",
    "usage.threshold",
    "subscription.changed",
];

const READ: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};
const CREATE: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};
const REMOVE: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: true,
    open_world: false,
};
const SEND: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: true,
};

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required })
}

fn endpoint_schema() -> Value {
    object(
        json!({
            "id": { "type": "string" },
            "url": { "type": "string" },
            "events": { "type": "array", "items": { "type": "string" } },
            "description": { "type": ["string", "null"] },
            "status": { "type": "string", "enum": ["active", "disabled"] },
            "disabled_reason": { "type": ["string", "null"] },
            "created_at": { "type": "string" },
            "created_by": { "type": ["string", "null"] }
        }),
        &["id", "url", "events", "status"],
    )
}

fn template_name() -> Value {
    let names: Vec<&str> = crate::emails::templates().iter().map(|t| t.name).collect();
    json!({ "type": "string", "enum": names, "description": "The template's name." })
}

fn template_schema(full: bool) -> Value {
    let mut properties = json!({
        "name": { "type": "string" },
        "event": { "type": "string" },
        "description": { "type": "string" },
        "overridden": { "type": "boolean" }
    });
    if full {
        properties["subject"] = json!({ "type": "string" });
        properties["text"] = json!({ "type": "string" });
        properties["html"] = json!({ "type": ["string", "null"] });
        properties["variables"] = json!({ "type": "array", "items": { "type": "string" } });
    }
    object(properties, &["name", "event", "overridden"])
}

#[allow(clippy::too_many_arguments)]
fn op(
    name: &str,
    method: HttpMethod,
    path: Option<&str>,
    summary: &str,
    description: &str,
    input: Value,
    output: Value,
    status: u16,
    hints: Annotations,
) -> Operation {
    Operation {
        name: name.to_owned(),
        method,
        path: path.map(str::to_owned),
        permission: path.map(|p| {
            if p.starts_with("/notification-templates") {
                "notifications.manage"
            } else if p.starts_with("/notifications") {
                "notifications.read"
            } else {
                "webhooks.manage"
            }
            .to_owned()
        }),
        summary: summary.to_owned(),
        description: description.to_owned(),
        input_schema: input.to_string(),
        output_schema: output.to_string(),
        success_status: status,
        mcp_tool: None,
        annotations: hints,
        money: None,
        feature: None,
    }
}

pub fn manifest() -> Manifest {
    let id = json!({ "type": "string", "description": "Id of the webhook endpoint." });
    Manifest {
        name: "notifications".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: "In-app notifications, branded email and outgoing webhooks (signed the Standard Webhooks way)."
            .to_owned(),
        operations: vec![
            op(
                "webhooks.create",
                HttpMethod::Post,
                Some("/webhooks"),
                "Add a webhook endpoint",
                "Registers a URL that receives the named events (or \"*\" for all) as signed POSTs. The \
                 answer carries the signing secret (`whsec_…`) once; verify `webhook-signature` with it.",
                object(
                    json!({
                        "url": { "type": "string", "description": "http(s) URL of the receiver." },
                        "events": { "type": "array", "minItems": 1, "items": { "type": "string", "enum": EVENTS.iter().chain(["*"].iter()).collect::<Vec<_>>() } },
                        "description": { "type": "string", "maxLength": 200 }
                    }),
                    &["url", "events"],
                ),
                {
                    let mut schema = endpoint_schema();
                    schema["properties"]["secret"] =
                        json!({ "type": "string", "description": "Shown once." });
                    schema
                },
                201,
                CREATE,
            ),
            op(
                "webhooks.list",
                HttpMethod::Get,
                Some("/webhooks"),
                "List webhook endpoints",
                "The tenant's webhook endpoints (never their secrets).",
                object(json!({}), &[]),
                object(
                    json!({ "webhooks": { "type": "array", "items": endpoint_schema() } }),
                    &["webhooks"],
                ),
                200,
                READ,
            ),
            op(
                "webhooks.delete",
                HttpMethod::Delete,
                Some("/webhooks/{id}"),
                "Delete a webhook endpoint",
                "Stops deliveries to the endpoint and forgets its secret; queued messages fail.",
                object(json!({ "id": id }), &["id"]),
                object(
                    json!({ "deleted": { "type": "boolean" }, "id": { "type": "string" } }),
                    &["deleted", "id"],
                ),
                200,
                REMOVE,
            ),
            op(
                "webhooks.deliveries",
                HttpMethod::Get,
                Some("/webhooks/{id}/deliveries"),
                "An endpoint's delivery log",
                "The last 100 messages to the endpoint, newest first: status, attempts, last HTTP status or error.",
                object(json!({ "id": id }), &["id"]),
                object(
                    json!({ "deliveries": { "type": "array", "items": { "type": "object" } } }),
                    &["deliveries"],
                ),
                200,
                READ,
            ),
            op(
                "webhooks.deliveries.retry",
                HttpMethod::Post,
                Some("/webhooks/{id}/deliveries/{delivery_id}/retry"),
                "Send a message again",
                "Queues the message for the next delivery run with the same `webhook-id`, and re-enables a \
                 disabled endpoint.",
                object(
                    json!({ "id": id, "delivery_id": { "type": "string" } }),
                    &["id", "delivery_id"],
                ),
                object(
                    json!({ "queued": { "type": "boolean" }, "id": { "type": "string" } }),
                    &["queued", "id"],
                ),
                202,
                SEND,
            ),
            op(
                "notifications.list",
                HttpMethod::Get,
                Some("/notifications"),
                "List notifications",
                "The organization's notifications (payments received, payouts sent, failures), newest first, \
                 each with whether you have read it, and your unread count. `unread=true` for unread only.",
                object(
                    json!({
                        "unread": { "type": "boolean" },
                        "limit": { "type": "integer", "minimum": 1, "maximum": 200, "default": 50 }
                    }),
                    &[],
                ),
                object(
                    json!({
                        "notifications": { "type": "array", "items": object(json!({
                            "id": { "type": "string" }, "kind": { "type": "string" }, "title": { "type": "string" },
                            "body": { "type": "string" }, "data": {}, "created_at": { "type": "string" },
                            "read_at": { "type": ["string", "null"] }, "read": { "type": "boolean" }
                        }), &["id", "kind", "title", "body", "created_at", "read"]) },
                        "unread_count": { "type": "integer", "minimum": 0 }
                    }),
                    &["notifications", "unread_count"],
                ),
                200,
                READ,
            ),
            op(
                "notifications.read",
                HttpMethod::Post,
                Some("/notifications/{id}/read"),
                "Mark a notification read",
                "Marks one notification read for you (others keep their own state).",
                object(json!({ "id": { "type": "string" } }), &["id"]),
                object(
                    json!({ "id": { "type": "string" }, "read": { "type": "boolean" } }),
                    &["id", "read"],
                ),
                200,
                Annotations {
                    read_only: false,
                    destructive: false,
                    idempotent: true,
                    open_world: false,
                },
            ),
            op(
                "notification-templates.list",
                HttpMethod::Get,
                Some("/notification-templates"),
                "List email templates",
                "The email templates (receipts, payouts, invoices, usage, subscription; password-reset and \
                 invitation emails are the platform's own): the event each answers and whether this organization overrides it.",
                object(json!({}), &[]),
                object(
                    json!({ "templates": { "type": "array", "items": template_schema(false) } }),
                    &["templates"],
                ),
                200,
                READ,
            ),
            op(
                "notification-templates.get",
                HttpMethod::Get,
                Some("/notification-templates/{name}"),
                "An email template",
                "The effective subject, text and HTML of a template (the organization's override, else the \
                 default), whether it is overridden, and the variables it may use (minijinja syntax, \
                 e.g. `{{ data.amount }}`, `{{ branding.display_name }}`).",
                object(json!({ "name": template_name() }), &["name"]),
                template_schema(true),
                200,
                READ,
            ),
            op(
                "notification-templates.put",
                HttpMethod::Put,
                Some("/notification-templates/{name}"),
                "Override an email template",
                "Replaces the organization's version of a template. It is checked by rendering it with \
                 sample data: a syntax error answers 422 with the template engine's message, and nothing \
                 is stored. HTML may `{% extends \"layout.html\" %}` (the branded frame, block `content`).",
                object(
                    json!({
                        "name": template_name(),
                        "subject": { "type": "string", "minLength": 1, "maxLength": crate::emails::MAX_SUBJECT },
                        "text": { "type": "string", "minLength": 1, "maxLength": crate::emails::MAX_TEXT },
                        "html": { "type": ["string", "null"], "maxLength": crate::emails::MAX_HTML }
                    }),
                    &["name", "subject", "text"],
                ),
                template_schema(true),
                200,
                Annotations {
                    read_only: false,
                    destructive: false,
                    idempotent: true,
                    open_world: false,
                },
            ),
            op(
                "notification-templates.delete",
                HttpMethod::Delete,
                Some("/notification-templates/{name}"),
                "Restore an email template's default",
                "Drops the organization's override of a template; the default is used again.",
                object(json!({ "name": template_name() }), &["name"]),
                template_schema(true),
                200,
                REMOVE,
            ),
            op(
                "emails.send",
                HttpMethod::Post,
                None,
                "Send due email",
                "Job: sends the queued email that is due through the operator's SMTP server.",
                object(json!({}), &[]),
                object(
                    json!({ "sent": { "type": "integer" }, "retrying": { "type": "integer" },
                            "failed": { "type": "integer" }, "waiting": { "type": "integer" } }),
                    &[],
                ),
                200,
                SEND,
            ),
            op(
                "webhooks.deliver",
                HttpMethod::Post,
                None,
                "Send due messages",
                "Job: sends the messages that are due and records each outcome.",
                object(json!({}), &[]),
                object(
                    json!({ "delivered": { "type": "integer" }, "failed": { "type": "integer" } }),
                    &[],
                ),
                200,
                SEND,
            ),
        ],
        permissions: vec![
            PermissionDef {
                name: "webhooks.manage".to_owned(),
                description: "Add, list, delete and replay outgoing webhooks.".to_owned(),
                default_roles: vec!["Owner".to_owned(), "Admin".to_owned()],
            },
            PermissionDef {
                name: "notifications.manage".to_owned(),
                description: "Change the organization's email templates.".to_owned(),
                default_roles: vec!["Owner".to_owned(), "Admin".to_owned()],
            },
            PermissionDef {
                name: "notifications.read".to_owned(),
                description: "See the organization's in-app notifications.".to_owned(),
                default_roles: ["Owner", "Admin", "Manager", "Member"]
                    .iter()
                    .map(|r| (*r).to_owned())
                    .collect(),
            },
        ],
        // Password resets and invitations are the host's own mail, sent from
        // platform templates; their tokens never reach this plugin.
        subscriptions: EVENTS.iter().map(|e| (*e).to_owned()).collect(),
        // Where the organization's email goes, how it looks, the store a
        // payment names, and whether receipts are wanted (`settings`).
        emits: Vec::new(),
        read_tables: vec![
            "members".to_owned(),
            "branding".to_owned(),
            "stores".to_owned(),
            "settings".to_owned(),
        ],
        secrets: vec![crate::SECRETS.to_owned()],
        // Any public address; loopback and private ones only if the operator allows.
        outbound_hosts: vec!["public".to_owned()],
        jobs: vec!["webhooks.deliver".to_owned(), "emails.send".to_owned()],
        callbacks: false,
        sends_mail: true,
        migrations: vec![
            Migration {
                version: 1,
                name: "init".to_owned(),
                sql: include_str!("../migrations/V1__init.sql").to_owned(),
            },
            Migration {
                version: 2,
                name: "inbox".to_owned(),
                sql: include_str!("../migrations/V2__inbox.sql").to_owned(),
            },
            Migration {
                version: 3,
                name: "emails".to_owned(),
                sql: include_str!("../migrations/V3__emails.sql").to_owned(),
            },
        ],
    }
}
