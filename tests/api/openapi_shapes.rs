//! The OpenAPI document says what each operation answers: no success
//! response is a bare `{"type": "object"}`, the ids that are UUIDs say so
//! (and only those), and the real answers of the host's operations match
//! the schemas the document declares for them — checked with a JSON Schema
//! validator, formats included.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, PASSWORD, TestApp, code};
use crate::mpesa::pending_payout;

/// The live document.
async fn document(app: &TestApp) -> Value {
    let (status, document) = app.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(status, 200, "{document}");
    document
}

/// Every operation of the document: `(METHOD, path, operation)`.
fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            found.push((method.to_uppercase(), path.clone(), operation));
        }
    }
    found
}

/// An operation's success status and the schema of its JSON answer.
fn success(operation: &Value) -> Option<(u16, &Value)> {
    operation["responses"]
        .as_object()?
        .iter()
        .find(|(status, _)| status.starts_with('2'))
        .and_then(|(status, response)| {
            let schema = response["content"]
                .as_object()?
                .values()
                .next()?
                .get("schema")?;
            Some((status.parse().ok()?, schema))
        })
}

/// A schema that says nothing about its object's fields: no properties and
/// no `additionalProperties` (a map answer, such as `tenant.features`'
/// `features`, declares the type of its values there and so counts as
/// declared).
fn is_bare_object(schema: &Value) -> bool {
    let is_object = match &schema["type"] {
        Value::String(ty) => ty == "object",
        Value::Array(types) => types.iter().any(|ty| ty == "object"),
        _ => false,
    };
    let has_properties = schema["properties"]
        .as_object()
        .is_some_and(|properties| !properties.is_empty());
    is_object && !has_properties && schema.get("additionalProperties").is_none()
}

/// The success schema the document declares for `METHOD /api/v1{template}`.
fn declared<'a>(document: &'a Value, method: &Method, template: &str) -> (u16, &'a Value) {
    let operation =
        &document["paths"][format!("/api/v1{template}")][method.as_str().to_lowercase()];
    success(operation)
        .unwrap_or_else(|| panic!("{method} {template} declares no success answer: {operation}"))
}

/// What a validator finds wrong with `answer` under `schema` (formats
/// checked too: a `"format": "uuid"` id must be one).
fn problems(schema: &Value, answer: &Value) -> Vec<String> {
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|error| panic!("the declared schema does not compile: {error}\n{schema}"));
    validator
        .iter_errors(answer)
        .map(|error| format!("{error} (at `{}`)", error.instance_path()))
        .collect()
}

/// A running server and its document: calls an operation and checks its
/// real answer (status and body) against what the document declares.
struct Checker<'a> {
    app: &'a TestApp,
    document: Value,
}

impl<'a> Checker<'a> {
    async fn new(app: &'a TestApp) -> Self {
        let document = document(app).await;
        Self { app, document }
    }

    /// Calls `method path` (`template` is its OpenAPI path) and answers
    /// the body, once it matched the declared status and schema.
    async fn call(
        &self,
        method: Method,
        template: &str,
        path: &str,
        auth: &Auth,
        body: Option<Value>,
    ) -> Value {
        let (status, schema) = declared(&self.document, &method, template);
        assert!(
            !is_bare_object(schema),
            "{method} {template} documents its answer as a bare object: nothing to check it against"
        );
        let (got, answer) = self
            .app
            .call(method.clone(), &format!("/api/v1{path}"), auth, body)
            .await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        let found = problems(schema, &answer);
        assert!(
            found.is_empty(),
            "{method} {path}: the answer does not match the schema the document declares:\n{}\nanswer: {answer}\nschema: {schema}",
            found.join("\n")
        );
        answer
    }

    async fn get(&self, template: &str, path: &str, auth: &Auth) -> Value {
        self.call(Method::GET, template, path, auth, None).await
    }
}

/// No operation's success answer is documented as a bare object: every one
/// names its fields. (None is exempt today: the answers that are maps
/// declare the type of their values with `additionalProperties`.)
#[tokio::test]
async fn every_success_answer_names_its_fields() {
    let app = TestApp::spawn().await;
    let document = document(&app).await;
    let all = operations(&document);
    assert!(all.len() > 100, "the whole document: {}", all.len());
    let bare: Vec<String> = all
        .iter()
        .filter(|(_, _, operation)| success(operation).is_none_or(|(_, s)| is_bare_object(s)))
        .map(|(method, path, operation)| format!("{} ({method} {path})", operation["operationId"]))
        .collect();
    assert!(
        bare.is_empty(),
        "{} operations document their answer as a bare object:\n{}",
        bare.len(),
        bare.join("\n")
    );
}

/// Ids made as UUIDs (tenants, users, stores, roles, API keys, approvals)
/// are documented `"format": "uuid"`, in paths, inputs and answers; ids
/// that are not (alerts' and callbacks' integers, plan slugs, plugin
/// names) are not.
#[tokio::test]
async fn ids_that_are_uuids_say_so_and_others_do_not() {
    let app = TestApp::spawn().await;
    let document = document(&app).await;
    let path_parameter = |method: &str, path: &str, name: &str| -> Value {
        document["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|list| list.iter().find(|p| p["name"] == name && p["in"] == "path"))
            .map(|p| p["schema"].clone())
            .unwrap_or_else(|| panic!("{method} {path} has no path parameter `{name}`"))
    };
    for (method, path) in [
        ("get", "/api/v1/stores/{id}"),
        ("delete", "/api/v1/stores/{id}"),
        ("post", "/api/v1/stores/{id}/users"),
        ("delete", "/api/v1/api-keys/{id}"),
        ("get", "/api/v1/approvals/{id}"),
        ("post", "/api/v1/approvals/{id}/reject"),
        ("patch", "/api/v1/users/{id}"),
        ("patch", "/api/v1/admin/tenants/{id}"),
        ("delete", "/api/v1/admin/tenants/{id}"),
        ("put", "/api/v1/admin/tenants/{id}/plan"),
    ] {
        assert_eq!(
            path_parameter(method, path, "id")["format"],
            "uuid",
            "{method} {path}"
        );
    }
    for (method, path, name) in [
        ("post", "/api/v1/admin/alerts/{id}/acknowledge", "id"),
        ("post", "/api/v1/admin/callbacks/{id}/replay", "id"),
        ("patch", "/api/v1/admin/plans/{id}", "id"),
        ("post", "/api/v1/callback-tokens/{plugin}/rotate", "plugin"),
    ] {
        assert!(
            path_parameter(method, path, name).get("format").is_none(),
            "{method} {path}: `{name}` is no UUID"
        );
    }
    let input = |method: &str, path: &str| -> Value {
        document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
            .clone()
    };
    assert_eq!(
        input("post", "/api/v1/stores/{id}/users")["properties"]["user_id"]["format"],
        "uuid"
    );
    assert_eq!(
        input("put", "/api/v1/admin/platform")["properties"]["tenant_id"]["format"],
        "uuid"
    );
    let answer = |method: &str, path: &str| -> Value {
        success(&document["paths"][path][method])
            .map(|(_, schema)| schema.clone())
            .unwrap_or_else(|| panic!("{method} {path} declares no answer"))
    };
    let tenant = answer("get", "/api/v1/tenant");
    assert_eq!(tenant["properties"]["id"]["format"], "uuid", "{tenant}");
    assert!(
        tenant["properties"]["slug"].get("format").is_none(),
        "{tenant}"
    );
    let users = answer("get", "/api/v1/users");
    assert_eq!(
        users["properties"]["users"]["items"]["properties"]["id"]["format"], "uuid",
        "{users}"
    );
    let approval = answer("get", "/api/v1/approvals/{id}");
    assert_eq!(
        approval["properties"]["approval"]["properties"]["id"]["format"], "uuid",
        "{approval}"
    );
    let alert = answer("post", "/api/v1/admin/alerts/{id}/acknowledge");
    assert_eq!(alert["properties"]["id"]["type"], "integer", "{alert}");
}

/// A non-UUID id still gets the answer it got before ids were documented
/// as UUIDs: documenting a format changed no validation.
#[tokio::test]
async fn a_non_uuid_id_is_still_not_found() {
    let app = TestApp::spawn().await;
    let owner = app.register("Format Duka").await;
    for (method, path, body) in [
        (Method::GET, "/api/v1/stores/not-a-uuid", None),
        (Method::DELETE, "/api/v1/api-keys/not-a-uuid", None),
        (Method::GET, "/api/v1/approvals/not-a-uuid", None),
        (
            Method::PATCH,
            "/api/v1/users/not-a-uuid",
            Some(json!({"full_name": "Nobody"})),
        ),
    ] {
        let (status, answer) = app.call(method.clone(), path, &owner.auth(), body).await;
        assert_eq!(
            (status, code(&answer)),
            (404, "not_found"),
            "{method} {path}: {answer}"
        );
    }
}

/// The validator used here can fail: the real answer of `GET /tenant`
/// matches its declared schema, and does not match a deliberately wrong
/// copy of it.
#[tokio::test]
async fn the_validator_catches_an_answer_that_does_not_match() {
    let app = TestApp::spawn().await;
    let owner = app.register("Wrong Schema Duka").await;
    let document = document(&app).await;
    let (_, schema) = declared(&document, &Method::GET, "/tenant");
    let (status, tenant) = app.get("/api/v1/tenant", &owner.auth()).await;
    assert_eq!(status, 200, "{tenant}");
    assert_eq!(problems(schema, &tenant), Vec::<String>::new());

    let mut wrong = schema.clone();
    wrong["properties"]["id"] = json!({"type": "integer"});
    assert!(!problems(&wrong, &tenant).is_empty(), "an id is no integer");
    let mut missing = schema.clone();
    missing["required"] = json!(["id", "no_such_field"]);
    assert!(
        !problems(&missing, &tenant).is_empty(),
        "a required field is missing"
    );
    let not_a_uuid = json!({"type": "string", "format": "uuid"});
    assert!(!problems(&not_a_uuid, &json!("store-1")).is_empty());
}

/// An organization's own operations: the organization, the caller (and
/// their login), its people, stores, API keys, callback token, domain, and
/// password and session ends.
#[tokio::test]
async fn an_organizations_answers_match_their_schemas() {
    let app = TestApp::spawn().await;
    let owner = app.register("Shapes Duka").await;
    let auth = owner.auth();
    let check = Checker::new(&app).await;

    check.get("/tenant", "/tenant", &auth).await;
    check.get("/me", "/me", &auth).await;
    check
        .call(
            Method::POST,
            "/auth/login",
            "/auth/login",
            &Auth::None,
            Some(json!({"email": owner.email, "password": PASSWORD, "tenant_id": owner.tenant_id})),
        )
        .await;
    let renamed = check
        .call(
            Method::PATCH,
            "/tenant",
            "/tenant",
            &auth,
            Some(json!({"name": "Shapes Duka Ltd"})),
        )
        .await;
    assert_eq!(renamed["name"], "Shapes Duka Ltd", "{renamed}");
    let me = check
        .call(
            Method::PATCH,
            "/me",
            "/me",
            &auth,
            Some(json!({"full_name": "Shapes Owner"})),
        )
        .await;
    assert_eq!(me["user"]["full_name"], "Shapes Owner", "{me}");

    // People.
    let (status, roles) = app.get("/api/v1/roles", &auth).await;
    assert_eq!(status, 200, "{roles}");
    let member_role = roles["roles"]
        .as_array()
        .and_then(|roles| roles.iter().find(|r| r["name"] == "Member"))
        .and_then(|r| r["id"].as_str())
        .expect("the Member role")
        .to_string();
    let store = owner.default_store.clone().expect("a default store");
    let invited = check
        .call(
            Method::POST,
            "/invitations",
            "/invitations",
            &auth,
            Some(json!({"email": "invited@shapes.example", "role_id": member_role, "store_id": store})),
        )
        .await;
    assert_eq!(invited["role_name"], "Member", "{invited}");
    let member = app.add_member(&owner, "Member", None).await;
    let users = check.get("/users", "/users", &auth).await;
    assert_eq!(users["users"].as_array().map(Vec::len), Some(2), "{users}");
    check
        .call(
            Method::PATCH,
            "/users/{id}",
            &format!("/users/{}", member.user_id),
            &auth,
            Some(json!({"full_name": "Till Person"})),
        )
        .await;

    // Stores.
    let branch = check
        .call(
            Method::POST,
            "/stores",
            "/stores",
            &auth,
            Some(json!({"name": "Branch"})),
        )
        .await;
    let branch_id = branch["id"].as_str().expect("store id").to_string();
    check
        .call(
            Method::POST,
            "/stores/{id}/users",
            &format!("/stores/{branch_id}/users"),
            &auth,
            Some(json!({"user_id": member.user_id})),
        )
        .await;
    check
        .call(
            Method::DELETE,
            "/stores/{id}",
            &format!("/stores/{branch_id}"),
            &auth,
            None,
        )
        .await;

    // API keys.
    let key = check
        .call(
            Method::POST,
            "/api-keys",
            "/api-keys",
            &auth,
            Some(
                json!({"name": "till", "permissions": ["stores.read"], "store_ids": [store],
                        "max_amount_per_call": 500, "expires_at": "2099-01-01T00:00:00Z"}),
            ),
        )
        .await;
    let key_id = key["id"].as_str().expect("key id").to_string();
    let keys = check.get("/api-keys", "/api-keys", &auth).await;
    assert_eq!(keys["api_keys"][0]["id"], key_id, "{keys}");
    check
        .call(
            Method::DELETE,
            "/api-keys/{id}",
            &format!("/api-keys/{key_id}"),
            &auth,
            None,
        )
        .await;

    // The callback token and the custom domain.
    check
        .call(
            Method::POST,
            "/callback-tokens/{plugin}/rotate",
            "/callback-tokens/mpesa/rotate",
            &auth,
            Some(json!({})),
        )
        .await;
    let none = check
        .call(
            Method::DELETE,
            "/tenant/domain",
            "/tenant/domain",
            &auth,
            None,
        )
        .await;
    assert_eq!(none["released"], Value::Null, "{none}");
    let (status, claimed) = app
        .call(
            Method::PUT,
            "/api/v1/tenant/domain",
            &auth,
            Some(json!({"hostname": "pay.shapes.test"})),
        )
        .await;
    assert_eq!(status, 200, "{claimed}");
    let released = check
        .call(
            Method::DELETE,
            "/tenant/domain",
            "/tenant/domain",
            &auth,
            None,
        )
        .await;
    assert_eq!(released["released"], "pay.shapes.test", "{released}");

    // A forgotten password, and a session's end.
    check
        .call(
            Method::POST,
            "/auth/forgot-password",
            "/auth/forgot-password",
            &Auth::None,
            Some(json!({"email": member.email})),
        )
        .await;
    let token = TestApp::token_in(&app.wait_for_mail(&member.email, "password_reset").await);
    check
        .call(
            Method::POST,
            "/auth/reset-password",
            "/auth/reset-password",
            &Auth::None,
            Some(json!({"token": token, "password": "a new horse battery staple"})),
        )
        .await;
    check
        .call(
            Method::POST,
            "/auth/logout",
            "/auth/logout",
            &auth,
            Some(json!({})),
        )
        .await;
}

/// Approvals: listed, read, rejected and approved (run once).
#[tokio::test]
async fn approval_answers_match_their_schemas() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Approvals Shapes Ltd").await;
    app.configure_mpesa(&owner).await;
    let auth = owner.auth();
    let check = Checker::new(&app).await;
    let rejected = pending_payout(&app, &owner).await;
    let approved = pending_payout(&app, &owner).await;

    let listed = check.get("/approvals", "/approvals", &auth).await;
    assert_eq!(
        listed["approvals"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    check
        .get("/approvals/{id}", &format!("/approvals/{rejected}"), &auth)
        .await;
    let answer = check
        .call(
            Method::POST,
            "/approvals/{id}/reject",
            &format!("/approvals/{rejected}/reject"),
            &auth,
            Some(json!({"reason": "not this month"})),
        )
        .await;
    assert_eq!(answer["approval"]["status"], "rejected", "{answer}");
    let answer = check
        .call(
            Method::POST,
            "/approvals/{id}/approve",
            &format!("/approvals/{approved}/approve"),
            &auth,
            Some(json!({})),
        )
        .await;
    assert_eq!(answer["approval"]["status"], "executed", "{answer}");
}

/// The super-admin's operations on organizations, the platform tenant,
/// plans and the test clock.
#[tokio::test]
async fn admin_answers_match_their_schemas() {
    let app = TestApp::spawn_with(Options::default().with_env("MALIPO_TEST_CLOCK", "1")).await;
    let admin = app.super_admin().await;
    let check = Checker::new(&app).await;

    let platform = check
        .get("/admin/platform", "/admin/platform", &admin)
        .await;
    assert_eq!(platform["tenant_id"], Value::Null, "{platform}");
    let created = check
        .call(
            Method::POST,
            "/admin/tenants",
            "/admin/tenants",
            &admin,
            Some(json!({"organization_name": "Admin Shapes", "owner_email": "owner@admin-shapes.example",
                        "owner_password": PASSWORD})),
        )
        .await;
    let tenant = created["tenant"]["id"]
        .as_str()
        .expect("tenant id")
        .to_string();
    let listed = check.get("/admin/tenants", "/admin/tenants", &admin).await;
    assert!(
        listed["tenants"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|row| row["id"] == tenant)),
        "{listed}"
    );
    for status in ["suspended", "active"] {
        let changed = check
            .call(
                Method::PATCH,
                "/admin/tenants/{id}",
                &format!("/admin/tenants/{tenant}"),
                &admin,
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(changed["status"], status, "{changed}");
    }
    // The platform itself is another organization (the one collecting
    // invoices cannot be deleted below).
    let collector = check
        .call(
            Method::POST,
            "/admin/tenants",
            "/admin/tenants",
            &admin,
            Some(json!({"organization_name": "Platform Shapes", "owner_email": "owner@platform-shapes.example",
                        "owner_password": PASSWORD})),
        )
        .await;
    let collector = collector["tenant"]["id"].clone();
    check
        .call(
            Method::PUT,
            "/admin/platform",
            "/admin/platform",
            &admin,
            Some(json!({"tenant_id": collector})),
        )
        .await;
    let platform = check
        .get("/admin/platform", "/admin/platform", &admin)
        .await;
    assert_eq!(platform["tenant_id"], collector, "{platform}");

    let (status, plans) = app.get("/api/v1/admin/plans", &admin).await;
    assert_eq!(status, 200, "{plans}");
    let plan = plans["plans"][0]["id"]
        .as_str()
        .expect("a plan")
        .to_string();
    let subscription = check
        .call(
            Method::PUT,
            "/admin/tenants/{id}/plan",
            &format!("/admin/tenants/{tenant}/plan"),
            &admin,
            Some(json!({"plan_id": plan})),
        )
        .await;
    assert_eq!(subscription["plan_id"], plan, "{subscription}");
    check
        .call(
            Method::POST,
            "/admin/clock",
            "/admin/clock",
            &admin,
            Some(json!({"advance_secs": 60})),
        )
        .await;
    let scheduled = check
        .call(
            Method::DELETE,
            "/admin/tenants/{id}",
            &format!("/admin/tenants/{tenant}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(scheduled["deleted"], false, "{scheduled}");
    check
        .call(
            Method::POST,
            "/admin/tenants/{id}/cancel-deletion",
            &format!("/admin/tenants/{tenant}/cancel-deletion"),
            &admin,
            Some(json!({})),
        )
        .await;
}
