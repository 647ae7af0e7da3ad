//! M-Pesa Express: push validation, callbacks, query shapes, outcomes and fault modes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{
    Client, PASSKEY, PHONE, Receiver, is_receipt, item, password, push, sim, slow_sim, stk_body,
    stk_query_body, timestamp,
};

const PUSH: &str = "/mpesa/stkpush/v1/processrequest";
const QUERY: &str = "/mpesa/stkpushquery/v1/query";

#[tokio::test]
async fn push_success_sync_shape_and_callback() {
    let sim = sim(|_| {}).await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let (status, v) = c
        .post(
            PUSH,
            &stk_body(PHONE, json!("100"), &rx.url("/cb/stk/tenant-1")),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["ResponseCode"],
        json!("0"),
        "ResponseCode is the string \"0\""
    );
    assert_eq!(
        v["ResponseDescription"],
        "Success. Request accepted for processing"
    );
    assert_eq!(
        v["CustomerMessage"],
        "Success. Request accepted for processing"
    );
    let checkout = v["CheckoutRequestID"].as_str().expect("checkout");
    assert!(checkout.starts_with("ws_CO_"), "{checkout}");
    assert!(
        checkout.ends_with(&PHONE[3..]),
        "{checkout} ends with the MSISDN's last 9 digits"
    );
    let merchant = v["MerchantRequestID"].as_str().expect("merchant");
    assert!(!merchant.is_empty());

    let hits = rx.wait_for("/cb/stk/tenant-1", 1).await;
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(
        hit.headers["content-type"],
        "application/json;charset=UTF-8"
    );
    assert_eq!(hit.headers["businessshortcode"], "174379");
    let cb = &hit.json["Body"]["stkCallback"];
    assert_eq!(cb["MerchantRequestID"], merchant);
    assert_eq!(cb["CheckoutRequestID"], checkout);
    assert_eq!(
        cb["ResultCode"],
        json!(0),
        "callback ResultCode is a number"
    );
    assert_eq!(
        cb["ResultDesc"],
        "The service request is processed successfully."
    );
    let names: Vec<&str> = cb["CallbackMetadata"]["Item"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["Name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "Amount",
            "MpesaReceiptNumber",
            "TransactionDate",
            "PhoneNumber"
        ]
    );
    assert!(
        hit.raw.contains(r#"{"Name":"Amount","Value":100.00}"#),
        "amount as 100.00: {}",
        hit.raw
    );
    assert!(is_receipt(
        item(&hit.json, "MpesaReceiptNumber")
            .as_str()
            .expect("receipt")
    ));
    let date = item(&hit.json, "TransactionDate")
        .as_u64()
        .expect("TransactionDate is a number");
    assert_eq!(date.to_string().len(), 14);
    assert_eq!(
        item(&hit.json, "PhoneNumber").as_u64(),
        Some(254_712_345_678)
    );
    // The body carries nothing the caller chose.
    assert!(!hit.raw.contains("INV-001"));
}

#[tokio::test]
async fn wrong_password_is_merchant_validate_error() {
    let sim = sim(|_| {}).await;
    let c = Client::new(&sim).await;
    let mut body = stk_body(PHONE, json!(10), "https://example.com/cb");
    body["Password"] = json!(password(
        "174379",
        "not-the-passkey",
        body["Timestamp"].as_str().expect("ts")
    ));
    let (status, v) = c.post(PUSH, &body).await;
    assert_eq!(status, 500);
    assert_eq!(v["errorCode"], "500.001.1001");
    assert_eq!(v["errorMessage"], "[MerchantValidate] - Wrong credentials");

    // Timestamp inside the password differs from the Timestamp field.
    let mut body = stk_body(PHONE, json!(10), "https://example.com/cb");
    body["Password"] = json!(password("174379", PASSKEY, "20200101000000"));
    let (status, v) = c.post(PUSH, &body).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (500, Some("[MerchantValidate] - Wrong credentials"))
    );

    // Missing password.
    let mut body = stk_body(PHONE, json!(10), "https://example.com/cb");
    body.as_object_mut().expect("obj").remove("Password");
    let (status, v) = c.post(PUSH, &body).await;
    assert_eq!(
        (status, v["errorCode"].as_str()),
        (500, Some("500.001.1001"))
    );
}

#[tokio::test]
async fn field_validation_errors() {
    let sim = sim(|_| {}).await;
    let c = Client::new(&sim).await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("BusinessShortCode", json!("abc"), "BusinessShortCode"),
        ("Amount", json!(0), "Amount"),
        ("Amount", json!(1.5), "Amount"),
        ("Amount", json!("250001"), "Amount"),
        ("Amount", json!("ten"), "Amount"),
        ("PhoneNumber", json!("0712345678"), "PhoneNumber"),
        ("PhoneNumber", json!("254612345678"), "PhoneNumber"),
        ("PartyA", json!("12345"), "PartyA"),
        ("PartyB", json!("x"), "PartyB"),
        ("CallBackURL", json!("not a url"), "CallBackURL"),
        (
            "CallBackURL",
            json!("https://Example.com/cb"),
            "CallBackURL",
        ),
        (
            "TransactionType",
            json!("CustomerPayBill"),
            "TransactionType",
        ),
        ("Timestamp", json!("2021"), "Timestamp"),
        ("Timestamp", json!("20211399000000"), "Timestamp"),
        (
            "AccountReference",
            json!("THIRTEEN-CHAR"),
            "AccountReference",
        ),
        ("AccountReference", Value::Null, "AccountReference"),
    ];
    for (field, value, reported) in cases {
        let mut body = stk_body(PHONE, json!(10), "https://example.com/cb");
        body[field] = value.clone();
        let (status, v) = c.post(PUSH, &body).await;
        assert_eq!(status, 400, "{field}={value}: {v}");
        assert_eq!(v["errorCode"], "400.002.02", "{field}={value}");
        assert_eq!(
            v["errorMessage"],
            format!("Bad Request - Invalid {reported}"),
            "{field}={value}"
        );
    }

    // Malformed JSON.
    let (status, v) = c
        .post_raw(PUSH, "{\"BusinessShortCode\": 174379,", "application/json")
        .await;
    assert_eq!((status, v["errorCode"].as_str()), (400, Some("400.002.05")));
    assert_eq!(v["errorMessage"], "Invalid Request Payload");

    // Wrong content type: the body is not read, the first field is reported.
    let body = stk_body(PHONE, json!(10), "https://example.com/cb").to_string();
    let (status, v) = c.post_raw(PUSH, &body, "text/plain").await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (400, Some("Bad Request - Invalid BusinessShortCode"))
    );

    // Numbers accepted as strings and strings as numbers; TransactionDesc optional and not length-checked.
    let mut body = stk_body(PHONE, json!("10"), "https://example.com/cb");
    body["BusinessShortCode"] = json!("174379");
    body["PhoneNumber"] = json!(254_712_345_678u64);
    body["PartyB"] = json!(174_379);
    body["TransactionDesc"] = json!("A description longer than thirteen");
    let (status, v) = c.post(PUSH, &body).await;
    assert_eq!(status, 200, "{v}");
    body.as_object_mut().expect("obj").remove("TransactionDesc");
    body["Amount"] = json!(10.0);
    let (status, v) = c.post(PUSH, &body).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn special_amounts_and_test_msisdn_fail_without_metadata() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let cases = [
        (
            PHONE,
            1u64,
            1i64,
            "The balance is insufficient for the transaction.",
        ),
        (PHONE, 1032, 1032, "Request cancelled by user"),
        (PHONE, 1037, 1037, "No response from user."),
        (PHONE, 2001, 2001, "The initiator information is invalid."),
        ("254708374149", 10, 1037, "No response from user."),
    ];
    let mut pushed = Vec::new();
    for (i, (phone, amount, _, _)) in cases.iter().enumerate() {
        pushed.push(push(&c, phone, *amount, &rx.url(&format!("/cb/{i}"))).await);
    }
    c.flush().await;
    for (i, (_, amount, code, desc)) in cases.iter().enumerate() {
        let hits = rx.wait_for(&format!("/cb/{i}"), 1).await;
        let cb = &hits[0].json["Body"]["stkCallback"];
        assert_eq!(cb["CheckoutRequestID"], pushed[i].as_str());
        assert_eq!(cb["ResultCode"], json!(code), "amount {amount}");
        assert_eq!(cb["ResultDesc"], *desc, "amount {amount}");
        assert!(
            cb.get("CallbackMetadata").is_none(),
            "no CallbackMetadata key on failure: {}",
            hits[0].raw
        );
    }
}

#[tokio::test]
async fn query_pending_shapes_and_completion() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let ok = push(&c, PHONE, 10, &rx.url("/cb/ok")).await;
    let cancelled = push(&c, PHONE, 1032, &rx.url("/cb/cancel")).await;

    // Modern (default): HTTP 200 with ResultCode "4999".
    let (status, v) = c.post(QUERY, &stk_query_body(&ok)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ResultCode"], json!("4999"));
    assert_eq!(v["ResultDesc"], "The transaction is still under processing");

    // Classic: HTTP 500 with the CheckoutRequestID as requestId.
    c.faults(json!({"query_pending_shape": "classic"})).await;
    let (status, v) = c.post(QUERY, &stk_query_body(&ok)).await;
    assert_eq!(status, 500);
    assert_eq!(v["requestId"], ok.as_str());
    assert_eq!(v["errorCode"], "500.001.1001");
    assert_eq!(v["errorMessage"], "The transaction is being processed");

    c.flush().await;
    let (status, v) = c.post(QUERY, &stk_query_body(&ok)).await;
    assert_eq!(status, 200);
    assert_eq!(v["ResponseCode"], json!("0"));
    assert_eq!(
        v["ResponseDescription"],
        "The service request has been accepted successsfully"
    );
    assert_eq!(v["CheckoutRequestID"], ok.as_str());
    assert!(v["MerchantRequestID"].as_str().is_some());
    assert_eq!(v["ResultCode"], json!("0"), "query ResultCode is a string");
    assert_eq!(
        v["ResultDesc"],
        "The service request is processed successfully."
    );

    let (_, v) = c.post(QUERY, &stk_query_body(&cancelled)).await;
    assert_eq!(v["ResultCode"], json!("1032"));
    assert_eq!(v["ResultDesc"], "Request Cancelled by user.");

    let (status, v) = c
        .post(QUERY, &stk_query_body("ws_CO_000000000000000000000000"))
        .await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (500, Some("The transaction does not Exist"))
    );

    // Same password rule as the push.
    let mut bad = stk_query_body(&ok);
    bad["Password"] = json!(password("174379", PASSKEY, "20200101000000"));
    let (status, v) = c.post(QUERY, &bad).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (500, Some("[MerchantValidate] - Wrong credentials"))
    );
}

#[tokio::test]
async fn duplicate_callback_fault() {
    let sim = sim(|_| {}).await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    c.faults(json!({"duplicate_callback": true})).await;
    push(&c, PHONE, 10, &rx.url("/cb/dup")).await;
    let hits = rx.wait_for("/cb/dup", 2).await;
    assert_eq!(hits[0].raw, hits[1].raw, "identical bodies");
}

#[tokio::test]
async fn no_callback_fault_completes_silently() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    c.faults(json!({"no_callback": true})).await;
    let id = push(&c, PHONE, 10, &rx.url("/cb/none")).await;
    let fired = c.flush().await;
    assert_eq!(fired["fired"], json!([id.clone()]));
    assert!(
        rx.hits("/cb/none").is_empty(),
        "flush waits for deliveries, so nothing was sent"
    );
    let cbs = sim.callbacks();
    assert_eq!(cbs.len(), 1);
    assert_eq!(cbs[0].delivery, daraja_sim::DeliveryStatus::Suppressed);
    // The transaction still completed: reconcile via query.
    let (_, v) = c.post(QUERY, &stk_query_body(&id)).await;
    assert_eq!(v["ResultCode"], json!("0"));
}

#[tokio::test]
async fn callback_before_response_fault() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    c.faults(json!({"callback_before_response": true})).await;
    let id = push(&c, PHONE, 10, &rx.url("/cb/early")).await;
    // No waiting: the callback was delivered before the push answered.
    let hits = rx.hits("/cb/early");
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].json["Body"]["stkCallback"]["CheckoutRequestID"],
        id.as_str()
    );
    let cb = &sim.callbacks()[0];
    let req = sim
        .requests()
        .into_iter()
        .find(|r| r.path == PUSH)
        .expect("push recorded");
    assert!(cb.seq > req.seq, "the request was received first");
}

#[tokio::test]
async fn flaky_query_alternates() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let id = push(&c, PHONE, 10, "https://example.invalid/cb").await;
    c.flush().await;
    c.faults(json!({"flaky_query": true})).await;
    let statuses = {
        let mut s = Vec::new();
        for _ in 0..4 {
            let (status, v) = c.post(QUERY, &stk_query_body(&id)).await;
            if status == 500 {
                assert_eq!(v["errorCode"], "500.001.1001");
            } else {
                assert_eq!(v["ResultCode"], json!("0"));
            }
            s.push(status);
        }
        s
    };
    assert_eq!(statuses, [500, 200, 500, 200]);
    c.faults(json!({})).await;
    let (status, _) = c.post(QUERY, &stk_query_body(&id)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn spike_arrest_fault() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    c.faults(json!({"spike_arrest": 1})).await;
    let mut errors = Vec::new();
    for _ in 0..3 {
        let (status, v) = c
            .post(PUSH, &stk_body(PHONE, json!(10), "https://example.com/cb"))
            .await;
        if status != 200 {
            errors.push((status, v));
        }
    }
    assert!(
        !errors.is_empty(),
        "at least one request over 1 TPS is rejected"
    );
    for (status, v) in errors {
        assert_eq!(status, 500);
        assert_eq!(v["errorCode"], "500.003.02");
        assert_eq!(v["errorMessage"], "Error Occurred: Spike Arrest Violation");
    }
}

#[tokio::test]
async fn token_invalidation_fault() {
    let sim = slow_sim().await;
    let mut c = Client::new(&sim).await;
    push(&c, PHONE, 10, "https://example.com/cb").await;
    let v = c.faults(json!({"invalidate_tokens": true})).await;
    assert_eq!(v["invalidated_tokens"], json!(1));
    let (status, v) = c
        .post(PUSH, &stk_body(PHONE, json!(10), "https://example.com/cb"))
        .await;
    assert_eq!((status, v["errorCode"].as_str()), (404, Some("404.001.03")));
    let (status, v) = c.post("/mpesa/b2c/v3/paymentrequest", &json!({})).await;
    assert_eq!((status, v["errorCode"].as_str()), (401, Some("401.002.01")));
    // A fresh token works again.
    c.token = crate::common::token(&c.base, "test-key", "test-secret").await;
    push(&c, PHONE, 10, "https://example.com/cb").await;
    // Library API too.
    assert_eq!(sim.handle().invalidate_tokens(), 1);
}

#[tokio::test]
async fn control_api_outcomes() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let phone = "254711000111";

    // Before the request: a phone rule used once.
    let (status, v) = c
        .control(
            Method::POST,
            "/simulator/outcomes",
            Some(json!({"phone_number": phone, "result_code": 1032, "times": 1})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["rule_stored"], json!(true));
    let first = push(&c, phone, 10, &rx.url("/cb/a")).await;
    let second = push(&c, phone, 10, &rx.url("/cb/b")).await;

    // After the request, while pending: by CheckoutRequestID.
    let (status, v) = c
        .control(
            Method::POST,
            "/simulator/outcomes",
            Some(json!({"checkout_request_id": second, "result_code": "2001"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["applied_to"], json!([second.clone()]));
    c.flush().await;
    assert_eq!(
        rx.wait_for("/cb/a", 1).await[0].json["Body"]["stkCallback"]["ResultCode"],
        json!(1032)
    );
    assert_eq!(
        rx.wait_for("/cb/b", 1).await[0].json["Body"]["stkCallback"]["ResultCode"],
        json!(2001)
    );

    // Completed transactions cannot change.
    let (status, _) = c
        .control(
            Method::POST,
            "/simulator/outcomes",
            Some(json!({"checkout_request_id": first, "result_code": 0})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = c
        .control(
            Method::POST,
            "/simulator/outcomes",
            Some(json!({"result_code": 0})),
        )
        .await;
    assert_eq!(status, 400);

    // Per-request delay override through the library handle: 0 ms fires without a flush.
    let third = push(&c, PHONE, 10, &rx.url("/cb/c")).await;
    let applied = sim
        .handle()
        .set_outcome(daraja_sim::OutcomeRequest {
            checkout_request_id: Some(third.clone()),
            result_code: Some(daraja_sim::Code::Num(1037)),
            delay_ms: Some(0),
            ..Default::default()
        })
        .expect("set outcome");
    assert_eq!(applied.applied_to, [third]);
    let hits = rx.wait_for("/cb/c", 1).await;
    assert_eq!(
        hits[0].json["Body"]["stkCallback"]["ResultDesc"],
        "No response from user."
    );
}

#[tokio::test]
async fn strict_mode_merchants_and_passkeys() {
    let sim = sim(|c| c.strict = true).await;
    let c = Client::new(&sim).await;
    let ts = timestamp();
    let mut body = stk_body(PHONE, json!(10), "https://example.com/cb");
    body["BusinessShortCode"] = json!("654321");
    body["PartyB"] = json!("654321");
    body["Timestamp"] = json!(ts);
    body["Password"] = json!(password("654321", "my-passkey", &ts));
    let (status, v) = c.post(PUSH, &body).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (500, Some("Merchant does not exist"))
    );

    let (status, _) = c
        .control(
            Method::POST,
            "/simulator/shortcodes",
            Some(json!({"short_code": "654321", "passkey": "my-passkey"})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, v) = c.post(PUSH, &body).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn non_strict_other_shortcodes_use_default_or_registered_passkey() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let ts = timestamp();
    let mut body = stk_body(PHONE, json!(10), "https://example.com/cb");
    body["BusinessShortCode"] = json!("777777");
    body["Timestamp"] = json!(ts);
    body["Password"] = json!(password("777777", PASSKEY, &ts));
    let (status, v) = c.post(PUSH, &body).await;
    assert_eq!(
        status, 200,
        "default passkey applies to unknown shortcodes: {v}"
    );

    sim.handle()
        .register_shortcode("777777", Some("own-passkey"));
    let (status, _) = c.post(PUSH, &body).await;
    assert_eq!(status, 500, "registered passkey now required");
    body["Password"] = json!(password("777777", "own-passkey", &ts));
    let (status, _) = c.post(PUSH, &body).await;
    assert_eq!(status, 200);
}
