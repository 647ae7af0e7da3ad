//! Reversals: partial, once, never beyond the amount, never of a failed or
//! pending payment; one Daraja refuses is failed and blocks no other.

use super::*;
use crate::helpers::code;

#[tokio::test]
async fn a_completed_payment_can_be_reversed_once_and_only_within_its_amount() {
    let app = spawn().await;
    let owner = app.register("Mpesa Reversal").await;
    let tenant = owner.tenant_id.clone();
    configure(&app, &owner, credentials()).await;
    let paid = completed_payment(&app, &owner.auth(), 100).await;
    let paid_id = paid["id"].as_str().expect("id").to_string();

    // More than was paid: refused, nothing sent.
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/reversals",
            &owner.auth(),
            json!({"transaction_id": paid_id, "amount": 150, "remarks": "Refund"}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("amount")),
        "{answer}"
    );
    assert!(emu_requests_to(&app, REVERSAL_PATH).await.is_empty());

    // A partial reversal by receipt.
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/reversals",
            &owner.auth(),
            json!({"receipt": paid["receipt"], "amount": 60, "remarks": "Refund"}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let reversal = answer["transaction"].clone();
    assert_eq!(reversal["kind"], "reversal", "{answer}");
    assert_eq!(reversal["status"], "pending", "{answer}");
    assert_eq!(reversal["amount"], 60, "{answer}");
    assert_eq!(
        reversal["original_transaction_id"],
        json!(paid_id),
        "{answer}"
    );
    let sent = emu_requests_to(&app, REVERSAL_PATH).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["body"]["TransactionID"], paid["receipt"],
        "{sent:?}"
    );
    assert_eq!(sent[0]["response"]["ResponseCode"], "0", "{sent:?}");

    let done = wait_final(&app, &owner.auth(), reversal["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result_code"], "0", "{done}");
    let original = get_txn(&app, &owner.auth(), &paid_id).await;
    assert_eq!(original["status"], "reversed", "{original}");
    wait_inbox_settled(&app).await;
    let reversed = events(&app, &tenant, "reversal.completed");
    assert_eq!(reversed.len(), 1, "{reversed:?}");
    assert_eq!(
        reversed[0]["original_transaction_id"],
        json!(paid_id),
        "{reversed:?}"
    );
    assert_eq!(reversed[0]["transaction_id"], done["id"], "{reversed:?}");

    // Again: a conflict.
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/reversals",
            &owner.auth(),
            json!({"transaction_id": paid_id, "remarks": "Refund again"}),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(code(&answer), "conflict", "{answer}");

    // A failed payment and a pending one: conflicts.
    set_outcome(&app, json!({"amount": 13, "result_code": 1, "times": 1})).await;
    let failed = push(&app, &owner.auth(), payment("0712345678", json!(13))).await;
    let failed = wait_final(&app, &owner.auth(), failed["id"].as_str().expect("id")).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    set_outcome(
        &app,
        json!({"amount": 14, "action": "no_callback", "times": 1}),
    )
    .await;
    let pending = push(&app, &owner.auth(), payment("0712345678", json!(14))).await;
    for txn in [&failed, &pending] {
        let (status, answer) = app
            .post(
                "/api/v1/mpesa/reversals",
                &owner.auth(),
                json!({"transaction_id": txn["id"], "remarks": "Refund"}),
            )
            .await;
        assert_eq!(status, 409, "{txn} → {answer}");
        assert_eq!(code(&answer), "conflict", "{answer}");
    }
    assert_eq!(
        get_txn(&app, &owner.auth(), pending["id"].as_str().expect("id")).await["status"],
        "pending"
    );
    assert_eq!(
        emu_requests_to(&app, REVERSAL_PATH).await.len(),
        1,
        "only one reversal reached Daraja"
    );
}

#[tokio::test]
async fn a_reversal_daraja_refuses_is_failed_and_does_not_block_another() {
    let app = spawn().await;
    let owner = app.register("Mpesa Reversal Refused").await;
    configure(&app, &owner, credentials()).await;
    let paid = completed_payment(&app, &owner.auth(), 100).await;
    let paid_id = paid["id"].as_str().expect("id");
    let refund = json!({"transaction_id": paid_id, "remarks": "Refund"});

    // Daraja refuses the request (HTTP 500, not processed). The reversal
    // was recorded before it was sent; the refusal fails it, with Daraja's
    // words, and the payment stays as it was.
    set_faults(&app, json!({"http_500_burst": 1})).await;
    let (status, answer) = app
        .post("/api/v1/mpesa/reversals", &owner.auth(), refund.clone())
        .await;
    set_faults(&app, json!({})).await;
    assert_eq!(status, 201, "{answer}");
    let refused = &answer["transaction"];
    assert_eq!(refused["kind"], "reversal", "{answer}");
    assert_eq!(refused["status"], "failed", "{answer}");
    assert_eq!(refused["result_code"], "500.001.1001", "{answer}");
    assert_eq!(
        get_txn(&app, &owner.auth(), paid_id).await["status"],
        "completed"
    );

    // Nothing is under way, so another reversal goes out and completes.
    let (status, answer) = app
        .post("/api/v1/mpesa/reversals", &owner.auth(), refund)
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["transaction"]["status"], "pending", "{answer}");
    let done = wait_final(
        &app,
        &owner.auth(),
        answer["transaction"]["id"].as_str().expect("id"),
    )
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        get_txn(&app, &owner.auth(), paid_id).await["status"],
        "reversed"
    );
    assert_eq!(emu_requests_to(&app, REVERSAL_PATH).await.len(), 2);
}
