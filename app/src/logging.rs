//! Where log lines go and how they look, set up once from the parsed settings.
//!
//! The settings (`LOG_LEVEL`, `LOG_FORMAT`) are read and checked with every other setting in
//! `config`; this only installs the subscriber, so that a bad value is reported like any other
//! configuration error, before anything runs.

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber: the level filter and the text or JSON format.
pub fn init_logging(settings: LogSettings) {
    let builder = tracing_subscriber::fmt().with_env_filter(settings.filter);
    match settings.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
