//! The `zrocket` command line: `serve` (default), `export --out DIR`, `seed`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use zrocket::config::{self, Config};
use zrocket::db::Db;
use zrocket::{AppState, zero::schema};

#[derive(Parser)]
#[command(
    name = "zrocket",
    version,
    about = "ZRocket: a chat app on Zero and MongoDB"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, the Zero endpoints and the UI (the default).
    Serve,
    /// Write schema.json, table-mappings.json and permissions.json into a directory.
    Export {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Insert the demo data (idempotent, never destructive).
    Seed,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match zrocket::init_logging() {
        Err(e) => Err(e),
        Ok(()) => match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve().await,
            Command::Export { out } => export(&out),
            Command::Seed => seed().await,
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the cause chain; never a backtrace full of noise.
            eprintln!("zrocket: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    tracing::info!(?config, "starting zrocket");
    let db = Db::connect(&config.mongodb_uri, config.mongodb_database.as_deref()).await?;
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

async fn seed() -> anyhow::Result<()> {
    let (uri, database) = config::mongodb_from(&|k| std::env::var(k).ok())?;
    let db = Db::connect(&uri, database.as_deref()).await?;
    db.ensure_schema().await?;
    let report = zrocket::seed::run(&db).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
