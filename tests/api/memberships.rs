//! People in several organizations can find them: the login answer and
//! `/me` list every membership (organization, roles) and the stores usable
//! in each; `/me` also lists the stores usable here (the values
//! `X-Store-ID` accepts).

use serde_json::Value;

use crate::helpers::{Auth, PASSWORD, TestApp};

fn tenant_ids(memberships: &Value) -> Vec<String> {
    memberships
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|m| m["tenant"]["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The invitation email `email` got from `tenant` (the person already has
/// one from another organization): the host sends it from control.db's
/// mail outbox (no invitation token enters a tenant file).
async fn invitation_in(app: &TestApp, tenant: &str, email: &str) -> String {
    crate::settings::invitation_in(app, tenant, email).await
}

#[tokio::test]
async fn login_and_me_list_every_membership_with_roles_and_stores() {
    let app = TestApp::spawn().await;
    let alpha = app.register("Alpha Memberships").await;
    let beta = app.register("Beta Memberships").await;
    let alpha_store = alpha.default_store.clone().expect("alpha store");
    let beta_store = beta.default_store.clone().expect("beta store");
    // A Member of Alpha (added to its store), then invited into Beta.
    let person = app.add_member(&alpha, "Member", Some(&alpha_store)).await;
    let (_, roles) = app.get("/api/v1/roles", &beta.auth()).await;
    let manager = roles["roles"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "Manager"))
        .and_then(|r| r["id"].as_str())
        .expect("Manager role")
        .to_string();
    let (status, body) = app
        .post(
            "/api/v1/invitations",
            &beta.auth(),
            serde_json::json!({"email": person.email, "role_id": manager}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = TestApp::token_in(&invitation_in(&app, &beta.tenant_id, &person.email).await);
    let (status, body) = app
        .post(
            "/api/v1/invitations/accept",
            &Auth::None,
            serde_json::json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Login without tenant_id lands in the oldest, and lists both.
    let (status, login) = app.login(&person.email, PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    let ids = tenant_ids(&login["memberships"]);
    assert!(
        ids.contains(&alpha.tenant_id) && ids.contains(&beta.tenant_id),
        "{login}"
    );
    let in_alpha = login["memberships"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["tenant"]["id"] == alpha.tenant_id.as_str())
        })
        .cloned()
        .expect("alpha membership");
    assert!(in_alpha["tenant"]["name"].is_string(), "{in_alpha}");
    assert!(
        in_alpha["roles"].to_string().contains("Member"),
        "{in_alpha}"
    );
    assert_eq!(in_alpha["all_stores"], false, "{in_alpha}");
    assert!(
        in_alpha["stores"].to_string().contains(&alpha_store),
        "{in_alpha}"
    );
    let in_beta = login["memberships"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["tenant"]["id"] == beta.tenant_id.as_str())
        })
        .cloned()
        .expect("beta membership");
    assert!(
        in_beta["roles"].to_string().contains("Manager"),
        "{in_beta}"
    );
    assert_eq!(in_beta["all_stores"], true, "{in_beta}");
    assert!(
        in_beta["stores"].to_string().contains(&beta_store),
        "{in_beta}"
    );

    // /me: the same memberships, and the stores usable here.
    let session = Auth::Bearer(login["access_token"].as_str().expect("token").to_string());
    let (status, me) = app.get("/api/v1/me", &session).await;
    assert_eq!(status, 200, "{me}");
    let ids = tenant_ids(&me["memberships"]);
    assert!(
        ids.contains(&alpha.tenant_id) && ids.contains(&beta.tenant_id),
        "{me}"
    );
    let here: Vec<&str> = me["stores"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(here, vec![alpha_store.as_str()], "{me}");
    assert!(!me["stores"].to_string().contains(&beta_store), "{me}");
}
