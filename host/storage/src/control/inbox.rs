//! The callback inbox: callbacks stored before they are acknowledged, and
//! handed to their plugin by the host's callback worker (`malipo::callbacks`).

use rusqlite::params;

use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::TenantId;
use malipo_foundations::time_util::unix_now_ms;

/// One stored callback.
#[derive(Clone, Debug)]
pub struct InboxItem {
    /// Row id.
    pub id: i64,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The plugin it is for.
    pub plugin: String,
    /// The path's last segments, e.g. `stk` or `b2c/result`.
    pub kind: String,
    /// The raw JSON body.
    pub body: String,
    /// Milliseconds since the epoch.
    pub received_at: i64,
    /// Deliveries tried so far.
    pub attempts: i64,
}

impl ControlDb {
    /// Stores a callback; answers its id.
    pub fn inbox_push(
        &self,
        tenant: TenantId,
        plugin: &str,
        kind: &str,
        body: &str,
        source_ip: Option<&str>,
    ) -> Result<i64, ControlError> {
        let now = unix_now_ms() as i64;
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO callback_inbox (tenant_id, plugin, kind, body, source_ip, received_at, next_attempt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![tenant.to_string(), plugin, kind, body, source_ip, now],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Pending callbacks due now, oldest first.
    pub fn inbox_due(&self, limit: usize) -> Result<Vec<InboxItem>, ControlError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, tenant_id, plugin, kind, body, received_at, attempts FROM callback_inbox
              WHERE state = 'pending' AND next_attempt <= ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![unix_now_ms() as i64, limit as i64], |row| {
                let tenant: String = row.get(1)?;
                Ok((
                    tenant,
                    InboxItem {
                        id: row.get(0)?,
                        tenant_id: TenantId::new(),
                        plugin: row.get(2)?,
                        kind: row.get(3)?,
                        body: row.get(4)?,
                        received_at: row.get(5)?,
                        attempts: row.get(6)?,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(tenant, item)| {
                Some(InboxItem {
                    tenant_id: TenantId::parse(&tenant)?,
                    ..item
                })
            })
            .collect())
    }

    /// Records the outcome of one delivery: applied, failed for good, or
    /// to be retried after `retry_in_ms`.
    pub fn inbox_settle(
        &self,
        id: i64,
        outcome: Result<(), (String, Option<i64>)>,
    ) -> Result<(), ControlError> {
        let conn = self.conn()?;
        match outcome {
            Ok(()) => conn.execute(
                "UPDATE callback_inbox SET state = 'applied', attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                [id],
            )?,
            Err((error, Some(retry_in_ms))) => conn.execute(
                "UPDATE callback_inbox SET attempts = attempts + 1, last_error = ?2, next_attempt = ?3 WHERE id = ?1",
                params![id, error, unix_now_ms() as i64 + retry_in_ms],
            )?,
            Err((error, None)) => conn.execute(
                "UPDATE callback_inbox SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )?,
        };
        Ok(())
    }
}

/// A stored callback as the super-admin sees it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InboxEntry {
    /// Row id (what `replay` takes).
    pub id: i64,
    /// Its tenant.
    pub tenant_id: String,
    /// The plugin it is for.
    pub plugin: String,
    /// The path's last segments, e.g. `stk` or `b2c/result`, without a
    /// trailing reference ([`split_reference`]).
    pub kind: String,
    /// The plugin's reference to its own request that ended the path (e.g.
    /// the intent id of `stk/<id>`), if any.
    pub reference: Option<String>,
    /// `pending`, `applied` or `failed` (the plugin refused it for good).
    pub state: String,
    /// Deliveries tried so far.
    pub attempts: i64,
    /// Why the last delivery did not apply.
    pub last_error: Option<String>,
    /// Milliseconds since the epoch.
    pub received_at: i64,
    /// The raw JSON body, as Daraja sent it.
    pub body: String,
}

/// A callback path's kind and the reference a plugin put at its end: a
/// last segment that is a UUID (e.g. `stk/<intent id>`) is a reference,
/// so that one kind is one kind whatever request it answers.
pub fn split_reference(path: &str) -> (&str, Option<&str>) {
    match path.rsplit_once('/') {
        Some((head, last)) if uuid::Uuid::parse_str(last).is_ok() => (head, Some(last)),
        _ => (path, None),
    }
}

/// What a replay found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Queued again: the worker delivers it at once.
    Queued,
    /// Only a refused (`failed`) callback can be replayed.
    NotFailed,
    /// No such callback.
    Missing,
}

impl ControlDb {
    /// Stored callbacks in `state`, newest first, optionally of one tenant.
    pub fn inbox_list(
        &self,
        state: &str,
        tenant: Option<TenantId>,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, ControlError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, tenant_id, plugin, kind, state, attempts, last_error, received_at, body
               FROM callback_inbox
              WHERE state = ?1 AND (?2 IS NULL OR tenant_id = ?2)
              ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(
                params![state, tenant.map(|t| t.to_string()), i64::from(limit)],
                |row| {
                    let path: String = row.get(3)?;
                    let (kind, reference) = split_reference(&path);
                    Ok(InboxEntry {
                        id: row.get(0)?,
                        tenant_id: row.get(1)?,
                        plugin: row.get(2)?,
                        kind: kind.to_string(),
                        reference: reference.map(str::to_string),
                        state: row.get(4)?,
                        attempts: row.get(5)?,
                        last_error: row.get(6)?,
                        received_at: row.get(7)?,
                        body: row.get(8)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Queues a refused callback again, due now, its error kept until the
    /// next delivery settles it.
    pub fn inbox_replay(&self, id: i64) -> Result<Replay, ControlError> {
        let conn = self.conn()?;
        let changed = conn.execute(
            "UPDATE callback_inbox SET state = 'pending', next_attempt = ?2 WHERE id = ?1 AND state = 'failed'",
            params![id, unix_now_ms() as i64],
        )?;
        if changed > 0 {
            return Ok(Replay::Queued);
        }
        let exists: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM callback_inbox WHERE id = ?1)",
            [id],
            |row| row.get(0),
        )?;
        Ok(if exists {
            Replay::NotFailed
        } else {
            Replay::Missing
        })
    }
}
