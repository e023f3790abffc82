//! ZRocket: a Rocket.Chat-like chat on Zero and MongoDB.
//!
//! The library holds the whole server so that the binary stays a thin CLI and the integration
//! tests can start the real router in-process (`router` / `serve`).

pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod openapi;
pub mod rest;
pub mod seed;
pub mod web;
pub mod zero;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, patch, post};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::Db;

/// Shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub keys: Arc<auth::Keys>,
}

impl AppState {
    pub fn new(db: Db, config: Config) -> AppState {
        let keys = auth::Keys::new(&config.auth_secret, config.token_ttl_secs);
        AppState {
            db,
            config: Arc::new(config),
            keys: Arc::new(keys),
        }
    }
}

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
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
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

/// Sets up logging from `LOG_LEVEL` (default info) and `LOG_FORMAT` (`text` | `json`).
pub fn init_logging() -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&level)
        .map_err(|e| anyhow::anyhow!("LOG_LEVEL {level:?} is invalid: {e}"))?;
    let format = std::env::var("LOG_FORMAT").unwrap_or_else(|_| "text".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format.as_str() {
        "json" => builder.json().init(),
        "text" | "" => builder.init(),
        other => anyhow::bail!("LOG_FORMAT must be \"text\" or \"json\", got {other:?}"),
    }
    Ok(())
}
