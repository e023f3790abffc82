//! `source-server`: the process edge — settings, logging, MongoDB connection, HTTP server and
//! graceful shutdown. Everything else lives in the library.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use clap::Parser;
use source_server::config::inputs::{self, Loaded};
use source_server::config::settings::{Cli, Command, LogFormat, Settings};
use source_server::http::router;
use source_server::mongo::images;
use source_server::replication::config_history;
use source_server::server_state::ServerState;
use tracing::{error, info, warn};

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "{lvl},mongodb=warn,hyper=warn",
        lvl = settings.log_level
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::resolve(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("source-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
    let loaded = match inputs::load(&settings).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("source-server: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.command == Some(Command::Check) {
        let collections: std::collections::BTreeSet<_> = loaded
            .config
            .tables
            .iter()
            .map(|t| t.source.as_str())
            .collect();
        println!(
            "ok: {} tables from {} collections; config hash {}",
            loaded.config.tables.len(),
            collections.len(),
            loaded.config.hash
        );
        for t in &loaded.config.tables {
            println!("  {} <- {}", t.name, t.source);
        }
        return ExitCode::SUCCESS;
    }
    match serve(settings, loaded).await {
        Ok(()) => ExitCode::SUCCESS,
        // A database that does not keep the images the configuration needs is a configuration
        // error like the others: one line, exit code 2.
        Err(e) if e.downcast_ref::<images::ImagesError>().is_some() => {
            eprintln!("source-server: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            error!("{e:#}");
            eprintln!("source-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, loaded: Loaded) -> anyhow::Result<()> {
    let options = mongodb::options::ClientOptions::parse(settings.mongodb_uri.expose())
        .await
        .map_err(|_| anyhow::anyhow!("MONGODB_URI is not a valid MongoDB connection string"))?;
    let database = settings
        .mongodb_database
        .clone()
        .or_else(|| options.default_database.clone())
        .context("no database: set MONGODB_DATABASE or put one in MONGODB_URI")?;
    let client = mongodb::Client::with_options(options).context("creating the MongoDB client")?;
    let db = client.database(&database);
    check_images(&settings, &loaded, &db).await?;
    let addr = format!("{}:{}", settings.host, settings.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local_addr = listener.local_addr()?;
    // A Zero transaction leaves in one flush. With Nagle's algorithm on, that small write waits
    // while the previous one is unacknowledged, i.e. for zero-cache's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            warn!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    });
    info!(
        addr = %local_addr,
        database = %database,
        tables = loaded.tables.len(),
        config_hash = %loaded.config.hash,
        "source-server listening"
    );
    let state = Arc::new(ServerState::new(settings, db, loaded));
    // Other sources must know this configuration is running (schema changes during a rollout).
    tokio::spawn(config_history::announce_forever(
        state.db.clone(),
        state.settings.registry_collection.clone(),
        state.config_hash().to_string(),
    ));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    info!("source-server stopped");
    Ok(())
}

/// Refuses to start when a collection lacks the pre-/post-images the configuration needs (see
/// `mongo::images`). A MongoDB that does not answer yet is not a refusal: every connection
/// checks again.
async fn check_images(
    settings: &Settings,
    loaded: &Loaded,
    db: &mongodb::Database,
) -> Result<(), images::ImagesError> {
    let mut collections: Vec<String> = loaded
        .tables
        .iter()
        .map(|t| t.spec().source.clone())
        .collect();
    let bookkeeping = &loaded.config.bookkeeping;
    collections.push(bookkeeping.clients_collection.clone());
    collections.push(bookkeeping.mutations_collection.clone());
    let needs = images::needed(&loaded.tables, &collections, settings.full_document);
    match tokio::time::timeout(Duration::from_secs(5), images::check(db, &needs)).await {
        Ok(Ok(missing)) if !missing.is_empty() => {
            warn!(collections = ?missing, "these collections need changeStreamPreAndPostImages and do not exist yet: create them with it enabled");
            Ok(())
        }
        Ok(Ok(_)) => Ok(()),
        Ok(Err(images::ImagesError::Mongo(e))) => {
            warn!(error = %e, "cannot check changeStreamPreAndPostImages yet; every connection checks again");
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            warn!(
                "MongoDB did not answer within 5 s; changeStreamPreAndPostImages is checked on every connection"
            );
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
