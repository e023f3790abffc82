//! ZRocket: a Rocket.Chat-like chat on Zero and MongoDB.
//!
//! The library holds the whole server so that the binary stays a thin CLI and the integration
//! tests can start the real router in-process (`router` / `serve`).

pub mod api_error;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod openapi;
pub mod rest;
pub mod seed;
pub mod server;
pub mod state;
pub mod web;
pub mod zero;

pub use server::{router, serve};
pub use state::AppState;

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
