//! In-app notifications: a payment completed through the emulator becomes
//! a notification every member sees, read state is each person's own, and
//! another tenant sees nothing of it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Session, TestApp};
use crate::mpesa::pay;
use crate::webhooks::options;

async fn inbox(app: &TestApp, who: &Session) -> Value {
    let (status, body) = app.get("/api/v1/notifications", &who.auth()).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_payment_notifies_every_member_who_each_read_it_on_their_own() {
    let app = TestApp::spawn_with(options(false)).await;
    let owner = app.register("Notify Ltd").await;
    let stranger = app.register("Elsewhere Ltd").await;
    let member = app.add_member(&owner, "Member", None).await;
    app.configure_mpesa(&owner).await;
    pay(&app, &owner, 120).await;
    let mut seen = Value::Null;
    for _ in 0..200 {
        seen = inbox(&app, &owner).await;
        if seen["unread_count"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen["unread_count"], 1, "{seen}");
    let note = &seen["notifications"][0];
    assert_eq!(note["kind"], "payment.completed");
    assert_eq!(note["title"], "Payment received");
    assert!(
        note["body"].as_str().is_some_and(|b| b.contains("KES 120")),
        "{note}"
    );
    assert_eq!(note["read"], false);
    let id = note["id"].as_str().expect("id").to_string();

    let (status, body) = app
        .post(
            &format!("/api/v1/notifications/{id}/read"),
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(inbox(&app, &owner).await["unread_count"], 0);
    let theirs = inbox(&app, &member).await;
    assert_eq!(theirs["unread_count"], 1, "{theirs}");
    assert_eq!(theirs["notifications"][0]["read"], false);

    let none = inbox(&app, &stranger).await;
    assert_eq!(none["unread_count"], 0, "{none}");
    assert_eq!(none["notifications"], json!([]));
    let (status, _) = app
        .post(
            &format!("/api/v1/notifications/{id}/read"),
            &stranger.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "another tenant's notification is not found");
}
