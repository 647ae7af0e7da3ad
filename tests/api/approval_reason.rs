//! Rejecting an approval with a reason: the reason is kept with the
//! approval, answered by the API and written to the audit row; one longer
//! than 500 characters is refused naming `reason`; a reason is optional.

use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, code};
use crate::mpesa::pending_payout;

#[tokio::test]
async fn a_rejection_keeps_its_reason_in_the_approval_and_the_audit_log() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Reasons Ltd").await;
    app.configure_mpesa(&owner).await;
    let id = pending_payout(&app, &owner).await;
    let path = format!("/api/v1/approvals/{id}/reject");

    let (status, body) = app
        .post(&path, &owner.auth(), json!({"reason": "x".repeat(501)}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(&body), "validation_failed", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`reason`"),
        "{body}"
    );

    let reason = "Not on this month's payroll";
    let (status, body) = app
        .post(&path, &owner.auth(), json!({"reason": reason}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approval"]["status"], "rejected", "{body}");
    assert_eq!(body["approval"]["reason"], reason, "{body}");
    let (status, body) = app
        .get(&format!("/api/v1/approvals/{id}"), &owner.auth())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approval"]["reason"], reason, "{body}");

    let (status, audit) = app
        .get("/api/v1/audit?operation=approvals.reject", &owner.auth())
        .await;
    assert_eq!(status, 200, "{audit}");
    let rows: Vec<&Value> = audit["entries"]
        .as_array()
        .map(|e| e.iter().filter(|r| r["outcome"] == "success").collect())
        .unwrap_or_default();
    assert_eq!(rows.len(), 1, "{audit}");
    assert!(rows[0].to_string().contains(reason), "{audit}");

    // Decided once: a second rejection is a 409 and the reason stays.
    let (status, body) = app
        .post(&path, &owner.auth(), json!({"reason": "again"}))
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, body) = app
        .get(&format!("/api/v1/approvals/{id}"), &owner.auth())
        .await;
    assert_eq!(body["approval"]["reason"], reason, "{body}");

    // Without a reason is fine too.
    let other = pending_payout(&app, &owner).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/approvals/{other}/reject"),
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approval"]["reason"], Value::Null, "{body}");
}
