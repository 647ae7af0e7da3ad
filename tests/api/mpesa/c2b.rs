//! C2B: URL registration (no "mpesa" in the URL) and a customer's paybill
//! payment recorded.

use super::*;

#[tokio::test]
async fn c2b_urls_do_not_say_mpesa_and_a_customer_payment_is_recorded() {
    let app = spawn().await;
    let owner = app.register("Mpesa C2B").await;
    configure(&app, &owner, credentials()).await;
    let (status, answer) = app
        .post("/api/v1/mpesa/c2b/register", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["registered"], true, "{answer}");
    assert_eq!(answer["shortcode"], "174379", "{answer}");
    let sent = emu_requests_to(&app, "/mpesa/c2b/v2/registerurl").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let url = sent[0]["body"]["ConfirmationURL"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Safaricom refuses C2B URLs containing "mpesa": the host gives an opaque one.
    assert!(!url.to_lowercase().contains("mpesa"), "{url}");
    assert!(
        url.contains(&format!("/hooks/{}/", owner.tenant_id)),
        "{url}"
    );

    // A customer pays the paybill: the emulator posts the confirmation to the
    // registered URL, and the payment is recorded as a completed C2B transaction.
    let emulator = app.emulator.clone().expect("emulator");
    let oauth: Value = app
        .client
        .get(format!(
            "{emulator}/oauth/v1/generate?grant_type=client_credentials"
        ))
        .basic_auth("c2b-app", Some("c2b-secret"))
        .send()
        .await
        .expect("oauth")
        .json()
        .await
        .expect("json");
    let token = oauth["access_token"].as_str().expect("token").to_string();
    let simulated = app
        .client
        .post(format!("{emulator}/mpesa/c2b/v2/simulate"))
        .bearer_auth(&token)
        .json(
            &json!({"ShortCode": 174379, "CommandID": "CustomerPayBillOnline", "Amount": 250,
            "Msisdn": 254708374149u64, "BillRefNumber": "INV-77"}),
        )
        .send()
        .await
        .expect("simulate");
    assert_eq!(simulated.status().as_u16(), 200);
    let mut found = Value::Null;
    for _ in 0..200 {
        let (_, list) = app
            .get("/api/v1/mpesa/transactions?kind=c2b", &owner.auth())
            .await;
        if let Some(first) = list["transactions"].as_array().and_then(|t| t.first()) {
            found = first.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(found["status"], "completed", "{found}");
    assert_eq!(found["amount"], 250, "{found}");
    assert_eq!(found["account_reference"], "INV-77", "{found}");
    // A member may not register URLs.
    let member = app.add_member(&owner, "Member", None).await;
    let (status, answer) = app
        .post("/api/v1/mpesa/c2b/register", &member.auth(), json!({}))
        .await;
    assert_eq!(status, 403, "{answer}");
}
