//! The web dashboard at `/`: plain HTML, ES modules and CSS from
//! `host/assets/dashboard/`, embedded in the binary (no build step, no CDN,
//! works offline). The pages talk to the public REST API (`/api/v1`) with
//! Bearer tokens like any third party; this module only serves files.
//!
//! `/`, `/accept-invitation` and `/reset-password` (the links the product
//! emails) answer the dashboard's page; its files are under
//! [`ASSET_PREFIX`]. Every answer carries a strict Content-Security-Policy
//! (only this origin's scripts, styles and API; no inline script) and
//! `Referrer-Policy: no-referrer`, since the emailed links carry tokens.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// Where the dashboard's files are served.
pub const ASSET_PREFIX: &str = "/dashboard/assets";

/// The paths that answer the dashboard's page.
pub const PAGES: &[&str] = &["/", "/accept-invitation", "/reset-password"];

/// The Content-Security-Policy of every dashboard answer. Logos may come
/// from any https address (the organization's `logo_url`).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data: https:; connect-src 'self'; font-src 'self'; \
manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The embedded files: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../assets/dashboard/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dashboard/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dashboard/api.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dashboard/live.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dashboard/i18n.js"),
    ),
    (
        "widgets.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dashboard/widgets.js"),
    ),
    (
        "access.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dashboard/access.js"),
    ),
    (
        "templates.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dashboard/templates.js"),
    ),
    (
        "pages.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/dashboard/pages.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/dashboard/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/dashboard/favicon.svg"),
    ),
];

/// Each file's strong ETag (a hash of its bytes), computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(_, _, bytes)| {
            let digest = Sha256::digest(bytes);
            format!("\"{}\"", hex::encode(&digest[..12]))
        })
        .collect()
});

/// Total size of the embedded files, in bytes.
pub fn embedded_size() -> usize {
    FILES.iter().map(|(_, _, bytes)| bytes.len()).sum()
}

/// The dashboard's routes (merged into the REST router in `app`).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for page in PAGES {
        router = router.route(page, get(index).fallback(method_not_allowed));
    }
    router.route(
        &format!("{ASSET_PREFIX}/{{file}}"),
        get(asset).fallback(method_not_allowed),
    )
}

/// Any other method on a dashboard path: the API's JSON `405`.
async fn method_not_allowed() -> crate::error::ApiError {
    crate::error::ApiError::MethodNotAllowed("this method is not served on this path".into())
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(not_found)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers).unwrap_or_else(not_found)
}

fn not_found() -> Response {
    crate::error::ApiError::not_found("file").into_response()
}

/// A file with its type, validators and the security headers; `304` when
/// the browser's copy is current. Files are revalidated on every use
/// (`no-cache`): their names do not change between releases.
fn serve(name: &str, request: &HeaderMap) -> Option<Response> {
    let index = FILES.iter().position(|(n, _, _)| *n == name)?;
    let (_, content_type, bytes) = FILES[index];
    let etag = ETAGS.get(index)?.clone();
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if fresh {
        return Some((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    Some((headers, bytes).into_response())
}
