//! Per-run state folders and free ports. Each service gets its own folder (data, socket,
//! logs); a test's folders are temporary and removed on drop, the local stack's can be kept.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tempfile::TempDir;

/// A port that was free a moment ago on 127.0.0.1 (the OS picks it: bind to port 0).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 for a free port")
}

/// A base port `p` such that `p..p+n` were all free; zero-cache needs three consecutive ports
/// (its port, +1 for the change-streamer, +2 for the reaper).
pub fn free_port_block(n: u16) -> u16 {
    for _ in 0..200 {
        let base = free_port();
        if base.checked_add(n).is_none() {
            continue;
        }
        let held: Vec<_> = (0..n)
            .map_while(|i| TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == n as usize {
            return base;
        }
    }
    panic!("no block of {n} consecutive free ports found on 127.0.0.1");
}

/// A fresh temporary folder for one service, readable by other users (PostgreSQL runs as user
/// `postgres` when we are root and must be able to reach its data dir).
pub fn service_temp_dir(name: &str) -> anyhow::Result<TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("zerostack-{name}-"))
        .tempdir()
        .context("creating a temp dir")?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// A root folder with one sub-folder per service. Temporary (removed on drop) unless created
/// with [`StateDir::at`].
pub struct StateDir {
    root: PathBuf,
    _temp: Option<TempDir>,
}

impl StateDir {
    /// A new temporary root, removed when this value is dropped.
    pub fn temp() -> anyhow::Result<Self> {
        let temp = service_temp_dir("state")?;
        Ok(Self {
            root: temp.path().to_path_buf(),
            _temp: Some(temp),
        })
    }

    /// A root at `path` (created if missing) that is kept afterwards.
    pub fn at(path: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = path.into();
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let root = root.canonicalize()?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self { root, _temp: None })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `<root>/<name>`, created if missing.
    pub fn service(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        Ok(dir)
    }

    /// Keeps the folder on disk after drop and returns its path.
    pub fn keep(mut self) -> PathBuf {
        if let Some(t) = self._temp.take() {
            let _ = t.keep();
        }
        self.root.clone()
    }
}
