//! Bad input to the credentials and STK push operations: refused with
//! the field named, nothing stored, nothing sent to Daraja.

use super::*;
use crate::helpers::code;

async fn assert_refused(
    app: &TestApp,
    session: &Session,
    path: &str,
    method: Method,
    body: Value,
    status: u16,
    field: &str,
) {
    let (got, answer) = app
        .call(method, path, &session.auth(), Some(body.clone()))
        .await;
    assert_eq!(got, status, "{body} → {answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(field),
        "the error names `{field}`: {body} → {answer}"
    );
    if status == 422 {
        assert_eq!(code(&answer), "validation_failed", "{answer}");
    }
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_stores_nothing() {
    let app = spawn().await;
    let owner = app.register("Mpesa Bad Input").await;
    let tenant = owner.tenant_id.clone();

    // Before credentials: a valid push is a conflict naming the fix.
    let (status, answer) = app
        .post(
            "/api/v1/mpesa/stk-push",
            &owner.auth(),
            payment("0712345678", json!(10)),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(code(&answer), "conflict", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("credentials")),
        "{answer}"
    );
    let (status, answer) = app
        .post("/api/v1/mpesa/credentials/test", &owner.auth(), json!({}))
        .await;
    assert_eq!(status, 409, "{answer}");

    // Bad credentials.
    let creds_path = "/api/v1/mpesa/credentials";
    let mut custom = credentials();
    custom["environment"] = json!("custom");
    assert_refused(
        &app,
        &owner,
        creds_path,
        Method::PUT,
        custom,
        422,
        "base_url",
    )
    .await;
    let mut with_url = credentials();
    with_url["base_url"] = json!("http://127.0.0.1:1");
    assert_refused(
        &app,
        &owner,
        creds_path,
        Method::PUT,
        with_url,
        422,
        "base_url",
    )
    .await;
    let mut bad_url = credentials();
    bad_url["environment"] = json!("custom");
    bad_url["base_url"] = json!("ftp://example.com");
    assert_refused(
        &app,
        &owner,
        creds_path,
        Method::PUT,
        bad_url,
        422,
        "base_url",
    )
    .await;
    let mut bad_env = credentials();
    bad_env["environment"] = json!("staging");
    assert_refused(
        &app,
        &owner,
        creds_path,
        Method::PUT,
        bad_env,
        422,
        "environment",
    )
    .await;
    for shortcode in [
        json!("12ab5"),
        json!("1234"),
        json!("12345678"),
        json!(true),
    ] {
        let mut bad = credentials();
        bad["shortcode"] = shortcode;
        assert_refused(&app, &owner, creds_path, Method::PUT, bad, 422, "shortcode").await;
    }
    for field in [
        "consumer_key",
        "consumer_secret",
        "shortcode",
        "passkey",
        "initiator_name",
        "initiator_password",
        "environment",
    ] {
        let mut missing = credentials();
        missing.as_object_mut().expect("object").remove(field);
        assert_refused(&app, &owner, creds_path, Method::PUT, missing, 422, field).await;
        let mut blank = credentials();
        blank[field] = json!("  ");
        let (status, answer) = put_credentials(&app, &owner, blank).await;
        assert_eq!(status, 422, "blank {field}: {answer}");
    }
    let (status, shown) = app.get(creds_path, &owner.auth()).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["configured"], false, "nothing saved: {shown}");
    {
        let conn = open(&app.tenant_file(&tenant));
        let secrets: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM secrets WHERE name NOT LIKE '\\_\\_%' ESCAPE '\\'",
                [],
                |r| r.get(0),
            )
            .expect("count secrets");
        assert_eq!(secrets, 0, "no secret stored by a refused save");
        let settings: i64 = conn
            .query_row("SELECT COUNT(*) FROM mpesa_settings", [], |r| r.get(0))
            .expect("count settings");
        assert_eq!(settings, 0);
    }

    configure(&app, &owner, credentials()).await;
    let push_path = "/api/v1/mpesa/stk-push";
    for phone in [
        json!("12345"),
        json!("0812345678"),
        json!("+15555550123"),
        json!("+0712345678"),
        json!("255712345678"),
        json!("07123456789"),
        json!(""),
        json!("   "),
        json!("07l2345678"),
        json!(12345),
        json!(["0712345678"]),
    ] {
        let mut body = payment("0712345678", json!(10));
        body["phone_number"] = phone;
        assert_refused(
            &app,
            &owner,
            push_path,
            Method::POST,
            body,
            422,
            "phone_number",
        )
        .await;
    }
    for amount in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!(250_001),
        json!("ten"),
        json!("1.5"),
        json!(""),
        json!("-5"),
        json!(true),
        json!(1e20),
    ] {
        let body = payment("0712345678", amount);
        assert_refused(&app, &owner, push_path, Method::POST, body, 422, "amount").await;
    }
    for (field, value) in [
        ("account_reference", "ABCDEFGHIJKLM"),
        ("account_reference", ""),
        ("account_reference", "  "),
        ("description", "ABCDEFGHIJKLMN"),
        ("description", ""),
    ] {
        let mut body = payment("0712345678", json!(10));
        body[field] = json!(value);
        assert_refused(&app, &owner, push_path, Method::POST, body, 422, field).await;
    }
    // (Left out, `account_reference` and `description` take the
    // organization's defaults: tests/api/settings.rs.)
    for field in ["phone_number", "amount"] {
        let mut body = payment("0712345678", json!(10));
        body.as_object_mut().expect("object").remove(field);
        assert_refused(&app, &owner, push_path, Method::POST, body, 422, field).await;
    }
    let mut unknown_store = payment("0712345678", json!(10));
    unknown_store["store_id"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, answer) = app.post(push_path, &owner.auth(), unknown_store).await;
    assert_eq!(status, 404, "{answer}");
    let mut long_key = payment("0712345678", json!(10));
    long_key["idempotency_key"] = json!("x".repeat(300));
    assert_refused(
        &app,
        &owner,
        push_path,
        Method::POST,
        long_key,
        422,
        "idempotency_key",
    )
    .await;

    // Not JSON at all.
    let response = app
        .client
        .post(format!("{}{push_path}", app.base))
        .bearer_auth(&owner.access_token)
        .header("content-type", "application/json")
        .body("{\"phone_number\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 400);

    // Nothing reached Daraja, nothing was stored.
    assert!(emu_requests_to(&app, STK_PUSH_PATH).await.is_empty());
    assert!(list(&app, &owner.auth()).await.is_empty());
    assert_eq!(outbox_count(&app, &tenant), 0);
    let totals = report_totals(&app, &owner).await;
    assert_eq!(totals["count"], 0, "{totals}");
}
