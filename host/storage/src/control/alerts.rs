//! Stored alerts about tenants' abnormal behaviour, for super-admins
//! (raised by the host's `malipo::alerts::service`).

use rusqlite::{OptionalExtension, params};

use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::TenantId;
use malipo_foundations::time_util::now_rfc3339;

/// An alert as stored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AlertRecord {
    /// Its number.
    pub id: i64,
    /// The tenant it is about.
    pub tenant_id: String,
    /// The tenant's name, when it still exists.
    pub tenant_name: Option<String>,
    /// `failed_logins`, `failed_payments` or `server_errors`.
    pub kind: String,
    /// How many happened within the window when it was raised.
    pub count: i64,
    /// The count that raises it.
    pub threshold: i64,
    /// The window, in seconds.
    pub window_secs: i64,
    /// RFC 3339.
    pub raised_at: String,
    /// RFC 3339, once a super-admin acknowledged it.
    pub acknowledged_at: Option<String>,
    /// The super-admin who acknowledged it.
    pub acknowledged_by: Option<String>,
}

/// A new alert.
#[derive(Clone, Debug)]
pub struct NewAlert {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its kind.
    pub kind: &'static str,
    /// Count within the window.
    pub count: u64,
    /// The threshold crossed.
    pub threshold: u64,
    /// The window.
    pub window_secs: u64,
}

const SELECT: &str =
    "SELECT a.id, a.tenant_id, t.name, a.kind, a.count, a.threshold, a.window_secs,
        a.raised_at, a.acknowledged_at, a.acknowledged_by
   FROM platform_alerts a LEFT JOIN tenants t ON t.id = a.tenant_id";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRecord> {
    Ok(AlertRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        tenant_name: row.get(2)?,
        kind: row.get(3)?,
        count: row.get(4)?,
        threshold: row.get(5)?,
        window_secs: row.get(6)?,
        raised_at: row.get(7)?,
        acknowledged_at: row.get(8)?,
        acknowledged_by: row.get(9)?,
    })
}

impl ControlDb {
    /// Stores an alert; answers it.
    pub fn insert_alert(&self, alert: &NewAlert) -> Result<AlertRecord, ControlError> {
        let conn = self.conn()?;
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        conn.execute(
            "INSERT INTO platform_alerts (tenant_id, kind, count, threshold, window_secs, raised_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                alert.tenant_id.to_string(),
                alert.kind,
                to_i64(alert.count),
                to_i64(alert.threshold),
                to_i64(alert.window_secs),
                now_rfc3339()
            ],
        )?;
        let id = conn.last_insert_rowid();
        Ok(conn.query_row(&format!("{SELECT} WHERE a.id = ?1"), [id], from_row)?)
    }

    /// Alerts, newest first: only unacknowledged ones when `open_only`,
    /// only one tenant's when `tenant` is given; at most `limit`.
    pub fn alerts(
        &self,
        open_only: bool,
        tenant: Option<TenantId>,
        limit: u32,
    ) -> Result<Vec<AlertRecord>, ControlError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "{SELECT} WHERE (?1 = 0 OR a.acknowledged_at IS NULL)
               AND (?2 IS NULL OR a.tenant_id = ?2)
             ORDER BY a.id DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(
            params![open_only, tenant.map(|t| t.to_string()), limit],
            from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks an alert acknowledged by `by` (no change if it already was);
    /// answers it, or `None` if there is no such alert.
    pub fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
    ) -> Result<Option<AlertRecord>, ControlError> {
        let conn = self.conn()?;
        conn.execute(
            "UPDATE platform_alerts SET acknowledged_at = ?2, acknowledged_by = ?3
              WHERE id = ?1 AND acknowledged_at IS NULL",
            params![id, now_rfc3339(), by],
        )?;
        Ok(conn
            .query_row(&format!("{SELECT} WHERE a.id = ?1"), [id], from_row)
            .optional()?)
    }

    /// The email addresses of every active super-admin.
    pub fn super_admin_emails(&self) -> Result<Vec<String>, ControlError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT email FROM users WHERE is_super_admin = 1 AND status = 'active' ORDER BY email",
        )?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
