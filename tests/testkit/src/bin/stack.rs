//! `stack`: the whole ZeroStack on this machine, for trying it out and for demos
//! (`tests/stack.sh`). Starts MongoDB, PostgreSQL, source-server, zero-cache and the ZRocket
//! app as processes on 127.0.0.1, prints what runs where, and stops everything by PID on
//! Ctrl-C / SIGTERM. source-server and zrocket are optional: when their binaries are not built
//! the stack runs what it can and says so.
//!
//! Env: `STACK_DIR` (keep state there; default a temp dir removed at exit), `SOURCE_PORT`
//! (8001), `ZERO_PORT` (4848), `APP_PORT` (8011): used when free, otherwise free ports.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};
use zerostack_testkit::{
    ManagedProcess, Mongo, Postgres, StateDir, ZeroCache, ZeroCacheOptions, free_port,
    free_port_block, repo_root,
};

const DATABASE: &str = "zrocket";

struct Row {
    name: &'static str,
    url: String,
    pid: u32,
    startup: Duration,
}

#[tokio::main]
async fn main() {
    // Errors end here, after every started process was stopped by its Drop.
    if let Err(e) = run_stack().await {
        eprintln!("stack: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run_stack() -> anyhow::Result<()> {
    let root = repo_root();
    let state = match std::env::var_os("STACK_DIR") {
        Some(dir) => StateDir::at(PathBuf::from(dir))?,
        None => StateDir::temp()?,
    };
    let bin_dir = root.join("target/debug");
    let source_bin = bin_dir.join("source-server");
    let app_bin = bin_dir.join("zrocket");
    let mut rows = Vec::new();

    println!("stack: state in {}", state.path().display());
    let started = Instant::now();
    // The two databases start side by side; each reports its own start-up time.
    let (mongo, pg) = tokio::join!(
        async {
            let mongo = Mongo::start_in(state.service("mongo")?).await?;
            anyhow::Ok((mongo, started.elapsed()))
        },
        async {
            let pg = Postgres::start_in(state.service("postgres")?).await?;
            pg.ensure_db("zero_cvr").await?;
            pg.ensure_db("zero_cdc").await?;
            anyhow::Ok((pg, started.elapsed()))
        }
    );
    let (mongo, mongo_startup) = mongo.context("starting MongoDB")?;
    let (pg, pg_startup) = pg.context("starting PostgreSQL")?;
    let mongo_uri = mongo.uri_with_db(DATABASE);
    rows.push(Row {
        name: "mongodb",
        url: mongo_uri.clone(),
        pid: mongo.pid(),
        startup: mongo_startup,
    });
    rows.push(Row {
        name: "postgres",
        url: pg.url("zero_cvr / zero_cdc"),
        pid: pg.pid(),
        startup: pg_startup,
    });

    let secrets = Secrets::load_or_create(state.path())?;
    let config_dir = state.service("config")?;
    let app_exists = app_bin.exists();
    if app_exists {
        run(
            Command::new(&app_bin)
                .args(["export", "--out"])
                .arg(&config_dir),
            "zrocket export",
        )?;
        run(
            Command::new(&app_bin)
                .arg("seed")
                .env("MONGODB_URI", &mongo_uri)
                .env("MONGODB_DATABASE", DATABASE),
            "zrocket seed",
        )?;
    } else {
        let example = root.join("tests/fixtures/example");
        for f in ["schema.json", "table-mappings.json", "permissions.json"] {
            std::fs::copy(example.join(f), config_dir.join(f))
                .with_context(|| format!("copying {f}"))?;
        }
        seed_example(&mongo, &example.join("seed.json")).await?;
        println!(
            "stack: {} not built; using tests/fixtures/example and its seed",
            app_bin.display()
        );
    }

    let source_port = preferred_port("SOURCE_PORT", 8001, 1);
    let zero_port = preferred_port("ZERO_PORT", 4848, 3);
    let app_port = preferred_port("APP_PORT", 8011, 1);
    let zero_url = format!("http://127.0.0.1:{zero_port}");
    let app_url = format!("http://127.0.0.1:{app_port}");

    let mut source = None;
    if source_bin.exists() {
        let t = Instant::now();
        let dir = state.service("source-server")?;
        let mut cmd = Command::new(&source_bin);
        cmd.current_dir(&root)
            .env("PORT", source_port.to_string())
            .env("MONGODB_URI", &mongo_uri)
            .env("MONGODB_DATABASE", DATABASE)
            .env("ZERO_SCHEMA_FILE", config_dir.join("schema.json"))
            .env(
                "ZERO_TABLE_MAPPINGS_FILE",
                config_dir.join("table-mappings.json"),
            )
            .env("SOURCE_TOKEN", &secrets.source_token)
            .env("LOG_FORMAT", "json");
        // An export may write `null` permissions (none defined): then pass no file at all.
        let permissions = config_dir.join("permissions.json");
        if std::fs::read_to_string(&permissions).is_ok_and(|t| t.trim() != "null") {
            cmd.env("ZERO_PERMISSIONS_FILE", &permissions);
        }
        let mut p = ManagedProcess::spawn("source-server", cmd, &dir)?;
        wait_http(&mut p, source_port, "/ready", Duration::from_secs(60)).await?;
        rows.push(Row {
            name: "source-server",
            url: format!("http://127.0.0.1:{source_port} (ws /changes/v0/stream)"),
            pid: p.pid(),
            startup: t.elapsed(),
        });
        source = Some(p);
    } else {
        println!(
            "stack: {} not built; no source-server and no zero-cache",
            source_bin.display()
        );
    }

    let mut app = None;
    if app_exists {
        let t = Instant::now();
        let dir = state.service("zrocket")?;
        let mut cmd = Command::new(&app_bin);
        cmd.arg("serve")
            .current_dir(&root)
            .env("PORT", app_port.to_string())
            .env("MONGODB_URI", &mongo_uri)
            .env("MONGODB_DATABASE", DATABASE)
            .env("AUTH_SECRET", &secrets.auth_secret)
            .env("PUBLIC_ZERO_URL", &zero_url)
            .env("LOG_FORMAT", "json");
        let mut p = ManagedProcess::spawn("zrocket", cmd, &dir)?;
        wait_http(&mut p, app_port, "/health", Duration::from_secs(60)).await?;
        rows.push(Row {
            name: "zrocket",
            url: app_url.clone(),
            pid: p.pid(),
            startup: t.elapsed(),
        });
        app = Some(p);
    }

    let mut zero = None;
    if source.is_some() {
        let t = Instant::now();
        let zc = ZeroCache::start_in(
            state.service("zero-cache")?,
            ZeroCacheOptions {
                upstream_url: format!(
                    "ws://127.0.0.1:{source_port}/changes/v0/stream?token={}",
                    secrets.source_token
                ),
                cvr_db: pg.url("zero_cvr"),
                change_db: pg.url("zero_cdc"),
                mutate_url: Some(format!("{app_url}/api/zero/mutate")),
                query_url: Some(format!("{app_url}/api/zero/query")),
                port: Some(zero_port),
                admin_password: Some(secrets.admin_password.clone()),
                ready_timeout: Some(Duration::from_secs(120)),
                ..Default::default()
            },
        )
        .await?;
        rows.push(Row {
            name: "zero-cache",
            url: zero_url.clone(),
            pid: zc.pid(),
            startup: t.elapsed(),
        });
        zero = Some(zc);
    }

    println!();
    println!("{:<14} {:>7} {:>9}  URL", "SERVICE", "PID", "START-UP");
    for r in &rows {
        println!(
            "{:<14} {:>7} {:>8.1}s  {}",
            r.name,
            r.pid,
            r.startup.as_secs_f64(),
            r.url
        );
    }
    println!();
    println!(
        "state dir: {} (logs: <service>/<name>.std{{out,err}}.log)",
        state.path().display()
    );
    println!("secrets:   {}", state.path().join("secrets.env").display());
    if app.is_some() {
        println!("open:      {app_url}");
    }
    println!("stack: running; Ctrl-C or SIGTERM stops everything");

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = tick.tick() => {
                // zero-cache exits (code 14) after reset-required; like a supervisor, start it
                // again so it re-syncs.
                if let Some(zc) = zero.as_mut() && !zc.is_running() {
                    let code = zc.process().exit_status().and_then(|s| s.code());
                    println!("stack: zero-cache exited (code {code:?}); starting it again");
                    if let Err(e) = zc.start_again().await {
                        println!("stack: zero-cache did not come back: {e}");
                        break;
                    }
                }
                for p in source.iter_mut().chain(app.iter_mut()) {
                    if let Some(status) = p.exit_status() {
                        println!("stack: {} exited ({})\n{}", p.name(), ManagedProcess::describe_exit(&status), p.log_tail(20));
                    }
                }
                if source.as_mut().is_some_and(|p| !p.is_running()) || app.as_mut().is_some_and(|p| !p.is_running()) {
                    break;
                }
            }
        }
    }

    println!("stack: stopping");
    if let Some(mut p) = app {
        report_stop("zrocket", p.terminate().await);
    }
    if let Some(mut zc) = zero {
        report_stop("zero-cache", zc.process().terminate().await);
    }
    if let Some(mut p) = source {
        report_stop("source-server", p.terminate().await);
    }
    let (mut pg, mut mongo) = (pg, mongo);
    report_stop("postgres", pg.process().terminate().await);
    report_stop("mongodb", mongo.process().terminate().await);
    println!("stack: stopped");
    Ok(())
}

fn report_stop(name: &str, result: anyhow::Result<std::process::ExitStatus>) {
    match result {
        Ok(status) => println!(
            "stack: {name} stopped ({})",
            ManagedProcess::describe_exit(&status)
        ),
        Err(e) => println!("stack: stopping {name}: {e}"),
    }
}

/// `default` (or the env override) when `count` ports from it are free, else a free block.
fn preferred_port(env: &str, default: u16, count: u16) -> u16 {
    let wanted = std::env::var(env)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let free = (0..count).all(|i| TcpListener::bind(("127.0.0.1", wanted + i)).is_ok());
    match (free, count) {
        (true, _) => wanted,
        (false, 1) => free_port(),
        (false, n) => free_port_block(n),
    }
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Waits until `GET path` answers 200, failing early (with the log) if the process exits.
async fn wait_http(
    p: &mut ManagedProcess,
    port: u16,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(status) = p.exit_status() {
            bail!(
                "{} exited during start-up ({})\n{}",
                p.name(),
                ManagedProcess::describe_exit(&status),
                p.log_tail(30)
            );
        }
        let attempt = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await?;
            let mut buf = vec![0u8; 32];
            let n = s.read(&mut buf).await?;
            Ok::<bool, std::io::Error>(buf[..n].starts_with(b"HTTP/1.1 200"))
        };
        if matches!(
            tokio::time::timeout(Duration::from_secs(2), attempt).await,
            Ok(Ok(true))
        ) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{} not answering GET {path} on port {port} after {timeout:?}\n{}",
        p.name(),
        p.log_tail(30)
    )
}

/// Inserts `{collection: [docs]}` from the example seed into empty collections only, so a kept
/// `STACK_DIR` is not seeded twice.
async fn seed_example(mongo: &Mongo, seed: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(seed).with_context(|| format!("reading {}", seed.display()))?;
    let seed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON object", seed.display()))?;
    let db = mongo.client().await?.database(DATABASE);
    for (collection, docs) in seed {
        let coll = db.collection::<bson::Document>(&collection);
        if coll.estimated_document_count().await? > 0 {
            continue;
        }
        let docs = docs
            .as_array()
            .with_context(|| format!("seed.json: $.{collection}: expected an array of documents"))?
            .iter()
            .map(|d| match bson::Bson::try_from(d.clone()) {
                Ok(bson::Bson::Document(doc)) => Ok(doc),
                _ => bail!("seed.json: $.{collection}: every entry must be a document"),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        coll.insert_many(docs).await?;
    }
    Ok(())
}

/// Random secrets for one stack, written to `<state>/secrets.env` (mode 0600) rather than
/// printed; reused when the state dir is kept.
struct Secrets {
    source_token: String,
    auth_secret: String,
    admin_password: String,
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
