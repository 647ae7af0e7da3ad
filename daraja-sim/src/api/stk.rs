//! M-Pesa Express: `POST /mpesa/stkpush/v1/processrequest` and `POST /mpesa/stkpushquery/v1/query`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::api::parse_object;
use crate::callbacks;
use crate::config::{Code, LimitPolicy, QueryPendingShape};
use crate::error::ApiError;
use crate::fields::Fields;
use crate::ids;
use crate::state::{Inner, Outcome, Shared, StkTx, Target, TokenFlavor};

const ACCEPTED: &str = "Success. Request accepted for processing";
/// Triple "s" as Daraja spells it.
const QUERY_ACCEPTED: &str = "The service request has been accepted successsfully";

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PushResponse {
    #[serde(rename = "MerchantRequestID")]
    merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID")]
    checkout_request_id: String,
    response_code: &'static str,
    response_description: &'static str,
    customer_message: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct QueryResponse {
    response_code: &'static str,
    response_description: &'static str,
    #[serde(rename = "MerchantRequestID")]
    merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID")]
    checkout_request_id: String,
    result_code: String,
    result_desc: String,
}

/// Verifies `Password == base64(BusinessShortCode + Passkey + Timestamp)`.
fn check_password(
    s: &Shared,
    inner: &Inner,
    shortcode: &str,
    password: Option<&str>,
    timestamp: &str,
) -> Result<(), ApiError> {
    let passkey = match inner
        .shortcodes
        .get(shortcode)
        .and_then(|c| c.passkey.clone())
    {
        Some(p) => p,
        None if s.cfg.strict => return Err(ApiError::server("Merchant does not exist")),
        None => s.cfg.default_passkey.clone(),
    };
    let expected = STANDARD.encode(format!("{shortcode}{passkey}{timestamp}"));
    if password.map(str::trim) == Some(expected.as_str()) {
        Ok(())
    } else {
        Err(ApiError::server("[MerchantValidate] - Wrong credentials"))
    }
}

pub(crate) async fn push(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.gate(&headers, TokenFlavor::NotFound)?;
    let obj = parse_object(&headers, &body)?;
    let f = Fields::new(&obj);
    let shortcode = f.shortcode("BusinessShortCode")?;
    let password = f.text("Password");
    let timestamp = f.timestamp("Timestamp")?;
    f.one_of(
        "TransactionType",
        &["CustomerPayBillOnline", "CustomerBuyGoodsOnline"],
    )?;
    let amount = f.amount("Amount", 1, 250_000)?;
    f.phone("PartyA")?;
    f.shortcode("PartyB")?;
    let phone = f.phone("PhoneNumber")?;
    let callback_url = f.url("CallBackURL", &s.cfg.callback_url_rules)?;
    let account_reference = f.required("AccountReference")?;
    let reference_too_long = account_reference.chars().count() > 12;
    if reference_too_long && s.cfg.account_reference_limit == LimitPolicy::Reject {
        return Err(ApiError::invalid("AccountReference"));
    }

    let (checkout_id, merchant_id, job, before_response) = {
        let mut inner = s.lock();
        check_password(&s, &inner, &shortcode, password.as_deref(), &timestamp)?;
        if s.cfg.lock_subscriber
            && inner
                .stk
                .values()
                .any(|t| t.phone == phone && t.done.is_none())
        {
            return Err(ApiError::server(
                "Unable to lock subscriber, a transaction is already in process for the current subscriber",
            ));
        }
        let checkout_id = ids::checkout_request_id(&phone);
        let merchant_id = ids::proxy_id();
        let (chosen, delay) =
            inner.take_outcome(&s.cfg, &[&checkout_id], Some(&phone), Some(amount), true);
        let outcome = match chosen {
            Some(o) => o,
            None if reference_too_long
                && s.cfg.account_reference_limit == LimitPolicy::AsyncFail =>
            {
                Outcome::code(Code::Num(1025))
            }
            None => Outcome::success(),
        };
        let delay = s.delay(&inner, delay);
        let before_response = inner.faults.callback_before_response;
        inner.stk.insert(
            checkout_id.clone(),
            StkTx {
                checkout_id: checkout_id.clone(),
                merchant_id: merchant_id.clone(),
                shortcode: shortcode.clone(),
                phone,
                amount,
                callback_url,
                outcome,
                job: None,
                done: None,
            },
        );
        let job = callbacks::schedule(&s, &mut inner, Target::Stk(checkout_id.clone()), delay);
        if let Some(tx) = inner.stk.get_mut(&checkout_id) {
            tx.job = Some(job);
        }
        (checkout_id, merchant_id, job, before_response)
    };
    if before_response {
        callbacks::fire(&s, job).await;
    }
    Ok(Json(PushResponse {
        merchant_request_id: merchant_id,
        checkout_request_id: checkout_id,
        response_code: "0",
        response_description: ACCEPTED,
        customer_message: ACCEPTED,
    })
    .into_response())
}

pub(crate) async fn query(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.gate(&headers, TokenFlavor::NotFound)?;
    let obj = parse_object(&headers, &body)?;
    let f = Fields::new(&obj);
    let shortcode = f.shortcode("BusinessShortCode")?;
    let password = f.text("Password");
    let timestamp = f.timestamp("Timestamp")?;
    let checkout_id = f.required("CheckoutRequestID")?;

    let mut inner = s.lock();
    check_password(&s, &inner, &shortcode, password.as_deref(), &timestamp)?;
    if inner.faults.flaky_query {
        inner.query_count += 1;
        if inner.query_count % 2 == 1 {
            return Err(ApiError::server(""));
        }
    }
    let shape = inner.faults.query_pending_shape;
    let Some(tx) = inner.stk.get(&checkout_id) else {
        return Err(ApiError::server("The transaction does not Exist"));
    };
    let answer = match &tx.done {
        Some(done) => QueryResponse {
            response_code: "0",
            response_description: QUERY_ACCEPTED,
            merchant_request_id: tx.merchant_id.clone(),
            checkout_request_id: tx.checkout_id.clone(),
            result_code: done.code.to_string(),
            result_desc: done.query_desc.clone(),
        },
        None if shape == QueryPendingShape::Classic => {
            return Err(ApiError::with_request_id(
                &checkout_id,
                "500.001.1001",
                "The transaction is being processed",
            ));
        }
        None => QueryResponse {
            response_code: "0",
            response_description: QUERY_ACCEPTED,
            merchant_request_id: tx.merchant_id.clone(),
            checkout_request_id: tx.checkout_id.clone(),
            result_code: "4999".to_owned(),
            result_desc: "The transaction is still under processing".to_owned(),
        },
    };
    Ok(Json(answer).into_response())
}
