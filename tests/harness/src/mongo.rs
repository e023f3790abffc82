//! A real MongoDB 6.0.5 single-node replica set (`rs0`) on 127.0.0.1 and a free port, from the
//! binary `tests/install.sh mongodb` unpacks (installed on first use). Change streams need a
//! replica set, so every test gets one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bson::doc;
use tempfile::TempDir;

use crate::paths::{ensure_installed, mongod_path};
use crate::process::ManagedProcess;
use crate::state::{free_port, service_temp_dir};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Mongo {
    dir: PathBuf,
    port: u16,
    process: ManagedProcess,
    _temp: Option<TempDir>,
}

impl Mongo {
    /// Starts a fresh replica set in its own temp dir (removed on drop).
    pub async fn start() -> anyhow::Result<Self> {
        let temp = service_temp_dir("mongo")?;
        let mut mongo = Self::start_in(temp.path()).await?;
        mongo._temp = Some(temp);
        Ok(mongo)
    }

    /// Starts (or restarts, when `dir/data` exists) a replica set with its data in `dir/data`
    /// and logs in `dir`.
    pub async fn start_in(dir: impl AsRef<Path>) -> anyhow::Result<Self> {
        ensure_installed("mongodb", || mongod_path().exists())?;
        let dir = dir.as_ref().to_path_buf();
        let port = port_for(&dir)?;
        let process = spawn(&dir, port)?;
        let mut mongo = Self {
            dir,
            port,
            process,
            _temp: None,
        };
        mongo.wait_ready().await?;
        Ok(mongo)
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

    /// `mongodb://127.0.0.1:PORT/?replicaSet=rs0`
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?replicaSet=rs0", self.port)
    }

    /// `mongodb://127.0.0.1:PORT/<db>?replicaSet=rs0`
    pub fn uri_with_db(&self, db: &str) -> String {
        format!("mongodb://127.0.0.1:{}/{db}?replicaSet=rs0", self.port)
    }

    /// A driver client for [`Self::uri`].
    pub async fn client(&self) -> anyhow::Result<mongodb::Client> {
        mongodb::Client::with_uri_str(self.uri())
            .await
            .context("creating a MongoDB client")
    }

    /// Stops mongod (SIGTERM, clean shutdown) and starts it again on the same port and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.terminate().await?;
        self.start_again().await
    }

    /// Stops mongod cleanly; [`Self::start_again`] brings it back.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.process.terminate().await.map(|_| ())
    }

    /// SIGKILL, no clean shutdown (for fault tests); [`Self::start_again`] brings it back.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        self.process.kill9().await.map(|_| ())
    }

    /// Starts mongod again after `stop`/`kill9` (same port and data) and waits for a primary.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if self.process.is_running() {
            bail!("mongod (pid {}) is still running", self.process.pid());
        }
        self.process = spawn(&self.dir, self.port)?;
        self.wait_ready().await
    }

    /// Initiates the replica set when needed and waits until this node is a writable primary.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let direct = format!(
            "mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=1000&connectTimeoutMS=1000",
            self.port
        );
        let client = mongodb::Client::with_uri_str(&direct).await?;
        let admin = client.database("admin");
        let mut last_error = String::from("no answer yet");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.process.exit_status() {
                bail!(
                    "mongod exited during start-up ({})\n{}",
                    ManagedProcess::describe_exit(&status),
                    self.process.log_tail(30)
                );
            }
            match admin.run_command(doc! { "hello": 1 }).await {
                Ok(hello) => {
                    if hello.get_bool("isWritablePrimary").unwrap_or(false) {
                        return Ok(());
                    }
                    if hello.get_str("setName").is_err() {
                        let init = doc! { "replSetInitiate": {
                            "_id": "rs0",
                            "members": [{ "_id": 0, "host": format!("127.0.0.1:{}", self.port) }],
                        }};
                        match admin.run_command(init).await {
                            Ok(_) => {}
                            // 23 = AlreadyInitialized, yet no set name: the stored config names
                            // another port (a data dir from elsewhere), so this node is not a
                            // member of it. Point the config at this port.
                            Err(e) if is_code(&e, 23) => {
                                if let Err(e) = self.force_member_host(&client).await {
                                    last_error = format!("replSetReconfig: {e}");
                                }
                            }
                            Err(e) => last_error = format!("replSetInitiate: {e}"),
                        }
                    }
                }
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "mongod on port {} not a writable primary after {READY_TIMEOUT:?}: {last_error}\n{}",
            self.port,
            self.process.log_tail(30)
        )
    }
}

impl Mongo {
    async fn force_member_host(&self, client: &mongodb::Client) -> anyhow::Result<()> {
        let mut config = client
            .database("local")
            .collection::<bson::Document>("system.replset")
            .find_one(doc! {})
            .await?
            .context("no replica set config in local.system.replset")?;
        let version = config.get_i32("version").unwrap_or(1);
        config.insert("version", version + 1);
        config.insert(
            "members",
            vec![doc! { "_id": 0, "host": format!("127.0.0.1:{}", self.port) }],
        );
        client
            .database("admin")
            .run_command(doc! { "replSetReconfig": config, "force": true })
            .await?;
        Ok(())
    }
}

fn is_code(e: &mongodb::error::Error, code: i32) -> bool {
    matches!(&*e.kind, mongodb::error::ErrorKind::Command(c) if c.code == code)
}

/// The replica set config names the member by host:port, so a kept data dir must come back on
/// the same port: it is remembered in `dir/port`.
fn port_for(dir: &Path) -> anyhow::Result<u16> {
    let file = dir.join("port");
    if dir.join("data").join("WiredTiger").exists()
        && let Some(port) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
    {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            bail!(
                "port {port} (from {}) is in use, but the replica set in that data dir is configured for it",
                file.display()
            );
        }
        return Ok(port);
    }
    let port = free_port();
    std::fs::create_dir_all(dir)?;
    std::fs::write(&file, port.to_string())?;
    Ok(port)
}

fn spawn(dir: &Path, port: u16) -> anyhow::Result<ManagedProcess> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let mut cmd = Command::new(mongod_path());
    cmd.arg("--dbpath")
        .arg(&data)
        .args(["--bind_ip", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--replSet",
            "rs0",
            "--oplogSize",
            "128",
            "--wiredTigerCacheSizeGB",
            "0.25",
        ])
        // Keeps zlib off: 6.0.5 has a pre-auth bug in zlib wire compression (CVE-2025-14847).
        .args(["--networkMessageCompressors", "snappy,zstd"])
        .current_dir(dir);
    ManagedProcess::spawn("mongod", cmd, dir)
}

/// A real three-member replica set (`rs0`, all on 127.0.0.1), for failover tests: a step-down
/// or the loss of one member must not lose or repeat a change. Each member keeps its data in
/// `dir/m<i>` (removed with the temp dir on drop).
pub struct MongoReplicaSet {
    members: Vec<(PathBuf, u16, ManagedProcess)>,
    _temp: TempDir,
}

impl MongoReplicaSet {
    /// Starts `n` members, initiates the set and waits until it has a writable primary.
    pub async fn start(n: usize) -> anyhow::Result<Self> {
        ensure_installed("mongodb", || mongod_path().exists())?;
        let temp = service_temp_dir("mongo-rs")?;
        let mut members = Vec::with_capacity(n);
        for i in 0..n {
            let dir = temp.path().join(format!("m{i}"));
            std::fs::create_dir_all(&dir)?;
            let port = free_port();
            members.push((dir.clone(), port, spawn(&dir, port)?));
        }
        let set = MongoReplicaSet {
            members,
            _temp: temp,
        };
        set.initiate().await?;
        set.wait_primary(READY_TIMEOUT).await?;
        Ok(set)
    }

    /// `mongodb://host1,host2,host3/?replicaSet=rs0`
    pub fn uri(&self) -> String {
        let hosts: Vec<String> = self
            .members
            .iter()
            .map(|(_, p, _)| format!("127.0.0.1:{p}"))
            .collect();
        format!("mongodb://{}/?replicaSet=rs0", hosts.join(","))
    }

    pub async fn client(&self) -> anyhow::Result<mongodb::Client> {
        mongodb::Client::with_uri_str(self.uri())
            .await
            .context("creating a MongoDB client")
    }

    fn direct(&self, i: usize) -> String {
        format!(
            "mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=1000&connectTimeoutMS=1000",
            self.members[i].1
        )
    }

    async fn initiate(&self) -> anyhow::Result<()> {
        let client = mongodb::Client::with_uri_str(self.direct(0)).await?;
        let members: Vec<bson::Document> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, (_, p, _))| doc! { "_id": i as i32, "host": format!("127.0.0.1:{p}") })
            .collect();
        let started = Instant::now();
        loop {
            match client
                .database("admin")
                .run_command(
                    doc! { "replSetInitiate": { "_id": "rs0", "members": members.clone() } },
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_code(&e, 23) => return Ok(()),
                Err(e) if started.elapsed() > READY_TIMEOUT => {
                    bail!("replSetInitiate of the three-member set: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The index of the member that is a writable primary now, if any.
    pub async fn primary(&self) -> Option<usize> {
        for i in 0..self.members.len() {
            let Ok(client) = mongodb::Client::with_uri_str(self.direct(i)).await else {
                continue;
            };
            if let Ok(hello) = client
                .database("admin")
                .run_command(doc! {"hello": 1})
                .await
                && hello.get_bool("isWritablePrimary").unwrap_or(false)
            {
                return Some(i);
            }
        }
        None
    }

    /// Waits until some member is a writable primary; its index.
    pub async fn wait_primary(&self, timeout: Duration) -> anyhow::Result<usize> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(i) = self.primary().await {
                return Ok(i);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("the replica set has no primary after {timeout:?}")
    }

    /// `replSetStepDown` on the current primary (it may not stand again for `secs`); returns
    /// the index of the member that stepped down.
    pub async fn step_down(&self, secs: i64) -> anyhow::Result<usize> {
        let i = self.wait_primary(READY_TIMEOUT).await?;
        let client = mongodb::Client::with_uri_str(self.direct(i)).await?;
        // The primary closes its connections as it steps down, so an error here is normal;
        // success is judged by who is primary afterwards.
        let answer = client
            .database("admin")
            .run_command(
                doc! { "replSetStepDown": secs, "secondaryCatchUpPeriodSecs": (secs / 2).max(1) },
            )
            .await;
        if let Err(e) = &answer
            && let mongodb::error::ErrorKind::Command(c) = &*e.kind
        {
            // A refusal (e.g. no electable secondary caught up) is an answer, not a lost
            // connection.
            bail!("replSetStepDown on member {i}: {} ({})", c.message, c.code);
        }
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if self.primary().await.is_some_and(|p| p != i) {
                return Ok(i);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("member {i} stepped down but no other member became primary")
    }

    /// SIGKILL of member `i`.
    pub async fn kill9(&mut self, i: usize) -> anyhow::Result<()> {
        self.members[i].2.kill9().await.map(|_| ())
    }

    /// Starts member `i` again on its port and data.
    pub fn start_again(&mut self, i: usize) -> anyhow::Result<()> {
        let (dir, port, process) = &mut self.members[i];
        if process.is_running() {
            bail!("mongod (pid {}) is still running", process.pid());
        }
        *process = spawn(dir, *port)?;
        Ok(())
    }

    pub fn log_tail(&self, i: usize, n: usize) -> String {
        self.members[i].2.log_tail(n)
    }
}
