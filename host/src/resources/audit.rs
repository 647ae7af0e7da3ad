//! `/audit` and `/admin/audit`: reading and verifying the tenant's audit
//! log and the platform audit, as JSON pages or CSV exports.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::audit::chain::{self, Chain, TENANT};
use crate::audit::query::{self, Filters, Format, Page};
use crate::audit::verify;
use crate::core::Core;
use crate::core::operation::{Access, Op, Operation};
use crate::core::operation::{Answer, HostCall, RawBody};
use crate::error::{ApiError, blocking};

/// The input of a listing; `store_id` only for the tenant's log.
pub fn list_input(tenant: bool) -> Value {
    let s = json!({"type": "string"});
    let mut properties = json!({
        "from": {"type": "string", "description": "RFC 3339 time or YYYY-MM-DD (inclusive)"},
        "to": {"type": "string", "description": "RFC 3339 time or YYYY-MM-DD (inclusive: a date covers its whole day)"},
        "actor_id": s,
        "operation": {"type": "string", "description": "An operation name, or a prefix ending in `*` (e.g. `stores.*`)"},
        "outcome": {"type": "string", "enum": ["success", "failure"]},
        "channel": s,
        "target": s,
        "limit": {"type": "integer", "minimum": 1, "maximum": query::MAX_LIMIT, "default": query::DEFAULT_LIMIT},
        "cursor": {"type": "string", "description": "`next_cursor` of the previous page"},
        "format": {"type": "string", "enum": ["json", "csv"], "description": "`csv`: text/csv with a header row; the next page's cursor is in the `X-Next-Cursor` header"}
    });
    if tenant && let Some(fields) = properties.as_object_mut() {
        fields.insert("store_id".into(), s);
    }
    json!({"type": "object", "properties": properties})
}

/// The output of a listing.
pub fn page_output() -> Value {
    json!({"type": "object", "required": ["entries", "next_cursor"], "properties": {
        "entries": {"type": "array", "items": {"type": "object"}},
        "next_cursor": {"type": ["string", "null"]}
    }})
}

/// The output of a verification.
pub fn verify_output() -> Value {
    json!({"type": "object", "required": ["ok", "rows", "first_broken"], "properties": {
        "ok": {"type": "boolean"},
        "rows": {"type": "integer"},
        "head": {"type": ["object", "null"]},
        "first_broken": {"type": ["object", "null"], "description": "{seq, id, reason}: reason is hash_mismatch, prev_hash_mismatch, missing_rows, unchained, truncated or head_mismatch"}
    }})
}

/// The stores a caller is confined to, and whether rows of no store (the
/// tenant's own) are theirs too: with `X-Store-ID`, that store only;
/// otherwise the stores they may use, plus rows of no store. `None` for a
/// caller who may see every store.
pub fn scope(principal: &crate::auth::Principal) -> Option<(Vec<String>, bool)> {
    match (principal.store_id, principal.allowed_store_ids()) {
        (Some(store), _) => Some((vec![store.to_string()], false)),
        (None, Some(stores)) => Some((stores, true)),
        (None, None) => None,
    }
}

fn filters(call: &HostCall, chain: &Chain) -> Result<Filters, ApiError> {
    Filters::parse(&call.input, chain).map_err(|e| ApiError::Validation(e.to_string()))
}

fn answer(chain: &Chain, format: Format, page: Page) -> Answer {
    match format {
        Format::Json => json!({"entries": page.entries, "next_cursor": page.next_cursor}).into(),
        Format::Csv => RawBody {
            content_type: "text/csv; charset=utf-8".into(),
            body: query::csv(chain, &page),
            headers: page
                .next_cursor
                .map(|cursor| vec![("x-next-cursor".to_string(), cursor)])
                .unwrap_or_default(),
        }
        .into(),
    }
}

/// `GET /audit`: the tenant's audit log, newest first.
pub async fn list(state: Arc<Core>, call: HostCall) -> Result<Answer, ApiError> {
    let principal = call.principal()?;
    let tenant = principal.tenant()?;
    let mut filters = filters(&call, &TENANT)?;
    // A store-limited caller reads only their stores' rows.
    if let Some((stores, unassigned)) = scope(principal) {
        filters
            .confine(stores, unassigned)
            .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    }
    let format = filters.format;
    let page = blocking(move || {
        let db = state.tenancy.get(tenant)?;
        let conn = db.conn()?;
        chain::seal_legacy(&conn, &TENANT)?;
        Ok(query::page(&conn, &TENANT, &filters)?)
    })
    .await?;
    Ok(answer(&TENANT, format, page))
}

/// `GET /audit/verify`: walks the tenant's chain, against the head kept in
/// the tenant's file and the one kept in `control.db`.
pub async fn verify(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    let outcome = blocking(move || {
        // Read first: it is only ever written after the tenant's rows
        // commit, so a chain read afterwards reaches it.
        let external = state.control.tenant_audit_head(tenant)?;
        let db = state.tenancy.get(tenant)?;
        let conn = db.conn()?;
        Ok(verify::verify(&conn, &TENANT, external.as_slice())?)
    })
    .await?;
    Ok(json!(outcome))
}

/// `GET /admin/audit`: the platform audit, newest first (super-admin).
pub async fn admin_list(state: Arc<Core>, call: HostCall) -> Result<Answer, ApiError> {
    let filters = filters(&call, &chain::PLATFORM)?;
    let format = filters.format;
    let page = blocking(move || Ok(state.control.platform_audit_page(&filters)?)).await?;
    Ok(answer(&chain::PLATFORM, format, page))
}

/// `GET /admin/audit/verify`: walks the platform audit chain (super-admin).
pub async fn admin_verify(state: Arc<Core>, _call: HostCall) -> Result<Value, ApiError> {
    let outcome = blocking(move || Ok(state.control.verify_platform_audit()?)).await?;
    Ok(json!(outcome))
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    vec![
        Op::get("/audit", "audit.list")
            .permission("audit.read")
            .summary("The organization's audit log, newest first: filters, paging by `cursor`, `format=csv` for a CSV export.")
            .input(list_input(true))
            .output(page_output())
            .handle(list),
        Op::get("/audit/verify", "audit.verify")
            .permission("audit.read")
            .summary("Walk the audit log's hash chain: the first edited, missing or removed row, if any.")
            .output(verify_output())
            .handle(verify),
        Op::get("/admin/audit", "admin.audit.list")
            .summary("The platform audit (tenants created, suspended, reactivated; plans changed), newest first; filters, paging, CSV (super-admin).")
            .input(list_input(false))
            .output(page_output())
            .access(Access::SuperAdmin)
            .handle(admin_list),
        Op::get("/admin/audit/verify", "admin.audit.verify")
            .summary("Walk the platform audit's hash chain (super-admin).")
            .output(verify_output())
            .access(Access::SuperAdmin)
            .handle(admin_verify),
    ]
}
