//! The faults that act on every Daraja request: `response_delay_ms`,
//! `http_500_burst` and `quota_violation` (`500.003.03`).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Client, PHONE, slow_sim, stk_body};

const PUSH: &str = "/mpesa/stkpush/v1/processrequest";

#[tokio::test]
async fn response_delay_holds_the_answer_of_a_processed_request() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let set = c.faults(json!({"response_delay_ms": 600})).await;
    assert_eq!(set["response_delay_ms"], json!(600), "{set}");
    let started = Instant::now();
    let (status, v) = c
        .post(PUSH, &stk_body(PHONE, json!(10), "https://example.com/cb"))
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "the answer waited {:?}",
        started.elapsed()
    );
    let checkout = v["CheckoutRequestID"].as_str().expect("CheckoutRequestID");
    assert!(
        sim.handle().transactions().iter().any(|t| t.id == checkout),
        "the delayed request was processed"
    );
    c.faults(json!({})).await;
    let started = Instant::now();
    let (status, _) = c
        .post(PUSH, &stk_body(PHONE, json!(10), "https://example.com/cb"))
        .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_millis(600));
}

#[tokio::test]
async fn http_500_burst_fails_the_next_n_requests_only() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let before = sim.handle().transactions().len();
    c.faults(json!({"http_500_burst": 2})).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, v) = c
            .post(PUSH, &stk_body(PHONE, json!(10), "https://example.com/cb"))
            .await;
        if status == 500 {
            assert_eq!(v["errorCode"], "500.001.1001", "{v}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(
        sim.handle().transactions().len(),
        before + 1,
        "failed requests were not processed"
    );
}

#[tokio::test]
async fn quota_violation_answers_500_003_03() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    c.faults(json!({"quota_violation": true})).await;
    let (status, v) = c
        .post(PUSH, &stk_body(PHONE, json!(10), "https://example.com/cb"))
        .await;
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["errorCode"], "500.003.03");
    assert_eq!(v["errorMessage"], "Error Occurred: Quota Violation");
    c.faults(json!({})).await;
    let (status, _) = c
        .post(PUSH, &stk_body(PHONE, json!(10), "https://example.com/cb"))
        .await;
    assert_eq!(status, 200);
}
