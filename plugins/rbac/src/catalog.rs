//! `catalog.sync` (internal): keeps the permission catalog in step with the installed plugins.

use malipo_plugin_sdk::{Db, Error, Input, Result, Sql};
use serde_json::{Value, json};

use crate::roles::grant_all;

/// Longest permission name, in characters.
const MAX_PERMISSION_CHARS: usize = 128;

/// One permission definition from a plugin manifest.
struct PermissionDef {
    name: String,
    description: String,
    default_roles: Vec<String>,
}

/// Upserts every permission; a permission seen for the first time is granted
/// to the system roles named in its default roles, and the Owner role is
/// granted every permission. Answers `{"added": N}`.
pub fn sync(db: &dyn Db, input: &Input) -> Result<Value> {
    let defs = parse(input)?;
    let mut added = 0u64;
    for def in &defs {
        let known = db.exists(
            "SELECT 1 FROM rbac_permissions WHERE name = ?1",
            &[Sql::from(&def.name)],
        )?;
        if known {
            db.execute(
                "UPDATE rbac_permissions SET description = ?2 WHERE name = ?1 AND description <> ?2",
                &[Sql::from(&def.name), Sql::from(&def.description)],
            )?;
            continue;
        }
        db.execute(
            "INSERT INTO rbac_permissions (name, description) VALUES (?1, ?2)",
            &[Sql::from(&def.name), Sql::from(&def.description)],
        )?;
        added += 1;
        for role in &def.default_roles {
            db.execute(
                "INSERT OR IGNORE INTO rbac_role_permissions (role_id, permission) \
                 SELECT id, ?2 FROM rbac_roles WHERE is_system = 1 AND name = ?1 COLLATE NOCASE",
                &[Sql::from(role), Sql::from(&def.name)],
            )?;
        }
    }
    let names: Vec<String> = defs.into_iter().map(|def| def.name).collect();
    let owner = db.query(
        "SELECT id FROM rbac_roles WHERE is_system = 1 AND name = 'Owner'",
        &[],
    )?;
    for row in owner.iter() {
        grant_all(db, row.req_text("id")?, &names)?;
    }
    Ok(json!({ "added": added }))
}

fn parse(input: &Input) -> Result<Vec<PermissionDef>> {
    let Some(Value::Array(items)) = input.get("permissions") else {
        return Err(Error::validation(
            "`permissions` is required and must be a list.",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_def(i, item))
        .collect()
}

fn parse_def(index: usize, item: &Value) -> Result<PermissionDef> {
    let invalid = |what: &str| Error::validation(format!("`permissions[{index}]`: {what}"));
    let Value::Object(fields) = item else {
        return Err(invalid(
            "must be an object with `name`, `description` and `default_roles`.",
        ));
    };
    let name = match fields.get("name") {
        Some(Value::String(name)) if valid_name(name) => name.clone(),
        _ => {
            return Err(invalid(
                "`name` must look like `resource.action` (lower-case letters, digits, `_`, `-` and dots).",
            ));
        }
    };
    let description = match fields.get("description") {
        Some(Value::String(text)) => text.trim().to_owned(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(invalid("`description` must be a string.")),
    };
    let roles = fields
        .get("default_roles")
        .or_else(|| fields.get("default-roles"));
    let default_roles = match roles {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(roles)) => roles
            .iter()
            .map(|role| role.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("`default_roles` must be a list of role names."))?,
        Some(_) => return Err(invalid("`default_roles` must be a list of role names.")),
    };
    Ok(PermissionDef {
        name,
        description,
        default_roles,
    })
}

/// `resource.action`: lower-case ASCII letters, digits, `_`, `-`, with at least one dot.
fn valid_name(name: &str) -> bool {
    name.len() <= MAX_PERMISSION_CHARS
        && name.contains('.')
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}
