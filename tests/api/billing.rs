//! Billing and usage against the real binary: trials ending on the test
//! clock, invoices paid by STK push from the platform's own M-Pesa account
//! through the emulator, dunning to past_due and suspended and back, plan
//! limits and rate limits per tenant, and usage counts that equal the calls.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, PASSWORD, Session, TestApp, code};

const DAY: i64 = 86_400;
/// A phone the emulator completes payments for.
const PAYING_PHONE: &str = "254712345678";

fn options() -> Options {
    Options::daraja_sim()
        .with_env("MALIPO_TEST_CLOCK", "1")
        .with_env("MALIPO_EVENT_INTERVAL_MS", "200")
        .with_env("MALIPO_USAGE_FLUSH_MS", "60000")
}

/// An organization whose M-Pesa account (the emulator's) collects invoices.
async fn platform(app: &TestApp, admin: &Auth) -> Session {
    let platform = app.register("Malipo Platform").await;
    app.configure_mpesa(&platform).await;
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/admin/platform",
            admin,
            Some(json!({"tenant_id": platform.tenant_id})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    platform
}

async fn advance(app: &TestApp, admin: &Auth, days: i64) -> Value {
    let (status, body) = app
        .post(
            "/api/v1/admin/clock",
            admin,
            json!({"advance_secs": days * DAY}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobs"]["failures"], 0, "{body}");
    body
}

async fn subscription(app: &TestApp, owner: &Session) -> Value {
    let (status, body) = app.get("/api/v1/subscription", &owner.auth()).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn invoices(app: &TestApp, owner: &Session) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/invoices", &owner.auth()).await;
    assert_eq!(status, 200, "{body}");
    body["invoices"].as_array().cloned().unwrap_or_default()
}

/// Pays an invoice by STK push and waits until billing marks it paid.
async fn pay(app: &TestApp, owner: &Session, invoice_id: &str) -> Value {
    let path = format!("/api/v1/invoices/{invoice_id}/pay");
    let (status, body) = app
        .post(&path, &owner.auth(), json!({"phone_number": PAYING_PHONE}))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending", "{body}");
    for _ in 0..100 {
        let (_, invoice) = app
            .get(&format!("/api/v1/invoices/{invoice_id}"), &owner.auth())
            .await;
        if invoice["status"] == "paid" {
            return invoice;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!("invoice {invoice_id} was never marked paid");
}

pub(crate) async fn register_on(app: &TestApp, org: &str, plan: &str) -> Session {
    let email = format!("owner-{}@example.com", uuid::Uuid::new_v4().simple());
    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            &Auth::None,
            json!({"email": email, "password": PASSWORD, "full_name": "Owner", "organization_name": org, "plan_id": plan}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    Session::from_auth_response(&body, &email)
}

#[tokio::test]
async fn a_trial_ends_with_an_invoice_paid_by_stk_push_and_the_tenant_becomes_active() {
    let app = TestApp::spawn_with(options()).await;
    let admin = app.super_admin().await;
    let platform = platform(&app, &admin).await;
    let shop = app.register("Trial Shop").await;
    // control.db mirrors the plan registration started (tenant lists show it).
    let (status, tenant) = app.get("/api/v1/tenant", &shop.auth()).await;
    assert_eq!(
        (status, &tenant["plan"]),
        (200, &json!("standard")),
        "{tenant}"
    );

    let sub = subscription(&app, &shop).await;
    assert_eq!(
        (sub["status"].as_str(), sub["plan_id"].as_str()),
        (Some("trial"), Some("standard")),
        "{sub}"
    );
    assert!(
        invoices(&app, &shop).await.is_empty(),
        "no invoice during the trial"
    );

    // Three days before the trial ends, the first invoice is issued.
    advance(&app, &admin, 12).await;
    let issued = invoices(&app, &shop).await;
    assert_eq!(issued.len(), 1, "{issued:?}");
    let invoice = &issued[0];
    assert_eq!(invoice["number"], "INV-000001");
    assert_eq!(invoice["status"], "open");
    assert_eq!(invoice["amount_kes"], 2500);
    assert_eq!(
        invoice["due_at"], sub["trial_ends_at"],
        "due when the trial ends"
    );

    let paid = pay(&app, &shop, invoice["id"].as_str().expect("id")).await;
    assert!(
        paid["receipt"].as_str().is_some_and(|r| !r.is_empty()),
        "{paid}"
    );
    // The money went to the platform's account, not the shop's.
    let (_, platform_txns) = app
        .get("/api/v1/mpesa/transactions", &platform.auth())
        .await;
    assert!(
        platform_txns.to_string().contains("INV-000001"),
        "{platform_txns}"
    );
    let (_, shop_txns) = app.get("/api/v1/mpesa/transactions", &shop.auth()).await;
    assert!(!shop_txns.to_string().contains("INV-000001"), "{shop_txns}");

    advance(&app, &admin, 3).await;
    let sub = subscription(&app, &shop).await;
    assert_eq!(sub["status"], "active", "{sub}");
    assert_eq!(
        sub["current_period_start"], invoice["period_start"],
        "{sub}"
    );
    assert_eq!(
        invoices(&app, &shop).await.len(),
        1,
        "no second invoice yet"
    );
}

#[tokio::test]
async fn an_unpaid_tenant_goes_past_due_then_suspended_and_comes_back_when_it_pays() {
    let app = TestApp::spawn_with(options()).await;
    let admin = app.super_admin().await;
    platform(&app, &admin).await;
    let shop = app.register("Late Payer").await;
    let neighbour = register_on(&app, "Good Neighbour", "free").await;

    advance(&app, &admin, 15).await;
    let sub = subscription(&app, &shop).await;
    assert_eq!(sub["status"], "past_due", "{sub}");
    assert_eq!(
        app.get("/api/v1/stores", &shop.auth()).await.0,
        200,
        "past due still works"
    );

    advance(&app, &admin, 8).await;
    let sub = subscription(&app, &shop).await;
    assert_eq!(sub["status"], "suspended", "{sub}");
    let (status, body) = app.get("/api/v1/stores", &shop.auth()).await;
    assert_eq!(
        (status, code(&body)),
        (402, "subscription_suspended"),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Standard") && message.contains("/pay"),
        "{message}"
    );
    assert!(body["error"]["request_id"].is_string(), "{body}");
    let (status, body) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &shop.auth(),
            json!({"phone_number": PAYING_PHONE, "amount": 10, "account_reference": "A", "description": "B"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (402, "subscription_suspended"),
        "{body}"
    );
    // Another tenant, whose plan is paid up, is served as before.
    assert_eq!(app.get("/api/v1/stores", &neighbour.auth()).await.0, 200);

    let open: Vec<Value> = invoices(&app, &shop)
        .await
        .into_iter()
        .filter(|i| i["status"] == "open")
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    pay(&app, &shop, open[0]["id"].as_str().expect("id")).await;
    let sub = subscription(&app, &shop).await;
    assert_eq!(sub["status"], "active", "{sub}");
    assert_eq!(
        app.get("/api/v1/stores", &shop.auth()).await.0,
        200,
        "restored once paid"
    );
}

#[tokio::test]
async fn a_free_tenant_hits_its_store_limit_feature_and_rate_limit_while_another_is_unaffected() {
    let app = TestApp::spawn_with(options()).await;
    let free = register_on(&app, "Free Kiosk", "free").await;
    let other = app.register("Busy Standard").await;
    assert_eq!(subscription(&app, &free).await["status"], "active");

    // Free allows three stores; registration made the first.
    for n in 2..=3 {
        let (status, body) = app
            .post(
                "/api/v1/stores",
                &free.auth(),
                json!({"name": format!("Branch {n}")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = app
        .post("/api/v1/stores", &free.auth(), json!({"name": "Branch 4"}))
        .await;
    assert_eq!((status, code(&body)), (402, "plan_limit_reached"), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Free") && message.contains("max_stores") && message.contains('3'),
        "{message}"
    );
    let (_, stores) = app.get("/api/v1/stores", &free.auth()).await;
    assert_eq!(
        stores["stores"].as_array().map(Vec::len),
        Some(3),
        "nothing half-made: {stores}"
    );
    let (status, body) = app
        .post("/api/v1/stores", &other.auth(), json!({"name": "Second"}))
        .await;
    assert_eq!(status, 201, "another tenant's plan is its own: {body}");

    // Bulk payouts are not in Free.
    let (status, body) = app
        .post(
            "/api/v1/mpesa/b2c/bulk",
            &free.auth(),
            json!({"items": [{"phone_number": PAYING_PHONE, "amount": 10}]}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (403, "plan_feature_required"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bulk_payouts"),
        "{body}"
    );

    // Free allows 60 requests a minute: a burst runs out, the other tenant does not notice.
    let mut limited = None;
    for _ in 0..80 {
        let response = app
            .client
            .get(format!("{}/api/v1/stores", app.base))
            .bearer_auth(&free.access_token)
            .send()
            .await
            .expect("send");
        if response.status().as_u16() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the free tenant's burst is limited");
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = limited.json().await.expect("json");
    assert_eq!(code(&body), "rate_limited", "{body}");
    for _ in 0..20 {
        assert_eq!(
            app.get("/api/v1/stores", &other.auth()).await.0,
            200,
            "the other tenant is not slowed"
        );
    }
}

#[tokio::test]
async fn usage_counts_equal_the_calls_made_and_a_monthly_quota_answers_402() {
    let app = TestApp::spawn_with(options()).await;
    let admin = app.super_admin().await;
    let shop = app.register("Counted Shop").await;
    let other = app.register("Uncounted").await;

    let (status, before) = app.get("/api/v1/usage", &shop.auth()).await;
    assert_eq!(status, 200, "{before}");
    let rest_before = before["by_channel"]["rest"].as_u64().expect("rest count");
    for _ in 0..5 {
        assert_eq!(app.get("/api/v1/stores", &shop.auth()).await.0, 200);
    }
    assert_eq!(
        app.get("/api/v1/stores/no-such-store", &shop.auth())
            .await
            .0,
        404
    );
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/stores", &other.auth()).await.0, 200);
    }
    let (_, after) = app.get("/api/v1/usage", &shop.auth()).await;
    // The first usage read, five lists and one miss; nothing of the other tenant's.
    assert_eq!(
        after["by_channel"]["rest"].as_u64(),
        Some(rest_before + 7),
        "{after}"
    );
    assert_eq!(
        after["metrics"]["api_calls"]["used"].as_u64(),
        Some(rest_before + 7),
        "{after}"
    );
    assert_eq!(after["metrics"]["api_calls"]["limit"], 250_000, "{after}");
    assert_eq!(after["metrics"]["stores"]["used"], 1, "{after}");

    let (status, history) = app
        .get("/api/v1/usage/history?group_by=month", &shop.auth())
        .await;
    assert_eq!(status, 200, "{history}");
    let month = after["period"].as_str().expect("period");
    let row = history["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["period"] == month))
        .cloned();
    assert_eq!(
        row.as_ref().and_then(|r| r["api_calls"].as_u64()),
        Some(rest_before + 8),
        "{history}"
    );
    let (status, body) = app
        .get("/api/v1/usage/history?group_by=week", &shop.auth())
        .await;
    assert_eq!((status, code(&body)), (422, "validation_failed"), "{body}");

    let (status, across) = app.get("/api/v1/admin/usage", &admin).await;
    assert_eq!(status, 200, "{across}");
    let mine = across["tenants"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["tenant_id"] == shop.tenant_id))
        .cloned()
        .expect("listed");
    // Two history reads since, the refused one included (it reached usage).
    assert_eq!(
        mine["usage"]["api_calls"].as_u64(),
        Some(rest_before + 10),
        "{mine}"
    );
    assert_eq!(app.get("/api/v1/admin/usage", &shop.auth()).await.0, 403);

    // A plan with a tiny quota: the calls past it answer 402, billing stays reachable.
    let used = rest_before + 10;
    let (status, body) = app
        .post(
            "/api/v1/admin/plans",
            &admin,
            json!({"id": "tiny", "name": "Tiny", "price_kes": 0, "interval": "month",
                   "features": [], "limits": {"api_calls_per_month": used + 3, "requests_per_minute": 1000}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let path = format!("/api/v1/admin/tenants/{}/plan", shop.tenant_id);
    let (status, body) = app
        .call(Method::PUT, &path, &admin, Some(json!({"plan_id": "tiny"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut served = 0;
    let refusal = loop {
        let (status, body) = app.get("/api/v1/stores", &shop.auth()).await;
        if status != 200 {
            break (status, body);
        }
        served += 1;
        assert!(served <= 3, "served past the quota");
    };
    assert_eq!(served, 3);
    assert_eq!(
        (refusal.0, code(&refusal.1)),
        (402, "quota_exceeded"),
        "{}",
        refusal.1
    );
    assert!(
        refusal.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("api_calls_per_month")
    );
    assert_eq!(
        app.get("/api/v1/subscription", &shop.auth()).await.0,
        200,
        "billing stays reachable"
    );
    assert_eq!(
        app.get("/api/v1/stores", &other.auth()).await.0,
        200,
        "other tenants are unaffected"
    );
    assert_eq!(
        app.get("/api/v1/plans", &Auth::None).await.1["plans"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );

    // The super-admin's list shows plan, status, this month's usage, activity and size.
    let (status, listed) = app.get("/api/v1/admin/tenants", &admin).await;
    assert_eq!(status, 200, "{listed}");
    let row = listed["tenants"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == shop.tenant_id))
        .cloned()
        .expect("listed");
    assert_eq!(
        (row["plan"].as_str(), row["subscription_status"].as_str()),
        (Some("tiny"), Some("trial")),
        "{row}"
    );
    assert!(
        row["usage_this_month"]["api_calls"]
            .as_u64()
            .is_some_and(|n| n >= used + 3),
        "{row}"
    );
    assert!(row["db_bytes"].as_u64().is_some_and(|n| n > 0), "{row}");
    assert!(row["last_activity_at"].is_string(), "{row}");
}

#[tokio::test]
async fn plan_catalog_changes_are_checked_and_upgrades_are_prorated() {
    let app = TestApp::spawn_with(options()).await;
    let admin = app.super_admin().await;
    let (status, plans) = app.get("/api/v1/plans", &Auth::None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = plans["plans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, ["free", "standard", "premium"]);
    for bad in [
        json!({"id": "x", "name": "X", "price_kes": -1}),
        json!({"id": "x", "name": "X", "interval": "week"}),
        json!({"id": "x", "name": "X", "limits": {"max_pies": 3}}),
        json!({"id": "Bad Id", "name": "X"}),
        json!({"id": "standard", "name": "Again"}),
    ] {
        let (status, body) = app.post("/api/v1/admin/plans", &admin, bad.clone()).await;
        assert!(status == 422 || status == 409, "{bad} → {status} {body}");
    }
    let owner = app.register("Upgrader").await;
    assert_eq!(
        app.post(
            "/api/v1/admin/plans",
            &owner.auth(),
            json!({"id": "y", "name": "Y"})
        )
        .await
        .0,
        403
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/v1/admin/plans/standard",
            &admin,
            Some(json!({"limits": {"max_stores": 2}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limits"]["max_stores"], 2);
    assert_eq!(body["limits"]["max_users"], 25, "limits merge by name");

    // Past the trial, paid, then halfway through the period: an upgrade is charged pro rata.
    platform(&app, &admin).await;
    advance(&app, &admin, 12).await;
    let first = invoices(&app, &owner).await;
    pay(&app, &owner, first[0]["id"].as_str().expect("id")).await;
    advance(&app, &admin, 2 + 15).await;
    let (status, changed) = app
        .call(
            Method::PUT,
            "/api/v1/subscription",
            &owner.auth(),
            Some(json!({"plan_id": "premium"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["effective"], "now");
    let amount = changed["invoice"]["amount_kes"]
        .as_i64()
        .expect("prorated invoice");
    assert!(
        (2000..=3000).contains(&amount),
        "about half of 5,000: {amount}"
    );
    assert_eq!(changed["invoice"]["number"], "INV-000002");
    assert_eq!(subscription(&app, &owner).await["plan_id"], "premium");
    // A downgrade waits for the renewal.
    let (status, changed) = app
        .call(
            Method::PUT,
            "/api/v1/subscription",
            &owner.auth(),
            Some(json!({"plan_id": "standard"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["effective"], "renewal", "{changed}");
    assert!(changed["invoice"].is_null(), "{changed}");
    let sub = subscription(&app, &owner).await;
    assert_eq!(
        (sub["plan_id"].as_str(), sub["pending_plan_id"].as_str()),
        (Some("premium"), Some("standard"))
    );
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/subscription",
            &owner.auth(),
            Some(json!({"plan_id": "gold"})),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "validation_failed"), "{body}");
}

#[tokio::test]
async fn dunning_prompts_the_phone_on_file_again_after_a_failed_payment() {
    const SILENT_PHONE: &str = "254708374149"; // the emulator's number that never answers
    let app = TestApp::spawn_with(options()).await;
    let admin = app.super_admin().await;
    platform(&app, &admin).await;
    let shop = app.register("Slow Payer").await;
    advance(&app, &admin, 14).await;
    assert_eq!(subscription(&app, &shop).await["status"], "past_due");
    let invoice = invoices(&app, &shop).await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = format!("/api/v1/invoices/{invoice}");
    let (status, body) = app
        .post(
            &format!("{path}/pay"),
            &shop.auth(),
            json!({"phone_number": SILENT_PHONE}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let mut attempts = Vec::new();
    for _ in 0..100 {
        let (_, answer) = app.get(&path, &shop.auth()).await;
        attempts = answer["attempts"].as_array().cloned().unwrap_or_default();
        if attempts.first().is_some_and(|a| a["status"] == "failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["status"], "failed", "{attempts:?}");

    // A day later the renewal job asks the same phone again, through the platform.
    advance(&app, &admin, 1).await;
    let (_, answer) = app.get(&path, &shop.auth()).await;
    let attempts = answer["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 2, "{answer}");
    assert!(
        attempts.iter().all(|a| a["phone_number"] == SILENT_PHONE),
        "{answer}"
    );
    assert_eq!(answer["status"], "open");
}
