//! Request-field validation the way Daraja does it: numbers accepted as JSON numbers or strings,
//! and every violation reported as `400.002.02 Bad Request - Invalid <Field>`.

use serde_json::{Map, Value};
use time::PrimitiveDateTime;
use time::macros::format_description;

use crate::config::UrlRules;
use crate::error::ApiError;

/// Read-only view over a JSON request object.
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
}

/// Result of field validation.
pub type FieldResult<T> = Result<T, ApiError>;

impl<'a> Fields<'a> {
    /// Wraps an object.
    pub fn new(obj: &'a Map<String, Value>) -> Self {
        Fields { obj }
    }

    /// Raw value.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    /// Text of a string or number field; `None` if absent, null, or an empty string.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::String(s) => {
                let t = s.trim();
                (!t.is_empty()).then(|| t.to_owned())
            }
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Required free-text field.
    pub fn required(&self, name: &str) -> FieldResult<String> {
        self.text(name).ok_or_else(|| ApiError::invalid(name))
    }

    /// Required text of length `min..=max` characters.
    pub fn text_len(&self, name: &str, min: usize, max: usize) -> FieldResult<String> {
        let t = self.required(name)?;
        let n = t.chars().count();
        if n < min || n > max {
            return Err(ApiError::invalid(name));
        }
        Ok(t)
    }

    /// Digits-only identifier (number, or string of digits) with `min..=max` digits.
    pub fn digits(&self, name: &str, min: usize, max: usize) -> FieldResult<String> {
        let s = match self.get(name) {
            Some(Value::Number(n)) => n.as_u64().map(|v| v.to_string()),
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            _ => None,
        }
        .ok_or_else(|| ApiError::invalid(name))?;
        if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid(name));
        }
        Ok(s)
    }

    /// Shortcode: 5 to 7 digits.
    pub fn shortcode(&self, name: &str) -> FieldResult<String> {
        self.digits(name, 5, 7)
    }

    /// Safaricom MSISDN `^254(7|1)\d{8}$`, number or string.
    pub fn phone(&self, name: &str) -> FieldResult<String> {
        let s = self.digits(name, 12, 12)?;
        if is_msisdn(&s) {
            Ok(s)
        } else {
            Err(ApiError::invalid(name))
        }
    }

    /// Whole positive amount (number or string; `10`, `"10"`, `10.0` accepted) — range checked by caller.
    pub fn whole_amount(&self, name: &str) -> FieldResult<u64> {
        let parsed = match self.get(name) {
            Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().and_then(whole)),
            Some(Value::String(s)) => {
                let t = s.trim();
                t.parse::<u64>()
                    .ok()
                    .or_else(|| t.parse::<f64>().ok().and_then(whole))
            }
            _ => None,
        };
        match parsed {
            Some(a) if a >= 1 => Ok(a),
            _ => Err(ApiError::invalid(name)),
        }
    }

    /// Whole amount within `min..=max`.
    pub fn amount(&self, name: &str, min: u64, max: u64) -> FieldResult<u64> {
        let a = self.whole_amount(name)?;
        if a < min || a > max {
            Err(ApiError::invalid(name))
        } else {
            Ok(a)
        }
    }

    /// `YYYYMMDDHHmmss` timestamp forming a real date and time.
    pub fn timestamp(&self, name: &str) -> FieldResult<String> {
        let t = self.digits(name, 14, 14)?;
        PrimitiveDateTime::parse(
            &t,
            format_description!("[year][month][day][hour][minute][second]"),
        )
        .map_err(|_| ApiError::invalid(name))?;
        Ok(t)
    }

    /// Field whose value must be one of `allowed` (exact, case-sensitive).
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> FieldResult<String> {
        let t = self.required(name)?;
        if allowed.contains(&t.as_str()) {
            Ok(t)
        } else {
            Err(ApiError::invalid(name))
        }
    }

    /// Callback URL checked against `rules`.
    pub fn url(&self, name: &str, rules: &UrlRules) -> FieldResult<String> {
        let t = self.required(name)?;
        if url_ok(&t, rules) {
            Ok(t)
        } else {
            Err(ApiError::invalid(name))
        }
    }
}

fn whole(f: f64) -> Option<u64> {
    (f.is_finite() && f >= 1.0 && f.fract() == 0.0 && f <= 1e15).then_some(f as u64)
}

/// `^254(7|1)\d{8}$`.
pub fn is_msisdn(s: &str) -> bool {
    s.len() == 12
        && s.starts_with("254")
        && matches!(s.as_bytes()[3], b'7' | b'1')
        && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `raw` is an absolute http(s) URL acceptable under `rules`.
pub fn url_ok(raw: &str, rules: &UrlRules) -> bool {
    if raw.chars().any(char::is_whitespace) {
        return false;
    }
    let Ok(url) = reqwest::Url::parse(raw) else {
        return false;
    };
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => !rules.require_https,
        _ => false,
    };
    if !scheme_ok || url.host_str().is_none_or(str::is_empty) {
        return false;
    }
    if rules.reject_uppercase_host && raw_host(raw).chars().any(|c| c.is_ascii_uppercase()) {
        return false;
    }
    let lower = raw.to_ascii_lowercase();
    !rules
        .forbidden_keywords
        .iter()
        .any(|k| !k.is_empty() && lower.contains(&k.to_ascii_lowercase()))
}

/// Host part of a URL as written (before the parser lowercases it).
fn raw_host(raw: &str) -> &str {
    let rest = raw.split_once("://").map_or(raw, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port.split(':').next().unwrap_or(host_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msisdn_rule() {
        assert!(is_msisdn("254708374149"));
        assert!(is_msisdn("254112345678"));
        assert!(!is_msisdn("254612345678"));
        assert!(!is_msisdn("0708374149"));
        assert!(!is_msisdn("2547083741490"));
    }

    #[test]
    fn url_rules() {
        let r = UrlRules::default();
        assert!(url_ok("https://example.invalid/cb/x", &r));
        assert!(url_ok("http://127.0.0.1:8080/cb", &r));
        assert!(!url_ok("https://Example.com/cb", &r));
        assert!(url_ok("https://example.com/Path", &r));
        assert!(!url_ok("ftp://example.com/cb", &r));
        assert!(!url_ok("not a url", &r));
        let c2b = UrlRules::c2b_documented();
        assert!(!url_ok("https://example.com/mpesa/confirm", &c2b));
        assert!(url_ok("https://example.com/c2b/confirm", &c2b));
    }

    #[test]
    fn amounts() {
        let v: Value = serde_json::json!({"a": 10, "b": "10", "c": 10.0, "d": 1.5, "e": "x", "f": 0, "g": "2.0"});
        let Value::Object(m) = v else {
            panic!("object")
        };
        let f = Fields::new(&m);
        assert_eq!(f.whole_amount("a").expect("a"), 10);
        assert_eq!(f.whole_amount("b").expect("b"), 10);
        assert_eq!(f.whole_amount("c").expect("c"), 10);
        assert_eq!(f.whole_amount("g").expect("g"), 2);
        assert!(f.whole_amount("d").is_err());
        assert!(f.whole_amount("e").is_err());
        assert!(f.whole_amount("f").is_err());
        assert!(f.whole_amount("missing").is_err());
    }
}
