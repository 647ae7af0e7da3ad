//! Who may push, pay out, reverse and manage credentials: members, admins
//! and read-only API keys.

use super::*;
use crate::helpers::code;

#[tokio::test]
async fn members_may_push_but_not_manage_credentials_and_read_only_keys_may_not_push() {
    let app = spawn().await;
    let owner = app.register("Mpesa Rbac").await;
    configure(&app, &owner, credentials()).await;
    let (_, before) = app.get("/api/v1/mpesa/credentials", &owner.auth()).await;
    let member = app.add_member(&owner, "Member", None).await;

    let txn = push(&app, &member.auth(), payment("0712345678", json!(10))).await;
    assert_eq!(txn["created_by"], json!(member.user_id), "{txn}");
    let done = wait_final(&app, &member.auth(), txn["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "completed", "{done}");

    let mut other = credentials();
    other["consumer_key"] = json!("member-key");
    let (status, answer) = put_credentials(&app, &member, other.clone()).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(code(&answer), "forbidden");
    let (status, answer) = app.get("/api/v1/mpesa/credentials", &member.auth()).await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = app
        .post("/api/v1/mpesa/credentials/test", &member.auth(), json!({}))
        .await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = app.get("/api/v1/mpesa/reports", &member.auth()).await;
    assert_eq!(status, 403, "members do not hold reports.read: {answer}");

    let (status, key) = app
        .post(
            "/api/v1/api-keys",
            &owner.auth(),
            json!({"name": "reader", "permissions": ["payments.read"]}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let key = Auth::ApiKey(key["key"].as_str().expect("secret").to_string());
    let listed = list(&app, &key).await;
    assert_eq!(listed.len(), 1, "the key reads payments");
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &key,
            payment("0712345678", json!(10)),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(code(&answer), "forbidden", "{answer}");
    let (status, answer) = app
        .call(Method::PUT, "/api/v1/mpesa/credentials", &key, Some(other))
        .await;
    assert_eq!(status, 403, "{answer}");

    assert_eq!(
        emu_requests_to(&app, STK_PUSH_PATH).await.len(),
        1,
        "only the member's push"
    );
    assert_eq!(list(&app, &owner.auth()).await.len(), 1);
    let (_, after) = app.get("/api/v1/mpesa/credentials", &owner.auth()).await;
    assert_eq!(after, before, "the credentials did not change");
}

#[tokio::test]
async fn members_may_not_pay_out_or_reverse_but_admins_may() {
    let app = spawn().await;
    let owner = app.register("Mpesa Payout Rbac").await;
    configure(&app, &owner, credentials()).await;
    let member = app.add_member(&owner, "Member", None).await;
    let admin = app.add_member(&owner, "Admin", None).await;
    let paid = completed_payment(&app, &owner.auth(), 100).await;

    let items =
        json!({"items": [payout("0712345678", 100, "Salary")], "command_id": "SalaryPayment"});
    let (status, answer) = app
        .post("/api/v1/mpesa/b2c/bulk", &member.auth(), items.clone())
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(code(&answer), "forbidden", "{answer}");
    let reverse = json!({"transaction_id": paid["id"], "remarks": "Refund"});
    let (status, answer) = app
        .post("/api/v1/mpesa/reversals", &member.auth(), reverse.clone())
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(code(&answer), "forbidden", "{answer}");
    assert!(emu_requests_to(&app, B2C_PATH).await.is_empty());
    assert!(emu_requests_to(&app, REVERSAL_PATH).await.is_empty());

    let (status, answer) = app
        .post("/api/v1/mpesa/b2c/bulk", &admin.auth(), items)
        .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = app
        .post("/api/v1/mpesa/reversals", &admin.auth(), reverse)
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(emu_requests_to(&app, B2C_PATH).await.len(), 1);
    assert_eq!(emu_requests_to(&app, REVERSAL_PATH).await.len(), 1);
}
