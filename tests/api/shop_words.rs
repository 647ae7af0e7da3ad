//! Issue 13, webhooks a shop can use: the payment events carry the
//! `account_reference` and `description` the shop matches its orders by.

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::mpesa::pay;
use crate::webhooks::{Receiver, options};

#[tokio::test]
async fn a_payment_webhook_carries_the_account_reference_and_description() {
    let receiver = Receiver::start(vec![]).await;
    let app = TestApp::spawn_with(options(true)).await;
    let owner = app.register("Order Matcher").await;
    app.configure_mpesa(&owner).await;
    crate::webhooks::subscribe(&app, &owner, &receiver.url, json!(["payment.completed"])).await;
    let txn = pay(&app, &owner, 75).await;
    let got = receiver.wait_for(1).await;
    let body: Value = serde_json::from_str(&got[0].body).expect("json body");
    assert_eq!(body["data"]["transaction_id"], json!(txn), "{body}");
    assert_eq!(body["data"]["account_reference"], json!("SHOP-1"), "{body}");
    assert_eq!(body["data"]["description"], json!("Order"), "{body}");
}
