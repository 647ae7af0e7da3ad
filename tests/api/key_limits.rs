//! API-key limits belong to the key and hold on every channel: money a key
//! sends out over REST waits for a person's approval (202) unless the key
//! was made with `"approval_required": false`; the tool allow-list holds
//! on REST too; a key makes keys only within its own permissions and
//! limits; invitations and role grants made with a key are checked against
//! the key's permissions, not its maker's.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, Session, TestApp, code};

async fn key(app: &TestApp, auth: &Auth, body: Value) -> (u16, Value) {
    app.post("/api/v1/api-keys", auth, body).await
}

async fn made(app: &TestApp, auth: &Auth, body: Value) -> (Auth, Value) {
    let (status, answer) = key(app, auth, body).await;
    assert_eq!(status, 201, "create key: {answer}");
    let secret = answer["key"].as_str().expect("key secret").to_string();
    (Auth::ApiKey(secret), answer)
}

fn payout() -> Value {
    json!({
        "command_id": "BusinessPayment",
        "items": [{"phone_number": "254712345678", "amount": 50, "remarks": "Refund 7"}]
    })
}

async fn b2c_count(app: &TestApp, owner: &Session) -> usize {
    let (status, body) = app
        .get("/api/v1/mpesa/transactions?kind=b2c", &owner.auth())
        .await;
    assert_eq!(status, 200, "{body}");
    body["transactions"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_keys_payout_over_rest_waits_for_a_persons_approval() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Key Payouts Ltd").await;
    app.configure_mpesa(&owner).await;
    let (bot, made_key) = made(
        &app,
        &owner.auth(),
        json!({"name": "payroll bot", "permissions": ["payouts.create", "payments.read"]}),
    )
    .await;
    assert_eq!(made_key["approval_required"], true, "{made_key}");

    let (status, answer) = app.post("/api/v1/mpesa/b2c/bulk", &bot, payout()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "pending_approval", "{answer}");
    let approval = answer["approval_id"]
        .as_str()
        .expect("approval id")
        .to_string();
    assert_eq!(
        b2c_count(&app, &owner).await,
        0,
        "nothing moved before approval"
    );

    // The key cannot approve its own request; a person can, once.
    let (status, body) = app
        .post(
            &format!("/api/v1/approvals/{approval}/approve"),
            &bot,
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = app
        .post(
            &format!("/api/v1/approvals/{approval}/approve"),
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approval"]["status"], "executed", "{body}");
    assert_eq!(b2c_count(&app, &owner).await, 1);

    // A key made with approval_required false pays at once.
    let (direct, made_key) = made(
        &app,
        &owner.auth(),
        json!({"name": "trusted", "permissions": ["payouts.create"], "approval_required": false}),
    )
    .await;
    assert_eq!(made_key["approval_required"], false, "{made_key}");
    let (status, answer) = app.post("/api/v1/mpesa/b2c/bulk", &direct, payout()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(b2c_count(&app, &owner).await, 2);
}

#[tokio::test]
async fn a_keys_tool_allow_list_holds_on_rest() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Narrow Key Ltd").await;
    let (narrow, _) = made(
        &app,
        &owner.auth(),
        json!({"name": "narrow", "permissions": ["payments.read"],
               "allowed_tools": ["mpesa_check_status"]}),
    )
    .await;
    let (status, body) = app.get("/api/v1/mpesa/transactions", &narrow).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("mpesa_check_status")),
        "{body}"
    );
}

#[tokio::test]
async fn a_key_cannot_make_a_key_beyond_its_own_limits() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Key Maker Ltd").await;
    let (parent, _) = made(
        &app,
        &owner.auth(),
        json!({"name": "parent", "permissions": ["api_keys.manage", "payouts.create", "payments.read"],
               "max_amount_per_call": 100, "max_amount_per_day": 500,
               "allowed_tools": ["mpesa_bulk_payment", "mpesa_transaction_history", "mpesa_check_status"]}),
    )
    .await;

    // More permissions than the key: refused (as before).
    let (status, body) = key(
        &app,
        &parent,
        json!({"name": "child", "permissions": ["payments.reverse"]}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Higher caps, other tools, or no approval: refused.
    for (field, value) in [
        ("max_amount_per_call", json!(1000)),
        ("max_amount_per_day", json!(100_000)),
        ("allowed_tools", json!(["mpesa_generate_report"])),
        ("approval_required", json!(false)),
    ] {
        let mut body = json!({"name": "child", "permissions": ["payouts.create"]});
        body[field] = value;
        let (status, answer) = key(&app, &parent, body).await;
        assert_eq!(status, 403, "{field}: {answer}");
        assert_eq!(code(&answer), "forbidden", "{field}: {answer}");
    }
    // Within its limits: allowed, and unnamed limits are inherited.
    let (status, child) = key(
        &app,
        &parent,
        json!({"name": "child", "permissions": ["payouts.create"], "max_amount_per_call": 50}),
    )
    .await;
    assert_eq!(status, 201, "{child}");
    assert_eq!(child["max_amount_per_call"], 50, "{child}");
    assert_eq!(child["max_amount_per_day"], 500, "{child}");
    assert_eq!(child["approval_required"], true, "{child}");
    assert!(
        child["allowed_tools"]
            .as_array()
            .is_some_and(|t| t.len() == 3),
        "{child}"
    );
}

#[tokio::test]
async fn invitations_and_role_grants_made_with_a_key_are_bounded_by_the_key() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Key Grants Ltd").await;
    let (_, roles) = app.get("/api/v1/roles", &owner.auth()).await;
    let role = |name: &str| {
        roles["roles"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == name))
            .and_then(|r| r["id"].as_str())
            .unwrap_or_else(|| panic!("no role {name}"))
            .to_string()
    };
    let member = app.add_member(&owner, "Member", None).await;
    // The owner holds everything; the key holds only these.
    let (hr, _) = made(
        &app,
        &owner.auth(),
        json!({"name": "hr bot", "permissions": ["invitations.create", "roles.assign", "users.read"]}),
    )
    .await;
    let (status, body) = app
        .post(
            "/api/v1/invitations",
            &hr,
            json!({"email": "new.admin@example.com", "role_id": role("Admin")}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = app
        .post(
            &format!("/api/v1/users/{}/roles", member.user_id),
            &hr,
            json!({"role_id": role("Admin")}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = app
        .post(
            &format!("/api/v1/users/{}/roles", member.user_id),
            &hr,
            json!({"role_id": role("Owner")}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // The member's roles did not change.
    let (_, access) = app
        .call(
            Method::GET,
            &format!("/api/v1/users/{}/roles", member.user_id),
            &owner.auth(),
            None,
        )
        .await;
    assert!(!access.to_string().contains("Admin"), "{access}");
}
