//! `/tenant/branding`: how the organization presents itself in the email
//! its plugins send (display name, logo, colours) and where its own
//! notifications go (`contact_email`), and the words it uses for things
//! (`terminology`, e.g. "branch" for "store"). One row in the tenant's
//! `branding` table, which plugins may declare in `read-tables`.

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Op, Operation};
use crate::error::{ApiError, blocking};
use crate::resources::support::{audited_write, email, tenant_read};
use crate::time_util::now_rfc3339;

/// Longest display name, in characters.
const MAX_NAME_CHARS: usize = 120;
/// Longest logo URL, in bytes.
const MAX_URL_LEN: usize = 500;

/// The fields a `PUT` takes, in column order.
const FIELDS: [&str; 5] = [
    "display_name",
    "logo_url",
    "primary_colour",
    "secondary_colour",
    "contact_email",
];

/// The words an organization may rename, and the default of each.
pub const TERMS: &[(&str, &str)] = &[
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
/// Longest replacement word, in characters.
const MAX_TERM_CHARS: usize = 30;

/// The schema of `terminology`.
fn terminology_schema(nullable: bool) -> Value {
    let properties: serde_json::Map<String, Value> = TERMS
        .iter()
        .map(|(term, default)| {
            let schema = json!({"type": "string", "minLength": 1, "maxLength": MAX_TERM_CHARS,
                                "description": format!("Default: \"{default}\".")});
            ((*term).to_string(), schema)
        })
        .collect();
    let ty = if nullable {
        json!(["object", "null"])
    } else {
        json!("object")
    };
    json!({"type": ty, "additionalProperties": false, "properties": properties,
           "description": "Words the organization uses instead of the defaults, e.g. {\"store\": \"branch\", \"stores\": \"branches\"}: email templates (`term.store`) and the dashboard show them."})
}

/// Checks `terminology`: known words only, each replaced by 1 to 30
/// characters without control characters. Answers the object to store
/// (`None` when empty).
fn terminology(value: Option<&Value>) -> Result<Option<String>, ApiError> {
    let object = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(ApiError::Validation(
                "`terminology` must be an object of words".into(),
            ));
        }
    };
    let mut checked = serde_json::Map::new();
    for (term, word) in object {
        if !TERMS.iter().any(|(known, _)| known == term) {
            let known: Vec<&str> = TERMS.iter().map(|(t, _)| *t).collect();
            return Err(ApiError::Validation(format!(
                "`terminology.{term}` is not a word that can be renamed; they are {}",
                known.join(", ")
            )));
        }
        let word = word.as_str().map(str::trim).unwrap_or("");
        let count = word.chars().count();
        if count == 0 || count > MAX_TERM_CHARS || word.chars().any(char::is_control) {
            return Err(ApiError::Validation(format!(
                "`terminology.{term}` must be 1 to {MAX_TERM_CHARS} characters without control characters"
            )));
        }
        checked.insert(term.clone(), json!(word));
    }
    Ok((!checked.is_empty()).then(|| Value::Object(checked).to_string()))
}

/// The stored terminology as an object (`{}` when none).
fn stored_terminology(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// Every word with the organization's replacement or its default.
pub fn effective_terminology(stored: &Value) -> Value {
    let words: serde_json::Map<String, Value> = TERMS
        .iter()
        .map(|(term, default)| {
            let word = stored.get(*term).and_then(Value::as_str).unwrap_or(default);
            ((*term).to_string(), json!(word))
        })
        .collect();
    Value::Object(words)
}

/// The input schema of `PUT /tenant/branding`.
pub fn input_schema() -> Value {
    let text = |description: &str| json!({"type": ["string", "null"], "description": description});
    json!({"type": "object", "properties": {
        "terminology": terminology_schema(true),
        "display_name": text("The name email shows (1 to 120 characters); default: the organization's name."),
        "logo_url": text("An http(s) URL of the logo shown at the top of email (at most 500 characters)."),
        "primary_colour": text("`#RRGGBB`, e.g. `#0A7E3C`."),
        "secondary_colour": text("`#RRGGBB`."),
        "contact_email": text("Where the organization's own notifications (receipts, invoices) go; default: its earliest member.")
    }})
}

/// The output schema of both operations.
pub fn output_schema() -> Value {
    let text = json!({"type": ["string", "null"]});
    json!({"type": "object", "properties": {
        "display_name": text, "logo_url": text, "primary_colour": text,
        "secondary_colour": text, "contact_email": text, "updated_at": text,
        "terminology": terminology_schema(false)
    }})
}

fn colour(value: &str, field: &str) -> Result<String, ApiError> {
    let hex = value.strip_prefix('#').unwrap_or("");
    if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(format!("#{}", hex.to_uppercase()))
    } else {
        Err(ApiError::Validation(format!(
            "`{field}` must be a colour written `#RRGGBB`"
        )))
    }
}

fn logo_url(value: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::Validation(format!(
            "`logo_url` must be an http(s) URL of at most {MAX_URL_LEN} characters"
        ))
    };
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(invalid)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let clean = !value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\'));
    if value.len() <= MAX_URL_LEN && host_ok && clean {
        Ok(value.to_string())
    } else {
        Err(invalid())
    }
}

fn display_name(value: &str) -> Result<String, ApiError> {
    let count = value.chars().count();
    if count == 0 || count > MAX_NAME_CHARS || value.chars().any(char::is_control) {
        return Err(ApiError::Validation(format!(
            "`display_name` must be 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(value.to_string())
}

/// One validated field of the input: `None` when absent, null or blank.
fn field(call: &HostCall, name: &str) -> Result<Option<String>, ApiError> {
    let Some(raw) = call.opt_str_field(name)? else {
        return Ok(None);
    };
    let value = raw.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let checked = match name {
        "display_name" => display_name(value)?,
        "logo_url" => logo_url(value)?,
        "primary_colour" | "secondary_colour" => colour(value, name)?,
        "contact_email" => email(value)
            .map_err(|_| ApiError::Validation("`contact_email` must be an email address".into()))?,
        _ => value.to_string(),
    };
    Ok(Some(checked))
}

/// The branding row (every field null and `terminology` `{}` until set).
pub fn read(conn: &rusqlite::Connection) -> Result<Value, ApiError> {
    let row = conn
        .query_row(
            "SELECT display_name, logo_url, primary_colour, secondary_colour, contact_email, updated_at,
                    terminology
               FROM branding WHERE id = 1",
            [],
            |row| {
                Ok(json!({
                    "display_name": row.get::<_, Option<String>>(0)?,
                    "logo_url": row.get::<_, Option<String>>(1)?,
                    "primary_colour": row.get::<_, Option<String>>(2)?,
                    "secondary_colour": row.get::<_, Option<String>>(3)?,
                    "contact_email": row.get::<_, Option<String>>(4)?,
                    "updated_at": row.get::<_, Option<String>>(5)?,
                    "terminology": stored_terminology(row.get::<_, Option<String>>(6)?),
                }))
            },
        )
        .optional()?;
    Ok(row.unwrap_or_else(|| {
        let mut empty = serde_json::Map::new();
        for name in FIELDS.iter().chain(["updated_at"].iter()) {
            empty.insert((*name).to_string(), Value::Null);
        }
        empty.insert("terminology".into(), json!({}));
        Value::Object(empty)
    }))
}

/// `GET /tenant/branding`: the branding, every field null until set.
pub async fn get(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    tenant_read(state, &call, read).await
}

/// `PUT /tenant/branding`: replaces the branding (a field left out or
/// blank is cleared).
pub async fn put(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?.clone();
    let tenant = principal.tenant()?;
    let mut values = Vec::with_capacity(FIELDS.len());
    for name in FIELDS {
        values.push(field(&call, name)?);
    }
    let terms = terminology(call.input.get("terminology"))?;
    let entry = call.audit.clone();
    let audited = Arc::clone(&call.audited);
    blocking(move || {
        audited_write(&state, tenant, entry, &audited, |tx, _| {
            tx.execute(
                "INSERT INTO branding (id, display_name, logo_url, primary_colour, secondary_colour,
                                       contact_email, updated_at, updated_by, terminology)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET
                    display_name = excluded.display_name, logo_url = excluded.logo_url,
                    primary_colour = excluded.primary_colour,
                    secondary_colour = excluded.secondary_colour,
                    contact_email = excluded.contact_email, updated_at = excluded.updated_at,
                    updated_by = excluded.updated_by, terminology = excluded.terminology",
                params![
                    values[0],
                    values[1],
                    values[2],
                    values[3],
                    values[4],
                    now_rfc3339(),
                    principal.user_id.to_string(),
                    terms
                ],
            )?;
            read(tx)
        })
    })
    .await
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    vec![
        Op::get("/tenant/branding", "tenant.branding.get")
            .summary("The organization's email branding: display name, logo, colours and the contact address its own notifications go to.")
            .output(output_schema())
            .handle(get),
        Op::put("/tenant/branding", "tenant.branding.update")
            .permission("settings.manage")
            .summary("Replace the organization's email branding (a field left out or blank is cleared).")
            .input(input_schema())
            .output(output_schema())
            .handle(put),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_urls_and_names_are_checked() {
        assert_eq!(colour("#0a7e3c", "c").ok().as_deref(), Some("#0A7E3C"));
        assert!(colour("0A7E3C", "c").is_err());
        assert!(colour("#0A7E3", "c").is_err());
        assert!(colour("#GGGGGG", "c").is_err());
        assert!(logo_url("https://cdn.example.com/logo.png").is_ok());
        assert!(logo_url("javascript:alert(1)").is_err());
        assert!(logo_url("https://").is_err());
        assert!(logo_url("https://example.com/a\"onerror=x").is_err());
        assert!(logo_url(&format!("https://example.com/{}", "a".repeat(600))).is_err());
        assert!(display_name(&"x".repeat(121)).is_err());
        assert!(display_name("Duka La Mama").is_ok());
    }

    #[test]
    fn terminology_takes_known_words_only() {
        let stored = terminology(Some(&json!({"store": " branch ", "stores": "branches"})))
            .expect("valid")
            .expect("some");
        let effective = effective_terminology(&stored_terminology(Some(stored)));
        assert_eq!(effective["store"], "branch");
        assert_eq!(effective["payment"], "payment");
        assert!(terminology(Some(&json!({"shop": "duka"}))).is_err());
        assert!(terminology(Some(&json!({"store": ""}))).is_err());
        assert!(terminology(Some(&json!({"store": "a\u{7}b"}))).is_err());
        assert!(terminology(Some(&json!({"store": "x".repeat(31)}))).is_err());
        assert_eq!(terminology(Some(&json!({}))).ok(), Some(None));
    }
}
