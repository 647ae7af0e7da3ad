//! Turning an HTTP request into an operation's one input object: path
//! parameters, query string and JSON body merged (path wins, then query),
//! checked against the operation's input schema before anything runs.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::ApiError;

/// Parses the body: empty means `{}`; anything else must be a JSON object.
pub fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        )),
        Err(error) => Err(ApiError::BadRequest(format!(
            "the request body is not valid JSON: {error}"
        ))),
    }
}

/// Parses a query string into name → value.
pub fn parse_query(query: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    match query {
        None | Some("") => Ok(HashMap::new()),
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|e| ApiError::BadRequest(format!("the query string is malformed: {e}"))),
    }
}

fn schema_type(schema: &Value, field: &str) -> Option<String> {
    let ty = schema.get("properties")?.get(field)?.get("type")?;
    match ty {
        Value::String(s) => Some(s.clone()),
        Value::Array(types) => types
            .iter()
            .find_map(|t| t.as_str().filter(|t| *t != "null").map(str::to_string)),
        _ => None,
    }
}

/// A textual value (path or query) read as the type its schema asks for.
fn coerce(text: &str, ty: Option<&str>) -> Value {
    match ty {
        Some("integer") => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        Some("number") => text
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        Some("boolean") => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.into()),
        },
        _ => Value::String(text.into()),
    }
}

/// Merges the three sources into one object.
pub fn merge(
    schema: &Value,
    mut body: Map<String, Value>,
    query: HashMap<String, String>,
    path: HashMap<String, String>,
) -> Value {
    for (name, text) in query.into_iter().chain(path) {
        let ty = schema_type(schema, &name);
        body.insert(name, coerce(&text, ty.as_deref()));
    }
    Value::Object(body)
}

fn type_matches(value: &Value, ty: &str) -> bool {
    match ty {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => true,
    }
}

/// Checks the input's required fields and the types of its declared
/// top-level properties (422 on failure, naming the field).
pub fn check(schema: &Value, input: &Value) -> Result<(), ApiError> {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if input.get(name).is_none_or(Value::is_null) {
                return Err(ApiError::Validation(format!("`{name}` is required")));
            }
        }
    }
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, property) in properties {
        // An absent field and a null one are the same: `required` covers presence.
        let Some(value) = input.get(name).filter(|v| !v.is_null()) else {
            continue;
        };
        let ok = match property.get("type") {
            Some(Value::String(ty)) => type_matches(value, ty),
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .any(|ty| type_matches(value, ty)),
            _ => true,
        };
        if !ok {
            let expected = property
                .get("type")
                .map(Value::to_string)
                .unwrap_or_default();
            return Err(ApiError::Validation(format!(
                "`{name}` must be of type {expected}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_wins_over_query_and_body() {
        let schema = json!({"properties": {"limit": {"type": "integer"}}});
        let body = json!({"id": "from-body", "name": "x"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let query = HashMap::from([("limit".to_string(), "5".to_string())]);
        let path = HashMap::from([("id".to_string(), "from-path".to_string())]);
        let merged = merge(&schema, body, query, path);
        assert_eq!(merged["id"], "from-path");
        assert_eq!(merged["limit"], 5);
        assert_eq!(merged["name"], "x");
    }

    #[test]
    fn required_and_types_are_checked() {
        let schema = json!({"required": ["name"], "properties": {"name": {"type": "string"}}});
        assert!(check(&schema, &json!({"name": "a"})).is_ok());
        assert!(check(&schema, &json!({})).is_err());
        assert!(check(&schema, &json!({"name": 3})).is_err());
    }
}
