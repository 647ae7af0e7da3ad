//! API keys: long-lived credentials of one tenant, made by a member, holding
//! a subset of that member's permissions. Only a digest is stored.

use rusqlite::{OptionalExtension, Row, params};

use crate::control::{ControlDb, ControlError};
use malipo_foundations::ids::{TenantId, UserId};
use malipo_foundations::json_schema::{nullable, object, uuid};
use malipo_foundations::time_util::{now_rfc3339, unix_now};
use malipo_foundations::tokens;

/// A key as stored (never its secret).
#[derive(Clone, Debug)]
pub struct ApiKeyRecord {
    /// Key id.
    pub id: String,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The member who made it; the key acts as them, within `permissions`.
    pub user_id: UserId,
    /// A label.
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    /// Permissions the key may use.
    pub permissions: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Unix seconds, if it expires.
    pub expires_at: Option<i64>,
    /// RFC 3339, once used.
    pub last_used_at: Option<String>,
    /// Limits for handing the key to an AI assistant.
    pub guardrails: KeyGuardrails,
}

/// What a key may do beyond its permissions: the MCP tools it may call and
/// the money it may move per call and per UTC day (whole KES).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyGuardrails {
    /// MCP tools the key may call; `None` means every tool its permissions allow.
    pub allowed_tools: Option<Vec<String>>,
    /// Largest amount one call may move.
    pub max_amount_per_call: Option<i64>,
    /// Largest total the key's calls may move in one UTC day.
    pub max_amount_per_day: Option<i64>,
    /// Stores the key may use (within its maker's); `None`: its maker's.
    pub store_ids: Option<Vec<String>>,
    /// Money the key sends out waits for a person's approval, on REST and
    /// MCP alike. Keys made before the flag existed: required.
    pub approval_required: bool,
}

impl ApiKeyRecord {
    /// The key as shown to clients.
    pub fn public_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "permissions": self.permissions,
            "created_by": self.user_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at.and_then(|at| time::OffsetDateTime::from_unix_timestamp(at).ok())
                .map(malipo_foundations::time_util::format_rfc3339),
            "last_used_at": self.last_used_at,
            "allowed_tools": self.guardrails.allowed_tools,
            "max_amount_per_call": self.guardrails.max_amount_per_call,
            "max_amount_per_day": self.guardrails.max_amount_per_day,
            "store_ids": self.guardrails.store_ids,
            "approval_required": self.guardrails.approval_required,
        })
    }

    /// The JSON Schema of [`Self::public_json`].
    pub fn public_schema() -> serde_json::Value {
        let text = serde_json::json!({"type": "string"});
        let texts = serde_json::json!({"type": "array", "items": text});
        let amount = serde_json::json!({"type": ["integer", "null"], "minimum": 1});
        object(
            &[
                "id",
                "name",
                "prefix",
                "permissions",
                "created_by",
                "created_at",
                "expires_at",
                "last_used_at",
                "allowed_tools",
                "max_amount_per_call",
                "max_amount_per_day",
                "store_ids",
                "approval_required",
            ],
            serde_json::json!({
                "id": uuid(),
                "name": text,
                "prefix": {"type": "string", "description": "The first characters of the secret, to recognise it."},
                "permissions": texts,
                "created_by": {"type": "string", "format": "uuid", "description": "The member who made it; the key acts as them."},
                "created_at": text,
                "expires_at": nullable(text.clone()),
                "last_used_at": nullable(text.clone()),
                "allowed_tools": {"type": ["array", "null"], "items": text, "description": "MCP tools it may call; null: every tool its permissions allow."},
                "max_amount_per_call": amount,
                "max_amount_per_day": amount,
                "store_ids": {"type": ["array", "null"], "items": uuid(), "description": "Stores it may use; null: its maker's."},
                "approval_required": {"type": "boolean"},
            }),
        )
    }
}

/// What it takes to make a key.
#[derive(Debug)]
pub struct NewApiKey {
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its maker.
    pub user_id: UserId,
    /// A label.
    pub name: String,
    /// Permissions it may use.
    pub permissions: Vec<String>,
    /// Unix seconds, if it expires.
    pub expires_at: Option<i64>,
    /// Tool allow-list and amount caps.
    pub guardrails: KeyGuardrails,
}

const KEY_COLUMNS: &str = "id, tenant_id, user_id, name, prefix, permissions, created_at, expires_at, last_used_at, \
     allowed_tools, max_amount_per_call, max_amount_per_day, store_ids, approval_required";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<Option<ApiKeyRecord>> {
    let tenant: String = row.get(1)?;
    let user: String = row.get(2)?;
    let permissions: String = row.get(5)?;
    let allowed_tools: Option<String> = row.get(9)?;
    let store_ids: Option<String> = row.get(12)?;
    let approval_required: Option<bool> = row.get(13)?;
    let (Some(tenant_id), Some(user_id)) = (TenantId::parse(&tenant), UserId::parse(&user)) else {
        return Ok(None);
    };
    Ok(Some(ApiKeyRecord {
        id: row.get(0)?,
        tenant_id,
        user_id,
        name: row.get(3)?,
        prefix: row.get(4)?,
        permissions: serde_json::from_str(&permissions).unwrap_or_default(),
        created_at: row.get(6)?,
        expires_at: row.get(7)?,
        last_used_at: row.get(8)?,
        guardrails: KeyGuardrails {
            allowed_tools: allowed_tools.and_then(|text| serde_json::from_str(&text).ok()),
            max_amount_per_call: row.get(10)?,
            max_amount_per_day: row.get(11)?,
            store_ids: store_ids.and_then(|text| serde_json::from_str(&text).ok()),
            approval_required: approval_required.unwrap_or(true),
        },
    }))
}

impl ControlDb {
    /// Stores a new key and answers its record and its secret (shown once).
    pub fn create_api_key(&self, new: NewApiKey) -> Result<(ApiKeyRecord, String), ControlError> {
        let secret = tokens::generate("mlp_");
        let record = ApiKeyRecord {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: new.tenant_id,
            user_id: new.user_id,
            name: new.name,
            prefix: secret.chars().take(12).collect(),
            permissions: new.permissions,
            created_at: now_rfc3339(),
            expires_at: new.expires_at,
            last_used_at: None,
            guardrails: new.guardrails,
        };
        let allowed_tools = record
            .guardrails
            .allowed_tools
            .as_ref()
            .map(|tools| serde_json::to_string(tools).unwrap_or_else(|_| "[]".into()));
        let store_ids = record
            .guardrails
            .store_ids
            .as_ref()
            .map(|stores| serde_json::to_string(stores).unwrap_or_else(|_| "[]".into()));
        self.conn()?.execute(
            "INSERT INTO api_keys (id, tenant_id, user_id, name, prefix, key_hash, permissions, created_at, expires_at,
                                   allowed_tools, max_amount_per_call, max_amount_per_day, store_ids,
                                   approval_required)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                record.id,
                record.tenant_id.to_string(),
                record.user_id.to_string(),
                record.name,
                record.prefix,
                tokens::digest(&secret),
                serde_json::to_string(&record.permissions).unwrap_or_else(|_| "[]".into()),
                record.created_at,
                record.expires_at,
                allowed_tools,
                record.guardrails.max_amount_per_call,
                record.guardrails.max_amount_per_day,
                store_ids,
                record.guardrails.approval_required,
            ],
        )?;
        Ok((record, secret))
    }

    /// The live (not revoked, not expired) key with this secret, marking it used.
    pub fn api_key_by_secret(&self, secret: &str) -> Result<Option<ApiKeyRecord>, ControlError> {
        let conn = self.conn()?;
        let hash = tokens::digest(secret);
        let found = conn
            .query_row(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys
                      WHERE key_hash = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)"
                ),
                params![hash, unix_now()],
                key_from_row,
            )
            .optional()?
            .flatten();
        if found.is_some() {
            conn.execute(
                "UPDATE api_keys SET last_used_at = ?2 WHERE key_hash = ?1",
                params![hash, now_rfc3339()],
            )?;
        }
        Ok(found)
    }

    /// The tenant's live keys.
    pub fn api_keys_of(&self, tenant: TenantId) -> Result<Vec<ApiKeyRecord>, ControlError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = ?1 AND revoked_at IS NULL ORDER BY created_at, id"
        ))?;
        let rows = stmt
            .query_map([tenant.to_string()], key_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// Revokes one of the tenant's keys; `Ok(false)` if it is not the tenant's.
    pub fn revoke_api_key(&self, tenant: TenantId, id: &str) -> Result<bool, ControlError> {
        let changed = self.conn()?.execute(
            "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND tenant_id = ?2 AND revoked_at IS NULL",
            params![id, tenant.to_string(), now_rfc3339()],
        )?;
        Ok(changed == 1)
    }

    /// Adds `amount` to the key's total for `day` if the total stays within
    /// `cap`; `Ok(false)` (and nothing written) if it would not.
    pub fn reserve_key_spend(
        &self,
        key_id: &str,
        day: &str,
        amount: i64,
        cap: i64,
    ) -> Result<bool, ControlError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO api_key_spend (key_id, day, amount) VALUES (?1, ?2, 0)
             ON CONFLICT (key_id, day) DO NOTHING",
            params![key_id, day],
        )?;
        let changed = conn.execute(
            "UPDATE api_key_spend SET amount = amount + ?3
              WHERE key_id = ?1 AND day = ?2 AND amount + ?3 <= ?4",
            params![key_id, day, amount, cap],
        )?;
        Ok(changed == 1)
    }

    /// Gives back an amount reserved for `day` (a failed or rejected call).
    pub fn release_key_spend(
        &self,
        key_id: &str,
        day: &str,
        amount: i64,
    ) -> Result<(), ControlError> {
        self.conn()?.execute(
            "UPDATE api_key_spend SET amount = MAX(0, amount - ?3) WHERE key_id = ?1 AND day = ?2",
            params![key_id, day, amount],
        )?;
        Ok(())
    }

    /// The key's total reserved for `day`.
    pub fn key_spend(&self, key_id: &str, day: &str) -> Result<i64, ControlError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT amount FROM api_key_spend WHERE key_id = ?1 AND day = ?2",
                params![key_id, day],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }
}
