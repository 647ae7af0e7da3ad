//! Account balance and transaction status queries: asynchronous results
//! stored and readable.

use super::*;

#[tokio::test]
async fn balance_and_transaction_status_results_are_stored_and_readable() {
    let app = spawn().await;
    let owner = app.register("Mpesa Queries").await;
    configure(&app, &owner, credentials()).await;

    let (status, answer) = app
        .post("/api/v1/mpesa/balance", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["request"]["status"], "pending", "{answer}");
    let id = answer["request"]["id"].as_str().expect("id").to_string();
    assert_eq!(emu_requests_to(&app, BALANCE_PATH).await.len(), 1);
    let balance = wait_request(&app, &owner.auth(), &format!("/api/v1/mpesa/balance/{id}")).await;
    assert_eq!(balance["status"], "completed", "{balance}");
    assert_eq!(balance["result_code"], "0", "{balance}");
    let accounts = balance["result"]["accounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!accounts.is_empty(), "{balance}");
    let working = accounts
        .iter()
        .find(|a| a["name"] == "Working Account")
        .unwrap_or_else(|| panic!("no working account: {balance}"));
    assert_eq!(working["currency"], "KES", "{balance}");
    assert!(
        working["available"]
            .as_str()
            .is_some_and(|a| a.parse::<f64>().is_ok()),
        "{balance}"
    );
    let (status, missing) = app
        .get(
            &format!("/api/v1/mpesa/balance/{}", uuid::Uuid::new_v4()),
            &owner.auth(),
        )
        .await;
    assert_eq!(status, 404, "{missing}");

    let paid = completed_payment(&app, &owner.auth(), 120).await;
    let receipt = paid["receipt"].as_str().expect("receipt").to_string();
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/transaction-status",
            &owner.auth(),
            json!({"receipt": receipt}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["request"]["receipt"], json!(receipt), "{answer}");
    assert_eq!(answer["request"]["transaction_id"], paid["id"], "{answer}");
    let id = answer["request"]["id"].as_str().expect("id").to_string();
    let sent = emu_requests_to(&app, STATUS_PATH).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["body"]["TransactionID"], json!(receipt), "{sent:?}");
    let result = wait_request(
        &app,
        &owner.auth(),
        &format!("/api/v1/mpesa/transaction-status/{id}"),
    )
    .await;
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["result_code"], "0", "{result}");
    assert!(
        result["result"]["parameters"]
            .as_object()
            .is_some_and(|p| !p.is_empty()),
        "{result}"
    );
    assert!(result["result"].to_string().contains(&receipt), "{result}");
}
