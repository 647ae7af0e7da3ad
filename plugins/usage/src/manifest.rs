//! The usage manifest: the host's internal metering and reporting
//! operations, the two read operations for people and AI assistants, the
//! payment events it counts, and its tables.

use serde_json::{Value, json};

use crate::malipo::plugin::types::{
    Annotations, HttpMethod, Manifest, Migration, Operation, PermissionDef,
};
use crate::money::EVENTS;
use crate::record::MAX_ENTRIES;

/// The permission of the read operations.
pub const READ_PERMISSION: &str = "usage.read";

const READ: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};
const ADD: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required })
}

fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn period() -> Value {
    json!({ "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$", "description": "Calendar month (UTC), YYYY-MM." })
}

fn period_input() -> Value {
    object(
        json!({ "period": {
            "type": "string",
            "pattern": "^[0-9]{4}-[0-9]{2}$",
            "description": "Calendar month (UTC), YYYY-MM; default the current month."
        } }),
        &[],
    )
}

fn money() -> Value {
    object(
        json!({ "count": count(), "amount_kes": { "type": "integer", "minimum": 0, "description": "Whole KES." } }),
        &["count", "amount_kes"],
    )
}

fn by_channel() -> Value {
    json!({
        "type": "object",
        "description": "Calls per channel (rest, mcp, and any other the host meters, such as cli).",
        "additionalProperties": count()
    })
}

fn metric(description: &str) -> Value {
    let mut schema = object(
        json!({
            "used": count(),
            "limit": { "type": ["integer", "null"], "minimum": 0, "description": "Null when unlimited or unknown." },
            "percent": { "type": ["number", "null"], "description": "used / limit × 100, one decimal; may pass 100. Null when unlimited or unknown." }
        }),
        &["used", "limit", "percent"],
    );
    schema["description"] = json!(description);
    schema
}

#[allow(clippy::too_many_arguments)]
fn op(
    name: &str,
    method: HttpMethod,
    path: Option<&str>,
    mcp_tool: Option<&str>,
    summary: &str,
    description: &str,
    input: Value,
    output: Value,
    hints: Annotations,
) -> Operation {
    Operation {
        name: name.to_owned(),
        method,
        path: path.map(str::to_owned),
        permission: path.map(|_| READ_PERMISSION.to_owned()),
        summary: summary.to_owned(),
        description: description.to_owned(),
        input_schema: input.to_string(),
        output_schema: output.to_string(),
        success_status: 200,
        mcp_tool: mcp_tool.map(str::to_owned),
        annotations: hints,
        money: None,
        feature: None,
    }
}

fn record() -> Operation {
    op(
        "usage.record",
        HttpMethod::Post,
        None,
        None,
        "Record metered calls",
        &format!(
            "Internal (host): adds a batch of metered calls to the daily rows, keyed by day, channel, \
             operation and store (at most {MAX_ENTRIES} entries; missing counts are 0). Then sums the current \
             month and emits `usage.threshold` the first time in the month the API calls (rest and mcp) or the \
             transactions reach 80 % and 100 % of the plan's monthly quota."
        ),
        object(
            json!({
                "entries": {
                    "type": "array",
                    "maxItems": MAX_ENTRIES,
                    "items": object(json!({
                        "day": { "type": "string", "format": "date", "description": "UTC day, YYYY-MM-DD." },
                        "channel": { "type": "string", "minLength": 1, "maxLength": 200, "description": "rest, mcp, cli, job, …" },
                        "operation": { "type": "string", "maxLength": 200 },
                        "store_id": { "type": ["string", "null"], "maxLength": 200 },
                        "calls": count(),
                        "errors": count(),
                        "transactions": { "type": "integer", "minimum": 0, "description": "Money operations requested." }
                    }), &["day", "channel"])
                }
            }),
            &["entries"],
        ),
        object(
            json!({
                "recorded": { "type": "integer", "minimum": 0, "description": "Entries received." },
                "period": period(),
                "api_calls": count(),
                "transactions": count()
            }),
            &["recorded", "period", "api_calls", "transactions"],
        ),
        ADD,
    )
}

fn totals() -> Operation {
    op(
        "usage.totals",
        HttpMethod::Get,
        None,
        None,
        "Quota totals of a month",
        "Internal (host): the month's API calls (rest and mcp channels) and transactions, the two totals \
         the plan's monthly quotas apply to.",
        period_input(),
        object(
            json!({ "period": period(), "api_calls": count(), "transactions": count() }),
            &["period", "api_calls", "transactions"],
        ),
        READ,
    )
}

fn summary() -> Operation {
    op(
        "usage.summary",
        HttpMethod::Get,
        None,
        None,
        "A month of usage at a glance",
        "Internal (host, for the platform's cross-tenant view): the month's API calls, calls per channel, \
         transactions, errors, completed payments, payouts and reversals, and the tenant's active stores and \
         members now.",
        period_input(),
        object(
            json!({
                "period": period(),
                "api_calls": count(),
                "by_channel": by_channel(),
                "transactions": count(),
                "errors": count(),
                "payments": money(),
                "payouts": money(),
                "reversals": money(),
                "stores": { "type": "integer", "minimum": 0, "description": "Active stores." },
                "members": { "type": "integer", "minimum": 0, "description": "Active members." }
            }),
            &[
                "period",
                "api_calls",
                "by_channel",
                "transactions",
                "errors",
                "payments",
                "payouts",
                "reversals",
                "stores",
                "members",
            ],
        ),
        READ,
    )
}

fn get() -> Operation {
    op(
        "usage.get",
        HttpMethod::Get,
        Some("/usage"),
        Some("usage_current"),
        "Usage this month against the plan",
        "How much of the plan the organization has used this calendar month (UTC): API calls (REST and \
         MCP), transactions (money operations requested), active stores and active users, each with the \
         plan's limit and the percentage used (limit and percent are null when unlimited). Also calls per \
         channel, completed payments, payouts and reversals with their KES totals, and the month per store. \
         Use it to answer \"how close are we to our limits?\" or \"how much did each store take this month?\".",
        object(json!({}), &[]),
        object(
            json!({
                "period": period(),
                "period_start": { "type": "string", "format": "date", "description": "First day of the month." },
                "period_end": { "type": "string", "format": "date", "description": "Last day of the month (inclusive); quotas reset the day after." },
                "plan": {
                    "type": ["object", "null"],
                    "properties": { "id": { "type": "string" }, "name": { "type": ["string", "null"] } },
                    "description": "The tenant's plan; null when unknown."
                },
                "metrics": object(json!({
                    "api_calls": metric("REST and MCP calls this month; limit api_calls_per_month."),
                    "transactions": metric("Money operations requested this month; limit transactions_per_month."),
                    "stores": metric("Active stores now; limit max_stores."),
                    "users": metric("Active members now; limit max_users.")
                }), &["api_calls", "transactions", "stores", "users"]),
                "by_channel": by_channel(),
                "payments": money(),
                "payouts": money(),
                "reversals": money(),
                "by_store": {
                    "type": "array",
                    "description": "Every active store, and any other store used this month, by name.",
                    "items": object(json!({
                        "store_id": { "type": "string" },
                        "store_name": { "type": ["string", "null"] },
                        "calls": { "type": "integer", "minimum": 0, "description": "REST and MCP calls for the store." },
                        "transactions": count(),
                        "payments": { "type": "integer", "minimum": 0, "description": "Completed payments." },
                        "payment_amount_kes": { "type": "integer", "minimum": 0 }
                    }), &["store_id", "store_name", "calls", "transactions", "payments", "payment_amount_kes"])
                },
                "store_ids": {
                    "type": "array", "items": { "type": "string" },
                    "description": "Present for a caller limited to some stores: every number above covers these stores only."
                }
            }),
            &[
                "period",
                "period_start",
                "period_end",
                "plan",
                "metrics",
                "by_channel",
                "payments",
                "payouts",
                "reversals",
                "by_store",
            ],
        ),
        READ,
    )
}

fn history() -> Operation {
    let date = |description: &str| json!({ "type": "string", "format": "date", "description": description });
    op(
        "usage.history",
        HttpMethod::Get,
        Some("/usage/history"),
        Some("usage_history"),
        "Usage history per day or month",
        "API calls (REST and MCP, and each), errors, transactions, completed payments and payouts with their \
         KES totals, per day or per calendar month (UTC) between two dates (inclusive; default the last 30 days \
         to today; at most three years). Only periods with data are listed, oldest first; with group_by=month \
         the first and last months count only the days inside the range.",
        object(
            json!({
                "from": date("First day, YYYY-MM-DD; default 29 days before `to`."),
                "to": date("Last day, YYYY-MM-DD (inclusive); default today (UTC)."),
                "group_by": { "type": "string", "enum": ["day", "month"], "default": "day" }
            }),
            &[],
        ),
        object(
            json!({
                "group_by": { "type": "string", "enum": ["day", "month"] },
                "from": date("First day of the range."),
                "to": date("Last day of the range."),
                "rows": {
                    "type": "array",
                    "items": object(json!({
                        "period": { "type": "string", "description": "YYYY-MM-DD or YYYY-MM." },
                        "api_calls": count(), "rest_calls": count(), "mcp_calls": count(),
                        "errors": count(), "transactions": count(),
                        "payments": count(), "payment_amount_kes": count(),
                        "payouts": count(), "payout_amount_kes": count()
                    }), &[
                        "period", "api_calls", "rest_calls", "mcp_calls", "errors", "transactions",
                        "payments", "payment_amount_kes", "payouts", "payout_amount_kes",
                    ])
                }
            }),
            &["group_by", "from", "to", "rows"],
        ),
        READ,
    )
}

pub fn manifest() -> Manifest {
    Manifest {
        name: "usage".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: "What the organization uses of the platform: API calls by channel, operation and store, \
                      money operations requested, and completed payments, payouts and reversals, per day and \
                      month, against the plan's limits."
            .to_owned(),
        operations: vec![record(), totals(), summary(), get(), history()],
        permissions: vec![PermissionDef {
            name: READ_PERMISSION.to_owned(),
            description: "See the organization's usage and how close it is to the plan's limits.".to_owned(),
            default_roles: ["Owner", "Admin", "Manager"]
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
        }],
        subscriptions: EVENTS.iter().map(|(name, _)| (*name).to_owned()).collect(),
        emits: vec!["usage.*".to_owned()],
        read_tables: vec!["stores".to_owned(), "members".to_owned()],
        secrets: Vec::new(),
        outbound_hosts: Vec::new(),
        jobs: Vec::new(),
        callbacks: false,
        sends_mail: false,
        migrations: vec![Migration {
            version: 1,
            name: "init".to_owned(),
            sql: include_str!("../migrations/V1__init.sql").to_owned(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declares_the_contract() {
        let manifest = manifest();
        assert_eq!(manifest.name, "usage");
        let ops: Vec<_> = manifest
            .operations
            .iter()
            .map(|o| {
                (
                    o.name.as_str(),
                    o.path.as_deref(),
                    o.permission.as_deref(),
                    o.mcp_tool.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            ops,
            vec![
                ("usage.record", None, None, None),
                ("usage.totals", None, None, None),
                ("usage.summary", None, None, None),
                (
                    "usage.get",
                    Some("/usage"),
                    Some("usage.read"),
                    Some("usage_current")
                ),
                (
                    "usage.history",
                    Some("/usage/history"),
                    Some("usage.read"),
                    Some("usage_history")
                ),
            ]
        );
        for op in &manifest.operations {
            assert!(op.money.is_none() && op.feature.is_none(), "{}", op.name);
            for schema in [&op.input_schema, &op.output_schema] {
                let value: Value = serde_json::from_str(schema).expect("schema is JSON");
                assert_eq!(value["type"], "object", "{}", op.name);
            }
        }
        assert_eq!(
            manifest.subscriptions,
            vec![
                "payment.completed",
                "payout.completed",
                "reversal.completed"
            ]
        );
        assert_eq!(manifest.read_tables, vec!["stores", "members"]);
        assert!(manifest.secrets.is_empty() && manifest.outbound_hosts.is_empty());
        assert!(manifest.jobs.is_empty() && !manifest.callbacks && !manifest.sends_mail);
        assert_eq!(
            manifest.permissions[0].default_roles,
            vec!["Owner", "Admin", "Manager"]
        );
    }
}
