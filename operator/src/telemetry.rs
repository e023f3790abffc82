//! Logging setup: JSON lines by default (what log pipelines in a cluster want), plain text for a
//! developer's terminal. The filter comes from `RUST_LOG`, else the `--log-level` flag.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber.
pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},kube=warn,tower=warn,hyper=warn")));
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .init();
    } else {
        registry.with(fmt::layer()).init();
    }
}
