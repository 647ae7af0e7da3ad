//! Per-tenant feature overrides (control migration V6): a super-admin turns
//! a feature on or off for one tenant over what its plan says.

use std::collections::BTreeMap;

use rusqlite::params;

use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::TenantId;
use malipo_foundations::time_util::now_rfc3339;

impl ControlDb {
    /// The tenant's overrides, feature → enabled.
    pub fn feature_overrides(
        &self,
        tenant: TenantId,
    ) -> Result<BTreeMap<String, bool>, ControlError> {
        let conn = self.conn()?;
        let mut statement = conn.prepare(
            "SELECT feature, enabled FROM tenant_feature_overrides WHERE tenant_id = ?1",
        )?;
        let rows = statement.query_map([tenant.to_string()], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets (`Some`) or removes (`None`) overrides, all in one transaction.
    pub fn set_feature_overrides(
        &self,
        tenant: TenantId,
        changes: &BTreeMap<String, Option<bool>>,
        by: &str,
    ) -> Result<(), ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let now = now_rfc3339();
        for (feature, enabled) in changes {
            match enabled {
                Some(enabled) => tx.execute(
                    "INSERT INTO tenant_feature_overrides (tenant_id, feature, enabled, updated_at, updated_by)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (tenant_id, feature) DO UPDATE SET enabled = excluded.enabled,
                        updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    params![tenant.to_string(), feature, enabled, now, by],
                )?,
                None => tx.execute(
                    "DELETE FROM tenant_feature_overrides WHERE tenant_id = ?1 AND feature = ?2",
                    params![tenant.to_string(), feature],
                )?,
            };
        }
        tx.commit()?;
        Ok(())
    }
}
