//! B2C v1/v3, Account Balance, Transaction Status and Reversal with real SecurityCredentials.

use daraja_sim::Running;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Client, PHONE, Receiver, credential, is_receipt, param, push, sim, slow_sim};

const PASSWORD: &str = "Safaricom999!*!";

fn b2c_body(cred: &str, rx: &Receiver, amount: Value) -> Value {
    json!({
        "InitiatorName": "testapi",
        "SecurityCredential": cred,
        "CommandID": "BusinessPayment",
        "Amount": amount,
        "PartyA": 600992,
        "PartyB": PHONE,
        "Remarks": "Salary advance",
        "QueueTimeOutURL": rx.url("/b2c/timeout"),
        "ResultURL": rx.url("/b2c/result"),
        "Occassion": "ChristmasPay"
    })
}

async fn b2c_result(
    c: &Client,
    rx: &Receiver,
    path: &str,
    body: &Value,
    n: usize,
) -> (Value, Value) {
    let (status, ack) = c.post(path, body).await;
    assert_eq!(status, 200, "{ack}");
    let hits = rx.wait_for("/b2c/result", n).await;
    let hit = hits
        .iter()
        .find(|h| h.json["Result"]["ConversationID"] == ack["ConversationID"])
        .cloned()
        .unwrap_or_else(|| panic!("result for {ack}"));
    (ack, hit.json)
}

#[tokio::test]
async fn b2c_v1_success_with_published_certificate() {
    let sim = sim(|_| {}).await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let cred = credential(&sim, PASSWORD).await;
    assert_eq!(
        cred.len(),
        344,
        "2048-bit key → 256 bytes → 344 base64 chars"
    );
    let (ack, result) = b2c_result(
        &c,
        &rx,
        "/mpesa/b2c/v1/paymentrequest",
        &b2c_body(&cred, &rx, json!("100")),
        1,
    )
    .await;
    assert!(
        ack["ConversationID"]
            .as_str()
            .expect("conv")
            .starts_with("AG_")
    );
    assert!(
        ack["OriginatorConversationID"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(ack["ResponseCode"], json!("0"));
    assert_eq!(
        ack["ResponseDescription"],
        "Accept the service request successfully."
    );

    let r = &result["Result"];
    assert_eq!(r["ResultType"], json!(0));
    assert_eq!(r["ResultCode"], json!(0));
    assert_eq!(
        r["ResultDesc"],
        "The service request is processed successfully."
    );
    assert_eq!(
        r["OriginatorConversationID"],
        ack["OriginatorConversationID"]
    );
    let receipt = r["TransactionID"].as_str().expect("TransactionID");
    assert!(is_receipt(receipt));
    assert_eq!(param(&result, "TransactionAmount"), &json!(100));
    assert_eq!(param(&result, "TransactionReceipt"), receipt);
    assert_eq!(param(&result, "B2CRecipientIsRegisteredCustomer"), "Y");
    assert!(
        param(&result, "ReceiverPartyPublicName")
            .as_str()
            .expect("name")
            .starts_with(PHONE)
    );
    let completed = param(&result, "TransactionCompletedDateTime")
        .as_str()
        .expect("dt");
    assert_eq!(completed.len(), 19, "DD.MM.YYYY HH:mm:ss: {completed}");
    assert_eq!(
        r["ReferenceData"]["ReferenceItem"]["Key"],
        "QueueTimeoutURL"
    );
    let raw = &rx.hits("/b2c/result")[0].raw;
    assert!(
        raw.contains(r#""Key":"B2CUtilityAccountAvailableFunds","Value":"#),
        "{raw}"
    );
    let utility = raw
        .split(r#""B2CUtilityAccountAvailableFunds","Value":"#)
        .nth(1)
        .expect("value");
    let number: String = utility.chars().take_while(|c| *c != '}').collect();
    assert_eq!(
        number.split('.').nth(1).map(str::len),
        Some(2),
        "two decimals: {number}"
    );
}

#[tokio::test]
async fn b2c_v3_echoes_and_rejects_duplicate_originator() {
    let sim = sim(|_| {}).await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let cred = credential(&sim, PASSWORD).await;
    let mut body = b2c_body(&cred, &rx, json!(10));
    body["OriginatorConversationID"] = json!("600997_Test_32et3241ed8yu");
    let (ack, result) = b2c_result(&c, &rx, "/mpesa/b2c/v3/paymentrequest", &body, 1).await;
    assert_eq!(ack["OriginatorConversationID"], "600997_Test_32et3241ed8yu");
    assert_eq!(
        result["Result"]["OriginatorConversationID"],
        "600997_Test_32et3241ed8yu"
    );
    let (status, v) = c.post("/mpesa/b2c/v3/paymentrequest", &body).await;
    assert_eq!(status, 500);
    assert_eq!(v["errorCode"], "500.002.1001");
    assert_eq!(v["errorMessage"], "Duplicate OriginatorConversationID.");
    body.as_object_mut()
        .expect("obj")
        .remove("OriginatorConversationID");
    let (status, v) = c.post("/mpesa/b2c/v3/paymentrequest", &body).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (400, Some("Bad Request - Invalid OriginatorConversationID"))
    );
}

#[tokio::test]
async fn b2c_wrong_password_is_async_2001() {
    let sim = sim(|_| {}).await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let cred = credential(&sim, "Safcom496!").await;
    let (_, result) = b2c_result(
        &c,
        &rx,
        "/mpesa/b2c/v1/paymentrequest",
        &b2c_body(&cred, &rx, json!(100)),
        1,
    )
    .await;
    assert_eq!(result["Result"]["ResultCode"], json!(2001));
    assert_eq!(
        result["Result"]["ResultDesc"],
        "The initiator information is invalid."
    );
    assert!(result["Result"].get("ResultParameters").is_none());

    // A credential encrypted with another key (Safaricom's real certificate, say) is also 2001.
    let other = daraja_sim::Identity::generate().expect("other key");
    let foreign =
        daraja_sim::security_credential(other.certificate_pem(), PASSWORD).expect("encrypt");
    let (_, result) = b2c_result(
        &c,
        &rx,
        "/mpesa/b2c/v1/paymentrequest",
        &b2c_body(&foreign, &rx, json!(100)),
        2,
    )
    .await;
    assert_eq!(result["Result"]["ResultCode"], json!(2001));

    // Not base64 at all: synchronous error.
    let (status, v) = c
        .post(
            "/mpesa/b2c/v1/paymentrequest",
            &b2c_body("%%%not base64%%%", &rx, json!(100)),
        )
        .await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (400, Some("Bad Request - Invalid SecurityCredential"))
    );
}

#[tokio::test]
async fn b2c_lenient_mode_accepts_any_base64() {
    let sim = sim(|c| c.lenient_credentials = true).await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let (_, result) = b2c_result(
        &c,
        &rx,
        "/mpesa/b2c/v1/paymentrequest",
        &b2c_body("c29tZXRoaW5nIGVsc2U=", &rx, json!(100)),
        1,
    )
    .await;
    assert_eq!(result["Result"]["ResultCode"], json!(0));
}

#[tokio::test]
async fn b2c_validation_limits_and_queue_timeout() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let cred = credential(&sim, PASSWORD).await;

    for (field, value) in [
        ("CommandID", json!("Salary")),
        ("PartyB", json!("0712345678")),
        ("Remarks", json!("x")),
    ] {
        let mut body = b2c_body(&cred, &rx, json!(100));
        body[field] = value;
        let (status, v) = c.post("/mpesa/b2c/v1/paymentrequest", &body).await;
        assert_eq!(
            (status, v["errorMessage"].as_str()),
            (400, Some(&*format!("Bad Request - Invalid {field}")))
        );
    }

    // Below the B2C minimum: accepted, then ResultCode 2.
    let (status, _) = c
        .post(
            "/mpesa/b2c/v1/paymentrequest",
            &b2c_body(&cred, &rx, json!(5)),
        )
        .await;
    assert_eq!(status, 200);

    // A queue timeout chosen before the request (v3 id known in advance).
    let (status, v) = c
        .control(
            Method::POST,
            "/simulator/outcomes",
            Some(
                json!({"originator_conversation_id": "ocid-timeout-1", "action": "queue_timeout"}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["registered_ids"], json!(["ocid-timeout-1"]));
    let mut body = b2c_body(&cred, &rx, json!(100));
    body["OriginatorConversationID"] = json!("ocid-timeout-1");
    let (status, _) = c.post("/mpesa/b2c/v3/paymentrequest", &body).await;
    assert_eq!(status, 200);

    c.flush().await;
    let results = rx.hits("/b2c/result");
    assert_eq!(
        results.len(),
        1,
        "only the below-minimum payment reports to ResultURL"
    );
    assert_eq!(results[0].json["Result"]["ResultCode"], json!(2));
    let timeouts = rx.hits("/b2c/timeout");
    assert_eq!(timeouts.len(), 1);
    assert_eq!(
        timeouts[0].json["Result"]["OriginatorConversationID"],
        "ocid-timeout-1"
    );
}

fn initiator_body(cred: &str, rx: &Receiver, command: &str) -> Value {
    json!({
        "Initiator": "testapi",
        "SecurityCredential": cred,
        "CommandID": command,
        "PartyA": "600992",
        "IdentifierType": "4",
        "Remarks": "ok",
        "QueueTimeOutURL": rx.url("/q"),
        "ResultURL": rx.url("/r"),
    })
}

async fn b2c_receipt(sim: &Running, c: &Client, rx: &Receiver, cred: &str) -> String {
    let (_, result) = b2c_result(
        c,
        rx,
        "/mpesa/b2c/v1/paymentrequest",
        &b2c_body(cred, rx, json!(300)),
        1,
    )
    .await;
    let _ = sim;
    result["Result"]["TransactionID"]
        .as_str()
        .expect("receipt")
        .to_owned()
}

#[tokio::test]
async fn account_balance_result() {
    let sim = sim(|_| {}).await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let cred = credential(&sim, PASSWORD).await;
    let (status, ack) = c
        .post(
            "/mpesa/accountbalance/v1/query",
            &initiator_body(&cred, &rx, "AccountBalance"),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        ack["ResponseDescription"],
        "Accept the service request successfully"
    );
    let hit = &rx.wait_for("/r", 1).await[0];
    let r = &hit.json["Result"];
    assert_eq!(
        r["ResultCode"],
        json!("0"),
        "balance sample uses string codes"
    );
    assert_eq!(r["ResultType"], json!("0"));
    assert_eq!(r["ConversationID"], ack["ConversationID"]);
    assert!(
        r["TransactionID"]
            .as_str()
            .expect("tid")
            .ends_with("0000000")
    );
    let balance = param(&hit.json, "AccountBalance")
        .as_str()
        .expect("balance");
    let accounts: Vec<&str> = balance
        .split('&')
        .map(|a| a.split('|').next().unwrap_or(""))
        .collect();
    assert_eq!(
        accounts,
        [
            "Working Account",
            "Float Account",
            "Utility Account",
            "Charges Paid Account",
            "Organization Settlement Account"
        ]
    );
    assert!(balance.split('&').all(|a| a.split('|').count() == 6));
    assert_eq!(
        param(&hit.json, "BOCompletedTime").as_str().map(str::len),
        Some(14)
    );
    assert_eq!(
        r["ReferenceData"]["ReferenceItem"]["Value"],
        "https://internalsandbox.safaricom.co.ke/mpesa/abresults/v1/submit"
    );

    let mut bad = initiator_body(&cred, &rx, "AccountBalance");
    bad["IdentifierType"] = json!("9");
    let (status, v) = c.post("/mpesa/accountbalance/v1/query", &bad).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (400, Some("Bad Request - Invalid IdentifierType"))
    );
}

#[tokio::test]
async fn transaction_status_known_and_unknown() {
    let sim = sim(|_| {}).await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let cred = credential(&sim, PASSWORD).await;
    let receipt = b2c_receipt(&sim, &c, &rx, &cred).await;

    let mut body = initiator_body(&cred, &rx, "TransactionStatusQuery");
    body["TransactionID"] = json!(receipt);
    body["Occasion"] = json!("audit");
    let (status, ack) = c.post("/mpesa/transactionstatus/v1/query", &body).await;
    assert_eq!(status, 200, "{ack}");
    let hit = &rx.wait_for("/r", 1).await[0];
    assert_eq!(hit.json["Result"]["ResultCode"], json!(0));
    assert_eq!(param(&hit.json, "ReceiptNo"), receipt.as_str());
    assert_eq!(param(&hit.json, "TransactionStatus"), "Completed");
    assert_eq!(param(&hit.json, "Amount"), "300");
    assert_eq!(
        hit.json["Result"]["ReferenceData"]["ReferenceItem"],
        json!({"Key": "Occasion", "Value": "audit"})
    );

    body["TransactionID"] = json!("UAA0AAAAAA");
    c.post("/mpesa/transactionstatus/v1/query", &body).await;
    let hits = rx.wait_for("/r", 2).await;
    assert_eq!(hits[1].json["Result"]["ResultCode"], json!(2032));
    assert!(hits[1].json["Result"].get("ResultParameters").is_none());

    body["TransactionID"] = json!("lowercase1");
    let (status, v) = c.post("/mpesa/transactionstatus/v1/query", &body).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (400, Some("Bad Request - Invalid TransactionID"))
    );
}

#[tokio::test]
async fn reversal_of_stk_payment() {
    let sim = slow_sim().await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let cred = credential(&sim, PASSWORD).await;
    push(&c, PHONE, 50, &rx.url("/stk")).await;
    c.flush().await;
    let stk = &rx.wait_for("/stk", 1).await[0];
    let receipt = crate::common::item(&stk.json, "MpesaReceiptNumber")
        .as_str()
        .expect("receipt")
        .to_owned();

    let body = json!({
        "Initiator": "testapi",
        "SecurityCredential": cred,
        "CommandID": "TransactionReversal",
        "TransactionID": receipt,
        "Amount": "50",
        "ReceiverParty": "174379",
        "RecieverIdentifierType": "11",
        "ResultURL": rx.url("/rev"),
        "QueueTimeOutURL": rx.url("/revq"),
        "Remarks": "Payment reversal"
    });
    let (status, ack) = c.post("/mpesa/reversal/v1/request", &body).await;
    assert_eq!(status, 200, "{ack}");
    c.flush().await;
    let hit = &rx.wait_for("/rev", 1).await[0];
    assert_eq!(hit.json["Result"]["ResultCode"], json!(0));
    assert_eq!(param(&hit.json, "OriginalTransactionID"), receipt.as_str());
    assert!(
        hit.raw.contains(r#"{"Key":"Amount","Value":50.00}"#),
        "{}",
        hit.raw
    );
    assert!(hit.raw.contains(r#"{"Key":"Charge","Value":0.00}"#));
    assert_eq!(
        param(&hit.json, "TransCompletedTime")
            .as_u64()
            .map(|t| t.to_string().len()),
        Some(14)
    );

    // Second reversal of the same receipt.
    c.post("/mpesa/reversal/v1/request", &body).await;
    c.flush().await;
    let hits = rx.wait_for("/rev", 2).await;
    assert_eq!(hits[1].json["Result"]["ResultCode"], json!("R000001"));
    assert!(
        hits[1].json["Result"]["TransactionID"]
            .as_str()
            .expect("tid")
            .ends_with("0000000")
    );

    // Unknown receipt.
    let mut unknown = body.clone();
    unknown["TransactionID"] = json!("UAB1234567");
    c.post("/mpesa/reversal/v1/request", &unknown).await;
    c.flush().await;
    let hits = rx.wait_for("/rev", 3).await;
    assert_eq!(hits[2].json["Result"]["ResultCode"], json!("R000002"));
    assert_eq!(
        hits[2].json["Result"]["ResultDesc"],
        "The OriginalTransactionID is invalid."
    );

    // The correct spelling is not the contract.
    let mut spelled = body.clone();
    let obj = spelled.as_object_mut().expect("obj");
    obj.remove("RecieverIdentifierType");
    obj.insert("ReceiverIdentifierType".to_owned(), json!("11"));
    let (status, v) = c.post("/mpesa/reversal/v1/request", &spelled).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (400, Some("Bad Request - Invalid RecieverIdentifierType"))
    );
}

#[tokio::test]
async fn strict_mode_unknown_shortcode_and_initiator() {
    let sim = sim(|c| c.strict = true).await;
    let c = Client::new(&sim).await;
    let rx = Receiver::start().await;
    let cred = credential(&sim, PASSWORD).await;
    // Sandbox B2C shortcode 600992 is known out of the box; 612345 is not.
    let mut body = b2c_body(&cred, &rx, json!(100));
    body["PartyA"] = json!("612345");
    b2c_result(&c, &rx, "/mpesa/b2c/v1/paymentrequest", &body, 1).await;
    // Unknown initiator in strict mode.
    let mut body = b2c_body(&cred, &rx, json!(100));
    body["InitiatorName"] = json!("someone");
    b2c_result(&c, &rx, "/mpesa/b2c/v1/paymentrequest", &body, 2).await;
    c.flush().await;
    let codes: Vec<Value> = rx
        .hits("/b2c/result")
        .iter()
        .map(|h| h.json["Result"]["ResultCode"].clone())
        .collect();
    assert!(codes.contains(&json!(2028)), "{codes:?}");
    assert!(codes.contains(&json!(2001)), "{codes:?}");
}
