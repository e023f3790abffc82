//! The whole ZeroStack as local processes: a MongoDB replica set, PostgreSQL, source-server
//! loaded with `zrocket export`, zero-cache 1.9.0 wired to the app's mutate and query endpoints,
//! and `zrocket serve` with the demo data seeded; or, with [`StackOptions::view_syncers`] > 0,
//! zero-cache as a replication-manager and that many view-syncers ([`crate::view_syncers`]);
//! with [`StackOptions::sources`] > 1, that many source-servers behind a [`Balancer`] (a
//! stand-in for the Kubernetes Service), which zero-cache dials instead of one source.
//! The one launcher behind `tests/stack.sh` and
//! every end-to-end test that needs the whole stack, so they all start it the same way.
//!
//! Needs the `source-server` and `zrocket` binaries of the current build profile (`cargo build
//! --bins`; see [`built_bin`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use zerostack_spec::{env, files};

use crate::balancer::Balancer;
use crate::http;
use crate::mongo::Mongo;
use crate::postgres::Postgres;
use crate::process::{ManagedProcess, run};
use crate::state::{StateDir, free_port, free_port_block};
use crate::view_syncers::{
    ViewSyncers, change_streamer_uri, file_backup_url, start_replication_manager,
};
use crate::zero_cache::{ZeroCache, ZeroCacheOptions};

/// The database the app and the source share.
pub const DATABASE: &str = "zrocket";
/// How long a started server may take to answer its health check.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The folder of this build profile's binaries (`target/<profile>`), found from the running
/// executable: a test runs from `target/<profile>/deps/`, a tool from `target/<profile>/`.
fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    let dir = exe.parent().context("the executable has no folder")?;
    Ok(if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

/// A binary of the workspace from this build profile, which cargo does not build for another
/// package's tests: hence the hint to `cargo build --bins`.
pub fn built_bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = profile_dir()?.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo build --bins` first (this runs the real {name})",
            path.display()
        );
    }
    Ok(path)
}

/// Where the stack listens: preferred ports are used when free, otherwise free ones are picked.
#[derive(Clone, Debug, Default)]
pub struct Ports {
    pub source: Option<u16>,
    /// zero-cache also takes the two ports after this one.
    pub zero: Option<u16>,
    pub app: Option<u16>,
}

/// How to start a stack.
pub struct StackOptions {
    /// Where every service keeps its data and logs (`StateDir::temp()` for tests).
    pub state: StateDir,
    pub ports: Ports,
    /// The built UI the app serves; `None`: an empty folder (API-only tests).
    pub web_dir: Option<PathBuf>,
    /// Turn on the app's password-less dev login (`DEV_LOGIN=true`); off for tests.
    pub dev_login: bool,
    /// 0: one zero-cache (the default). N > 0: a replication-manager backing up to
    /// `<state>/backup` and N view-syncers; the first one takes the zero port and is the URL
    /// the app gives browsers.
    pub view_syncers: usize,
    /// Source-servers: 1 (the default) is dialled directly; N > 1 run side by side behind a
    /// [`Balancer`], whose address zero-cache (or the replication-manager) is given.
    pub sources: usize,
}

impl StackOptions {
    /// A throw-away stack on free ports (what tests use).
    pub fn temp() -> anyhow::Result<StackOptions> {
        Ok(StackOptions {
            state: StateDir::temp()?,
            ports: Ports::default(),
            web_dir: None,
            dev_login: false,
            view_syncers: 0,
            sources: 1,
        })
    }
}

/// The secrets of one stack, random, kept in `<state>/secrets.env` (mode 0600) rather than
/// printed, and reused when the state folder is kept.
#[derive(Clone)]
pub struct Secrets {
    pub source_token: String,
    /// No longer given to the app (its sessions live in MongoDB); still generated for the
    /// callers that pass it on, until they drop it.
    pub auth_secret: String,
    pub admin_password: String,
}

impl Secrets {
    fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let file = dir.join("secrets.env");
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
                .filter(|v| !v.is_empty())
        };
        let secrets = Self {
            source_token: get("SOURCE_TOKEN").map_or_else(random_hex, Ok)?,
            auth_secret: get("AUTH_SECRET").map_or_else(random_hex, Ok)?,
            admin_password: get("ZERO_ADMIN_PASSWORD").map_or_else(random_hex, Ok)?,
        };
        std::fs::write(
            &file,
            format!(
                "SOURCE_TOKEN={}\nAUTH_SECRET={}\nZERO_ADMIN_PASSWORD={}\n",
                secrets.source_token, secrets.auth_secret, secrets.admin_password
            ),
        )?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        Ok(secrets)
    }
}

fn random_hex() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// One started service, for the stack's summary table.
pub struct Started {
    pub name: &'static str,
    pub url: String,
    pub pid: u32,
    pub startup: Duration,
}

/// A running stack. Dropping it stops every process (each by PID); [`Stack::stop`] also reports
/// how each one ended.
pub struct Stack {
    pub state: StateDir,
    pub secrets: Secrets,
    /// `schema.json`, `table-mappings.json`, `permissions.json` as `zrocket export` wrote them.
    pub export_dir: PathBuf,
    pub mongo: Mongo,
    pub pg: Postgres,
    /// Source 0 (the only one by default).
    pub source: ManagedProcess,
    /// Sources 1..N when [`StackOptions::sources`] > 1 ([`Stack::source_mut`] indexes them all).
    pub more_sources: Vec<ManagedProcess>,
    /// In front of the sources when there are several; it counts connections per source.
    pub source_balancer: Option<Balancer>,
    /// Each source's port, in index order.
    source_ports: Vec<u16>,
    pub app: ManagedProcess,
    /// The zero-cache; with view-syncers, the replication-manager (which serves no clients).
    pub zero: ZeroCache,
    /// The view-syncers, when [`StackOptions::view_syncers`] > 0.
    pub view_syncers: Option<ViewSyncers>,
    pub source_url: String,
    pub app_url: String,
    /// Every service in start order, with its URL and start-up time.
    pub started: Vec<Started>,
}

impl Stack {
    pub async fn start(opts: StackOptions) -> anyhow::Result<Stack> {
        let source_bin = built_bin("source-server")?;
        let app_bin = built_bin("zrocket")?;
        let state = opts.state;
        let secrets = Secrets::load_or_create(state.path())?;
        let mut started = Vec::new();

        // The two databases start side by side; each reports its own start-up time.
        let t = Instant::now();
        let (mongo, pg) = tokio::join!(
            async {
                let mongo = Mongo::start_in(state.service("mongo")?).await?;
                anyhow::Ok((mongo, t.elapsed()))
            },
            async {
                let pg = Postgres::start_in(state.service("postgres")?).await?;
                pg.ensure_db("zero_cvr").await?;
                pg.ensure_db("zero_cdc").await?;
                anyhow::Ok((pg, t.elapsed()))
            }
        );
        let (mongo, mongo_startup) = mongo.context("starting MongoDB")?;
        let (pg, pg_startup) = pg.context("starting PostgreSQL")?;
        let mongo_uri = mongo.uri_with_db(DATABASE);
        started.push(Started {
            name: "mongodb",
            url: mongo_uri.clone(),
            pid: mongo.pid(),
            startup: mongo_startup,
        });
        started.push(Started {
            name: "postgres",
            url: pg.url("zero_cvr / zero_cdc"),
            pid: pg.pid(),
            startup: pg_startup,
        });

        let export_dir = state.service("config")?;
        run(
            "zrocket export",
            Command::new(&app_bin)
                .args(["export", "--out"])
                .arg(&export_dir),
            None,
        )?;
        run(
            "zrocket seed",
            Command::new(&app_bin)
                .arg("seed")
                .env(env::app::MONGODB_URI, &mongo_uri)
                .env(env::app::MONGODB_DATABASE, DATABASE),
            None,
        )?;

        let source_port = pick_port(opts.ports.source, 1);
        let zero_port = pick_port(opts.ports.zero, 3);
        let app_port = pick_port(opts.ports.app, 1);
        let zero_url = format!("http://127.0.0.1:{zero_port}");
        let app_url = format!("http://127.0.0.1:{app_port}");
        let source_url = format!("http://127.0.0.1:{source_port}");

        let source_ports: Vec<u16> = std::iter::once(source_port)
            .chain((1..opts.sources.max(1)).map(|_| free_port()))
            .collect();
        let mut sources = Vec::new();
        for (i, &port) in source_ports.iter().enumerate() {
            let t = Instant::now();
            let cmd = source_command(&source_bin, port, &mongo_uri, &export_dir, &secrets);
            let mut source =
                ManagedProcess::spawn("source-server", cmd, &state.service(&source_dir(i))?)?;
            let url = format!("http://127.0.0.1:{port}");
            wait_http_ok(&format!("{url}/ready"), &mut source).await?;
            started.push(Started {
                name: "source-server",
                url: format!("{url} (ws /changes/v0/stream)"),
                pid: source.pid(),
                startup: t.elapsed(),
            });
            sources.push(source);
        }
        let mut sources = sources.into_iter();
        let source = sources.next().context("no source-server started")?;
        let more_sources: Vec<ManagedProcess> = sources.collect();
        // Several sources: zero-cache dials the balancer, as it dials the Service in a cluster.
        let (source_balancer, upstream_port, source_url) = if more_sources.is_empty() {
            (None, source_port, source_url)
        } else {
            let b = Balancer::start(
                source_ports
                    .iter()
                    .map(|&p| ([127, 0, 0, 1], p).into())
                    .collect(),
            )
            .await?;
            let (port, url) = (b.port(), format!("http://127.0.0.1:{}", b.port()));
            (Some(b), port, url)
        };

        let web_dir = match opts.web_dir {
            Some(w) => w,
            None => state.service("web")?,
        };
        let t = Instant::now();
        let mut cmd = Command::new(&app_bin);
        cmd.arg("serve")
            .env(env::app::PORT, app_port.to_string())
            .env(env::app::MONGODB_URI, &mongo_uri)
            .env(env::app::MONGODB_DATABASE, DATABASE)
            .env(
                env::app::DEV_LOGIN,
                if opts.dev_login { "true" } else { "false" },
            )
            .env(env::app::PUBLIC_ZERO_URL, &zero_url)
            .env(env::app::WEB_DIR, &web_dir)
            .env(env::app::LOG_FORMAT, "json");
        let mut app = ManagedProcess::spawn("zrocket", cmd, &state.service("zrocket")?)?;
        wait_http_ok(&format!("{app_url}/health"), &mut app).await?;
        started.push(Started {
            name: "zrocket",
            url: app_url.clone(),
            pid: app.pid(),
            startup: t.elapsed(),
        });

        let t = Instant::now();
        let zero_opts = ZeroCacheOptions {
            upstream_url: format!(
                "ws://127.0.0.1:{upstream_port}/changes/v0/stream?token={}",
                secrets.source_token
            ),
            cvr_db: pg.url("zero_cvr"),
            change_db: pg.url("zero_cdc"),
            // Browsers authenticate by cookie: `zero_cache` sets ZERO_*_FORWARD_COOKIES=true
            // with these URLs, so zero-cache forwards the WebSocket's Cookie header.
            mutate_url: Some(format!("{app_url}/api/zero/mutate")),
            query_url: Some(format!("{app_url}/api/zero/query")),
            port: Some(zero_port),
            admin_password: Some(secrets.admin_password.clone()),
            ready_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        };
        let with_source_log = |e: anyhow::Error| anyhow::anyhow!("{e:#}\n{}", source.log_tail(30));
        let (zero, view_syncers) = if opts.view_syncers == 0 {
            let zero = ZeroCache::start_in(state.service("zero-cache")?, zero_opts)
                .await
                .map_err(with_source_log)?;
            started.push(Started {
                name: "zero-cache",
                url: zero_url,
                pid: zero.pid(),
                startup: t.elapsed(),
            });
            (zero, None)
        } else {
            let backup = file_backup_url(&state.service("backup")?);
            let rm = start_replication_manager(
                &state.service("replication-manager")?,
                &zero_opts,
                &backup,
            )
            .await
            .map_err(with_source_log)?;
            started.push(Started {
                name: "repl-manager",
                url: format!(
                    "{} (change stream {})",
                    rm.url(),
                    change_streamer_uri(rm.port())
                ),
                pid: rm.pid(),
                startup: t.elapsed(),
            });
            let mut vs = ViewSyncers::new(
                state.service("view-syncers")?,
                zero_opts,
                change_streamer_uri(rm.port()),
            );
            for i in 0..opts.view_syncers {
                let t = Instant::now();
                vs.add()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", rm.log_tail(30)))?;
                started.push(Started {
                    name: "view-syncer",
                    url: vs.url(i),
                    pid: vs.get(i).pid(),
                    startup: t.elapsed(),
                });
            }
            (rm, Some(vs))
        };

        Ok(Stack {
            state,
            secrets,
            export_dir,
            mongo,
            pg,
            source,
            more_sources,
            source_balancer,
            source_ports,
            app,
            zero,
            view_syncers,
            source_url,
            app_url,
            started,
        })
    }

    /// Source `i` (0 is [`Stack::source`]).
    pub fn source_mut(&mut self, i: usize) -> &mut ManagedProcess {
        match i {
            0 => &mut self.source,
            _ => &mut self.more_sources[i - 1],
        }
    }

    /// How many sources the stack runs.
    pub fn source_count(&self) -> usize {
        1 + self.more_sources.len()
    }

    /// SIGKILL to source `i`.
    pub async fn kill9_source(&mut self, i: usize) -> anyhow::Result<()> {
        self.source_mut(i).kill9().await.map(|_| ())
    }

    /// Starts source `i` again after it exited, on its port, with its settings and log folder
    /// (logs are appended), and waits until it is ready.
    pub async fn start_source_again(&mut self, i: usize) -> anyhow::Result<()> {
        let port = self.source_ports[i];
        let cmd = source_command(
            &built_bin("source-server")?,
            port,
            &self.mongo.uri_with_db(DATABASE),
            &self.export_dir,
            &self.secrets,
        );
        let dir = self.state.service(&source_dir(i))?;
        let source = self.source_mut(i);
        if source.is_running() {
            bail!("source {i} is still running");
        }
        *source = ManagedProcess::spawn("source-server", cmd, &dir)?;
        wait_http_ok(&format!("http://127.0.0.1:{port}/ready"), source).await
    }

    /// The URL a client uses: the zero-cache, or the first view-syncer.
    pub fn client_url(&self) -> String {
        match &self.view_syncers {
            Some(vs) if !vs.is_empty() => vs.url(0),
            _ => self.zero.url(),
        }
    }

    /// The last lines of every server's logs, for failure messages.
    pub fn log_tails(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}",
            self.app.log_tail(40),
            self.source.log_tail(40),
            self.more_sources
                .iter()
                .map(|s| s.log_tail(40))
                .collect::<Vec<_>>()
                .join("\n"),
            self.zero.log_tail(60),
            self.view_syncers
                .as_ref()
                .map(|vs| vs.log_tails(40))
                .unwrap_or_default()
        )
    }

    /// Stops everything by PID; fails if a process could not be stopped.
    pub async fn stop(self) -> anyhow::Result<()> {
        for (name, result) in self.stop_each().await {
            result.with_context(|| format!("stopping {name}"))?;
        }
        Ok(())
    }

    /// Stops everything by PID, the app and zero-cache first, and says how each one ended.
    pub async fn stop_each(
        mut self,
    ) -> Vec<(&'static str, anyhow::Result<std::process::ExitStatus>)> {
        let mut ended = vec![("zrocket", self.app.terminate().await)];
        if let Some(vs) = &mut self.view_syncers {
            for zc in vs.iter_mut() {
                ended.push(("view-syncer", zc.terminate().await));
            }
        }
        ended.push(("zero-cache", self.zero.terminate().await));
        if let Some(b) = self.source_balancer.take() {
            b.stop().await;
        }
        for s in &mut self.more_sources {
            ended.push(("source-server", s.terminate().await));
        }
        ended.extend([
            ("source-server", self.source.terminate().await),
            ("postgres", self.pg.process().terminate().await),
            ("mongodb", self.mongo.process().terminate().await),
        ]);
        ended
    }
}

/// Source `i`'s state folder: `source` for the first (as with one), `source-<i>` after it.
fn source_dir(i: usize) -> String {
    match i {
        0 => "source".to_string(),
        _ => format!("source-{i}"),
    }
}

/// A source-server on `port` with the stack's exported configuration; every source of a stack
/// gets the same settings and token, as replicas of one Deployment do.
fn source_command(
    bin: &Path,
    port: u16,
    mongo_uri: &str,
    export_dir: &Path,
    secrets: &Secrets,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env(env::source::HOST, "127.0.0.1")
        .env(env::source::PORT, port.to_string())
        .env(env::source::MONGODB_URI, mongo_uri)
        .env(env::source::MONGODB_DATABASE, DATABASE)
        .env(env::source::SCHEMA_FILE, export_dir.join(files::SCHEMA))
        .env(
            env::source::TABLE_MAPPINGS_FILE,
            export_dir.join(files::TABLE_MAPPINGS),
        )
        .env(
            env::source::PERMISSIONS_FILE,
            export_dir.join(files::PERMISSIONS),
        )
        .env(env::source::SOURCE_TOKEN, &secrets.source_token)
        .env(env::source::LOG_FORMAT, "json");
    cmd
}

/// `preferred` when it and the `count - 1` ports after it are free, else a free block.
fn pick_port(preferred: Option<u16>, count: u16) -> u16 {
    let free = |p: u16| (0..count).all(|i| TcpListener::bind(("127.0.0.1", p + i)).is_ok());
    match preferred {
        Some(p) if free(p) => p,
        _ if count == 1 => free_port(),
        _ => free_port_block(count),
    }
}

/// A user of the stack's app signed in as an API client does (scripts and Node Zero clients
/// hold no cookie): signed up, then a bearer token from `POST /api/auth/token`.
pub struct ApiLogin {
    pub user_id: String,
    pub token: String,
}

/// Signs `username` up at the app (shown as `name`) and takes its bearer token, failing with the
/// app's answer when either step is refused.
pub async fn sign_up_api_client(
    app_url: &str,
    username: &str,
    name: &str,
) -> anyhow::Result<ApiLogin> {
    let http = http::Client::new().with_timeout(Duration::from_secs(30));
    let creds = serde_json::json!({"username": username, "password": "a long enough password"});
    let mut signup = creds.clone();
    signup["name"] = serde_json::json!(name);
    let resp = http
        .post(format!("{app_url}/api/auth/signup"))
        .json(&signup)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!(
            "sign-up of {username}: {} {}",
            resp.status(),
            resp.json_or_null()
        );
    }
    let resp = http
        .post(format!("{app_url}/api/auth/token"))
        .json(&creds)
        .send()
        .await?;
    let body = resp.json_or_null();
    if !resp.status().is_success() {
        bail!("token for {username}: {} {body}", resp.status());
    }
    let field = |pointer: &str| {
        body.pointer(pointer)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .with_context(|| format!("no {pointer} in the token answer {body}"))
    };
    Ok(ApiLogin {
        user_id: field("/user/_id")?,
        token: field("/token")?,
    })
}

/// Polls `url` until it answers 2xx, failing early (with its log) if `process` exits.
pub async fn wait_http_ok(url: &str, process: &mut ManagedProcess) -> anyhow::Result<()> {
    let client = http::Client::new().with_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        if let Some(status) = process.exit_status() {
            bail!(
                "{} exited before {url} answered ({})\n{}",
                process.name(),
                ManagedProcess::describe_exit(&status),
                process.log_tail(40)
            );
        }
        match client.get(url).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => last = format!("HTTP {}", resp.status()),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "{url} not ready after {READY_TIMEOUT:?} (last: {last})\n{}",
        process.log_tail(40)
    )
}
