//! Email: events become messages rendered from templates (the defaults
//! shipped here, or the tenant's overrides) with the tenant's branding,
//! queued in `notifications_emails` by `on-event` (one per event, template
//! and recipient, so a redelivered event queues nothing new) and sent by the
//! `emails.send` job through the host's `mail` import.
//!
//! Sent: `sent`, never again. No SMTP server configured: stays queued,
//! no attempt counted. Server unavailable: tried again after
//! [`crate::schedule`]'s waits, then `failed`. Refused for good: `failed`.

use malipo_plugin_sdk::{Context, Db, Error, Input, Result, Sql};
use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value, json};

use crate::Host;

/// Messages sent per job run and tenant.
const BATCH: i64 = 10;
/// Template instructions one rendering may spend (a loop cannot run away).
const FUEL: u64 = 200_000;
/// Largest subject, text and HTML of an override, in bytes.
pub const MAX_SUBJECT: usize = 300;
pub const MAX_TEXT: usize = 20_000;
pub const MAX_HTML: usize = 100_000;
/// Longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 500;

/// What the mail import answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    Sent,
    NotConfigured,
    Rejected(String),
    Unavailable(String),
}

/// One message to send.
pub struct Outgoing<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub message_id: &'a str,
}

/// Who an email goes to.
#[derive(Clone, Copy)]
enum To {
    /// The organization: `branding.contact_email`, else its earliest active member.
    Organization,
    /// The `email` of the payload.
    Payload,
}

/// A default template: name, the event it answers, who gets it, its three
/// parts, the payload fields it uses (`data.*`), and sample data to check
/// overrides with.
pub struct Template {
    pub name: &'static str,
    pub event: &'static str,
    to: To,
    pub description: &'static str,
    pub subject: &'static str,
    pub text: &'static str,
    pub html: &'static str,
    pub fields: &'static [&'static str],
    sample: fn() -> Value,
}

macro_rules! parts {
    ($name:literal) => {
        (
            include_str!(concat!("../templates/", $name, ".subject")),
            include_str!(concat!("../templates/", $name, ".txt")),
            include_str!(concat!("../templates/", $name, ".html")),
        )
    };
}

const LAYOUT: &str = include_str!("../templates/layout.html");

fn template(
    name: &'static str,
    event: &'static str,
    to: To,
    description: &'static str,
    (subject, text, html): (&'static str, &'static str, &'static str),
    fields: &'static [&'static str],
    sample: fn() -> Value,
) -> Template {
    Template {
        name,
        event,
        to,
        description,
        subject,
        text,
        html,
        fields,
        sample,
    }
}

const MONEY_FIELDS: &[&str] = &[
    "transaction_id",
    "amount",
    "currency",
    "phone_number",
    "receipt",
    "store_id",
    "kind",
    "status",
];
/// What the billing plugin's `invoice.*` events carry.
const INVOICE_FIELDS: &[&str] = &[
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
    "paid_at",
    "receipt",
];

fn money_sample() -> Value {
    json!({"transaction_id": "txn_sample", "amount": 1500, "currency": "KES", "phone_number": "254712345678",
           "receipt": "QK12AB34CD", "store_id": "store_sample", "kind": "stk_push", "status": "completed"})
}

fn invoice_sample() -> Value {
    json!({"invoice_id": "inv_sample", "number": "INV-000001", "amount_kes": 2500, "currency": "KES",
           "due_at": "2026-01-31T00:00:00Z", "status": "open", "plan_id": "standard", "plan_name": "Standard",
           "period_start": "2026-01-31T00:00:00Z", "period_end": "2026-02-28T00:00:00Z",
           "paid_at": null, "receipt": null})
}

/// Every template, in the order they are listed.
pub fn templates() -> Vec<Template> {
    vec![
        template(
            "payment_receipt",
            "payment.completed",
            To::Organization,
            "A payment was received (to the organization).",
            parts!("payment_receipt"),
            MONEY_FIELDS,
            money_sample,
        ),
        template(
            "payout_done",
            "payout.completed",
            To::Organization,
            "A payout was sent (to the organization).",
            parts!("payout_done"),
            MONEY_FIELDS,
            money_sample,
        ),
        template(
            "invoice_issued",
            "invoice.issued",
            To::Organization,
            "An invoice was issued (to the organization).",
            parts!("invoice_issued"),
            INVOICE_FIELDS,
            invoice_sample,
        ),
        template(
            "invoice_due",
            "invoice.due",
            To::Organization,
            "An invoice is due soon (to the organization).",
            parts!("invoice_due"),
            INVOICE_FIELDS,
            invoice_sample,
        ),
        template(
            "invoice_paid",
            "invoice.paid",
            To::Organization,
            "An invoice was paid (to the organization).",
            parts!("invoice_paid"),
            INVOICE_FIELDS,
            invoice_sample,
        ),
        template(
            "invoice_overdue",
            "invoice.overdue",
            To::Organization,
            "An invoice is overdue (to the organization).",
            parts!("invoice_overdue"),
            INVOICE_FIELDS,
            invoice_sample,
        ),
        template(
            "invitation",
            "invitation.created",
            To::Payload,
            "Someone was invited to the organization (to the invited address).",
            parts!("invitation"),
            &[
                "email",
                "organization",
                "role",
                "invited_by",
                "accept_url",
                "token",
                "expires_at",
            ],
            || {
                json!({"email": "new.person@example.com", "organization": "Duka Ltd", "role": "Member",
                       "invited_by": "Amina Owner", "accept_url": "https://pay.example.com/accept-invitation?token=mli_sample",
                       "token": "mli_sample", "expires_at": "2026-01-08T10:00:00Z"})
            },
        ),
        template(
            "password_reset",
            "password_reset.requested",
            To::Payload,
            "Someone asked to reset their password (to their address).",
            parts!("password_reset"),
            &["email", "full_name", "reset_url", "token", "expires_at"],
            || {
                json!({"email": "amina@example.com", "full_name": "Amina Owner",
                       "reset_url": "https://pay.example.com/reset-password?token=mlp_reset_sample",
                       "token": "mlp_reset_sample", "expires_at": "2026-01-01T11:00:00Z"})
            },
        ),
        template(
            "usage_threshold",
            "usage.threshold",
            To::Organization,
            "The organization crossed a usage threshold of its plan (to the organization).",
            parts!("usage_threshold"),
            &[
                "metric",
                "threshold",
                "used",
                "limit",
                "period",
                "plan_id",
                "plan_name",
            ],
            || {
                json!({"metric": "transactions", "threshold": 80, "used": 80, "limit": 100,
                       "period": "2026-01", "plan_id": "free", "plan_name": "Free"})
            },
        ),
        template(
            "subscription_changed",
            "subscription.changed",
            To::Organization,
            "The organization's plan or subscription changed (to the organization).",
            parts!("subscription_changed"),
            &[
                "plan_id",
                "plan_name",
                "from_plan_id",
                "from_status",
                "to_status",
                "current_period_end",
            ],
            || {
                json!({"plan_id": "premium", "plan_name": "Premium", "from_plan_id": "standard",
                       "from_status": "trial", "to_status": "active", "current_period_end": "2026-02-28T00:00:00Z"})
            },
        ),
    ]
}

/// The template of a name.
pub fn find(name: &str) -> Option<Template> {
    templates().into_iter().find(|t| t.name == name)
}

/// The three parts of a template, overridden or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// A rendered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// The `capfirst` filter: the first letter upper-case, the rest as written
/// (`capitalize` would lower-case an organization's "KCB branch").
fn capfirst(value: String) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => value,
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_filter("capfirst", capfirst);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(FUEL));
    env
}

fn template_error(part: &str, error: &minijinja::Error) -> Error {
    let mut message = format!("{part}: {error}");
    if let Some(detail) = error.detail()
        && !message.contains(detail)
    {
        message.push_str(&format!(" ({detail})"));
    }
    Error::validation(message)
}

/// Renders `parts` with `context`. A syntax or rendering error is a
/// `validation_failed` error naming the part, with minijinja's message.
pub fn render(parts: &Parts, context: &Value) -> Result<Rendered> {
    let mut env = environment();
    env.add_template("layout.html", LAYOUT)
        .map_err(|e| template_error("layout", &e))?;
    env.add_template_owned("subject", parts.subject.clone())
        .map_err(|e| template_error("subject", &e))?;
    env.add_template_owned("text.txt", parts.text.clone())
        .map_err(|e| template_error("text", &e))?;
    if let Some(html) = &parts.html {
        env.add_template_owned("body.html", html.clone())
            .map_err(|e| template_error("html", &e))?;
    }
    let run = |name: &str, part: &str| {
        env.get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|e| template_error(part, &e))
    };
    let subject = run("subject", "subject")?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let text = run("text.txt", "text")?;
    let html = match parts.html {
        Some(_) => Some(run("body.html", "html")?),
        None => None,
    };
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

/// The words an organization may rename (the host's `branding.terminology`
/// keys), each with its default.
const TERMS: &[(&str, &str)] = &[
    ("store", "store"),
    ("stores", "stores"),
    ("customer", "customer"),
    ("customers", "customers"),
    ("payment", "payment"),
    ("payments", "payments"),
    ("payout", "payout"),
    ("payouts", "payouts"),
    ("invoice", "invoice"),
    ("invoices", "invoices"),
    ("member", "member"),
    ("members", "members"),
];

/// Every word with the organization's replacement (its
/// `branding.terminology`) or the default: the templates' `term`.
pub fn terminology(stored: Option<&str>) -> Value {
    let stored: Value = stored
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let words: Map<String, Value> = TERMS
        .iter()
        .map(|(term, default)| {
            let word = stored
                .get(*term)
                .and_then(Value::as_str)
                .filter(|w| !w.trim().is_empty())
                .unwrap_or(default);
            ((*term).to_owned(), json!(word))
        })
        .collect();
    Value::Object(words)
}

/// The name of the store a payload names (`data.store_id`), if any.
fn store_name(db: &dyn Db, data: &Value) -> Result<Option<String>> {
    let Some(id) = data.get("store_id").and_then(Value::as_str) else {
        return Ok(None);
    };
    let rows = db.query(
        "SELECT name FROM stores WHERE id = ?1",
        &[Sql::Text(id.to_owned())],
    )?;
    Ok(rows
        .first()
        .and_then(|row| row.text("name").map(str::to_owned)))
}

/// Whether the organization wants an email for this template: the
/// `payments.receipt_emails` setting (default on) gates `payment_receipt`.
fn wanted(db: &dyn Db, template: &str) -> Result<bool> {
    if template != "payment_receipt" {
        return Ok(true);
    }
    let rows = db.query(
        "SELECT value FROM settings WHERE key = 'payments.receipt_emails'",
        &[],
    )?;
    Ok(rows.first().and_then(|row| row.text("value")) != Some("false"))
}

/// The tenant's branding with defaults, as template variables
/// (`terminology` included, which the context also offers as `term`).
pub fn branding(db: &dyn Db, data: &Value) -> Result<Value> {
    let rows = db.query(
        "SELECT display_name, logo_url, primary_colour, secondary_colour, contact_email, terminology
           FROM branding WHERE id = 1",
        &[],
    )?;
    let row = rows.first();
    let get = |name: &str| {
        row.as_ref()
            .and_then(|r| r.text(name))
            .filter(|v| !v.trim().is_empty())
            .map(str::to_owned)
    };
    let display_name = get("display_name")
        .or_else(|| {
            data.get("organization")
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "Malipo".to_owned());
    Ok(json!({
        "display_name": display_name,
        "logo_url": get("logo_url"),
        "primary_colour": get("primary_colour").unwrap_or_else(|| "#0A7E3C".to_owned()),
        "secondary_colour": get("secondary_colour").unwrap_or_else(|| "#F4F6F8".to_owned()),
        "contact_email": get("contact_email"),
        "terminology": terminology(get("terminology").as_deref()),
    }))
}

/// The variables a template sees.
fn context(
    branding: Value,
    store: Option<String>,
    event_id: &str,
    event: &str,
    to: &str,
    data: &Value,
) -> Value {
    let term = branding
        .get("terminology")
        .cloned()
        .unwrap_or_else(|| terminology(None));
    json!({
        "term": term,
        "store": { "name": store },
        "branding": branding,
        "event": { "id": event_id, "name": event },
        "recipient": to,
        "data": data,
    })
}

/// The names of the variables a template sees.
pub fn variables(template: &Template) -> Vec<String> {
    let mut names: Vec<String> = [
        "branding.display_name",
        "branding.logo_url",
        "branding.primary_colour",
        "branding.secondary_colour",
        "branding.contact_email",
        "event.id",
        "event.name",
        "recipient",
        "store.name",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    names.extend(TERMS.iter().map(|(term, _)| format!("term.{term}")));
    names.extend(template.fields.iter().map(|f| format!("data.{f}")));
    names
}

/// The tenant's override of a template, if any.
pub fn overridden(db: &dyn Db, name: &str) -> Result<Option<Parts>> {
    let rows = db.query(
        "SELECT subject, text, html FROM notifications_templates WHERE name = ?1",
        &[Sql::Text(name.to_owned())],
    )?;
    Ok(rows.first().map(|row| Parts {
        subject: row.text("subject").unwrap_or_default().to_owned(),
        text: row.text("text").unwrap_or_default().to_owned(),
        html: row.text("html").map(str::to_owned),
    }))
}

fn defaults(template: &Template) -> Parts {
    Parts {
        subject: template.subject.to_owned(),
        text: template.text.to_owned(),
        html: Some(template.html.to_owned()),
    }
}

fn plausible_email(address: &str) -> bool {
    address.len() <= 254
        && !address.chars().any(|c| c.is_whitespace() || c.is_control())
        && address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
}

/// Where the organization's own email goes.
fn organization_address(db: &dyn Db, branding: &Value) -> Result<Option<String>> {
    if let Some(contact) = branding.get("contact_email").and_then(Value::as_str) {
        return Ok(Some(contact.to_owned()));
    }
    let rows = db.query(
        "SELECT email FROM members WHERE status = 'active' ORDER BY joined_at, user_id LIMIT 1",
        &[],
    )?;
    Ok(rows
        .first()
        .and_then(|row| row.text("email").map(str::to_owned)))
}

/// Queues the email of an event, if it sends one. The tenant's override is
/// used when it renders; if it fails on this event's data the default is.
pub fn enqueue(
    db: &dyn Db,
    ctx: &Context,
    event_id: &str,
    event: &str,
    data: &Value,
) -> Result<()> {
    let Some(template) = templates().into_iter().find(|t| t.event == event) else {
        return Ok(());
    };
    if !wanted(db, template.name)? {
        return Ok(());
    }
    let branding = branding(db, data)?;
    let to = match template.to {
        To::Organization => organization_address(db, &branding)?,
        To::Payload => data.get("email").and_then(Value::as_str).map(str::to_owned),
    };
    let Some(to) = to
        .map(|t| t.trim().to_lowercase())
        .filter(|t| plausible_email(t))
    else {
        return Ok(());
    };
    let store = store_name(db, data)?;
    let vars = context(branding, store, event_id, event, &to, data);
    let rendered = match overridden(db, template.name)?.map(|parts| render(&parts, &vars)) {
        Some(Ok(rendered)) => rendered,
        _ => render(&defaults(&template), &vars).map_err(|e| {
            Error::internal(format!("default template {}: {}", template.name, e.message))
        })?,
    };
    let message_id = format!("<{event_id}.{}@malipo>", template.name);
    db.execute(
        "INSERT INTO notifications_emails
            (id, event_id, template, recipient, subject, text, html, message_id, next_attempt_ms, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (event_id, template, recipient) DO NOTHING",
        &[
            Sql::Text(malipo_plugin_sdk::id::uuid_v4()?),
            Sql::Text(event_id.to_owned()),
            Sql::Text(template.name.to_owned()),
            Sql::Text(to),
            Sql::Text(rendered.subject),
            Sql::Text(rendered.text),
            rendered.html.map_or(Sql::Null, Sql::Text),
            Sql::Text(message_id),
            Sql::Integer(i64::try_from(ctx.now_ms).unwrap_or(i64::MAX)),
            Sql::Text(ctx.now()),
        ],
    )?;
    Ok(())
}

/// The job: sends the messages that are due.
pub fn send_due(host: &dyn Host, ctx: &Context) -> Result<Value> {
    let db = host.db();
    let now = i64::try_from(ctx.now_ms).unwrap_or(i64::MAX);
    let due = db.query(
        "SELECT id, recipient, subject, text, html, message_id, attempts FROM notifications_emails
          WHERE status = 'queued' AND next_attempt_ms <= ?1
          ORDER BY next_attempt_ms, created_at, id LIMIT ?2",
        &[Sql::Integer(now), Sql::Integer(BATCH)],
    )?;
    let (mut sent, mut retrying, mut failed, mut waiting) = (0, 0, 0, 0);
    for row in due.iter() {
        let id = row.req_text("id")?;
        let outcome = host.mail(&Outgoing {
            to: row.req_text("recipient")?,
            subject: row.req_text("subject")?,
            text: row.req_text("text")?,
            html: row.text("html"),
            message_id: row.req_text("message_id")?,
        });
        let attempts = row.req_int("attempts")?.saturating_add(1);
        let (status, next, error) = match outcome {
            MailOutcome::Sent => ("sent", now, None),
            // Nobody to hand it to: it waits, and so does the rest.
            MailOutcome::NotConfigured => {
                waiting = due.len();
                break;
            }
            MailOutcome::Rejected(error) => ("failed", now, Some(error)),
            MailOutcome::Unavailable(error) => {
                match crate::schedule::next_wait_ms(u64::try_from(attempts).unwrap_or(u64::MAX)) {
                    Some(wait) => (
                        "queued",
                        now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX)),
                        Some(error),
                    ),
                    None => ("failed", now, Some(error)),
                }
            }
        };
        match status {
            "sent" => sent += 1,
            "queued" => retrying += 1,
            _ => failed += 1,
        }
        db.execute(
            "UPDATE notifications_emails
                SET status = ?2, attempts = ?3, next_attempt_ms = ?4, last_error = ?5,
                    sent_at = CASE WHEN ?2 = 'sent' THEN ?6 ELSE sent_at END
              WHERE id = ?1",
            &[
                Sql::Text(id.to_owned()),
                Sql::Text(status.to_owned()),
                Sql::Integer(attempts),
                Sql::Integer(next),
                error.map_or(Sql::Null, |e| {
                    Sql::Text(e.chars().take(MAX_ERROR_CHARS).collect())
                }),
                Sql::Text(ctx.now()),
            ],
        )?;
    }
    Ok(json!({ "sent": sent, "retrying": retrying, "failed": failed, "waiting": waiting }))
}

fn template_json(db: &dyn Db, template: &Template, full: bool) -> Result<Value> {
    let custom = overridden(db, template.name)?;
    let mut item = Map::new();
    item.insert("name".into(), json!(template.name));
    item.insert("event".into(), json!(template.event));
    item.insert("description".into(), json!(template.description));
    item.insert("overridden".into(), json!(custom.is_some()));
    if full {
        let parts = custom.unwrap_or_else(|| defaults(template));
        item.insert("subject".into(), json!(parts.subject));
        item.insert("text".into(), json!(parts.text));
        item.insert("html".into(), json!(parts.html));
        item.insert("variables".into(), json!(variables(template)));
    }
    Ok(Value::Object(item))
}

fn named(input: &Input) -> Result<Template> {
    let name = input.req_str("name")?;
    find(name).ok_or_else(|| {
        let names: Vec<&str> = templates().iter().map(|t| t.name).collect();
        Error::validation(format!(
            "There is no template named `{name}`; the templates are {}.",
            names.join(", ")
        ))
    })
}

/// `GET /notification-templates`.
pub fn list(db: &dyn Db) -> Result<Value> {
    let items = templates()
        .iter()
        .map(|t| template_json(db, t, false))
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({ "templates": items }))
}

/// `GET /notification-templates/{name}`: the effective parts.
pub fn get(db: &dyn Db, input: &Input) -> Result<Value> {
    let template = named(input)?;
    template_json(db, &template, true)
}

/// `PUT /notification-templates/{name}` `{subject, text, html?}`: stored
/// only if every part renders with sample data.
pub fn put(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let template = named(input)?;
    let subject = input.req_str("subject")?;
    let text = input.req_str("text")?;
    let html = match input.get("html") {
        None | Some(Value::Null) => None,
        Some(_) => input.opt_str("html")?.filter(|h| !h.trim().is_empty()),
    };
    for (part, value, max) in [
        ("subject", Some(subject), MAX_SUBJECT),
        ("text", Some(text), MAX_TEXT),
        ("html", html, MAX_HTML),
    ] {
        if value.is_some_and(|v| v.len() > max) {
            return Err(Error::validation(format!(
                "`{part}` is longer than {max} bytes."
            )));
        }
    }
    if subject.trim().is_empty() || text.trim().is_empty() {
        return Err(Error::validation("`subject` and `text` must not be empty."));
    }
    let parts = Parts {
        subject: subject.to_owned(),
        text: text.to_owned(),
        html: html.map(str::to_owned),
    };
    let sample = (template.sample)();
    let vars = context(
        branding(db, &sample)?,
        Some("Main store".to_owned()),
        "evt_sample",
        template.event,
        "someone@example.com",
        &sample,
    );
    render(&parts, &vars)?;
    db.execute(
        "INSERT INTO notifications_templates (name, subject, text, html, updated_at, updated_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (name) DO UPDATE SET subject = excluded.subject, text = excluded.text,
            html = excluded.html, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        &[
            Sql::Text(template.name.to_owned()),
            Sql::Text(parts.subject),
            Sql::Text(parts.text),
            parts.html.map_or(Sql::Null, Sql::Text),
            Sql::Text(ctx.now()),
            ctx.user_id.clone().map_or(Sql::Null, Sql::Text),
        ],
    )?;
    template_json(db, &template, true)
}

/// `DELETE /notification-templates/{name}`: back to the default.
pub fn reset(db: &dyn Db, input: &Input) -> Result<Value> {
    let template = named(input)?;
    db.execute(
        "DELETE FROM notifications_templates WHERE name = ?1",
        &[Sql::Text(template.name.to_owned())],
    )?;
    template_json(db, &template, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(template: &Template) -> Value {
        let branding = json!({"display_name": "Duka Ltd", "logo_url": "https://cdn.example.com/logo.png",
                              "primary_colour": "#123456", "secondary_colour": "#F4F6F8", "contact_email": null,
                              "terminology": terminology(Some(r#"{"store": "branch", "payment": "collection"}"#))});
        context(
            branding,
            Some("Westlands".to_owned()),
            "evt_1",
            template.event,
            "a@example.com",
            &(template.sample)(),
        )
    }

    #[test]
    fn every_default_renders_with_its_sample_and_the_branding() {
        for template in templates() {
            let rendered = render(&defaults(&template), &vars(&template))
                .unwrap_or_else(|e| panic!("{}: {}", template.name, e.message));
            assert!(!rendered.subject.is_empty(), "{}", template.name);
            assert!(!rendered.subject.contains('\n'), "{}", template.name);
            let html = rendered.html.unwrap_or_default();
            assert!(html.contains("#123456"), "{}: {html}", template.name);
            assert!(html.contains("Duka Ltd"), "{}", template.name);
            assert!(
                html.contains("https://cdn.example.com/logo.png"),
                "{}",
                template.name
            );
        }
    }

    #[test]
    fn money_templates_use_the_organization_s_words() {
        let template = find("payment_receipt").expect("template");
        let rendered = render(&defaults(&template), &vars(&template)).expect("render");
        assert!(
            rendered.subject.starts_with("Collection received"),
            "{}",
            rendered.subject
        );
        assert!(
            rendered.text.contains("Branch: Westlands"),
            "{}",
            rendered.text
        );
        assert!(
            rendered
                .html
                .unwrap_or_default()
                .contains(">Branch</td><td>Westlands<"),
            "html"
        );
        assert_eq!(terminology(None)["store"], "store");
        assert_eq!(capfirst("kCB branch".to_owned()), "KCB branch");
        assert_eq!(terminology(Some("not json"))["payout"], "payout");
    }

    #[test]
    fn tokens_stand_on_their_own_line_in_the_text() {
        for name in ["invitation", "password_reset"] {
            let template = find(name).expect("template");
            let rendered = render(&defaults(&template), &vars(&template)).expect("render");
            let token = (template.sample)()["token"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            assert!(
                rendered.text.lines().any(|l| l.trim() == token),
                "{}",
                rendered.text
            );
        }
    }

    #[test]
    fn a_syntax_error_names_the_part() {
        let parts = Parts {
            subject: "Hi {{ data.amount".into(),
            text: "ok".into(),
            html: None,
        };
        let error = render(&parts, &json!({})).expect_err("syntax error");
        assert_eq!(error.code, "validation_failed");
        assert!(error.message.starts_with("subject:"), "{}", error.message);
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let parts = Parts {
            subject: "x".into(),
            text:
                "{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}"
                    .into(),
            html: None,
        };
        assert!(render(&parts, &json!({})).is_err());
    }
}
