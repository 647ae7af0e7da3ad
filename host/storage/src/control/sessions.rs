//! Sessions, rotating refresh tokens and password-reset tokens.
//!
//! A session is one family of refresh tokens. Each refresh spends the token
//! it presents and issues the next; presenting a spent token again means it
//! was stolen or replayed, so the whole family is revoked.

use rusqlite::{OptionalExtension, params};

use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::{TenantId, UserId};
use malipo_foundations::time_util::{now_rfc3339, unix_now};
use malipo_foundations::tokens;

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The token was good: here is its successor.
    Rotated {
        /// The session the token belongs to.
        session_id: String,
        /// Its user.
        user_id: UserId,
        /// Its tenant, if the session is tenant-bound.
        tenant_id: Option<TenantId>,
        /// The new refresh token, to show once.
        refresh_token: String,
    },
    /// A spent token came back: the family is now revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

impl ControlDb {
    /// Starts a session and answers `(session id, first refresh token)`.
    pub fn create_session(
        &self,
        user: UserId,
        tenant: Option<TenantId>,
        ttl_secs: i64,
    ) -> Result<(String, String), ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let session_id = uuid::Uuid::new_v4().to_string();
        let now = now_rfc3339();
        tx.execute(
            "INSERT INTO sessions (id, user_id, tenant_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                session_id,
                user.to_string(),
                tenant.map(|t| t.to_string()),
                now
            ],
        )?;
        let refresh = tokens::generate("mlr_");
        tx.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![tokens::digest(&refresh), session_id, now, unix_now() + ttl_secs],
        )?;
        tx.commit()?;
        Ok((session_id, refresh))
    }

    /// Spends a refresh token and issues its successor.
    pub fn rotate_refresh(
        &self,
        presented: &str,
        ttl_secs: i64,
    ) -> Result<RefreshOutcome, ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found = tx
            .query_row(
                "SELECT r.session_id, r.expires_at, r.used_at, s.revoked_at, s.user_id, s.tenant_id
                   FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
                  WHERE r.token_hash = ?1",
                [tokens::digest(presented)],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, Option<String>>(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((session_id, expires_at, used_at, revoked_at, user_id, tenant_id)) = found else {
            return Ok(RefreshOutcome::Invalid);
        };
        let now = now_rfc3339();
        if used_at.is_some() {
            tx.execute(
                "UPDATE sessions SET revoked_at = ?2, revoked_reason = 'refresh_token_reuse' WHERE id = ?1 AND revoked_at IS NULL",
                params![session_id, now],
            )?;
            tx.commit()?;
            return Ok(RefreshOutcome::Reused);
        }
        if revoked_at.is_some() || expires_at <= unix_now() {
            return Ok(RefreshOutcome::Invalid);
        }
        let (Some(user_id), tenant_id) = (
            UserId::parse(&user_id),
            tenant_id.as_deref().and_then(TenantId::parse),
        ) else {
            return Ok(RefreshOutcome::Invalid);
        };
        tx.execute(
            "UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1",
            params![tokens::digest(presented), now],
        )?;
        let refresh = tokens::generate("mlr_");
        tx.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![tokens::digest(&refresh), session_id, now, unix_now() + ttl_secs],
        )?;
        tx.commit()?;
        Ok(RefreshOutcome::Rotated {
            session_id,
            user_id,
            tenant_id,
            refresh_token: refresh,
        })
    }

    /// True when the session exists and is not revoked.
    pub fn session_active(&self, session_id: &str) -> Result<bool, ControlError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT revoked_at IS NULL FROM sessions WHERE id = ?1",
                [session_id],
                |row| row.get::<_, bool>(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Revokes one session.
    pub fn revoke_session(&self, session_id: &str, reason: &str) -> Result<(), ControlError> {
        self.conn()?.execute(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
            params![session_id, now_rfc3339(), reason],
        )?;
        Ok(())
    }

    /// Revokes every session of a user, except `keep` if given.
    pub fn revoke_user_sessions(
        &self,
        user: UserId,
        keep: Option<&str>,
        reason: &str,
    ) -> Result<usize, ControlError> {
        Ok(self.conn()?.execute(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
              WHERE user_id = ?1 AND revoked_at IS NULL AND id IS NOT ?4",
            params![user.to_string(), now_rfc3339(), reason, keep],
        )?)
    }

    /// Stores a reset token for a user and answers it (to be mailed, never returned).
    pub fn create_password_reset(
        &self,
        user: UserId,
        ttl_secs: i64,
    ) -> Result<String, ControlError> {
        let raw = tokens::generate("mlp_reset_");
        self.conn()?.execute(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![tokens::digest(&raw), user.to_string(), now_rfc3339(), unix_now() + ttl_secs],
        )?;
        Ok(raw)
    }

    /// Spends a reset token and sets the new password hash, revoking every
    /// session (refresh token) of the user and every other reset token. Answers the user, or `None` for a bad token.
    pub fn consume_password_reset(
        &self,
        raw: &str,
        new_hash: &str,
    ) -> Result<Option<UserId>, ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = now_rfc3339();
        let user: Option<String> = tx
            .query_row(
                "UPDATE password_resets SET used_at = ?2
                  WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?3
                  RETURNING user_id",
                params![tokens::digest(raw), now, unix_now()],
                |row| row.get(0),
            )
            .optional()?;
        let Some(user) = user.as_deref().and_then(UserId::parse) else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
            params![user.to_string(), new_hash, now],
        )?;
        tx.execute(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = 'password_reset' WHERE user_id = ?1 AND revoked_at IS NULL",
            params![user.to_string(), now],
        )?;
        // Every other outstanding reset token of the user ends with it.
        tx.execute(
            "UPDATE password_resets SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL",
            params![user.to_string(), now],
        )?;
        tx.commit()?;
        Ok(Some(user))
    }
}
