//! Who is calling: opaque session tokens, stored hashed in MongoDB, presented as the
//! `zrocket_session` cookie (browsers; zero-cache forwards it to the Zero endpoints) or as
//! `Authorization: Bearer <token>` (API clients, Node Zero clients).
//!
//! Every authenticated request looks the session up and checks that its user is still
//! `active`, so signing out, changing the password and deactivating a user all take effect on
//! the next request. The submodules each do one job: `session` (tokens and their store),
//! `cookie` (the header), `password` (Argon2id off the runtime), `rate_limit` (failed sign-ins),
//! `client` (the client address), `accounts` (sign-up rules and credentials), `oidc` (external
//! ID tokens). The HTTP handlers are in `crate::auth_api`.

pub mod accounts;
pub mod client;
pub mod cookie;
pub mod oidc;
pub mod password;
pub mod rate_limit;
pub mod session;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api_error::{ApiError, error_response};
use crate::db::User;
use crate::state::AppState;
use zerostack_spec::secret::Secret;

pub use cookie::COOKIE_NAME;

/// Why a request is not authenticated. The messages never include the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("sign-in required: send the zrocket_session cookie or Authorization: Bearer <token>")]
    Missing,
    #[error("the Authorization header must be \"Bearer <token>\"")]
    BadScheme,
    #[error("the session is invalid, expired or signed out; sign in again")]
    Invalid,
    #[error("this account is deactivated")]
    Deactivated,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        error_response(StatusCode::UNAUTHORIZED, &self.to_string())
    }
}

/// Finds the token: the `Authorization` header wins; the cookie is the fallback. A present
/// but malformed header is an error rather than a silent fallback to the cookie.
pub fn token_from_headers(headers: &HeaderMap) -> Result<Secret, AuthError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthError::BadScheme)?.trim();
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::BadScheme)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::BadScheme);
        }
        return Ok(Secret::new(token.trim()));
    }
    cookie::read(headers, COOKIE_NAME)
        .map(Secret::new)
        .ok_or(AuthError::Missing)
}

/// An authenticated caller: the user (active when the request started) and their session.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user: User,
    /// The stored id of the session (the token's SHA-256), for sign-out and "other sessions".
    pub session_id: String,
}

impl AuthUser {
    pub fn id(&self) -> &str {
        &self.user.id
    }
}

/// Authenticates a request by its headers: finds the token, looks the session up, checks the
/// user is active.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<AuthUser, ApiError> {
    let token = token_from_headers(headers).map_err(unauthorized)?;
    let Some(session) = state.sessions.find(&token).await.map_err(db_error)? else {
        return Err(unauthorized(AuthError::Invalid));
    };
    let user = state
        .db
        .users
        .find_one(bson::doc! {"_id": &session.user_id})
        .await
        .map_err(db_error)?;
    match user {
        Some(user) if user.active => Ok(AuthUser {
            user,
            session_id: session.id,
        }),
        Some(_) => Err(unauthorized(AuthError::Deactivated)),
        None => Err(unauthorized(AuthError::Invalid)),
    }
}

fn unauthorized(e: AuthError) -> ApiError {
    ApiError::unauthorized(e.to_string())
}

pub fn db_error(e: mongodb::error::Error) -> ApiError {
    tracing::error!(error = %e, "auth: database error");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "database error".into())
}

/// The route layer of every signed-in route (`server::table`): authenticates before the
/// handler runs, so a handler that forgot to ask for the caller is still protected, and hands
/// the caller on in the request's extensions.
pub async fn require_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request.headers()).await {
        Ok(user) => {
            request.extensions_mut().insert(Arc::new(user));
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// The caller, as `require_session` found it (or authenticated here when a route has no
/// layer).
impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(user) = parts.extensions.get::<Arc<AuthUser>>() {
            return Ok(AuthUser::clone(user));
        }
        authenticate(state, &parts.headers).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn header_wins_over_cookie_and_cookie_is_parsed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; zrocket_session=tok; b=2"),
        );
        assert_eq!(token_from_headers(&h).unwrap().expose(), "tok");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer hdr"),
        );
        assert_eq!(token_from_headers(&h).unwrap().expose(), "hdr");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(token_from_headers(&h).unwrap_err(), AuthError::BadScheme);
        assert_eq!(
            token_from_headers(&HeaderMap::new()).unwrap_err(),
            AuthError::Missing
        );
    }
}
