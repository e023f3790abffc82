//! `kubectl port-forward` to a Service or pod, on a loopback port, kept up.
//!
//! A forward is bound to one pod when it starts, and kubectl gives up (exits) when that pod's
//! container goes away: after a pod is killed, or when zero-cache exits for a re-sync and is
//! restarted. A client connected through the forward must find the port answering again, as it
//! would a Service in the cluster, so a supervisor task starts kubectl again on the same port
//! whenever it exits, until the forward is dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::task::JoinHandle;
use zerostack_harness::cluster::Cluster;
use zerostack_harness::{ManagedProcess, free_port};

pub struct PortForward {
    pub port: u16,
    target: String,
    /// How many times kubectl was started (1 = never restarted).
    starts: Arc<AtomicU32>,
    supervisor: JoinHandle<()>,
}

impl Drop for PortForward {
    fn drop(&mut self) {
        // Dropping the task drops its kubectl process, which stops it by PID.
        self.supervisor.abort();
    }
}

impl PortForward {
    /// Forwards `127.0.0.1:<free port>` to `target` (`svc/name` or `pod/name`) port `remote`.
    pub async fn start(
        cluster: &Cluster,
        namespace: &str,
        target: &str,
        remote: u16,
        logs: &Path,
    ) -> anyhow::Result<PortForward> {
        Self::start_on(cluster, namespace, target, free_port(), remote, logs).await
    }

    /// Like [`PortForward::start`], on a local port chosen before (e.g. one already written
    /// into a manifest); waits until the port accepts connections.
    pub async fn start_on(
        cluster: &Cluster,
        namespace: &str,
        target: &str,
        port: u16,
        remote: u16,
        logs: &Path,
    ) -> anyhow::Result<PortForward> {
        let starts = Arc::new(AtomicU32::new(0));
        let spawn = Spawn {
            cluster: cluster.clone(),
            namespace: namespace.into(),
            target: target.into(),
            local: port,
            remote,
            logs: logs.to_path_buf(),
        };
        let first = spawn.start(&starts)?;
        let supervisor = tokio::spawn(supervise(spawn, first, starts.clone()));
        let pf = PortForward {
            port,
            target: target.into(),
            starts,
            supervisor,
        };
        pf.wait_answering(Duration::from_secs(60)).await?;
        Ok(pf)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many times kubectl had to be started again.
    pub fn restarts(&self) -> u32 {
        self.starts.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// Waits until the local port accepts a connection.
    pub async fn wait_answering(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.supervisor.is_finished() {
                bail!("the port-forward to {} stopped", self.target);
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "the port-forward to {} does not answer on {} after {timeout:?}",
            self.target,
            self.port
        )
    }
}

struct Spawn {
    cluster: Cluster,
    namespace: String,
    target: String,
    local: u16,
    remote: u16,
    logs: PathBuf,
}

impl Spawn {
    fn start(&self, starts: &AtomicU32) -> anyhow::Result<ManagedProcess> {
        let mut cmd = self.cluster.kubectl();
        cmd.args([
            "-n",
            &self.namespace,
            "port-forward",
            "--address",
            "127.0.0.1",
            &self.target,
            &format!("{}:{}", self.local, self.remote),
        ]);
        starts.fetch_add(1, Ordering::Relaxed);
        let name = format!("port-forward-{}", self.target.replace('/', "-"));
        ManagedProcess::spawn(&name, cmd, &self.logs)
    }
}

/// Starts kubectl again whenever it exits (a pod it was bound to went away), after a short
/// pause so a pod that is still starting does not make it spin.
async fn supervise(spawn: Spawn, mut process: ManagedProcess, starts: Arc<AtomicU32>) {
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if process.is_running() {
            continue;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        match spawn.start(&starts) {
            Ok(p) => process = p,
            Err(e) => {
                eprintln!("port-forward {}: cannot start kubectl: {e:#}", spawn.target);
                return;
            }
        }
    }
}
