//! Customer to Business: `POST /mpesa/c2b/v{1,2}/registerurl` and `POST /mpesa/c2b/v{1,2}/simulate`.
//! Simulated payments are confirmed (optionally validated first) to the registered URLs.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::parse_object;
use crate::callbacks;
use crate::error::ApiError;
use crate::fields::Fields;
use crate::ids;
use crate::state::{C2bRegistration, C2bTx, Shared, Target, TokenFlavor};

/// Daraja's spelling ("Coversation") in C2B answers.
#[derive(Serialize)]
struct C2bAck {
    #[serde(rename = "OriginatorCoversationID")]
    originator_coversation_id: String,
    #[serde(rename = "ResponseCode")]
    response_code: &'static str,
    #[serde(rename = "ResponseDescription")]
    response_description: &'static str,
}

async fn register(
    s: Arc<Shared>,
    headers: HeaderMap,
    body: Bytes,
    version: u8,
) -> Result<Response, ApiError> {
    s.gate(&headers, TokenFlavor::NotFound)?;
    let obj = parse_object(&headers, &body)?;
    let f = Fields::new(&obj);
    let shortcode = f.shortcode("ShortCode")?;
    let response_type = f.one_of("ResponseType", &["Completed", "Cancelled"])?;
    let confirmation_url = f.url("ConfirmationURL", &s.cfg.c2b_url_rules)?;
    let validation_url = f.url("ValidationURL", &s.cfg.c2b_url_rules)?;
    {
        let mut inner = s.lock();
        if !s.shortcode_known(&inner, &shortcode) {
            return Err(ApiError::invalid("ShortCode"));
        }
        // Sandbox: registrations may be overwritten freely.
        inner.c2b_urls.insert(
            shortcode,
            C2bRegistration {
                confirmation_url,
                validation_url,
                response_type,
                version,
            },
        );
    }
    Ok(Json(C2bAck {
        originator_coversation_id: ids::proxy_id(),
        response_code: "0",
        response_description: if version == 1 { "success" } else { "Success" },
    })
    .into_response())
}

pub(crate) async fn register_v1(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    register(s, headers, body, 1).await
}

pub(crate) async fn register_v2(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    register(s, headers, body, 2).await
}

async fn simulate(s: Arc<Shared>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    s.gate(&headers, TokenFlavor::NotFound)?;
    let obj = parse_object(&headers, &body)?;
    let f = Fields::new(&obj);
    let shortcode = f.shortcode("ShortCode")?;
    let command_id = f.one_of(
        "CommandID",
        &["CustomerPayBillOnline", "CustomerBuyGoodsOnline"],
    )?;
    let amount = f.amount("Amount", 1, 250_000)?;
    let msisdn = f.phone("Msisdn")?;
    let bill_ref = f.text("BillRefNumber").unwrap_or_default();
    let (job, before_response) = {
        let mut inner = s.lock();
        if !s.shortcode_known(&inner, &shortcode) {
            return Err(ApiError::invalid("ShortCode"));
        }
        let trans_id = ids::receipt();
        let delay = s.delay(&inner, None);
        let before_response = inner.faults.callback_before_response;
        inner.c2b.insert(
            trans_id.clone(),
            C2bTx {
                trans_id: trans_id.clone(),
                shortcode,
                command_id,
                amount,
                msisdn,
                bill_ref,
                job: None,
                done: false,
            },
        );
        let job = callbacks::schedule(&s, &mut inner, Target::C2b(trans_id.clone()), delay);
        if let Some(tx) = inner.c2b.get_mut(&trans_id) {
            tx.job = Some(job);
        }
        (job, before_response)
    };
    if before_response {
        callbacks::fire(&s, job).await;
    }
    Ok(Json(C2bAck {
        originator_coversation_id: ids::proxy_id(),
        response_code: "0",
        response_description: "Accept the service request successfully.",
    })
    .into_response())
}

pub(crate) async fn simulate_v1(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    simulate(s, headers, body).await
}

pub(crate) async fn simulate_v2(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    simulate(s, headers, body).await
}
