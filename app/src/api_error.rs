//! The one shape of an HTTP error: a status and the body `{"error": message}`.
//!
//! REST handlers, the UI fallback, the token extractor and the Zero endpoints' checks all answer
//! errors this way. It lives in a module of its own so that each of them can use it without
//! importing another (the REST module and the Zero endpoints would otherwise import each other).
//! How a [`DomainError`] maps to a status is decided here, once: database failures become a
//! generic 500 whose details go to the log only.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::error::DomainError;

/// A JSON error response: `status` with `{"error": message}`.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
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
