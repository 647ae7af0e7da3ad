//! `/api-keys`: long-lived credentials holding a subset of their maker's
//! permissions. The secret is answered once, as `key`, and stored hashed.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::auth::Credential;
use crate::control::{ApiKeyRecord, KeyGuardrails, NewApiKey};
use crate::core::Core;
use crate::core::operation::HostCall;
use crate::core::operation::{Op, Operation};
use crate::error::{ApiError, blocking};
use crate::json_schema::{deleted, object, uuid, uuid_id_input};
use crate::resources::support::{access_of, name};
use crate::time_util::{parse_rfc3339, unix_now};

/// `POST /api-keys` `{name, permissions, expires_at?}`.
pub async fn create(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let principal = call.principal()?.clone();
    let tenant = principal.tenant()?;
    let key_name = name(&call.str_field("name")?, "name", 120)?;
    let permissions: Vec<String> = match call.input.get("permissions") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|p| p.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::Validation("`permissions` must be a list of permission names".into())
            })?,
        _ => {
            return Err(ApiError::Validation(
                "`permissions` must be a list of permission names".into(),
            ));
        }
    };
    if permissions.is_empty() {
        return Err(ApiError::Validation(
            "`permissions` must name at least one permission".into(),
        ));
    }
    let unknown: Vec<&String> = permissions
        .iter()
        .filter(|p| !state.catalog.iter().any(|c| &c.name == *p))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Validation(format!(
            "unknown permissions: {unknown:?}"
        )));
    }
    let expires_at = match call.opt_str_field("expires_at")? {
        None => None,
        Some(text) => {
            let at = parse_rfc3339(&text)
                .ok_or_else(|| {
                    ApiError::Validation("`expires_at` must be an RFC 3339 time".into())
                })?
                .unix_timestamp();
            if at <= unix_now() {
                return Err(ApiError::Validation(
                    "`expires_at` must be in the future".into(),
                ));
            }
            Some(at)
        }
    };
    // A key never holds more than its maker (nor than the key making it).
    let access = access_of(&state, tenant, principal.user_id, None, &call.meta).await?;
    let held: Vec<String> = access["permissions"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let limit: Option<&Vec<String>> = match &principal.credential {
        Credential::ApiKey { permissions, .. } => Some(permissions),
        Credential::Session { .. } => None,
    };
    let beyond: Vec<&String> = permissions
        .iter()
        .filter(|p| !held.contains(p) || limit.is_some_and(|l| !l.contains(p)))
        .collect();
    if !beyond.is_empty() {
        return Err(ApiError::Forbidden(format!(
            "you cannot give a key permissions you do not hold: {beyond:?}"
        )));
    }
    let money_out = money_out_permissions(&state);
    let holds_money_out = permissions.iter().any(|p| money_out.contains(p));
    let guardrails = guardrails(&state, &call, holds_money_out)?;
    let guardrails = within_limits(&state, tenant, &principal, guardrails).await?;
    let new = NewApiKey {
        tenant_id: tenant,
        user_id: principal.user_id,
        name: key_name,
        permissions,
        expires_at,
        guardrails,
    };
    let (record, secret) = blocking(move || Ok(state.control.create_api_key(new)?)).await?;
    let mut answer = record.public_json();
    answer["key"] = json!(secret);
    Ok(answer)
}

/// The permissions of operations that send money out (payouts, reversals).
fn money_out_permissions(state: &Core) -> Vec<String> {
    state
        .operations
        .iter()
        .filter(|op| {
            op.spec
                .money
                .as_ref()
                .is_some_and(|m| m.direction == crate::plugins::manifest::MoneyDirection::Outgoing)
        })
        .filter_map(|op| op.spec.permission.clone())
        .collect()
}

/// A new key's limits, checked against its maker's: a key making a key
/// gives it nothing beyond its own tool allow-list, amount caps, stores
/// and approval requirement (absent fields are inherited from it), and the
/// stores of any key are among those its maker may use.
async fn within_limits(
    state: &Arc<Core>,
    tenant: crate::ids::TenantId,
    principal: &crate::auth::Principal,
    mut new: KeyGuardrails,
) -> Result<KeyGuardrails, ApiError> {
    let beyond = |what: &str| {
        ApiError::Forbidden(format!(
            "a key cannot make a key beyond its own limits: {what}"
        ))
    };
    if let Credential::ApiKey {
        guardrails: own, ..
    } = &principal.credential
    {
        match (&own.allowed_tools, &new.allowed_tools) {
            (Some(mine), Some(theirs)) => {
                let extra: Vec<&String> = theirs.iter().filter(|t| !mine.contains(t)).collect();
                if !extra.is_empty() {
                    return Err(beyond(&format!("tools not on its allow-list: {extra:?}")));
                }
            }
            (Some(mine), None) => new.allowed_tools = Some(mine.clone()),
            (None, _) => {}
        }
        for (name, mine, theirs) in [
            (
                "max_amount_per_call",
                own.max_amount_per_call,
                &mut new.max_amount_per_call,
            ),
            (
                "max_amount_per_day",
                own.max_amount_per_day,
                &mut new.max_amount_per_day,
            ),
        ] {
            match (mine, *theirs) {
                (Some(cap), Some(asked)) if asked > cap => {
                    return Err(beyond(&format!("`{name}` over its own KES {cap}")));
                }
                (Some(cap), None) => *theirs = Some(cap),
                _ => {}
            }
        }
        if own.approval_required && !new.approval_required {
            return Err(beyond(
                "its money out waits for approval, so the new key's must too (`approval_required`)",
            ));
        }
    }
    // Stores: among those the maker (or making key) may use.
    let usable = principal.allowed_store_ids();
    match (&usable, &new.store_ids) {
        (Some(usable), Some(asked)) => {
            let extra: Vec<&String> = asked.iter().filter(|s| !usable.contains(s)).collect();
            if !extra.is_empty() {
                return Err(ApiError::Forbidden(format!(
                    "`store_ids` names stores you may not use: {extra:?}"
                )));
            }
        }
        (Some(usable), None) => {
            if matches!(principal.credential, Credential::ApiKey { .. }) {
                new.store_ids = Some(usable.clone());
            }
        }
        (None, Some(asked)) => {
            for store in asked {
                let id = crate::ids::StoreId::parse(store).ok_or_else(|| {
                    ApiError::Validation(format!("`store_ids`: `{store}` is not a store id"))
                })?;
                if !crate::core::authz::may_use_store(state, tenant, principal.user_id, id).await? {
                    return Err(ApiError::Validation(format!(
                        "`store_ids`: no active store `{store}`"
                    )));
                }
            }
        }
        (None, None) => {}
    }
    Ok(new)
}

/// The optional `allowed_tools`, `max_amount_per_call`,
/// `max_amount_per_day`, `store_ids` and `approval_required` of a new key,
/// checked. `approval_required` defaults to `holds_money_out`.
fn guardrails(
    state: &Core,
    call: &HostCall,
    holds_money_out: bool,
) -> Result<KeyGuardrails, ApiError> {
    let allowed_tools = match call.input.get("allowed_tools") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(items)) => {
            let names = items
                .iter()
                .map(|t| t.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::Validation("`allowed_tools` must be a list of tool names".into())
                })?;
            let unknown: Vec<&String> = names
                .iter()
                .filter(|name| {
                    !state
                        .operations
                        .iter()
                        .any(|op| op.is_tool() && &op.tool_name() == *name)
                })
                .collect();
            if !unknown.is_empty() {
                return Err(ApiError::Validation(format!(
                    "unknown MCP tools in `allowed_tools`: {unknown:?}"
                )));
            }
            Some(names)
        }
        Some(_) => {
            return Err(ApiError::Validation(
                "`allowed_tools` must be a list of tool names".into(),
            ));
        }
    };
    let cap = |field: &str| -> Result<Option<i64>, ApiError> {
        match call.input.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => match value.as_i64() {
                Some(n) if n >= 1 => Ok(Some(n)),
                _ => Err(ApiError::Validation(format!(
                    "`{field}` must be a whole number of KES, at least 1"
                ))),
            },
        }
    };
    let store_ids = match call.input.get("store_ids") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(items)) => Some(
            items
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::Validation("`store_ids` must be a list of store ids".into())
                })?,
        ),
        Some(_) => {
            return Err(ApiError::Validation(
                "`store_ids` must be a list of store ids".into(),
            ));
        }
    };
    let approval_required = match call.input.get("approval_required") {
        None | Some(serde_json::Value::Null) => holds_money_out,
        Some(serde_json::Value::Bool(flag)) => *flag,
        Some(_) => {
            return Err(ApiError::Validation(
                "`approval_required` must be true or false".into(),
            ));
        }
    };
    Ok(KeyGuardrails {
        allowed_tools,
        max_amount_per_call: cap("max_amount_per_call")?,
        max_amount_per_day: cap("max_amount_per_day")?,
        store_ids,
        approval_required,
    })
}

/// `GET /api-keys`.
pub async fn list(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    let keys = blocking(move || Ok(state.control.api_keys_of(tenant)?)).await?;
    Ok(json!({"api_keys": keys.iter().map(|k| k.public_json()).collect::<Vec<_>>()}))
}

/// `DELETE /api-keys/{id}`.
pub async fn delete(state: Arc<Core>, call: HostCall) -> Result<Value, ApiError> {
    let tenant = call.principal()?.tenant()?;
    let id = call.str_field("id")?;
    let answer_id = id.clone();
    let revoked = blocking(move || Ok(state.control.revoke_api_key(tenant, &id)?)).await?;
    if revoked {
        Ok(json!({"deleted": true, "id": answer_id}))
    } else {
        Err(ApiError::not_found("API key"))
    }
}

/// The operations of this module, declared next to their handlers.
pub fn operations() -> Vec<Operation> {
    let str_ = json!({"type": "string"});
    let made = {
        let mut key = ApiKeyRecord::public_schema();
        key["properties"]["key"] =
            json!({"type": "string", "description": "The secret, shown this once."});
        if let Some(required) = key["required"].as_array_mut() {
            required.push(json!("key"));
        }
        key
    };
    vec![
        Op::post("/api-keys", "api-keys.create")
            .permission("api_keys.manage")
            .summary("Create an API key holding some of the caller's permissions; the secret is shown once as `key`. \
                             For an AI assistant, limit it further: `allowed_tools` (MCP tool names it may call), \
                             `max_amount_per_call` and `max_amount_per_day` (whole KES moved by money-moving operations), \
                             `store_ids` (the stores it may use, among the caller's) and `approval_required` (money it sends \
                             out waits for a person's approval, on REST and MCP alike; default true for a key holding a \
                             money-out permission). These limits hold on every channel; a key making a key cannot give it \
                             more than its own permissions and limits.")
            .input(object(
                &["name", "permissions"],
                json!({
                    "name": str_,
                    "permissions": {"type": "array", "items": str_},
                    "expires_at": str_,
                    "allowed_tools": {"type": ["array", "null"], "items": str_},
                    "max_amount_per_call": {"type": ["integer", "null"], "minimum": 1},
                    "max_amount_per_day": {"type": ["integer", "null"], "minimum": 1},
                    "store_ids": {"type": ["array", "null"], "items": uuid()},
                    "approval_required": {"type": ["boolean", "null"]}
                }),
            ))
            .output(made)
            .status(201)
            .handle(create),
        Op::get("/api-keys", "api-keys.list")
            .permission("api_keys.manage")
            .summary("The organization's live API keys.")
            .output(object(
                &["api_keys"],
                json!({"api_keys": {"type": "array", "items": ApiKeyRecord::public_schema()}}),
            ))
            .handle(list),
        Op::delete("/api-keys/{id}", "api-keys.delete")
            .permission("api_keys.manage")
            .summary("Revoke an API key.")
            .input(uuid_id_input())
            .output(deleted())
            .handle(delete),
    ]
}
