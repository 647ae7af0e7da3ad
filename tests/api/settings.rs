//! Organization settings, feature flags over the plan, terminology in
//! email, and custom domains, against the real binary: typed settings
//! checked whole, a super-admin's overrides changing what the gates allow
//! at once, a renamed "store" in a queued receipt, and a claimed hostname
//! choosing the tenant of a login and a public page — never of a token.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Auth, Options, PASSWORD, Session, TestApp, code};

async fn patch_settings(app: &TestApp, who: &Session, body: Value) -> (u16, Value) {
    app.call(
        Method::PATCH,
        "/api/v1/tenant/settings",
        &who.auth(),
        Some(body),
    )
    .await
}

async fn settings(app: &TestApp, who: &Session) -> Value {
    let (status, body) = app.get("/api/v1/tenant/settings", &who.auth()).await;
    assert_eq!(status, 200, "{body}");
    body["settings"].clone()
}

#[tokio::test]
async fn settings_have_defaults_are_checked_whole_and_null_resets_them() {
    let app = TestApp::spawn().await;
    let owner = app.register("Settings Shop").await;
    let member = app.add_member(&owner, "Member", None).await;

    // Any member reads every key, each at its default.
    let defaults = settings(&app, &member).await;
    assert_eq!(defaults["timezone"], "Africa/Nairobi", "{defaults}");
    assert_eq!(defaults["locale"], "en-KE");
    assert_eq!(defaults["currency_display"], "code");
    assert_eq!(defaults["payments.receipt_emails"], true);

    // Only settings.manage writes.
    let (status, body) = patch_settings(&app, &member, json!({"locale": "sw-KE"})).await;
    assert_eq!(status, 403, "{body}");

    // One bad key refuses the whole change, naming the key.
    for (patch, key) in [
        (
            json!({"locale": "sw-KE", "timezone": "Mars/Olympus"}),
            "timezone",
        ),
        (json!({"locale": "sw-KE", "colour": "red"}), "colour"),
        (
            json!({"locale": "sw-KE", "payments.account_reference": "much too long"}),
            "payments.account_reference",
        ),
        (
            json!({"payments.receipt_emails": "no"}),
            "payments.receipt_emails",
        ),
    ] {
        let (status, body) = patch_settings(&app, &owner, patch).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(code(&body), "validation_failed");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("`{key}`"))),
            "{body}"
        );
    }
    assert_eq!(
        settings(&app, &owner).await,
        defaults,
        "nothing was written"
    );

    let (status, body) = patch_settings(
        &app,
        &owner,
        json!({"locale": "sw-KE", "timezone": "Europe/London", "currency_display": "symbol",
               "payments.account_reference": "DUKA-1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["timezone"], "Europe/London", "{body}");
    let read = settings(&app, &member).await;
    assert_eq!(read["locale"], "sw-KE");
    assert_eq!(read["currency_display"], "symbol");
    assert_eq!(read["payments.account_reference"], "DUKA-1");

    // `null` resets a key; the others stay.
    let (status, body) = patch_settings(&app, &owner, json!({"timezone": null})).await;
    assert_eq!(status, 200, "{body}");
    let read = settings(&app, &owner).await;
    assert_eq!(read["timezone"], "Africa/Nairobi");
    assert_eq!(read["locale"], "sw-KE");

    // The changes are in the audit log.
    let (status, audit) = app
        .get(
            "/api/v1/audit?operation=tenant.settings.update",
            &owner.auth(),
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    let text = audit.to_string();
    assert!(text.contains("tenant.settings.update"), "{audit}");
}

async fn set_features(app: &TestApp, admin: &Auth, tenant: &str, features: Value) -> Value {
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/admin/tenants/{tenant}/features"),
            admin,
            Some(json!({"features": features})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn bulk_payout(app: &TestApp, owner: &Session) -> (u16, Value) {
    app.post(
        "/api/v1/mpesa/b2c/bulk",
        &owner.auth(),
        json!({"payments": [{"phone_number": "254712345678", "amount": 10}]}),
    )
    .await
}

#[tokio::test]
async fn a_super_admin_turns_features_on_and_off_over_the_plan_at_once() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let admin = app.super_admin().await;
    let free = crate::billing::register_on(&app, "Free Kiosk", "free").await;

    let (status, body) = bulk_payout(&app, &free).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(code(&body), "plan_feature_required", "{body}");

    // Only a super-admin sets overrides; names are checked.
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/admin/tenants/{}/features", free.tenant_id),
            &free.auth(),
            Some(json!({"features": {"bulk_payouts": true}})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/admin/tenants/{}/features", free.tenant_id),
            &admin,
            Some(json!({"features": {"Bulk-Payouts": true}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    let flags = set_features(
        &app,
        &admin,
        &free.tenant_id,
        json!({"bulk_payouts": true, "beta_reports": true}),
    )
    .await;
    assert_eq!(flags["plan_id"], "free", "{flags}");
    assert_eq!(flags["plan_features"], json!([]), "{flags}");
    assert_eq!(
        flags["features"],
        json!(["beta_reports", "bulk_payouts"]),
        "{flags}"
    );
    let (status, body) = bulk_payout(&app, &free).await;
    assert_ne!(code(&body), "plan_feature_required", "{status} {body}");
    let (status, mine) = app.get("/api/v1/tenant/features", &free.auth()).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(
        mine["features"],
        json!(["beta_reports", "bulk_payouts"]),
        "{mine}"
    );

    // Removing the override gives the plan its say back.
    let flags = set_features(&app, &admin, &free.tenant_id, json!({"bulk_payouts": null})).await;
    assert_eq!(flags["overrides"], json!({"beta_reports": true}), "{flags}");
    let (status, body) = bulk_payout(&app, &free).await;
    assert_eq!(
        (status, code(&body)),
        (403, "plan_feature_required"),
        "{body}"
    );

    // A Standard tenant has `mcp`; turned off, its assistant is refused.
    let standard = app.register("Standard Shop").await;
    let key = crate::mcp::full_key(&app, &standard).await;
    let history = crate::mcp::call("mpesa_transaction_history", json!({}));
    let step = crate::mcp::one(&app, &key, crate::mcp::MODERN, history.clone()).await;
    assert_eq!(step["is_error"], false, "{step}");
    set_features(&app, &admin, &standard.tenant_id, json!({"mcp": false})).await;
    let step = crate::mcp::one(&app, &key, crate::mcp::MODERN, history.clone()).await;
    assert_eq!(step["is_error"], true, "{step}");
    assert!(
        step["text"]
            .as_str()
            .is_some_and(|t| t.contains("plan_feature_required") && t.contains("mcp")),
        "{step}"
    );
    set_features(&app, &admin, &standard.tenant_id, json!({"mcp": null})).await;
    let step = crate::mcp::one(&app, &key, crate::mcp::MODERN, history).await;
    assert_eq!(step["is_error"], false, "{step}");

    // Each change is in the platform audit.
    let (status, audit) = app
        .get(
            "/api/v1/admin/audit?operation=tenant.features.changed",
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    assert!(
        audit.to_string().matches("tenant.features.changed").count() >= 4,
        "{audit}"
    );
}

#[tokio::test]
async fn a_receipt_uses_the_organization_s_words() {
    let app = TestApp::spawn_with(
        Options::daraja_sim()
            .with_env("MALIPO_JOB_INTERVAL_SECS", "1")
            .with_env("MALIPO_EVENT_INTERVAL_MS", "200"),
    )
    .await;
    let owner = app.register("Words Ltd").await;
    let auth = owner.auth();
    let put = |body: Value| app.call(Method::PUT, "/api/v1/tenant/branding", &auth, Some(body));
    let (status, body) = put(json!({"terminology": {"shop": "duka"}})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("terminology.shop"), "{body}");
    let (status, body) = put(json!({"terminology": {"store": ""}})).await;
    assert_eq!(status, 422, "{body}");

    let (status, saved) = put(json!({
        "contact_email": "accounts@words.example",
        "terminology": {"store": "branch", "stores": "branches", "payment": "collection"}
    }))
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        saved["terminology"],
        json!({"store": "branch", "stores": "branches", "payment": "collection"})
    );
    let (_, read) = app.get("/api/v1/tenant/branding", &owner.auth()).await;
    assert_eq!(read["terminology"]["store"], "branch", "{read}");

    app.configure_mpesa(&owner).await;
    let store = owner.default_store.clone().expect("default store");
    let (status, body) = app
        .call_with(
            Method::POST,
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            Some(json!({"phone_number": "254712345678", "amount": 75,
                        "account_reference": "SHOP-1", "description": "Order"})),
            &[("X-Store-ID", store.as_str())],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // No SMTP server: the rendered email waits in the queue.
    let mut receipt = None;
    for _ in 0..300 {
        receipt = app.last_mail("accounts@words.example", "payment_receipt");
        if receipt.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = receipt.expect("a queued receipt");
    assert!(text.contains("collection received"), "{text}");
    assert!(text.contains("Branch: Main store"), "{text}");
    assert!(!text.contains("Store:"), "{text}");
}

/// The invitation email queued for one organization (a person invited
/// into two organizations has one for each). Invitations are the host's
/// own mail: they wait in control.db, never in the tenant's file.
/// `who` proves control of `host`: the test's challenge server answers
/// the token the host gave, and `POST /tenant/domain/verify` accepts it.
async fn prove(app: &TestApp, served: &crate::domain_proof::Served, who: &Session, host: &str) {
    let (_, domain) = app.get("/api/v1/tenant/domain", &who.auth()).await;
    let token = domain["verification"]["token"]
        .as_str()
        .expect("verification token")
        .to_string();
    served
        .lock()
        .expect("served answers")
        .insert(host.to_string(), token);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/tenant/domain/verify",
            &who.auth(),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{host}: {body}");
}

pub(crate) async fn invitation_in(app: &TestApp, tenant: &str, email: &str) -> String {
    for _ in 0..200 {
        let conn =
            rusqlite::Connection::open(app.data_dir.join("control.db")).expect("open control.db");
        conn.busy_timeout(Duration::from_secs(5)).expect("busy");
        let text: Option<String> = conn
            .query_row(
                "SELECT body FROM mail_outbox WHERE recipient = ?1 AND kind = 'invitation' AND tenant_id = ?2
                  ORDER BY id DESC LIMIT 1",
                [email, tenant],
                |row| row.get(0),
            )
            .ok();
        if let Some(text) = text {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no invitation for {email} in {tenant}");
}

async fn claim(app: &TestApp, who: &Session, hostname: &str) -> (u16, Value) {
    app.call(
        Method::PUT,
        "/api/v1/tenant/domain",
        &who.auth(),
        Some(json!({"hostname": hostname})),
    )
    .await
}

async fn login_on(app: &TestApp, host: &str, body: Value) -> (u16, Value) {
    app.call_with(
        Method::POST,
        "/api/v1/auth/login",
        &Auth::None,
        Some(body),
        &[("Host", host)],
    )
    .await
}

async fn public_on(app: &TestApp, host: &str) -> (u16, Value) {
    app.call_with(
        Method::GET,
        "/api/v1/public/tenant",
        &Auth::None,
        None,
        &[("Host", host)],
    )
    .await
}

#[tokio::test]
async fn a_custom_host_name_resolves_its_tenant_for_login_and_public_pages_only() {
    // Domains route logins only once proven (crate::domain_proof): the
    // challenge fetches reach this test's server.
    let (challenge_addr, served) = crate::domain_proof::challenge_server().await;
    let app = TestApp::spawn_with(
        crate::helpers::Options::default()
            .with_env("MALIPO_DOMAIN_CHALLENGE_ADDR", &challenge_addr),
    )
    .await;
    let alpha = app.register("Alpha Traders").await;
    let beta = app.register("Beta Stores").await;
    // One person in both organizations.
    let both = app.add_member(&alpha, "Admin", None).await;
    let (roles_status, roles) = app.get("/api/v1/roles", &beta.auth()).await;
    assert_eq!(roles_status, 200, "{roles}");
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/tenant/branding",
            &beta.auth(),
            Some(
                json!({"display_name": "Beta Pay", "primary_colour": "#112233",
                        "terminology": {"store": "branch"}}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    let role_id = roles["roles"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "Member"))
        .and_then(|r| r["id"].as_str())
        .expect("Member role")
        .to_string();
    let (status, invited) = app
        .post(
            "/api/v1/invitations",
            &beta.auth(),
            json!({"email": both.email, "role_id": role_id}),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let token = TestApp::token_in(&invitation_in(&app, &beta.tenant_id, &both.email).await);
    let (status, accepted) = app
        .post(
            "/api/v1/invitations/accept",
            &Auth::None,
            json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");

    // Claims: checked, and one organization per name.
    for bad in ["localhost", "10.1.2.3", "not a host", "127.0.0.1"] {
        let (status, body) = claim(&app, &alpha, bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, body) = claim(&app, &alpha, "Pay.Alpha.test").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hostname"], "pay.alpha.test");
    let (status, body) = claim(&app, &beta, "pay.beta.test").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = claim(&app, &beta, "PAY.ALPHA.TEST").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(code(&body), "domain_taken");
    let (_, mine) = app.get("/api/v1/tenant/domain", &beta.auth()).await;
    assert_eq!(mine["hostname"], "pay.beta.test", "{mine}");
    // Both organizations prove control of their names.
    prove(&app, &served, &alpha, "pay.alpha.test").await;
    prove(&app, &served, &beta, "pay.beta.test").await;

    // Login on each host binds to its organization.
    let credentials = json!({"email": both.email, "password": PASSWORD});
    let (status, on_alpha) = login_on(&app, "pay.alpha.test", credentials.clone()).await;
    assert_eq!(status, 200, "{on_alpha}");
    assert_eq!(on_alpha["tenant"]["id"], json!(alpha.tenant_id));
    let (status, on_beta) = login_on(&app, "pay.beta.test:443", credentials.clone()).await;
    assert_eq!(status, 200, "{on_beta}");
    assert_eq!(on_beta["tenant"]["id"], json!(beta.tenant_id));
    // Another organization named on a claimed host is refused.
    let (status, body) = login_on(
        &app,
        "pay.beta.test",
        json!({"email": both.email, "password": PASSWORD, "tenant_id": alpha.tenant_id}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (403, "tenant_host_mismatch"),
        "{body}"
    );
    // Someone who is not a member of the host's organization is refused.
    let (status, body) = login_on(
        &app,
        "pay.beta.test",
        json!({"email": alpha.email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // Public pages: the host's organization, or 404.
    let (status, face) = public_on(&app, "pay.beta.test").await;
    assert_eq!(status, 200, "{face}");
    assert_eq!(face["tenant"]["id"], json!(beta.tenant_id));
    assert_eq!(face["branding"]["display_name"], "Beta Pay");
    assert_eq!(face["branding"]["primary_colour"], "#112233");
    assert_eq!(face["branding"]["terminology"]["store"], "branch");
    assert_eq!(face["branding"]["terminology"]["payment"], "payment");
    let (status, face) = public_on(&app, "pay.alpha.test").await;
    assert_eq!(status, 200, "{face}");
    assert_eq!(face["tenant"]["id"], json!(alpha.tenant_id));
    assert_eq!(face["branding"]["display_name"], "Alpha Traders");
    let (status, body) = public_on(&app, "pay.gamma.test").await;
    assert_eq!((status, code(&body)), (404, "unknown_host"), "{body}");

    // A credential's tenant wins over any Host: B's token on A's host
    // lists B's stores, and the person's B token stays in B.
    let (_, beta_stores) = app.get("/api/v1/stores", &beta.auth()).await;
    assert_eq!(
        beta_stores["stores"].as_array().map(Vec::len),
        Some(1),
        "{beta_stores}"
    );
    let (status, stores) = app
        .call_with(
            Method::GET,
            "/api/v1/stores",
            &beta.auth(),
            None,
            &[("Host", "pay.alpha.test")],
        )
        .await;
    assert_eq!(status, 200, "{stores}");
    assert_eq!(
        stores, beta_stores,
        "B's token lists B's stores on A's host"
    );
    let beta_token = Auth::Bearer(on_beta["access_token"].as_str().expect("token").into());
    let (status, tenant) = app
        .call_with(
            Method::GET,
            "/api/v1/tenant",
            &beta_token,
            None,
            &[("Host", "pay.alpha.test")],
        )
        .await;
    assert_eq!(status, 200, "{tenant}");
    assert!(tenant.to_string().contains(&beta.tenant_id), "{tenant}");
    assert!(!tenant.to_string().contains(&alpha.tenant_id), "{tenant}");

    // Released, the name resolves no more (the cache forgets at once).
    let (status, _) = app
        .call(Method::DELETE, "/api/v1/tenant/domain", &alpha.auth(), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = public_on(&app, "pay.alpha.test").await;
    assert_eq!((status, code(&body)), (404, "unknown_host"), "{body}");
    let (status, body) = claim(&app, &beta, "pay.alpha.test").await;
    assert_eq!(status, 200, "{body}");
    prove(&app, &served, &beta, "pay.alpha.test").await;
    let (status, face) = public_on(&app, "pay.alpha.test").await;
    assert_eq!(status, 200, "{face}");
    assert_eq!(face["tenant"]["id"], json!(beta.tenant_id));
    let (status, body) = public_on(&app, "pay.beta.test").await;
    assert_eq!(status, 404, "the name B held before is free: {body}");
}

/// Pushes a payment without a reference or description; answers the
/// pending transaction.
async fn push_without_reference(app: &TestApp, who: &Session) -> Value {
    let (status, body) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &who.auth(),
            json!({"phone_number": "254708374149", "amount": 10}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["transaction"].clone()
}

#[tokio::test]
async fn an_stk_push_without_a_reference_takes_the_organization_s_defaults() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Defaults Duka").await;
    let other = app.register("Other Duka").await;
    app.configure_mpesa(&owner).await;
    app.configure_mpesa(&other).await;

    let plain = push_without_reference(&app, &owner).await;
    assert_eq!(
        (&plain["account_reference"], &plain["description"]),
        (&json!("Malipo"), &json!("Payment")),
        "{plain}"
    );
    let (status, body) = patch_settings(
        &app,
        &owner,
        json!({"payments.account_reference": "DUKA-42", "payments.transaction_desc": "Duka sale"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let set = push_without_reference(&app, &owner).await;
    assert_eq!(
        (&set["account_reference"], &set["description"]),
        (&json!("DUKA-42"), &json!("Duka sale")),
        "{set}"
    );
    // A request's own values still win, and another tenant keeps the defaults.
    let (status, body) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            json!({"phone_number": "254708374149", "amount": 10,
                   "account_reference": "INV-7", "description": "Invoice 7"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["transaction"]["account_reference"], "INV-7", "{body}");
    let theirs = push_without_reference(&app, &other).await;
    assert_eq!(theirs["account_reference"], "Malipo", "{theirs}");
}
