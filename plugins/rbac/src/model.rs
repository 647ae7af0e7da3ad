//! Roles and assignments as stored in the rbac tables, with their loaders and JSON forms.

use std::collections::{BTreeMap, BTreeSet};

use malipo_plugin_sdk::{Db, Error, Result, Row, Sql};
use serde_json::{Value, json};

/// Name of the system role that holds every permission.
pub const OWNER: &str = "Owner";

/// Columns selected for a role, in the shape [`Role::from_row`] reads.
const ROLE_COLUMNS: &str = "id, name, description, is_system, created_at, updated_at";

/// Orders the system roles by rank, then custom roles by name.
const ROLE_ORDER: &str = "ORDER BY CASE WHEN is_system = 1 THEN \
     CASE name WHEN 'Owner' THEN 0 WHEN 'Admin' THEN 1 WHEN 'Manager' THEN 2 WHEN 'Member' THEN 3 ELSE 4 END \
     ELSE 5 END, name COLLATE NOCASE, id";

/// A role with its permissions (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub description: String,
    pub is_system: bool,
    pub permissions: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Role {
    fn from_row(row: Row<'_>, permissions: Vec<String>) -> Result<Self> {
        Ok(Self {
            id: row.req_text("id")?.to_owned(),
            name: row.req_text("name")?.to_owned(),
            description: row.text("description").unwrap_or_default().to_owned(),
            is_system: row.int("is_system").unwrap_or(0) != 0,
            permissions,
            created_at: row.req_text("created_at")?.to_owned(),
            updated_at: row.req_text("updated_at")?.to_owned(),
        })
    }

    /// True for the system Owner role.
    pub fn is_owner(&self) -> bool {
        self.is_system && self.name == OWNER
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "is_system": self.is_system,
            "permissions": self.permissions,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// The role with this id, if any.
pub fn find_role(db: &dyn Db, id: &str) -> Result<Option<Role>> {
    let table = db.query(
        &format!("SELECT {ROLE_COLUMNS} FROM rbac_roles WHERE id = ?1"),
        &[id.into()],
    )?;
    let Some(row) = table.first() else {
        return Ok(None);
    };
    let permissions = role_permissions(db, id)?;
    Role::from_row(row, permissions).map(Some)
}

/// The role with this id, or `not_found`.
pub fn require_role(db: &dyn Db, id: &str) -> Result<Role> {
    find_role(db, id)?.ok_or_else(|| Error::not_found(format!("There is no role with id `{id}`.")))
}

/// The role with this name (case-insensitive), if any.
pub fn find_role_by_name(db: &dyn Db, name: &str) -> Result<Option<Role>> {
    let table = db.query(
        &format!("SELECT {ROLE_COLUMNS} FROM rbac_roles WHERE name = ?1 COLLATE NOCASE"),
        &[name.into()],
    )?;
    let Some(row) = table.first() else {
        return Ok(None);
    };
    let id = row.req_text("id")?;
    let permissions = role_permissions(db, id)?;
    Role::from_row(row, permissions).map(Some)
}

/// Every role, system roles first (Owner, Admin, Manager, Member), then by name.
pub fn all_roles(db: &dyn Db) -> Result<Vec<Role>> {
    let grants = db.query(
        "SELECT role_id, permission FROM rbac_role_permissions ORDER BY role_id, permission",
        &[],
    )?;
    let mut by_role: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in grants.iter() {
        by_role
            .entry(row.req_text("role_id")?.to_owned())
            .or_default()
            .push(row.req_text("permission")?.to_owned());
    }
    let table = db.query(
        &format!("SELECT {ROLE_COLUMNS} FROM rbac_roles {ROLE_ORDER}"),
        &[],
    )?;
    table
        .iter()
        .map(|row| {
            let permissions = by_role.remove(row.req_text("id")?).unwrap_or_default();
            Role::from_row(row, permissions)
        })
        .collect()
}

/// The permissions a role holds, sorted.
pub fn role_permissions(db: &dyn Db, role_id: &str) -> Result<Vec<String>> {
    let table = db.query(
        "SELECT permission FROM rbac_role_permissions WHERE role_id = ?1 ORDER BY permission",
        &[role_id.into()],
    )?;
    table
        .iter()
        .map(|row| row.req_text("permission").map(str::to_owned))
        .collect()
}

/// Every permission in the catalog, sorted.
pub fn catalog(db: &dyn Db) -> Result<BTreeSet<String>> {
    let table = db.query("SELECT name FROM rbac_permissions", &[])?;
    table
        .iter()
        .map(|row| row.req_text("name").map(str::to_owned))
        .collect()
}

/// Deduplicates `requested` and checks that every name is in the catalog;
/// unknown names are a `validation_failed` error listing them.
pub fn known_permissions(db: &dyn Db, requested: &[String]) -> Result<Vec<String>> {
    let catalog = catalog(db)?;
    let wanted: BTreeSet<String> = requested.iter().map(|p| p.trim().to_owned()).collect();
    let unknown: Vec<String> = wanted
        .iter()
        .filter(|p| !catalog.contains(*p))
        .map(|p| format!("`{p}`"))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::validation(format!(
            "Unknown permission{}: {}. Use GET /permissions to see the permissions that exist.",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        )));
    }
    Ok(wanted.into_iter().collect())
}

/// An assignment of a role to a user, tenant-wide or for one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub id: String,
    pub user_id: String,
    pub role_id: String,
    pub role_name: String,
    /// None when tenant-wide.
    pub store_id: Option<String>,
    pub created_at: String,
}

/// Columns selected for an assignment, joined with its role as `r`.
const ASSIGNMENT_SELECT: &str = "SELECT a.id, a.user_id, a.role_id, r.name AS role_name, a.store_id, a.created_at \
     FROM rbac_assignments a JOIN rbac_roles r ON r.id = a.role_id";

impl Assignment {
    fn from_row(row: Row<'_>) -> Result<Self> {
        Ok(Self {
            id: row.req_text("id")?.to_owned(),
            user_id: row.req_text("user_id")?.to_owned(),
            role_id: row.req_text("role_id")?.to_owned(),
            role_name: row.req_text("role_name")?.to_owned(),
            store_id: row
                .text("store_id")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            created_at: row.req_text("created_at")?.to_owned(),
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "user_id": self.user_id,
            "role_id": self.role_id,
            "role_name": self.role_name,
            "store_id": self.store_id,
            "created_at": self.created_at,
        })
    }
}

/// Every assignment of a user, tenant-wide ones first, then by store and role.
pub fn user_assignments(db: &dyn Db, user_id: &str) -> Result<Vec<Assignment>> {
    let table = db.query(
        &format!(
            "{ASSIGNMENT_SELECT} WHERE a.user_id = ?1 ORDER BY a.store_id, r.name COLLATE NOCASE"
        ),
        &[user_id.into()],
    )?;
    table.iter().map(Assignment::from_row).collect()
}

/// The assignment of `role_id` to `user_id` in scope `store` (None = tenant-wide), if any.
pub fn find_assignment(
    db: &dyn Db,
    user_id: &str,
    role_id: &str,
    store: Option<&str>,
) -> Result<Option<Assignment>> {
    let table = db.query(
        &format!("{ASSIGNMENT_SELECT} WHERE a.user_id = ?1 AND a.role_id = ?2 AND a.store_id = ?3"),
        &[user_id.into(), role_id.into(), store.unwrap_or("").into()],
    )?;
    table.first().map(Assignment::from_row).transpose()
}

/// Inserts an assignment (the caller has checked it is new and allowed).
pub fn insert_assignment(
    db: &dyn Db,
    user_id: &str,
    role: &Role,
    store: Option<&str>,
    now: String,
) -> Result<Assignment> {
    let id = malipo_plugin_sdk::id::uuid_v4()?;
    db.execute(
        "INSERT INTO rbac_assignments (id, user_id, role_id, store_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        &[id.as_str().into(), user_id.into(), role.id.as_str().into(), store.unwrap_or("").into(), Sql::from(now.as_str())],
    )?;
    Ok(Assignment {
        id,
        user_id: user_id.to_owned(),
        role_id: role.id.clone(),
        role_name: role.name.clone(),
        store_id: store.map(str::to_owned),
        created_at: now,
    })
}

/// Number of tenant-wide Owner assignments.
pub fn tenant_wide_owner_count(db: &dyn Db) -> Result<i64> {
    db.query_int(
        "SELECT COUNT(*) FROM rbac_assignments a JOIN rbac_roles r ON r.id = a.role_id \
         WHERE a.store_id = '' AND r.is_system = 1 AND r.name = 'Owner'",
        &[],
    )
}

/// `not_found` unless the user is a member of the tenant.
pub fn require_member(db: &dyn Db, user_id: &str) -> Result<()> {
    if db.exists(
        "SELECT 1 FROM members WHERE user_id = ?1",
        &[user_id.into()],
    )? {
        Ok(())
    } else {
        Err(Error::not_found(format!(
            "There is no member with user id `{user_id}` in this tenant."
        )))
    }
}

/// `not_found` unless the store exists in the tenant.
pub fn require_store(db: &dyn Db, store_id: &str) -> Result<()> {
    if db.exists("SELECT 1 FROM stores WHERE id = ?1", &[store_id.into()])? {
        Ok(())
    } else {
        Err(Error::not_found(format!(
            "There is no store with id `{store_id}` in this tenant."
        )))
    }
}
