//! Users: one person, one login, across every tenant they belong to.

use rusqlite::{OptionalExtension, Row, params};

use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::UserId;
use malipo_foundations::json_schema::{object, uuid};
use malipo_foundations::time_util::now_rfc3339;

/// A user as stored.
#[derive(Clone, Debug)]
pub struct UserRecord {
    /// The user's id.
    pub id: UserId,
    /// Lower-cased email address.
    pub email: String,
    /// Display name.
    pub full_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Platform operator.
    pub is_super_admin: bool,
    /// `active` or `disabled`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
}

impl UserRecord {
    /// The user as shown to clients: never the password hash.
    pub fn public_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "email": self.email,
            "full_name": self.full_name,
            "is_super_admin": self.is_super_admin,
            "created_at": self.created_at,
        })
    }

    /// The JSON Schema of [`Self::public_json`].
    pub fn public_schema() -> serde_json::Value {
        let text = serde_json::json!({"type": "string"});
        object(
            &["id", "email", "full_name", "is_super_admin", "created_at"],
            serde_json::json!({
                "id": uuid(),
                "email": text,
                "full_name": text,
                "is_super_admin": {"type": "boolean"},
                "created_at": text,
            }),
        )
    }
}

pub(super) const USER_COLUMNS: &str =
    "id, email, full_name, password_hash, is_super_admin, status, created_at";

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    let id: String = row.get(0)?;
    Ok(UserRecord {
        id: UserId::parse(&id).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                "bad user id".into(),
            )
        })?,
        email: row.get(1)?,
        full_name: row.get(2)?,
        password_hash: row.get(3)?,
        is_super_admin: row.get(4)?,
        status: row.get(5)?,
        created_at: row.get(6)?,
    })
}

pub(super) fn insert_user(conn: &rusqlite::Connection, user: &UserRecord) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO users (id, email, full_name, password_hash, is_super_admin, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            user.id.to_string(),
            user.email,
            user.full_name,
            user.password_hash,
            user.is_super_admin,
            user.status,
            user.created_at
        ],
    )?;
    Ok(())
}

/// True when SQLite refused a write because of a UNIQUE constraint.
pub fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

impl ControlDb {
    /// The user with this email, if any.
    pub fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, ControlError> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"),
                [email],
                user_from_row,
            )
            .optional()?)
    }

    /// The user with this id, if any.
    pub fn user(&self, id: UserId) -> Result<Option<UserRecord>, ControlError> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                [id.to_string()],
                user_from_row,
            )
            .optional()?)
    }

    /// Every user, oldest first.
    pub fn users(&self) -> Result<Vec<UserRecord>, ControlError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, email"
        ))?;
        let rows = stmt
            .query_map([], user_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Creates a user; `Ok(false)` when the email is taken.
    pub fn create_user(&self, user: &UserRecord) -> Result<bool, ControlError> {
        let conn = self.conn()?;
        match insert_user(&conn, user) {
            Ok(()) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the first super-admin; `Ok(false)` if one exists already.
    pub fn create_first_super_admin(&self, user: &UserRecord) -> Result<bool, ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM users WHERE is_super_admin = 1)",
            [],
            |r| r.get(0),
        )?;
        if exists {
            return Ok(false);
        }
        if let Err(e) = insert_user(&tx, user) {
            if is_unique_violation(&e) {
                tx.execute(
                    "UPDATE users SET is_super_admin = 1, password_hash = ?2, updated_at = ?3 WHERE email = ?1",
                    params![user.email, user.password_hash, now_rfc3339()],
                )?;
            } else {
                return Err(e.into());
            }
        }
        tx.commit()?;
        Ok(true)
    }

    /// Replaces a user's password hash.
    pub fn set_password(&self, id: UserId, password_hash: &str) -> Result<(), ControlError> {
        self.conn()?.execute(
            "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.to_string(), password_hash, now_rfc3339()],
        )?;
        Ok(())
    }

    /// Renames a user.
    pub fn set_full_name(&self, id: UserId, full_name: &str) -> Result<(), ControlError> {
        self.conn()?.execute(
            "UPDATE users SET full_name = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.to_string(), full_name, now_rfc3339()],
        )?;
        Ok(())
    }
}
