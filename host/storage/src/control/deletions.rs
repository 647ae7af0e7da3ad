//! Tenant deletion in `control.db`: scheduling it (the tenant is suspended
//! until it is due), cancelling it, finding the tenants due, and purging every
//! row that names a tenant.
//!
//! The purge is generic: it deletes from every table that has a `tenant_id`
//! column (found in `sqlite_master` / `pragma_table_info`, so tables added by
//! later migrations are covered without a list to keep up to date), then the
//! `tenants` row itself, in one transaction. The platform audit keeps its
//! rows: it is the history of what was done to the tenant, deletion included.

use rusqlite::{OptionalExtension, params};

use crate::control::tenants::{TENANT_COLUMNS, tenant_from_row};
use crate::control::{ControlDb, ControlError, TenantRecord};
use malipo_foundations::ids::TenantId;
use malipo_foundations::time_util::now_rfc3339;

/// Tables whose rows outlive the tenant they name.
const KEPT_TABLES: &[&str] = &["platform_audit"];

/// Outcome of changing a tenant's status (suspend or reactivate).
#[derive(Debug)]
pub enum StatusChange {
    /// Done; the tenant as it is now.
    Changed(TenantRecord),
    /// No such tenant.
    NoSuchTenant,
    /// The tenant's deletion is scheduled: cancel it first.
    PendingDeletion(TenantRecord),
}

/// Outcome of cancelling a scheduled deletion.
#[derive(Debug)]
pub enum Cancellation {
    /// Cancelled; the tenant has its earlier status back.
    Cancelled(TenantRecord),
    /// No such tenant.
    NoSuchTenant,
    /// The tenant's deletion was not scheduled.
    NotScheduled(TenantRecord),
}

/// What a purge removed from `control.db`.
#[derive(Debug, Default, serde::Serialize)]
pub struct PurgedRows {
    /// Rows deleted, by table (tables with none are left out).
    pub tables: std::collections::BTreeMap<String, usize>,
}

impl PurgedRows {
    /// Rows deleted in all.
    pub fn total(&self) -> usize {
        self.tables.values().sum()
    }
}

fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn tenant_in(
    conn: &rusqlite::Connection,
    id: TenantId,
) -> Result<Option<TenantRecord>, ControlError> {
    Ok(conn
        .query_row(
            &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"),
            [id.to_string()],
            tenant_from_row,
        )
        .optional()?)
}

impl ControlDb {
    /// Suspends (`suspended`) or reactivates (`active`) a tenant, unless its
    /// deletion is scheduled.
    pub fn change_tenant_status(
        &self,
        id: TenantId,
        status: &str,
    ) -> Result<StatusChange, ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some(tenant) = tenant_in(&tx, id)? else {
            return Ok(StatusChange::NoSuchTenant);
        };
        if tenant.pending_deletion() {
            return Ok(StatusChange::PendingDeletion(tenant));
        }
        tx.execute(
            "UPDATE tenants SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.to_string(), status, now_rfc3339()],
        )?;
        let tenant = tenant_in(&tx, id)?;
        tx.commit()?;
        Ok(tenant.map_or(StatusChange::NoSuchTenant, StatusChange::Changed))
    }

    /// Schedules a tenant's deletion at `due_at` (RFC 3339, UTC): the tenant
    /// is suspended now, its status kept for a cancellation. If a deletion
    /// is scheduled already, the earlier time stands. `None`: no such tenant.
    pub fn schedule_tenant_deletion(
        &self,
        id: TenantId,
        due_at: &str,
    ) -> Result<Option<TenantRecord>, ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE tenants
                SET status_before_deletion = COALESCE(status_before_deletion, status),
                    status = 'suspended',
                    deletion_due_at = CASE
                        WHEN deletion_due_at IS NULL OR deletion_due_at > ?2 THEN ?2
                        ELSE deletion_due_at END,
                    updated_at = ?3
              WHERE id = ?1",
            params![id.to_string(), due_at, now_rfc3339()],
        )?;
        let tenant = tenant_in(&tx, id)?;
        tx.commit()?;
        Ok(tenant)
    }

    /// Cancels a scheduled deletion, restoring the status the tenant had.
    pub fn cancel_tenant_deletion(&self, id: TenantId) -> Result<Cancellation, ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some(tenant) = tenant_in(&tx, id)? else {
            return Ok(Cancellation::NoSuchTenant);
        };
        if !tenant.pending_deletion() {
            return Ok(Cancellation::NotScheduled(tenant));
        }
        tx.execute(
            "UPDATE tenants
                SET status = COALESCE(status_before_deletion, 'active'),
                    status_before_deletion = NULL,
                    deletion_due_at = NULL,
                    updated_at = ?2
              WHERE id = ?1",
            params![id.to_string(), now_rfc3339()],
        )?;
        let tenant = tenant_in(&tx, id)?;
        tx.commit()?;
        Ok(tenant.map_or(Cancellation::NoSuchTenant, Cancellation::Cancelled))
    }

    /// The tenants whose deletion is due at `now` (RFC 3339, UTC).
    pub fn tenants_due_for_deletion(&self, now: &str) -> Result<Vec<TenantId>, ControlError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id FROM tenants WHERE deletion_due_at IS NOT NULL AND deletion_due_at <= ?1
              ORDER BY deletion_due_at, id",
        )?;
        let ids = stmt
            .query_map([now], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids.iter().filter_map(|id| TenantId::parse(id)).collect())
    }

    /// Deletes every row naming the tenant: each table with a `tenant_id`
    /// column (the platform audit excepted), then its `tenants` row, in one
    /// transaction. Users stay: they are people, maybe of other tenants.
    pub fn purge_tenant_rows(&self, id: TenantId) -> Result<PurgedRows, ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let tables: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT m.name FROM sqlite_master m
                  WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
                    AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = 'tenant_id')
                  ORDER BY m.name",
            )?;
            stmt.query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut purged = PurgedRows::default();
        let tenant = id.to_string();
        for table in tables.iter().filter(|t| !KEPT_TABLES.contains(&t.as_str())) {
            let deleted = tx.execute(
                &format!("DELETE FROM {} WHERE tenant_id = ?1", quoted(table)),
                [&tenant],
            )?;
            if deleted > 0 {
                purged.tables.insert(table.clone(), deleted);
            }
        }
        let deleted = tx.execute("DELETE FROM tenants WHERE id = ?1", [&tenant])?;
        if deleted > 0 {
            purged.tables.insert("tenants".into(), deleted);
        }
        tx.commit()?;
        Ok(purged)
    }
}
