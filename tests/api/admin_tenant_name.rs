//! Issue 13, one vocabulary across REST and CLI: `POST /admin/tenants`
//! takes the organization's name as `name` (the CLI's `--name`) as well as
//! `organization_name` (registration's word), and the OpenAPI document says
//! so.

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, code};

fn owner_email() -> String {
    format!("named-{}@vocab.example", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn admin_tenants_accepts_name_as_well_as_organization_name() {
    let app = TestApp::spawn().await;
    let admin = app.super_admin().await;

    let (status, created) = app
        .post(
            "/api/v1/admin/tenants",
            &admin,
            json!({"name": "Named Duka", "owner_email": owner_email(), "owner_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["tenant"]["name"], json!("Named Duka"), "{created}");

    // The older word keeps working.
    let (status, created) = app
        .post(
            "/api/v1/admin/tenants",
            &admin,
            json!({"organization_name": "Organized Duka", "owner_email": owner_email(), "owner_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["tenant"]["name"], json!("Organized Duka"));

    // Both, agreeing: fine; disagreeing or neither: 422, nothing made.
    let (status, created) = app
        .post(
            "/api/v1/admin/tenants",
            &admin,
            json!({"name": "Same Duka", "organization_name": "Same Duka", "owner_email": owner_email(), "owner_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (_, before) = app.get("/api/v1/admin/tenants", &admin).await;
    for body in [
        json!({"name": "One", "organization_name": "Two", "owner_email": owner_email(), "owner_password": PASSWORD}),
        json!({"owner_email": owner_email(), "owner_password": PASSWORD}),
    ] {
        let (status, refused) = app
            .post("/api/v1/admin/tenants", &admin, body.clone())
            .await;
        assert_eq!(
            (status, code(&refused)),
            (422, "validation_failed"),
            "{body} → {refused}"
        );
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("organization_name") && m.contains("name")),
            "{refused}"
        );
    }
    let (_, after) = app.get("/api/v1/admin/tenants", &admin).await;
    assert_eq!(
        before["tenants"].as_array().map(Vec::len),
        after["tenants"].as_array().map(Vec::len)
    );

    // The document names both.
    let (status, doc) = app
        .get("/api/v1/openapi.json", &crate::helpers::Auth::None)
        .await;
    assert_eq!(status, 200);
    let schema = &doc["paths"]["/api/v1/admin/tenants"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert!(schema["properties"]["name"].is_object(), "{schema}");
    assert!(
        schema["properties"]["organization_name"].is_object(),
        "{schema}"
    );
    assert!(
        !schema["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("organization_name"))),
        "{schema}"
    );
}
