//! JSON-schema shorthands for declaring the host's operations
//! ([`crate::core::operation::Op`]).

use serde_json::{Value, json};

/// An object with these required fields and properties.
pub fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// Any object.
pub fn any_object() -> Value {
    json!({"type": "object"})
}

/// An object with one required `id` (a path parameter).
pub fn id_input() -> Value {
    object(&["id"], json!({"id": {"type": "string"}}))
}
