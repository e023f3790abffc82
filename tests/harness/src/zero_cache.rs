//! The real zero-cache 1.9.0 (`tests/node/node_modules/.bin/zero-cache`) configured for a
//! custom change source, with its replica, scratch storage and logs in its own folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::node::{ensure_node_modules, read_replica};
use crate::paths::{node_bin, node_dir, zero_cache_bin};
use crate::process::ManagedProcess;
use crate::state::{free_port_block, service_temp_dir};

/// How zero-cache is configured. `upstream_url`, `cvr_db` and `change_db` are required.
#[derive(Clone, Debug, Default)]
pub struct ZeroCacheOptions {
    /// The source's stream URL, `ws://127.0.0.1:PORT/changes/v0/stream[?token=...]`.
    pub upstream_url: String,
    /// PostgreSQL URL of the CVR database.
    pub cvr_db: String,
    /// PostgreSQL URL of the change database.
    pub change_db: String,
    /// `ZERO_APP_ID` (zero-cache's default: `zero`).
    pub app_id: Option<String>,
    pub mutate_url: Option<String>,
    pub query_url: Option<String>,
    /// Client port (it also uses +1 and +2); `None`: a free block.
    pub port: Option<u16>,
    /// `ZERO_ADMIN_PASSWORD`; `None`: a fixed test value.
    pub admin_password: Option<String>,
    /// How long `start` waits for `zero-cache ready`; `None`: 90 s.
    pub ready_timeout: Option<Duration>,
    /// More environment, applied last (overrides the defaults above).
    pub extra_env: Vec<(String, String)>,
    /// Run zero-cache, and the workers it forks, only on these CPUs (`taskset -c`, a list such
    /// as `0` or `0,2-3`); for benchmarks that keep it apart from its upstream.
    pub cpus: Option<String>,
}

pub struct ZeroCache {
    dir: PathBuf,
    port: u16,
    opts: ZeroCacheOptions,
    process: ManagedProcess,
    /// Log sizes when the current process started: readiness is looked for after them.
    log_offsets: (u64, u64),
    _temp: Option<TempDir>,
}

impl ZeroCache {
    /// Starts zero-cache in its own temp dir (removed on drop) and waits until it is ready.
    pub async fn start(opts: ZeroCacheOptions) -> anyhow::Result<Self> {
        let temp = service_temp_dir("zero-cache")?;
        let mut zc = Self::spawn_in(temp.path(), opts)?;
        zc._temp = Some(temp);
        zc.wait_ready().await?;
        Ok(zc)
    }

    /// Starts zero-cache with its state in `dir` and waits until it is ready.
    pub async fn start_in(dir: impl AsRef<Path>, opts: ZeroCacheOptions) -> anyhow::Result<Self> {
        let mut zc = Self::spawn_in(dir, opts)?;
        zc.wait_ready().await?;
        Ok(zc)
    }

    /// Starts zero-cache in `dir` without waiting (see [`Self::wait_ready`]).
    pub fn spawn_in(dir: impl AsRef<Path>, opts: ZeroCacheOptions) -> anyhow::Result<Self> {
        for (name, value) in [
            ("upstream_url", &opts.upstream_url),
            ("cvr_db", &opts.cvr_db),
            ("change_db", &opts.change_db),
        ] {
            if value.is_empty() {
                bail!("ZeroCacheOptions.{name} is required");
            }
        }
        ensure_node_modules()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(dir.join("storage"))?;
        let port = opts.port.unwrap_or_else(|| free_port_block(3));
        let zc = Self {
            process: spawn(&dir, port, &opts)?,
            dir,
            port,
            opts,
            log_offsets: (0, 0),
            _temp: None,
        };
        Ok(zc)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL clients use, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn replica_file(&self) -> PathBuf {
        self.dir.join("zero.db")
    }

    pub fn options(&self) -> &ZeroCacheOptions {
        &self.opts
    }

    pub fn process(&mut self) -> &mut ManagedProcess {
        &mut self.process
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.process.log_tail(n)
    }

    /// Waits until this run logged `zero-cache ready` and `GET /` answers; fails early, with
    /// the log, if it exits.
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let timeout = self.opts.ready_timeout.unwrap_or(Duration::from_secs(90));
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.process.exit_status() {
                bail!(
                    "zero-cache exited during start-up ({})\n{}",
                    ManagedProcess::describe_exit(&status),
                    self.process.log_tail(40)
                );
            }
            if self.logged_since_start("zero-cache ready") && http_ok(self.port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "zero-cache not ready after {timeout:?}\n{}",
            self.process.log_tail(40)
        )
    }

    fn logged_since_start(&self, needle: &str) -> bool {
        let read_from = |p: &Path, offset: u64| -> bool {
            std::fs::read(p).is_ok_and(|b| {
                let from = (offset as usize).min(b.len());
                String::from_utf8_lossy(&b[from..]).contains(needle)
            })
        };
        read_from(self.process.stdout_log(), self.log_offsets.0)
            || read_from(self.process.stderr_log(), self.log_offsets.1)
    }

    /// SIGTERM (clean shutdown, about 3 s), then starts again with the same port and replica.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.terminate().await?;
        self.start_again().await
    }

    /// Starts it again after it exited (stop, kill9, exit 14 after reset-required) and waits
    /// until it is ready.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if self.process.is_running() {
            bail!("zero-cache (pid {}) is still running", self.process.pid());
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let offsets = (
            size(self.process.stdout_log()),
            size(self.process.stderr_log()),
        );
        self.process = spawn(&self.dir, self.port, &self.opts)?;
        self.log_offsets = offsets;
        self.wait_ready().await
    }

    /// Clean shutdown; returns the exit code (`None` if a signal ended it).
    pub async fn stop(&mut self) -> anyhow::Result<Option<i32>> {
        Ok(self.terminate().await?.code())
    }

    /// SIGTERM, then SIGKILL after the grace period, like [`ManagedProcess::terminate`], and
    /// then SIGKILL to any worker that outlived the launcher (see [`Self::kill9`]).
    pub async fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let tree = process_tree(self.process.pid());
        let status = self.process.terminate().await;
        kill_survivors(&tree);
        status
    }

    /// SIGKILL to zero-cache and its workers. zero-cache 1.9.0 forks every worker with
    /// `detached: true` (`types/processes.js:109`), so each is a process group of its own and a
    /// group kill reaches only the launcher: the workers would live on, still serving the
    /// clients they hold. So every descendant is killed by PID first, then the group.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        // A few rounds: a worker may fork (Litestream, a new worker) while we look.
        for _ in 0..3 {
            let tree = process_tree(self.process.pid());
            if tree.is_empty() {
                break;
            }
            kill_survivors(&tree);
        }
        self.process.kill9().await.map(|_| ())
    }

    /// Waits for it to exit on its own; its exit code (14 after reset-required).
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        self.process.wait_exit(timeout).await
    }

    /// The replica as JSON, via `read-replica.mjs` (see [`crate::read_replica`]).
    pub async fn replica(&self) -> anyhow::Result<serde_json::Value> {
        read_replica(&self.replica_file()).await
    }
}

/// The environment from the protocol notes (§1.11/§2): custom upstream, no start-up delay,
/// one sync worker, no telemetry, scratch storage in our folder, JSON logs.
fn spawn(dir: &Path, port: u16, opts: &ZeroCacheOptions) -> anyhow::Result<ManagedProcess> {
    let mut cmd = match &opts.cpus {
        Some(cpus) => {
            // taskset execs node in its own place: the pid stays the one the harness manages.
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(node_bin());
            c
        }
        None => Command::new(node_bin()),
    };
    cmd.arg(zero_cache_bin());
    // Settings from the caller's environment must not leak into a test's zero-cache.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("ZERO_")) {
            cmd.env_remove(&key);
        }
    }
    let replica = dir.join("zero.db");
    cmd.current_dir(node_dir())
        .env("ZERO_UPSTREAM_TYPE", "custom")
        .env("ZERO_UPSTREAM_DB", &opts.upstream_url)
        .env("ZERO_CVR_DB", &opts.cvr_db)
        .env("ZERO_CHANGE_DB", &opts.change_db)
        .env("ZERO_REPLICA_FILE", &replica)
        .env(
            "ZERO_ADMIN_PASSWORD",
            opts.admin_password
                .as_deref()
                .unwrap_or("zerostack-test-admin"),
        )
        .env("ZERO_PORT", port.to_string())
        // zero-cache 1.9.0 otherwise makes a random nanoid task ID and passes it to its
        // workers as `--task-id <id>`; one starting with '-' (1 in 64 starts) is parsed as a
        // flag and the workers exit with "Expected string at taskID. Got true".
        .env("ZERO_TASK_ID", format!("zc-{port}"))
        .env("ZERO_NUM_SYNC_WORKERS", "1")
        .env("ZERO_CHANGE_STREAMER_STARTUP_DELAY_MS", "0")
        .env("ZERO_ENABLE_TELEMETRY", "false")
        .env("DO_NOT_TRACK", "1")
        .env("ZERO_STORAGE_DB_TMP_DIR", dir.join("storage"))
        .env("ZERO_LOG_FORMAT", "json");
    if let Some(app) = &opts.app_id {
        cmd.env("ZERO_APP_ID", app);
    }
    // An app's endpoints authenticate browsers by their session cookie: zero-cache forwards
    // the WebSocket's `Cookie` header to them only when told to (`extra_env` can say false).
    if let Some(url) = &opts.mutate_url {
        cmd.env("ZERO_MUTATE_URL", url)
            .env("ZERO_MUTATE_FORWARD_COOKIES", "true");
    }
    if let Some(url) = &opts.query_url {
        cmd.env("ZERO_QUERY_URL", url)
            .env("ZERO_QUERY_FORWARD_COOKIES", "true");
    }
    for (k, v) in &opts.extra_env {
        cmd.env(k, v);
    }
    Ok(ManagedProcess::spawn("zero-cache", cmd, dir)?.with_grace(Duration::from_secs(15)))
}

/// Stops a dropped zero-cache's workers too: [`ManagedProcess`]'s own drop reaches only the
/// launcher's group (see [`ZeroCache::kill9`]).
impl Drop for ZeroCache {
    fn drop(&mut self) {
        if !self.process.is_running() {
            return;
        }
        let tree = process_tree(self.process.pid());
        let _ = self.process.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.process.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        kill_survivors(&tree);
    }
}

/// SIGKILL to each process of `tree` that still is the same process (same start time), so a
/// PID reused since it was listed is never hit.
fn kill_survivors(tree: &[(u32, u64)]) {
    for &(pid, started) in tree {
        if start_time(pid) == Some(started) {
            // SAFETY: kill(2) on a descendant of the process we spawned, checked just now by
            // its PID and start time.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// `(ppid, start time)` of a process from `/proc/<pid>/stat` (`pid (comm) state ppid ...`;
/// comm may hold spaces and parentheses, so fields are read after the last ')').
fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After comm: state (0), ppid (1), ... starttime is field 22 of the line, index 19 here.
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

fn start_time(pid: u32) -> Option<u64> {
    stat_of(pid).map(|(_, started)| started)
}

/// Every live descendant of `root` (children, their children, ...) with its start time.
fn process_tree(root: u32) -> Vec<(u32, u64)> {
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((ppid, started)) = stat_of(pid) {
            procs.push((pid, ppid, started));
        }
    }
    let mut found: Vec<(u32, u64)> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, started) in &procs {
            if ppid == parent && !found.iter().any(|&(p, _)| p == pid) {
                found.push((pid, started));
                frontier.push(pid);
            }
        }
    }
    found
}

/// `GET /` on 127.0.0.1:port answers 200.
async fn http_ok(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).await?;
        Ok::<bool, std::io::Error>(buf[..n].starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_of_a_shell_holds_its_child_and_grandchild() {
        let mut child = Command::new("sh")
            .args(["-c", "sh -c 'sleep 30' & sleep 30"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let tree = process_tree(child.id());
        assert!(tree.len() >= 2, "{tree:?}");
        kill_survivors(&tree);
        std::thread::sleep(Duration::from_millis(100));
        assert!(process_tree(child.id()).is_empty());
        let _ = child.kill();
        let _ = child.wait();
    }
}
