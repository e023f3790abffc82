//! A private PostgreSQL cluster (Debian's package, installed on first use) on 127.0.0.1 and a
//! free port, for zero-cache's CVR and change databases. When we run as root, initdb and the
//! server run as user `postgres`, which owns the data and socket folders.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::paths::{ensure_installed, postgres_bin_dir};
use crate::process::ManagedProcess;
use crate::state::{free_port, service_temp_dir};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Extra server settings (`-c name=value` pairs), kept for restarts.
    args: Vec<String>,
    process: ManagedProcess,
    _temp: Option<TempDir>,
}

impl Postgres {
    /// A fresh cluster in its own temp dir (removed on drop).
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_args(&[]).await
    }

    /// A fresh cluster in its own temp dir (removed on drop), started with extra server
    /// arguments, e.g. `["-c", "wal_level=logical"]` for zero-cache's native Postgres path.
    pub async fn start_with_args(args: &[&str]) -> anyhow::Result<Self> {
        let temp = service_temp_dir("postgres")?;
        let mut pg = Self::start_in_with_args(temp.path(), args).await?;
        pg._temp = Some(temp);
        Ok(pg)
    }

    /// A cluster in `dir/data` (initdb'd when missing), socket in `dir/sock`, logs in `dir`.
    pub async fn start_in(dir: impl AsRef<Path>) -> anyhow::Result<Self> {
        Self::start_in_with_args(dir, &[]).await
    }

    /// [`Self::start_in`] with extra server arguments (see [`Self::start_with_args`]).
    pub async fn start_in_with_args(dir: impl AsRef<Path>, args: &[&str]) -> anyhow::Result<Self> {
        ensure_installed("postgres", || postgres_bin_dir().is_some())?;
        let bin = postgres_bin_dir().context("no PostgreSQL under /usr/lib/postgresql")?;
        let dir = dir.as_ref().to_path_buf();
        let owner = run_as();
        let data = dir.join("data");
        let sock = dir.join("sock");
        std::fs::create_dir_all(&sock)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
            std::os::unix::fs::chown(&sock, Some(uid), Some(gid))?;
        }
        if !data.join("PG_VERSION").exists() {
            let mut initdb = Command::new(bin.join("initdb"));
            initdb
                .arg("-D")
                .arg(&data)
                .args([
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "-U",
                    "postgres",
                ])
                .current_dir(&dir);
            as_owner(&mut initdb, owner);
            let out = initdb.output().context("running initdb")?;
            if !out.status.success() {
                bail!(
                    "initdb -D {} failed ({}):\n{}{}",
                    data.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let port = free_port();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let process = spawn(&bin, &dir, port, owner, &args)?;
        let mut pg = Self {
            dir,
            bin,
            port,
            args,
            process,
            _temp: None,
        };
        pg.wait_ready().await?;
        Ok(pg)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn process(&mut self) -> &mut ManagedProcess {
        &mut self.process
    }

    /// `postgresql://postgres@127.0.0.1:PORT/<db>` (trust auth: no password).
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (letters, digits and `_` only).
    pub async fn create_db(&self, name: &str) -> anyhow::Result<()> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("database name {name:?}: use letters, digits and _ only");
        }
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .await
            .map(|_| ())
    }

    /// Creates database `name` unless it exists (for a kept state dir).
    pub async fn ensure_db(&self, name: &str) -> anyhow::Result<()> {
        let exists = self
            .psql(
                "postgres",
                &format!(
                    "SELECT 1 FROM pg_database WHERE datname = '{}'",
                    name.replace('\'', "")
                ),
            )
            .await?;
        if exists == "1" {
            Ok(())
        } else {
            self.create_db(name).await
        }
    }

    /// Runs `sql` with psql in database `db`; returns the unaligned, tuples-only output.
    pub async fn psql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let out = tokio::process::Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(db))
            .arg("-c")
            .arg(sql)
            .output()
            .await
            .context("running psql")?;
        if !out.status.success() {
            bail!(
                "psql in database {db} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Fast shutdown and start again on the same port and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.terminate().await?;
        self.process = spawn(&self.bin, &self.dir, self.port, run_as(), &self.args)?;
        self.wait_ready().await
    }

    /// Fast shutdown (SIGINT).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.process.terminate().await.map(|_| ())
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last_error = String::new();
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.process.exit_status() {
                bail!(
                    "postgres exited during start-up ({})\n{}",
                    ManagedProcess::describe_exit(&status),
                    self.process.log_tail(30)
                );
            }
            match self.psql("postgres", "select 1").await {
                Ok(_) => return Ok(()),
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "postgres on port {} not ready after {READY_TIMEOUT:?}: {last_error}\n{}",
            self.port,
            self.process.log_tail(30)
        )
    }
}

/// uid/gid of user `postgres` when we run as root (PostgreSQL refuses to run as root).
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == "postgres")
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn as_owner(cmd: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid)
            .gid(gid)
            .env("HOME", "/tmp")
            .env_remove("PGDATA");
    }
}

fn spawn(
    bin: &Path,
    dir: &Path,
    port: u16,
    owner: Option<(u32, u32)>,
    args: &[String],
) -> anyhow::Result<ManagedProcess> {
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            &port.to_string(),
            "-k",
        ])
        .arg(dir.join("sock"))
        .args(["-c", "max_connections=200"])
        .args(args)
        .current_dir(dir);
    as_owner(&mut cmd, owner);
    // SIGINT = fast shutdown; SIGTERM would wait for every client (zero-cache) to disconnect.
    Ok(ManagedProcess::spawn("postgres", cmd, dir)?.with_stop_signal(libc::SIGINT))
}
