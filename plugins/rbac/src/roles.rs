//! Public operations on the permission catalog and on roles.

use malipo_plugin_sdk::{Context, Db, Error, Input, Result, Sql};
use serde_json::{Value, json};

use crate::access;
use crate::model::{self, Role};

/// Longest role name, in characters.
const MAX_NAME_CHARS: usize = 64;
/// Longest role description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 1024;

/// `permissions.list`: every permission in the catalog, sorted by name.
pub fn list_permissions(db: &dyn Db) -> Result<Value> {
    let table = db.query(
        "SELECT name, description FROM rbac_permissions ORDER BY name",
        &[],
    )?;
    Ok(json!({ "permissions": table.to_json() }))
}

/// `roles.list`: every role with its permissions.
pub fn list(db: &dyn Db) -> Result<Value> {
    let roles: Vec<Value> = model::all_roles(db)?.iter().map(Role::to_json).collect();
    Ok(json!({ "roles": roles }))
}

/// `roles.get`: one role by id.
pub fn get(db: &dyn Db, input: &Input) -> Result<Value> {
    let id = input.req_trimmed("id")?;
    Ok(model::require_role(db, id)?.to_json())
}

/// `roles.create`: a new custom role, optionally with permissions the caller holds.
pub fn create(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let name = role_name(input.req_str("name")?)?;
    let description = description(input)?.unwrap_or_default();
    let permissions = match input.opt_str_list("permissions")? {
        Some(requested) => model::known_permissions(db, &requested)?,
        None => Vec::new(),
    };
    access::ensure_holds(
        ctx,
        db,
        &permissions,
        None,
        &format!("create the role `{name}`"),
    )?;
    if let Some(existing) = model::find_role_by_name(db, name)? {
        return Err(Error::conflict(format!(
            "A role named `{}` already exists.",
            existing.name
        )));
    }

    let id = malipo_plugin_sdk::id::uuid_v4()?;
    let now = ctx.now();
    db.execute(
        "INSERT INTO rbac_roles (id, name, description, is_system, created_at, updated_at) \
         VALUES (?1, ?2, ?3, 0, ?4, ?4)",
        &[
            id.as_str().into(),
            name.into(),
            description.into(),
            now.into(),
        ],
    )?;
    grant_all(db, &id, &permissions)?;
    Ok(model::require_role(db, &id)?.to_json())
}

/// `roles.update`: renames a custom role and/or changes any role's description.
pub fn update(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let id = input.req_trimmed("id")?;
    let role = model::require_role(db, id)?;
    let new_name = input.opt_str("name")?.map(role_name).transpose()?;
    let new_description = description(input)?;

    let rename = new_name.filter(|name| *name != role.name);
    if let Some(name) = rename {
        if role.is_system {
            return Err(Error::conflict(format!(
                "`{}` is a system role and cannot be renamed.",
                role.name
            )));
        }
        if let Some(other) = model::find_role_by_name(db, name)?
            && other.id != role.id
        {
            return Err(Error::conflict(format!(
                "A role named `{}` already exists.",
                other.name
            )));
        }
    }
    if rename.is_none() && new_description.is_none_or(|d| d == role.description) {
        return Ok(role.to_json());
    }

    db.execute(
        "UPDATE rbac_roles SET name = ?1, description = ?2, updated_at = ?3 WHERE id = ?4",
        &[
            rename.unwrap_or(&role.name).into(),
            new_description.unwrap_or(&role.description).into(),
            ctx.now().into(),
            role.id.as_str().into(),
        ],
    )?;
    Ok(model::require_role(db, &role.id)?.to_json())
}

/// `roles.delete`: deletes a custom role that nobody holds any more.
pub fn delete(db: &dyn Db, input: &Input) -> Result<Value> {
    let id = input.req_trimmed("id")?;
    let role = model::require_role(db, id)?;
    if role.is_system {
        return Err(Error::conflict(format!(
            "`{}` is a system role and cannot be deleted.",
            role.name
        )));
    }
    let holders = db.query_int(
        "SELECT COUNT(DISTINCT user_id) FROM rbac_assignments WHERE role_id = ?1",
        &[role.id.as_str().into()],
    )?;
    if holders > 0 {
        return Err(Error::conflict(format!(
            "The role `{}` is still assigned to {holders} user{}; remove those assignments first.",
            role.name,
            if holders == 1 { "" } else { "s" }
        )));
    }
    db.execute(
        "DELETE FROM rbac_role_permissions WHERE role_id = ?1",
        &[role.id.as_str().into()],
    )?;
    db.execute(
        "DELETE FROM rbac_roles WHERE id = ?1",
        &[role.id.as_str().into()],
    )?;
    Ok(json!({ "deleted": true, "id": role.id }))
}

/// `roles.set-permissions`: replaces a role's permission set.
pub fn set_permissions(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let id = input.req_trimmed("id")?;
    let requested = input.req_str_list("permissions")?;
    let role = model::require_role(db, id)?;
    if role.is_owner() {
        return Err(Error::conflict(
            "The Owner role always holds every permission; its permissions cannot be edited.",
        ));
    }
    let permissions = model::known_permissions(db, &requested)?;
    access::ensure_holds(
        ctx,
        db,
        &permissions,
        None,
        &format!("set these permissions on the role `{}`", role.name),
    )?;

    db.execute(
        "DELETE FROM rbac_role_permissions WHERE role_id = ?1",
        &[role.id.as_str().into()],
    )?;
    grant_all(db, &role.id, &permissions)?;
    db.execute(
        "UPDATE rbac_roles SET updated_at = ?1 WHERE id = ?2",
        &[ctx.now().into(), role.id.as_str().into()],
    )?;
    Ok(model::require_role(db, &role.id)?.to_json())
}

/// Grants each permission to the role (existing grants are kept).
pub fn grant_all(db: &dyn Db, role_id: &str, permissions: &[String]) -> Result<()> {
    for permission in permissions {
        db.execute(
            "INSERT OR IGNORE INTO rbac_role_permissions (role_id, permission) VALUES (?1, ?2)",
            &[role_id.into(), Sql::from(permission)],
        )?;
    }
    Ok(())
}

/// A trimmed role name of 1 to 64 characters.
fn role_name(raw: &str) -> Result<&str> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::validation("`name` must not be blank."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::validation(format!(
            "`name` must be at most {MAX_NAME_CHARS} characters long."
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::validation(
            "`name` must not contain control characters.",
        ));
    }
    Ok(name)
}

/// The optional, trimmed `description`.
fn description(input: &Input) -> Result<Option<&str>> {
    let Some(text) = input.opt_str("description")?.map(str::trim) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::validation(format!(
            "`description` must be at most {MAX_DESCRIPTION_CHARS} characters long."
        )));
    }
    Ok(Some(text))
}
