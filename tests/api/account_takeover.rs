//! Issue 12 §3: no account takeover through a tenant's templates or file.
//! Password-reset and invitation mail is the host's own (platform
//! templates, sent through the operator's SMTP server — here the test
//! sink): no reset or invitation token ever enters a tenant's file (its
//! `.db`, `-wal` and `-shm` bytes are read raw), an organization cannot
//! override those templates, a reset ends every session and every other
//! reset token, a deactivated member cannot reactivate themselves with an
//! old invitation, and an organization cannot rename a user for the others.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::email::Sink;
use crate::helpers::{Auth, Options, PASSWORD, Session, TestApp};

fn options(sink: &Sink) -> Options {
    Options::default()
        .with_env("MALIPO_JOB_INTERVAL_SECS", "1")
        .with_env("MALIPO_EVENT_INTERVAL_MS", "200")
        .with_env("MALIPO_SMTP_URL", &sink.url())
        .with_env("MALIPO_SMTP_FROM", "Malipo Test <mail@malipo.test>")
        .with_env("MALIPO_PUBLIC_URL", "https://pay.example.test")
}

/// Every byte of every tenant file (database, WAL, shared memory).
fn tenant_bytes(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(app.data_dir.join("tenants"))
        .expect("tenants dir")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .map(|path| {
            (
                path.display().to_string(),
                std::fs::read(&path).expect("read tenant file"),
            )
        })
        .collect()
}

fn assert_nowhere_in_tenant_files(app: &TestApp, secret: &str) {
    for (path, bytes) in tenant_bytes(app) {
        let found = bytes
            .windows(secret.len())
            .any(|window| window == secret.as_bytes());
        assert!(!found, "the token {secret} is in {path}");
    }
}

async fn role_id(app: &TestApp, owner: &Session, name: &str) -> String {
    let (_, roles) = app.get("/api/v1/roles", &owner.auth()).await;
    roles["roles"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == name))
        .and_then(|r| r["id"].as_str())
        .expect("role")
        .to_string()
}

async fn invite(app: &TestApp, owner: &Session, email: &str) {
    let role = role_id(app, owner, "Member").await;
    let (status, body) = app
        .post(
            "/api/v1/invitations",
            &owner.auth(),
            json!({"email": email, "role_id": role}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

fn text_of(mail: &Value) -> String {
    mail["text"].as_str().expect("text part").to_string()
}

async fn forgot(app: &TestApp, email: &str) {
    let (status, body) = app
        .post(
            "/api/v1/auth/forgot-password",
            &Auth::None,
            json!({"email": email}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn reset_and_invitation_tokens_never_enter_a_tenant_file_and_still_work() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(options(&sink)).await;
    let owner = app.register("Takeover Ltd").await;

    // The organization cannot touch the platform's reset message.
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/notification-templates/password_reset",
            &owner.auth(),
            Some(json!({"subject": "{{ data.token }}", "text": "{{ data.reset_url }}"})),
        )
        .await;
    assert!(
        status == 404 || status == 422,
        "the platform's reset template is not the organization's: {status} {body}"
    );

    // An invitation arrives from the host, branded, with a working token.
    let invitee = format!("victim-{}@example.com", uuid::Uuid::new_v4().simple());
    invite(&app, &owner, &invitee).await;
    let mail = sink.wait_for(&invitee, 1).await.remove(0);
    let text = text_of(&mail);
    let invitation_token = TestApp::token_in(&text);
    assert!(
        text.contains(&format!(
            "https://pay.example.test/accept-invitation?token={invitation_token}"
        )),
        "{text}"
    );
    assert!(
        mail["subject"]
            .as_str()
            .is_some_and(|s| s.contains("Takeover Ltd")),
        "{mail}"
    );
    let (status, accepted) = app
        .post(
            "/api/v1/invitations/accept",
            &Auth::None,
            json!({"token": invitation_token, "password": PASSWORD, "full_name": "Victim"}),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    let victim = Session::from_auth_response(&accepted, &invitee);

    // Two resets asked for: both arrive through the sink.
    forgot(&app, &invitee).await;
    let first = TestApp::token_in(&text_of(
        &sink
            .wait_for(&invitee, 2)
            .await
            .into_iter()
            .find(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains("password"))
            })
            .expect("reset mail"),
    ));
    forgot(&app, &invitee).await;
    let both = sink.wait_for(&invitee, 3).await;
    let resets: Vec<String> = both
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("password"))
        })
        .map(|m| TestApp::token_in(&text_of(m)))
        .collect();
    assert_eq!(resets.len(), 2, "{both:?}");
    let second = resets
        .iter()
        .find(|t| **t != first)
        .expect("a second token")
        .clone();
    let reset_mail = both
        .iter()
        .find(|m| text_of(m).contains(&second))
        .expect("the second reset mail");
    assert!(
        text_of(reset_mail).contains(&format!(
            "https://pay.example.test/reset-password?token={second}"
        )),
        "{reset_mail}"
    );

    // Let the event worker and the jobs run, then read every tenant file raw.
    let runs = app.plugin_calls("emails.send").await;
    app.wait_for_plugin_calls("emails.send", runs, 2).await;
    for token in [&invitation_token, &first, &second] {
        assert_nowhere_in_tenant_files(&app, token);
    }

    // The reset works end to end, ends every session and the other token.
    let new_password = "a brand new passphrase";
    let (status, body) = app
        .post(
            "/api/v1/auth/reset-password",
            &Auth::None,
            json!({"token": second, "password": new_password}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.login(&invitee, new_password).await.0, 200);
    let (status, body) = app
        .post(
            "/api/v1/auth/refresh",
            &Auth::None,
            json!({"refresh_token": victim.refresh_token}),
        )
        .await;
    assert_eq!(status, 401, "a reset ends every session: {body}");
    let (status, body) = app
        .post(
            "/api/v1/auth/reset-password",
            &Auth::None,
            json!({"token": first, "password": "yet another passphrase"}),
        )
        .await;
    assert_eq!(status, 400, "a reset ends the other reset tokens: {body}");
    assert_eq!(app.login(&invitee, new_password).await.0, 200);
}

#[tokio::test]
async fn a_deactivated_member_cannot_come_back_with_an_old_invitation() {
    let app = TestApp::spawn().await;
    let owner = app.register("Deactivating Ltd").await;
    let email = format!("leaver-{}@example.com", uuid::Uuid::new_v4().simple());
    invite(&app, &owner, &email).await;
    let first = TestApp::token_in(&app.wait_for_mail(&email, "invitation").await);
    invite(&app, &owner, &email).await;
    let mut second = first.clone();
    for _ in 0..100 {
        second = TestApp::token_in(&app.wait_for_mail(&email, "invitation").await);
        if second != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(first, second, "two invitations");
    let (status, accepted) = app
        .post(
            "/api/v1/invitations/accept",
            &Auth::None,
            json!({"token": first, "password": PASSWORD, "full_name": "Leaver"}),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    let member = Session::from_auth_response(&accepted, &email);
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", member.user_id),
            &owner.auth(),
            Some(json!({"status": "deactivated"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = app
        .post(
            "/api/v1/invitations/accept",
            &Auth::None,
            json!({"token": second, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (_, users) = app.get("/api/v1/users", &owner.auth()).await;
    let status_of = users["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["id"] == member.user_id.as_str()))
        .map(|u| u["status"].clone());
    assert_eq!(status_of, Some(json!("deactivated")), "{users}");
}

#[tokio::test]
async fn an_organization_cannot_rename_a_user_for_every_organization() {
    let app = TestApp::spawn().await;
    let alpha = app.register("Alpha Names").await;
    let beta = app.register("Beta Names").await;
    // Alpha's owner joins Beta too.
    invite(&app, &beta, &alpha.email).await;
    let token = TestApp::token_in(&app.wait_for_mail(&alpha.email, "invitation").await);
    let (status, body) = app
        .post(
            "/api/v1/invitations/accept",
            &Auth::None,
            json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", alpha.user_id),
            &beta.auth(),
            Some(json!({"full_name": "Renamed By Beta"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["full_name"], "Renamed By Beta",
        "Beta's own name for them"
    );

    let (status, me) = app.get("/api/v1/me", &alpha.auth()).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["full_name"], "Alpha Names Owner", "{me}");
    let (_, users) = app.get("/api/v1/users", &alpha.auth()).await;
    let name_in_alpha = users["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["id"] == alpha.user_id.as_str()))
        .map(|u| u["full_name"].clone());
    assert_eq!(name_in_alpha, Some(json!("Alpha Names Owner")), "{users}");
}
