//! REST: reads one HTTP request for an operation — input merged from path,
//! query and body, `Idempotency-Key`, the credential — hands it to the
//! core's [`execute`], and writes the answer (JSON, a text body or a
//! streamed file) with the operation's status.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::approvals::service as approvals;
use crate::auth::principal;
use crate::core::Core;
use crate::core::execute::{Invocation, execute};
use crate::core::input;
use crate::core::operation::{Access, Answer, FileBody, Operation, RawBody, RequestMeta};
use crate::error::{ApiError, current_request_id};

/// Serves one request for `op`.
pub async fn serve(state: Arc<Core>, op: Arc<Operation>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let meta = RequestMeta {
        request_id: current_request_id(),
        ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| {
                client_ip(addr.ip(), &parts.headers, &state.config.trusted_proxies).to_string()
            }),
        user_agent: parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
        channel: "rest".into(),
        host: request_host(&parts.headers, &parts.uri),
    };
    let path = match Path::<HashMap<String, String>>::from_request_parts(&mut parts, &()).await {
        Ok(Path(path)) => path,
        Err(rejection) => {
            return ApiError::BadRequest(format!("bad path: {rejection}")).into_response();
        }
    };
    let max_body = state.config.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, max_body).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::PayloadTooLarge(format!(
                "the request body is over the limit of {max_body} bytes"
            ))
            .into_response();
        }
    };
    let prepared = input::parse_body(&bytes).and_then(|body| {
        let query = input::parse_query(parts.uri.query())?;
        Ok(input::merge(&op.spec.input_schema, body, query, path))
    });
    let mut input = match prepared {
        Ok(input) => input,
        Err(error) => return error.into_response(),
    };
    // `Idempotency-Key` travels as the input field `idempotency_key`, the
    // same argument MCP clients give.
    if let (Some(key), Some(fields)) = (
        parts
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok()),
        input.as_object_mut(),
    ) {
        fields.insert("idempotency_key".into(), Value::String(key.to_string()));
    }
    let principal = match op.access {
        Access::Public => {
            if let Err(error) = state.public_limiter.check(meta.ip.as_deref()) {
                return error.into_response();
            }
            None
        }
        access => {
            match principal::authenticate(&state, &parts.headers, access == Access::Tenant).await {
                Ok(principal) => {
                    // Every log line of this request names who made it.
                    let span = tracing::Span::current();
                    span.record("user_id", tracing::field::display(principal.user_id));
                    if let Some(tenant) = principal.tenant_id {
                        span.record("tenant_id", tracing::field::display(tenant));
                        crate::rest::request_id::note_tenant(tenant);
                    }
                    Some(principal)
                }
                Err(error) => return error.into_response(),
            }
        }
    };
    let target = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(
            || parts.uri.path().to_string(),
            |uri| uri.0.path().to_string(),
        );
    let call = Invocation {
        principal,
        input,
        meta,
        target,
        tool: None,
        progress: None,
    };
    match execute(&state, &op, call).await {
        Ok(value) => {
            let mut status = StatusCode::from_u16(op.spec.success_status).unwrap_or(StatusCode::OK);
            // Money out that waits for a person's approval moved nothing
            // yet: 202, with the approval.
            if value
                .as_json()
                .is_some_and(|json| approvals::is_pending_answer(&op, json))
            {
                status = StatusCode::ACCEPTED;
            }
            match value {
                Answer::Json(value) => (status, axum::Json(value)).into_response(),
                Answer::Raw(raw) => raw_response(raw, status),
                Answer::File(file) => file_response(file, status).await,
            }
        }
        Err(error) => error.into_response(),
    }
}

/// The client's address: the peer, unless the peer is a trusted reverse
/// proxy (`MALIPO_TRUSTED_PROXIES`); then the right-most address of
/// `X-Forwarded-For` that is not itself a trusted proxy. A header from
/// anyone else is ignored, so a client cannot choose the address its login
/// attempts are counted against.
pub fn client_ip(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Ok(ip) = hop.parse::<std::net::IpAddr>() else {
            // A hop that is not an address ends what can be believed.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// The hostname a request was sent to: `Host` (or the URI's authority),
/// normalised by [`crate::hostnames::normalize`].
fn request_host(headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    let raw = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.host().map(str::to_string))?;
    crate::hostnames::normalize(&raw)
}

/// Sets the content type and the extra headers of a text or file answer
/// (headers that are not valid HTTP are left out).
fn set_headers(
    headers: &mut axum::http::HeaderMap,
    content_type: &str,
    extra: Vec<(String, String)>,
) {
    use axum::http::{HeaderName, HeaderValue, header};
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    for (name, value) in extra {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// A text answer as an HTTP response.
fn raw_response(raw: RawBody, status: StatusCode) -> Response {
    let mut response = (status, raw.body).into_response();
    set_headers(response.headers_mut(), &raw.content_type, raw.headers);
    response
}

/// A file answer, streamed; a file that cannot be opened is a 500.
async fn file_response(file: FileBody, status: StatusCode) -> Response {
    use axum::http::{HeaderValue, header};
    let opened = match tokio::fs::File::open(&file.path).await {
        Ok(opened) => opened,
        Err(error) => {
            return ApiError::Unexpected(anyhow::anyhow!("open {}: {error}", file.path.display()))
                .into_response();
        }
    };
    let length = opened.metadata().await.ok().map(|m| m.len());
    if file.delete
        && let Err(error) = tokio::fs::remove_file(&file.path).await
    {
        tracing::warn!(%error, path = %file.path.display(), "could not remove a streamed file");
    }
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        opened,
        64 * 1024,
    ));
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    set_headers(headers, &file.content_type, file.headers);
    response
}

#[cfg(test)]
mod tests {
    use super::client_ip;

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let trusted = crate::config::trusted_proxies("10.0.0.0/8, 192.168.1.1");
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "1.1.1.1, 203.0.113.9, 10.0.0.7".parse().expect("header"),
        );
        let proxy = "10.0.0.2".parse().expect("ip");
        let stranger = "198.51.100.4".parse().expect("ip");
        assert_eq!(
            client_ip(proxy, &headers, &trusted).to_string(),
            "203.0.113.9"
        );
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
        assert_eq!(client_ip(proxy, &headers, &[]), proxy);
    }
}
