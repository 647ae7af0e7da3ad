//! The OpenAPI 3.1 document, generated from the same operations the router
//! serves: a plugin's operations appear here with no host change.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::core::operation::{Access, Method, Operation, Target};

/// Host operations that call a plugin or the platform's M-Pesa account and
/// so can answer 502, 503 or 504 like a plugin operation.
const UPSTREAM_HOST_OPS: &[&str] = &["invoices.pay", "tenant.export"];

/// The path's parameters, each with the schema the operation's input
/// declares for it (a UUID's `format`, a plugin's `description` or `enum`),
/// else a plain string.
fn path_parameters(path: &str, input_schema: &Value) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = input_schema["properties"]
                .get(name)
                .filter(|schema| schema.is_object())
                .cloned()
                .unwrap_or_else(|| json!({"type": "string"}));
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The document for these operations.
pub fn document(operations: &[std::sync::Arc<Operation>]) -> Value {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for op in operations {
        let Some(path) = &op.spec.path else { continue };
        let mut parameters = path_parameters(path, &op.spec.input_schema);
        parameters.push(
            json!({"name": "X-Store-ID", "in": "header", "required": false,
            "description": "The store this request acts in; must be one the caller may use.",
            "schema": {"type": "string"}}),
        );
        // A file answer names its media type in the schema (`contentMediaType`).
        let media = op
            .spec
            .output_schema
            .get("contentMediaType")
            .and_then(|m| m.as_str())
            .unwrap_or("application/json")
            .to_string();
        let mut entry = json!({
            "operationId": op.spec.name,
            "summary": op.spec.summary,
            "description": op.spec.description,
            "tags": [op.tag],
            "parameters": parameters,
            "responses": {
                op.spec.success_status.to_string(): {
                    "description": "Success",
                    "content": {media: {"schema": op.spec.output_schema}}
                },
                "400": error_response("Malformed request"),
                "401": error_response("Missing or invalid credentials"),
                "403": error_response("Not allowed"),
                "404": error_response("Not found"),
                "413": error_response("Body too large"),
                "422": error_response("Invalid input"),
            },
            "x-permission": op.spec.permission,
            "x-annotations": op.spec.annotations,
        });
        // Every change can meet the current state: a name in use, a role
        // still held, an organization not pending deletion, an
        // `Idempotency-Key` reused with another body.
        if op.spec.method != Method::Get {
            entry["responses"]["409"] =
                error_response("Conflicts with the current state (nothing was changed)");
        }
        // Every caller meets a per-minute rate (per address on the public
        // auth routes, per organization and plan elsewhere).
        entry["responses"]["429"] =
            error_response("Too many requests (`Retry-After` says when to try again)");
        if matches!(op.access, Access::Tenant) {
            entry["responses"]["402"] = error_response(
                "The plan or subscription does not allow it now: `subscription_suspended`, `plan_limit_reached` or `quota_exceeded`",
            );
        }
        // Plugin calls, and the host operations that depend on a plugin or
        // on the platform's M-Pesa account, can meet an upstream that is
        // down, not set up, or too slow.
        if matches!(op.target, Target::Plugin(_))
            || UPSTREAM_HOST_OPS.contains(&op.spec.name.as_str())
        {
            entry["responses"]["502"] = error_response(
                "An upstream (Daraja) or the plugin answered in a way that could not be used",
            );
            entry["responses"]["503"] = error_response(
                "Not available now, or not set up yet (e.g. no platform M-Pesa account)",
            );
            entry["responses"]["504"] = error_response("The plugin call ran past its deadline");
        }
        if op.spec.method != Method::Get && op.spec.method != Method::Delete {
            entry["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": op.spec.input_schema}}
            });
        }
        entry["security"] = match op.access {
            Access::Public => json!([]),
            _ => json!([{"bearer": []}, {"apiKey": []}]),
        };
        paths
            .entry(format!("/api/v1{path}"))
            .or_default()
            .insert(op.spec.method.lower().into(), entry);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Malipo API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-tenant M-Pesa payments platform. Every operation here is also what plugins declare in their manifests."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message", "request_id"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}, "request_id": {"type": "string"}}}}
                }
            }
        }
    })
}
