//! The browsable API reference at `/docs`: Swagger UI rendering the
//! OpenAPI document at `/api/v1/openapi.json`. Swagger UI's files are
//! vendored in `host/assets/swagger-ui/` (npm `swagger-ui-dist`, version
//! [`SWAGGER_UI_VERSION`], Apache-2.0) and embedded in the binary: the page
//! loads nothing from anywhere else and works offline.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The vendored Swagger UI release; part of the asset URLs, so a new
/// release is a new URL and the old ones may be cached for good.
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

/// Where the assets are served.
const ASSETS: &str = "/docs/assets/5.35.0";

const BUNDLE_JS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");
const FAVICON: &[u8] = include_bytes!("../../assets/swagger-ui/favicon-32x32.png");
const LICENSE: &[u8] = include_bytes!("../../assets/swagger-ui/LICENSE");

/// Starts Swagger UI on the local document. `validatorUrl: null`: Swagger
/// UI would otherwise send the document to validator.swagger.io.
const INIT_JS: &str = r##"window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"##;

fn page() -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Malipo API reference</title>
    <link rel="stylesheet" type="text/css" href="{ASSETS}/swagger-ui.css">
    <link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{ASSETS}/swagger-ui-bundle.js" charset="utf-8"></script>
    <script src="{ASSETS}/init.js" charset="utf-8"></script>
  </body>
</html>
"#
    )
}

/// `/docs` and its assets.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    debug_assert!(ASSETS.ends_with(SWAGGER_UI_VERSION));
    Router::new()
        .route("/docs", get(index))
        .route("/docs/", get(index))
        .route(
            &format!("{ASSETS}/swagger-ui-bundle.js"),
            get(|| async { asset("text/javascript; charset=utf-8", BUNDLE_JS) }),
        )
        .route(
            &format!("{ASSETS}/swagger-ui.css"),
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            &format!("{ASSETS}/favicon-32x32.png"),
            get(|| async { asset("image/png", FAVICON) }),
        )
        .route(
            &format!("{ASSETS}/init.js"),
            get(|| async { asset("text/javascript; charset=utf-8", INIT_JS.as_bytes()) }),
        )
        .route(
            &format!("{ASSETS}/LICENSE"),
            get(|| async { asset("text/plain; charset=utf-8", LICENSE) }),
        )
}

async fn index() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        page(),
    )
        .into_response()
}

/// An embedded file; its URL names the release, so it never changes.
fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_local_urls() {
        let html = page();
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
        assert!(!INIT_JS.contains("http://") && !INIT_JS.contains("https://"));
        assert!(html.contains(&format!(
            "/docs/assets/{SWAGGER_UI_VERSION}/swagger-ui-bundle.js"
        )));
    }
}
