//! The plan catalog the platform super-admin manages, platform settings,
//! and the charges the platform makes to collect tenants' invoices.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::TenantId;
use malipo_foundations::time_util::now_rfc3339;

/// Limits a plan may set; anything else in `limits` is refused.
pub const LIMIT_NAMES: &[&str] = &[
    "max_stores",
    "max_users",
    "api_calls_per_month",
    "transactions_per_month",
    "requests_per_minute",
];

/// One plan of the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Stable id, e.g. `standard`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Price per interval, whole KES.
    pub price_kes: i64,
    /// `month` or `year`.
    pub interval: String,
    /// Days of free trial for a new subscriber.
    pub trial_days: i64,
    /// Feature flags, e.g. `mcp`, `bulk_payouts`.
    pub features: Vec<String>,
    /// Limits by name ([`LIMIT_NAMES`]); `null` is unlimited.
    pub limits: Map<String, Value>,
    /// Whether new subscribers may choose it.
    pub active: bool,
}

impl Plan {
    /// Whether the plan includes `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// The limit named `name`; `None` is unlimited.
    pub fn limit(&self, name: &str) -> Option<u64> {
        self.limits.get(name).and_then(Value::as_u64)
    }
}

const PLAN_COLUMNS: &str = "id, name, price_kes, interval, trial_days, features, limits, active";

fn plan_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Plan> {
    let features: String = row.get(5)?;
    let limits: String = row.get(6)?;
    Ok(Plan {
        id: row.get(0)?,
        name: row.get(1)?,
        price_kes: row.get(2)?,
        interval: row.get(3)?,
        trial_days: row.get(4)?,
        features: serde_json::from_str(&features).unwrap_or_default(),
        limits: serde_json::from_str(&limits).unwrap_or_default(),
        active: row.get(7)?,
    })
}

/// A charge the platform made for a tenant's invoice.
#[derive(Clone, Debug)]
pub struct PlatformCharge {
    /// The platform tenant's M-Pesa transaction id.
    pub transaction_id: String,
    /// Whose invoice.
    pub tenant_id: TenantId,
    /// The invoice, in that tenant's billing.
    pub invoice_id: String,
    /// The billing plugin's payment attempt.
    pub attempt_id: String,
    /// Amount asked, KES.
    pub amount_kes: i64,
    /// `pending` or `settled`.
    pub status: String,
}

impl ControlDb {
    /// Every plan, in catalog order.
    pub fn plans(&self) -> Result<Vec<Plan>, ControlError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans ORDER BY position, id"
        ))?;
        let plans = stmt
            .query_map([], plan_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(plans)
    }

    /// Adds a plan; `Ok(false)` if the id is taken.
    pub fn create_plan(&self, plan: &Plan) -> Result<bool, ControlError> {
        let inserted = self.write_plan(
            "INSERT INTO plans (id, name, price_kes, interval, trial_days, features, limits, active, position, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT COALESCE(MAX(position), 0) + 1 FROM plans), ?9, ?9)
             ON CONFLICT (id) DO NOTHING",
            plan,
        )?;
        Ok(inserted == 1)
    }

    /// Replaces a plan's fields; `Ok(false)` if there is no such plan.
    pub fn update_plan(&self, plan: &Plan) -> Result<bool, ControlError> {
        let updated = self.write_plan(
            "UPDATE plans SET name = ?2, price_kes = ?3, interval = ?4, trial_days = ?5, features = ?6,
                 limits = ?7, active = ?8, updated_at = ?9 WHERE id = ?1",
            plan,
        )?;
        Ok(updated == 1)
    }

    /// Runs `sql` with a plan's fields as `?1`…`?8` (id, name, price,
    /// interval, trial days, features, limits, active) and now as `?9`.
    fn write_plan(&self, sql: &str, plan: &Plan) -> Result<usize, ControlError> {
        Ok(self.conn()?.execute(
            sql,
            params![
                plan.id,
                plan.name,
                plan.price_kes,
                plan.interval,
                plan.trial_days,
                serde_json::to_string(&plan.features).unwrap_or_else(|_| "[]".into()),
                Value::Object(plan.limits.clone()).to_string(),
                plan.active,
                now_rfc3339()
            ],
        )?)
    }

    /// A platform setting.
    pub fn platform_setting(&self, key: &str) -> Result<Option<String>, ControlError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT value FROM platform_settings WHERE key = ?1",
                [key],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Sets a platform setting.
    pub fn set_platform_setting(&self, key: &str, value: &str) -> Result<(), ControlError> {
        self.conn()?.execute(
            "INSERT INTO platform_settings (key, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = ?2, updated_at = ?3",
            params![key, value, now_rfc3339()],
        )?;
        Ok(())
    }

    /// Records a charge the platform started.
    pub fn record_charge(&self, charge: &PlatformCharge) -> Result<(), ControlError> {
        self.conn()?.execute(
            "INSERT INTO platform_charges (transaction_id, tenant_id, invoice_id, attempt_id, amount_kes, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (transaction_id) DO NOTHING",
            params![
                charge.transaction_id,
                charge.tenant_id.to_string(),
                charge.invoice_id,
                charge.attempt_id,
                charge.amount_kes,
                now_rfc3339()
            ],
        )?;
        Ok(())
    }

    /// The charge of a platform transaction, if it is one.
    pub fn charge(&self, transaction_id: &str) -> Result<Option<PlatformCharge>, ControlError> {
        let row = self
            .conn()?
            .query_row(
                "SELECT transaction_id, tenant_id, invoice_id, attempt_id, amount_kes, status
                 FROM platform_charges WHERE transaction_id = ?1",
                [transaction_id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.and_then(
            |(transaction_id, tenant, invoice_id, attempt_id, amount_kes, status)| {
                Some(PlatformCharge {
                    transaction_id,
                    tenant_id: TenantId::parse(&tenant)?,
                    invoice_id,
                    attempt_id,
                    amount_kes,
                    status,
                })
            },
        ))
    }

    /// Marks a charge settled.
    pub fn settle_charge(&self, transaction_id: &str) -> Result<(), ControlError> {
        self.conn()?.execute(
            "UPDATE platform_charges SET status = 'settled', settled_at = ?2 WHERE transaction_id = ?1",
            params![transaction_id, now_rfc3339()],
        )?;
        Ok(())
    }
}
