//! `stack`: the whole ZeroStack on this machine, for trying it out and for demos
//! (`tests/stack.sh`). Starts it with [`zerostack_harness::stack`], prints what runs where,
//! restarts zero-cache when it exits as a supervisor would (it exits with code 14 after
//! `reset-required`), and stops everything by PID on Ctrl-C / SIGTERM.
//!
//! Env: `STACK_DIR` (keep state there; default a temp dir removed at exit), `SOURCE_PORT`
//! (8001), `ZERO_PORT` (4848), `APP_PORT` (8011): used when free, otherwise free ports.
//! `--view-syncers N` or `VIEW_SYNCERS=N` (N > 0): zero-cache as a replication-manager backing
//! up to `<state>/backup` with Litestream plus N view-syncers, the first on `ZERO_PORT`; a
//! view-syncer that exits is started again like the single zero-cache.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use zerostack_harness::stack::{Ports, Stack, StackOptions};
use zerostack_harness::{ManagedProcess, StateDir, repo_root};

#[tokio::main]
async fn main() {
    // Errors end here, after every started process was stopped by its Drop.
    if let Err(e) = run().await {
        eprintln!("stack: error: {e:#}");
        std::process::exit(1);
    }
}

fn port(var: &str, default: u16) -> Option<u16> {
    Some(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// `--view-syncers N` (or `--view-syncers=N`) wins over `VIEW_SYNCERS`; 0 = one zero-cache.
fn view_syncers() -> anyhow::Result<usize> {
    let mut args = std::env::args().skip(1);
    let mut value = std::env::var("VIEW_SYNCERS").ok().filter(|v| !v.is_empty());
    while let Some(arg) = args.next() {
        if arg == "--view-syncers" {
            value = Some(args.next().context("--view-syncers needs a number")?);
        } else if let Some(v) = arg.strip_prefix("--view-syncers=") {
            value = Some(v.to_string());
        } else {
            anyhow::bail!("unknown argument {arg:?} (expected --view-syncers N)");
        }
    }
    match value {
        None => Ok(0),
        Some(v) => v.trim().parse().with_context(|| {
            format!("--view-syncers / VIEW_SYNCERS: {v:?} is not a number of view-syncers")
        }),
    }
}

async fn run() -> anyhow::Result<()> {
    let view_syncers = view_syncers()?;
    let state = match std::env::var_os("STACK_DIR") {
        Some(dir) => StateDir::at(PathBuf::from(dir))?,
        None => StateDir::temp()?,
    };
    println!("stack: state in {}", state.path().display());
    let web = repo_root().join("app/web/dist");
    let mut stack = Stack::start(StackOptions {
        state,
        ports: Ports {
            source: port("SOURCE_PORT", 8001),
            zero: port("ZERO_PORT", 4848),
            app: port("APP_PORT", 8011),
        },
        web_dir: web.is_dir().then_some(web),
        dev_login: std::env::var("DEV_LOGIN").is_ok_and(|v| v == "true"),
        view_syncers,
        sources: 1,
    })
    .await?;

    println!();
    println!("{:<14} {:>7} {:>9}  URL", "SERVICE", "PID", "START-UP");
    for s in &stack.started {
        println!(
            "{:<14} {:>7} {:>8.1}s  {}",
            s.name,
            s.pid,
            s.startup.as_secs_f64(),
            s.url
        );
    }
    let dir = stack.state.path().to_path_buf();
    println!();
    println!(
        "state dir: {} (logs: <service>/<name>.std{{out,err}}.log)",
        dir.display()
    );
    println!("secrets:   {}", dir.join("secrets.env").display());
    println!("open:      {}", stack.app_url);
    println!("stack: running; Ctrl-C or SIGTERM stops everything");

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = tick.tick() => {
                if !stack.zero.is_running() {
                    let code = stack.zero.process().exit_status().and_then(|s| s.code());
                    println!("stack: zero-cache exited (code {code:?}); starting it again");
                    if let Err(e) = stack.zero.start_again().await {
                        println!("stack: zero-cache did not come back: {e}");
                        break;
                    }
                }
                let mut lost = false;
                for (i, vs) in stack.view_syncers.iter_mut().flat_map(|v| v.iter_mut()).enumerate() {
                    if !vs.is_running() {
                        let code = vs.process().exit_status().and_then(|s| s.code());
                        println!("stack: view-syncer {i} exited (code {code:?}); starting it again");
                        if let Err(e) = vs.start_again().await {
                            println!("stack: view-syncer {i} did not come back: {e}");
                            lost = true;
                        }
                    }
                }
                if lost {
                    break;
                }
                let mut ended = false;
                for p in [&mut stack.source, &mut stack.app] {
                    if let Some(status) = p.exit_status() {
                        println!("stack: {} exited ({})\n{}", p.name(), ManagedProcess::describe_exit(&status), p.log_tail(20));
                        ended = true;
                    }
                }
                if ended {
                    break;
                }
            }
        }
    }

    println!("stack: stopping");
    for (name, result) in stack.stop_each().await {
        match result {
            Ok(status) => println!(
                "stack: {name} stopped ({})",
                ManagedProcess::describe_exit(&status)
            ),
            Err(e) => println!("stack: stopping {name}: {e}"),
        }
    }
    println!("stack: stopped");
    Ok(())
}
