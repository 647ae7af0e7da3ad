//! Native unit tests of the rbac logic against a real SQLite database: the
//! plugin's migration plus the host tables it reads (`members`, `stores`).
//! Operations go through [`crate::dispatch`], as the host calls them.

use std::collections::BTreeSet;

use malipo_plugin_sdk::testing::{SqliteDb, code, context};
use malipo_plugin_sdk::{Error, Input, Result};
use serde_json::{Value, json};

use crate::access;

/// The host's clock in every call.
const NOW_MS: u64 = 1_780_000_000_000;

/// A tenant database with the plugin's migration, plus the host tables it
/// reads (`members`, `stores`): five members and two stores.
fn database() -> SqliteDb {
    let manifest = crate::manifest::manifest();
    let db = SqliteDb::in_memory("rbac", &manifest.read_tables).expect("in-memory SQLite");
    db.seed(
        "CREATE TABLE stores (id TEXT PRIMARY KEY, name TEXT NOT NULL); \
         CREATE TABLE members (user_id TEXT PRIMARY KEY, email TEXT NOT NULL); \
         INSERT INTO stores VALUES ('s1', 'Westlands'), ('s2', 'Airport'); \
         INSERT INTO members VALUES ('owner', 'o@x'), ('admin', 'a@x'), ('manager', 'm@x'), \
                                    ('member', 'e@x'), ('clerk', 'c@x');",
    )
    .expect("host tables");
    for migration in manifest.migrations {
        db.migrate(&migration.sql)
            .expect("the plugin's migration applies");
    }
    db
}

/// Runs `operation` as `user` (`None`: the host itself), under the
/// read-only rule its annotations declare.
fn call(db: &SqliteDb, user: Option<&str>, operation: &str, input: Value) -> Result<Value> {
    let read_only = crate::manifest::manifest()
        .operations
        .iter()
        .any(|op| op.name == operation && op.annotations.read_only);
    let input = Input::parse(&input.to_string())?;
    db.call(read_only, || {
        crate::dispatch(db, &context(user, NOW_MS), operation, &input)
    })
}

fn ok(db: &SqliteDb, user: Option<&str>, operation: &str, input: Value) -> Value {
    call(db, user, operation, input.clone())
        .unwrap_or_else(|e| panic!("{operation} {input}: {} {}", e.code, e.message))
}

/// The catalog a few plugins declare, with their default roles.
fn catalog() -> Value {
    json!({"permissions": [
        {"name": "stores.read", "description": "See stores", "default_roles": ["Admin", "Manager", "Member"]},
        {"name": "stores.manage", "description": "Change stores", "default_roles": ["Admin"]},
        {"name": "payments.create", "description": "Take payments", "default_roles": ["Admin", "Manager", "Member"]},
        {"name": "payments.read", "description": "See payments", "default_roles": ["Admin", "Manager", "Member"]},
        {"name": "payouts.create", "description": "Pay out", "default_roles": ["Admin"]},
        {"name": "reports.read", "description": "See reports", "default_roles": ["Admin", "Manager"]},
        {"name": "members.manage", "description": "Invite people", "default_roles": ["Admin", "Manager"]},
    ]})
}

fn role_id(db: &SqliteDb, name: &str) -> String {
    crate::model::find_role_by_name(db, name)
        .expect("query")
        .unwrap_or_else(|| panic!("no role {name}"))
        .id
}

/// A tenant with the catalog synced and each system role held by the
/// member of that name (tenant-wide); `clerk` holds nothing yet.
fn tenant() -> SqliteDb {
    let db = database();
    ok(&db, None, "catalog.sync", catalog());
    for (user, role) in [
        ("owner", "Owner"),
        ("admin", "Admin"),
        ("manager", "Manager"),
        ("member", "Member"),
    ] {
        ok(
            &db,
            None,
            "assignments.grant",
            json!({"user_id": user, "role_name": role}),
        );
    }
    db
}

fn may(db: &SqliteDb, user: &str, permission: &str, store: Option<&str>) -> bool {
    access::authorize(db, user, permission, store).expect("authorize")
}

fn permissions_of(db: &SqliteDb, role: &str) -> BTreeSet<String> {
    crate::model::role_permissions(db, &role_id(db, role))
        .expect("permissions")
        .into_iter()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn the_catalog_grants_new_permissions_to_their_default_roles_and_everything_to_the_owner() {
    let db = database();
    assert_eq!(
        ok(&db, None, "catalog.sync", catalog()),
        json!({"added": 7})
    );
    assert_eq!(
        permissions_of(&db, "Member"),
        set(&["payments.create", "payments.read", "stores.read"])
    );
    assert_eq!(
        permissions_of(&db, "Manager"),
        set(&[
            "members.manage",
            "payments.create",
            "payments.read",
            "reports.read",
            "stores.read"
        ])
    );
    assert_eq!(permissions_of(&db, "Owner").len(), 7);

    // A second sync adds nothing and does not re-grant what an admin took
    // away from a system role; a changed description is kept.
    ok(
        &db,
        None,
        "roles.set-permissions",
        json!({"id": role_id(&db, "Member"), "permissions": ["stores.read"]}),
    );
    let mut again = catalog();
    again["permissions"][0]["description"] = json!("See every store");
    assert_eq!(ok(&db, None, "catalog.sync", again), json!({"added": 0}));
    assert_eq!(permissions_of(&db, "Member"), set(&["stores.read"]));
    let listed = ok(&db, None, "permissions.list", json!({}));
    assert_eq!(listed["permissions"].as_array().map(Vec::len), Some(7));
    assert!(
        listed["permissions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "stores.read" && p["description"] == "See every store"),
        "{listed}"
    );

    // A permission added later reaches the Owner (and its default roles) only.
    let later = json!({"permissions": [
        {"name": "approvals.decide", "description": "Decide", "default_roles": ["Admin"]}
    ]});
    assert_eq!(ok(&db, None, "catalog.sync", later), json!({"added": 1}));
    assert!(permissions_of(&db, "Owner").contains("approvals.decide"));
    assert!(permissions_of(&db, "Admin").contains("approvals.decide"));
    assert!(!permissions_of(&db, "Manager").contains("approvals.decide"));
}

#[test]
fn the_catalog_refuses_malformed_permission_names() {
    let db = database();
    for name in [
        "nodot",
        ".leading",
        "trailing.",
        "double..dot",
        "Upper.case",
        "spa ce.x",
        "",
    ] {
        let input =
            json!({"permissions": [{"name": name, "description": "", "default_roles": []}]});
        assert_eq!(
            code(call(&db, None, "catalog.sync", input)),
            Error::VALIDATION_FAILED,
            "{name:?}"
        );
    }
    let long = format!("a.{}", "b".repeat(127));
    let input = json!({"permissions": [{"name": long}]});
    assert_eq!(
        code(call(&db, None, "catalog.sync", input)),
        Error::VALIDATION_FAILED
    );
    assert_eq!(
        code(call(&db, None, "catalog.sync", json!({}))),
        Error::VALIDATION_FAILED
    );
    assert_eq!(
        code(call(
            &db,
            None,
            "catalog.sync",
            json!({"permissions": [{"name": "a.b", "default_roles": "Admin"}]})
        )),
        Error::VALIDATION_FAILED
    );
    // Nothing of a refused batch was stored... and a good name of exactly
    // the longest length is fine.
    assert_eq!(
        ok(&db, None, "permissions.list", json!({}))["permissions"],
        json!([])
    );
    let longest = format!("a.{}", "b".repeat(126));
    ok(
        &db,
        None,
        "catalog.sync",
        json!({"permissions": [{"name": longest, "default-roles": ["Member"]}]}),
    );
}

#[test]
fn authorization_denies_by_default_and_follows_roles_and_stores() {
    let db = tenant();
    // Nobody, nothing, unknown: denied.
    assert!(!may(&db, "", "payments.read", None));
    assert!(!may(&db, "member", "", None));
    assert!(!may(&db, "stranger", "payments.read", None));
    assert!(!may(&db, "clerk", "payments.read", None));
    // The Owner holds everything, even a permission no plugin declared.
    assert!(may(&db, "owner", "payouts.create", None));
    assert!(may(&db, "owner", "not.declared", Some("s1")));
    // A Member holds the Member permissions, tenant-wide and in every store.
    assert!(may(&db, "member", "payments.create", None));
    assert!(may(&db, "member", "payments.create", Some("s2")));
    assert!(!may(&db, "member", "reports.read", None));
    assert!(!may(&db, "member", "payouts.create", Some("s1")));

    // A role for one store applies in that store only.
    let manager = role_id(&db, "Manager");
    ok(
        &db,
        Some("owner"),
        "user-roles.assign",
        json!({"id": "clerk", "role_id": manager, "store_id": "s1"}),
    );
    assert!(may(&db, "clerk", "reports.read", Some("s1")));
    assert!(!may(&db, "clerk", "reports.read", Some("s2")));
    assert!(!may(&db, "clerk", "reports.read", None));
    // A blank store is no store.
    assert!(!may(&db, "clerk", "reports.read", Some("  ")));
    assert_eq!(access::scope(Some(" s1 ")), Some("s1"));
    assert_eq!(access::scope(Some("")), None);

    let access = ok(
        &db,
        None,
        "users.access",
        json!({"user_id": "clerk", "store_id": "s1"}),
    );
    assert_eq!(access["is_owner"], false);
    assert_eq!(access["roles"][0]["role_name"], "Manager", "{access}");
    assert_eq!(access["roles"][0]["store_id"], "s1", "{access}");
    assert!(
        access["permissions"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("reports.read")))
    );
    let elsewhere = ok(
        &db,
        None,
        "users.access",
        json!({"user_id": "clerk", "store_id": "s2"}),
    );
    assert_eq!(elsewhere["roles"], json!([]), "{elsewhere}");
    assert_eq!(elsewhere["permissions"], json!([]), "{elsewhere}");
    let owner = ok(&db, None, "users.access", json!({"user_id": "owner"}));
    assert_eq!(owner["is_owner"], true);
    assert_eq!(owner["permissions"].as_array().map(Vec::len), Some(7));
}

#[test]
fn no_one_grants_what_they_lack() {
    let db = tenant();
    let admin = role_id(&db, "Admin");
    let member = role_id(&db, "Member");
    let owner = role_id(&db, "Owner");

    // A Manager may make a role of their own permissions, not of more.
    ok(
        &db,
        Some("manager"),
        "roles.create",
        json!({"name": "Shift lead", "permissions": ["reports.read", "payments.read"]}),
    );
    let refused = call(
        &db,
        Some("manager"),
        "roles.create",
        json!({"name": "Treasurer", "permissions": ["payouts.create"]}),
    );
    let error = refused.expect_err("escalation");
    assert_eq!(error.code, Error::FORBIDDEN);
    assert!(
        error.message.contains("`payouts.create`"),
        "{}",
        error.message
    );
    assert!(
        crate::model::find_role_by_name(&db, "Treasurer")
            .expect("query")
            .is_none()
    );

    // …may assign a role within their permissions, not the Admin role…
    ok(
        &db,
        Some("manager"),
        "user-roles.assign",
        json!({"id": "clerk", "role_id": member}),
    );
    assert_eq!(
        code(call(
            &db,
            Some("manager"),
            "user-roles.assign",
            json!({"id": "clerk", "role_id": admin})
        )),
        Error::FORBIDDEN
    );
    assert_eq!(
        code(call(
            &db,
            Some("manager"),
            "roles.assignable",
            json!({"role_id": admin})
        )),
        Error::FORBIDDEN
    );
    assert_eq!(
        ok(
            &db,
            Some("manager"),
            "roles.assignable",
            json!({"role_id": member})
        )["assignable"],
        true
    );
    // …nor give a role permissions they lack.
    let lead = role_id(&db, "Shift lead");
    assert_eq!(
        code(call(
            &db,
            Some("manager"),
            "roles.set-permissions",
            json!({"id": lead, "permissions": ["stores.manage"]})
        )),
        Error::FORBIDDEN
    );

    // Only an Owner assigns the Owner role, and only tenant-wide.
    assert_eq!(
        code(call(
            &db,
            Some("admin"),
            "user-roles.assign",
            json!({"id": "clerk", "role_id": owner})
        )),
        Error::FORBIDDEN
    );
    assert_eq!(
        code(call(
            &db,
            Some("owner"),
            "user-roles.assign",
            json!({"id": "clerk", "role_id": owner, "store_id": "s1"})
        )),
        Error::VALIDATION_FAILED
    );
    ok(
        &db,
        Some("owner"),
        "user-roles.assign",
        json!({"id": "clerk", "role_id": owner}),
    );
    assert!(access::is_owner(&db, "clerk").expect("is owner"));
    // The same assignment twice is a conflict; unknown people, roles and
    // stores are not found.
    assert_eq!(
        code(call(
            &db,
            Some("owner"),
            "user-roles.assign",
            json!({"id": "clerk", "role_id": owner})
        )),
        Error::CONFLICT
    );
    for input in [
        json!({"id": "stranger", "role_id": member}),
        json!({"id": "clerk", "role_id": "no-such-role"}),
        json!({"id": "clerk", "role_id": member, "store_id": "s9"}),
    ] {
        assert_eq!(
            code(call(&db, Some("owner"), "user-roles.assign", input.clone())),
            Error::NOT_FOUND,
            "{input}"
        );
    }
}

#[test]
fn roles_are_named_once_and_system_roles_stay() {
    let db = tenant();
    let created = ok(
        &db,
        Some("owner"),
        "roles.create",
        json!({"name": "  Cashier ", "description": "Till", "permissions": ["payments.create", "payments.create"]}),
    );
    assert_eq!(created["name"], "Cashier");
    assert_eq!(created["is_system"], false);
    assert_eq!(created["permissions"], json!(["payments.create"]));
    let cashier = created["id"].as_str().expect("id").to_owned();
    assert_eq!(
        code(call(
            &db,
            Some("owner"),
            "roles.create",
            json!({"name": "CASHIER"})
        )),
        Error::CONFLICT
    );
    for name in ["", "   ", &"x".repeat(65), "tab\there"] {
        assert_eq!(
            code(call(
                &db,
                Some("owner"),
                "roles.create",
                json!({"name": name})
            )),
            Error::VALIDATION_FAILED,
            "{name:?}"
        );
    }
    assert_eq!(
        code(call(
            &db,
            Some("owner"),
            "roles.create",
            json!({"name": "Ghost", "permissions": ["ghosts.haunt"]})
        )),
        Error::VALIDATION_FAILED
    );

    // The list: system roles by rank, then custom roles by name.
    ok(
        &db,
        Some("owner"),
        "roles.create",
        json!({"name": "auditor"}),
    );
    let names: Vec<Value> = ok(&db, None, "roles.list", json!({}))["roles"]
        .as_array()
        .map(|roles| roles.iter().map(|r| r["name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        vec![
            json!("Owner"),
            json!("Admin"),
            json!("Manager"),
            json!("Member"),
            json!("auditor"),
            json!("Cashier")
        ]
    );

    // System roles are neither renamed nor deleted; the Owner's permissions
    // are not edited; their descriptions may change.
    let admin = role_id(&db, "Admin");
    let owner = role_id(&db, "Owner");
    assert_eq!(
        code(call(
            &db,
            Some("owner"),
            "roles.update",
            json!({"id": admin, "name": "Boss"})
        )),
        Error::CONFLICT
    );
    assert_eq!(
        code(call(
            &db,
            Some("owner"),
            "roles.delete",
            json!({"id": admin})
        )),
        Error::CONFLICT
    );
    assert_eq!(
        code(call(
            &db,
            Some("owner"),
            "roles.set-permissions",
            json!({"id": owner, "permissions": []})
        )),
        Error::CONFLICT
    );
    let described = ok(
        &db,
        Some("owner"),
        "roles.update",
        json!({"id": admin, "description": "Runs the shop"}),
    );
    assert_eq!(described["name"], "Admin");
    assert_eq!(described["description"], "Runs the shop");

    // A custom role is renamed (not onto another's name), and deleted once
    // nobody holds it.
    assert_eq!(
        code(call(
            &db,
            Some("owner"),
            "roles.update",
            json!({"id": cashier, "name": "auditor"})
        )),
        Error::CONFLICT
    );
    let renamed = ok(
        &db,
        Some("owner"),
        "roles.update",
        json!({"id": cashier, "name": "Till operator"}),
    );
    assert_eq!(renamed["name"], "Till operator");
    ok(
        &db,
        Some("owner"),
        "user-roles.assign",
        json!({"id": "clerk", "role_id": cashier, "store_id": "s2"}),
    );
    assert_eq!(
        code(call(
            &db,
            Some("owner"),
            "roles.delete",
            json!({"id": cashier})
        )),
        Error::CONFLICT
    );
    ok(
        &db,
        Some("owner"),
        "user-roles.remove",
        json!({"id": "clerk", "role_id": cashier, "store_id": "s2"}),
    );
    assert_eq!(
        ok(&db, Some("owner"), "roles.delete", json!({"id": cashier})),
        json!({"deleted": true, "id": cashier})
    );
    assert_eq!(
        code(call(&db, None, "roles.get", json!({"id": cashier}))),
        Error::NOT_FOUND
    );
    // Its grants went with it.
    assert_eq!(
        crate::model::role_permissions(&db, &cashier).expect("permissions"),
        Vec::<String>::new()
    );
}

#[test]
fn the_last_owner_stays() {
    let db = tenant();
    let owner = role_id(&db, "Owner");
    let remove = json!({"id": "owner", "role_id": owner});
    assert_eq!(
        code(call(
            &db,
            Some("owner"),
            "user-roles.remove",
            remove.clone()
        )),
        Error::CONFLICT
    );
    assert_eq!(
        code(call(&db, None, "users.forget", json!({"user_id": "owner"}))),
        Error::CONFLICT
    );
    // A non-Owner may not remove an Owner at all.
    assert_eq!(
        code(call(
            &db,
            Some("admin"),
            "user-roles.remove",
            remove.clone()
        )),
        Error::FORBIDDEN
    );
    // With a second Owner, the first may go.
    ok(
        &db,
        None,
        "assignments.grant",
        json!({"user_id": "clerk", "role_id": owner}),
    );
    // (Granting twice is idempotent.)
    ok(
        &db,
        None,
        "assignments.grant",
        json!({"user_id": "clerk", "role_id": owner}),
    );
    assert_eq!(crate::model::tenant_wide_owner_count(&db), Ok(2));
    ok(&db, Some("clerk"), "user-roles.remove", remove);
    assert!(!access::is_owner(&db, "owner").expect("is owner"));
    assert!(!may(&db, "owner", "payments.read", None));
    // Someone leaving loses every assignment.
    assert_eq!(
        ok(&db, None, "users.forget", json!({"user_id": "member"})),
        json!({"deleted": 1})
    );
    assert!(!may(&db, "member", "payments.read", None));
    // Removing what someone does not hold is not found.
    assert_eq!(
        code(call(
            &db,
            Some("clerk"),
            "user-roles.remove",
            json!({"id": "member", "role_id": role_id(&db, "Member")})
        )),
        Error::NOT_FOUND
    );
}

#[test]
fn unknown_operations_are_bad_requests() {
    let db = database();
    assert_eq!(
        code(call(&db, None, "roles.explode", json!({}))),
        Error::BAD_REQUEST
    );
}
