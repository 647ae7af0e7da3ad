//! The host's own operations, declared once each: the router and the
//! OpenAPI document are built from [`operations`].

pub mod account;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod branding;
pub mod callback_inbox;
pub mod domains;
pub mod export;
pub mod features;
pub mod hooks;
pub mod keys;
pub mod memberships;
pub mod onboarding;
pub mod people;
pub mod settings;
pub mod stores;
pub mod support;

/// The organization's branding row (for the host's own mail).
pub use branding::read as branding_row;

use crate::core::operation::Operation;
use crate::plugins::manifest::PermissionSpec;

const ALL: &[&str] = &["Owner", "Admin", "Manager", "Member"];
const MANAGERS: &[&str] = &["Owner", "Admin", "Manager"];
const ADMINS: &[&str] = &["Owner", "Admin"];

/// The permissions the host itself defines, with their default roles.
pub fn permissions() -> Vec<PermissionSpec> {
    let define = |name: &str, description: &str, roles: &[&str]| PermissionSpec {
        name: name.into(),
        description: description.into(),
        default_roles: roles.iter().map(|r| r.to_string()).collect(),
    };
    vec![
        define("tenant.read", "See the organization", ALL),
        define("tenant.update", "Rename the organization", ADMINS),
        define(
            "settings.manage",
            "Change the organization's settings, such as its email branding",
            ADMINS,
        ),
        define("stores.read", "See stores", ALL),
        define("stores.create", "Create stores", ADMINS),
        define("stores.update", "Rename stores", MANAGERS),
        define("stores.delete", "Delete stores", ADMINS),
        define(
            "stores.access_all",
            "Use every store without being added to it",
            MANAGERS,
        ),
        define("stores.members.manage", "Add people to a store", MANAGERS),
        define(
            "callbacks.rotate",
            "Rotate a plugin's callback URL token (the old URL stops working)",
            ADMINS,
        ),
        define("users.read", "See the organization's people", MANAGERS),
        define(
            "users.update",
            "Deactivate, reactivate and rename people",
            ADMINS,
        ),
        define("invitations.create", "Invite people", ADMINS),
        define(
            "api_keys.manage",
            "Create, list and delete API keys",
            MANAGERS,
        ),
        define(
            crate::core::authz::MCP_PERMISSION,
            "Use the organization from an AI assistant (MCP)",
            MANAGERS,
        ),
        define(
            "approvals.read",
            "See payouts and reversals waiting for approval",
            MANAGERS,
        ),
        define(
            "approvals.approve",
            "Approve or reject payouts and reversals an AI assistant asked for",
            ADMINS,
        ),
        define("audit.read", "See, export and verify the audit log", ADMINS),
        define(
            "tenant.export",
            "Download the organization's whole database (secrets removed)",
            ADMINS,
        ),
    ]
}

/// Every host operation.
pub fn operations() -> Vec<Operation> {
    [
        auth::operations(),
        account::operations(),
        branding::operations(),
        stores::operations(),
        people::operations(),
        keys::operations(),
        hooks::operations(),
        admin::operations(),
        onboarding::operations(),
        audit::operations(),
        settings::operations(),
        features::operations(),
        domains::operations(),
        callback_inbox::operations(),
        export::operations(),
        crate::approvals::routes::operations(),
        crate::billing::routes::operations(),
        crate::alerts::routes::operations(),
        crate::deletion::routes::operations(),
    ]
    .concat()
}
