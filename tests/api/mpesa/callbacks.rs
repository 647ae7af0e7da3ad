//! Callbacks: duplicated and early ones, the per-tenant callback token
//! (wrong, borrowed, rotated), forged or mismatched bodies, and two tenants
//! on one emulator receiving only their own.

use std::collections::BTreeSet;

use base64::Engine as _;

use super::*;
use crate::helpers::code;

#[tokio::test]
async fn a_duplicated_callback_completes_the_payment_once() {
    let app = spawn().await;
    let owner = app.register("Mpesa Duplicate").await;
    configure(&app, &owner, credentials()).await;
    set_faults(&app, json!({"duplicate_callback": true})).await;
    let txn = push(&app, &owner.auth(), payment("0712345678", json!(10))).await;
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    let callbacks = wait_for_callbacks(&app, checkout, 2).await;
    set_faults(&app, json!({})).await;
    assert_eq!(callbacks.len(), 2, "{callbacks:?}");
    assert_eq!(callbacks[0]["raw_body"], callbacks[1]["raw_body"]);
    for callback in &callbacks {
        assert_eq!(
            callback["http_status"], 200,
            "both acknowledged: {callback}"
        );
    }

    let done = wait_final(&app, &owner.auth(), id).await;
    wait_inbox_settled(&app).await;
    let rows: Vec<InboxRow> = inbox(&app)
        .into_iter()
        .filter(|r| r.tenant_id == owner.tenant_id)
        .collect();
    assert_eq!(rows.len(), 2, "both copies stored: {rows:?}");
    assert!(rows.iter().all(|r| r.state == "applied"), "{rows:?}");

    let after = get_txn(&app, &owner.auth(), id).await;
    assert_eq!(after["status"], "completed", "{after}");
    assert_eq!(after["receipt"], done["receipt"], "{after}");
    assert_eq!(after["completed_at"], done["completed_at"], "{after}");
    assert_eq!(
        events(&app, &owner.tenant_id, "payment.completed").len(),
        1,
        "exactly one completion event"
    );
    assert_eq!(outbox_count(&app, &owner.tenant_id), 1);
    let totals = report_totals(&app, &owner).await;
    assert_eq!(
        (totals["count"].clone(), totals["completed"].clone()),
        (json!(1), json!(1))
    );
}

/// Pushes with `callback_before_response`: the emulator posts the callback
/// while the push is still waiting for Daraja's answer (uncommitted), then
/// answers. Checks the callback was accepted and completes the payment.
async fn assert_early_callback_completes(app: &TestApp, owner: &Session, amount: i64) {
    set_faults(app, json!({"callback_before_response": true})).await;
    // The push's intent is committed before it is sent, so the early
    // callback may already have settled it when the answer comes back:
    // the answer is the payment as it stands, pending or completed.
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            payment("0712345678", json!(amount)),
        )
        .await;
    set_faults(app, json!({})).await;
    assert_eq!(status, 201, "stk push: {answer}");
    let txn = answer["transaction"].clone();
    assert!(
        txn["status"] == "pending" || txn["status"] == "completed",
        "{answer}"
    );
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    // The emulator delivered (once, as Daraja does) before it answered the push.
    let callbacks = wait_for_callbacks(app, checkout, 1).await;
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    assert_eq!(callbacks[0]["delivery"], "delivered", "{callbacks:?}");
    assert_eq!(
        callbacks[0]["http_status"], 200,
        "the host must accept a callback that beats the push answer: {}",
        callbacks[0]["response_body"]
    );

    let done = wait_final(app, &owner.auth(), id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["receipt"].as_str().is_some(), "{done}");
    wait_inbox_settled(app).await;
    let completed = events(app, &owner.tenant_id, "payment.completed");
    assert_eq!(
        completed
            .iter()
            .filter(|e| e["transaction_id"] == id)
            .count(),
        1,
        "{completed:?}"
    );
}

#[tokio::test]
async fn a_callback_before_the_push_answer_still_completes_the_payment() {
    let app = spawn().await;
    let owner = app.register("Mpesa Early").await;
    configure(&app, &owner, credentials()).await;
    // A first, ordinary payment.
    let first = push(&app, &owner.auth(), payment("0712345678", json!(5))).await;
    let first = wait_final(&app, &owner.auth(), first["id"].as_str().expect("id")).await;
    assert_eq!(first["status"], "completed", "{first}");

    assert_early_callback_completes(&app, &owner, 10).await;
}

/// The tenant's very first push: nothing about the tenant's callback URL
/// may depend on that push's transaction having committed.
#[tokio::test]
async fn a_callback_before_the_first_push_answer_still_completes_the_payment() {
    let app = spawn().await;
    let owner = app.register("Mpesa Early First").await;
    configure(&app, &owner, credentials()).await;
    assert_early_callback_completes(&app, &owner, 10).await;
}

// ---------------------------------------------------------------------------
// Callback security

#[tokio::test]
async fn callbacks_need_the_tenants_own_token_and_cannot_touch_other_tenants() {
    let app = spawn().await;
    let a = app.register("Mpesa Cb A").await;
    let b = app.register("Mpesa Cb B").await;
    configure(&app, &a, credentials()).await;
    configure(&app, &b, credentials()).await;

    // A completes a payment (which tells us A's callback URL).
    let a_txn = push(&app, &a.auth(), payment("0712345678", json!(10))).await;
    let a_id = a_txn["id"].as_str().expect("id").to_string();
    let a_checkout = a_txn["checkout_request_id"].as_str().expect("checkout");
    assert_eq!(
        wait_final(&app, &a.auth(), &a_id).await["status"],
        "completed"
    );
    let a_url = recorded_push(&app, a_checkout).await["body"]["CallBackURL"]
        .as_str()
        .expect("url")
        .to_string();
    let (a_tenant, a_token) = callback_parts(&a_url);
    assert_eq!(a_tenant, a.tenant_id);

    // B's payment stays pending: its callback is held back for 10 minutes.
    set_faults(&app, json!({"delay_ms": 600_000})).await;
    let b_txn = push(&app, &b.auth(), payment("0722000111", json!(77))).await;
    set_faults(&app, json!({})).await;
    let b_id = b_txn["id"].as_str().expect("id").to_string();
    let b_checkout = b_txn["checkout_request_id"]
        .as_str()
        .expect("checkout")
        .to_string();
    let b_merchant = b_txn["merchant_request_id"]
        .as_str()
        .expect("merchant")
        .to_string();
    let b_url = recorded_push(&app, &b_checkout).await["body"]["CallBackURL"]
        .as_str()
        .expect("url")
        .to_string();
    let (b_tenant, b_token) = callback_parts(&b_url);
    assert_eq!(b_tenant, b.tenant_id);
    assert_ne!(a_token, b_token, "each tenant has its own callback token");

    wait_inbox_settled(&app).await;
    let stored = inbox(&app).len();
    let valid = stk_success(&b_merchant, &b_checkout, 77, 254_722_000_111, "FORGED0001");

    // Wrong or borrowed tokens, unknown tenants and plugins: 404, nothing stored.
    let random_tenant = uuid::Uuid::new_v4().to_string();
    for path in [
        format!("/callbacks/mpesa/{a_tenant}/cb_wrongtoken/stk"),
        format!("/callbacks/mpesa/{a_tenant}/{b_token}/stk"),
        format!("/callbacks/mpesa/{b_tenant}/{a_token}/stk"),
        format!("/callbacks/mpesa/{random_tenant}/{a_token}/stk"),
        format!("/callbacks/mpesa/not-a-tenant/{a_token}/stk"),
        format!("/callbacks/nosuchplugin/{a_tenant}/{a_token}/stk"),
    ] {
        let (status, body) = post_callback(&app, &path, &valid).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(inbox(&app).len(), stored, "{path} stored something");
    }

    // Malformed JSON with the right token: acknowledged as Daraja expects, not stored.
    for junk in ["{not json", "", "[1, 2"] {
        let (status, body) = post_callback(
            &app,
            &format!("/callbacks/mpesa/{a_tenant}/{a_token}/stk"),
            junk,
        )
        .await;
        assert_eq!(status, 200, "{junk:?}: {body}");
        let ack: Value = serde_json::from_str(&body).expect("ack is JSON");
        assert_eq!(ack["ResultCode"], 0, "{ack}");
        assert_eq!(inbox(&app).len(), stored, "malformed {junk:?} was stored");
    }

    // A forged callback for B's payment sent to A's URL (with A's token).
    let a_before = list(&app, &a.auth()).await;
    let (status, body) = post_callback(&app, &a_url.replace(&app.base, ""), &valid).await;
    assert_eq!(status, 200, "{body}");
    let forged: InboxRow = inbox(&app)
        .into_iter()
        .find(|r| r.id > 0 && r.body.contains("FORGED0001"))
        .expect("the forged callback is stored for A");
    assert_eq!(
        forged.tenant_id, a.tenant_id,
        "stored under the URL's tenant"
    );
    // Wait until A's plugin has seen it at least once.
    for _ in 0..TRIES {
        if inbox(&app)
            .iter()
            .any(|r| r.id == forged.id && r.attempts >= 1)
        {
            break;
        }
        sleep().await;
    }
    let seen = inbox(&app)
        .into_iter()
        .find(|r| r.id == forged.id)
        .expect("row");
    assert!(seen.attempts >= 1, "the worker never tried it: {seen:?}");
    assert_ne!(seen.state, "applied", "A has no such payment: {seen:?}");

    let b_now = get_txn(&app, &b.auth(), &b_id).await;
    assert_eq!(b_now["status"], "pending", "B untouched: {b_now}");
    assert_eq!(b_now["receipt"], Value::Null, "{b_now}");
    assert_eq!(list(&app, &a.auth()).await, a_before, "A untouched");
    assert_eq!(txn_rows_mentioning(&app, &a.tenant_id, "FORGED0001"), 0);
    assert_eq!(txn_rows_mentioning(&app, &b.tenant_id, "FORGED0001"), 0);
    assert_eq!(txn_rows_mentioning(&app, &a.tenant_id, &b_checkout), 0);
    assert!(events(&app, &b.tenant_id, "payment.completed").is_empty());

    // B's real callback still completes B, with the emulator's receipt.
    emu_call(&app, Method::POST, "/simulator/callbacks/flush", None).await;
    let b_done = wait_final(&app, &b.auth(), &b_id).await;
    assert_eq!(b_done["status"], "completed", "{b_done}");
    assert_ne!(b_done["receipt"], "FORGED0001", "{b_done}");
    assert!(b_done["receipt"].as_str().is_some(), "{b_done}");
}

/// Rotating the token refuses the old URL at once; a payment whose callback
/// went to the old URL is settled by an STK query instead.
#[tokio::test]
async fn a_rotated_callback_token_refuses_the_old_url() {
    let app = spawn().await;
    let owner = app.register("Mpesa Rotate").await;
    configure(&app, &owner, credentials()).await;
    let (txn, old_url) = held_push(&app, &owner.auth(), "0712345678", 40).await;
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    let (_, old_token) = callback_parts(&old_url);

    let (status, rotated) = app
        .post(
            "/api/v1/callback-tokens/mpesa/rotate",
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");

    // The held-back callback now reaches a dead URL.
    emu_call(&app, Method::POST, "/simulator/callbacks/flush", None).await;
    let callbacks = wait_for_callbacks(&app, checkout, 1).await;
    assert_eq!(callbacks[0]["http_status"], 404, "{callbacks:?}");
    assert!(inbox(&app).is_empty(), "nothing stored");
    assert_eq!(get_txn(&app, &owner.auth(), id).await["status"], "pending");

    // An STK query settles it.
    let (status, queried) = app
        .post(
            &format!("/api/v1/mpesa/transactions/{id}/query"),
            &owner.auth(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{queried}");
    assert_eq!(queried["query"]["applied"], true, "{queried}");
    assert_settled_by_query(&queried["transaction"]);

    // New pushes carry the new token and complete.
    let next = push(&app, &owner.auth(), payment("0712345678", json!(41))).await;
    let next_checkout = next["checkout_request_id"].as_str().expect("checkout");
    let new_url = recorded_push(&app, next_checkout).await["body"]["CallBackURL"]
        .as_str()
        .expect("url")
        .to_string();
    let (tenant, new_token) = callback_parts(&new_url);
    assert_eq!(tenant, owner.tenant_id);
    assert_ne!(new_token, old_token);
    let done = wait_final(&app, &owner.auth(), next["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["receipt"].as_str().is_some(), "{done}");
}

#[tokio::test]
async fn a_success_callback_that_does_not_match_the_request_fails_the_payment() {
    let app = spawn().await;
    let owner = app.register("Mpesa Mismatch").await;
    configure(&app, &owner, credentials()).await;
    set_faults(&app, json!({"delay_ms": 600_000})).await;
    let txn = push(&app, &owner.auth(), payment("0712345678", json!(500))).await;
    set_faults(&app, json!({})).await;
    let id = txn["id"].as_str().expect("id");
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    let merchant = txn["merchant_request_id"].as_str().expect("merchant");
    let url = recorded_push(&app, checkout).await["body"]["CallBackURL"]
        .as_str()
        .expect("url")
        .to_string();

    // Right URL and token, but the customer "paid" 1 shilling.
    let forged = stk_success(merchant, checkout, 1, 254_712_345_678, "CHEAP00001");
    let (status, _) = post_callback(&app, &url.replace(&app.base, ""), &forged).await;
    assert_eq!(status, 200);
    let done = wait_final(&app, &owner.auth(), id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(
        done["result_desc"], "callback did not match the request",
        "{done}"
    );
    assert_eq!(done["receipt"], Value::Null, "{done}");
    assert!(events(&app, &owner.tenant_id, "payment.completed").is_empty());
    let totals = report_totals(&app, &owner).await;
    assert_eq!(totals["amount_completed"], 0, "{totals}");
}

// ---------------------------------------------------------------------------
// Two tenants, two sets of credentials, one emulator

#[tokio::test]
async fn two_tenants_use_their_own_credentials_and_receive_only_their_own_callbacks() {
    let app = spawn().await;
    let a = app.register("Mpesa Two A").await;
    let b = app.register("Mpesa Two B").await;
    // B's shortcode gets a passkey of its own at the emulator, so a push
    // signed with A's passkey would be refused.
    let b_passkey = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    emu_call(
        &app,
        Method::POST,
        "/simulator/shortcodes",
        Some(json!({"short_code": "600123", "passkey": b_passkey})),
    )
    .await;
    configure(&app, &a, credentials()).await;
    let mut b_creds = credentials();
    b_creds["consumer_key"] = json!("k2-tenant-b");
    b_creds["consumer_secret"] = json!("s2-tenant-b");
    b_creds["shortcode"] = json!("600123");
    b_creds["passkey"] = json!(b_passkey);
    configure(&app, &b, b_creds).await;

    let a_txn = push(&app, &a.auth(), payment("0712345678", json!(10))).await;
    let b_txn = push(&app, &b.auth(), payment("0799888777", json!(20))).await;
    let (a_id, b_id) = (
        a_txn["id"].as_str().expect("id"),
        b_txn["id"].as_str().expect("id"),
    );
    let a_done = wait_final(&app, &a.auth(), a_id).await;
    let b_done = wait_final(&app, &b.auth(), b_id).await;
    assert_eq!(a_done["status"], "completed", "{a_done}");
    assert_eq!(b_done["status"], "completed", "{b_done}");
    let a_checkout = a_done["checkout_request_id"].as_str().expect("checkout");
    let b_checkout = b_done["checkout_request_id"].as_str().expect("checkout");

    // Tokens the emulator issued, by consumer key.
    let requests = emu_requests(&app).await;
    let issued_to = |key: &str, secret: &str| -> BTreeSet<String> {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"))
        );
        requests
            .iter()
            .filter(|r| r["path"] == "/oauth/v1/generate" && r["headers"]["authorization"] == basic)
            .filter_map(|r| r["response"]["access_token"].as_str().map(str::to_string))
            .collect()
    };
    let a_tokens = issued_to("k1", "s1");
    let b_tokens = issued_to("k2-tenant-b", "s2-tenant-b");
    assert!(!a_tokens.is_empty() && !b_tokens.is_empty(), "{requests:?}");

    for (checkout, shortcode, passkey, tokens, tenant) in [
        (
            a_checkout,
            174_379,
            SANDBOX_PASSKEY,
            &a_tokens,
            &a.tenant_id,
        ),
        (
            b_checkout,
            600_123,
            b_passkey.as_str(),
            &b_tokens,
            &b.tenant_id,
        ),
    ] {
        let pushed = recorded_push(&app, checkout).await;
        assert_eq!(pushed["status"], 200, "{pushed}");
        assert_eq!(
            pushed["body"]["BusinessShortCode"],
            json!(shortcode),
            "{pushed}"
        );
        assert_eq!(
            pushed["body"]["PartyB"],
            json!(shortcode.to_string()),
            "{pushed}"
        );
        let timestamp = pushed["body"]["Timestamp"].as_str().expect("timestamp");
        let password = base64::engine::general_purpose::STANDARD
            .decode(pushed["body"]["Password"].as_str().expect("password"))
            .expect("base64 password");
        assert_eq!(
            String::from_utf8(password).expect("utf-8"),
            format!("{shortcode}{passkey}{timestamp}"),
            "signed with the tenant's own passkey"
        );
        let bearer = pushed["headers"]["authorization"]
            .as_str()
            .and_then(|h| h.strip_prefix("Bearer "))
            .expect("bearer token");
        assert!(
            tokens.contains(bearer),
            "a token issued to the tenant's own consumer key"
        );
        let url = pushed["body"]["CallBackURL"].as_str().expect("url");
        assert_eq!(
            &callback_parts(url).0,
            tenant,
            "the tenant's own callback URL"
        );
    }
    assert!(a_tokens.is_disjoint(&b_tokens));

    // Each callback landed only in its own tenant's file.
    assert_eq!(txn_rows_mentioning(&app, &a.tenant_id, a_checkout), 1);
    assert_eq!(txn_rows_mentioning(&app, &a.tenant_id, b_checkout), 0);
    assert_eq!(txn_rows_mentioning(&app, &b.tenant_id, b_checkout), 1);
    assert_eq!(txn_rows_mentioning(&app, &b.tenant_id, a_checkout), 0);
    for (receipt, other) in [
        (&a_done["receipt"], &b.tenant_id),
        (&b_done["receipt"], &a.tenant_id),
    ] {
        let receipt = receipt.as_str().expect("receipt");
        assert_eq!(txn_rows_mentioning(&app, other, receipt), 0);
    }
    // And each sees only its own.
    let a_list = list(&app, &a.auth()).await;
    let b_list = list(&app, &b.auth()).await;
    assert_eq!(a_list.len(), 1);
    assert_eq!(b_list.len(), 1);
    assert_eq!(a_list[0]["id"], json!(a_id));
    assert_eq!(b_list[0]["id"], json!(b_id));
    let (status, _) = app
        .get(&format!("/api/v1/mpesa/transactions/{b_id}"), &a.auth())
        .await;
    assert_eq!(status, 404, "A cannot read B's payment");
    assert_eq!(report_totals(&app, &a).await["amount_completed"], 10);
    assert_eq!(report_totals(&app, &b).await["amount_completed"], 20);
}

/// Another writer holds the organization's file (an operator's `sqlite3`
/// shell, a long import) when Daraja's callback arrives: the callback waits
/// in the inbox as pending and is delivered once the file is free — never
/// failed for good — and a REST write meanwhile answers `503 database_busy`
/// with `Retry-After`, not a bare 500.
#[tokio::test]
async fn a_callback_meeting_a_locked_database_waits_and_is_applied_when_it_frees() {
    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let owner = app.register("Busy Till").await;
    app.configure_mpesa(&owner).await;
    let (txn, url) = held_push(&app, &owner.auth(), "0712345678", 40).await;
    let id = txn["id"].as_str().expect("id").to_string();
    let checkout = txn["checkout_request_id"].as_str().expect("checkout");
    let merchant = txn["merchant_request_id"].as_str().expect("merchant");

    let holder = rusqlite::Connection::open(app.tenant_file(&owner.tenant_id)).expect("open");
    holder.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let body = stk_success(merchant, checkout, 40, 254_712_345_678, "BUSY000001");
    let (status, ack) = post_callback(&app, &url.replace(&app.base, ""), &body).await;
    assert_eq!(status, 200, "acknowledged as Daraja expects: {ack}");

    let (status, refused) = app
        .post("/api/v1/stores", &owner.auth(), json!({"name": "Annex"}))
        .await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(code(&refused), "database_busy", "{refused}");

    let admin = app.super_admin().await;
    let waiting = |state: &'static str| {
        let (app, admin, tenant) = (&app, &admin, owner.tenant_id.clone());
        async move {
            let (status, body) = app
                .get(
                    &format!("/api/v1/admin/callbacks?state={state}&tenant_id={tenant}"),
                    admin,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body["callbacks"].as_array().cloned().unwrap_or_default()
        }
    };
    let mut retried = None;
    for _ in 0..TRIES {
        retried = waiting("pending").await.into_iter().find(|c| {
            c["attempts"].as_i64() >= Some(1)
                && c["last_error"].as_str().is_some_and(|e| e.contains("busy"))
        });
        if retried.is_some() {
            break;
        }
        sleep().await;
    }
    assert!(
        retried.is_some(),
        "the callback met the lock and waits to be retried: {:?}",
        waiting("pending").await
    );
    assert_eq!(
        waiting("failed").await,
        Vec::<Value>::new(),
        "never failed for good"
    );

    drop(holder);
    let done = wait_final(&app, &owner.auth(), &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["receipt"], "BUSY000001", "{done}");
}
