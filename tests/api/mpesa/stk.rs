//! STK push end to end: push → emulator → callback → report, every
//! emulator outcome, the `Idempotency-Key`, and the cached Daraja token.

use std::collections::BTreeSet;

use super::*;
use crate::helpers::code;

#[tokio::test]
async fn a_payment_goes_from_push_to_callback_to_report() {
    let app = spawn().await;
    let owner = app.register("Mpesa Happy").await;
    let tenant = owner.tenant_id.clone();

    // Nothing configured yet.
    let (status, before) = app.get("/api/v1/mpesa/credentials", &owner.auth()).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["configured"], false, "{before}");

    // Distinctive secrets, so that finding them anywhere means a leak.
    let consumer_secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
    let consumer_key = format!("key-{}", uuid::Uuid::new_v4().simple());
    let mut creds = credentials();
    creds["consumer_key"] = json!(consumer_key);
    creds["consumer_secret"] = json!(consumer_secret);
    let secrets = [
        consumer_key.as_str(),
        consumer_secret.as_str(),
        SANDBOX_PASSKEY,
        INITIATOR_PASSWORD,
    ];

    let (status, saved) = put_credentials(&app, &owner, creds).await;
    assert_eq!(status, 200, "{saved}");
    let (status, shown) = app.get("/api/v1/mpesa/credentials", &owner.auth()).await;
    assert_eq!(status, 200, "{shown}");
    for answer in [&saved, &shown] {
        assert_eq!(answer["configured"], true, "{answer}");
        assert_eq!(answer["environment"], "sandbox", "{answer}");
        assert_eq!(answer["shortcode"], "174379", "{answer}");
        assert_eq!(answer["initiator_name"], "testapi", "{answer}");
        assert_eq!(answer["uses_emulator"], true, "{answer}");
        assert_eq!(
            answer["effective_base_url"],
            json!(emulator(&app)),
            "{answer}"
        );
        assert_eq!(
            answer["fields"],
            json!({"consumer_key": true, "consumer_secret": true, "passkey": true,
                   "security_credential": true, "initiator_password": true}),
            "only which secrets are set: {answer}"
        );
        let text = answer.to_string();
        for secret in secrets {
            assert!(!text.contains(secret), "the answer shows a secret: {text}");
        }
    }

    // The tenant's secrets table holds them sealed, never in plaintext.
    {
        let conn = open(&app.tenant_file(&tenant));
        let mut stmt = conn
            .prepare("SELECT name, value FROM secrets")
            .expect("prepare secrets");
        let rows: Vec<(String, Vec<u8>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query secrets")
            .collect::<Result<_, _>>()
            .expect("read secrets");
        let names: BTreeSet<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        for name in [
            "consumer_key",
            "consumer_secret",
            "passkey",
            "initiator_password",
        ] {
            assert!(names.contains(name), "secret {name} is stored: {names:?}");
        }
        for (name, value) in &rows {
            for secret in secrets {
                assert!(
                    !contains(value, secret),
                    "secret row {name} holds a plaintext secret"
                );
            }
        }
        let settings: String = conn
            .query_row(
                "SELECT environment || shortcode || initiator_name || COALESCE(base_url, '') FROM mpesa_settings",
                [],
                |r| r.get(0),
            )
            .expect("settings row");
        for secret in secrets {
            assert!(!settings.contains(secret), "mpesa_settings holds a secret");
        }
    }

    let (status, tested) = app
        .post("/api/v1/mpesa/credentials/test", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["ok"], true, "{tested}");
    assert!(
        tested["expires_in"].as_i64().is_some_and(|s| s > 0),
        "{tested}"
    );

    let pending = push(&app, &owner.auth(), payment("0712345678", json!(10))).await;
    assert_eq!(pending["amount"], 10, "{pending}");
    assert_eq!(pending["phone_number"], "254712345678", "{pending}");
    assert_eq!(pending["kind"], "stk", "{pending}");
    assert_eq!(pending["currency"], "KES", "{pending}");
    let id = pending["id"].as_str().expect("id").to_string();
    let checkout = pending["checkout_request_id"]
        .as_str()
        .expect("checkout")
        .to_string();

    // What the emulator received: one push for this payment, to the tenant's callback URL.
    let recorded = recorded_push(&app, &checkout).await;
    assert_eq!(
        recorded["body"]["BusinessShortCode"],
        json!(174379),
        "{recorded}"
    );
    assert_eq!(recorded["body"]["Amount"], json!(10), "{recorded}");
    assert_eq!(
        recorded["body"]["PhoneNumber"], "254712345678",
        "{recorded}"
    );
    let callback_url = recorded["body"]["CallBackURL"].as_str().expect("url");
    assert!(
        callback_url.starts_with(&format!("{}/callbacks/mpesa/{tenant}/", app.base)),
        "{callback_url}"
    );

    let done = wait_final(&app, &owner.auth(), &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result_code"], "0", "{done}");
    let receipt = done["receipt"].as_str().expect("a receipt").to_string();
    assert!(!receipt.is_empty(), "{done}");
    assert!(done["completed_at"].as_str().is_some(), "{done}");
    // The raw callback is kept and carries the same receipt.
    assert_eq!(
        done["callback"]["Body"]["stkCallback"]["CheckoutRequestID"],
        json!(checkout),
        "{done}"
    );
    let callbacks = wait_for_callbacks(&app, &checkout, 1).await;
    assert!(
        callbacks[0]["raw_body"]
            .as_str()
            .is_some_and(|b| b.contains(&receipt)),
        "{callbacks:?}"
    );
    assert_eq!(callbacks[0]["http_status"], 200, "{callbacks:?}");

    let listed = list(&app, &owner.auth()).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], json!(id));
    assert_eq!(listed[0]["status"], "completed");

    let totals = report_totals(&app, &owner).await;
    assert_eq!(totals["count"], 1, "{totals}");
    assert_eq!(totals["completed"], 1, "{totals}");
    assert_eq!(totals["failed"], 0, "{totals}");
    assert_eq!(totals["pending"], 0, "{totals}");
    assert_eq!(totals["amount_completed"], 10, "{totals}");

    let completed = events(&app, &tenant, "payment.completed");
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(completed[0]["transaction_id"], json!(id));
    assert_eq!(completed[0]["amount"], 10);
    assert_eq!(completed[0]["receipt"], json!(receipt));
    assert!(events(&app, &tenant, "payment.failed").is_empty());

    let conn = open(&app.tenant_file(&tenant));
    let audited: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE channel = 'callback' AND actor_type = 'callback' \
             AND operation = 'mpesa.callback.stk' AND outcome = 'success'",
            [],
            |r| r.get(0),
        )
        .expect("audit query");
    assert_eq!(audited, 1, "one audited callback");
    let pushes: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE operation = 'mpesa.stk-push' AND outcome = 'success' \
             AND actor_id = ?1 AND channel = 'rest'",
            [&owner.user_id],
            |r| r.get(0),
        )
        .expect("audit query");
    assert_eq!(pushes, 1, "one audited push");
}

// ---------------------------------------------------------------------------
// Every emulator outcome

#[tokio::test]
async fn each_emulator_outcome_ends_in_its_status_with_its_result_code() {
    let app = spawn().await;
    let owner = app.register("Mpesa Outcomes").await;
    configure(&app, &owner, credentials()).await;

    // (phone, amount) → (status, result code), by the emulator's default
    // rules and the plugin's mapping (0 completed, 1032 cancelled, 1037
    // timeout, anything else failed).
    let cases = [
        ("0712345678", 1, "failed", "1"),
        ("0712345678", 1032, "cancelled", "1032"),
        ("0712345678", 1037, "timeout", "1037"),
        ("0712345678", 2001, "failed", "2001"),
        ("254708374149", 10, "timeout", "1037"),
        ("0712345678", 25, "completed", "0"),
    ];
    let mut ids = Vec::new();
    for (phone, amount, _, _) in cases {
        let txn = push(&app, &owner.auth(), payment(phone, json!(amount))).await;
        ids.push(txn["id"].as_str().expect("id").to_string());
    }
    for ((phone, amount, status, result), id) in cases.iter().zip(&ids) {
        let txn = wait_final(&app, &owner.auth(), id).await;
        assert_eq!(txn["status"], *status, "{phone} / {amount}: {txn}");
        assert_eq!(txn["result_code"], *result, "{phone} / {amount}: {txn}");
        assert!(
            txn["result_desc"].as_str().is_some_and(|d| !d.is_empty()),
            "{txn}"
        );
        if *status == "completed" {
            assert!(txn["receipt"].as_str().is_some(), "{txn}");
        } else {
            assert_eq!(
                txn["receipt"],
                Value::Null,
                "no receipt without money: {txn}"
            );
            assert_eq!(txn["completed_at"], Value::Null, "{txn}");
        }
    }

    let totals = report_totals(&app, &owner).await;
    assert_eq!(totals["count"], 6, "{totals}");
    assert_eq!(totals["completed"], 1, "{totals}");
    assert_eq!(
        totals["failed"], 5,
        "cancelled and timed out count as failed: {totals}"
    );
    assert_eq!(totals["cancelled"], 1, "{totals}");
    assert_eq!(totals["timeout"], 2, "{totals}");
    assert_eq!(totals["pending"], 0, "{totals}");
    assert_eq!(totals["amount_completed"], 25, "{totals}");
    assert_eq!(totals["success_rate"], json!(0.1667), "{totals}");

    let (status, failed) = app
        .get("/api/v1/mpesa/transactions?status=failed", &owner.auth())
        .await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["transactions"].as_array().map(Vec::len), Some(2));

    assert_eq!(events(&app, &owner.tenant_id, "payment.failed").len(), 5);
    assert_eq!(events(&app, &owner.tenant_id, "payment.completed").len(), 1);
}

// ---------------------------------------------------------------------------
// Idempotency-Key

#[tokio::test]
async fn an_idempotency_key_pushes_once_and_refuses_another_request() {
    let app = spawn().await;
    let owner = app.register("Mpesa Idempotent").await;
    configure(&app, &owner, credentials()).await;
    let body = payment("0712345678", json!(10));
    let keyed = |body: Value, key: &'static str| {
        let app = &app;
        let owner = &owner;
        async move {
            app.call_with(
                Method::POST,
                "/api/v1/mpesa/stk-push",
                &owner.auth(),
                Some(body),
                &[("Idempotency-Key", key)],
            )
            .await
        }
    };

    let (status, first) = keyed(body.clone(), "order-1").await;
    assert_eq!(status, 201, "{first}");
    let id = first["transaction"]["id"].clone();
    let (status, again) = keyed(body.clone(), "order-1").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["transaction"]["id"], id, "the same transaction");
    assert_eq!(
        emu_requests_to(&app, STK_PUSH_PATH).await.len(),
        1,
        "Daraja asked once"
    );

    // The amount given as a string of digits is the same request.
    let mut same = body.clone();
    same["amount"] = json!("10");
    let (status, replay) = keyed(same, "order-1").await;
    assert_eq!(status, 201, "{replay}");
    assert_eq!(replay["transaction"]["id"], id);

    let mut other = body.clone();
    other["amount"] = json!(11);
    let (status, conflict) = keyed(other, "order-1").await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(code(&conflict), "conflict", "{conflict}");
    assert_eq!(emu_requests_to(&app, STK_PUSH_PATH).await.len(), 1);

    // Concurrent retries with a new key still push once.
    let (r1, r2, r3) = tokio::join!(
        keyed(body.clone(), "order-2"),
        keyed(body.clone(), "order-2"),
        keyed(body.clone(), "order-2")
    );
    for (status, answer) in [&r1, &r2, &r3] {
        assert_eq!(*status, 201, "{answer}");
        assert_eq!(
            answer["transaction"]["id"], r1.1["transaction"]["id"],
            "{answer}"
        );
    }
    assert_ne!(r1.1["transaction"]["id"], id);
    assert_eq!(emu_requests_to(&app, STK_PUSH_PATH).await.len(), 2);

    // Without a key, each call is a new payment.
    push(&app, &owner.auth(), body.clone()).await;
    push(&app, &owner.auth(), body).await;
    assert_eq!(emu_requests_to(&app, STK_PUSH_PATH).await.len(), 4);
    assert_eq!(list(&app, &owner.auth()).await.len(), 4);
}

#[tokio::test]
async fn the_daraja_access_token_is_cached_sealed_and_reused() {
    let app = spawn().await;
    let owner = app.register("Mpesa Token Cache").await;
    configure(&app, &owner, credentials()).await;
    completed_payment(&app, &owner.auth(), 10).await;
    completed_payment(&app, &owner.auth(), 11).await;
    let issued = issued_tokens(&app).await;
    // `configure` tests the credentials (one token); both pushes reuse the cache.
    assert_eq!(issued.len(), 1, "{issued:?}");
    let file = app.tenant_file(&owner.tenant_id);
    let mut bytes = std::fs::read(&file).expect("tenant file");
    if let Ok(wal) = std::fs::read(format!("{}-wal", file.display())) {
        bytes.extend(wal);
    }
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(
        !haystack.contains(issued[0].as_str()),
        "the access token is stored in clear"
    );
    let conn = open(&file);
    let sealed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM secrets WHERE name = 'oauth_token'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(sealed, 1);
}
