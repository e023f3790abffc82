//! `kubectl port-forward` to a Service or pod, on a free loopback port.
//!
//! A forward to a Service is bound to one pod when it starts; after that pod is deleted it no
//! longer carries traffic, so the test restarts the forwards it needs after each pod kill
//! ([`PortForward::restart`]).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use zerostack_harness::cluster::Cluster;
use zerostack_harness::{ManagedProcess, free_port};

pub struct PortForward {
    cluster: Cluster,
    namespace: String,
    target: String,
    remote: u16,
    pub port: u16,
    logs: std::path::PathBuf,
    process: ManagedProcess,
}

impl PortForward {
    /// Forwards `127.0.0.1:<free port>` to `target` (`svc/name` or `pod/name`) port `remote`,
    /// and waits until the local port accepts connections.
    pub async fn start(
        cluster: &Cluster,
        namespace: &str,
        target: &str,
        remote: u16,
        logs: &std::path::Path,
    ) -> anyhow::Result<PortForward> {
        Self::start_on(cluster, namespace, target, free_port(), remote, logs).await
    }

    /// Like [`PortForward::start`], on a local port chosen before (e.g. one already written
    /// into a manifest).
    pub async fn start_on(
        cluster: &Cluster,
        namespace: &str,
        target: &str,
        port: u16,
        remote: u16,
        logs: &std::path::Path,
    ) -> anyhow::Result<PortForward> {
        let process = spawn(cluster, namespace, target, port, remote, logs)?;
        let mut pf = PortForward {
            cluster: cluster.clone(),
            namespace: namespace.into(),
            target: target.into(),
            remote,
            port,
            logs: logs.to_path_buf(),
            process,
        };
        pf.wait().await?;
        Ok(pf)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the forward again on the same local port (after its pod went away).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.process.terminate().await;
        self.process = spawn(
            &self.cluster,
            &self.namespace,
            &self.target,
            self.port,
            self.remote,
            &self.logs,
        )?;
        self.wait().await
    }

    async fn wait(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if !self.process.is_running() {
                bail!(
                    "kubectl port-forward {} exited\n{}",
                    self.target,
                    self.process.log_tail(20)
                );
            }
            if self.process.log_contains("Forwarding from")
                && tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "kubectl port-forward {} did not start\n{}",
            self.target,
            self.process.log_tail(20)
        )
    }
}

fn spawn(
    cluster: &Cluster,
    namespace: &str,
    target: &str,
    local: u16,
    remote: u16,
    logs: &std::path::Path,
) -> anyhow::Result<ManagedProcess> {
    let mut cmd: Command = cluster.kubectl();
    cmd.args([
        "-n",
        namespace,
        "port-forward",
        "--address",
        "127.0.0.1",
        target,
        &format!("{local}:{remote}"),
    ]);
    let name = format!("port-forward-{}", target.replace('/', "-"));
    ManagedProcess::spawn(&name, cmd, logs)
}
