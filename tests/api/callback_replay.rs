//! Callbacks a plugin refuses for good are not lost: the super-admin sees
//! them, with the reason, at `GET /admin/callbacks` and can queue one
//! again with `POST /admin/callbacks/{id}/replay`. Nobody else can.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, TestApp, code};

/// The callback URL the emulator was given for the tenant's first push.
async fn callback_url(app: &TestApp) -> String {
    for _ in 0..100 {
        let requests = app.emulator_requests().await;
        let found = requests
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|r| r["body"]["CallBackURL"].as_str().map(str::to_string));
        if let Some(url) = found {
            return url;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the emulator recorded no push");
}

/// The failed callbacks the super-admin sees, waiting until `want` appear.
async fn failed(app: &TestApp, admin: &Auth, tenant: &str, want: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (status, body) = app
            .get(
                &format!("/api/v1/admin/callbacks?state=failed&tenant_id={tenant}"),
                admin,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let list = body["callbacks"].as_array().cloned().unwrap_or_default();
        if list.len() >= want {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {want} failed callbacks for {tenant}");
}

#[tokio::test]
async fn a_refused_callback_is_listed_for_the_super_admin_and_can_be_replayed() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Callback Keeper").await;
    app.configure_mpesa(&owner).await;
    let (status, pushed) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            json!({"phone_number": "0712345678", "amount": 10, "account_reference": "R1", "description": "Replay"}),
        )
        .await;
    assert_eq!(status, 201, "{pushed}");
    let url = callback_url(&app).await;
    // A body the plugin refuses for good (no stkCallback in it).
    let response = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"Body":{"unexpected":true}}"#)
        .send()
        .await
        .expect("callback");
    assert_eq!(
        response.status().as_u16(),
        200,
        "acknowledged as Daraja expects"
    );

    let admin = app.super_admin().await;
    let list = failed(&app, &admin, &owner.tenant_id, 1).await;
    let refused = list
        .iter()
        .find(|c| c["body"].as_str().is_some_and(|b| b.contains("unexpected")))
        .cloned()
        .expect("the refused callback is listed");
    assert_eq!(refused["plugin"], "mpesa", "{refused}");
    assert_eq!(refused["kind"], "stk", "{refused}");
    assert!(
        refused["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "the reason is kept: {refused}"
    );
    let id = refused["id"].as_i64().expect("id");
    let attempts = refused["attempts"].as_i64().expect("attempts");

    // The organization's owner is not the platform: neither list nor replay.
    let (status, body) = app.get("/api/v1/admin/callbacks", &owner.auth()).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/callbacks/{id}/replay"),
            &owner.auth(),
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");

    // An id that is no row, numbered or not, is no such callback.
    for missing in ["999999", "not-a-number"] {
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/api/v1/admin/callbacks/{missing}/replay"),
                &admin,
                None,
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (404, "not_found"),
            "{missing}: {body}"
        );
    }

    // Replayed: delivered again at once (its plugin refuses it again, so it
    // comes back as failed with one more attempt).
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/callbacks/{id}/replay"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "pending", "{body}");
    let mut again = None;
    for _ in 0..100 {
        let list = failed(&app, &admin, &owner.tenant_id, 1).await;
        again = list
            .into_iter()
            .find(|c| c["id"] == json!(id) && c["attempts"].as_i64() > Some(attempts));
        if again.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the replay was delivered again");

    // Only a refused callback can be replayed; an unknown one is 404.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/admin/callbacks/999999/replay",
            &admin,
            None,
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    // The emulator's own callback for the push was applied: not replayable.
    let mut done_id = None;
    for _ in 0..100 {
        let (status, applied) = app
            .get("/api/v1/admin/callbacks?state=applied", &admin)
            .await;
        assert_eq!(status, 200, "{applied}");
        done_id = applied["callbacks"]
            .as_array()
            .and_then(|l| l.first())
            .and_then(|c| c["id"].as_i64());
        if done_id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done_id = done_id.expect("the emulator's callback was applied");
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/callbacks/{done_id}/replay"),
            &admin,
            None,
        )
        .await;
    assert_eq!((status, code(&body)), (409, "conflict"), "{body}");
}
