//! A child process we own: started in its own process group with stdout/stderr going to log
//! files in its folder, stopped by PID (SIGTERM or a chosen signal, then SIGKILL to the whole
//! group after a grace period), and stopped on drop, so no test leaves a process behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How often exit is polled.
const POLL: Duration = Duration::from_millis(25);

pub struct ManagedProcess {
    name: String,
    child: Child,
    pid: u32,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
    exit: Option<ExitStatus>,
    stop_signal: i32,
    grace: Duration,
    /// Set once the group was SIGKILLed after the leader exited: from then on the group ID may
    /// be free for reuse and must not be signalled again.
    group_done: bool,
}

impl ManagedProcess {
    /// Spawns `cmd` with stdin closed and stdout/stderr appended to `<log_dir>/<name>.stdout.log`
    /// and `<name>.stderr.log` (appended, so a restart keeps the earlier run's log).
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating log dir {}", log_dir.display()))?;
        let stdout_log = log_dir.join(format!("{name}.stdout.log"));
        let stderr_log = log_dir.join(format!("{name}.stderr.log"));
        let open = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening log {}", p.display()))
        };
        cmd.stdin(Stdio::null())
            .stdout(open(&stdout_log)?)
            .stderr(open(&stderr_log)?)
            // Own group: Ctrl-C in a terminal does not reach it behind our back, and kill9()
            // also takes down the children it forked (zero-cache's workers).
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let pid = child.id();
        Ok(Self {
            name: name.to_string(),
            child,
            pid,
            stdout_log,
            stderr_log,
            exit: None,
            stop_signal: libc::SIGTERM,
            grace: Duration::from_secs(10),
            group_done: false,
        })
    }

    /// The signal `terminate()` sends first (default SIGTERM; PostgreSQL wants SIGINT).
    pub fn with_stop_signal(mut self, signal: i32) -> Self {
        self.stop_signal = signal;
        self
    }

    /// How long `terminate()` waits before SIGKILL (default 10 s).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn stdout_log(&self) -> &Path {
        &self.stdout_log
    }

    pub fn stderr_log(&self) -> &Path {
        &self.stderr_log
    }

    /// True while the process has not exited (reaps it when it has).
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    /// The exit status once it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.poll_exit()
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exit = Some(status);
        }
        self.exit
    }

    /// Sends `signal` to the process (only while it runs, so a reused PID is never hit).
    pub fn signal(&mut self, signal: i32) -> anyhow::Result<()> {
        if self.is_running() {
            // SAFETY: kill(2) with a PID we spawned and have not reaped yet.
            if unsafe { libc::kill(self.pid as i32, signal) } != 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ESRCH) {
                    bail!("signal {signal} to {} (pid {}): {err}", self.name, self.pid);
                }
            }
        }
        Ok(())
    }

    /// SIGKILL to the whole process group (leader and whatever it forked). The group ID is our
    /// child's PID; it cannot be reused while any member is alive, so this only hits our group.
    fn kill_group(&mut self) {
        if self.group_done {
            return;
        }
        // SAFETY: kill(2) on the process group we created with process_group(0).
        unsafe {
            libc::kill(-(self.pid as i32), libc::SIGKILL);
        }
        if self.exit.is_some() {
            self.group_done = true;
        }
    }

    /// Waits up to `timeout` for the process to exit; returns its exit code (`None` when a
    /// signal ended it). Fails on timeout, with the end of its log.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Ok(status.code());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} (pid {}) still running after {timeout:?}\n{}",
                    self.name,
                    self.pid,
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the process: the stop signal, then SIGKILL to the group after the grace period.
    /// Returns the exit status (already-exited processes just report theirs).
    pub async fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.poll_exit() {
            self.kill_group();
            return Ok(status);
        }
        self.signal(self.stop_signal)?;
        let deadline = Instant::now() + self.grace;
        while self.poll_exit().is_none() && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        self.kill_group();
        self.reap().await
    }

    /// SIGKILL to the process group, at once, and reap the leader.
    pub async fn kill9(&mut self) -> anyhow::Result<ExitStatus> {
        self.kill_group();
        self.reap().await
    }

    async fn reap(&mut self) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.poll_exit() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} (pid {}) did not exit after SIGKILL",
                    self.name,
                    self.pid
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The last `n` lines of stdout and of stderr, labelled, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        format!(
            "--- {} stdout ({}) ---\n{}\n--- {} stderr ({}) ---\n{}",
            self.name,
            self.stdout_log.display(),
            tail(&self.stdout_log, n),
            self.name,
            self.stderr_log.display(),
            tail(&self.stderr_log, n)
        )
    }

    /// Whether the logs (stdout or stderr) contain `needle` anywhere.
    pub fn log_contains(&self, needle: &str) -> bool {
        [&self.stdout_log, &self.stderr_log]
            .iter()
            .any(|p| std::fs::read_to_string(p).is_ok_and(|s| s.contains(needle)))
    }

    /// Describes how it ended, e.g. "exit code 14" or "signal 9".
    pub fn describe_exit(status: &ExitStatus) -> String {
        match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => status.to_string(),
        }
    }
}

/// Last `n` lines of a file, reading at most its last 64 KiB.
fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.signal(self.stop_signal);
            let deadline = Instant::now() + self.grace.min(Duration::from_secs(5));
            while self.poll_exit().is_none() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
        self.kill_group();
        if self.exit.is_none() {
            let _ = self.child.wait();
        }
    }
}

/// What a command run to its end printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// stdout then stderr, for messages.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs a short-lived command (kubectl, helm, npm, ...) to its end, feeding it `stdin`. The
/// input is written from a thread: a child that answers while it still reads would otherwise
/// fill its output pipe and wait for us forever.
pub fn output(cmd: &mut Command, stdin: Option<&str>) -> anyhow::Result<Output> {
    use std::io::Write;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_owned();
        std::thread::spawn(move || pipe.write_all(input.as_bytes()))
    });
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {:?}", cmd.get_program()))?;
    if let Some(w) = writer {
        w.join()
            .map_err(|_| anyhow::anyhow!("the input writer panicked"))?
            .with_context(|| format!("writing the input of {:?}", cmd.get_program()))?;
    }
    Ok(Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// [`output`] for a command that must succeed: its stdout, or an error naming `what` with
/// everything it printed.
pub fn run(what: &str, cmd: &mut Command, stdin: Option<&str>) -> anyhow::Result<String> {
    let out = output(cmd, stdin).with_context(|| what.to_string())?;
    if !out.success() {
        bail!("{what} failed ({}):\n{}", out.status, out.all());
    }
    Ok(out.stdout)
}
