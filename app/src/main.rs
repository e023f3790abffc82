//! The `zrocket` binary: `serve` (the default), `export --out DIR`, `seed`.
//!
//! A thin shell over the library: `config::Cli` reads the command line and the environment,
//! the settings are validated, logging is set up, and the command runs. Any error ends the
//! process with one line naming its cause chain.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use zrocket::config::{Cli, Command, Config, MongoSettings};
use zrocket::db::Db;
use zrocket::logging::init_logging;
use zrocket::{AppState, zero::schema};

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the cause chain; never a backtrace full of noise.
            eprintln!("zrocket: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.log.validate()?);
    match cli.into_command() {
        Command::Serve(args) => {
            if args.sets_retired_auth_secret() {
                tracing::warn!(
                    "AUTH_SECRET is set but no longer used (sessions are stored in MongoDB); remove it"
                );
            }
            serve(args.validate()?).await
        }
        Command::Export { out } => export(&out),
        Command::Seed(args) => seed(args.validate()?).await,
    }
}

async fn connect(mongodb: &MongoSettings) -> anyhow::Result<Db> {
    Db::connect(mongodb.uri.expose(), mongodb.database.as_deref()).await
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!(?config, "starting zrocket");
    if config.dev_login {
        tracing::warn!("DEV_LOGIN is on: anyone who can reach the app can sign in as any user");
    }
    let db = connect(&config.mongodb).await?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port))
        .await
        .with_context(|| format!("cannot listen on port {}", config.port))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    zrocket::serve(listener, AppState::new(db, config), shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

fn export(out: &Path) -> anyhow::Result<()> {
    let files = schema::export_files();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, value) in files {
        let path = out.join(name);
        let text = serde_json::to_string_pretty(&value)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

async fn seed(mongodb: MongoSettings) -> anyhow::Result<()> {
    let db = connect(&mongodb).await?;
    db.ensure_schema().await?;
    let report = zrocket::seed::run(&db).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
