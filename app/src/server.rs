//! Every route of the server, and serving them.
//!
//! [`table`] is the one list that maps a method and path to a handler and says who may call
//! it: REST in `rest`, sign-in in `auth_api`, Zero's endpoints in `zero::mutate` and
//! `zero::query`, the OpenAPI document, and the UI (`web`) as the fallback. The router is built
//! from it, with the session check as a route layer on every route that is not public, and the
//! route-listing test calls every entry without credentials, so a new route cannot be
//! forgotten by either.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware;
use axum::routing::{MethodFilter, MethodRouter, on};
use tokio::net::TcpListener;

use crate::state::AppState;
use crate::{auth, auth_api, openapi, rest, web, zero};

/// Request bodies larger than this are refused (a push of many mutations stays far below).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: sign-in and sign-up, the client configuration, health, the API description and
    /// the static schema exports (the same schema every browser downloads with the UI).
    Public,
    /// A signed-in, active user (session cookie or bearer token).
    SignedIn,
    /// zero-cache on a signed-in user's behalf: the session, and `X-Api-Key` when configured.
    ZeroCache,
}

/// One route: method, path, access and handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Route {
        method,
        path,
        access,
        handler: on(filter, handler),
    }
}

/// Every route of the server.
pub fn table() -> Vec<Route> {
    use Access::{Public, SignedIn, ZeroCache};
    use Method as M;
    vec![
        route(M::GET, "/health", Public, rest::health),
        route(M::GET, "/openapi.json", Public, || async {
            axum::Json(openapi::document())
        }),
        route(M::GET, "/api/config", Public, auth_api::config),
        route(M::POST, "/api/auth/signup", Public, auth_api::signup),
        route(M::POST, "/api/auth/login", Public, auth_api::login),
        route(M::POST, "/api/auth/token", Public, auth_api::token),
        route(M::POST, "/api/auth/dev-login", Public, auth_api::dev_login),
        route(M::POST, "/api/auth/oidc", Public, auth_api::oidc),
        route(M::GET, "/api/auth/session", SignedIn, auth_api::session),
        route(M::POST, "/api/auth/logout", SignedIn, auth_api::logout),
        route(
            M::POST,
            "/api/auth/password",
            SignedIn,
            auth_api::change_password,
        ),
        route(M::GET, "/api/auth/users", SignedIn, auth_api::users),
        route(M::GET, "/api/users/me", SignedIn, rest::me),
        route(M::GET, "/api/users", SignedIn, rest::users),
        route(M::GET, "/api/rooms", SignedIn, rest::my_rooms),
        route(M::POST, "/api/rooms", SignedIn, rest::create_room),
        route(M::POST, "/api/rooms/{id}/join", SignedIn, rest::join_room),
        route(M::POST, "/api/rooms/{id}/leave", SignedIn, rest::leave_room),
        route(M::POST, "/api/rooms/{id}/invite", SignedIn, rest::invite),
        route(
            M::GET,
            "/api/rooms/{id}/messages",
            SignedIn,
            rest::room_messages,
        ),
        route(
            M::POST,
            "/api/rooms/{id}/messages",
            SignedIn,
            rest::send_message,
        ),
        route(M::PATCH, "/api/messages/{id}", SignedIn, rest::edit_message),
        route(
            M::DELETE,
            "/api/messages/{id}",
            SignedIn,
            rest::delete_message,
        ),
        route(M::POST, "/api/seed", SignedIn, rest::seed),
        route(M::GET, "/api/schema/export", Public, rest::schema_export),
        route(
            M::GET,
            "/api/schema/table-mappings",
            Public,
            rest::table_mappings,
        ),
        route(
            M::POST,
            "/api/zero/mutate",
            ZeroCache,
            zero::mutate::handler,
        ),
        route(M::POST, "/api/zero/query", ZeroCache, zero::query::handler),
    ]
}

/// `(method, path, access)` of every route, for the tests and the OpenAPI check.
pub fn route_list() -> Vec<(Method, &'static str, Access)> {
    table()
        .into_iter()
        .map(|r| (r.method, r.path, r.access))
        .collect()
}

/// Every route of the server, with the UI as the fallback.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for r in table() {
        let handler = match r.access {
            Access::Public => r.handler,
            Access::SignedIn => r.handler.route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_session,
            )),
            Access::ZeroCache => r.handler.route_layer(middleware::from_fn_with_state(
                state.clone(),
                zero::auth::require_zero_caller,
            )),
        };
        // Two methods on one path merge into one method router.
        router = router.route(r.path, handler);
    }
    router
        .fallback(web::serve)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(crate::api_error::json_errors))
        .with_state(state)
}

/// Prepares the database and serves until `shutdown` resolves. The peer address reaches the
/// handlers (the per-address sign-in limit).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    state.db.ensure_schema().await?;
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}
