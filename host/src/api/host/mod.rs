//! The host's own operations, declared once each: the router and the
//! OpenAPI document are built from [`operations`].

mod account;
mod admin;
mod alerts;
mod approvals;
mod audit;
mod auth;
mod billing;
mod branding;
mod callback_inbox;
mod domains;
mod export;
mod features;
mod hooks;
mod keys;
mod memberships;
mod onboarding;
mod people;
mod settings;
mod stores;
pub mod support;

/// The organization's branding row (for the host's own mail).
pub use branding::read as branding_row;

use serde_json::{Value, json};

use crate::api::operation::{
    Access, CREATE, DELETE, Method, Operation, READ, Target, UPDATE, host_op,
};
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
            crate::mcp::MCP_PERMISSION,
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

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn any_object() -> Value {
    json!({"type": "object"})
}

fn id_input() -> Value {
    object(&["id"], json!({"id": {"type": "string"}}))
}

fn op(
    spec: crate::plugins::manifest::OperationSpec,
    access: Access,
    handler: super::operation::HostHandler,
    tag: &str,
) -> Operation {
    Operation {
        spec,
        access,
        target: Target::Host(handler),
        tag: tag.into(),
    }
}

/// Every host operation.
pub fn operations() -> Vec<Operation> {
    use Access::{Authenticated, Public, SuperAdmin, Tenant};
    use Method::{Delete, Get, Patch, Post, Put};
    let store = json!({"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "status": {"type": "string"}}});
    let str_ = json!({"type": "string"});
    let plan_props = json!({
        "id": str_, "name": str_, "price_kes": {"type": "integer", "minimum": 0},
        "interval": {"type": "string", "enum": ["month", "year"]},
        "trial_days": {"type": "integer", "minimum": 0},
        "features": {"type": "array", "items": {"type": "string"}},
        "limits": {"type": "object", "description": "max_stores, max_users, api_calls_per_month, transactions_per_month, requests_per_minute: whole numbers, or null for unlimited"},
        "active": {"type": "boolean"}
    });
    vec![
        op(
            host_op(
                "auth.register",
                Post,
                "/auth/register",
                None,
                "Create an account and its organization (tenant) with a default store; the caller becomes its Owner.",
                object(
                    &["email", "password", "full_name", "organization_name"],
                    json!({
                "email": str_, "password": {"type": "string", "minLength": 10}, "full_name": str_, "organization_name": str_,
                "plan_id": {"type": "string", "description": "The plan to start (see GET /plans); default: a trial of the default plan."}}),
                ),
                auth::token_schema(),
                201,
                CREATE,
            ),
            Public,
            auth::register,
            "auth",
        ),
        op(
            host_op(
                "auth.login",
                Post,
                "/auth/login",
                None,
                "Log in with email and password; `tenant_id` picks the organization (default: the one whose custom domain this request was sent to, else the oldest; on a custom domain another `tenant_id` is refused with 403 `tenant_host_mismatch`).",
                object(
                    &["email", "password"],
                    json!({"email": str_, "password": str_, "tenant_id": str_}),
                ),
                auth::token_schema(),
                200,
                CREATE,
            ),
            Public,
            auth::login,
            "auth",
        ),
        op(
            host_op(
                "auth.refresh",
                Post,
                "/auth/refresh",
                None,
                "Trade a refresh token for a new access token and a new refresh token (the old one is spent).",
                object(&["refresh_token"], json!({"refresh_token": str_})),
                auth::token_schema(),
                200,
                CREATE,
            ),
            Public,
            auth::refresh,
            "auth",
        ),
        op(
            host_op(
                "auth.logout",
                Post,
                "/auth/logout",
                None,
                "End the caller's session.",
                any_object(),
                any_object(),
                200,
                UPDATE,
            ),
            Authenticated,
            auth::logout,
            "auth",
        ),
        op(
            host_op(
                "auth.forgot-password",
                Post,
                "/auth/forgot-password",
                None,
                "Ask for a password-reset token by email. Always answers 202.",
                object(&["email"], json!({"email": str_})),
                any_object(),
                202,
                CREATE,
            ),
            Public,
            auth::forgot_password,
            "auth",
        ),
        op(
            host_op(
                "auth.reset-password",
                Post,
                "/auth/reset-password",
                None,
                "Choose a new password with a reset token; ends every session.",
                object(
                    &["token", "password"],
                    json!({"token": str_, "password": str_}),
                ),
                any_object(),
                200,
                UPDATE,
            ),
            Public,
            auth::reset_password,
            "auth",
        ),
        op(
            host_op(
                "me.get",
                Get,
                "/me",
                None,
                "The caller: user, tenant, roles and effective permissions; `stores` (the stores usable here: \
                 the values X-Store-ID accepts), `all_stores` (true for every store), and `memberships` (every \
                 organization of the user, with roles and usable stores).",
                any_object(),
                json!({"type": "object", "properties": {
                    "user": {"type": "object"},
                    "tenant": {"type": ["object", "null"]},
                    "store_id": {"type": ["string", "null"]},
                    "roles": {"type": "array"},
                    "permissions": {"type": "array", "items": {"type": "string"}},
                    "all_stores": {"type": "boolean"},
                    "stores": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}},
                    "memberships": memberships::schema()
                }}),
                200,
                READ,
            ),
            Authenticated,
            account::me,
            "me",
        ),
        op(
            host_op(
                "me.update",
                Patch,
                "/me",
                None,
                "Change the caller's name, or password (with `current_password`; ends the other sessions).",
                object(
                    &[],
                    json!({"full_name": str_, "password": str_, "current_password": str_}),
                ),
                any_object(),
                200,
                UPDATE,
            ),
            Authenticated,
            account::update_me,
            "me",
        ),
        op(
            host_op(
                "tenant.get",
                Get,
                "/tenant",
                Some("tenant.read"),
                "The caller's organization.",
                any_object(),
                any_object(),
                200,
                READ,
            ),
            Tenant,
            account::tenant,
            "tenant",
        ),
        op(
            host_op(
                "tenant.update",
                Patch,
                "/tenant",
                Some("tenant.update"),
                "Rename the caller's organization.",
                object(&["name"], json!({"name": str_})),
                any_object(),
                200,
                UPDATE,
            ),
            Tenant,
            account::update_tenant,
            "tenant",
        ),
        op(
            host_op(
                "tenant.branding.get",
                Get,
                "/tenant/branding",
                None,
                "The organization's email branding: display name, logo, colours and the contact address its own notifications go to.",
                any_object(),
                branding::output_schema(),
                200,
                READ,
            ),
            Tenant,
            branding::get,
            "tenant",
        ),
        op(
            host_op(
                "tenant.branding.update",
                Put,
                "/tenant/branding",
                Some("settings.manage"),
                "Replace the organization's email branding (a field left out or blank is cleared).",
                branding::input_schema(),
                branding::output_schema(),
                200,
                UPDATE,
            ),
            Tenant,
            branding::put,
            "tenant",
        ),
        op(
            host_op(
                "stores.list",
                Get,
                "/stores",
                Some("stores.read"),
                "The stores the caller may use.",
                any_object(),
                json!({"type": "object", "properties": {"stores": {"type": "array", "items": store}}}),
                200,
                READ,
            ),
            Tenant,
            stores::list,
            "stores",
        ),
        op(
            host_op(
                "stores.create",
                Post,
                "/stores",
                Some("stores.create"),
                "Create a store.",
                object(&["name"], json!({"name": str_})),
                store.clone(),
                201,
                CREATE,
            ),
            Tenant,
            stores::create,
            "stores",
        ),
        op(
            host_op(
                "stores.get",
                Get,
                "/stores/{id}",
                Some("stores.read"),
                "One store.",
                id_input(),
                store.clone(),
                200,
                READ,
            ),
            Tenant,
            stores::get,
            "stores",
        ),
        op(
            host_op(
                "stores.update",
                Patch,
                "/stores/{id}",
                Some("stores.update"),
                "Rename a store.",
                object(&["id"], json!({"id": str_, "name": str_})),
                store.clone(),
                200,
                UPDATE,
            ),
            Tenant,
            stores::update,
            "stores",
        ),
        op(
            host_op(
                "stores.delete",
                Delete,
                "/stores/{id}",
                Some("stores.delete"),
                "Delete a store (not the last one).",
                id_input(),
                any_object(),
                200,
                DELETE,
            ),
            Tenant,
            stores::delete,
            "stores",
        ),
        op(
            host_op(
                "stores.add-user",
                Post,
                "/stores/{id}/users",
                Some("stores.members.manage"),
                "Let a member of the organization use this store.",
                object(&["id", "user_id"], json!({"id": str_, "user_id": str_})),
                any_object(),
                201,
                UPDATE,
            ),
            Tenant,
            stores::add_user,
            "stores",
        ),
        op(
            host_op(
                "users.list",
                Get,
                "/users",
                Some("users.read"),
                "The organization's people.",
                any_object(),
                any_object(),
                200,
                READ,
            ),
            Tenant,
            people::list,
            "users",
        ),
        op(
            host_op(
                "users.update",
                Patch,
                "/users/{id}",
                Some("users.update"),
                "Deactivate or reactivate a member (their tokens and keys stop at once), or rename them.",
                object(
                    &["id"],
                    json!({"id": str_, "status": {"type": "string", "enum": ["active", "deactivated"]}, "full_name": str_}),
                ),
                any_object(),
                200,
                UPDATE,
            ),
            Tenant,
            people::update,
            "users",
        ),
        op(
            host_op(
                "invitations.create",
                Post,
                "/invitations",
                Some("invitations.create"),
                "Invite someone by email with a role (and optionally a store). The token is emailed.",
                object(
                    &["email", "role_id"],
                    json!({"email": str_, "role_id": str_, "store_id": str_}),
                ),
                any_object(),
                201,
                CREATE,
            ),
            Tenant,
            people::invite,
            "users",
        ),
        op(
            host_op(
                "invitations.accept",
                Post,
                "/invitations/accept",
                None,
                "Accept an invitation: join the organization (creating the account if needed) and log in.",
                object(
                    &["token", "password"],
                    json!({"token": str_, "password": str_, "full_name": str_}),
                ),
                auth::token_schema(),
                200,
                CREATE,
            ),
            Public,
            people::accept,
            "users",
        ),
        op(
            host_op(
                "api-keys.create",
                Post,
                "/api-keys",
                Some("api_keys.manage"),
                "Create an API key holding some of the caller's permissions; the secret is shown once as `key`. \
                 For an AI assistant, limit it further: `allowed_tools` (MCP tool names it may call), \
                 `max_amount_per_call` and `max_amount_per_day` (whole KES moved by money-moving operations), \
                 `store_ids` (the stores it may use, among the caller's) and `approval_required` (money it sends \
                 out waits for a person's approval, on REST and MCP alike; default true for a key holding a \
                 money-out permission). These limits hold on every channel; a key making a key cannot give it \
                 more than its own permissions and limits.",
                object(
                    &["name", "permissions"],
                    json!({
                        "name": str_,
                        "permissions": {"type": "array", "items": str_},
                        "expires_at": str_,
                        "allowed_tools": {"type": ["array", "null"], "items": str_},
                        "max_amount_per_call": {"type": ["integer", "null"], "minimum": 1},
                        "max_amount_per_day": {"type": ["integer", "null"], "minimum": 1},
                        "store_ids": {"type": ["array", "null"], "items": str_},
                        "approval_required": {"type": ["boolean", "null"]}
                    }),
                ),
                any_object(),
                201,
                CREATE,
            ),
            Tenant,
            keys::create,
            "api-keys",
        ),
        op(
            host_op(
                "api-keys.list",
                Get,
                "/api-keys",
                Some("api_keys.manage"),
                "The organization's live API keys.",
                any_object(),
                any_object(),
                200,
                READ,
            ),
            Tenant,
            keys::list,
            "api-keys",
        ),
        op(
            host_op(
                "api-keys.delete",
                Delete,
                "/api-keys/{id}",
                Some("api_keys.manage"),
                "Revoke an API key.",
                id_input(),
                any_object(),
                200,
                DELETE,
            ),
            Tenant,
            keys::delete,
            "api-keys",
        ),
        op(
            host_op(
                "approvals.list",
                Get,
                "/approvals",
                Some("approvals.read"),
                "Payouts and reversals AI assistants asked for, newest first; `status=pending` for those waiting.",
                json!({"type": "object", "properties": {
                    "status": {"type": "string", "enum": ["pending", "approved", "executed", "failed", "rejected"]},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 200}
                }}),
                any_object(),
                200,
                READ,
            ),
            Tenant,
            approvals::list,
            "approvals",
        ),
        op(
            host_op(
                "approvals.get",
                Get,
                "/approvals/{id}",
                Some("approvals.read"),
                "One approval request: what it will do, who asked, and its outcome once decided.",
                id_input(),
                any_object(),
                200,
                READ,
            ),
            Tenant,
            approvals::get,
            "approvals",
        ),
        op(
            host_op(
                "approvals.approve",
                Post,
                "/approvals/{id}/approve",
                Some("approvals.approve"),
                "Approve a pending request and run it once, as you (a signed-in person holding the operation's own permission too).",
                id_input(),
                any_object(),
                200,
                UPDATE,
            ),
            Tenant,
            approvals::approve,
            "approvals",
        ),
        op(
            host_op(
                "approvals.reject",
                Post,
                "/approvals/{id}/reject",
                Some("approvals.approve"),
                "Reject a pending request; nothing moves. An optional `reason` (at most 500 characters) is kept with the approval and in the audit log.",
                object(
                    &["id"],
                    json!({"id": {"type": "string"}, "reason": {"type": "string", "maxLength": 500}}),
                ),
                any_object(),
                200,
                UPDATE,
            ),
            Tenant,
            approvals::reject,
            "approvals",
        ),
        op(
            host_op(
                "callback-tokens.rotate",
                Post,
                "/callback-tokens/{plugin}/rotate",
                Some("callbacks.rotate"),
                "Replace the secret token in this organization's callback URLs for a plugin (e.g. mpesa).",
                object(&["plugin"], json!({"plugin": str_})),
                any_object(),
                200,
                UPDATE,
            ),
            Tenant,
            hooks::rotate,
            "tenant",
        ),
        op(
            host_op(
                "admin.tenants.create",
                Post,
                "/admin/tenants",
                None,
                "Create an organization for a new or existing owner (super-admin).",
                object(
                    &["organization_name", "owner_email"],
                    json!({"organization_name": str_, "owner_email": str_, "owner_password": str_, "owner_full_name": str_, "plan_id": str_}),
                ),
                any_object(),
                201,
                CREATE,
            ),
            SuperAdmin,
            admin::create_tenant,
            "admin",
        ),
        op(
            host_op(
                "admin.tenants.list",
                Get,
                "/admin/tenants",
                None,
                "Every organization (super-admin).",
                any_object(),
                any_object(),
                200,
                READ,
            ),
            SuperAdmin,
            admin::list_tenants,
            "admin",
        ),
        op(
            host_op(
                "admin.tenants.update",
                Patch,
                "/admin/tenants/{id}",
                None,
                "Suspend or reactivate an organization (super-admin).",
                object(
                    &["id", "status"],
                    json!({"id": str_, "status": {"type": "string", "enum": ["active", "suspended"]}}),
                ),
                any_object(),
                200,
                UPDATE,
            ),
            SuperAdmin,
            admin::update_tenant,
            "admin",
        ),
        op(
            host_op(
                "plans.list",
                Get,
                "/plans",
                None,
                "The plans an organization may choose: price in KES, interval, trial days, features and limits.",
                any_object(),
                object(
                    &["plans"],
                    json!({"plans": {"type": "array", "items": {"type": "object", "properties": plan_props}}}),
                ),
                200,
                READ,
            ),
            Public,
            billing::list_plans,
            "billing",
        ),
        op(
            host_op(
                "admin.plans.list",
                Get,
                "/admin/plans",
                None,
                "Every plan, inactive ones included (super-admin).",
                any_object(),
                object(&["plans"], json!({"plans": {"type": "array"}})),
                200,
                READ,
            ),
            SuperAdmin,
            billing::list_all_plans,
            "admin",
        ),
        op(
            host_op(
                "admin.plans.create",
                Post,
                "/admin/plans",
                None,
                "Add a plan to the catalog (super-admin).",
                object(&["id", "name"], plan_props.clone()),
                object(&["id"], plan_props.clone()),
                201,
                CREATE,
            ),
            SuperAdmin,
            billing::create_plan,
            "admin",
        ),
        op(
            host_op(
                "admin.plans.update",
                Patch,
                "/admin/plans/{id}",
                None,
                "Change a plan: the fields given replace the plan's (limits merge by name). Subscribers see it at once (super-admin).",
                object(&["id"], plan_props.clone()),
                object(&["id"], plan_props.clone()),
                200,
                UPDATE,
            ),
            SuperAdmin,
            billing::update_plan,
            "admin",
        ),
        op(
            host_op(
                "admin.platform.get",
                Get,
                "/admin/platform",
                None,
                "Which organization is the platform itself: its M-Pesa account collects every invoice (super-admin).",
                any_object(),
                any_object(),
                200,
                READ,
            ),
            SuperAdmin,
            billing::get_platform,
            "admin",
        ),
        op(
            host_op(
                "admin.platform.set",
                Put,
                "/admin/platform",
                None,
                "Name the organization whose M-Pesa account collects invoices (configure its M-Pesa like any organization's) (super-admin).",
                object(&["tenant_id"], json!({"tenant_id": str_})),
                any_object(),
                200,
                UPDATE,
            ),
            SuperAdmin,
            billing::set_platform,
            "admin",
        ),
        op(
            host_op(
                "admin.tenants.plan",
                Put,
                "/admin/tenants/{id}/plan",
                None,
                "Move an organization to a plan at once, without a charge (super-admin).",
                object(&["id", "plan_id"], json!({"id": str_, "plan_id": str_})),
                any_object(),
                200,
                UPDATE,
            ),
            SuperAdmin,
            billing::set_tenant_plan,
            "admin",
        ),
        op(
            host_op(
                "admin.usage",
                Get,
                "/admin/usage",
                None,
                "This month's usage of every organization, with its plan and subscription status (super-admin).",
                object(
                    &[],
                    json!({"period": {"type": "string", "description": "YYYY-MM; default this month"}}),
                ),
                object(&["tenants"], json!({"tenants": {"type": "array"}})),
                200,
                READ,
            ),
            SuperAdmin,
            billing::usage_across_tenants,
            "admin",
        ),
        op(
            host_op(
                "admin.clock.advance",
                Post,
                "/admin/clock",
                None,
                "Test clock (only with MALIPO_TEST_CLOCK=1): move the business clock forward and run every job and event delivery once (super-admin).",
                object(
                    &["advance_secs"],
                    json!({"advance_secs": {"type": "integer", "minimum": 0}}),
                ),
                any_object(),
                200,
                UPDATE,
            ),
            SuperAdmin,
            billing::advance_clock,
            "admin",
        ),
        op(
            {
                let mut spec = host_op(
                    "invoices.pay",
                    Post,
                    "/invoices/{id}/pay",
                    Some("billing.manage"),
                    "Pay an invoice by M-Pesa: sends an STK push prompt from the platform's account to `phone_number`; the invoice is marked paid when the payment completes.",
                    object(
                        &["id", "phone_number"],
                        json!({"id": str_, "phone_number": {"type": "string", "description": "The Safaricom number to prompt, e.g. 0712345678."}}),
                    ),
                    object(
                        &["invoice_id", "attempt_id", "transaction_id", "status"],
                        json!({"invoice_id": str_, "attempt_id": str_, "transaction_id": str_, "amount_kes": {"type": "integer"}, "status": str_, "message": str_}),
                    ),
                    202,
                    CREATE,
                );
                spec.mcp_tool = Some("billing_pay_invoice".into());
                spec
            },
            Tenant,
            billing::pay_invoice,
            "billing",
        ),
        op(
            host_op(
                "onboarding.start",
                Post,
                "/onboarding",
                None,
                "Sign a new organization up in one step: owner account, organization, trial subscription (or `plan_id`), default store and roles, and optionally its business name and contact email. Answers the tokens and the onboarding steps still to take.",
                object(
                    &["email", "password", "full_name", "organization_name"],
                    json!({"email": str_, "password": {"type": "string", "minLength": 10}, "full_name": str_,
                           "organization_name": str_, "plan_id": str_,
                           "business_name": {"type": "string", "description": "The name customers and email see."},
                           "contact_email": {"type": "string", "description": "Where the organization's notifications go."}}),
                ),
                auth::token_schema(),
                201,
                CREATE,
            ),
            Public,
            onboarding::start,
            "auth",
        ),
        op(
            host_op(
                "onboarding.status",
                Get,
                "/onboarding/status",
                None,
                "The onboarding steps (business profile, first store, M-Pesa credentials tested, team invited, first test payment), each marked done by what the organization has actually done.",
                any_object(),
                onboarding::status_schema(),
                200,
                READ,
            ),
            Tenant,
            onboarding::status,
            "tenant",
        ),
        // The audit log and the platform audit (host/src/api/host/audit.rs).
        op(
            host_op(
                "audit.list",
                Get,
                "/audit",
                Some("audit.read"),
                "The organization's audit log, newest first: filters, paging by `cursor`, `format=csv` for a CSV export.",
                audit::list_input(true),
                audit::page_output(),
                200,
                READ,
            ),
            Tenant,
            audit::list,
            "audit",
        ),
        op(
            host_op(
                "audit.verify",
                Get,
                "/audit/verify",
                Some("audit.read"),
                "Walk the audit log's hash chain: the first edited, missing or removed row, if any.",
                any_object(),
                audit::verify_output(),
                200,
                READ,
            ),
            Tenant,
            audit::verify,
            "audit",
        ),
        op(
            host_op(
                "admin.audit.list",
                Get,
                "/admin/audit",
                None,
                "The platform audit (tenants created, suspended, reactivated; plans changed), newest first; filters, paging, CSV (super-admin).",
                audit::list_input(false),
                audit::page_output(),
                200,
                READ,
            ),
            SuperAdmin,
            audit::admin_list,
            "admin",
        ),
        op(
            host_op(
                "admin.audit.verify",
                Get,
                "/admin/audit/verify",
                None,
                "Walk the platform audit's hash chain (super-admin).",
                any_object(),
                audit::verify_output(),
                200,
                READ,
            ),
            SuperAdmin,
            audit::admin_verify,
            "admin",
        ),
        // Settings, feature flags and custom domains (settings.rs,
        // features.rs, domains.rs).
        op(
            host_op(
                "tenant.settings.get",
                Get,
                "/tenant/settings",
                Some("tenant.read"),
                "The organization's settings (currency display, time zone, locale, payment defaults), every key with its effective value: the one set, else its default.",
                any_object(),
                settings::output_schema(),
                200,
                READ,
            ),
            Tenant,
            settings::get,
            "tenant",
        ),
        op(
            host_op(
                "tenant.settings.update",
                Patch,
                "/tenant/settings",
                Some("settings.manage"),
                "Change some settings at once: each key given is set, `null` resets it to its default. An unknown key or a wrong value is refused (422 naming it) and nothing is written.",
                settings::input_schema(),
                settings::output_schema(),
                200,
                UPDATE,
            ),
            Tenant,
            settings::patch,
            "tenant",
        ),
        op(
            host_op(
                "tenant.features",
                Get,
                "/tenant/features",
                None,
                "The features this organization may use: its plan's, with any the platform operator turned on or off for it.",
                any_object(),
                features::output_schema(),
                200,
                READ,
            ),
            Tenant,
            features::tenant_get,
            "tenant",
        ),
        op(
            host_op(
                "admin.tenants.features.get",
                Get,
                "/admin/tenants/{id}/features",
                None,
                "An organization's features: its plan's, the overrides set for it, and the effective ones (super-admin).",
                id_input(),
                features::output_schema(),
                200,
                READ,
            ),
            SuperAdmin,
            features::admin_get,
            "admin",
        ),
        op(
            host_op(
                "admin.tenants.features.set",
                Put,
                "/admin/tenants/{id}/features",
                None,
                "Turn features on (`true`) or off (`false`) for one organization over its plan, or remove an override (`null`); in force at once (super-admin).",
                features::put_schema(),
                features::output_schema(),
                200,
                UPDATE,
            ),
            SuperAdmin,
            features::admin_put,
            "admin",
        ),
        op(
            host_op(
                "tenant.domain.get",
                Get,
                "/tenant/domain",
                Some("tenant.read"),
                "The hostname this organization claimed for its public pages and login, if any.",
                any_object(),
                domains::domain_schema(),
                200,
                READ,
            ),
            Tenant,
            domains::get,
            "tenant",
        ),
        op(
            host_op(
                "tenant.domain.set",
                Put,
                "/tenant/domain",
                Some("settings.manage"),
                "Claim a hostname (e.g. pay.example.com, pointed at this server): once control is proved (POST /tenant/domain/verify), requests sent to it resolve to this organization for its public page and login. Replaces the one held; 409 `domain_taken` if another organization holds it.",
                object(
                    &["hostname"],
                    json!({"hostname": {"type": "string", "description": "A DNS name: not an IP address, not localhost, not the platform's own host."}}),
                ),
                domains::domain_schema(),
                200,
                UPDATE,
            ),
            Tenant,
            domains::put,
            "tenant",
        ),
        op(
            host_op(
                "tenant.domain.delete",
                Delete,
                "/tenant/domain",
                Some("settings.manage"),
                "Give up the organization's hostname.",
                any_object(),
                any_object(),
                200,
                DELETE,
            ),
            Tenant,
            domains::delete,
            "tenant",
        ),
        op(
            host_op(
                "tenant.domain.verify",
                Post,
                "/tenant/domain/verify",
                Some("settings.manage"),
                "Prove control of the claimed hostname: serve the `verification.token` of GET /tenant/domain as the \
                 whole body of http://<hostname>/.well-known/malipo-domain-verification, then call this. Until it \
                 succeeds the hostname routes no login and no public page. 422 `domain_unverified` when the \
                 challenge does not answer the token.",
                any_object(),
                domains::domain_schema(),
                200,
                UPDATE,
            ),
            Tenant,
            domains::verify,
            "tenant",
        ),
        op(
            host_op(
                "public.tenant",
                Get,
                "/public/tenant",
                None,
                "No credential: the public face (name, display name, logo, colours, terminology) of the organization whose claimed hostname this request was sent to (`Host`); 404 `unknown_host` otherwise.",
                any_object(),
                domains::public_schema(),
                200,
                READ,
            ),
            Public,
            domains::public,
            "tenant",
        ),
        // Alerts about tenants' abnormal behaviour (host/src/api/host/alerts.rs).
        op(
            host_op(
                "admin.alerts.list",
                Get,
                "/admin/alerts",
                None,
                "Alerts about organizations' abnormal behaviour — a spike of failed sign-ins, failed payments or server errors — newest first (super-admin).",
                alerts::list_input(),
                alerts::list_output(),
                200,
                READ,
            ),
            SuperAdmin,
            alerts::list,
            "admin",
        ),
        // The callback inbox (host/src/api/host/callback_inbox.rs).
        op(
            host_op(
                "admin.callbacks.list",
                Get,
                "/admin/callbacks",
                None,
                "Stored callbacks by state, newest first: `failed` (default) are those their plugin refused for good, with the reason (super-admin).",
                callback_inbox::list_input(),
                callback_inbox::list_output(),
                200,
                READ,
            ),
            SuperAdmin,
            callback_inbox::list,
            "admin",
        ),
        op(
            host_op(
                "admin.callbacks.replay",
                Post,
                "/admin/callbacks/{id}/replay",
                None,
                "Queue a refused callback again, to be delivered to its plugin at once (super-admin); 409 unless it is `failed`.",
                id_input(),
                callback_inbox::replay_output(),
                200,
                UPDATE,
            ),
            SuperAdmin,
            callback_inbox::replay,
            "admin",
        ),
        op(
            host_op(
                "admin.alerts.acknowledge",
                Post,
                "/admin/alerts/{id}/acknowledge",
                None,
                "Mark an alert seen (super-admin).",
                id_input(),
                alerts::alert_schema(),
                200,
                UPDATE,
            ),
            SuperAdmin,
            alerts::acknowledge,
            "admin",
        ),
        // The tenant's data as one SQLite file (host/src/api/host/export.rs).
        op(
            {
                let mut spec = host_op(
                    "tenant.export",
                    Get,
                    "/tenant/export",
                    Some("tenant.export"),
                    "Download the organization's database: a consistent SQLite snapshot taken while it keeps working, with secrets, tokens and password material removed (application/vnd.sqlite3; tables in docs/DATA.md).",
                    any_object(),
                    export::output_schema(),
                    200,
                    READ,
                );
                spec.feature = Some("data_export".into());
                spec
            },
            Tenant,
            export::export,
            "tenant",
        ),
        // Deleting a tenant after a grace period (host/src/tenant_deletion.rs).
        op(
            host_op(
                "admin.tenants.delete",
                Delete,
                "/admin/tenants/{id}",
                None,
                "Schedule an organization's deletion after the grace period (MALIPO_TENANT_DELETION_GRACE_SECS, default 30 days): it is suspended at once, then its file and every platform row about it are removed (super-admin).",
                id_input(),
                object(
                    &["tenant", "deletion_due_at", "deleted"],
                    json!({"tenant": any_object(), "deletion_due_at": str_, "deleted": {"type": "boolean"}}),
                ),
                200,
                DELETE,
            ),
            SuperAdmin,
            admin::delete_tenant,
            "admin",
        ),
        op(
            host_op(
                "admin.tenants.cancel-deletion",
                Post,
                "/admin/tenants/{id}/cancel-deletion",
                None,
                "Cancel an organization's scheduled deletion during its grace period: it gets its earlier status back (super-admin).",
                id_input(),
                any_object(),
                200,
                UPDATE,
            ),
            SuperAdmin,
            admin::cancel_deletion,
            "admin",
        ),
    ]
}
