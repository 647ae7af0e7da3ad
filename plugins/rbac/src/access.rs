//! Authorization decisions and the escalation rule: no one grants what they lack.

use std::collections::BTreeSet;

use malipo_plugin_sdk::{Context, Db, Error, Result};

use crate::model::{self, Role};

/// Treats a blank store id as "no store".
pub fn scope(store: Option<&str>) -> Option<&str> {
    store.map(str::trim).filter(|s| !s.is_empty())
}

/// True if the user holds the Owner role tenant-wide.
pub fn is_owner(db: &dyn Db, user_id: &str) -> Result<bool> {
    db.exists(
        "SELECT 1 FROM rbac_assignments a JOIN rbac_roles r ON r.id = a.role_id \
         WHERE a.user_id = ?1 AND a.store_id = '' AND r.is_system = 1 AND r.name = 'Owner' LIMIT 1",
        &[user_id.into()],
    )
}

/// May `user_id` use `permission` (in `store`, if given)? True iff the user
/// is a tenant-wide Owner, or holds a role with the permission tenant-wide
/// or for that store.
pub fn authorize(
    db: &dyn Db,
    user_id: &str,
    permission: &str,
    store: Option<&str>,
) -> Result<bool> {
    if user_id.is_empty() || permission.is_empty() {
        return Ok(false);
    }
    if is_owner(db, user_id)? {
        return Ok(true);
    }
    db.exists(
        "SELECT 1 FROM rbac_assignments a JOIN rbac_role_permissions rp ON rp.role_id = a.role_id \
         WHERE a.user_id = ?1 AND rp.permission = ?2 AND (a.store_id = '' OR a.store_id = ?3) LIMIT 1",
        &[user_id.into(), permission.into(), scope(store).unwrap_or("").into()],
    )
}

/// The permissions the user effectively holds tenant-wide, plus those held
/// for `store` if given. A tenant-wide Owner holds the whole catalog.
pub fn effective_permissions(
    db: &dyn Db,
    user_id: &str,
    store: Option<&str>,
) -> Result<BTreeSet<String>> {
    if is_owner(db, user_id)? {
        return model::catalog(db);
    }
    let table = db.query(
        "SELECT DISTINCT rp.permission FROM rbac_assignments a \
         JOIN rbac_role_permissions rp ON rp.role_id = a.role_id \
         WHERE a.user_id = ?1 AND (a.store_id = '' OR a.store_id = ?2)",
        &[user_id.into(), scope(store).unwrap_or("").into()],
    )?;
    table
        .iter()
        .map(|row| row.req_text("permission").map(str::to_owned))
        .collect()
}

/// Checks that the caller holds every one of `permissions` tenant-wide (or
/// for `store`, if given). System calls (no user) skip the check.
pub fn ensure_holds(
    ctx: &Context,
    db: &dyn Db,
    permissions: &[String],
    store: Option<&str>,
    what: &str,
) -> Result<()> {
    let Some(caller) = ctx.user_id.as_deref() else {
        return Ok(());
    };
    let held = effective_permissions(db, caller, store)?;
    let missing: Vec<String> = permissions
        .iter()
        .filter(|p| !held.contains(*p))
        .map(|p| format!("`{p}`"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let scope = match scope(store) {
        Some(store) => format!(" for store `{store}`"),
        None => String::new(),
    };
    Err(Error::forbidden(format!(
        "You cannot {what}: it would grant permission{} you do not hold yourself{scope}: {}.",
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", ")
    )))
}

/// The Owner role applies to the whole tenant: refuses it for a single store.
pub fn check_scope(role: &Role, store: Option<&str>) -> Result<()> {
    if role.is_owner() && scope(store).is_some() {
        return Err(Error::validation(
            "The Owner role applies to the whole tenant; it cannot be assigned for a single store.",
        ));
    }
    Ok(())
}

/// Checks that the caller may assign `role` (tenant-wide, or for `store`):
/// only an Owner may assign the Owner role, and any other role's
/// permissions must all be held by the caller. System calls skip the
/// caller checks.
pub fn ensure_can_assign(
    ctx: &Context,
    db: &dyn Db,
    role: &Role,
    store: Option<&str>,
) -> Result<()> {
    check_scope(role, store)?;
    if role.is_owner() {
        if let Some(caller) = ctx.user_id.as_deref()
            && !is_owner(db, caller)?
        {
            return Err(Error::forbidden("Only an Owner can assign the Owner role."));
        }
        return Ok(());
    }
    ensure_holds(
        ctx,
        db,
        &role.permissions,
        store,
        &format!("assign the role `{}`", role.name),
    )
}
