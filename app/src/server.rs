//! Every route of the server, and serving them.
//!
//! The one place that maps a method and path to a handler: REST in `rest`, Zero's endpoints in
//! `zero::mutate` and `zero::query`, the OpenAPI document, and the UI (`web`) as the fallback.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};
use tokio::net::TcpListener;

use crate::state::AppState;
use crate::{openapi, rest, web, zero};

/// Request bodies larger than this are refused (a push of many mutations stays far below).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(rest::health))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .route("/api/config", get(rest::config))
        .route("/api/auth/users", get(rest::auth_users))
        .route("/api/auth/login", post(rest::login))
        .route("/api/auth/session", get(rest::session))
        .route("/api/auth/logout", post(rest::logout))
        .route("/api/users/me", get(rest::me))
        .route("/api/users", get(rest::users))
        .route("/api/rooms", get(rest::my_rooms).post(rest::create_room))
        .route("/api/rooms/{id}/join", post(rest::join_room))
        .route("/api/rooms/{id}/leave", post(rest::leave_room))
        .route("/api/rooms/{id}/invite", post(rest::invite))
        .route(
            "/api/rooms/{id}/messages",
            get(rest::room_messages).post(rest::send_message),
        )
        .route(
            "/api/messages/{id}",
            patch(rest::edit_message).delete(rest::delete_message),
        )
        .route("/api/seed", post(rest::seed))
        .route("/api/schema/export", get(rest::schema_export))
        .route("/api/schema/table-mappings", get(rest::table_mappings))
        .route("/api/zero/mutate", post(zero::mutate::handler))
        .route("/api/zero/query", post(zero::query::handler))
        .fallback(web::serve)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Prepares the database and serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    state.db.ensure_schema().await?;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
