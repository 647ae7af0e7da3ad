//! The tool catalog: one MCP tool per public plugin operation, built from
//! the operation's own declaration (name, description, input and output
//! schemas, annotations). Money going out gets an approval-request answer
//! and a `dry_run` argument instead of its direct output.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

use crate::approvals::service as approvals;
use crate::core::operation::Operation;

/// Every tool, and the operation behind each.
pub struct ToolCatalog {
    tools: Vec<Tool>,
    by_name: HashMap<String, Arc<Operation>>,
}

fn as_object(schema: &Value) -> Option<JsonObject> {
    match schema {
        Value::Object(map) if map.get("type").and_then(Value::as_str) == Some("object") => {
            Some(map.clone())
        }
        _ => None,
    }
}

fn describe(op: &Operation, gated: bool) -> String {
    let mut text = op.spec.description.clone();
    if let Some(permission) = &op.spec.permission {
        text.push_str(&format!(" Needs the `{permission}` permission."));
    }
    if op.spec.money.is_some() {
        text.push_str(
            " Pass `idempotency_key` (any unique string you reuse when retrying) so a retry never \
             moves money twice. API keys may cap the amount per call and per day.",
        );
    }
    if gated {
        text.push_str(
            " From an AI assistant this does NOT move money: it records an approval request that a \
             person must approve in Malipo, and answers its id. Nothing you pass (no `confirm`) \
             counts as approval. Pass `dry_run: true` to see what would be requested without \
             recording anything.",
        );
    }
    text
}

fn tool_of(op: &Operation) -> Tool {
    let gated = approvals::required(op, "mcp", None);
    let mut input = as_object(&op.spec.input_schema).unwrap_or_else(|| {
        let mut map = JsonObject::new();
        map.insert("type".into(), json!("object"));
        map
    });
    if gated && let Some(Value::Object(properties)) = input.get_mut("properties") {
        properties.insert(
            approvals::DRY_RUN.into(),
            json!({"type": "boolean", "default": false,
                   "description": "Only show what would be requested; record nothing."}),
        );
    }
    let output = if gated {
        as_object(&approvals::answer_schema())
    } else {
        as_object(&op.spec.output_schema)
    };
    let hints = op.spec.annotations;
    let annotations = ToolAnnotations::new()
        .read_only(hints.read_only)
        .destructive(hints.destructive)
        .idempotent(hints.idempotent)
        .open_world(hints.open_world);
    let mut annotations = annotations;
    annotations.title = Some(op.spec.summary.clone());
    let mut tool = Tool::new(op.tool_name(), describe(op, gated), input)
        .with_title(op.spec.summary.clone())
        .with_annotations(annotations);
    if let Some(output) = output {
        tool = tool.with_raw_output_schema(Arc::new(output));
    }
    tool
}

impl ToolCatalog {
    /// The tools of every public plugin operation; two operations claiming
    /// one tool name is an error.
    pub fn build(operations: &[Arc<Operation>]) -> anyhow::Result<Self> {
        let mut tools = Vec::new();
        let mut by_name = HashMap::new();
        for op in operations {
            if !op.is_tool() {
                continue;
            }
            let name = op.tool_name();
            anyhow::ensure!(
                !by_name.contains_key(&name),
                "two operations declare the MCP tool `{name}`"
            );
            tools.push(tool_of(op));
            by_name.insert(name, Arc::clone(op));
        }
        Ok(Self { tools, by_name })
    }

    /// Every tool.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The operation behind a tool.
    pub fn get(&self, name: &str) -> Option<&Arc<Operation>> {
        self.by_name.get(name)
    }
}
