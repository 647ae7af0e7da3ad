//! The `rbac` plugin: tenant-defined roles, permissions and role assignments, deny by default.
//!
//! This module holds the generated bindings and the thin glue between them
//! and the binding-independent code in the other modules.

mod access;
mod assignments;
mod catalog;
mod manifest;
mod model;
mod roles;
#[cfg(test)]
mod tests;

use malipo_plugin_sdk::{Context, Db, Error, Input};
use serde_json::Value;

wit_bindgen::generate!({ world: "rbac-plugin", path: "../../wit" });

/// The exported component.
struct Rbac;

export!(Rbac);
malipo_plugin_sdk::bindings_glue!();

impl Guest for Rbac {
    fn authorize(user_id: String, permission: String, store_id: Option<String>) -> bool {
        // Any failure denies.
        access::authorize(&HostDb, &user_id, &permission, store_id.as_deref()).unwrap_or(false)
    }

    fn manifest() -> Manifest {
        manifest::manifest()
    }

    fn invoke(ctx: CallContext, operation: String, input: String) -> Result<String, PluginError> {
        let ctx = context(ctx);
        Input::parse(&input)
            .and_then(|input| dispatch(&HostDb, &ctx, &operation, &input))
            .map(|output| output.to_string())
            .map_err(plugin_error)
    }

    fn on_event(_ctx: CallContext, _event: Event) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Routes an operation name to its handler.
fn dispatch(
    db: &dyn Db,
    ctx: &Context,
    operation: &str,
    input: &Input,
) -> malipo_plugin_sdk::Result<Value> {
    match operation {
        "permissions.list" => roles::list_permissions(db),
        "roles.list" => roles::list(db),
        "roles.get" => roles::get(db, input),
        "roles.create" => roles::create(db, ctx, input),
        "roles.update" => roles::update(db, ctx, input),
        "roles.delete" => roles::delete(db, input),
        "roles.set-permissions" => roles::set_permissions(db, ctx, input),
        "user-roles.list" => assignments::list(db, input),
        "user-roles.assign" => assignments::assign(db, ctx, input),
        "user-roles.remove" => assignments::remove(db, ctx, input),
        "catalog.sync" => catalog::sync(db, input),
        "assignments.grant" => assignments::grant(db, ctx, input),
        "roles.assignable" => assignments::assignable(db, ctx, input),
        "users.access" => assignments::access(db, input),
        "users.forget" => assignments::forget(db, input),
        other => Err(Error::bad_request(format!(
            "The rbac plugin has no operation named `{other}`."
        ))),
    }
}
