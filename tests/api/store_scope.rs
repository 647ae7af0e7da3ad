//! Store limits hold on every read, with or without `X-Store-ID`: a member
//! who may use one store never sees another store's transactions,
//! notifications, reports, usage, audit rows, approvals or webhook
//! deliveries (the tenant's own, of no store, stay visible); another
//! store's object is a 404 and a `store_id` naming another store is
//! refused. A 403 caused by a wrong or missing `X-Store-ID` names the
//! stores the caller may use.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, Session, TestApp};
use crate::mpesa::push_in_store;

/// A tenant with two stores, a payment (and its notification, webhook
/// delivery and audit row) in each, an approval in each, and a cashier
/// holding a tenant-wide role who was added to the first store only.
struct World {
    app: TestApp,
    owner: Session,
    cashier: Session,
    stores: [String; 2],
    payments: [String; 2],
    approvals: [String; 2],
    webhook: String,
}

const CASHIER_PERMISSIONS: &[&str] = &[
    "payments.read",
    "payments.create",
    "reports.read",
    "notifications.read",
    "usage.read",
    "audit.read",
    "approvals.read",
    "approvals.approve",
    "payouts.create",
    "webhooks.manage",
    "stores.read",
];

async fn ok(app: &TestApp, method: Method, path: &str, auth: &Auth, body: Option<Value>) -> Value {
    let (status, answer) = app.call(method, path, auth, body).await;
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    answer
}

async fn wait_for<F: Fn(&Value) -> bool>(app: &TestApp, path: &str, auth: &Auth, done: F) -> Value {
    for _ in 0..300 {
        let (status, body) = app.get(path, auth).await;
        if status == 200 && done(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never got there");
}

fn insert_approval(app: &TestApp, tenant: &str, store: &str, requested_by: &str) -> String {
    let conn = rusqlite::Connection::open(app.tenant_file(tenant)).expect("open tenant file");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let id = uuid::Uuid::new_v4().to_string();
    conn.execute(
        "INSERT INTO approvals (id, operation, tool, input, amount, summary, status, requested_by, channel,
                                api_key_id, store_id, reserved_amount, created_at)
         VALUES (?1, 'mpesa.b2c.bulk', 'mpesa_send_payout', ?2, 10, 'Pay KES 10', 'pending', ?3, 'mcp',
                 NULL, ?4, NULL, '2026-01-01T00:00:00Z')",
        rusqlite::params![
            id,
            json!({"items": [{"phone_number": "254712345678", "amount": 10}]}).to_string(),
            requested_by,
            store
        ],
    )
    .expect("insert approval");
    id
}

async fn world() -> World {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Two Shops Ltd").await;
    app.configure_mpesa(&owner).await;
    let first = owner.default_store.clone().expect("default store");
    let second = ok(
        &app,
        Method::POST,
        "/api/v1/stores",
        &owner.auth(),
        Some(json!({"name": "Second shop"})),
    )
    .await["id"]
        .as_str()
        .expect("store id")
        .to_string();
    let webhook = ok(
        &app,
        Method::POST,
        "/api/v1/webhooks",
        &owner.auth(),
        Some(json!({"url": "https://hooks.example.com/in", "events": ["*"]})),
    )
    .await["id"]
        .as_str()
        .expect("webhook id")
        .to_string();
    // A tenant-wide role without `stores.access_all`; the cashier is then
    // added to the first store only.
    let role = ok(
        &app,
        Method::POST,
        "/api/v1/roles",
        &owner.auth(),
        Some(json!({"name": "Cashier", "permissions": CASHIER_PERMISSIONS})),
    )
    .await;
    assert!(role.to_string().contains("Cashier"), "{role}");
    let cashier = app.add_member(&owner, "Cashier", None).await;
    ok(
        &app,
        Method::POST,
        &format!("/api/v1/stores/{first}/users"),
        &owner.auth(),
        Some(json!({"user_id": cashier.user_id})),
    )
    .await;
    let payments = [
        push_in_store(&app, &owner, &first, 11).await,
        push_in_store(&app, &owner, &second, 22).await,
    ];
    // Both payments settle, notify, and queue their webhook messages.
    wait_for(&app, "/api/v1/notifications", &owner.auth(), |body| {
        body["notifications"]
            .as_array()
            .is_some_and(|n| n.len() >= 2)
    })
    .await;
    wait_for(
        &app,
        &format!("/api/v1/webhooks/{webhook}/deliveries"),
        &owner.auth(),
        |body| body["deliveries"].as_array().is_some_and(|d| d.len() >= 2),
    )
    .await;
    let approvals = [
        insert_approval(&app, &owner.tenant_id, &first, &owner.user_id),
        insert_approval(&app, &owner.tenant_id, &second, &owner.user_id),
    ];
    World {
        app,
        owner,
        cashier,
        stores: [first, second],
        payments,
        approvals,
        webhook,
    }
}

#[tokio::test]
async fn a_store_limited_member_sees_only_their_store_without_the_header() {
    let w = world().await;
    let (app, cashier) = (&w.app, w.cashier.auth());
    let [mine, theirs] = &w.stores;
    let other_payment = &w.payments[1];

    // The owner sees both stores' payments; the cashier, their store's.
    let (status, all) = app.get("/api/v1/mpesa/transactions", &w.owner.auth()).await;
    assert_eq!(status, 200, "{all}");
    assert!(all.to_string().contains(other_payment), "{all}");
    let (status, listed) = app.get("/api/v1/mpesa/transactions", &cashier).await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed["transactions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["store_id"], json!(mine), "{listed:?}");

    // Another store's transaction is a 404, not a 403.
    let (status, body) = app
        .get(
            &format!("/api/v1/mpesa/transactions/{other_payment}"),
            &cashier,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    // A store_id filter naming another store is refused.
    let (status, body) = app
        .get(
            &format!("/api/v1/mpesa/transactions?store_id={theirs}"),
            &cashier,
        )
        .await;
    assert_eq!(status, 403, "{body}");

    // Notifications: the other store's payment (phone, receipt) is not there.
    let (status, inbox) = app.get("/api/v1/notifications", &cashier).await;
    assert_eq!(status, 200, "{inbox}");
    assert!(!inbox.to_string().contains(other_payment), "{inbox}");
    assert!(!inbox.to_string().contains(theirs.as_str()), "{inbox}");
    assert!(inbox.to_string().contains(&w.payments[0]), "{inbox}");
    assert_eq!(inbox["unread_count"], 1, "{inbox}");

    // Reports count the cashier's store only.
    let (status, report) = app
        .get("/api/v1/mpesa/reports?group_by=store", &cashier)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["totals"]["count"], 1, "{report}");
    assert!(!report.to_string().contains(theirs.as_str()), "{report}");

    // Usage per store: only the cashier's.
    let (status, usage) = app.get("/api/v1/usage", &cashier).await;
    assert_eq!(status, 200, "{usage}");
    assert!(!usage.to_string().contains(theirs.as_str()), "{usage}");

    // Audit rows: only the cashier's store's.
    let (status, audit) = app.get("/api/v1/audit", &cashier).await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    assert!(!entries.is_empty(), "{audit}");
    assert!(
        entries.iter().any(|e| e["store_id"] == json!(mine)),
        "{audit}"
    );
    assert!(
        entries.iter().all(|e| e["store_id"] != json!(theirs)),
        "{audit}"
    );

    // Approvals: listed and read for the cashier's store only.
    let (status, approvals) = app.get("/api/v1/approvals", &cashier).await;
    assert_eq!(status, 200, "{approvals}");
    assert!(
        approvals.to_string().contains(&w.approvals[0]),
        "{approvals}"
    );
    assert!(
        !approvals.to_string().contains(&w.approvals[1]),
        "{approvals}"
    );
    let (status, body) = app
        .get(&format!("/api/v1/approvals/{}", w.approvals[1]), &cashier)
        .await;
    assert_eq!(status, 404, "{body}");

    // Webhook deliveries: only messages about the cashier's store.
    let (status, deliveries) = app
        .get(
            &format!("/api/v1/webhooks/{}/deliveries", w.webhook),
            &cashier,
        )
        .await;
    assert_eq!(status, 200, "{deliveries}");
    assert_eq!(
        deliveries["deliveries"].as_array().map(Vec::len),
        Some(1),
        "{deliveries}"
    );
}

#[tokio::test]
async fn a_store_limited_member_cannot_act_in_another_store() {
    let w = world().await;
    let (app, cashier) = (&w.app, w.cashier.auth());
    let [mine, theirs] = &w.stores;

    // A body store_id naming another store is refused, and nothing is made.
    let (status, body) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &cashier,
            json!({"phone_number": "254712345678", "amount": 5, "account_reference": "X",
                   "description": "Other shop", "store_id": theirs}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (_, all) = app.get("/api/v1/mpesa/transactions", &w.owner.auth()).await;
    assert_eq!(
        all["transactions"].as_array().map(Vec::len),
        Some(2),
        "{all}"
    );

    // Without the header, the cashier's payment lands in their store.
    let (status, body) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &cashier,
            json!({"phone_number": "254712345678", "amount": 5, "account_reference": "X",
                   "description": "My shop"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body.to_string().contains(mine.as_str()), "{body}");

    // Approving another store's approval: a 404, and it stays pending.
    let (status, body) = app
        .post(
            &format!("/api/v1/approvals/{}/approve", w.approvals[1]),
            &cashier,
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (_, approval) = app
        .get(
            &format!("/api/v1/approvals/{}", w.approvals[1]),
            &w.owner.auth(),
        )
        .await;
    assert_eq!(approval["approval"]["status"], "pending", "{approval}");

    // Retrying a delivery about another store: a 404.
    let conn = rusqlite::Connection::open_with_flags(
        app.tenant_file(&w.owner.tenant_id),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open tenant file");
    let other: String = conn
        .query_row(
            "SELECT id FROM notifications_deliveries WHERE json_extract(body, '$.data.store_id') = ?1 LIMIT 1",
            [theirs],
            |row| row.get(0),
        )
        .expect("a delivery about the other store");
    drop(conn);
    let (status, body) = app
        .post(
            &format!("/api/v1/webhooks/{}/deliveries/{other}/retry", w.webhook),
            &cashier,
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn a_wrong_or_missing_store_header_names_the_usable_stores() {
    let w = world().await;
    let app = &w.app;
    let [mine, theirs] = &w.stores;

    // A wrong X-Store-ID: 403 naming the store the cashier may use.
    let (status, body) = app
        .call_with(
            Method::GET,
            "/api/v1/mpesa/transactions",
            &w.cashier.auth(),
            None,
            &[("X-Store-ID", theirs.as_str())],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("X-Store-ID"), "{body}");
    assert!(message.contains(mine.as_str()), "{body}");
    assert!(!message.contains(theirs.as_str()), "{body}");

    // A member whose role holds only in two stores, without the header:
    // the 403 says the header is missing and names both stores.
    let roles = app.get("/api/v1/roles", &w.owner.auth()).await.1;
    let member_role = roles["roles"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "Member"))
        .and_then(|r| r["id"].as_str())
        .expect("Member role")
        .to_string();
    let clerk = app.add_member(&w.owner, "Member", Some(mine)).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/users/{}/roles", clerk.user_id),
            &w.owner.auth(),
            json!({"role_id": member_role, "store_id": theirs}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post(
            &format!("/api/v1/stores/{theirs}/users"),
            &w.owner.auth(),
            json!({"user_id": clerk.user_id}),
        )
        .await;
    assert!((200..300).contains(&status), "{body}");
    let (status, body) = app.get("/api/v1/mpesa/transactions", &clerk.auth()).await;
    assert_eq!(status, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("X-Store-ID"), "{body}");
    assert!(
        message.contains(mine.as_str()) && message.contains(theirs.as_str()),
        "{body}"
    );
    // With the header, it works, confined to that store.
    let (status, body) = app
        .call_with(
            Method::GET,
            "/api/v1/mpesa/transactions",
            &clerk.auth(),
            None,
            &[("X-Store-ID", theirs.as_str())],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains(&w.payments[1]), "{body}");
    assert!(!body.to_string().contains(&w.payments[0]), "{body}");
}
