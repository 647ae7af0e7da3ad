//! The registry of an organization's typed settings: every key, its type,
//! default, rule and description, once. `GET/PATCH /tenant/settings`
//! (`resources::settings`) read and write them through it, and its OpenAPI
//! schema is made from it. Values live as JSON in the tenant's `settings`
//! table (tenant migration V7); a key without a row has its default.

use std::str::FromStr;

use rusqlite::Connection;
use serde_json::{Map, Value, json};

/// What a setting's value may be.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// An IANA time zone name, e.g. `Africa/Nairobi`.
    TimeZone,
    /// Printable text of `min..=max` characters.
    Text {
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
    },
    /// `true` or `false`.
    Bool,
}

/// One setting.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The key, e.g. `timezone`.
    pub key: &'static str,
    /// Its type and rule.
    pub kind: Kind,
    /// The default, as JSON text.
    pub default: &'static str,
    /// What it does.
    pub description: &'static str,
}

/// The locales the dashboard and email may use.
pub const LOCALES: &[&str] = &["en-KE", "sw-KE", "en-US", "en-GB"];

/// Every setting.
pub const REGISTRY: &[Setting] = &[
    Setting {
        key: "currency_display",
        kind: Kind::OneOf(&["code", "symbol"]),
        default: r#""code""#,
        description: "How amounts are shown: `code` → \"KES 1,250.00\", `symbol` → \"KSh 1,250.00\".",
    },
    Setting {
        key: "timezone",
        kind: Kind::TimeZone,
        default: r#""Africa/Nairobi""#,
        description: "The IANA time zone dates are shown in, e.g. `Africa/Nairobi`.",
    },
    Setting {
        key: "locale",
        kind: Kind::OneOf(LOCALES),
        default: r#""en-KE""#,
        description: "The language and number format of the dashboard: en-KE, sw-KE, en-US or en-GB.",
    },
    Setting {
        key: "payments.account_reference",
        kind: Kind::Text { min: 1, max: 12 },
        default: r#""Malipo""#,
        description: "The `AccountReference` (1 to 12 characters, Daraja's limit) an STK push uses when the request gives none; the customer sees it.",
    },
    Setting {
        key: "payments.transaction_desc",
        kind: Kind::Text { min: 1, max: 13 },
        default: r#""Payment""#,
        description: "The `TransactionDesc` (1 to 13 characters, Daraja's limit) an STK push uses when the request gives none.",
    },
    Setting {
        key: "payments.receipt_emails",
        kind: Kind::Bool,
        default: "true",
        description: "Whether the organization is emailed a receipt for every payment received (`payment_receipt`).",
    },
];

/// A setting by key.
pub fn find(key: &str) -> Option<&'static Setting> {
    REGISTRY.iter().find(|s| s.key == key)
}

impl Setting {
    /// The default value.
    pub fn default_value(&self) -> Value {
        serde_json::from_str(self.default).unwrap_or(Value::Null)
    }

    /// Checks a value; the error says what the key takes.
    pub fn check(&self, value: &Value) -> Result<Value, String> {
        let key = self.key;
        match self.kind {
            Kind::OneOf(choices) => match value.as_str() {
                Some(text) if choices.contains(&text) => Ok(json!(text)),
                _ => Err(format!("`{key}` must be one of {}", choices.join(", "))),
            },
            Kind::TimeZone => match value.as_str() {
                Some(text) if chrono_tz::Tz::from_str(text).is_ok() => Ok(json!(text)),
                _ => Err(format!(
                    "`{key}` must be an IANA time zone name, e.g. Africa/Nairobi"
                )),
            },
            Kind::Text { min, max } => match value.as_str() {
                Some(text)
                    if (min..=max).contains(&text.chars().count())
                        && !text.chars().any(char::is_control)
                        && text.trim() == text =>
                {
                    Ok(json!(text))
                }
                _ => Err(format!(
                    "`{key}` must be {min} to {max} printable characters without surrounding spaces"
                )),
            },
            Kind::Bool => match value {
                Value::Bool(flag) => Ok(json!(flag)),
                _ => Err(format!("`{key}` must be true or false")),
            },
        }
    }

    /// The JSON Schema of the value.
    pub fn schema(&self) -> Value {
        let mut schema = match self.kind {
            Kind::OneOf(choices) => json!({"type": "string", "enum": choices}),
            Kind::TimeZone => json!({"type": "string"}),
            Kind::Text { min, max } => {
                json!({"type": "string", "minLength": min, "maxLength": max})
            }
            Kind::Bool => json!({"type": "boolean"}),
        };
        schema["description"] = json!(self.description);
        schema["default"] = self.default_value();
        schema
    }
}

/// Every key's effective value: the stored one, else the default. A
/// stored value that no longer passes its rule (or a key no longer in the
/// registry) is ignored.
pub fn effective(conn: &Connection) -> rusqlite::Result<Map<String, Value>> {
    let mut stored = conn.prepare("SELECT key, value FROM settings")?;
    let rows = stored.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut values: Map<String, Value> = REGISTRY
        .iter()
        .map(|s| (s.key.to_string(), s.default_value()))
        .collect();
    for row in rows {
        let (key, text) = row?;
        let Some(setting) = find(&key) else { continue };
        if let Some(value) = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| setting.check(&v).ok())
        {
            values.insert(key, value);
        }
    }
    Ok(values)
}

/// A checked change: set a key, or reset it to its default.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Store this value.
    Set(&'static str, Value),
    /// Remove the stored value.
    Reset(&'static str),
}

/// Checks every key of a partial update before anything is written: an
/// unknown key or a wrong value is an error naming the key.
pub fn changes(patch: &Map<String, Value>) -> Result<Vec<Change>, String> {
    let mut out = Vec::with_capacity(patch.len());
    for (key, value) in patch {
        let setting = find(key).ok_or_else(|| {
            let keys: Vec<&str> = REGISTRY.iter().map(|s| s.key).collect();
            format!(
                "`{key}` is not a setting; the settings are {}",
                keys.join(", ")
            )
        })?;
        out.push(match value {
            Value::Null => Change::Reset(setting.key),
            value => Change::Set(setting.key, setting.check(value)?),
        });
    }
    Ok(out)
}

/// Applies checked changes (inside the caller's transaction).
pub fn apply(conn: &Connection, changes: &[Change], now: &str, by: &str) -> rusqlite::Result<()> {
    for change in changes {
        match change {
            Change::Set(key, value) => conn.execute(
                "INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                    updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                rusqlite::params![key, value.to_string(), now, by],
            )?,
            Change::Reset(key) => conn.execute("DELETE FROM settings WHERE key = ?1", [key])?,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_passes_its_own_rule() {
        for setting in REGISTRY {
            assert!(
                setting.check(&setting.default_value()).is_ok(),
                "{}",
                setting.key
            );
        }
    }

    #[test]
    fn values_are_checked_by_kind() {
        let tz = find("timezone").expect("timezone");
        assert!(tz.check(&json!("Europe/London")).is_ok());
        assert!(tz.check(&json!("Mars/Olympus")).is_err());
        let reference = find("payments.account_reference").expect("reference");
        assert!(reference.check(&json!("INV1234")).is_ok());
        assert!(reference.check(&json!("thirteen char")).is_err());
        assert!(reference.check(&json!("")).is_err());
        assert!(
            find("payments.receipt_emails")
                .expect("receipts")
                .check(&json!("yes"))
                .is_err()
        );
        assert!(
            find("locale")
                .expect("locale")
                .check(&json!("fr-FR"))
                .is_err()
        );
    }

    #[test]
    fn a_patch_is_refused_whole_for_one_bad_key() {
        let patch = json!({"locale": "sw-KE", "colour": "red"});
        let error = changes(patch.as_object().expect("object")).expect_err("unknown key");
        assert!(error.contains("`colour`"), "{error}");
        let patch = json!({"locale": "sw-KE", "timezone": null});
        assert_eq!(
            changes(patch.as_object().expect("object")),
            Ok(vec![
                Change::Set("locale", json!("sw-KE")),
                Change::Reset("timezone")
            ])
        );
    }
}
