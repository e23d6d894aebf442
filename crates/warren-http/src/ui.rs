//! The management web UI: static HTML, ES modules and CSS from `ui/`,
//! embedded in the binary with rust-embed (debug builds too), served at `/`
//! by the management listener; the API stays at `/api/...`. No CDN, no
//! build step: the files are served as they are in the source tree.
//!
//! The pages log in with a user and password kept in the browser's
//! sessionStorage and call the API with HTTP Basic auth, as RabbitMQ's UI.

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "ui/"]
struct Assets;

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// The embedded file at `path` (`/` is `index.html`), if there is one.
pub fn asset(path: &str) -> Option<Response> {
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let file = Assets::get(path)?;
    let mut resp = (StatusCode::OK, file.data.into_owned()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    // Small files, changed with each build: revalidate rather than cache.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(resp)
}

/// What the listener answers outside the routed API: an embedded UI file,
/// RabbitMQ's JSON 404 under `/api/`, a plain 404 elsewhere.
pub async fn fallback(uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return crate::error::ApiError::object_not_found().into_response();
    }
    match asset(path) {
        Some(r) => r,
        None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ui_is_embedded() {
        let index = asset("/").expect("index.html");
        assert_eq!(
            index.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(asset("/js/app.js").is_some());
        assert!(asset("/css/app.css").is_some());
        assert!(asset("/nope.js").is_none());
    }
}
