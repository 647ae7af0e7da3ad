//! The platform's plan catalog (host config `plan-catalog`), read-only here, and plan comparisons.

use malipo_plugin_sdk::{Error, Result};
use serde_json::{Value, json};

use crate::period::{DAY_MS, Interval, days_ceil};

/// One plan of the catalog, as far as billing cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub price_kes: i64,
    pub interval: Interval,
    pub trial_days: i64,
    pub active: bool,
}

impl Plan {
    /// The short form used in a subscription: `{id, name, price_kes, interval}`.
    pub fn summary(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "price_kes": self.price_kes,
            "interval": self.interval.as_str(),
        })
    }

    pub fn is_free(&self) -> bool {
        self.price_kes == 0
    }

    /// True if this plan costs more per day than `other` (a year counts as
    /// twelve months, so the comparison is exact in whole KES).
    pub fn costs_more_than(&self, other: &Plan) -> bool {
        i128::from(self.price_kes) * i128::from(other.interval.months())
            > i128::from(other.price_kes) * i128::from(self.interval.months())
    }
}

/// The plans of the platform.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub plans: Vec<Plan>,
}

impl Catalog {
    /// Parses the JSON array of the `plan-catalog` config.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: String| Error::internal(format!("the plan catalog is invalid: {why}"));
        let value: Value = serde_json::from_str(text).map_err(|err| bad(err.to_string()))?;
        let items = value
            .as_array()
            .ok_or_else(|| bad("it is not a JSON array".to_owned()))?;
        let mut plans = Vec::with_capacity(items.len());
        for item in items {
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a plan has no `id`".to_owned()))?;
            let price_kes = item
                .get("price_kes")
                .and_then(Value::as_i64)
                .filter(|p| *p >= 0)
                .ok_or_else(|| bad(format!("plan `{id}` has no whole `price_kes` ≥ 0")))?;
            let interval = item
                .get("interval")
                .and_then(Value::as_str)
                .and_then(Interval::parse)
                .ok_or_else(|| bad(format!("plan `{id}` has no `interval` month or year")))?;
            plans.push(Plan {
                id: id.to_owned(),
                name: item
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(id)
                    .to_owned(),
                price_kes,
                interval,
                trial_days: item
                    .get("trial_days")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .clamp(0, 3660),
                active: item.get("active").and_then(Value::as_bool).unwrap_or(true),
            });
        }
        Ok(Self { plans })
    }

    pub fn find(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.id == id)
    }

    /// The ids a tenant may choose now.
    pub fn active_ids(&self) -> Vec<&str> {
        self.plans
            .iter()
            .filter(|plan| plan.active)
            .map(|plan| plan.id.as_str())
            .collect()
    }

    /// A plan a customer may newly choose: known and active.
    pub fn choosable(&self, id: &str) -> Result<&Plan> {
        match self.find(id) {
            Some(plan) if plan.active => Ok(plan),
            found => Err(Error::validation(format!(
                "`plan_id` {id:?} is {}; choose one of: {}.",
                if found.is_some() {
                    "no longer offered"
                } else {
                    "not a plan"
                },
                self.active_ids().join(", ")
            ))),
        }
    }

    /// Any plan of the catalog, active or not (internal calls).
    pub fn known(&self, id: &str) -> Result<&Plan> {
        self.find(id).ok_or_else(|| {
            Error::validation(format!(
                "`plan_id` {id:?} is not a plan; the plans are: {}.",
                self.plans
                    .iter()
                    .map(|plan| plan.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

/// What an upgrade costs for the rest of the current period: the new plan's
/// price minus the old one's for `remaining` of `length` (both in ms,
/// counted in whole days, a started day counting), rounded up to whole KES
/// and never negative. Answers (amount, remaining days, period days).
pub fn proration(old: &Plan, new: &Plan, remaining_ms: i64, length_ms: i64) -> (i64, i64, i64) {
    let length = days_ceil(length_ms).max(1);
    let remaining = days_ceil(remaining_ms).clamp(0, length);
    let diff = i128::from(new.price_kes - old.price_kes) * i128::from(remaining);
    let length128 = i128::from(length);
    let amount = if diff <= 0 {
        0
    } else {
        (diff + length128 - 1) / length128
    };
    (i64::try_from(amount).unwrap_or(i64::MAX), remaining, length)
}

/// The unused part of a plan's price for `remaining` of `length` ms,
/// rounded down (a credit never exceeds what was paid).
pub fn unused_credit(plan: &Plan, remaining_ms: i64, length_ms: i64) -> (i64, i64, i64) {
    let length = (length_ms / DAY_MS).max(1);
    let remaining = (remaining_ms / DAY_MS).clamp(0, length);
    let credit = i128::from(plan.price_kes) * i128::from(remaining) / i128::from(length);
    (i64::try_from(credit).unwrap_or(0), remaining, length)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub const CATALOG: &str = r#"[
        {"id":"free","name":"Free","price_kes":0,"interval":"month","trial_days":0,"features":["x"],
         "limits":{"max_stores":1,"max_users":3,"api_calls_per_month":10000,"transactions_per_month":100,"requests_per_minute":60},"active":true},
        {"id":"standard","name":"Standard","price_kes":2500,"interval":"month","trial_days":14,"limits":{"max_stores":null},"active":true},
        {"id":"premium","name":"Premium","price_kes":7500,"interval":"month","trial_days":14,"active":true},
        {"id":"direct","name":"Direct","price_kes":1000,"interval":"month","trial_days":0,"active":true},
        {"id":"premium_yearly","name":"Premium yearly","price_kes":75000,"interval":"year","trial_days":0,"active":true},
        {"id":"legacy","name":"Legacy","price_kes":1500,"interval":"month","trial_days":0,"active":false}
    ]"#;

    pub fn catalog() -> Catalog {
        Catalog::parse(CATALOG).expect("test catalog parses")
    }

    #[test]
    fn parses_the_catalog() {
        let catalog = catalog();
        let standard = catalog.find("standard").expect("standard");
        assert_eq!(standard.price_kes, 2500);
        assert_eq!(standard.trial_days, 14);
        assert_eq!(standard.interval, Interval::Month);
        assert!(!catalog.find("legacy").expect("legacy").active);
        assert_eq!(
            catalog.active_ids(),
            vec!["free", "standard", "premium", "direct", "premium_yearly"]
        );
        assert!(Catalog::parse("{}").is_err());
        assert!(Catalog::parse(r#"[{"id":"x","price_kes":-1,"interval":"month"}]"#).is_err());
        assert!(Catalog::parse(r#"[{"id":"x","price_kes":1,"interval":"week"}]"#).is_err());
    }

    #[test]
    fn inactive_and_unknown_plans_cannot_be_chosen() {
        let catalog = catalog();
        let err = catalog.choosable("legacy").expect_err("inactive");
        assert_eq!(err.code, Error::VALIDATION_FAILED);
        assert!(err.message.contains("free, standard, premium"), "{err}");
        assert!(catalog.choosable("gold").is_err());
        assert!(catalog.known("legacy").is_ok());
        assert!(catalog.known("gold").is_err());
    }

    #[test]
    fn compares_prices_per_day() {
        let catalog = catalog();
        let plan = |id| catalog.find(id).expect("plan");
        assert!(plan("premium").costs_more_than(plan("standard")));
        assert!(!plan("standard").costs_more_than(plan("premium")));
        assert!(!plan("standard").costs_more_than(plan("standard")));
        assert!(plan("standard").costs_more_than(plan("free")));
        // 75000 a year is 6250 a month: more than Standard, less than Premium.
        assert!(plan("premium_yearly").costs_more_than(plan("standard")));
        assert!(!plan("premium_yearly").costs_more_than(plan("premium")));
    }

    #[test]
    fn prorates_an_upgrade_halfway_through() {
        let catalog = catalog();
        let standard = catalog.find("standard").expect("standard");
        let premium = catalog.find("premium").expect("premium");
        assert_eq!(
            proration(standard, premium, 15 * DAY_MS, 30 * DAY_MS),
            (2500, 15, 30)
        );
        // 12 of 30 days: 5000 × 12 / 30 = 2000 exactly.
        assert_eq!(
            proration(standard, premium, 12 * DAY_MS, 30 * DAY_MS),
            (2000, 12, 30)
        );
        // 11 of 31 days: 5000 × 11 / 31 = 1774.19… → 1775 (rounded up).
        assert_eq!(
            proration(standard, premium, 11 * DAY_MS - 5, 31 * DAY_MS),
            (1775, 11, 31)
        );
        // Never negative.
        assert_eq!(proration(premium, standard, 15 * DAY_MS, 30 * DAY_MS).0, 0);
        assert_eq!(
            unused_credit(standard, 15 * DAY_MS + 7, 30 * DAY_MS),
            (1250, 15, 30)
        );
    }
}
