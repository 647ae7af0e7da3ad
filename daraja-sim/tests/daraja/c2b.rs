//! C2B register URL and simulate → validation/confirmation POSTs.

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{Client, Receiver, slow_sim};

fn register_body(rx: &Receiver, shortcode: &str, response_type: &str) -> Value {
    json!({
        "ShortCode": shortcode,
        "ResponseType": response_type,
        "ConfirmationURL": rx.url("/c2b/confirm"),
        "ValidationURL": rx.url("/c2b/validate"),
    })
}

fn simulate_body(shortcode: &str) -> Value {
    json!({
        "ShortCode": shortcode.parse::<u64>().expect("digits"),
        "CommandID": "CustomerPayBillOnline",
        "Amount": 10,
        "Msisdn": 254_708_374_149u64,
        "BillRefNumber": "ACC-42"
    })
}

#[tokio::test]
async fn register_and_simulate_v2() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let (status, v) = c
        .post(
            "/mpesa/c2b/v2/registerurl",
            &register_body(&rx, "600984", "Completed"),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["OriginatorCoversationID"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "Daraja's spelling: {v}"
    );
    assert!(v.get("OriginatorConversationID").is_none());
    assert_eq!(v["ResponseCode"], json!("0"));
    assert_eq!(v["ResponseDescription"], "Success");

    let (status, v) = c
        .post("/mpesa/c2b/v2/simulate", &simulate_body("600984"))
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["OriginatorCoversationID"].as_str().is_some());
    assert_eq!(
        v["ResponseDescription"],
        "Accept the service request successfully."
    );
    c.flush().await;
    let hit = &rx.wait_for("/c2b/confirm", 1).await[0];
    assert!(
        rx.hits("/c2b/validate").is_empty(),
        "external validation is off by default"
    );
    let n = &hit.json;
    assert_eq!(n["TransactionType"], "Pay Bill");
    assert!(crate::common::is_receipt(
        n["TransID"].as_str().expect("TransID")
    ));
    assert_eq!(n["TransTime"].as_str().map(str::len), Some(14));
    assert_eq!(n["TransAmount"], json!("10.00"), "amounts are strings");
    assert_eq!(n["BusinessShortCode"], json!("600984"));
    assert_eq!(n["BillRefNumber"], "ACC-42");
    assert_eq!(n["InvoiceNumber"], "");
    assert!(
        n["OrgAccountBalance"]
            .as_str()
            .is_some_and(|b| b.contains('.'))
    );
    assert_eq!(n["ThirdPartyTransID"], "");
    assert_eq!(n["MSISDN"], "2547 ***** 149", "v2 masks the MSISDN");
    assert_eq!(
        hit.headers["content-type"],
        "application/json;charset=UTF-8"
    );
}

#[tokio::test]
async fn v1_registration_hashes_msisdn_and_validation_gates_confirmation() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let (_, v) = c
        .post(
            "/mpesa/c2b/v1/registerurl",
            &register_body(&rx, "600985", "Completed"),
        )
        .await;
    assert_eq!(v["ResponseDescription"], "success");
    let (status, _) = c
        .control(
            Method::POST,
            "/simulator/shortcodes",
            Some(json!({"short_code": "600985", "c2b_external_validation": true})),
        )
        .await;
    assert_eq!(status, 204);

    // Validation rejects: no confirmation.
    rx.reply(
        "/c2b/validate",
        200,
        r#"{"ResultCode":"C2B00011","ResultDesc":"Rejected"}"#,
    );
    c.post("/mpesa/c2b/v1/simulate", &simulate_body("600985"))
        .await;
    c.flush().await;
    let validation = &rx.wait_for("/c2b/validate", 1).await[0];
    assert_eq!(
        validation.json["OrgAccountBalance"], "",
        "blank on validation"
    );
    let expected: String = Sha256::digest(b"254708374149")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        validation.json["MSISDN"],
        expected.as_str(),
        "v1 hashes the MSISDN"
    );
    assert!(rx.hits("/c2b/confirm").is_empty());

    // Validation accepts with a ThirdPartyTransID: it is echoed into the confirmation.
    rx.reply(
        "/c2b/validate",
        200,
        r#"{"ResultCode":"0","ResultDesc":"Accepted","ThirdPartyTransID":"TP-77"}"#,
    );
    c.post("/mpesa/c2b/v1/simulate", &simulate_body("600985"))
        .await;
    c.flush().await;
    let confirm = &rx.wait_for("/c2b/confirm", 1).await[0];
    assert_eq!(confirm.json["ThirdPartyTransID"], "TP-77");
}

#[tokio::test]
async fn register_url_rules() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let mut body = json!({
        "ShortCode": "600984",
        "ResponseType": "Completed",
        "ConfirmationURL": "https://example.com/mpesa/confirm",
        "ValidationURL": "https://example.com/validate",
    });
    let (status, v) = c.post("/mpesa/c2b/v2/registerurl", &body).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (400, Some("Bad Request - Invalid ConfirmationURL"))
    );
    body["ConfirmationURL"] = json!("https://example.com/confirm");
    body["ResponseType"] = json!("completed");
    let (status, v) = c.post("/mpesa/c2b/v2/registerurl", &body).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (400, Some("Bad Request - Invalid ResponseType"))
    );
    body["ResponseType"] = json!("Cancelled");
    let (status, _) = c.post("/mpesa/c2b/v2/registerurl", &body).await;
    assert_eq!(status, 200);
}
