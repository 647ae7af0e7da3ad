//! B2C bulk payouts: a refused item, a refused batch, a wrong initiator
//! password.

use super::*;
use crate::helpers::code;

#[tokio::test]
async fn a_bulk_payout_pays_the_good_items_and_fails_the_refused_one() {
    let app = spawn().await;
    let owner = app.register("Mpesa Bulk").await;
    let tenant = owner.tenant_id.clone();
    configure(&app, &owner, credentials()).await;

    // An item below the minimum refuses the whole batch; nothing is paid.
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/b2c/bulk",
            &owner.auth(),
            json!({"items": [payout("0712345678", 100, "Salary"), payout("0712345679", 5, "Too small")],
                   "command_id": "BusinessPayment"}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(code(&answer), "validation_failed", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("items[1]") && message.contains("amount"),
        "the error names the item and field: {answer}"
    );
    assert!(emu_requests_to(&app, B2C_PATH).await.is_empty());

    // The emulator refuses one amount (result code 1: insufficient funds).
    set_outcome(&app, json!({"amount": 77, "result_code": 1, "times": 1})).await;
    let answer = bulk(
        &app,
        &owner.auth(),
        vec![
            payout("0712345678", 100, "Salary one"),
            payout("0712345679", 77, "Salary two"),
            payout("0712345680", 250, "Salary three"),
        ],
    )
    .await;
    let batch_id = answer["batch"]["id"]
        .as_str()
        .expect("batch id")
        .to_string();
    assert_eq!(answer["batch"]["item_count"], 3, "{answer}");
    assert_eq!(answer["batch"]["total_amount"], 427, "{answer}");
    let items = answer["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{answer}");
    for item in items {
        assert_eq!(item["status"], "pending", "{answer}");
        assert_eq!(item["kind"], "b2c", "{answer}");
        assert_eq!(item["batch_id"], json!(batch_id), "{answer}");
    }

    let done = wait_batch(&app, &owner.auth(), &batch_id).await;
    let items = done["items"].as_array().expect("items").clone();
    let statuses: Vec<&str> = items
        .iter()
        .map(|i| i["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["completed", "failed", "completed"], "{done}");
    assert_eq!(items[1]["result_code"], "1", "{done}");
    assert!(
        items[0]["receipt"].as_str().is_some_and(|r| !r.is_empty()),
        "{done}"
    );
    assert_eq!(
        done["batch"]["by_status"],
        json!({"completed": 2, "failed": 1}),
        "{done}"
    );
    assert_eq!(done["batch"]["completed_amount"], 350, "{done}");

    // The emulator got three v3 requests whose credential it accepted.
    let sent = emu_requests_to(&app, B2C_PATH).await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    for request in &sent {
        assert_eq!(request["status"], 200, "{request}");
        assert_eq!(request["response"]["ResponseCode"], "0", "{request}");
        assert_eq!(request["body"]["InitiatorName"], "testapi", "{request}");
        assert_eq!(request["body"]["CommandID"], "BusinessPayment", "{request}");
        assert!(
            request["body"]["SecurityCredential"]
                .as_str()
                .is_some_and(|c| c.len() > 100),
            "{request}"
        );
        let text = request["raw_body"].as_str().unwrap_or_default();
        assert!(
            !text.contains(INITIATOR_PASSWORD),
            "the password is sent encrypted only"
        );
    }
    for (item, expected) in items.iter().zip([0, 1, 0]) {
        let conversation = item["conversation_id"].as_str().expect("conversation id");
        let callback = wait_result_callback(&app, conversation).await;
        assert_eq!(
            callback["body"]["Result"]["ResultCode"], expected,
            "{callback}"
        );
    }

    // Events and report.
    wait_inbox_settled(&app).await;
    let completed = events(&app, &tenant, "payout.completed");
    assert_eq!(completed.len(), 2, "{completed:?}");
    for event in &completed {
        assert_eq!(event["batch_id"], json!(batch_id), "{event}");
        assert_eq!(event["kind"], "b2c", "{event}");
    }
    let failed = events(&app, &tenant, "payout.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["transaction_id"], items[1]["id"], "{failed:?}");
    let (status, report) = app
        .get("/api/v1/mpesa/reports?group_by=kind", &owner.auth())
        .await;
    assert_eq!(status, 200, "{report}");
    let b2c = report["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["key"] == "b2c"))
        .unwrap_or_else(|| panic!("no b2c group: {report}"));
    assert_eq!(b2c["count"], 3, "{report}");
    assert_eq!(b2c["completed"], 2, "{report}");
    assert_eq!(b2c["failed"], 1, "{report}");
}

#[tokio::test]
async fn a_wrong_initiator_password_fails_the_payout_with_2001() {
    let app = spawn().await;
    let owner = app.register("Mpesa Bad Initiator").await;
    let mut creds = credentials();
    creds["initiator_password"] = json!("Not the password!");
    configure(&app, &owner, creds).await;

    let answer = bulk(
        &app,
        &owner.auth(),
        vec![payout("0712345678", 100, "Salary")],
    )
    .await;
    let batch_id = answer["batch"]["id"].as_str().expect("batch id");
    let done = wait_batch(&app, &owner.auth(), batch_id).await;
    let item = &done["items"][0];
    assert_eq!(item["status"], "failed", "{done}");
    assert_eq!(item["result_code"], "2001", "{done}");
    assert!(item["receipt"].is_null(), "{done}");
    wait_inbox_settled(&app).await;
    assert_eq!(events(&app, &owner.tenant_id, "payout.completed").len(), 0);
    assert_eq!(events(&app, &owner.tenant_id, "payout.failed").len(), 1);
}
