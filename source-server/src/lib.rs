//! MongoDB change streams → Zero's custom change-source protocol (v0).
//!
//! The binary in `main.rs` is a thin edge around this library so that the integration tests and
//! the benchmark drive the same code. Layout, following the Postgres change source in
//! rocicorp/mono: position encoding (`lexi`, `watermark`), the snapshot (`snapshot`) and
//! streaming (`changes`, `streamer`, `rowchanges`) are kept apart.

pub mod catalog;
pub mod changes;
pub mod config;
pub mod connection;
pub mod downstream;
pub mod lexi;
pub mod loader;
pub mod metrics;
pub mod openapi;
pub mod protocol;
pub mod registry;
pub mod rowchanges;
pub mod rows;
pub mod server;
pub mod snapshot;
pub mod status;
pub mod streamer;
pub mod watermark;
