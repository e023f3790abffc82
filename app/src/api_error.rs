//! The one shape of an HTTP error: a status and the body `{"error": message}`.
//!
//! REST handlers, the UI fallback, the token extractor and the Zero endpoints' checks all answer
//! errors this way. It lives in a module of its own so that each of them can use it without
//! importing another (the REST module and the Zero endpoints would otherwise import each other).
//! How a [`DomainError`] maps to a status is decided here, once: database failures become a
//! generic 500 whose details go to the log only.

use axum::Json;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::domain::error::DomainError;

/// A JSON error response: `status` with `{"error": message}`.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// Parses a JSON body into `T`, with a message that says what is wrong.
pub fn json_body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("a JSON request body is required"));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    // Every body is an object. serde's derived structs also accept a JSON array, read
    // positionally (`["hi"]` would be a message with text "hi"); refuse that instead of guessing.
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid request body: expected a JSON object",
        ));
    }
    T::deserialize(value).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// The largest error body [`json_errors`] reads to reuse as the message.
const MAX_PLAIN_ERROR_BYTES: usize = 4096;

/// A layer over the whole router: an error answered by axum itself (a body over the limit,
/// a method the route does not have, a path or query that does not parse) comes as plain text
/// or empty; this turns it into the same `{"error": message}` as every other error. JSON and
/// HTML (the UI's "not built" page) pass unchanged.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_PLAIN_ERROR_BYTES)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let mut out = error_response(status, &text);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// An error a handler returns: the status and the message the client reads.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

/// What a handler returns: a response, or an [`ApiError`].
pub type ApiResult<T = Response> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }

    pub fn unauthorized(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::UNAUTHORIZED, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.0, &self.1)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> ApiError {
        match e {
            DomainError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            DomainError::Forbidden(m) => ApiError(StatusCode::FORBIDDEN, m),
            DomainError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
            DomainError::Db(e) => {
                tracing::error!(error = %e, "database error");
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, "database error".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        text: String,
    }

    #[test]
    fn a_body_must_be_an_object_even_where_serde_would_read_an_array() {
        assert!(json_body::<Body>(&Bytes::from_static(br#"{"text":"hi"}"#)).is_ok());
        for bad in [&br#"["hi"]"#[..], br#""hi""#, b"1", b"null", b""] {
            let err = json_body::<Body>(&Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(
                err.0,
                StatusCode::BAD_REQUEST,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
