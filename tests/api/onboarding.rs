//! Onboarding against the real binary: one call signs an organization up,
//! and each step of the status turns done only when the organization has
//! really done it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, PASSWORD, Session, TestApp, code};

fn done(status: &Value) -> Vec<&str> {
    status["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["done"] == true)
        .filter_map(|s| s["id"].as_str())
        .collect()
}

async fn status(app: &TestApp, owner: &Session) -> Value {
    let (code, body) = app.get("/api/v1/onboarding/status", &owner.auth()).await;
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test]
async fn onboarding_signs_up_in_one_step_and_marks_steps_done_by_what_was_done() {
    let app =
        TestApp::spawn_with(Options::daraja_sim().with_env("MALIPO_EVENT_INTERVAL_MS", "100"))
            .await;

    // Bad input creates nothing.
    let email = format!("founder-{}@example.com", uuid::Uuid::new_v4().simple());
    let mut body = json!({"email": email, "password": PASSWORD, "full_name": "Wanjiku Founder",
                          "organization_name": "Mama Mboga Ltd", "business_name": "Mama Mboga",
                          "contact_email": "not an email"});
    let (status_code, refused) = app
        .post("/api/v1/onboarding", &Auth::None, body.clone())
        .await;
    assert_eq!(
        (status_code, code(&refused)),
        (422, "validation_failed"),
        "{refused}"
    );
    assert_eq!(
        app.login(&email, PASSWORD).await.0,
        401,
        "no account was made"
    );

    body["contact_email"] = json!("accounts@mamamboga.example");
    let (status_code, signed_up) = app.post("/api/v1/onboarding", &Auth::None, body).await;
    assert_eq!(status_code, 201, "{signed_up}");
    let owner = Session::from_auth_response(&signed_up, &email);
    assert_eq!(
        done(&signed_up["onboarding"]),
        ["business_profile"],
        "{signed_up}"
    );
    assert_eq!(signed_up["onboarding"]["next"], "first_store");
    let (_, sub) = app.get("/api/v1/subscription", &owner.auth()).await;
    assert_eq!(sub["status"], "trial", "{sub}");
    let (_, roles) = app.get("/api/v1/roles", &owner.auth()).await;
    assert!(
        roles.to_string().contains("Owner"),
        "default roles: {roles}"
    );
    let (_, stores) = app.get("/api/v1/stores", &owner.auth()).await;
    let store = stores["stores"][0]["id"]
        .as_str()
        .expect("default store")
        .to_string();

    // Saving credentials is not testing them; a refused test is not done either.
    app.configure_mpesa(&owner).await;
    assert_eq!(done(&status(&app, &owner).await), ["business_profile"]);

    let (code_, renamed) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/stores/{store}"),
            &owner.auth(),
            Some(json!({"name": "Gikomba stall"})),
        )
        .await;
    assert_eq!(code_, 200, "{renamed}");
    let (code_, tested) = app
        .post("/api/v1/mpesa/credentials/test", &owner.auth(), json!({}))
        .await;
    assert_eq!(code_, 200, "{tested}");
    assert_eq!(
        done(&status(&app, &owner).await),
        ["business_profile", "first_store", "mpesa_credentials"]
    );

    let member_role = roles["roles"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "Member"))
        .and_then(|r| r["id"].as_str())
        .expect("Member role")
        .to_string();
    let (code_, invited) = app
        .post(
            "/api/v1/invitations",
            &owner.auth(),
            json!({"email": "helper@mamamboga.example", "role_id": member_role}),
        )
        .await;
    assert_eq!(code_, 201, "{invited}");
    assert_eq!(
        done(&status(&app, &owner).await),
        [
            "business_profile",
            "first_store",
            "mpesa_credentials",
            "team_invited"
        ],
        "no payment has completed yet"
    );

    let (code_, pushed) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            json!({"phone_number": "254712345678", "amount": 10, "account_reference": "FIRST", "description": "Test"}),
        )
        .await;
    assert_eq!(code_, 201, "{pushed}");
    let mut last = Value::Null;
    for _ in 0..100 {
        last = status(&app, &owner).await;
        if last["complete"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["complete"], true, "{last}");
    assert_eq!(
        (last["done"].as_u64(), last["total"].as_u64()),
        (Some(5), Some(5))
    );
    assert!(last["next"].is_null());

    // Another organization's progress is its own.
    let other = app.register("Someone Else").await;
    assert!(done(&status(&app, &other).await).is_empty());
    assert_eq!(
        app.get("/api/v1/onboarding/status", &Auth::None).await.0,
        401
    );
}
