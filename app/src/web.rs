//! Serves the built React UI from `WEB_DIR`, so the app needs no Node at run time.
//!
//! Unknown paths without a file extension fall back to `index.html` (client-side routing);
//! missing assets stay 404s so a broken build is visible; `/api/*` never falls back. When the
//! UI has not been built, every page says so and how to build it.

use std::path::{Component, Path, PathBuf};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

use crate::api_error::error_response;
use crate::state::AppState;

const NOT_BUILT: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>ZRocket: UI not built</title></head>
<body style="font-family: sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>The ZRocket UI is not built</h1>
<p>The server is running, but it found no <code>index.html</code> in its <code>WEB_DIR</code>.</p>
<p>Build it with <code>npm ci &amp;&amp; npm run build</code> in <code>app/web</code>, or point
<code>WEB_DIR</code> at a built UI. The API is available under <code>/api</code>, documented at
<a href="/openapi.json">/openapi.json</a>.</p>
</body></html>"#;

/// The content type for a file name.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Maps a URL path to a relative file path, refusing anything that could escape the root.
pub fn safe_relative(url_path: &str) -> Option<PathBuf> {
    let rel = url_path.trim_start_matches('/');
    let p = Path::new(rel);
    if rel.contains('\\') || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(p.to_path_buf())
}

async fn file(path: &Path, cache: &'static str) -> Option<Response> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    if !meta.is_file() {
        return None;
    }
    let bytes = tokio::fs::read(path).await.ok()?;
    Some(
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type(path)),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            ],
            bytes,
        )
            .into_response(),
    )
}

/// The router's fallback.
pub async fn serve(State(state): State<AppState>, uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return error_response(StatusCode::NOT_FOUND, &format!("no API route {path}"));
    }
    let root = &state.config.web_dir;
    let Some(rel) = safe_relative(path) else {
        return error_response(StatusCode::BAD_REQUEST, "invalid path");
    };
    if !rel.as_os_str().is_empty() {
        // Vite fingerprints everything under assets/, so those may be cached for good.
        let cache = if rel.starts_with("assets") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        if let Some(r) = file(&root.join(&rel), cache).await {
            return r;
        }
        if rel.extension().is_some() {
            return error_response(StatusCode::NOT_FOUND, &format!("no file {path}"));
        }
    }
    match file(&root.join("index.html"), "no-cache").await {
        Some(r) => r,
        None => (StatusCode::SERVICE_UNAVAILABLE, Html(NOT_BUILT)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_traversal() {
        assert!(safe_relative("/../etc/passwd").is_none());
        assert!(safe_relative("/a/../../b").is_none());
        assert!(safe_relative("/a\\..\\b").is_none());
        assert_eq!(
            safe_relative("/assets/x.js").unwrap(),
            PathBuf::from("assets/x.js")
        );
        assert_eq!(safe_relative("/").unwrap(), PathBuf::from(""));
    }

    #[test]
    fn content_types() {
        assert!(content_type(Path::new("a.js")).starts_with("text/javascript"));
        assert_eq!(content_type(Path::new("a.bin")), "application/octet-stream");
    }
}
