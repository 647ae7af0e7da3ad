//! `/admin/*`: the platform super-admin's view of tenants.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::control::{PlatformAuditEntry, TenantRecord, UserRecord};
use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Access, Op, Operation};
use crate::deletion::StatusChange;
use crate::error::{ApiError, blocking};
use crate::ids::{TenantId, UserId};
use crate::json_schema::{object, uuid};
use crate::resources::support::{email, hash_password, name, new_password, provision_tenant};
use crate::time_util::now_rfc3339;

/// The new organization's name: `organization_name` (REST's word, as in
/// `POST /auth/register`) or `name` (the CLI's `--name`); both may be given
/// only if they agree.
fn organization_name(call: &HostCall) -> Result<String, ApiError> {
    let field = match (
        call.opt_str_field("organization_name")?,
        call.opt_str_field("name")?,
    ) {
        (Some(a), Some(b)) if a.trim() != b.trim() => {
            return Err(ApiError::Validation(
                "`organization_name` and `name` name the same thing; give one of them".into(),
            ));
        }
        (Some(a), _) => ("organization_name", a),
        (None, Some(b)) => ("name", b),
        (None, None) => {
            return Err(ApiError::Validation(
                "`organization_name` (or `name`) is required".into(),
            ));
        }
    };
    name(&field.1, field.0, 120)
}

/// `POST /admin/tenants`: a tenant for a new or existing owner.
pub async fn create_tenant(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let actor = call.principal()?.user_id;
    let organization = organization_name(&call)?;
    let owner_email = email(&call.str_field("owner_email")?)?;
    let plan = crate::billing::chosen_plan(&state, call.opt_str_field("plan_id")?)?;
    let state_for_db = Arc::clone(&state);
    let lookup = owner_email.clone();
    let existing = blocking(move || Ok(state_for_db.control.user_by_email(&lookup)?)).await?;
    let (owner, create) = match existing {
        Some(user) => (user, false),
        None => {
            let password = new_password(&call.str_field("owner_password")?)?;
            let full_name = name(
                &call
                    .opt_str_field("owner_full_name")?
                    .unwrap_or_else(|| organization.clone()),
                "owner_full_name",
                120,
            )?;
            let user = UserRecord {
                id: UserId::new(),
                email: owner_email,
                full_name,
                password_hash: hash_password(password).await?,
                is_super_admin: false,
                status: "active".into(),
                created_at: now_rfc3339(),
            };
            (user, true)
        }
    };
    let tenant = provision_tenant(
        &state,
        &organization,
        &owner,
        create,
        &call.meta,
        Some(actor),
    )
    .await?;
    crate::billing::start_subscription(&state, tenant.id, plan).await?;
    let tenant = crate::billing::tenant_json(&state, &tenant).await;
    Ok(json!({"tenant": tenant, "owner": owner.public_json()}))
}

/// `GET /admin/tenants`: every organization with its status, plan and
/// subscription status, this month's usage, last activity (its newest
/// audit row) and the size of its database file.
pub async fn list_tenants(state: Arc<Core>, _call: HostCall) -> Result<Value, ApiError> {
    let state_for_db = Arc::clone(&state);
    let tenants = blocking(move || Ok(state_for_db.control.tenants()?)).await?;
    let mut rows = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        let mut row = tenant.public_json();
        if let Ok(Some(plan)) = crate::billing::entitlements(&state, tenant.id).await {
            row["plan"] = json!(plan.plan.id);
            row["subscription_status"] = json!(plan.status);
        }
        if let Ok(month) = crate::metering::month_totals(&state, tenant.id).await {
            row["usage_this_month"] = json!({
                "period": month.period, "api_calls": month.api_calls, "transactions": month.transactions,
            });
        }
        let state_for_db = Arc::clone(&state);
        let id = tenant.id;
        let (last_activity, db_bytes) = blocking(move || {
            let path = state_for_db.tenancy.path_of(id);
            let size = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let bytes = size(path.clone()) + size(path.with_extension("db-wal"));
            let db = state_for_db.tenancy.get(id)?;
            let last: Option<String> =
                db.conn()?
                    .query_row("SELECT MAX(at) FROM audit_log", [], |row| row.get(0))?;
            Ok((last, bytes))
        })
        .await
        .unwrap_or((None, 0));
        row["last_activity_at"] = json!(last_activity);
        row["db_bytes"] = json!(db_bytes);
        rows.push(row);
    }
    Ok(json!({"tenants": rows}))
}

/// `PATCH /admin/tenants/{id}` `{status}`: suspend or reactivate.
pub async fn update_tenant(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let actor = call.principal()?.user_id;
    let id =
        TenantId::parse(&call.str_field("id")?).ok_or_else(|| ApiError::not_found("tenant"))?;
    let status = call.str_field("status")?;
    if status != "active" && status != "suspended" {
        return Err(ApiError::Validation(
            "`status` must be `active` or `suspended`".into(),
        ));
    }
    let meta = call.meta.clone();
    let tenant = blocking(move || {
        match state.control.change_tenant_status(id, &status)? {
            StatusChange::Changed(_) => {}
            StatusChange::NoSuchTenant => return Err(ApiError::not_found("tenant")),
            StatusChange::PendingDeletion(tenant) => {
                return Err(ApiError::Conflict(format!(
                    "this organization is scheduled for deletion at {}; cancel the deletion first",
                    tenant.deletion_due_at.unwrap_or_default()
                )));
            }
        }
        state.control.platform_audit(&PlatformAuditEntry {
            actor_id: Some(actor.to_string()),
            channel: meta.channel.clone(),
            operation: format!(
                "tenant.{}",
                if status == "active" {
                    "reactivated"
                } else {
                    "suspended"
                }
            ),
            target: Some(id.to_string()),
            outcome: "success".into(),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            request_id: Some(meta.request_id.clone()),
            detail: None,
        })?;
        Ok(state.control.tenant(id)?)
    })
    .await?
    .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(tenant.public_json())
}

/// One row of `GET /admin/tenants`: the organization with its
/// subscription's status, this month's usage, last activity and file size.
fn listed_tenant_schema() -> Value {
    let mut row = TenantRecord::public_schema();
    row["properties"]["usage_this_month"] = json!({
        "type": "object",
        "required": ["period", "api_calls", "transactions"],
        "properties": {
            "period": {"type": "string", "description": "YYYY-MM"},
            "api_calls": {"type": "integer", "minimum": 0},
            "transactions": {"type": "integer", "minimum": 0}
        },
        "description": "Left out when the usage could not be read."
    });
    row["properties"]["last_activity_at"] =
        json!({"type": ["string", "null"], "description": "Its newest audit row's time."});
    row["properties"]["db_bytes"] = json!({"type": "integer", "minimum": 0, "description": "The size of its database file (and its write-ahead log)."});
    if let Some(required) = row["required"].as_array_mut() {
        required.extend([json!("last_activity_at"), json!("db_bytes")]);
    }
    row
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    let str_ = json!({"type": "string"});
    vec![
        Op::post("/admin/tenants", "admin.tenants.create")
            .summary("Create an organization for a new or existing owner (super-admin). The organization's name is `organization_name` (as in `POST /auth/register`) or `name` (as the CLI's `--name`).")
            .input({
                let mut input = object(
                    &["owner_email"],
                    json!({"organization_name": str_, "name": {"type": "string", "description": "Same as `organization_name` (one of the two is required)."}, "owner_email": str_, "owner_password": str_, "owner_full_name": str_, "plan_id": str_}),
                );
                input["anyOf"] = json!([{"required": ["organization_name"]}, {"required": ["name"]}]);
                input
            })
            .output(object(
                &["tenant", "owner"],
                json!({"tenant": TenantRecord::public_schema(), "owner": UserRecord::public_schema()}),
            ))
            .status(201)
            .access(Access::SuperAdmin)
            .handle(create_tenant),
        Op::get("/admin/tenants", "admin.tenants.list")
            .summary("Every organization (super-admin).")
            .output(object(
                &["tenants"],
                json!({"tenants": {"type": "array", "items": listed_tenant_schema()}}),
            ))
            .access(Access::SuperAdmin)
            .handle(list_tenants),
        Op::patch("/admin/tenants/{id}", "admin.tenants.update")
            .summary("Suspend or reactivate an organization (super-admin).")
            .input(object(
                &["id", "status"],
                json!({"id": uuid(), "status": {"type": "string", "enum": ["active", "suspended"]}}),
            ))
            .output(TenantRecord::public_schema())
            .access(Access::SuperAdmin)
            .handle(update_tenant),
    ]
}
