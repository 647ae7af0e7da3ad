//! Input checks shared by the operations: phone numbers, amounts, bounded texts, URLs, shortcodes and idempotency keys.

use malipo_plugin_sdk::{Error, Input, Result};
use serde_json::Value;

/// Normalises a Kenyan mobile number to `2547XXXXXXXX` / `2541XXXXXXXX`.
/// Accepts `07…`/`01…` (10 digits), `7…`/`1…` (9 digits), `2547…`/`2541…`
/// and `+2547…`/`+2541…`, ignoring spaces and hyphens. None if it is not one.
pub fn normalize_phone(text: &str) -> Option<String> {
    let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = compact.strip_prefix('+').unwrap_or(&compact);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A leading `+` only goes with the country code.
    if compact.starts_with('+') && !digits.starts_with("254") {
        return None;
    }
    let subscriber = match digits.len() {
        12 => digits.strip_prefix("254")?,
        10 => digits.strip_prefix('0')?,
        9 => digits,
        _ => return None,
    };
    matches!(subscriber.as_bytes().first(), Some(b'7' | b'1')).then(|| format!("254{subscriber}"))
}

/// A required phone number field, normalised; 422 naming the field otherwise.
pub fn phone_field(value: Option<&Value>, field: &str) -> Result<String> {
    match value.filter(|v| !v.is_null()) {
        None => Err(Error::validation(format!("`{field}` is required."))),
        Some(Value::String(s)) => normalize_phone(s).ok_or_else(|| {
            Error::validation(format!(
                "`{field}` must be a Safaricom mobile number such as 0712345678, 712345678, \
                 254712345678 or +254712345678."
            ))
        }),
        Some(Value::Number(n)) => normalize_phone(&n.to_string()).ok_or_else(|| {
            Error::validation(format!(
                "`{field}` must be a Safaricom mobile number such as 254712345678."
            ))
        }),
        Some(_) => Err(Error::validation(format!("`{field}` must be a string."))),
    }
}

/// A required whole amount in `min..=max` shillings, given as a JSON
/// integer or a string of digits; 422 naming the field otherwise.
pub fn amount_field(value: Option<&Value>, field: &str, min: i64, max: i64) -> Result<i64> {
    let out_of_range = || {
        Error::validation(format!(
            "`{field}` must be a whole number of shillings from {min} to {max}."
        ))
    };
    let amount = match value.filter(|v| !v.is_null()) {
        None => return Err(Error::validation(format!("`{field}` is required."))),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(out_of_range)?,
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(out_of_range());
            }
            s.parse::<i64>().map_err(|_| out_of_range())?
        }
        Some(_) => return Err(out_of_range()),
    };
    if (min..=max).contains(&amount) {
        Ok(amount)
    } else {
        Err(out_of_range())
    }
}

/// A required text of `min..=max` characters after trimming.
pub fn text_field<'a>(input: &'a Input, field: &str, min: usize, max: usize) -> Result<&'a str> {
    let text = input.opt_str(field)?.map(str::trim).unwrap_or_default();
    check_len(text, field, min, max)
}

/// An optional text of `min..=max` characters after trimming (blank counts as absent).
pub fn opt_text_field<'a>(
    input: &'a Input,
    field: &str,
    min: usize,
    max: usize,
) -> Result<Option<&'a str>> {
    match input.opt_trimmed(field)? {
        None => Ok(None),
        Some(text) => check_len(text, field, min, max).map(Some),
    }
}

/// Checks the length of a trimmed text (in characters) and that it has no control characters.
pub fn check_len<'a>(text: &'a str, field: &str, min: usize, max: usize) -> Result<&'a str> {
    let len = text.chars().count();
    if len == 0 && min > 0 {
        return Err(Error::validation(format!(
            "`{field}` is required and must not be blank."
        )));
    }
    if len < min || len > max {
        return Err(Error::validation(format!(
            "`{field}` must be {min} to {max} characters long."
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::validation(format!(
            "`{field}` must not contain control characters."
        )));
    }
    Ok(text)
}

/// A Daraja shortcode: 5 to 7 digits.
pub fn is_shortcode(text: &str) -> bool {
    (5..=7).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

/// An absolute `http`/`https` URL with a host and no query, fragment,
/// credentials or whitespace; answered without a trailing slash.
pub fn base_url(text: &str) -> Option<String> {
    let text = text.trim();
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))?;
    if text.len() > 300 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    if rest.contains(['?', '#', '@', '\\']) {
        return None;
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return None;
    }
    if let Some((_, port)) = authority.rsplit_once(':')
        && !authority.ends_with(']')
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some(text.trim_end_matches('/').to_owned())
}

/// The optional `idempotency_key` (the host copies the `Idempotency-Key`
/// header into it): 1 to 255 visible ASCII characters.
pub fn idempotency_key(input: &Input) -> Result<Option<&str>> {
    let Some(key) = input.opt_trimmed("idempotency_key")? else {
        return Ok(None);
    };
    if key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::validation(
            "`idempotency_key` (the Idempotency-Key header) must be 1 to 255 visible ASCII characters.",
        ));
    }
    Ok(Some(key))
}

/// An optional id-like string field (path parameter, transaction id, store id).
pub fn opt_id<'a>(input: &'a Input, field: &str) -> Result<Option<&'a str>> {
    let value = input.opt_trimmed(field)?;
    if let Some(id) = value
        && (id.len() > 128 || id.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(Error::validation(format!("`{field}` is not a valid id.")));
    }
    Ok(value)
}

/// An optional M-Pesa receipt number (`TransactionID` at Daraja): 10
/// upper-case letters and digits, with at least one letter (e.g.
/// `QKJ4G7XYZ1`). Checked before anything is sent to Daraja, so a typo is
/// a 422, not a 502 from Safaricom.
pub fn opt_receipt<'a>(input: &'a Input, field: &str) -> Result<Option<&'a str>> {
    let value = input.opt_trimmed(field)?;
    if let Some(receipt) = value
        && !is_receipt(receipt)
    {
        return Err(Error::validation(format!(
            "`{field}` must be an M-Pesa receipt number: 10 upper-case letters and digits, e.g. QKJ4G7XYZ1."
        )));
    }
    Ok(value)
}

/// Whether `text` has the shape of an M-Pesa receipt number.
pub fn is_receipt(text: &str) -> bool {
    text.len() == 10
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && text.bytes().any(|b| b.is_ascii_uppercase())
}

/// Whether `text` is a UUID as this plugin writes them (hyphenated, 36 characters).
pub fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// A required id-like string field.
pub fn req_id<'a>(input: &'a Input, field: &str) -> Result<&'a str> {
    opt_id(input, field)?.ok_or_else(|| Error::validation(format!("`{field}` is required.")))
}

/// One of `choices`, or 422 listing them.
pub fn one_of<'a>(value: &str, field: &str, choices: &[&'a str]) -> Result<&'a str> {
    choices
        .iter()
        .find(|c| **c == value)
        .copied()
        .ok_or_else(|| {
            Error::validation(format!("`{field}` must be one of: {}.", choices.join(", ")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalises_phones() {
        for (given, want) in [
            ("0712345678", "254712345678"),
            ("712345678", "254712345678"),
            ("+254712345678", "254712345678"),
            ("254712345678", "254712345678"),
            ("0112345678", "254112345678"),
            ("2541 1234-5678", "254112345678"),
            ("+254 712 345 678", "254712345678"),
        ] {
            assert_eq!(normalize_phone(given).as_deref(), Some(want), "{given}");
        }
        for bad in [
            "",
            "07123",
            "0812345678",
            "255712345678",
            "+0712345678",
            "07123456789",
            "07l2345678",
            "+",
            "254812345678",
        ] {
            assert_eq!(normalize_phone(bad), None, "{bad}");
        }
    }

    #[test]
    fn checks_amounts() {
        let check = |v: Value| amount_field(Some(&v), "amount", 1, 250_000);
        assert_eq!(check(json!(1)), Ok(1));
        assert_eq!(check(json!(250_000)), Ok(250_000));
        assert_eq!(check(json!("100")), Ok(100));
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!(250_001),
            json!("abc"),
            json!("1.5"),
            json!(""),
            json!(true),
        ] {
            assert_eq!(
                check(bad.clone()).map_err(|e| e.code),
                Err(Error::VALIDATION_FAILED),
                "{bad}"
            );
        }
        assert!(amount_field(None, "amount", 1, 2).is_err());
    }

    #[test]
    fn checks_urls() {
        assert_eq!(
            base_url("http://127.0.0.1:8081/").as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(
            base_url("https://daraja.example.com/api").as_deref(),
            Some("https://daraja.example.com/api")
        );
        for bad in [
            "ftp://x",
            "https://",
            "http://a b",
            "https://u:p@h",
            "https://h:abc",
            "https://h?x=1",
            "example.com",
        ] {
            assert_eq!(base_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn checks_shortcodes() {
        assert!(is_shortcode("174379"));
        assert!(is_shortcode("60000"));
        assert!(!is_shortcode("1234"));
        assert!(!is_shortcode("12345678"));
        assert!(!is_shortcode("17437a"));
    }
}
