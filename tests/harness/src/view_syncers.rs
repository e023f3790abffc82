//! zero-cache 1.9.0 as Rocicorp deploys it past one node: one **replication-manager** (the only
//! process that dials our custom change source; `ZERO_NUM_SYNC_WORKERS=0`, it serves the change
//! stream to its peers on its port + 1 and backs its replica up with Litestream) and N
//! **view-syncers** (`ZERO_CHANGE_STREAMER_URI=ws://<rm>:<port+1>/`, each restoring its replica
//! from that backup at start, then following the replication-manager). Exists so tests, the local
//! stack and the fan-out benchmark start this topology one way, on loopback and free ports.
//!
//! # What zero-cache 1.9.0 needs (read in `out/zero-cache/src` of the installed package)
//!
//! - `server/main.js:44`: a process runs the change-streamer only when `ZERO_CHANGE_STREAMER_URI`
//!   is unset; with it set (a view-syncer) `main.js:48` restores the replica from the backup, and
//!   only when `ZERO_LITESTREAM_EXECUTABLE` is set. Without a restore a view-syncer has no replica:
//!   its replicator reads `_zero.replicationState` from an empty file (`services/replicator/
//!   incremental-sync.js:46`), so **a view-syncer cannot run without a backup**.
//! - `server/change-streamer.js:50-58`: the replication-manager restores from the backup too
//!   (when it has a backup URL and an executable), and falls back to a fresh initial sync from
//!   the upstream when there is none; `:62-65` the custom upstream is used exactly as in a single
//!   node. `main.js:53-57` starts `litestream replicate` once the backup replicator is ready.
//! - `server/syncer.js:71`: view-syncers open an upstream connection only for `pg` upstreams, so
//!   with `ZERO_UPSTREAM_TYPE=custom` they never dial source-server (the setting must still be
//!   given: the config requires it).
//! - Litestream v0.5: `ZERO_LITESTREAM_BACKUP_USING_V5=true` requires
//!   `ZERO_LITESTREAM_EXECUTABLE == ZERO_LITESTREAM_EXECUTABLE_V5` (`config/normalize.js:18-19`);
//!   the replication-manager then reads the backup's watermark through the VFS extension at
//!   `ZERO_LITESTREAM_VFS_EXTENSION_PATH` (`server/backup-watermark-reader.js:25`,
//!   `services/change-streamer/backup-cleanup-monitor-factory.js:11`). Without v5 zero-cache
//!   wants Rocicorp's own Litestream 0.3 fork (`config/zero-config.js:676`), which no registry
//!   ships.
//! - The backup URL is only given to the replication-manager; view-syncers receive it in the
//!   snapshot reservation (`services/litestream/commands.js:102-107`,
//!   `services/change-streamer/vfs-backup-monitor.js:44-57`). No scheme is checked (only
//!   `vfs-watermark-reader.js:16` treats `s3:` specially for endpoint and region), and
//!   Litestream 0.5 has a `file://` replica, so the tests back up to a folder: no S3 server.
//! - `ZERO_LITESTREAM_CONFIG_PATH` defaults to a path relative to the working directory
//!   (`zero-config.js:708`); the harness gives the package's own `config.yml` by absolute path.
//!
//! # API (for tests and the benchmark)
//!
//! ```ignore
//! let mut t = Topology::start(dir, base_options, 2).await?; // RM, then 2 view-syncers
//! t.view_syncers.url(0);                  // a client's zero-cache URL ("http://127.0.0.1:P")
//! t.view_syncers.ports();                 // every view-syncer's client port
//! t.view_syncers.kill9(1).await?;         // SIGKILL one (its clients must go elsewhere)
//! t.view_syncers.start_again(1).await?;   // the same one again, on its port and replica
//! let i = t.view_syncers.add().await?;    // a new one, restored from the backup
//! t.restart_rm().await?;                  // SIGTERM the RM and start it again
//! t.rm.kill9().await?; t.rm.start_again().await?;
//! ```
//!
//! `base_options` is a [`ZeroCacheOptions`] as for a single node (upstream URL, CVR and change
//! databases, app id, mutate/query URLs, admin password); `port` is used for the first
//! view-syncer when given. Every process gets `ZERO_TASK_ID=zc-<port>` from [`ZeroCache`], so task
//! IDs are unique. [`ViewSyncers`] alone serves a caller that owns the replication-manager
//! itself (the stack keeps it as `Stack::zero`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::paths::{ensure_installed, node_dir, repo_root};
use crate::state::free_port_block;
use crate::zero_cache::{ZeroCache, ZeroCacheOptions};

/// How long a view-syncer may take to restore the backup and be ready (the first one waits
/// for the replication-manager's first backup to land).
const VIEW_SYNCER_READY: Duration = Duration::from_secs(120);
/// Litestream ships WAL changes to the backup this often (`sync-interval`, in minutes: 1.2 s).
/// zero-cache's default is 15 minutes; a test must not wait that long for a new view-syncer to
/// find recent rows in the backup (it catches up from the change stream either way).
const INCREMENTAL_BACKUP_MINUTES: &str = "0.02";

/// Litestream 0.5.17 from `tests/install.sh litestream`.
pub fn litestream_bin() -> PathBuf {
    repo_root().join(".cache/litestream/pkg/bin/litestream")
}

/// Litestream's SQLite VFS extension, which the replication-manager loads to read the backup.
pub fn litestream_vfs() -> PathBuf {
    repo_root().join(".cache/litestream/pkg/litestream_vfs/litestream-vfs.so")
}

/// The Litestream config zero-cache ships (it substitutes its settings into it).
fn litestream_config() -> PathBuf {
    node_dir().join("node_modules/@rocicorp/zero/out/zero-cache/src/services/litestream/config.yml")
}

/// Installs Litestream when it is missing.
pub fn ensure_litestream() -> anyhow::Result<()> {
    ensure_installed("litestream", || {
        litestream_bin().is_file() && litestream_vfs().is_file()
    })
}

/// The Litestream settings both roles share: the v5 binary for backup and restore.
fn litestream_env() -> Vec<(String, String)> {
    let bin = litestream_bin().display().to_string();
    vec![
        ("ZERO_LITESTREAM_EXECUTABLE".into(), bin.clone()),
        ("ZERO_LITESTREAM_EXECUTABLE_V5".into(), bin),
        ("ZERO_LITESTREAM_RESTORE_USING_V5".into(), "true".into()),
        ("ZERO_LITESTREAM_BACKUP_USING_V5".into(), "true".into()),
        (
            "ZERO_LITESTREAM_VFS_EXTENSION_PATH".into(),
            litestream_vfs().display().to_string(),
        ),
        (
            "ZERO_LITESTREAM_CONFIG_PATH".into(),
            litestream_config().display().to_string(),
        ),
        (
            "ZERO_LITESTREAM_INCREMENTAL_BACKUP_INTERVAL_MINUTES".into(),
            INCREMENTAL_BACKUP_MINUTES.into(),
        ),
    ]
}

/// `base` with `env` appended to its `extra_env` (later entries win), on `port`.
fn with_env(
    base: &ZeroCacheOptions,
    port: Option<u16>,
    env: Vec<(String, String)>,
) -> ZeroCacheOptions {
    let mut opts = base.clone();
    opts.port = port;
    opts.extra_env.extend(env);
    opts
}

/// The backup folder as Litestream's file replica URL.
pub fn file_backup_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Starts the replication-manager in `dir` (replica in `dir/zero.db`), backing up to
/// `backup_url`, and waits until it is ready. Its change stream is at
/// [`change_streamer_uri`]`(rm.port())`.
pub async fn start_replication_manager(
    dir: &Path,
    base: &ZeroCacheOptions,
    backup_url: &str,
) -> anyhow::Result<ZeroCache> {
    ensure_litestream()?;
    let mut env = litestream_env();
    env.extend([
        ("ZERO_NUM_SYNC_WORKERS".to_string(), "0".to_string()),
        ("ZERO_LITESTREAM_BACKUP_URL".into(), backup_url.to_string()),
        // The VFS extension logs to stdout unless told otherwise; keep zero-cache's log JSON.
        (
            "ZERO_LITESTREAM_VFS_LOG_FILE".into(),
            dir.join("litestream-vfs.log").display().to_string(),
        ),
        // zero-cache hands the VFS its settings by assigning `process.env` just before it loads
        // the extension (`services/litestream/vfs-watermark-reader.js:27-29`), but the
        // extension is Go, whose runtime reads the environment the process started with: it
        // never sees them, and every open fails with "SQL logic error" (so change-log cleanup
        // is skipped for ever). Given at start, they reach the reader worker it forks.
        ("LITESTREAM_REPLICA_URL".into(), backup_url.to_string()),
        (
            "LITESTREAM_LOG_FILE".into(),
            dir.join("litestream-vfs.log").display().to_string(),
        ),
    ]);
    // The RM's client port only answers health checks; a free block keeps +1 and +2 free.
    let opts = with_env(base, Some(free_port_block(3)), env);
    ZeroCache::start_in(dir, opts)
        .await
        .context("starting the replication-manager")
}

/// Where a replication-manager on client port `rm_port` serves the change stream (port + 1,
/// zero-cache's default `ZERO_CHANGE_STREAMER_PORT`).
pub fn change_streamer_uri(rm_port: u16) -> String {
    format!("ws://127.0.0.1:{}/", rm_port + 1)
}

/// N view-syncers following one replication-manager, and how to start more.
pub struct ViewSyncers {
    root: PathBuf,
    base: ZeroCacheOptions,
    change_streamer: String,
    nodes: Vec<ZeroCache>,
    next_id: usize,
}

impl ViewSyncers {
    /// Nothing started yet: view-syncers live in `root/vs-<k>` and follow `change_streamer`
    /// (see [`change_streamer_uri`]); `base.port`, if set, is the first one's client port.
    pub fn new(root: impl Into<PathBuf>, base: ZeroCacheOptions, change_streamer: String) -> Self {
        Self {
            root: root.into(),
            base,
            change_streamer,
            nodes: Vec::new(),
            next_id: 0,
        }
    }

    /// Starts one more view-syncer (restoring its replica from the backup the
    /// replication-manager names) and waits until it is ready; returns its index.
    pub async fn add(&mut self) -> anyhow::Result<usize> {
        ensure_litestream()?;
        let k = self.next_id;
        self.next_id += 1;
        let port = match (k, self.base.port) {
            (0, Some(p)) => p,
            _ => free_port_block(3),
        };
        let mut env = litestream_env();
        env.extend([
            (
                "ZERO_CHANGE_STREAMER_URI".to_string(),
                self.change_streamer.clone(),
            ),
            ("ZERO_NUM_SYNC_WORKERS".into(), "1".into()),
        ]);
        let mut opts = with_env(&self.base, Some(port), env);
        opts.ready_timeout = Some(opts.ready_timeout.unwrap_or(VIEW_SYNCER_READY));
        let dir = self.root.join(format!("vs-{k}"));
        let zc = ZeroCache::start_in(&dir, opts)
            .await
            .with_context(|| format!("starting view-syncer {k} on port {port}"))?;
        self.nodes.push(zc);
        Ok(self.nodes.len() - 1)
    }

    /// Starts `n` view-syncers one after the other.
    pub async fn add_n(&mut self, n: usize) -> anyhow::Result<()> {
        for _ in 0..n {
            self.add().await?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn get(&self, i: usize) -> &ZeroCache {
        &self.nodes[i]
    }

    pub fn get_mut(&mut self, i: usize) -> &mut ZeroCache {
        &mut self.nodes[i]
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut ZeroCache> {
        self.nodes.iter_mut()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ZeroCache> {
        self.nodes.iter()
    }

    /// The client URL of view-syncer `i` (`http://127.0.0.1:PORT`).
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Every view-syncer's client port, in index order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(ZeroCache::port).collect()
    }

    /// SIGKILL to view-syncer `i` and its workers.
    pub async fn kill9(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].kill9().await
    }

    /// Starts view-syncer `i` again after it exited (same port and replica folder).
    pub async fn start_again(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].start_again().await
    }

    /// Stops every view-syncer by PID; the first error, after trying them all.
    pub async fn stop_all(&mut self) -> anyhow::Result<()> {
        let mut first = None;
        for zc in &mut self.nodes {
            if let Err(e) = zc.terminate().await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The last lines of every view-syncer's log.
    pub fn log_tails(&self, n: usize) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, zc)| {
                format!(
                    "--- view-syncer {i} (port {}) ---\n{}",
                    zc.port(),
                    zc.log_tail(n)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A replication-manager and its view-syncers, with the backup in `<dir>/backup`.
pub struct Topology {
    pub rm: ZeroCache,
    pub view_syncers: ViewSyncers,
    backup_url: String,
}

impl Topology {
    /// Starts the replication-manager in `dir/rm`, then `n` view-syncers in `dir/vs-<k>`, each
    /// restoring from the backup in `dir/backup`.
    pub async fn start(
        dir: impl AsRef<Path>,
        base: ZeroCacheOptions,
        n: usize,
    ) -> anyhow::Result<Topology> {
        let dir = dir.as_ref();
        let backup = dir.join("backup");
        std::fs::create_dir_all(&backup)
            .with_context(|| format!("creating {}", backup.display()))?;
        let backup_url = file_backup_url(&backup);
        let rm = start_replication_manager(&dir.join("rm"), &base, &backup_url).await?;
        let mut view_syncers = ViewSyncers::new(dir, base, change_streamer_uri(rm.port()));
        if let Err(e) = view_syncers.add_n(n).await {
            bail!("{e:#}\n--- replication-manager ---\n{}", rm.log_tail(40));
        }
        Ok(Topology {
            rm,
            view_syncers,
            backup_url,
        })
    }

    /// The backup's Litestream URL (`file://…`).
    pub fn backup_url(&self) -> &str {
        &self.backup_url
    }

    /// SIGTERM to the replication-manager, then starts it again on the same port and replica.
    pub async fn restart_rm(&mut self) -> anyhow::Result<()> {
        self.rm.restart().await
    }

    /// Stops the view-syncers, then the replication-manager.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let vs = self.view_syncers.stop_all().await;
        self.rm.stop().await?;
        vs
    }

    /// The last lines of every process's log, for failure messages.
    pub fn log_tails(&self, n: usize) -> String {
        format!(
            "--- replication-manager (port {}) ---\n{}\n{}",
            self.rm.port(),
            self.rm.log_tail(n),
            self.view_syncers.log_tails(n)
        )
    }
}
