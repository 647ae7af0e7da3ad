//! Recording API over HTTP and through the library.

use daraja_sim::{CallbackKind, CallbackRecord, DeliveryStatus, RequestRecord};
use reqwest::Method;
use serde_json::json;

use crate::common::{Client, PHONE, Receiver, push, slow_sim};

#[tokio::test]
async fn requests_and_callbacks_are_recorded() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let id = push(&c, PHONE, 10, &rx.url("/rec")).await;
    c.flush().await;
    rx.wait_for("/rec", 1).await;

    let (status, v) = c.control(Method::GET, "/simulator/requests", None).await;
    assert_eq!(status, 200);
    let reqs: Vec<RequestRecord> = serde_json::from_value(v).expect("requests");
    assert_eq!(
        reqs.len(),
        2,
        "token + push (control calls are not recorded): {reqs:?}"
    );
    assert_eq!(reqs[0].path, "/oauth/v1/generate");
    assert_eq!(
        reqs[0].query.as_deref(),
        Some("grant_type=client_credentials")
    );
    let p = &reqs[1];
    assert_eq!(p.method, "POST");
    assert_eq!(p.path, "/mpesa/stkpush/v1/processrequest");
    assert!(p.headers["authorization"].starts_with("Bearer "));
    assert_eq!(p.headers["content-type"], "application/json");
    assert_eq!(p.body.as_ref().expect("body")["PhoneNumber"], PHONE);
    assert_eq!(p.status, 200);
    assert_eq!(
        p.response.as_ref().expect("response")["CheckoutRequestID"],
        id.as_str()
    );
    assert_eq!(reqs, sim.requests(), "library view matches HTTP view");

    let (_, v) = c.control(Method::GET, "/simulator/callbacks", None).await;
    let cbs: Vec<CallbackRecord> = serde_json::from_value(v).expect("callbacks");
    assert_eq!(cbs.len(), 1);
    let cb = &cbs[0];
    assert_eq!(cb.kind, CallbackKind::Stk);
    assert_eq!(cb.url, rx.url("/rec"));
    assert_eq!(cb.transaction, id);
    assert_eq!(cb.business_short_code, "174379");
    assert_eq!(cb.delivery, DeliveryStatus::Delivered);
    assert_eq!(cb.http_status, Some(200));
    assert_eq!(cb.attempt, 1);
    assert_eq!(
        cb.body["Body"]["stkCallback"]["CheckoutRequestID"],
        id.as_str()
    );
    assert_eq!(cbs, sim.callbacks());

    // Failed deliveries are recorded and not retried.
    push(&c, PHONE, 10, "http://127.0.0.1:9/unreachable").await;
    c.flush().await;
    let failed: Vec<_> = sim
        .callbacks()
        .into_iter()
        .filter(|c| c.delivery == DeliveryStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].error.is_some());

    let (status, _) = c.control(Method::DELETE, "/simulator/records", None).await;
    assert_eq!(status, 204);
    assert!(sim.requests().is_empty());
    assert!(sim.callbacks().is_empty());

    let (_, v) = c
        .control(Method::GET, "/simulator/transactions", None)
        .await;
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    let (_, v) = c.control(Method::GET, "/simulator/faults", None).await;
    assert_eq!(v["query_pending_shape"], json!("modern"));
}

#[tokio::test]
async fn certificate_endpoint_serves_pem() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let (status, v) = c.control(Method::GET, "/simulator/certificate", None).await;
    assert_eq!(status, 200);
    let pem = v.as_str().expect("pem text");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(pem, sim.certificate_pem());
    let key = daraja_sim::certificate_public_key(pem).expect("rsa key");
    assert_eq!(rsa::traits::PublicKeyParts::size(&key), 256, "RSA-2048");
}
