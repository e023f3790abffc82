//! The operator binary: parses flags, sets up JSON logs, serves `/metrics` and `/health`,
//! optionally waits for the leader lease (and exits the moment it is lost), and runs the
//! controller until SIGTERM/SIGINT, then gives the lease up.
//! It connects in-cluster (service account) or through the local kubeconfig.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::{Router, extract::State, routing::get};
use clap::Parser;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::watch;
use tracing::{info, warn};
use zerostack_operator::{controller, leader, metrics::Metrics, reconcile::Context, telemetry};

#[derive(Parser, Debug)]
#[command(name = "operator", version, about = "Reconciles ZeroStack resources")]
struct Args {
    /// Address of the HTTP server (/metrics, /health).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Log format: json or text.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    log_format: String,
    /// Log level when RUST_LOG is not set.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Take a Lease before reconciling (needed when running more than one replica).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false)]
    leader_election: bool,
    /// Name of the Lease.
    #[arg(
        long,
        env = "LEADER_ELECTION_LEASE",
        default_value = "zerostack-operator"
    )]
    lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.log_format != "text", &args.log_level);
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let metrics = Arc::new(Metrics::default());

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    let wait_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.encode(),
                )
            }),
        )
        .with_state(metrics.clone());
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    info!(addr = %args.metrics_addr, "serving /metrics and /health");
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(wait_stop(stop_rx.clone()))
            .into_future(),
    );

    let namespace = args.watch_namespace.clone().filter(|n| !n.is_empty());
    controller::check_crd(&client, namespace.as_deref()).await?;

    let leadership = if args.leader_election {
        let identity = args
            .identity
            .clone()
            .unwrap_or_else(|| format!("operator-{}", std::process::id()));
        let cfg = leader::LeaseConfig::new(&args.lease_name, &args.lease_namespace, &identity);
        let store = leader::KubeLeases::new(client.clone(), &cfg.namespace, &cfg.name);
        tokio::select! {
            l = leader::acquire(leader::Elector::new(store, cfg)) => Some(l),
            _ = wait_stop(stop_rx.clone()) => { let _ = server.await; return Ok(()); }
        }
    } else {
        None
    };

    let reporter = Reporter {
        controller: "zerostack-operator".into(),
        instance: args.identity.clone(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let ctx = Arc::new(Context::new(client, Some(recorder), metrics));
    let controller = controller::run(ctx, namespace, wait_stop(stop_rx));
    match &leadership {
        // Losing the lease stops reconciling at once: the process exits (the pod restarts as a
        // follower) before any other replica can have taken the lease over.
        Some(l) => tokio::select! {
            _ = controller => {}
            _ = l.lost() => {
                warn!("leadership lost; exiting so that only the new leader reconciles");
                std::process::exit(1);
            }
        },
        None => controller.await,
    }
    if let Some(l) = leadership {
        l.release().await;
    }
    let _ = server.await;
    info!("stopped");
    Ok(())
}
