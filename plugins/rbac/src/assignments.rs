//! Role assignments: the public user-roles operations and the host's internal access queries.

use malipo_plugin_sdk::{Context, Db, Error, Input, Result};
use serde_json::{Value, json};

use crate::access::{self, scope};
use crate::model::{self, Assignment, Role};

/// `user-roles.list`: every assignment of a member.
pub fn list(db: &dyn Db, input: &Input) -> Result<Value> {
    let user_id = input.req_trimmed("id")?;
    model::require_member(db, user_id)?;
    let assignments: Vec<Value> = model::user_assignments(db, user_id)?
        .iter()
        .map(Assignment::to_json)
        .collect();
    Ok(json!({ "assignments": assignments }))
}

/// `user-roles.assign`: gives a member a role, tenant-wide or for one store,
/// if the caller holds everything the role grants.
pub fn assign(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let user_id = input.req_trimmed("id")?;
    let role_id = input.req_trimmed("role_id")?;
    let store = scope(input.opt_str("store_id")?);
    model::require_member(db, user_id)?;
    let role = model::require_role(db, role_id)?;
    if let Some(store) = store {
        model::require_store(db, store)?;
    }
    access::ensure_can_assign(ctx, db, &role, store)?;
    if model::find_assignment(db, user_id, &role.id, store)?.is_some() {
        return Err(Error::conflict(format!(
            "User `{user_id}` already has the role `{}` {}.",
            role.name,
            describe_scope(store)
        )));
    }
    Ok(model::insert_assignment(db, user_id, &role, store, ctx.now())?.to_json())
}

/// `user-roles.remove`: takes a role away from a user, tenant-wide (no
/// `store_id`) or for one store. The last tenant-wide Owner stays, and only
/// an Owner may remove the Owner role.
pub fn remove(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let user_id = input.req_trimmed("id")?;
    let role_id = input.req_trimmed("role_id")?;
    let store = scope(input.opt_str("store_id")?);
    let Some(assignment) = model::find_assignment(db, user_id, role_id, store)? else {
        let role =
            model::find_role(db, role_id)?.map_or_else(|| role_id.to_owned(), |role| role.name);
        return Err(Error::not_found(format!(
            "User `{user_id}` does not have the role `{role}` {}.",
            describe_scope(store)
        )));
    };
    let role = model::require_role(db, &assignment.role_id)?;
    if role.is_owner() && store.is_none() {
        if let Some(caller) = ctx.user_id.as_deref()
            && !access::is_owner(db, caller)?
        {
            return Err(Error::forbidden(
                "Only an Owner can remove the Owner role from someone.",
            ));
        }
        if model::tenant_wide_owner_count(db)? <= 1 {
            return Err(Error::conflict(
                "This is the tenant's last Owner. Make someone else an Owner before removing this one.",
            ));
        }
    }
    db.execute(
        "DELETE FROM rbac_assignments WHERE id = ?1",
        &[assignment.id.as_str().into()],
    )?;
    Ok(json!({ "deleted": true }))
}

/// `assignments.grant` (internal): assigns a role without escalation checks,
/// e.g. Owner at registration or the invited role on acceptance. Idempotent.
pub fn grant(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let user_id = input.req_trimmed("user_id")?;
    let store = scope(input.opt_str("store_id")?);
    let role = role_by_id_or_name(db, input)?;
    model::require_member(db, user_id)?;
    if let Some(store) = store {
        model::require_store(db, store)?;
    }
    access::check_scope(&role, store)?;
    let assignment = match model::find_assignment(db, user_id, &role.id, store)? {
        Some(existing) => existing,
        None => model::insert_assignment(db, user_id, &role, store, ctx.now())?,
    };
    Ok(assignment.to_json())
}

/// `roles.assignable` (internal): may the caller (an inviter) assign this role?
pub fn assignable(db: &dyn Db, ctx: &Context, input: &Input) -> Result<Value> {
    let role_id = input.req_trimmed("role_id")?;
    let store = scope(input.opt_str("store_id")?);
    let role = model::require_role(db, role_id)?;
    if let Some(store) = store {
        model::require_store(db, store)?;
    }
    access::ensure_can_assign(ctx, db, &role, store)?;
    Ok(json!({ "assignable": true, "role": role.to_json() }))
}

/// `users.access` (internal): a user's roles and effective permissions,
/// tenant-wide plus those for `store_id` if given.
pub fn access(db: &dyn Db, input: &Input) -> Result<Value> {
    let user_id = input.req_trimmed("user_id")?;
    let store = scope(input.opt_str("store_id")?);
    let is_owner = access::is_owner(db, user_id)?;
    let roles: Vec<Value> = model::user_assignments(db, user_id)?
        .into_iter()
        .filter(|a| store.is_none() || a.store_id.is_none() || a.store_id.as_deref() == store)
        .map(|a| json!({ "role_id": a.role_id, "role_name": a.role_name, "store_id": a.store_id }))
        .collect();
    let permissions = access::effective_permissions(db, user_id, store)?;
    Ok(json!({ "roles": roles, "permissions": permissions, "is_owner": is_owner }))
}

/// `users.forget` (internal): deletes every assignment of a user leaving the
/// tenant; refused if that would remove the tenant's last Owner.
pub fn forget(db: &dyn Db, input: &Input) -> Result<Value> {
    let user_id = input.req_trimmed("user_id")?;
    if access::is_owner(db, user_id)? && model::tenant_wide_owner_count(db)? <= 1 {
        return Err(Error::conflict(
            "This user is the tenant's last Owner. Make someone else an Owner first.",
        ));
    }
    let deleted = db.execute(
        "DELETE FROM rbac_assignments WHERE user_id = ?1",
        &[user_id.into()],
    )?;
    Ok(json!({ "deleted": deleted }))
}

/// The role named by `role_id` or, failing that, `role_name`.
fn role_by_id_or_name(db: &dyn Db, input: &Input) -> Result<Role> {
    if let Some(role_id) = input.opt_trimmed("role_id")? {
        return model::require_role(db, role_id);
    }
    let Some(name) = input.opt_trimmed("role_name")? else {
        return Err(Error::validation("Give either `role_id` or `role_name`."));
    };
    model::find_role_by_name(db, name)?
        .ok_or_else(|| Error::not_found(format!("There is no role named `{name}`.")))
}

fn describe_scope(store: Option<&str>) -> String {
    match store {
        Some(store) => format!("for store `{store}`"),
        None => "tenant-wide".to_owned(),
    }
}
