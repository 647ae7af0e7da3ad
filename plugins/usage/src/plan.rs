//! The tenant's plan and limits, from the host setting `entitlements`.

use serde_json::Value;

/// What the plan allows; `None` means unlimited or unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Absent when the host knows no plan for the tenant.
    pub id: Option<String>,
    pub name: Option<String>,
    pub max_stores: Option<u64>,
    pub max_users: Option<u64>,
    pub api_calls_per_month: Option<u64>,
    pub transactions_per_month: Option<u64>,
}

impl Plan {
    /// Reads the `entitlements` JSON, e.g.
    /// `{"plan":{"id":"free","name":"Free","limits":{"max_stores":1,…}},"status":"active"}`.
    /// Anything missing or malformed counts as unknown (no limit).
    pub fn from_entitlements(text: Option<&str>) -> Self {
        let Some(value) = text.and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
            return Self::default();
        };
        let plan = &value["plan"];
        let limits = &plan["limits"];
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Self {
            id: text(&plan["id"]),
            name: text(&plan["name"]),
            max_stores: limit(&limits["max_stores"]),
            max_users: limit(&limits["max_users"]),
            api_calls_per_month: limit(&limits["api_calls_per_month"]),
            transactions_per_month: limit(&limits["transactions_per_month"]),
        }
    }

    /// `{id, name}`, or null when no plan is known.
    pub fn to_json(&self) -> Value {
        match &self.id {
            Some(id) => serde_json::json!({ "id": id, "name": self.name }),
            None => Value::Null,
        }
    }
}

/// A limit: a non-negative whole number; null, negative or anything else
/// means no limit.
fn limit(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    match value.as_f64() {
        // Truncation is intended: 10000.0 (or 10000.5) allows 10000.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f) if f.is_finite() && f >= 0.0 => Some(f as u64),
        _ => None,
    }
}

/// How much of `limit` `used` is, in percent with one decimal; null when
/// there is no limit. A limit of 0 is fully used.
pub fn percent(used: i64, limit: Option<u64>) -> Option<f64> {
    let limit = limit?;
    if limit == 0 {
        return Some(100.0);
    }
    #[allow(clippy::cast_precision_loss)]
    let ratio = used.max(0) as f64 * 100.0 / limit as f64;
    Some((ratio * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_plan_and_its_limits() {
        let plan = Plan::from_entitlements(Some(
            r#"{"plan":{"id":"free","name":"Free","limits":{"max_stores":1,"max_users":3,
            "api_calls_per_month":10000,"transactions_per_month":null,"requests_per_minute":60},
            "features":["mcp"]},"status":"active"}"#,
        ));
        assert_eq!(
            plan,
            Plan {
                id: Some("free".to_owned()),
                name: Some("Free".to_owned()),
                max_stores: Some(1),
                max_users: Some(3),
                api_calls_per_month: Some(10_000),
                transactions_per_month: None,
            }
        );
        assert_eq!(
            plan.to_json(),
            serde_json::json!({"id": "free", "name": "Free"})
        );
    }

    #[test]
    fn unknown_or_malformed_entitlements_mean_no_limits() {
        assert_eq!(Plan::from_entitlements(None), Plan::default());
        assert_eq!(Plan::from_entitlements(Some("not json")), Plan::default());
        assert_eq!(Plan::from_entitlements(None).to_json(), Value::Null);
        let plan = Plan::from_entitlements(Some(
            r#"{"plan":{"id":"x","limits":{"max_stores":-1,"max_users":"3","api_calls_per_month":2.0}}}"#,
        ));
        assert_eq!(plan.max_stores, None);
        assert_eq!(plan.max_users, None);
        assert_eq!(plan.api_calls_per_month, Some(2));
    }

    #[test]
    fn percent_of_a_limit() {
        assert_eq!(percent(5, None), None);
        assert_eq!(percent(1, Some(3)), Some(33.3));
        assert_eq!(percent(8_000, Some(10_000)), Some(80.0));
        assert_eq!(percent(150, Some(100)), Some(150.0));
        assert_eq!(percent(0, Some(0)), Some(100.0));
    }
}
