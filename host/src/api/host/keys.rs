//! `/api-keys`: long-lived credentials holding a subset of their maker's
//! permissions. The secret is answered once, as `key`, and stored hashed.

use std::sync::Arc;

use serde_json::json;

use super::support::{access_of, name};
use crate::api::operation::{HostCall, HostFuture};
use crate::app::AppState;
use crate::auth::Credential;
use crate::control::{KeyGuardrails, NewApiKey};
use crate::error::{ApiError, blocking};
use crate::time_util::{parse_rfc3339, unix_now};

/// `POST /api-keys` `{name, permissions, expires_at?}`.
pub fn create(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
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
        let guardrails = guardrails(&state, &call)?;
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
    })
}

/// The optional `allowed_tools`, `max_amount_per_call` and
/// `max_amount_per_day` of a new key, checked.
fn guardrails(state: &AppState, call: &HostCall) -> Result<KeyGuardrails, ApiError> {
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
                .filter(|name| state.mcp_tools.get(name).is_none())
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
    Ok(KeyGuardrails {
        allowed_tools,
        max_amount_per_call: cap("max_amount_per_call")?,
        max_amount_per_day: cap("max_amount_per_day")?,
    })
}

/// `GET /api-keys`.
pub fn list(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
        let tenant = call.principal()?.tenant()?;
        let keys = blocking(move || Ok(state.control.api_keys_of(tenant)?)).await?;
        Ok(json!({"api_keys": keys.iter().map(|k| k.public_json()).collect::<Vec<_>>()}))
    })
}

/// `DELETE /api-keys/{id}`.
pub fn delete(state: Arc<AppState>, call: HostCall) -> HostFuture {
    Box::pin(async move {
        let tenant = call.principal()?.tenant()?;
        let id = call.str_field("id")?;
        let answer_id = id.clone();
        let revoked = blocking(move || Ok(state.control.revoke_api_key(tenant, &id)?)).await?;
        if revoked {
            Ok(json!({"deleted": true, "id": answer_id}))
        } else {
            Err(ApiError::not_found("API key"))
        }
    })
}
