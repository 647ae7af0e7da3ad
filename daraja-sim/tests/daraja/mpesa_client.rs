//! Drives the emulator with a Daraja client nobody on the team wrote: the `mpesa` crate
//! (1.1.0, collinsmuriuki/mpesa-rust) through its `ApiEnvironment` trait, which lets us set the
//! base URL and the certificate used to encrypt the initiator password.
//!
//! The crate caches tokens in a process-wide cache keyed by consumer key, so each test uses its
//! own key. Its `Mpesa` client is `!Sync`, hence current-thread tests.

use daraja_sim::Running;
use mpesa::{ApiEnvironment, CommandId, IdentifierTypes, Mpesa, MpesaError};
use serde_json::json;

use crate::common::{PHONE, Receiver, item, param, slow_sim};

#[derive(Clone)]
struct Emulated {
    base_url: String,
    certificate: String,
}

impl ApiEnvironment for Emulated {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn get_certificate(&self) -> &str {
        &self.certificate
    }
}

fn client(sim: &Running, key: &str) -> Mpesa<Emulated> {
    Mpesa::new(
        key.to_owned(),
        "consumer-secret".to_owned(),
        Emulated {
            base_url: sim.base_url().to_owned(),
            certificate: sim.certificate_pem().to_owned(),
        },
    )
}

#[tokio::test]
async fn mpesa_crate_express_request_and_callback() {
    let sim = slow_sim().await;
    let rx = Receiver::start().await;
    let mpesa = client(&sim, "mpesa-crate-express");
    let callback = rx.url("/mpesa-crate/stk");
    let response = mpesa
        .express_request("174379")
        .phone_number(PHONE)
        .amount(10)
        .callback_url(&callback)
        .account_ref("INV-9")
        .transaction_desc("Order 9")
        .send()
        .await
        .expect("express request accepted");
    assert_eq!(response.response_code, "0");
    assert!(response.checkout_request_id.starts_with("ws_CO_"));
    sim.handle().flush_callbacks().await;
    let hit = &rx.wait_for("/mpesa-crate/stk", 1).await[0];
    assert_eq!(
        hit.json["Body"]["stkCallback"]["CheckoutRequestID"],
        response.checkout_request_id.as_str()
    );
    assert_eq!(item(&hit.json, "PhoneNumber"), &json!(254_712_345_678u64));

    // The crate's wrong-passkey path surfaces Daraja's error envelope.
    let err = mpesa
        .express_request("174379")
        .pass_key("wrong")
        .phone_number(PHONE)
        .amount(10)
        .callback_url(&callback)
        .send()
        .await
        .expect_err("wrong passkey");
    match err {
        MpesaError::MpesaExpressRequestError(e) => {
            assert_eq!(e.error_code, "500.001.1001");
            assert_eq!(e.error_message, "[MerchantValidate] - Wrong credentials");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn mpesa_crate_b2c_encrypts_with_our_certificate() {
    let sim = slow_sim().await;
    let rx = Receiver::start().await;
    let mpesa = client(&sim, "mpesa-crate-b2c");
    let result_url = rx.url("/mpesa-crate/b2c");
    let timeout_url = rx.url("/mpesa-crate/b2c-timeout");

    // mpesa-rust's built-in default initiator password is an older one ("Safcom496!"): 2001.
    let ack = mpesa
        .b2c("testapi")
        .party_a("600992")
        .party_b(PHONE)
        .amount(100)
        .result_url(&result_url)
        .timeout_url(&timeout_url)
        .send()
        .await
        .expect("b2c accepted");
    assert_eq!(ack.response_code, "0");
    sim.handle().flush_callbacks().await;
    let hit = &rx.wait_for("/mpesa-crate/b2c", 1).await[0];
    assert_eq!(hit.json["Result"]["ResultCode"], json!(2001));

    mpesa.set_initiator_password("Safaricom999!*!");
    let ack = mpesa
        .b2c("testapi")
        .command_id(CommandId::SalaryPayment)
        .party_a("600992")
        .party_b(PHONE)
        .amount(100)
        .result_url(&result_url)
        .timeout_url(&timeout_url)
        .send()
        .await
        .expect("b2c accepted");
    sim.handle().flush_callbacks().await;
    let hits = rx.wait_for("/mpesa-crate/b2c", 2).await;
    let result = &hits[1].json;
    assert_eq!(
        result["Result"]["ConversationID"],
        ack.conversation_id.as_str()
    );
    assert_eq!(
        result["Result"]["ResultCode"],
        json!(0),
        "password decrypted with the emulator key"
    );
    let receipt = result["Result"]["TransactionID"]
        .as_str()
        .expect("receipt")
        .to_owned();

    // Account balance, transaction status and reversal through the same client.
    let ack = mpesa
        .account_balance("testapi")
        .party_a("600992")
        .identifier_type(IdentifierTypes::ShortCode)
        .result_url(&result_url)
        .timeout_url(&timeout_url)
        .send()
        .await
        .expect("balance accepted");
    assert_eq!(ack.response_code, "0");
    let status = mpesa
        .transaction_status("testapi")
        .transaction_id(&receipt)
        .party_a("600992")
        .result_url(&result_url)
        .timeout_url(&timeout_url)
        .send()
        .await
        .expect("status accepted");
    assert!(status.conversation_id.starts_with("AG_"));
    mpesa
        .transaction_reversal("testapi")
        .transaction_id(&receipt)
        .receiver_party("600992")
        .receiver_identifier_type(IdentifierTypes::ShortCode)
        .amount(100)
        .result_url(&result_url)
        .timeout_url(&timeout_url)
        .send()
        .await
        .expect("reversal accepted");
    sim.handle().flush_callbacks().await;
    let hits = rx.wait_for("/mpesa-crate/b2c", 5).await;
    assert_eq!(hits[2].json["Result"]["ResultCode"], json!("0"), "balance");
    assert_eq!(hits[3].json["Result"]["ResultCode"], json!(0), "status");
    assert_eq!(param(&hits[3].json, "ReceiptNo"), receipt.as_str());
    assert_eq!(hits[4].json["Result"]["ResultCode"], json!(0), "reversal");
    assert_eq!(
        param(&hits[4].json, "OriginalTransactionID"),
        receipt.as_str()
    );
}

/// mpesa 1.1.0 cannot parse Daraja's real C2B answers: it expects `OriginatorConverstionID`
/// (register) and `OriginatorConversationID` (simulate) where Daraja sends the misspelt
/// `OriginatorCoversationID`. The emulator keeps Daraja's spelling, so the crate reports a
/// decode error even though the operation succeeded server-side.
#[tokio::test]
async fn mpesa_crate_c2b_trips_over_daraja_spelling() {
    let sim = slow_sim().await;
    let rx = Receiver::start().await;
    let mpesa = client(&sim, "mpesa-crate-c2b");
    let confirm = rx.url("/c2b/confirmation");
    let validate = rx.url("/c2b/validation");
    let err = mpesa
        .c2b_register()
        .short_code("600984")
        .confirmation_url(&confirm)
        .validation_url(&validate)
        .send()
        .await
        .expect_err("decode error on OriginatorCoversationID");
    assert!(
        matches!(&err, MpesaError::NetworkError(e) if e.is_decode()),
        "{err:?}"
    );
    let rec = sim
        .requests()
        .into_iter()
        .find(|r| r.path == "/mpesa/c2b/v1/registerurl")
        .expect("recorded");
    assert_eq!(rec.status, 200);

    let err = mpesa
        .c2b_simulate()
        .short_code("600984")
        .msisdn("254708374149")
        .amount(10)
        .bill_ref_number("ACC-1")
        .send()
        .await
        .expect_err("decode error on OriginatorCoversationID");
    assert!(
        matches!(&err, MpesaError::NetworkError(e) if e.is_decode()),
        "{err:?}"
    );
    sim.handle().flush_callbacks().await;
    let hit = &rx.wait_for("/c2b/confirmation", 1).await[0];
    assert_eq!(hit.json["TransAmount"], "10.00");
    assert_eq!(hit.json["BillRefNumber"], "ACC-1");
}
