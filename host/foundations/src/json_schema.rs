//! JSON-schema shorthands (a foundation: serde_json only) for declaring the host's operations
//! (the `Op` builder of the core) and the public shapes of stored records.

use serde_json::{Value, json};

/// An object with these required fields and properties.
pub fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// An object with one required `id` (a path parameter) that is not a UUID
/// (an integer's digits, say).
pub fn id_input() -> Value {
    object(&["id"], json!({"id": {"type": "string"}}))
}

/// An object with one required `id` (a path parameter) that is a UUID.
pub fn uuid_id_input() -> Value {
    object(&["id"], json!({"id": uuid()}))
}

/// A string that is a UUID: the ids the host makes (tenants, users,
/// stores, API keys, approvals, invitations) and the rbac plugin's role ids.
pub fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

/// `schema`, or null: `"null"` joins its `type` (and its `enum`, if any).
pub fn nullable(mut schema: Value) -> Value {
    let types = match schema.get("type") {
        Some(Value::String(ty)) => vec![json!(ty), json!("null")],
        Some(Value::Array(types)) if !types.contains(&json!("null")) => {
            types.iter().cloned().chain([json!("null")]).collect()
        }
        Some(Value::Array(types)) => types.clone(),
        _ => return schema,
    };
    schema["type"] = Value::Array(types);
    if let Some(allowed) = schema.get_mut("enum").and_then(Value::as_array_mut)
        && !allowed.contains(&Value::Null)
    {
        allowed.push(Value::Null);
    }
    schema
}

/// The answer of a delete: `{"deleted": true, "id"}` (a UUID).
pub fn deleted() -> Value {
    object(
        &["deleted", "id"],
        json!({"deleted": {"type": "boolean", "enum": [true]}, "id": uuid()}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_adds_null_to_the_type_and_the_enum_once() {
        assert_eq!(
            nullable(json!({"type": "string", "format": "uuid"})),
            json!({"type": ["string", "null"], "format": "uuid"})
        );
        assert_eq!(
            nullable(json!({"type": ["object", "null"]})),
            json!({"type": ["object", "null"]})
        );
        assert_eq!(
            nullable(json!({"type": "string", "enum": ["a"]})),
            json!({"type": ["string", "null"], "enum": ["a", null]})
        );
    }
}
