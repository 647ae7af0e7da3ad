//! The rbac manifest: operations with their JSON Schemas, permissions and migrations.

use serde_json::{Value, json};

use crate::malipo::plugin::types::{
    Annotations, HttpMethod, Manifest, Migration, Operation, PermissionDef,
};

/// Roles every rbac permission is granted to by default, besides Owner.
const ADMINS: &[&str] = &["Owner", "Admin"];

pub fn manifest() -> Manifest {
    Manifest {
        name: "rbac".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: "Tenant-defined roles, permissions and role assignments. Deny by default: a user may do \
                      only what a role assigned to them allows, tenant-wide or in one store; Owners may do \
                      everything."
            .to_owned(),
        operations: operations().into_iter().map(Operation::from).collect(),
        permissions: vec![
            permission("roles.read", "See roles, permissions and who holds which role.", &["Owner", "Admin", "Manager"]),
            permission("roles.create", "Create custom roles.", ADMINS),
            permission("roles.update", "Rename roles, edit their descriptions and set their permissions.", ADMINS),
            permission("roles.delete", "Delete custom roles that nobody holds.", ADMINS),
            permission("roles.assign", "Give roles to members and take them away.", ADMINS),
        ],
        subscriptions: Vec::new(),
        emits: Vec::new(),
        read_tables: vec!["members".to_owned(), "stores".to_owned()],
        secrets: Vec::new(),
        outbound_hosts: Vec::new(),
        jobs: Vec::new(),
        callbacks: false,
        sends_mail: false,
        migrations: vec![Migration {
            version: 1,
            name: "init".to_owned(),
            sql: include_str!("../migrations/V1__init.sql").to_owned(),
        }],
    }
}

fn permission(name: &str, description: &str, roles: &[&str]) -> PermissionDef {
    PermissionDef {
        name: name.to_owned(),
        description: description.to_owned(),
        default_roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// One operation, written with static strings and schema values.
struct Op {
    name: &'static str,
    method: HttpMethod,
    /// None for internal operations.
    path: Option<&'static str>,
    permission: Option<&'static str>,
    summary: &'static str,
    description: &'static str,
    input: Value,
    output: Value,
    status: u16,
    tool: Option<&'static str>,
    hints: Annotations,
}

impl From<Op> for Operation {
    fn from(op: Op) -> Self {
        Operation {
            name: op.name.to_owned(),
            method: op.method,
            path: op.path.map(str::to_owned),
            permission: op.permission.map(str::to_owned),
            summary: op.summary.to_owned(),
            description: op.description.to_owned(),
            input_schema: op.input.to_string(),
            output_schema: op.output.to_string(),
            success_status: op.status,
            mcp_tool: op.tool.map(str::to_owned),
            annotations: op.hints,
            money: None,
            feature: None,
        }
    }
}

/// Only reads.
const READ: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};
/// Adds something new; repeating it adds again or conflicts.
const ADD: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};
/// Adds or refreshes; repeating it changes nothing more.
const UPSERT: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: true,
    open_world: false,
};
/// Overwrites or deletes; repeating it changes nothing more.
const OVERWRITE: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: true,
    open_world: false,
};

/// An input object: the host merges path, query and body fields into it.
fn input(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

fn role_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "name", "description", "is_system", "permissions", "created_at", "updated_at"],
        "properties": {
            "id": { "type": "string" },
            "name": { "type": "string" },
            "description": { "type": "string" },
            "is_system": { "type": "boolean", "description": "System roles (Owner, Admin, Manager, Member) cannot be renamed or deleted." },
            "permissions": { "type": "array", "items": { "type": "string" } },
            "created_at": { "type": "string", "format": "date-time" },
            "updated_at": { "type": "string", "format": "date-time" }
        }
    })
}

fn assignment_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "user_id", "role_id", "role_name", "store_id", "created_at"],
        "properties": {
            "id": { "type": "string" },
            "user_id": { "type": "string" },
            "role_id": { "type": "string" },
            "role_name": { "type": "string" },
            "store_id": { "type": ["string", "null"], "description": "Null when the role applies tenant-wide." },
            "created_at": { "type": "string", "format": "date-time" }
        }
    })
}

fn id_param(what: &str) -> Value {
    json!({ "type": "string", "description": format!("Id of the {what}.") })
}

fn store_param(description: &str) -> Value {
    json!({ "type": ["string", "null"], "description": description })
}

fn permission_list(description: &str) -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "uniqueItems": true, "description": description })
}

fn role_name_param() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 64, "description": "Role name, 1 to 64 characters after trimming; unique regardless of case." })
}

fn description_param() -> Value {
    json!({ "type": "string", "maxLength": 1024 })
}

fn deleted_schema(with_id: bool) -> Value {
    let mut schema = json!({
        "type": "object",
        "required": ["deleted"],
        "properties": { "deleted": { "type": "boolean", "const": true } }
    });
    if with_id {
        schema["required"] = json!(["deleted", "id"]);
        schema["properties"]["id"] = json!({ "type": "string" });
    }
    schema
}

fn operations() -> Vec<Op> {
    let mut ops = public_operations();
    ops.extend(internal_operations());
    ops
}

fn public_operations() -> Vec<Op> {
    vec![
        Op {
            name: "permissions.list",
            method: HttpMethod::Get,
            path: Some("/permissions"),
            permission: Some("roles.read"),
            summary: "List permissions",
            description: "Lists every permission defined by the installed plugins, sorted by name.",
            input: input(json!({}), &[]),
            output: json!({
                "type": "object",
                "required": ["permissions"],
                "properties": { "permissions": { "type": "array", "items": {
                    "type": "object",
                    "required": ["name", "description"],
                    "properties": { "name": { "type": "string" }, "description": { "type": "string" } }
                } } }
            }),
            status: 200,
            tool: Some("rbac_list_permissions"),
            hints: READ,
        },
        Op {
            name: "roles.list",
            method: HttpMethod::Get,
            path: Some("/roles"),
            permission: Some("roles.read"),
            summary: "List roles",
            description: "Lists the tenant's roles with their permissions: the system roles first, then custom roles by name.",
            input: input(json!({}), &[]),
            output: json!({
                "type": "object",
                "required": ["roles"],
                "properties": { "roles": { "type": "array", "items": role_schema() } }
            }),
            status: 200,
            tool: Some("rbac_list_roles"),
            hints: READ,
        },
        Op {
            name: "roles.get",
            method: HttpMethod::Get,
            path: Some("/roles/{id}"),
            permission: Some("roles.read"),
            summary: "Get a role",
            description: "Returns one role with its permissions.",
            input: input(json!({ "id": id_param("role") }), &["id"]),
            output: role_schema(),
            status: 200,
            tool: Some("rbac_get_role"),
            hints: READ,
        },
        Op {
            name: "roles.create",
            method: HttpMethod::Post,
            path: Some("/roles"),
            permission: Some("roles.create"),
            summary: "Create a role",
            description: "Creates a custom role. Every permission given must exist and be held by the caller \
                          tenant-wide; role names are unique regardless of case.",
            input: input(
                json!({
                    "name": role_name_param(),
                    "description": description_param(),
                    "permissions": permission_list("Permissions the role grants.")
                }),
                &["name"],
            ),
            output: role_schema(),
            status: 201,
            tool: Some("rbac_create_role"),
            hints: ADD,
        },
        Op {
            name: "roles.update",
            method: HttpMethod::Patch,
            path: Some("/roles/{id}"),
            permission: Some("roles.update"),
            summary: "Update a role",
            description: "Renames a custom role and/or changes a role's description. System roles cannot be renamed.",
            input: input(
                json!({ "id": id_param("role"), "name": role_name_param(), "description": description_param() }),
                &["id"],
            ),
            output: role_schema(),
            status: 200,
            tool: Some("rbac_update_role"),
            hints: OVERWRITE,
        },
        Op {
            name: "roles.delete",
            method: HttpMethod::Delete,
            path: Some("/roles/{id}"),
            permission: Some("roles.delete"),
            summary: "Delete a role",
            description: "Deletes a custom role that is no longer assigned to anyone. System roles cannot be deleted.",
            input: input(json!({ "id": id_param("role") }), &["id"]),
            output: deleted_schema(true),
            status: 200,
            tool: Some("rbac_delete_role"),
            hints: OVERWRITE,
        },
        Op {
            name: "roles.set-permissions",
            method: HttpMethod::Put,
            path: Some("/roles/{id}/permissions"),
            permission: Some("roles.update"),
            summary: "Set a role's permissions",
            description: "Replaces the role's permission set. Every permission given must exist and be held by \
                          the caller tenant-wide. The Owner role's permissions cannot be edited.",
            input: input(
                json!({ "id": id_param("role"), "permissions": permission_list("The complete new permission set.") }),
                &["id", "permissions"],
            ),
            output: role_schema(),
            status: 200,
            tool: Some("rbac_set_role_permissions"),
            hints: OVERWRITE,
        },
        Op {
            name: "user-roles.list",
            method: HttpMethod::Get,
            path: Some("/users/{id}/roles"),
            permission: Some("roles.read"),
            summary: "List a member's roles",
            description: "Lists the roles assigned to a member of the tenant, tenant-wide and per store.",
            input: input(json!({ "id": id_param("user") }), &["id"]),
            output: json!({
                "type": "object",
                "required": ["assignments"],
                "properties": { "assignments": { "type": "array", "items": assignment_schema() } }
            }),
            status: 200,
            tool: Some("rbac_list_user_roles"),
            hints: READ,
        },
        Op {
            name: "user-roles.assign",
            method: HttpMethod::Post,
            path: Some("/users/{id}/roles"),
            permission: Some("roles.assign"),
            summary: "Assign a role to a member",
            description: "Gives a member a role, tenant-wide or (with `store_id`) for one store. The caller must \
                          hold every permission of the role there; only an Owner can assign Owner, which is \
                          always tenant-wide.",
            input: input(
                json!({
                    "id": id_param("user"),
                    "role_id": id_param("role"),
                    "store_id": store_param("Store the role applies to; omit for tenant-wide.")
                }),
                &["id", "role_id"],
            ),
            output: assignment_schema(),
            status: 201,
            tool: Some("rbac_assign_role"),
            hints: ADD,
        },
        Op {
            name: "user-roles.remove",
            method: HttpMethod::Delete,
            path: Some("/users/{id}/roles/{role_id}"),
            permission: Some("roles.assign"),
            summary: "Remove a role from a member",
            description: "Removes a member's tenant-wide assignment of the role, or (with `store_id`) the one for \
                          that store. The tenant's last Owner cannot be removed, and only an Owner can remove \
                          the Owner role.",
            input: input(
                json!({
                    "id": id_param("user"),
                    "role_id": id_param("role"),
                    "store_id": store_param("Store of the assignment to remove; omit for the tenant-wide one.")
                }),
                &["id", "role_id"],
            ),
            output: deleted_schema(false),
            status: 200,
            tool: Some("rbac_remove_role"),
            hints: OVERWRITE,
        },
    ]
}

fn internal_operations() -> Vec<Op> {
    vec![
        Op {
            name: "catalog.sync",
            method: HttpMethod::Post,
            path: None,
            permission: None,
            summary: "Synchronise the permission catalog",
            description: "Upserts the permissions of every installed plugin. A permission seen for the first \
                          time is granted to the system roles in its default roles; Owner holds every permission.",
            input: input(
                json!({ "permissions": { "type": "array", "items": {
                    "type": "object",
                    "required": ["name", "description"],
                    "properties": {
                        "name": { "type": "string" },
                        "description": { "type": "string" },
                        "default_roles": { "type": "array", "items": { "type": "string" } }
                    }
                } } }),
                &["permissions"],
            ),
            output: json!({
                "type": "object",
                "required": ["added"],
                "properties": { "added": { "type": "integer", "minimum": 0 } }
            }),
            status: 200,
            tool: None,
            hints: UPSERT,
        },
        Op {
            name: "assignments.grant",
            method: HttpMethod::Post,
            path: None,
            permission: None,
            summary: "Grant a role without escalation checks",
            description: "Assigns a role (by id or by name) to a member, e.g. Owner at registration or the \
                          invited role on acceptance. Returns the existing assignment if there is one.",
            input: input(
                json!({
                    "user_id": id_param("user"),
                    "role_id": id_param("role"),
                    "role_name": { "type": "string" },
                    "store_id": store_param("Store the role applies to; omit for tenant-wide.")
                }),
                &["user_id"],
            ),
            output: assignment_schema(),
            status: 200,
            tool: None,
            hints: UPSERT,
        },
        Op {
            name: "roles.assignable",
            method: HttpMethod::Get,
            path: None,
            permission: None,
            summary: "Check that the caller may assign a role",
            description: "Answers whether the calling user may assign the role (tenant-wide or for a store), \
                          e.g. before sending an invitation; forbidden if it would escalate.",
            input: input(
                json!({ "role_id": id_param("role"), "store_id": store_param("Store the role would apply to.") }),
                &["role_id"],
            ),
            output: json!({
                "type": "object",
                "required": ["assignable", "role"],
                "properties": { "assignable": { "type": "boolean", "const": true }, "role": role_schema() }
            }),
            status: 200,
            tool: None,
            hints: READ,
        },
        Op {
            name: "users.access",
            method: HttpMethod::Get,
            path: None,
            permission: None,
            summary: "A user's roles and effective permissions",
            description: "Lists the user's roles (tenant-wide and, with `store_id`, for that store only) and the \
                          permissions they add up to; an Owner holds every permission.",
            input: input(
                json!({ "user_id": id_param("user"), "store_id": store_param("Store to evaluate access in.") }),
                &["user_id"],
            ),
            output: json!({
                "type": "object",
                "required": ["roles", "permissions", "is_owner"],
                "properties": {
                    "roles": { "type": "array", "items": {
                        "type": "object",
                        "required": ["role_id", "role_name", "store_id"],
                        "properties": {
                            "role_id": { "type": "string" },
                            "role_name": { "type": "string" },
                            "store_id": { "type": ["string", "null"] }
                        }
                    } },
                    "permissions": { "type": "array", "items": { "type": "string" } },
                    "is_owner": { "type": "boolean" }
                }
            }),
            status: 200,
            tool: None,
            hints: READ,
        },
        Op {
            name: "users.forget",
            method: HttpMethod::Delete,
            path: None,
            permission: None,
            summary: "Forget a user's role assignments",
            description: "Deletes every role assignment of a user who leaves the tenant. Refused for the \
                          tenant's last Owner.",
            input: input(json!({ "user_id": id_param("user") }), &["user_id"]),
            output: json!({
                "type": "object",
                "required": ["deleted"],
                "properties": { "deleted": { "type": "integer", "minimum": 0 } }
            }),
            status: 200,
            tool: None,
            hints: OVERWRITE,
        },
    ]
}
