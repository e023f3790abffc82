//! Who is calling the Zero endpoints: the `X-Api-Key` check and the caller's session.
//!
//! zero-cache forwards the browser's WebSocket `Cookie` header (`ZERO_MUTATE_FORWARD_COOKIES`,
//! `ZERO_QUERY_FORWARD_COOKIES`) and a client's `auth` as `Authorization: Bearer`, so both
//! endpoints authenticate exactly as REST does; when `ZERO_API_KEY` is set they also require
//! that key, which only zero-cache has. Every failure is HTTP 401, which zero-cache turns into
//! the client's `needs-auth` state.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use zerostack_spec::secret::constant_time_eq;

use crate::api_error::ApiError;
use crate::state::AppState;

/// The route layer of the Zero endpoints: the API key, then the same session check as every
/// signed-in route (which hands the caller on in the request's extensions).
pub async fn require_zero_caller(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(e) = check_api_key(&state, request.headers()) {
        return e.into_response();
    }
    crate::auth::require_session(State(state), request, next).await
}

/// The `X-Api-Key` check.
pub fn check_api_key(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(expected) = &state.config.zero_api_key {
        let given = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
            return Err(ApiError::unauthorized("missing or wrong X-Api-Key header"));
        }
    }
    Ok(())
}
