//! Who is calling the Zero endpoints: the `X-Api-Key` check and the caller's token.
//!
//! zero-cache forwards the browser's token (header or cookie) unchanged to both endpoints, so
//! they authenticate exactly as REST does; when `ZERO_API_KEY` is set they also require that
//! key, which only zero-cache has. Every failure is HTTP 401, which zero-cache turns into the
//! client's `needs-auth` state.

use axum::http::HeaderMap;
use zerostack_spec::secret::constant_time_eq;

use crate::api_error::ApiError;
use crate::auth::{AuthUser, authenticate_headers};
use crate::state::AppState;

/// Checks `X-Api-Key` (when `ZERO_API_KEY` is set), then the token.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<AuthUser, ApiError> {
    if let Some(expected) = &state.config.zero_api_key {
        let given = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
            return Err(ApiError::unauthorized("missing or wrong X-Api-Key header"));
        }
    }
    authenticate_headers(&state.keys, headers).map_err(|e| ApiError::unauthorized(e.to_string()))
}
