//! JSON values with Daraja's exact number formatting: `1.00`-style two-decimal amounts and
//! 14-digit numeric dates, emitted verbatim through `serde_json::value::RawValue`.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::config::Code;

/// A callback value: string, integer or a pre-formatted JSON number.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Val {
    /// JSON string.
    Str(String),
    /// JSON integer.
    Int(i64),
    /// JSON number emitted verbatim (e.g. `1.00`).
    Raw(Box<RawValue>),
}

impl Val {
    /// String value.
    pub fn s(v: impl Into<String>) -> Val {
        Val::Str(v.into())
    }

    /// Amount in cents as a two-decimal JSON number: `100` → `1.00`, `-198000` → `-1980.00`.
    pub fn dec(cents: i64) -> Val {
        let text = cents_text(cents);
        match RawValue::from_string(text) {
            Ok(raw) => Val::Raw(raw),
            Err(_) => Val::Int(cents / 100),
        }
    }

    /// A result code: numbers as JSON numbers, text as strings.
    pub fn code(code: &Code) -> Val {
        match code {
            Code::Num(n) => Val::Int(*n),
            Code::Text(t) => Val::Str(t.clone()),
        }
    }
}

/// `12345` cents → `"123.45"`.
pub fn cents_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `{"Name":…,"Value":…}` STK callback metadata item.
#[derive(Clone, Debug, Serialize)]
pub struct Item {
    /// Item name.
    #[serde(rename = "Name")]
    pub name: &'static str,
    /// Item value (absent for e.g. `Balance`).
    #[serde(rename = "Value", skip_serializing_if = "Option::is_none")]
    pub value: Option<Val>,
}

/// `{"Key":…,"Value":…}` result parameter / reference item.
#[derive(Clone, Debug, Serialize)]
pub struct KeyVal {
    /// Key.
    #[serde(rename = "Key")]
    pub key: String,
    /// Value (Daraja omits it for empty items such as `TransactionReason`).
    #[serde(rename = "Value", skip_serializing_if = "Option::is_none")]
    pub value: Option<Val>,
}

impl KeyVal {
    /// Item with a value.
    pub fn new(key: &str, value: Val) -> KeyVal {
        KeyVal {
            key: key.to_owned(),
            value: Some(value),
        }
    }

    /// Item without a value.
    pub fn bare(key: &str) -> KeyVal {
        KeyVal {
            key: key.to_owned(),
            value: None,
        }
    }
}
