//! Tenants and memberships: which organizations exist, and who belongs to
//! which, with what standing.

use rusqlite::{OptionalExtension, Row, params};

use crate::control::users::{USER_COLUMNS, insert_user, is_unique_violation, user_from_row};
use crate::control::{ControlDb, ControlError, UserRecord};
use malipo_foundations::ids::{TenantId, UserId};
use malipo_foundations::json_schema::{object, uuid};
use malipo_foundations::time_util::now_rfc3339;

/// A tenant as stored.
#[derive(Clone, Debug)]
pub struct TenantRecord {
    /// The tenant's id; also its file name.
    pub id: TenantId,
    /// Organization name.
    pub name: String,
    /// URL-safe unique name.
    pub slug: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Plan name.
    pub plan: String,
    /// RFC 3339.
    pub created_at: String,
    /// When the tenant is to be purged (RFC 3339), if its deletion is
    /// scheduled; it is suspended until then.
    pub deletion_due_at: Option<String>,
}

impl TenantRecord {
    /// Whether the tenant's deletion is scheduled.
    pub fn pending_deletion(&self) -> bool {
        self.deletion_due_at.is_some()
    }

    /// The tenant as shown to clients.
    pub fn public_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "slug": self.slug,
            "status": self.status,
            "plan": self.plan,
            "created_at": self.created_at,
            "deletion_due_at": self.deletion_due_at,
        })
    }

    /// The JSON Schema of [`Self::public_json`], and of the same object
    /// with the subscription's status that billing adds to some answers
    /// (the host's `malipo::billing::tenant_json`, the super-admin's list).
    pub fn public_schema() -> serde_json::Value {
        let text = serde_json::json!({"type": "string"});
        object(
            &[
                "id",
                "name",
                "slug",
                "status",
                "plan",
                "created_at",
                "deletion_due_at",
            ],
            serde_json::json!({
                "id": uuid(),
                "name": text,
                "slug": text,
                "status": {"type": "string", "enum": ["active", "suspended"],
                           "description": "Suspended by a super-admin, for non-payment, or while its deletion is scheduled."},
                "plan": {"type": "string", "description": "The id of its plan."},
                "created_at": text,
                "deletion_due_at": {"type": ["string", "null"], "description": "When it is to be purged, if its deletion is scheduled."},
                "subscription_status": {"type": "string", "description": "The billing subscription's status (e.g. `trial`, `active`, `past_due`), in the answers that carry it: registration and the super-admin's creating and listing organizations."},
            }),
        )
    }
}

/// A user's standing in one tenant.
#[derive(Clone, Debug)]
pub struct Membership {
    /// The tenant.
    pub tenant_id: TenantId,
    /// `active` or `deactivated`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
}

pub(crate) const TENANT_COLUMNS: &str = "id, name, slug, status, plan, created_at, deletion_due_at";

pub(crate) fn tenant_from_row(row: &Row<'_>) -> rusqlite::Result<TenantRecord> {
    let id: String = row.get(0)?;
    Ok(TenantRecord {
        id: TenantId::parse(&id).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                "bad tenant id".into(),
            )
        })?,
        name: row.get(1)?,
        slug: row.get(2)?,
        status: row.get(3)?,
        plan: row.get(4)?,
        created_at: row.get(5)?,
        deletion_due_at: row.get(6)?,
    })
}

/// A URL-safe slug from an organization name, made unique with a suffix.
fn slug_for(name: &str, id: TenantId) -> String {
    let mut slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    slug = slug
        .split('-')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    slug.truncate(40);
    let suffix: String = id.to_string().chars().take(8).collect();
    if slug.is_empty() {
        suffix
    } else {
        format!("{slug}-{suffix}")
    }
}

/// What the request pipeline needs to know about a credential's user and tenant.
#[derive(Clone, Debug)]
pub struct Standing {
    /// `active` or `suspended`.
    pub tenant_status: String,
    /// `active` or `deactivated`.
    pub membership_status: String,
    /// `active` or `disabled`.
    pub user_status: String,
    /// The tenant's deletion is scheduled (it is suspended until purged).
    pub tenant_pending_deletion: bool,
}

impl Standing {
    /// The user is active and an active member (whatever the tenant's status).
    pub fn member_active(&self) -> bool {
        self.user_status == "active" && self.membership_status == "active"
    }

    /// The user may act in the tenant now: an active member of an active tenant.
    pub fn admits(&self) -> bool {
        self.member_active() && self.tenant_status == "active"
    }
}

/// Outcome of creating a tenant with its owner.
#[derive(Debug)]
pub enum CreatedTenant {
    /// Done.
    Created(TenantRecord),
    /// The owner's email belongs to an existing account.
    EmailTaken,
}

impl ControlDb {
    /// Creates a tenant and makes `owner` its first member, creating the
    /// owner's account too when `create_owner` is set. One transaction.
    pub fn create_tenant(
        &self,
        name: &str,
        owner: &UserRecord,
        create_owner: bool,
    ) -> Result<CreatedTenant, ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if create_owner {
            match insert_user(&tx, owner) {
                Ok(()) => {}
                Err(e) if is_unique_violation(&e) => return Ok(CreatedTenant::EmailTaken),
                Err(e) => return Err(e.into()),
            }
        }
        let id = TenantId::new();
        let now = now_rfc3339();
        let tenant = TenantRecord {
            id,
            name: name.to_string(),
            slug: slug_for(name, id),
            status: "active".into(),
            plan: "free".into(),
            created_at: now.clone(),
            deletion_due_at: None,
        };
        tx.execute(
            "INSERT INTO tenants (id, name, slug, status, plan, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![id.to_string(), tenant.name, tenant.slug, tenant.status, tenant.plan, now],
        )?;
        tx.execute(
            "INSERT INTO memberships (user_id, tenant_id, status, created_at) VALUES (?1, ?2, 'active', ?3)",
            params![owner.id.to_string(), id.to_string(), now],
        )?;
        tx.commit()?;
        Ok(CreatedTenant::Created(tenant))
    }

    /// Undoes [`Self::create_tenant`] when the tenant's file could not be made.
    pub fn delete_tenant_row(
        &self,
        id: TenantId,
        owner_created: Option<UserId>,
    ) -> Result<(), ControlError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM tenants WHERE id = ?1", [id.to_string()])?;
        if let Some(user) = owner_created {
            tx.execute("DELETE FROM users WHERE id = ?1", [user.to_string()])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The tenant with this id, if any.
    pub fn tenant(&self, id: TenantId) -> Result<Option<TenantRecord>, ControlError> {
        Ok(self
            .conn()?
            .query_row(
                &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"),
                [id.to_string()],
                tenant_from_row,
            )
            .optional()?)
    }

    /// Every tenant, oldest first.
    pub fn tenants(&self) -> Result<Vec<TenantRecord>, ControlError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants ORDER BY created_at, id"
        ))?;
        let rows = stmt
            .query_map([], tenant_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Sets a tenant's status; `Ok(false)` when there is no such tenant.
    pub fn set_tenant_status(&self, id: TenantId, status: &str) -> Result<bool, ControlError> {
        let changed = self.conn()?.execute(
            "UPDATE tenants SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.to_string(), status, now_rfc3339()],
        )?;
        Ok(changed == 1)
    }

    /// Mirrors the plan a tenant's subscription is on (the billing plugin
    /// owns the subscription; this copy serves platform listings). Reads
    /// first: called on every entitlement cache miss, it takes control.db's
    /// write lock only when the plan really changed.
    pub fn mirror_tenant_plan(&self, id: TenantId, plan: &str) -> Result<(), ControlError> {
        let conn = self.conn()?;
        let current: Option<String> = conn
            .query_row(
                "SELECT plan FROM tenants WHERE id = ?1",
                [id.to_string()],
                |row| row.get(0),
            )
            .optional()?;
        if current.is_some_and(|current| current != plan) {
            conn.execute(
                "UPDATE tenants SET plan = ?2, updated_at = ?3 WHERE id = ?1 AND plan <> ?2",
                params![id.to_string(), plan, now_rfc3339()],
            )?;
        }
        Ok(())
    }

    /// Renames a tenant.
    pub fn rename_tenant(&self, id: TenantId, name: &str) -> Result<(), ControlError> {
        self.conn()?.execute(
            "UPDATE tenants SET name = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.to_string(), name, now_rfc3339()],
        )?;
        Ok(())
    }

    /// Tenant, membership and user standing for one credential, in one query.
    pub fn standing(
        &self,
        user: UserId,
        tenant: TenantId,
    ) -> Result<Option<Standing>, ControlError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT t.status, m.status, u.status, t.deletion_due_at IS NOT NULL
                   FROM memberships m
                   JOIN tenants t ON t.id = m.tenant_id
                   JOIN users u ON u.id = m.user_id
                  WHERE m.user_id = ?1 AND m.tenant_id = ?2",
                [user.to_string(), tenant.to_string()],
                |row| {
                    Ok(Standing {
                        tenant_status: row.get(0)?,
                        membership_status: row.get(1)?,
                        user_status: row.get(2)?,
                        tenant_pending_deletion: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// A user's memberships, oldest first.
    pub fn memberships_of(&self, user: UserId) -> Result<Vec<Membership>, ControlError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            // Ties within one second go by insertion order: "oldest" is exact.
            "SELECT tenant_id, status, created_at FROM memberships WHERE user_id = ?1 ORDER BY created_at, rowid",
        )?;
        let rows = stmt
            .query_map([user.to_string()], |row| {
                let id: String = row.get(0)?;
                Ok((id, row.get::<_, String>(1)?, row.get::<_, String>(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, status, created_at)| {
                Some(Membership {
                    tenant_id: TenantId::parse(&id)?,
                    status,
                    created_at,
                })
            })
            .collect())
    }

    /// Adds a member (or reactivates one); answers whether it is new.
    pub fn add_membership(&self, user: UserId, tenant: TenantId) -> Result<bool, ControlError> {
        let changed = self.conn()?.execute(
            "INSERT INTO memberships (user_id, tenant_id, status, created_at) VALUES (?1, ?2, 'active', ?3)
             ON CONFLICT (user_id, tenant_id) DO NOTHING",
            params![user.to_string(), tenant.to_string(), now_rfc3339()],
        )?;
        Ok(changed == 1)
    }

    /// Sets a member's status; `Ok(false)` when the user is not a member.
    pub fn set_membership_status(
        &self,
        user: UserId,
        tenant: TenantId,
        status: &str,
    ) -> Result<bool, ControlError> {
        let changed = self.conn()?.execute(
            "UPDATE memberships SET status = ?3 WHERE user_id = ?1 AND tenant_id = ?2",
            params![user.to_string(), tenant.to_string(), status],
        )?;
        Ok(changed == 1)
    }

    /// Sets (or, with `None`, clears) the organization's own name for a
    /// member; the user's global `full_name` is not touched.
    pub fn set_display_name(
        &self,
        user: UserId,
        tenant: TenantId,
        name: Option<&str>,
    ) -> Result<bool, ControlError> {
        let changed = self.conn()?.execute(
            "UPDATE memberships SET display_name = ?3 WHERE user_id = ?1 AND tenant_id = ?2",
            params![user.to_string(), tenant.to_string(), name],
        )?;
        Ok(changed == 1)
    }

    /// The members of a tenant with their membership status (and the
    /// organization's own name for them, where it gave one).
    pub fn members_of(&self, tenant: TenantId) -> Result<Vec<(UserRecord, String)>, ControlError> {
        let conn = self.conn()?;
        let columns: String = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = conn.prepare(&format!(
            "SELECT {columns}, m.status, m.display_name FROM memberships m JOIN users u ON u.id = m.user_id
              WHERE m.tenant_id = ?1 ORDER BY m.created_at, u.id"
        ))?;
        let rows = stmt
            .query_map([tenant.to_string()], |row| {
                let mut user = user_from_row(row)?;
                // The organization's own name for the member, if it gave one.
                if let Some(name) = row.get::<_, Option<String>>(8)? {
                    user.full_name = name;
                }
                Ok((user, row.get::<_, String>(7)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

impl ControlDb {
    /// Records a tenant whose file is being imported (`malipo tenant
    /// import`): its id is the file's (or a fresh one), its slug is made
    /// from its name as for any tenant; no member is added. `Ok(None)` when
    /// the id is taken.
    pub fn insert_imported_tenant(
        &self,
        id: TenantId,
        name: &str,
        plan: &str,
    ) -> Result<Option<TenantRecord>, ControlError> {
        let now = now_rfc3339();
        let tenant = TenantRecord {
            id,
            name: name.to_string(),
            slug: slug_for(name, id),
            status: "active".into(),
            plan: plan.to_string(),
            created_at: now.clone(),
            deletion_due_at: None,
        };
        let inserted = self.conn()?.execute(
            "INSERT INTO tenants (id, name, slug, status, plan, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT DO NOTHING",
            params![id.to_string(), tenant.name, tenant.slug, tenant.status, tenant.plan, now],
        )?;
        Ok((inserted == 1).then_some(tenant))
    }
}
