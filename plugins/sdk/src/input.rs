//! The operation input: one JSON object of path parameters, query parameters and body fields.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The merged input object of an operation, with typed accessors that
/// answer `validation_failed` when a field has the wrong shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Input(Map<String, Value>);

impl Input {
    /// Parses the input text; an empty text is an empty object.
    pub fn parse(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(Error::bad_request("The input must be a JSON object.")),
            Err(err) => Err(Error::bad_request(format!(
                "The input is not valid JSON: {err}"
            ))),
        }
    }

    /// The whole input object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The raw value of `key`, treating JSON null as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// An optional string field.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::validation(format!("`{key}` must be a string."))),
        }
    }

    /// A required string field.
    pub fn req_str(&self, key: &str) -> Result<&str> {
        self.opt_str(key)?
            .ok_or_else(|| Error::validation(format!("`{key}` is required.")))
    }

    /// An optional string field, trimmed; blank counts as absent.
    pub fn opt_trimmed(&self, key: &str) -> Result<Option<&str>> {
        Ok(self.opt_str(key)?.map(str::trim).filter(|s| !s.is_empty()))
    }

    /// A required string field, trimmed, that must not be blank.
    pub fn req_trimmed(&self, key: &str) -> Result<&str> {
        self.opt_trimmed(key)?
            .ok_or_else(|| Error::validation(format!("`{key}` is required and must not be blank.")))
    }

    /// An optional list of strings.
    pub fn opt_str_list(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(Error::validation(format!(
                        "`{key}` must be a list of strings."
                    ))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(_) => Err(Error::validation(format!(
                "`{key}` must be a list of strings."
            ))),
        }
    }

    /// A required list of strings.
    pub fn req_str_list(&self, key: &str) -> Result<Vec<String>> {
        self.opt_str_list(key)?
            .ok_or_else(|| Error::validation(format!("`{key}` is required.")))
    }

    /// An optional non-negative integer given as a JSON number or as a
    /// decimal string (query-string parameters arrive as strings).
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        let invalid = || Error::validation(format!("`{key}` must be a non-negative whole number."));
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(invalid),
            Some(Value::String(s)) => s.trim().parse::<u64>().map(Some).map_err(|_| invalid()),
            Some(_) => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields() {
        let input =
            Input::parse(r#"{"a":" x ","n":"12","m":3,"l":["p"],"z":null}"#).expect("valid input");
        assert_eq!(input.req_trimmed("a"), Ok("x"));
        assert_eq!(input.opt_u64("n"), Ok(Some(12)));
        assert_eq!(input.opt_u64("m"), Ok(Some(3)));
        assert_eq!(input.opt_str("z"), Ok(None));
        assert_eq!(input.req_str_list("l"), Ok(vec!["p".to_owned()]));
        assert_eq!(
            input.req_str("missing").map_err(|e| e.code),
            Err(Error::VALIDATION_FAILED)
        );
        assert_eq!(
            Input::parse("[]").map_err(|e| e.code),
            Err(Error::BAD_REQUEST)
        );
        assert_eq!(Input::parse(""), Ok(Input::default()));
    }
}
