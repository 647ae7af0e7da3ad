//! Guardrails of API keys, which is what people hand to AI assistants: the
//! MCP tools a key may call, and the money its calls may move — per call
//! and per UTC day. The amount caps apply wherever the key is used (REST
//! or MCP); the day's total is reserved before a call runs and given back
//! if the call fails or its approval is rejected.

use std::sync::Arc;

use serde_json::Value;

use crate::auth::{Credential, Principal};
use crate::core::Core;
use crate::core::operation::Operation;
use malipo_foundations::error::{ApiError, blocking};
use malipo_runtime::plugins::manifest::MoneyMovement;

/// An amount counted against a key's daily cap, to give back on failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The key.
    pub key_id: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Whole KES.
    pub amount: i64,
}

/// Refuses a tool that is not on the key's allow-list.
pub fn check_tool(principal: &Principal, tool: &str) -> Result<(), ApiError> {
    if let Credential::ApiKey { guardrails, .. } = &principal.credential
        && let Some(allowed) = &guardrails.allowed_tools
        && !allowed.iter().any(|t| t == tool)
    {
        return Err(ApiError::LimitExceeded(format!(
            "this API key may not call the tool `{tool}`; it may call: {}",
            if allowed.is_empty() {
                "no tools".to_string()
            } else {
                allowed.join(", ")
            }
        )));
    }
    Ok(())
}

/// The values a JSON pointer with `*` segments (every array item) selects.
fn select<'a>(value: &'a Value, segments: &[&str], out: &mut Vec<&'a Value>) {
    let Some((first, rest)) = segments.split_first() else {
        out.push(value);
        return;
    };
    match (*first, value) {
        ("*", Value::Array(items)) => {
            for item in items {
                select(item, rest, out);
            }
        }
        (key, Value::Object(fields)) => {
            if let Some(next) = fields.get(key) {
                select(next, rest, out);
            }
        }
        (index, Value::Array(items)) => {
            if let Some(next) = index.parse::<usize>().ok().and_then(|i| items.get(i)) {
                select(next, rest, out);
            }
        }
        _ => {}
    }
}

/// The total the input asks to move: the sum of the declared amount fields,
/// or `None` when none of them is present.
pub fn amount_of(money: &MoneyMovement, input: &Value) -> Result<Option<i64>, ApiError> {
    let mut found = Vec::new();
    for field in &money.amount_fields {
        let segments: Vec<&str> = field.trim_start_matches('/').split('/').collect();
        select(input, &segments, &mut found);
    }
    if found.is_empty() {
        return Ok(None);
    }
    let mut total: i64 = 0;
    for value in found {
        let amount = value
            .as_i64()
            .or_else(|| value.as_f64().map(|f| f.ceil() as i64))
            .filter(|a| *a >= 0)
            .ok_or_else(|| ApiError::Validation("amounts must be non-negative numbers".into()))?;
        total = total.saturating_add(amount);
    }
    Ok(Some(total))
}

/// Today, UTC, as `YYYY-MM-DD`.
fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

/// Checks the key's amount caps for a money-moving operation and, when
/// `commit`, reserves the amount against its daily cap (a dry run only
/// checks). `Ok(None)` when nothing was reserved.
pub async fn reserve(
    state: &Arc<Core>,
    principal: &Principal,
    op: &Operation,
    input: &Value,
    commit: bool,
) -> Result<Option<Reservation>, ApiError> {
    let (Some(money), Credential::ApiKey { id, guardrails, .. }) =
        (&op.spec.money, &principal.credential)
    else {
        return Ok(None);
    };
    if guardrails.max_amount_per_call.is_none() && guardrails.max_amount_per_day.is_none() {
        return Ok(None);
    }
    let amount = amount_of(money, input)?.ok_or_else(|| {
        ApiError::LimitExceeded(
            "this API key has amount limits: pass `amount` explicitly so the call can be checked against them"
                .into(),
        )
    })?;
    if let Some(cap) = guardrails.max_amount_per_call
        && amount > cap
    {
        return Err(ApiError::LimitExceeded(format!(
            "this call would move KES {amount}, over this API key's limit of KES {cap} per call; \
             ask for a smaller amount or have a person do it"
        )));
    }
    let Some(cap) = guardrails.max_amount_per_day else {
        return Ok(None);
    };
    let reservation = Reservation {
        key_id: id.clone(),
        day: today(),
        amount,
    };
    let state_for_db = Arc::clone(state);
    let attempt = reservation.clone();
    let (reserved, spent) = blocking(move || {
        let control = &state_for_db.control;
        if !commit {
            let spent = control.key_spend(&attempt.key_id, &attempt.day)?;
            return Ok((spent.saturating_add(attempt.amount) <= cap, spent));
        }
        let reserved =
            control.reserve_key_spend(&attempt.key_id, &attempt.day, attempt.amount, cap)?;
        let spent = control.key_spend(&attempt.key_id, &attempt.day)?;
        Ok((reserved, spent))
    })
    .await?;
    if !reserved {
        return Err(ApiError::LimitExceeded(format!(
            "this call would move KES {amount}, but this API key has already moved KES {spent} of its \
             KES {cap} limit today (UTC); try again tomorrow or have a person do it"
        )));
    }
    Ok(commit.then_some(reservation))
}

/// The permissions a role grants, or `None` for the Owner role (which
/// holds everything).
fn role_grants(role: &Value) -> Option<Vec<String>> {
    if role["is_system"] == Value::Bool(true) && role["name"] == "Owner" {
        return None;
    }
    Some(
        role["permissions"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// Refuses a grant made with an API key that would hand out more than the
/// key itself holds: the role's permissions are checked against the key's
/// permissions, not its maker's. `role` is the granted role (as the rbac
/// plugin answers it); only a person may grant the Owner role.
pub fn check_key_grant(principal: &Principal, role: &Value) -> Result<(), ApiError> {
    let Credential::ApiKey { permissions, .. } = &principal.credential else {
        return Ok(());
    };
    let Some(grants) = role_grants(role) else {
        return Err(ApiError::Forbidden(
            "an API key cannot grant the Owner role; a signed-in Owner must".into(),
        ));
    };
    let beyond: Vec<&String> = grants.iter().filter(|p| !permissions.contains(p)).collect();
    if beyond.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this API key cannot grant permissions it does not hold itself: {beyond:?}"
        )))
    }
}

/// The grant checks of role operations called with an API key (REST or
/// MCP): assigning a role, or giving a role permissions, never hands out
/// more than the key's own permissions.
pub async fn check_role_operation(
    state: &Arc<Core>,
    principal: &Principal,
    op: &Operation,
    input: &Value,
    meta: &crate::core::operation::RequestMeta,
) -> Result<(), ApiError> {
    if !matches!(principal.credential, Credential::ApiKey { .. }) {
        return Ok(());
    }
    let is_authorizer = matches!(&op.target, crate::core::operation::Target::Plugin(plugin)
        if state.runtime.authorizer_plugin().is_some_and(|p| &p.manifest.name == plugin));
    if !is_authorizer {
        return Ok(());
    }
    match op.spec.name.as_str() {
        "user-roles.assign" => {
            let Some(role_id) = input.get("role_id").and_then(Value::as_str) else {
                return Ok(());
            };
            let tenant = principal.tenant()?;
            let role = crate::core::authz::rbac(
                state,
                tenant,
                None,
                "roles.get",
                serde_json::json!({"id": role_id}),
                meta,
            )
            .await?;
            check_key_grant(principal, &role)
        }
        "roles.create" | "roles.update" | "roles.set-permissions" => {
            let role = serde_json::json!({"permissions": input.get("permissions").cloned().unwrap_or(Value::Null)});
            check_key_grant(principal, &role)
        }
        _ => Ok(()),
    }
}

/// Gives a reserved amount back.
pub async fn release(state: &Arc<Core>, reservation: Reservation) {
    let state = Arc::clone(state);
    let released = blocking(move || {
        Ok(state.control.release_key_spend(
            &reservation.key_id,
            &reservation.day,
            reservation.amount,
        )?)
    })
    .await;
    if let Err(error) = released {
        tracing::error!(?error, "could not give back a reserved amount");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use malipo_runtime::plugins::manifest::MoneyDirection;
    use serde_json::json;

    fn money(fields: &[&str]) -> MoneyMovement {
        MoneyMovement {
            direction: MoneyDirection::Outgoing,
            amount_fields: fields.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn sums_every_item_of_an_array() {
        let input = json!({"items": [{"amount": 100}, {"amount": 250}]});
        let total = amount_of(&money(&["/items/*/amount"]), &input)
            .ok()
            .flatten();
        assert_eq!(total, Some(350));
    }

    #[test]
    fn absent_amount_is_none_and_bad_amount_is_refused() {
        assert_eq!(
            amount_of(&money(&["/amount"]), &json!({})).ok().flatten(),
            None
        );
        assert!(amount_of(&money(&["/amount"]), &json!({"amount": "ten"})).is_err());
        assert!(amount_of(&money(&["/amount"]), &json!({"amount": -5})).is_err());
    }
}
