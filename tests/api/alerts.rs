//! Abnormal tenant behaviour: a spike of failed sign-ins, failed payments or
//! server errors in one organization raises one alert for super-admins
//! (listed, emailed, acknowledged); other organizations raise none.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Auth, Options, TestApp, code};

const ADMIN_EMAIL: &str = "watch@platform.test";

async fn alerts(app: &TestApp, admin: &Auth, query: &str) -> Vec<Value> {
    let (status, body) = app
        .get(&format!("/api/v1/admin/alerts{query}"), admin)
        .await;
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().cloned().unwrap_or_default()
}

/// Occurrences the alert detector counted, by kind and decision.
const SIGNALS: &str = "malipo_alert_signals_total";
/// Alerts whose raising (storing, mailing) has finished.
const RAISED: &str = "malipo_alerts_raised_total";
const FAILED_LOGINS: (&str, &str) = ("kind", "failed_logins");

/// Failed sign-ins the detector counted with this decision.
async fn signals(app: &TestApp, decision: &str) -> f64 {
    app.metric(SIGNALS, &[FAILED_LOGINS, ("decision", decision)])
        .await
}

/// Waits for the alerts of `tenant` to number `n` (they are stored off
/// the request path).
async fn wait_for(app: &TestApp, admin: &Auth, tenant: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let found = alerts(app, admin, &format!("?status=all&tenant_id={tenant}")).await;
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no alert for {tenant}");
}

#[tokio::test]
async fn a_burst_of_failed_sign_ins_alerts_super_admins_once() {
    let app = TestApp::spawn_with(
        Options::default()
            .with_env("MALIPO_ALERT_FAILED_LOGINS", "4")
            .with_env("MALIPO_AUTH_RATE_PER_MINUTE", "1000"),
    )
    .await;
    let admin = app.super_admin_as(ADMIN_EMAIL).await;
    let target = app.register("Alert Target Ltd").await;
    let calm = app.register("Calm Neighbour Ltd").await;

    // Three failures: under the threshold; the calm tenant fails once.
    for _ in 0..3 {
        let (status, _) = app.login(&target.email, "not-the-password-1").await;
        assert_eq!(status, 401);
    }
    let (status, _) = app.login(&calm.email, "not-the-password-1").await;
    assert_eq!(status, 401);
    // The host has counted each of the four, none crossed the threshold,
    // and no alert is being raised: "no alert" is not a matter of timing.
    app.wait_for_metric(SIGNALS, &[FAILED_LOGINS], 4.0).await;
    assert_eq!(signals(&app, "below_threshold").await, 4.0);
    assert_eq!(signals(&app, "alert").await, 0.0);
    assert_eq!(app.metric(RAISED, &[FAILED_LOGINS]).await, 0.0);
    assert!(alerts(&app, &admin, "").await.is_empty());

    // The fourth crosses it; more in the same window add no second alert.
    for _ in 0..4 {
        let (status, _) = app.login(&target.email, "not-the-password-2").await;
        assert_eq!(status, 401);
    }
    // Every failed sign-in counted: one crossed the threshold, the other
    // three were within its window; raising that one alert has finished
    // (stored and mailed), so a second one would be there by now.
    app.wait_for_metric(SIGNALS, &[FAILED_LOGINS], 8.0).await;
    app.wait_for_metric(RAISED, &[FAILED_LOGINS], 1.0).await;
    assert_eq!(signals(&app, "alert").await, 1.0);
    assert_eq!(signals(&app, "suppressed").await, 3.0);
    assert_eq!(
        app.metric(RAISED, &[FAILED_LOGINS, ("outcome", "notified")])
            .await,
        1.0
    );
    assert_eq!(app.metric(RAISED, &[FAILED_LOGINS]).await, 1.0);
    let raised = wait_for(&app, &admin, &target.tenant_id, 1).await;
    let raised_again = alerts(
        &app,
        &admin,
        &format!("?status=all&tenant_id={}", target.tenant_id),
    )
    .await;
    assert_eq!(raised_again.len(), 1, "{raised_again:?}");
    let alert = &raised[0];
    assert_eq!(alert["kind"], "failed_logins");
    assert_eq!(alert["count"], 4);
    assert_eq!(alert["threshold"], 4);
    assert_eq!(alert["tenant_name"], "Alert Target Ltd");
    assert!(alert["acknowledged_at"].is_null());
    let open = alerts(&app, &admin, "").await;
    assert!(
        open.iter()
            .all(|a| a["tenant_id"] != calm.tenant_id.as_str()),
        "{open:?}"
    );

    // Each super-admin is told (no SMTP here: the platform's mail outbox).
    let mail = app
        .last_mail(ADMIN_EMAIL, "tenant_alert")
        .expect("an alert email for the super-admin");
    assert!(
        mail.contains("failed sign-ins") && mail.contains("Alert Target Ltd"),
        "{mail}"
    );

    // Tenants cannot see alerts; acknowledging closes it.
    let (status, body) = app.get("/api/v1/admin/alerts", &target.auth()).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    let id = alert["id"].as_i64().expect("alert id");
    let (status, acked) = app
        .post(
            &format!("/api/v1/admin/alerts/{id}/acknowledge"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acknowledged_by"], ADMIN_EMAIL);
    assert!(alerts(&app, &admin, "").await.is_empty());
    let (status, body) = app
        .post("/api/v1/admin/alerts/999999/acknowledge", &admin, json!({}))
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    let (status, body) = app
        .post(
            "/api/v1/admin/alerts/not-a-number/acknowledge",
            &admin,
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    let (status, body) = app.get("/api/v1/admin/alerts?status=closed", &admin).await;
    assert_eq!((status, code(&body)), (422, "validation_failed"), "{body}");
}

#[tokio::test]
async fn failed_payments_and_server_errors_raise_their_own_alerts() {
    let app = TestApp::spawn_with(
        Options {
            sandbox: true,
            ..Options::daraja_sim()
        }
        .with_env("MALIPO_ALERT_FAILED_PAYMENTS", "2")
        .with_env("MALIPO_ALERT_SERVER_ERRORS", "2"),
    )
    .await;
    let admin = app.super_admin_as(ADMIN_EMAIL).await;
    let shop = app.register("Payments Trouble Ltd").await;
    app.configure_mpesa(&shop).await;

    // Amount 1032: the emulator's customer cancels the prompt.
    for _ in 0..2 {
        let (status, body) = app
            .post(
                "/api/v1/mpesa/stk-push",
                &shop.auth(),
                json!({"phone_number": "254708374149", "amount": 1032,
                       "account_reference": "ALERT", "description": "alert test"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let found = wait_for(&app, &admin, &shop.tenant_id, 1).await;
    assert_eq!(found[0]["kind"], "failed_payments", "{found:?}");

    // A plugin that traps answers 5xx: two of them cross the threshold.
    for _ in 0..2 {
        let (status, body) = app
            .post(
                "/api/v1/sandbox/trap",
                &shop.auth(),
                json!({"note": "boom"}),
            )
            .await;
        assert!(status >= 500, "{status} {body}");
    }
    let found = wait_for(&app, &admin, &shop.tenant_id, 2).await;
    let kinds: Vec<&str> = found.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert!(
        kinds.contains(&"server_errors") && kinds.contains(&"failed_payments"),
        "{kinds:?}"
    );
}
