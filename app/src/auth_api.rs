//! The sign-in HTTP API under `/api/auth`: sign-up, sign-in, sign-out, password change, the
//! current session, the API-client token, the dev login and OIDC; plus `/api/config`, which
//! tells the UI which of those are on.
//!
//! Browsers get the session token only in the `HttpOnly` cookie, never in a JSON body; API
//! clients ask `POST /api/auth/token` for a bearer token instead. Every sign-in by password
//! (login, token, password change) is rate-limited per username and per client address, and a
//! wrong username and a wrong password answer exactly alike, in the same time.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use zerostack_spec::secret::Secret;

use crate::api_error::{ApiResult, error_response, json_body};
use crate::auth::accounts::{self, CreateError, FieldError};
use crate::auth::password::HashError;
use crate::auth::session::Kind;
use crate::auth::{AuthUser, client, cookie, db_error};
use crate::db::User;
use crate::domain::users::list_users;
use crate::state::AppState;

/// The one answer to a failed password sign-in, whichever part was wrong.
pub const WRONG_CREDENTIALS: &str = "wrong username or password";

/// The user as the sign-in endpoints return it.
pub fn public_user(u: &User) -> Value {
    json!({"_id": u.id, "username": u.username, "name": u.name})
}

fn field_error(status: StatusCode, e: &FieldError) -> Response {
    (status, Json(json!({"error": e.message, "field": e.field}))).into_response()
}

fn hash_error(e: HashError) -> Response {
    match e {
        HashError::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
        HashError::Internal(m) => {
            tracing::error!(problem = %m, "password hashing failed");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "password hashing failed")
        }
    }
}

fn too_many(retry: std::time::Duration) -> Response {
    let secs = retry.as_secs().max(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, HeaderValue::from(secs))],
        Json(json!({
            "error": format!("too many failed sign-ins; try again in {secs} seconds"),
            "retryAfterSecs": secs,
        })),
    )
        .into_response()
}

/// A started browser session: the user in the body, the token in the cookie.
async fn browser_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &User,
    status: StatusCode,
) -> Response {
    match state.sessions.create(&user.id, Kind::Browser).await {
        Ok(token) => (
            status,
            [(
                header::SET_COOKIE,
                cookie::set(
                    &token,
                    state.sessions.ttl_secs(),
                    &cookie::Attributes::for_request(&state.config, headers),
                ),
            )],
            Json(json!({"user": public_user(user)})),
        )
            .into_response(),
        Err(e) => db_error(e).into_response(),
    }
}

// ---- sign-up -------------------------------------------------------------------------------

#[derive(Deserialize)]
struct SignupBody {
    username: String,
    name: String,
    password: String,
}

/// `POST /api/auth/signup`.
pub async fn signup(State(state): State<AppState>, headers: HeaderMap, bytes: Bytes) -> Response {
    let b: SignupBody = match json_body(&bytes) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let password = Secret::new(b.password);
    let checked = accounts::validate_username(&b.username).and_then(|u| {
        let n = accounts::validate_name(&b.name)?;
        accounts::validate_password("password", password.expose())?;
        Ok((u, n))
    });
    let (username, name) = match checked {
        Ok(v) => v,
        Err(e) => return field_error(StatusCode::BAD_REQUEST, &e),
    };
    let taken = || {
        field_error(
            StatusCode::CONFLICT,
            &FieldError {
                field: "username",
                message: "this username is taken".into(),
            },
        )
    };
    match accounts::find_by_username(&state.db, &username).await {
        Ok(Some(_)) => return taken(),
        Ok(None) => {}
        Err(e) => return db_error(e).into_response(),
    }
    let hash = match state.passwords.hash(&password).await {
        Ok(h) => h,
        Err(e) => return hash_error(e),
    };
    let user = accounts::new_user(&username, &name, None);
    // The credential first: a credential without a user is inert, a user without one is not.
    if let Err(e) = accounts::set_password_hash(&state.db, &user.id, &hash).await {
        return db_error(e).into_response();
    }
    match accounts::insert_user(&state.db, &user).await {
        Ok(()) => {}
        Err(CreateError::Taken) => {
            let _ = state
                .db
                .credentials
                .delete_one(bson::doc! {"_id": &user.id})
                .await;
            return taken();
        }
        Err(CreateError::Db(e)) => return db_error(e).into_response(),
    }
    tracing::info!(user_id = %user.id, "sign-up");
    browser_session(&state, &headers, &user, StatusCode::CREATED).await
}

// ---- sign-in -------------------------------------------------------------------------------

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

/// Checks a username and password under the rate limits; the user when both are right.
async fn check_password(state: &AppState, parts: &Parts, bytes: &Bytes) -> Result<User, Response> {
    let b: LoginBody = json_body(bytes).map_err(IntoResponse::into_response)?;
    let password = Secret::new(b.password);
    let address = client::address(parts, state.config.trust_proxy);
    let user_key = accounts::username_key(&b.username);
    let limits = &state.limiter;
    let blocked = [
        limits.by_user.check(&user_key),
        limits.by_address.check(&address),
    ]
    .into_iter()
    .filter_map(Result::err)
    .max();
    if let Some(retry) = blocked {
        return Err(too_many(retry));
    }
    let user = if accounts::validate_username(&b.username).is_ok() {
        accounts::find_by_username(&state.db, &b.username)
            .await
            .map_err(|e| db_error(e).into_response())?
    } else {
        None
    };
    let stored = match &user {
        Some(u) => accounts::password_hash(&state.db, &u.id)
            .await
            .map_err(|e| db_error(e).into_response())?,
        None => None,
    };
    let plausible = password.expose().chars().count() <= accounts::PASSWORD_MAX;
    // Unknown users are verified against the dummy hash: the same work, the same answer.
    let ok = state
        .passwords
        .verify(
            &if plausible { password } else { Secret::new("") },
            stored.as_deref(),
        )
        .await
        .map_err(hash_error)?
        && plausible;
    match user {
        Some(user) if ok => {
            if !user.active {
                return Err(error_response(
                    StatusCode::FORBIDDEN,
                    "this account is deactivated",
                ));
            }
            limits.by_user.clear(&user_key);
            Ok(user)
        }
        _ => {
            limits.by_user.record(&user_key);
            limits.by_address.record(&address);
            tracing::info!(%address, "sign-in failed");
            Err(error_response(StatusCode::UNAUTHORIZED, WRONG_CREDENTIALS))
        }
    }
}

/// `POST /api/auth/login`: `{username, password}` → `{user}` and the session cookie.
pub async fn login(State(state): State<AppState>, parts: Parts, bytes: Bytes) -> Response {
    match check_password(&state, &parts, &bytes).await {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "sign-in");
            browser_session(&state, &parts.headers, &user, StatusCode::OK).await
        }
        Err(r) => r,
    }
}

/// `POST /api/auth/token`: `{username, password}` → `{token, user, expiresInSecs}` for API
/// clients, which send it as `Authorization: Bearer`. No cookie is set.
pub async fn token(State(state): State<AppState>, parts: Parts, bytes: Bytes) -> Response {
    let user = match check_password(&state, &parts, &bytes).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match state.sessions.create(&user.id, Kind::Api).await {
        Ok(token) => {
            tracing::info!(user_id = %user.id, "API token issued");
            Json(json!({
                "token": token.expose(),
                "user": public_user(&user),
                "expiresInSecs": state.sessions.ttl_secs(),
            }))
            .into_response()
        }
        Err(e) => db_error(e).into_response(),
    }
}

/// `POST /api/auth/logout`: ends this session everywhere and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, user: AuthUser) -> Response {
    let clear = [(
        header::SET_COOKIE,
        cookie::clear(&cookie::Attributes::for_request(&state.config, &headers)),
    )];
    match state.sessions.revoke(&user.session_id).await {
        Ok(()) => {
            tracing::info!(user_id = %user.id(), "sign-out");
            (StatusCode::NO_CONTENT, clear).into_response()
        }
        Err(e) => db_error(e).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// `POST /api/auth/password`: checks the current password, stores the new one, and ends the
/// user's other sessions.
pub async fn change_password(
    State(state): State<AppState>,
    parts: Parts,
    user: AuthUser,
    bytes: Bytes,
) -> Response {
    let b: PasswordBody = match json_body(&bytes) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let (current, new) = (Secret::new(b.current_password), Secret::new(b.new_password));
    let user_key = accounts::username_key(&user.user.username);
    let address = client::address(&parts, state.config.trust_proxy);
    if let Err(retry) = state.limiter.by_user.check(&user_key) {
        return too_many(retry);
    }
    let stored = match accounts::password_hash(&state.db, user.id()).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            return field_error(
                StatusCode::BAD_REQUEST,
                &FieldError {
                    field: "currentPassword",
                    message: "this account signs in without a password".into(),
                },
            );
        }
        Err(e) => return db_error(e).into_response(),
    };
    let plausible = current.expose().chars().count() <= accounts::PASSWORD_MAX;
    let ok = plausible
        && match state.passwords.verify(&current, Some(&stored)).await {
            Ok(ok) => ok,
            Err(e) => return hash_error(e),
        };
    if !ok {
        state.limiter.by_user.record(&user_key);
        state.limiter.by_address.record(&address);
        return field_error(
            StatusCode::BAD_REQUEST,
            &FieldError {
                field: "currentPassword",
                message: "the current password is wrong".into(),
            },
        );
    }
    if let Err(e) = accounts::validate_password("newPassword", new.expose()) {
        return field_error(StatusCode::BAD_REQUEST, &e);
    }
    let hash = match state.passwords.hash(&new).await {
        Ok(h) => h,
        Err(e) => return hash_error(e),
    };
    if let Err(e) = accounts::set_password_hash(&state.db, user.id(), &hash).await {
        return db_error(e).into_response();
    }
    match state
        .sessions
        .revoke_others(user.id(), &user.session_id)
        .await
    {
        Ok(n) => {
            tracing::info!(user_id = %user.id(), revoked = n, "password changed");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => db_error(e).into_response(),
    }
}

/// `GET /api/auth/session`: who is signed in (no token in the body).
pub async fn session(user: AuthUser) -> Response {
    Json(json!({"user": public_user(&user.user)})).into_response()
}

// ---- dev login and OIDC --------------------------------------------------------------------

#[derive(Deserialize)]
struct DevLoginBody {
    username: String,
}

/// `POST /api/auth/dev-login`: sign in as any existing user by name, only with `DEV_LOGIN=true`.
pub async fn dev_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    if !state.config.dev_login {
        return error_response(
            StatusCode::NOT_FOUND,
            "the dev login is off (DEV_LOGIN=true turns it on)",
        );
    }
    let b: DevLoginBody = match json_body(&bytes) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let username = match accounts::validate_username(&b.username) {
        Ok(u) => u,
        Err(e) => return field_error(StatusCode::BAD_REQUEST, &e),
    };
    match accounts::find_by_username(&state.db, &username).await {
        Ok(Some(user)) if user.active => {
            tracing::warn!(user_id = %user.id, "dev login");
            browser_session(&state, &headers, &user, StatusCode::OK).await
        }
        Ok(Some(_)) => error_response(StatusCode::FORBIDDEN, "this account is deactivated"),
        Ok(None) => error_response(
            StatusCode::NOT_FOUND,
            &format!("no user named {:?}", username),
        ),
        Err(e) => db_error(e).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OidcBody {
    id_token: String,
}

/// `POST /api/auth/oidc`: `{idToken}` from the configured provider → `{user}` and the cookie.
pub async fn oidc(State(state): State<AppState>, headers: HeaderMap, bytes: Bytes) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return error_response(StatusCode::NOT_FOUND, "OIDC sign-in is not configured");
    };
    let b: OidcBody = match json_body(&bytes) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let claims = match oidc.verify(&b.id_token).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(problem = %e, "OIDC sign-in refused");
            return error_response(StatusCode::UNAUTHORIZED, &e.to_string());
        }
    };
    let user = match crate::auth::oidc::user_for(&state.db, &oidc.settings.issuer, &claims).await {
        Ok(u) => u,
        Err(e) => return db_error(e).into_response(),
    };
    if !user.active {
        return error_response(StatusCode::FORBIDDEN, "this account is deactivated");
    }
    tracing::info!(user_id = %user.id, "OIDC sign-in");
    browser_session(&state, &headers, &user, StatusCode::OK).await
}

// ---- the user list and the client configuration -----------------------------------------

/// `GET /api/auth/users`: the active users (signed in only).
pub async fn users(State(state): State<AppState>, _user: AuthUser) -> ApiResult {
    let users = list_users(&state.db).await?;
    Ok(Json(users.iter().map(public_user).collect::<Vec<_>>()).into_response())
}

/// `GET /api/config`: what the UI needs before anyone signs in.
pub async fn config(State(state): State<AppState>) -> Response {
    let oidc = state
        .config
        .oidc
        .as_ref()
        .map(|o| json!({"issuer": o.issuer, "audience": o.audience}));
    Json(json!({
        "zeroCacheUrl": state.config.public_zero_url,
        "devLogin": state.config.dev_login,
        "oidc": oidc,
    }))
    .into_response()
}
