//! Feature flags: the features a tenant may use are its plan's, with the
//! overrides a super-admin set for it (`/admin/tenants/{id}/features`); a
//! tenant sees its own effective flags at `/tenant/features`. Changes drop
//! the tenant's cached entitlements, so the gates use them at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::billing::{self, effective_features};
use crate::control::PlatformAuditEntry;
use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Access, Op, Operation};
use crate::error::{ApiError, blocking};
use crate::ids::TenantId;
use crate::json_schema::{uuid, uuid_id_input};

/// Longest feature name.
const MAX_NAME: usize = 40;

/// Whether `name` is a feature name: `[a-z0-9_]{1,40}`.
fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The input schema of `PUT /admin/tenants/{id}/features`.
pub fn put_schema() -> Value {
    json!({"type": "object", "required": ["id", "features"], "properties": {
        "id": uuid(),
        "features": {"type": "object", "additionalProperties": {"type": ["boolean", "null"]},
                     "description": "Feature name (`[a-z0-9_]{1,40}`) → `true` (on whatever the plan), `false` (off whatever the plan) or `null` (remove the override: the plan decides)."}
    }})
}

/// The output schema of the three operations.
pub fn output_schema() -> Value {
    json!({"type": "object", "properties": {
        "tenant_id": {"type": "string"},
        "plan_id": {"type": ["string", "null"]},
        "plan_features": {"type": "array", "items": {"type": "string"}},
        "overrides": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "features": {"type": "array", "items": {"type": "string"}, "description": "The effective features: the plan's with the overrides applied."},
        "gated": {"type": "boolean", "description": "false when plans are not enforced for this organization (e.g. the platform itself): nothing is refused for want of a feature."}
    }})
}

/// The flags of a tenant: plan, overrides and effective.
async fn flags(state: &Arc<Core>, tenant: TenantId) -> Result<Value, ApiError> {
    let state_for_db = Arc::clone(state);
    let overrides = blocking(move || Ok(state_for_db.control.feature_overrides(tenant)?)).await?;
    let entitlements = billing::entitlements(state, tenant).await?;
    let (plan_id, plan_features, features) = match &entitlements {
        Some(e) => (
            Some(e.plan.id.clone()),
            e.plan.features.clone(),
            effective_features(&e.plan, &overrides),
        ),
        None => {
            let on: Vec<String> = overrides
                .iter()
                .filter(|(_, on)| **on)
                .map(|(f, _)| f.clone())
                .collect();
            (None, Vec::new(), on)
        }
    };
    Ok(json!({
        "tenant_id": tenant,
        "plan_id": plan_id,
        "plan_features": plan_features,
        "overrides": overrides,
        "features": features,
        "gated": entitlements.is_some(),
    }))
}

fn tenant_param(call: &HostCall) -> Result<TenantId, ApiError> {
    TenantId::parse(&call.str_field("id")?).ok_or_else(|| ApiError::not_found("tenant"))
}

async fn existing(state: &Arc<Core>, id: TenantId) -> Result<(), ApiError> {
    let state = Arc::clone(state);
    blocking(move || Ok(state.control.tenant(id)?))
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("tenant"))
}

/// `GET /tenant/features`: the caller's organization's effective flags.
pub async fn tenant_get(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    flags(&state, tenant).await
}

/// `GET /admin/tenants/{id}/features` (super-admin).
pub async fn admin_get(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = tenant_param(&call)?;
    existing(&state, tenant).await?;
    flags(&state, tenant).await
}

/// Reads `{"features": {name: true | false | null}}`, every name checked.
fn changes(input: &Value) -> Result<BTreeMap<String, Option<bool>>, ApiError> {
    let features = input
        .get("features")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::Validation("`features` must be an object".into()))?;
    let mut changes = BTreeMap::new();
    for (name, value) in features {
        if !valid_name(name) {
            return Err(ApiError::Validation(format!(
                "`features.{name}`: a feature name is 1 to {MAX_NAME} of a-z, 0-9 and `_`"
            )));
        }
        let enabled = match value {
            Value::Bool(on) => Some(*on),
            Value::Null => None,
            _ => {
                return Err(ApiError::Validation(format!(
                    "`features.{name}` must be true, false or null"
                )));
            }
        };
        changes.insert(name.clone(), enabled);
    }
    Ok(changes)
}

/// `PUT /admin/tenants/{id}/features` (super-admin): sets or removes
/// overrides; platform-audited; in force at once.
pub async fn admin_put(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let actor = call.principal()?.user_id;
    let tenant = tenant_param(&call)?;
    let changes = changes(&call.input)?;
    existing(&state, tenant).await?;
    let meta = call.meta.clone();
    let state_for_db = Arc::clone(&state);
    blocking(move || {
        let state = state_for_db;
        state
            .control
            .set_feature_overrides(tenant, &changes, &actor.to_string())?;
        state.control.platform_audit(&PlatformAuditEntry {
            actor_id: Some(actor.to_string()),
            channel: meta.channel.clone(),
            operation: "tenant.features.changed".into(),
            target: Some(tenant.to_string()),
            outcome: "success".into(),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            request_id: Some(meta.request_id.clone()),
            detail: Some(json!({"features": changes}).to_string()),
        })?;
        Ok(())
    })
    .await?;
    state.billing.invalidate(tenant);
    flags(&state, tenant).await
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    vec![
        Op::get("/tenant/features", "tenant.features")
            .summary("The features this organization may use: its plan's, with any the platform operator turned on or off for it.")
            .output(output_schema())
            .handle(tenant_get),
        Op::get("/admin/tenants/{id}/features", "admin.tenants.features.get")
            .summary("An organization's features: its plan's, the overrides set for it, and the effective ones (super-admin).")
            .input(uuid_id_input())
            .output(output_schema())
            .access(Access::SuperAdmin)
            .handle(admin_get),
        Op::put("/admin/tenants/{id}/features", "admin.tenants.features.set")
            .summary("Turn features on (`true`) or off (`false`) for one organization over its plan, or remove an override (`null`); in force at once (super-admin).")
            .input(put_schema())
            .output(output_schema())
            .access(Access::SuperAdmin)
            .handle(admin_put),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_checked() {
        assert!(valid_name("bulk_payouts"));
        assert!(!valid_name("Bulk"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(41)));
        let ok = changes(&json!({"features": {"mcp": false, "beta": null}})).expect("valid");
        assert_eq!(ok.get("mcp"), Some(&Some(false)));
        assert_eq!(ok.get("beta"), Some(&None));
        assert!(changes(&json!({"features": {"mcp": "yes"}})).is_err());
        assert!(changes(&json!({"features": {"no-dash": true}})).is_err());
    }
}
