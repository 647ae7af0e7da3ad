//! Issue 13: `POST /invoices/{id}/pay` checks what the caller can fix before
//! it says the platform cannot collect yet — an unknown invoice is 404 and
//! a malformed phone 422, whether or not the platform's own M-Pesa account
//! is set up; only a payable request meets the 503.

use serde_json::json;

use crate::helpers::{Options, TestApp, code};

#[tokio::test]
async fn paying_an_invoice_checks_the_invoice_and_the_phone_before_the_platform() {
    let app = TestApp::spawn_with(
        Options::daraja_sim()
            .with_env("MALIPO_TEST_CLOCK", "1")
            .with_env("MALIPO_USAGE_FLUSH_MS", "60000"),
    )
    .await;
    let admin = app.super_admin().await;
    let shop = app.register("Unpaid Shop").await;
    // Three days before the trial ends, the first invoice is issued; no
    // platform account has been named.
    let (status, body) = app
        .post(
            "/api/v1/admin/clock",
            &admin,
            json!({"advance_secs": 12 * 86_400}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, invoices) = app.get("/api/v1/invoices", &shop.auth()).await;
    assert_eq!(status, 200, "{invoices}");
    let invoice = invoices["invoices"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an invoice: {invoices}"))
        .to_string();

    let pay = |id: String, phone: &'static str| {
        let app = &app;
        let auth = shop.auth();
        async move {
            app.post(
                &format!("/api/v1/invoices/{id}/pay"),
                &auth,
                json!({"phone_number": phone}),
            )
            .await
        }
    };

    let (status, body) = pay(uuid::Uuid::new_v4().to_string(), "0712345678").await;
    assert_eq!((status, code(&body)), (404, "not_found"), "{body}");
    let (status, body) = pay("not-an-invoice".into(), "0712345678").await;
    assert_eq!(status, 404, "{body}");
    for phone in ["12", "0812345678", "+1 555 0100", "07123456789"] {
        let (status, body) = pay(invoice.clone(), phone).await;
        assert_eq!(
            (status, code(&body)),
            (422, "validation_failed"),
            "{phone}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("phone_number")),
            "{body}"
        );
    }
    // A payable request: now the platform's missing account is the reason.
    let (status, body) = pay(invoice.clone(), "0712345678").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("PUT /api/v1/admin/platform")),
        "{body}"
    );
    // No attempt was recorded by the refused calls.
    let (status, detail) = app
        .get(&format!("/api/v1/invoices/{invoice}"), &shop.auth())
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["status"], json!("open"), "{detail}");
    assert_eq!(detail["attempts"], json!([]), "{detail}");
}
