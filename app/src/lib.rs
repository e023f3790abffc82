//! ZRocket: a Rocket.Chat-like chat on Zero and MongoDB.
//!
//! The library holds the whole server so that the binary stays a thin CLI and the integration
//! tests can start the real router in-process (`router` / `serve`). The business rules are in
//! `domain`, the HTTP side in `server` (routes), `auth_api` (sign-in), `rest`, `zero` and `web`; who is
//! calling in `auth`, the data in `db`.

pub mod api_error;
pub mod auth;
pub mod auth_api;
pub mod config;
pub mod db;
pub mod domain;
pub mod logging;
pub mod openapi;
pub mod rest;
pub mod seed;
pub mod server;
pub mod state;
pub mod web;
pub mod zero;

pub use server::{router, serve};
pub use state::AppState;
