//! Tenancy and RBAC: two tenants, each with two stores and a user of every
//! default role. Every route is tried by every role of both tenants; ids
//! are swapped across tenants and stores; tenant ids are injected in body,
//! query and headers. Only the allowed calls succeed, and nothing of one
//! tenant appears in the other's answers or file.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Session, TestApp};

const ROLES: [&str; 4] = ["Owner", "Admin", "Manager", "Member"];

/// Default grants, as the product defines them (host and rbac permissions).
fn holds(role: &str, permission: &str) -> bool {
    let manager = [
        "tenant.read",
        "stores.read",
        "stores.update",
        "stores.access_all",
        "stores.members.manage",
        "users.read",
        "api_keys.manage",
        "roles.read",
    ];
    let member = ["tenant.read", "stores.read"];
    match role {
        "Owner" | "Admin" => true,
        "Manager" => manager.contains(&permission),
        _ => member.contains(&permission),
    }
}

struct World {
    sessions: HashMap<&'static str, Session>,
    tenant_id: String,
    stores: [String; 2],
    roles: HashMap<String, String>,
    custom_role: String,
    key_id: String,
}

impl World {
    fn owner(&self) -> &Session {
        &self.sessions["Owner"]
    }

    fn user(&self, role: &str) -> &str {
        &self.sessions[role].user_id
    }

    fn ids(&self) -> Vec<String> {
        let mut ids = vec![
            self.tenant_id.clone(),
            self.custom_role.clone(),
            self.key_id.clone(),
        ];
        ids.extend(self.stores.iter().cloned());
        ids.extend(self.sessions.values().map(|s| s.user_id.clone()));
        ids.extend(self.roles.values().cloned());
        ids
    }
}

async fn id_of(app: &TestApp, auth: &Auth, method: Method, path: &str, body: Value) -> String {
    let (status, answer) = app.call(method, path, auth, Some(body)).await;
    assert!((200..300).contains(&status), "{path}: {answer}");
    answer["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{path} answered no id: {answer}"))
        .to_string()
}

async fn build_world(app: &TestApp, name: &str) -> World {
    let owner = app.register(name).await;
    let auth = owner.auth();
    let first = owner.default_store.clone().expect("default store");
    let second = id_of(
        app,
        &auth,
        Method::POST,
        "/api/v1/stores",
        json!({"name": "Second"}),
    )
    .await;
    let mut sessions = HashMap::new();
    for role in ["Admin", "Manager", "Member"] {
        sessions.insert(role, app.add_member(&owner, role, None).await);
    }
    let member_id = sessions["Member"].user_id.clone();
    let (status, body) = app
        .post(
            &format!("/api/v1/stores/{first}/users"),
            &auth,
            json!({"user_id": member_id}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, roles) = app.get("/api/v1/roles", &auth).await;
    let roles: HashMap<String, String> = roles["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let custom_role = id_of(
        app,
        &auth,
        Method::POST,
        "/api/v1/roles",
        json!({"name": format!("{name} cashier"), "permissions": ["tenant.read"]}),
    )
    .await;
    let key_id = id_of(
        app,
        &auth,
        Method::POST,
        "/api/v1/api-keys",
        json!({"name": "k", "permissions": ["tenant.read"]}),
    )
    .await;
    sessions.insert("Owner", owner.clone());
    World {
        tenant_id: owner.tenant_id.clone(),
        sessions,
        stores: [first, second],
        roles,
        custom_role,
        key_id,
    }
}

/// One attempt: method, path, body, the permission it needs (None: any
/// member), and the status a holder gets.
struct Case {
    label: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    permission: Option<&'static str>,
    success: u16,
}

fn case(
    label: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    permission: Option<&'static str>,
    success: u16,
) -> Case {
    Case {
        label,
        method,
        path,
        body,
        permission,
        success,
    }
}

/// The cases for one role of `world`; throwaway targets are made by the
/// owner first so that each allowed call has something to act on.
async fn cases(app: &TestApp, world: &World, attempt: usize) -> Vec<Case> {
    let owner = world.owner().auth();
    let [s1, _] = &world.stores;
    let member = world.user("Member");
    let throwaway_store = id_of(
        app,
        &owner,
        Method::POST,
        "/api/v1/stores",
        json!({"name": format!("Temp {attempt}")}),
    )
    .await;
    let throwaway_key = id_of(
        app,
        &owner,
        Method::POST,
        "/api/v1/api-keys",
        json!({"name": "temp", "permissions": ["tenant.read"]}),
    )
    .await;
    let throwaway_role = id_of(
        app,
        &owner,
        Method::POST,
        "/api/v1/roles",
        json!({"name": format!("temp role {attempt}"), "permissions": ["tenant.read"]}),
    )
    .await;
    let assignable_role = id_of(
        app,
        &owner,
        Method::POST,
        "/api/v1/roles",
        json!({"name": format!("assignable {attempt}"), "permissions": ["tenant.read"]}),
    )
    .await;
    let assigned_role = id_of(
        app,
        &owner,
        Method::POST,
        "/api/v1/roles",
        json!({"name": format!("assigned {attempt}"), "permissions": ["tenant.read"]}),
    )
    .await;
    let (status, body) = app
        .post(
            &format!("/api/v1/users/{member}/roles"),
            &owner,
            json!({"role_id": assigned_role}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let custom = &world.custom_role;
    let member_role = &world.roles["Member"];
    use Method as M;
    vec![
        case(
            "get tenant",
            M::GET,
            "/api/v1/tenant".into(),
            None,
            Some("tenant.read"),
            200,
        ),
        case(
            "rename tenant",
            M::PATCH,
            "/api/v1/tenant".into(),
            Some(json!({"name": "Same Org"})),
            Some("tenant.update"),
            200,
        ),
        case(
            "list stores",
            M::GET,
            "/api/v1/stores".into(),
            None,
            Some("stores.read"),
            200,
        ),
        case(
            "create store",
            M::POST,
            "/api/v1/stores".into(),
            Some(json!({"name": "New"})),
            Some("stores.create"),
            201,
        ),
        case(
            "get store",
            M::GET,
            format!("/api/v1/stores/{s1}"),
            None,
            Some("stores.read"),
            200,
        ),
        case(
            "rename store",
            M::PATCH,
            format!("/api/v1/stores/{s1}"),
            Some(json!({"name": "Main store"})),
            Some("stores.update"),
            200,
        ),
        case(
            "delete store",
            M::DELETE,
            format!("/api/v1/stores/{throwaway_store}"),
            None,
            Some("stores.delete"),
            200,
        ),
        case(
            "add store user",
            M::POST,
            format!("/api/v1/stores/{s1}/users"),
            Some(json!({"user_id": member})),
            Some("stores.members.manage"),
            201,
        ),
        case(
            "list users",
            M::GET,
            "/api/v1/users".into(),
            None,
            Some("users.read"),
            200,
        ),
        case(
            "rename user",
            M::PATCH,
            format!("/api/v1/users/{member}"),
            Some(json!({"full_name": "Member person"})),
            Some("users.update"),
            200,
        ),
        case(
            "invite",
            M::POST,
            "/api/v1/invitations".into(),
            Some(
                json!({"email": format!("invitee-{attempt}-{}@example.com", uuid::Uuid::new_v4().simple()), "role_id": member_role}),
            ),
            Some("invitations.create"),
            201,
        ),
        case(
            "list keys",
            M::GET,
            "/api/v1/api-keys".into(),
            None,
            Some("api_keys.manage"),
            200,
        ),
        case(
            "create key",
            M::POST,
            "/api/v1/api-keys".into(),
            Some(json!({"name": "x", "permissions": ["tenant.read"]})),
            Some("api_keys.manage"),
            201,
        ),
        case(
            "delete key",
            M::DELETE,
            format!("/api/v1/api-keys/{throwaway_key}"),
            None,
            Some("api_keys.manage"),
            200,
        ),
        case(
            "list permissions",
            M::GET,
            "/api/v1/permissions".into(),
            None,
            Some("roles.read"),
            200,
        ),
        case(
            "list roles",
            M::GET,
            "/api/v1/roles".into(),
            None,
            Some("roles.read"),
            200,
        ),
        case(
            "create role",
            M::POST,
            "/api/v1/roles".into(),
            Some(json!({"name": format!("made {attempt} {}", uuid::Uuid::new_v4().simple())})),
            Some("roles.create"),
            201,
        ),
        case(
            "get role",
            M::GET,
            format!("/api/v1/roles/{member_role}"),
            None,
            Some("roles.read"),
            200,
        ),
        case(
            "update role",
            M::PATCH,
            format!("/api/v1/roles/{custom}"),
            Some(json!({"description": "till staff"})),
            Some("roles.update"),
            200,
        ),
        case(
            "set role permissions",
            M::PUT,
            format!("/api/v1/roles/{custom}/permissions"),
            Some(json!({"permissions": ["tenant.read"]})),
            Some("roles.update"),
            200,
        ),
        case(
            "delete role",
            M::DELETE,
            format!("/api/v1/roles/{throwaway_role}"),
            None,
            Some("roles.delete"),
            200,
        ),
        case(
            "list user roles",
            M::GET,
            format!("/api/v1/users/{member}/roles"),
            None,
            Some("roles.read"),
            200,
        ),
        case(
            "assign role",
            M::POST,
            format!("/api/v1/users/{member}/roles"),
            Some(json!({"role_id": assignable_role})),
            Some("roles.assign"),
            201,
        ),
        case(
            "remove role",
            M::DELETE,
            format!("/api/v1/users/{member}/roles/{assigned_role}"),
            None,
            Some("roles.assign"),
            200,
        ),
        case("me", M::GET, "/api/v1/me".into(), None, None, 200),
    ]
}

async fn run_matrix(app: &TestApp, world: &World) {
    for (attempt, role) in ROLES.iter().enumerate() {
        let auth = world.sessions[role].auth();
        for case in cases(app, world, attempt).await {
            let allowed = case.permission.is_none_or(|p| holds(role, p));
            let (status, body) = app
                .call(case.method.clone(), &case.path, &auth, case.body.clone())
                .await;
            if allowed {
                assert_eq!(
                    status, case.success,
                    "{role} should be allowed to {}: {body}",
                    case.label
                );
            } else {
                assert_eq!(status, 403, "{role} must be refused {}: {body}", case.label);
            }
        }
        // A super-admin route is refused to every tenant role.
        assert_eq!(app.get("/api/v1/admin/tenants", &auth).await.0, 403);
    }
    // The Member was added to the first store only: the second is a 404.
    let member = world.sessions["Member"].auth();
    let (status, _) = app
        .get(&format!("/api/v1/stores/{}", world.stores[1]), &member)
        .await;
    assert_eq!(status, 404);
    let (_, listed) = app.get("/api/v1/stores", &member).await;
    assert!(!listed.to_string().contains(&world.stores[1]), "{listed}");
    let (status, _) = app
        .call_with(
            Method::GET,
            "/api/v1/tenant",
            &member,
            None,
            &[("X-Store-ID", world.stores[1].as_str())],
        )
        .await;
    assert_eq!(status, 403, "X-Store-ID must name a store the user may use");
    let (status, _) = app
        .call_with(
            Method::GET,
            "/api/v1/tenant",
            &member,
            None,
            &[("X-Store-ID", world.stores[0].as_str())],
        )
        .await;
    assert_eq!(status, 200);
}

/// `attacker`'s roles try `victim`'s ids: holders get 404, others 403.
async fn swap_ids(app: &TestApp, attacker: &World, victim: &World) {
    let [v1, v2] = &victim.stores;
    let v_member = victim.user("Member");
    let v_role = &victim.custom_role;
    let a_member = attacker.user("Member");
    use Method as M;
    let attempts: Vec<(Method, String, Option<Value>, &str)> = vec![
        (M::GET, format!("/api/v1/stores/{v1}"), None, "stores.read"),
        (
            M::PATCH,
            format!("/api/v1/stores/{v1}"),
            Some(json!({"name": "pwned"})),
            "stores.update",
        ),
        (
            M::DELETE,
            format!("/api/v1/stores/{v2}"),
            None,
            "stores.delete",
        ),
        (
            M::POST,
            format!("/api/v1/stores/{v1}/users"),
            Some(json!({"user_id": a_member})),
            "stores.members.manage",
        ),
        (
            M::POST,
            format!("/api/v1/stores/{}/users", attacker.stores[0]),
            Some(json!({"user_id": v_member})),
            "stores.members.manage",
        ),
        (
            M::PATCH,
            format!("/api/v1/users/{v_member}"),
            Some(json!({"status": "deactivated"})),
            "users.update",
        ),
        (
            M::GET,
            format!("/api/v1/users/{v_member}/roles"),
            None,
            "roles.read",
        ),
        (
            M::POST,
            format!("/api/v1/users/{v_member}/roles"),
            Some(json!({"role_id": attacker.custom_role})),
            "roles.assign",
        ),
        (
            M::POST,
            format!("/api/v1/users/{a_member}/roles"),
            Some(json!({"role_id": v_role})),
            "roles.assign",
        ),
        (
            M::GET,
            format!("/api/v1/roles/{v_role}"),
            None,
            "roles.read",
        ),
        (
            M::PATCH,
            format!("/api/v1/roles/{v_role}"),
            Some(json!({"name": "pwned"})),
            "roles.update",
        ),
        (
            M::PUT,
            format!("/api/v1/roles/{v_role}/permissions"),
            Some(json!({"permissions": []})),
            "roles.update",
        ),
        (
            M::DELETE,
            format!("/api/v1/roles/{v_role}"),
            None,
            "roles.delete",
        ),
        (
            M::DELETE,
            format!("/api/v1/api-keys/{}", victim.key_id),
            None,
            "api_keys.manage",
        ),
        (
            M::POST,
            "/api/v1/invitations".into(),
            Some(json!({"email": "x@example.com", "role_id": v_role})),
            "invitations.create",
        ),
        (
            M::POST,
            "/api/v1/invitations".into(),
            Some(
                json!({"email": "y@example.com", "role_id": attacker.roles["Member"], "store_id": v1}),
            ),
            "invitations.create",
        ),
    ];
    for role in ROLES {
        let auth = attacker.sessions[role].auth();
        for (method, path, body, permission) in &attempts {
            let (status, answer) = app.call(method.clone(), path, &auth, body.clone()).await;
            let expected = if holds(role, permission) { 404 } else { 403 };
            assert_eq!(status, expected, "{role} {method} {path}: {answer}");
        }
        let (status, _) = app
            .call_with(
                Method::GET,
                "/api/v1/stores",
                &auth,
                None,
                &[("X-Store-ID", v1.as_str())],
            )
            .await;
        assert_eq!(
            status, 403,
            "{role} used another tenant's store id in X-Store-ID"
        );
    }
    // The victim's things are untouched.
    let owner = victim.owner().auth();
    let (status, store) = app.get(&format!("/api/v1/stores/{v1}"), &owner).await;
    assert_eq!(status, 200);
    assert_ne!(store["name"], "pwned");
    let (status, role) = app.get(&format!("/api/v1/roles/{v_role}"), &owner).await;
    assert_eq!(status, 200);
    assert_eq!(role["permissions"], json!(["tenant.read"]));
    let (status, users) = app.get("/api/v1/users", &owner).await;
    assert_eq!(status, 200);
    assert!(
        users["users"]
            .as_array()
            .expect("users")
            .iter()
            .all(|u| u["status"] == "active"),
        "{users}"
    );
}

/// Tenant ids placed in body, query and headers never override the credential's.
async fn inject_tenant_ids(app: &TestApp, a: &World, b: &World) {
    let auth = a.owner().auth();
    let b_tenant = b.tenant_id.as_str();
    let (status, created) = app
        .call_with(
            Method::POST,
            // Undeclared fields (`tenant_id` in the body or query) are refused
            // outright now (tests/api/strict_input.rs); the header is ignored.
            "/api/v1/stores",
            &auth,
            Some(json!({"name": "Injected"})),
            &[("X-Tenant-ID", b_tenant)],
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let injected = created["id"].as_str().expect("id").to_string();
    let (_, a_stores) = app.get("/api/v1/stores", &auth).await;
    let (_, b_stores) = app.get("/api/v1/stores", &b.owner().auth()).await;
    assert!(a_stores.to_string().contains(&injected));
    assert!(!b_stores.to_string().contains(&injected));
    let (status, listed) = app
        .call_with(
            Method::GET,
            "/api/v1/stores",
            &auth,
            None,
            &[("X-Tenant-ID", b_tenant)],
        )
        .await;
    assert_eq!(status, 200);
    assert!(!listed.to_string().contains(&b.stores[0]), "{listed}");
    let (status, renamed) = app
        .call(
            Method::PATCH,
            "/api/v1/tenant",
            &auth,
            Some(json!({"name": "A renamed"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(renamed["id"], a.tenant_id.as_str());
    let (_, b_tenant_now) = app.get("/api/v1/tenant", &b.owner().auth()).await;
    assert_ne!(b_tenant_now["name"], "A renamed");
    let (status, me) = app.get("/api/v1/me", &auth).await;
    assert_eq!(status, 200);
    assert_eq!(me["tenant"]["id"], a.tenant_id.as_str());
}

/// Nothing of `other` in `world`'s answers or file.
async fn assert_no_leak(app: &TestApp, world: &World, other: &World) {
    let foreign = other.ids();
    let member = world.user("Member");
    let reads = [
        "/api/v1/stores",
        "/api/v1/users",
        "/api/v1/roles",
        "/api/v1/api-keys",
        "/api/v1/me",
        "/api/v1/tenant",
    ];
    for role in ROLES {
        let auth = world.sessions[role].auth();
        let mut paths: Vec<String> = reads.iter().map(|p| p.to_string()).collect();
        paths.push(format!("/api/v1/users/{member}/roles"));
        for path in paths {
            let (_, body) = app.get(&path, &auth).await;
            let text = body.to_string();
            for id in &foreign {
                assert!(
                    !text.contains(id.as_str()),
                    "{role} GET {path} shows the other tenant's {id}"
                );
            }
        }
    }
    let file = app.tenant_file(&world.tenant_id);
    let mut bytes = std::fs::read(&file).expect("tenant file");
    if let Ok(wal) = std::fs::read(format!("{}-wal", file.display())) {
        bytes.extend(wal);
    }
    let haystack = String::from_utf8_lossy(&bytes);
    for id in &foreign {
        assert!(
            !haystack.contains(id.as_str()),
            "tenant {}'s file holds {id} of the other tenant",
            world.tenant_id
        );
    }
}

#[tokio::test]
async fn every_route_every_role_two_tenants_no_leaks() {
    let app = TestApp::spawn().await;
    let a = build_world(&app, "Alpha").await;
    let b = build_world(&app, "Bravo").await;
    assert_ne!(
        a.roles["Owner"], b.roles["Owner"],
        "role ids are per tenant"
    );
    run_matrix(&app, &a).await;
    run_matrix(&app, &b).await;
    swap_ids(&app, &a, &b).await;
    swap_ids(&app, &b, &a).await;
    inject_tenant_ids(&app, &a, &b).await;
    assert_no_leak(&app, &a, &b).await;
    assert_no_leak(&app, &b, &a).await;
}

#[tokio::test]
async fn role_changes_take_effect_at_once_and_nobody_escalates() {
    let app = TestApp::spawn().await;
    let owner = app.register("Escalation").await;
    let admin = app.add_member(&owner, "Admin", None).await;
    let member = app.add_member(&owner, "Member", None).await;
    let (_, roles) = app.get("/api/v1/roles", &owner.auth()).await;
    let role_id = |name: &str| {
        roles["roles"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == name))
            .map(|r| r["id"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    // An Admin may not hand out Owner.
    let (status, body) = app
        .post(
            &format!("/api/v1/users/{}/roles", member.user_id),
            &admin.auth(),
            json!({"role_id": role_id("Owner")}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // A Member cannot list users; once given Manager, at once they can.
    assert_eq!(app.get("/api/v1/users", &member.auth()).await.0, 403);
    let (status, assignment) = app
        .post(
            &format!("/api/v1/users/{}/roles", member.user_id),
            &owner.auth(),
            json!({"role_id": role_id("Manager")}),
        )
        .await;
    assert_eq!(status, 201, "{assignment}");
    assert_eq!(app.get("/api/v1/users", &member.auth()).await.0, 200);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!(
                "/api/v1/users/{}/roles/{}",
                member.user_id,
                role_id("Manager")
            ),
            &owner.auth(),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get("/api/v1/users", &member.auth()).await.0,
        403,
        "removal takes effect at once"
    );
    // Taking a permission away from a role takes effect at once too.
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/roles/{}/permissions", role_id("Member")),
            &owner.auth(),
            Some(json!({"permissions": []})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.get("/api/v1/tenant", &member.auth()).await.0, 403);
    // System roles stay.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/roles/{}", role_id("Owner")),
            &owner.auth(),
            None,
        )
        .await;
    assert_eq!(status, 409);
}
