//! Approvals: money going out (payouts, reversals) that an AI assistant
//! asked for does not run when asked. It becomes an *intent* in the
//! tenant's `approvals` table, which a signed-in person with
//! `approvals.approve` approves or rejects out of band (REST). An approved
//! intent runs its operation exactly once: the claim `pending → approved`
//! is one conditional UPDATE, and the operation runs with the idempotency
//! key `approval:<id>`. Nothing a model sends counts as consent.

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use crate::audit::{self, AuditEntry};
use crate::auth::{Credential, Principal};
use crate::core::Core;
use crate::core::guardrails::Reservation;
use crate::core::operation::{Operation, RequestMeta};
use malipo_foundations::error::{ApiError, blocking};
use malipo_foundations::ids::TenantId;
use malipo_foundations::json_schema::{nullable, object, uuid};
use malipo_foundations::time_util::now_rfc3339;
use malipo_runtime::plugins::manifest::MoneyDirection;

/// The argument that asks what a call would do without doing it.
pub const DRY_RUN: &str = "dry_run";

/// Whether a call of `op` through `channel` by `principal` waits for a
/// person's approval: money going out, asked for by an AI assistant (MCP,
/// always), or with an API key whose `approval_required` is set (on any
/// channel; the default for a key holding a money-out permission).
pub fn required(op: &Operation, channel: &str, principal: Option<&Principal>) -> bool {
    let outgoing = op
        .spec
        .money
        .as_ref()
        .is_some_and(|m| m.direction == MoneyDirection::Outgoing);
    let key_requires = matches!(
        principal.map(|p| &p.credential),
        Some(Credential::ApiKey { guardrails, .. }) if guardrails.approval_required
    );
    outgoing && (channel == "mcp" || key_requires)
}

/// Is `value` the answer of a gated call of `op` that recorded an approval
/// request (REST answers it 202)?
pub fn is_pending_answer(op: &Operation, value: &Value) -> bool {
    op.spec
        .money
        .as_ref()
        .is_some_and(|m| m.direction == MoneyDirection::Outgoing)
        && value.get("status").and_then(Value::as_str) == Some("pending_approval")
        && value.get("approval_id").is_some_and(Value::is_string)
}

/// What an intent says it will do, for the person approving it.
pub fn summary(op: &Operation, amount: Option<i64>, input: &Value) -> String {
    let items = input
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::len)
        .filter(|n| *n > 0);
    let money = match amount {
        Some(amount) => format!("KES {amount}"),
        None => "the full amount".into(),
    };
    match items {
        Some(n) => format!(
            "{}: {money} in total to {n} recipient{}",
            op.spec.summary,
            if n == 1 { "" } else { "s" }
        ),
        None => format!("{}: {money}", op.spec.summary),
    }
}

/// The answer of a call that waits for approval or is a dry run: the
/// output schema of every approval-gated MCP tool.
pub fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["pending_approval", "dry_run"],
                       "description": "`pending_approval`: nothing has moved yet; a person must approve it. `dry_run`: nothing was recorded."},
            "approval_id": {"type": ["string", "null"], "description": "The intent to approve (null for a dry run)."},
            "operation": {"type": "string"},
            "summary": {"type": "string", "description": "What will happen once approved."},
            "amount": {"type": ["integer", "null"], "description": "Total KES, when the input names it."},
            "input": {"type": "object", "description": "The arguments that will be used."},
            "message": {"type": "string", "description": "What to tell the user."}
        },
        "required": ["status", "operation", "summary", "message"]
    })
}

/// The answer of a dry run.
pub fn dry_run(op: &Operation, amount: Option<i64>, input: &Value) -> Value {
    json!({
        "status": "dry_run",
        "approval_id": null,
        "operation": op.spec.name,
        "summary": summary(op, amount, input),
        "amount": amount,
        "input": input,
        "message": "Nothing was recorded. Called without dry_run, this creates an approval request; \
                    nothing moves until a person approves it in Malipo (REST or dashboard).",
    })
}

/// An intent to record.
pub struct Intent<'a> {
    /// The gated operation.
    pub op: &'a Operation,
    /// The MCP tool it was asked through.
    pub tool: Option<&'a str>,
    /// Who asked.
    pub principal: &'a Principal,
    /// Its input (without `dry_run`).
    pub input: Value,
    /// Total KES, if named.
    pub amount: Option<i64>,
    /// The amount reserved against the key's daily cap.
    pub reservation: Option<Reservation>,
    /// Request facts.
    pub meta: &'a RequestMeta,
    /// The audit row of the request (its operation becomes `approvals.request`).
    pub audit: AuditEntry,
}

/// Records an intent and its audit row in one transaction; answers what
/// the caller should tell the user.
pub async fn request(state: &Arc<Core>, intent: Intent<'_>) -> Result<Value, ApiError> {
    let tenant = intent.principal.tenant()?;
    let id = uuid::Uuid::new_v4().to_string();
    let summary = summary(intent.op, intent.amount, &intent.input);
    let key_id = match &intent.principal.credential {
        Credential::ApiKey { id, .. } => Some(id.clone()),
        Credential::Session { .. } => None,
    };
    let mut entry = intent.audit;
    entry.operation = "approvals.request".into();
    entry.target = Some(format!("approval:{id}"));
    entry.detail =
        Some(json!({"operation": intent.op.spec.name, "amount": intent.amount}).to_string());
    let row = (
        id.clone(),
        intent.op.spec.name.clone(),
        intent.tool.map(str::to_string),
        intent.input.to_string(),
        intent.amount,
        summary.clone(),
        intent.principal.user_id.to_string(),
        intent.meta.channel.clone(),
        key_id,
        intent.principal.store_id.map(|s| s.to_string()),
        intent.reservation.as_ref().map(|r| r.amount),
    );
    let state_for_db = Arc::clone(state);
    blocking(move || {
        let db = state_for_db.tenancy.get(tenant)?;
        let mut conn = db.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO approvals (id, operation, tool, input, amount, summary, status, requested_by, channel,
                                    api_key_id, store_id, reserved_amount, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10,
                now_rfc3339()
            ],
        )?;
        audit::write(&tx, &entry)?;
        tx.commit()?;
        Ok(())
    })
    .await?;
    Ok(json!({
        "status": "pending_approval",
        "approval_id": id,
        "operation": intent.op.spec.name,
        "summary": summary,
        "amount": intent.amount,
        "input": intent.input,
        "message": format!(
            "Nothing has moved yet. A person with the approvals.approve permission must approve request {id} \
             in Malipo (POST /api/v1/approvals/{id}/approve, or the dashboard); it then runs once. \
             Tell the user it is waiting for approval."
        ),
    }))
}

/// One stored approval.
#[derive(Clone, Debug)]
pub struct Approval {
    /// Id.
    pub id: String,
    /// Operation name.
    pub operation: String,
    /// Tool asked through.
    pub tool: Option<String>,
    /// Input JSON.
    pub input: Value,
    /// Total KES.
    pub amount: Option<i64>,
    /// What it does.
    pub summary: String,
    /// pending, approved, executed, failed, rejected.
    pub status: String,
    /// User who asked.
    pub requested_by: String,
    /// Channel asked through.
    pub channel: String,
    /// Key asked with.
    pub api_key_id: Option<String>,
    /// Store of the request.
    pub store_id: Option<String>,
    /// Amount reserved against the key's daily cap.
    pub reserved_amount: Option<i64>,
    /// RFC 3339.
    pub created_at: String,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<String>,
    /// The operation's answer, once run.
    pub result: Option<Value>,
    /// Its error, if it failed.
    pub error: Option<String>,
    /// Why it was rejected, if the person said.
    pub reason: Option<String>,
}

const COLUMNS: &str = "id, operation, tool, input, amount, summary, status, requested_by, channel, api_key_id, \
     store_id, reserved_amount, created_at, decided_by, decided_at, result, error, reason";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    let input: String = row.get(3)?;
    let result: Option<String> = row.get(15)?;
    Ok(Approval {
        id: row.get(0)?,
        operation: row.get(1)?,
        tool: row.get(2)?,
        input: serde_json::from_str(&input).unwrap_or(Value::Null),
        amount: row.get(4)?,
        summary: row.get(5)?,
        status: row.get(6)?,
        requested_by: row.get(7)?,
        channel: row.get(8)?,
        api_key_id: row.get(9)?,
        store_id: row.get(10)?,
        reserved_amount: row.get(11)?,
        created_at: row.get(12)?,
        decided_by: row.get(13)?,
        decided_at: row.get(14)?,
        result: result.and_then(|r| serde_json::from_str(&r).ok()),
        error: row.get(16)?,
        reason: row.get(17)?,
    })
}

impl Approval {
    /// As shown to clients.
    pub fn public_json(&self) -> Value {
        json!({
            "id": self.id,
            "operation": self.operation,
            "tool": self.tool,
            "input": self.input,
            "amount": self.amount,
            "summary": self.summary,
            "status": self.status,
            "requested_by": self.requested_by,
            "channel": self.channel,
            "api_key_id": self.api_key_id,
            "store_id": self.store_id,
            "created_at": self.created_at,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "result": self.result,
            "error": self.error,
            "reason": self.reason,
        })
    }

    /// The JSON Schema of [`Self::public_json`].
    pub fn public_schema() -> Value {
        let text = json!({"type": "string"});
        let maybe_text = json!({"type": ["string", "null"]});
        let fields = [
            "id",
            "operation",
            "tool",
            "input",
            "amount",
            "summary",
            "status",
            "requested_by",
            "channel",
            "api_key_id",
            "store_id",
            "created_at",
            "decided_by",
            "decided_at",
            "result",
            "error",
            "reason",
        ];
        object(
            &fields,
            json!({
                "id": uuid(),
                "operation": {"type": "string", "description": "The operation it runs once approved."},
                "tool": {"type": ["string", "null"], "description": "The MCP tool it was asked through."},
                "input": {"type": "object", "description": "The arguments it runs with."},
                "amount": {"type": ["integer", "null"], "description": "Total KES, when the input names it."},
                "summary": {"type": "string", "description": "What it does, for the person deciding."},
                "status": {"type": "string", "enum": ["pending", "approved", "executed", "failed", "rejected"]},
                "requested_by": {"type": "string", "format": "uuid", "description": "The user who asked (or whose API key did)."},
                "channel": {"type": "string", "description": "`rest` or `mcp`."},
                "api_key_id": nullable(uuid()),
                "store_id": nullable(uuid()),
                "created_at": text,
                "decided_by": nullable(uuid()),
                "decided_at": maybe_text,
                "result": {"description": "The operation's answer once it ran (null before, or if it failed)."},
                "error": {"type": ["string", "null"], "description": "Why the run failed, if it did."},
                "reason": {"type": ["string", "null"], "description": "Why it was rejected, if the person said."},
            }),
        )
    }

    /// The reservation to give back if this intent does not run.
    pub fn reservation(&self) -> Option<Reservation> {
        Some(Reservation {
            key_id: self.api_key_id.clone()?,
            day: self.created_at.get(..10)?.to_string(),
            amount: self.reserved_amount?,
        })
    }
}

/// One approval of the tenant.
pub fn load(conn: &rusqlite::Connection, id: &str) -> Result<Option<Approval>, ApiError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

/// The tenant's approvals, newest first, optionally of one status, and
/// only of `stores` when given (a store-limited caller's scope), plus
/// those of no store when its flag is set.
pub fn list(
    conn: &rusqlite::Connection,
    status: Option<&str>,
    stores: Option<(&[String], bool)>,
    limit: i64,
) -> Result<Vec<Approval>, ApiError> {
    let mut args: Vec<rusqlite::types::Value> = vec![
        status.map_or(rusqlite::types::Value::Null, |s| {
            rusqlite::types::Value::Text(s.to_string())
        }),
        rusqlite::types::Value::Integer(limit),
    ];
    let scope = match stores {
        None => String::new(),
        Some((stores, unassigned)) => {
            let marks: Vec<String> = stores
                .iter()
                .map(|store| {
                    args.push(rusqlite::types::Value::Text(store.clone()));
                    format!("?{}", args.len())
                })
                .collect();
            let within = if marks.is_empty() {
                "0".to_string()
            } else {
                format!("store_id IN ({})", marks.join(", "))
            };
            if unassigned {
                format!(" AND (store_id IS NULL OR {within})")
            } else {
                format!(" AND {within}")
            }
        }
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM approvals WHERE (?1 IS NULL OR status = ?1){scope}
          ORDER BY created_at DESC, id DESC LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Moves a pending approval to `to` (approved or rejected), once: `false`
/// when it is no longer pending.
pub fn claim(
    state: &Core,
    tenant: TenantId,
    id: &str,
    to: &str,
    by: &str,
) -> Result<bool, ApiError> {
    let db = state.tenancy.get(tenant)?;
    let changed = db.conn()?.execute(
        "UPDATE approvals SET status = ?2, decided_by = ?3, decided_at = ?4
          WHERE id = ?1 AND status = 'pending'",
        params![id, to, by, now_rfc3339()],
    )?;
    Ok(changed == 1)
}

/// Longest rejection reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Rejects a pending approval as `by`, with an optional reason, once:
/// `false` when it is no longer pending.
pub fn reject(
    conn: &rusqlite::Connection,
    id: &str,
    by: &str,
    reason: Option<&str>,
) -> Result<bool, ApiError> {
    let changed = conn.execute(
        "UPDATE approvals SET status = 'rejected', decided_by = ?2, decided_at = ?3, reason = ?4
          WHERE id = ?1 AND status = 'pending'",
        params![id, by, now_rfc3339(), reason],
    )?;
    Ok(changed == 1)
}

/// Records how an approved intent's run ended.
pub fn finish(
    state: &Core,
    tenant: TenantId,
    id: &str,
    outcome: &Result<Value, String>,
) -> Result<(), ApiError> {
    let db = state.tenancy.get(tenant)?;
    let (status, result, error) = match outcome {
        Ok(value) => ("executed", Some(value.to_string()), None),
        Err(message) => ("failed", None, Some(message.clone())),
    };
    db.conn()?.execute(
        "UPDATE approvals SET status = ?2, result = ?3, error = ?4 WHERE id = ?1 AND status = 'approved'",
        params![id, status, result, error],
    )?;
    Ok(())
}
