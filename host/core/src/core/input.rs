//! Turning an HTTP request into an operation's one input object: path
//! parameters, query string and JSON body merged (path wins, then query),
//! checked against the operation's input schema before anything runs.

use std::collections::HashMap;

use serde_json::{Map, Value};

use malipo_foundations::error::ApiError;

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

/// Checks the input against the operation's input schema as declared
/// (422 on failure, naming the field): required fields; every field's
/// `type` and `enum`, into arrays' `items` and nested objects; and no field
/// the schema does not declare — `additionalProperties` is `false` unless
/// the schema says otherwise. `extra` names fields the host itself adds
/// (path parameters, `idempotency_key` from its header, MCP's `dry_run`).
pub fn check(schema: &Value, input: &Value, extra: &[&str]) -> Result<(), ApiError> {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if input.get(name).is_none_or(Value::is_null) {
                return Err(ApiError::Validation(format!("`{name}` is required")));
            }
        }
    }
    object(schema, input, "", extra)
}

/// The fields of an object value against an object schema.
fn object(schema: &Value, input: &Value, at: &str, extra: &[&str]) -> Result<(), ApiError> {
    let Some(fields) = input.as_object() else {
        return Ok(());
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    for (name, value) in fields {
        let path = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        match properties.and_then(|p| p.get(name)) {
            // An absent field and a null one are the same: `required` covers presence.
            Some(_) if value.is_null() => {}
            Some(property) => one(property, value, &path)?,
            None if at.is_empty() && extra.contains(&name.as_str()) => {}
            None => match additional {
                Some(Value::Bool(true)) => {}
                Some(Value::Object(each)) => one(&Value::Object(each.clone()), value, &path)?,
                // A schema that declares no properties at all says nothing
                // about its fields.
                None if properties.is_none() => {}
                _ => {
                    return Err(ApiError::Validation(format!(
                        "`{path}` is not a field of this operation{}",
                        properties
                            .map(|p| {
                                let mut known: Vec<&str> = p.keys().map(String::as_str).collect();
                                known.sort_unstable();
                                format!(" (its fields: {})", known.join(", "))
                            })
                            .unwrap_or_default()
                    )));
                }
            },
        }
    }
    Ok(())
}

/// One value against its property schema: type, enum, items, nested object.
fn one(schema: &Value, value: &Value, path: &str) -> Result<(), ApiError> {
    let ok = match schema.get("type") {
        Some(Value::String(ty)) => type_matches(value, ty),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .any(|ty| type_matches(value, ty)),
        _ => true,
    };
    if !ok {
        let expected = schema.get("type").map(Value::to_string).unwrap_or_default();
        return Err(ApiError::Validation(format!(
            "`{path}` must be of type {expected}"
        )));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !value.is_null()
        && !allowed.contains(value)
    {
        let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(ApiError::Validation(format!(
            "`{path}` must be one of {}; got {}",
            listed.join(", "),
            short(value)
        )));
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (index, item) in values.iter().enumerate() {
            one(items, item, &format!("{path}[{index}]"))?;
        }
    }
    if value.is_object() && schema.get("properties").is_some() {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if value.get(name).is_none_or(Value::is_null) {
                    return Err(ApiError::Validation(format!("`{path}.{name}` is required")));
                }
            }
        }
        object(schema, value, path, &[])?;
    }
    Ok(())
}

/// A value as an error message quotes it: at most 60 characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
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
        assert!(check(&schema, &json!({"name": "a"}), &[]).is_ok());
        assert!(check(&schema, &json!({}), &[]).is_err());
        assert!(check(&schema, &json!({"name": 3}), &[]).is_err());
    }

    #[test]
    fn unknown_fields_and_values_outside_an_enum_are_refused_by_name() {
        let schema = json!({"properties": {
            "account_reference": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string", "enum": ["payment.completed"]}},
            "limits": {"type": "object", "properties": {"max": {"type": "integer"}}},
            "open": {"type": "object"}
        }});
        let typo = check(&schema, &json!({"acount_reference": "ORDER9"}), &[]).expect_err("typo");
        assert!(typo.to_string().contains("`acount_reference`"), "{typo}");
        let bad = check(&schema, &json!({"events": ["payment.complete"]}), &[]).expect_err("enum");
        assert!(bad.to_string().contains("`events[0]`"), "{bad}");
        let nested = check(&schema, &json!({"limits": {"mx": 1}}), &[]).expect_err("nested");
        assert!(nested.to_string().contains("`limits.mx`"), "{nested}");
        assert!(check(&schema, &json!({"open": {"anything": 1}}), &[]).is_ok());
        assert!(check(&schema, &json!({"id": "x"}), &["id"]).is_ok());
        let open = json!({"properties": {}, "additionalProperties": true});
        assert!(check(&open, &json!({"x": 1}), &[]).is_ok());
    }
}
