//! Invitations: a member asks someone by email to join the tenant with a
//! role; the token goes to the mail outbox, never into a response.

use rusqlite::{OptionalExtension, params};

use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::{TenantId, UserId};
use malipo_foundations::time_util::{now_rfc3339, unix_now};
use malipo_foundations::tokens;

/// An invitation as stored.
#[derive(Clone, Debug)]
pub struct Invitation {
    /// Invitation id.
    pub id: String,
    /// The tenant to join.
    pub tenant_id: TenantId,
    /// Who is invited.
    pub email: String,
    /// The role they will hold.
    pub role_id: String,
    /// The store the role is limited to, if any.
    pub store_id: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

impl ControlDb {
    /// Stores an invitation and answers it with its token (to be mailed).
    pub fn create_invitation(
        &self,
        invitation: &Invitation,
        invited_by: UserId,
    ) -> Result<String, ControlError> {
        let raw = tokens::generate("mli_");
        self.conn()?.execute(
            "INSERT INTO invitations (id, tenant_id, email, role_id, store_id, token_hash, invited_by, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                invitation.id,
                invitation.tenant_id.to_string(),
                invitation.email,
                invitation.role_id,
                invitation.store_id,
                tokens::digest(&raw),
                invited_by.to_string(),
                now_rfc3339(),
                invitation.expires_at,
            ],
        )?;
        Ok(raw)
    }

    /// The pending (unused, unexpired) invitation with this token.
    pub fn pending_invitation(&self, raw: &str) -> Result<Option<Invitation>, ControlError> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT id, tenant_id, email, role_id, store_id, expires_at FROM invitations
                  WHERE token_hash = ?1 AND accepted_at IS NULL AND expires_at > ?2",
                params![tokens::digest(raw), unix_now()],
                |row| {
                    let tenant: String = row.get(1)?;
                    Ok(TenantId::parse(&tenant).map(|tenant_id| Invitation {
                        id: row.get(0).unwrap_or_default(),
                        tenant_id,
                        email: row.get(2).unwrap_or_default(),
                        role_id: row.get(3).unwrap_or_default(),
                        store_id: row.get(4).unwrap_or_default(),
                        expires_at: row.get(5).unwrap_or_default(),
                    }))
                },
            )
            .optional()?
            .flatten())
    }

    /// Marks an invitation accepted; `Ok(false)` if someone else won the race.
    pub fn accept_invitation(&self, id: &str) -> Result<bool, ControlError> {
        let changed = self.conn()?.execute(
            "UPDATE invitations SET accepted_at = ?2 WHERE id = ?1 AND accepted_at IS NULL",
            params![id, now_rfc3339()],
        )?;
        Ok(changed == 1)
    }
}
