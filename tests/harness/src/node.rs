//! Rust wrappers around the Node tools in `tests/node`: Zero's own protocol schema
//! (`validate-stream.mjs`), the replica dump (`read-replica.mjs`) and a real Zero client
//! (`zero-client.mjs`). The npm packages are installed on first use.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;

use crate::paths::{ensure_installed, node_bin, node_dir, zero_cache_bin};

/// Makes sure `tests/node/node_modules` is installed.
pub fn ensure_node_modules() -> anyhow::Result<()> {
    ensure_installed("node", || {
        node_bin().exists()
            && zero_cache_bin().exists()
            && node_dir().join("node_modules/json-custom-numbers").exists()
    })
}

/// Runs `tests/node/<script> args...` on Node 22; returns stdout, or fails with stdout and stderr.
pub async fn node_tool(script: &str, args: &[&str]) -> anyhow::Result<String> {
    run(script, args, None).await
}

/// Like [`node_tool`], feeding `stdin` to the script.
pub async fn node_tool_with_stdin(
    script: &str,
    args: &[&str],
    stdin: &[u8],
) -> anyhow::Result<String> {
    run(script, args, Some(stdin)).await
}

async fn run(script: &str, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<String> {
    ensure_node_modules()?;
    let dir = node_dir();
    let mut child = tokio::process::Command::new(node_bin())
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting node {script}"))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().context("stdin pipe")?;
        let input = input.to_vec();
        // Written concurrently so a large input cannot deadlock against a full stdout pipe.
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
        });
    }
    let out = child.wait_with_output().await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "node {script} {} failed ({}):\n{}{}",
            redact(args),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            last_chars(&stdout, 4000)
        );
    }
    Ok(stdout)
}

/// The arguments for an error message, with the value of `--auth` hidden.
fn redact(args: &[&str]) -> String {
    let mut shown = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for a in args {
        shown.push(if hide_next { "***" } else { a });
        hide_next = *a == "--auth";
    }
    shown.join(" ")
}

fn last_chars(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

/// Validates downstream protocol messages (one JSON value each, as sent on the wire) with
/// zero's `v0.changeStreamMessageSchema`, in the passthrough mode zero-cache uses. The error
/// names the first invalid line and the schema's complaint.
pub async fn validate_stream_lines(lines: &[String]) -> anyhow::Result<()> {
    validate(lines, &[]).await
}

/// [`validate_stream_lines`] plus transaction framing: no data outside begin/commit, each
/// commit watermark equal to its begin's, commit watermarks strictly increasing.
pub async fn validate_transactions(lines: &[String]) -> anyhow::Result<()> {
    validate(lines, &["--transactions"]).await
}

async fn validate(lines: &[String], flags: &[&str]) -> anyhow::Result<()> {
    let mut input = String::new();
    for line in lines {
        if line.contains('\n') {
            bail!("a protocol message must be one line (JSON text without newlines): {line}");
        }
        input.push_str(line);
        input.push('\n');
    }
    node_tool_with_stdin("validate-stream.mjs", flags, input.as_bytes())
        .await
        .map(|_| ())
}

/// zero-cache's replica as JSON (see `read-replica.mjs`): `{table: [rows]}` with rows sorted by
/// key and `_0_version` removed; integers keep their exact value (serde_json's
/// arbitrary_precision). Includes `_zero.replicationConfig` and `_zero.replicationState`.
pub async fn read_replica(replica_file: &Path) -> anyhow::Result<serde_json::Value> {
    let file = replica_file.to_str().context("replica path is not UTF-8")?;
    let out = node_tool("read-replica.mjs", &[file]).await?;
    serde_json::from_str(&out).context("parsing read-replica.mjs output")
}

/// What [`zero_client_wait`] waits for: a row of `table` containing every property of `until`
/// (an object), seen by a real Zero client connected to zero-cache at `url`.
#[derive(Clone, Debug)]
pub struct ZeroClientWait {
    /// zero-cache's client URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The Zero schema as JSON (`schema.json` as exported).
    pub schema_file: PathBuf,
    pub table: String,
    /// A JSON object every property of which the awaited row must have; `None`: the first
    /// complete result.
    pub until: Option<serde_json::Value>,
    pub user_id: Option<String>,
    pub auth: Option<String>,
    pub timeout: Duration,
}

impl ZeroClientWait {
    pub fn new(
        url: impl Into<String>,
        schema_file: impl Into<PathBuf>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            schema_file: schema_file.into(),
            table: table.into(),
            until: None,
            user_id: None,
            auth: None,
            timeout: Duration::from_secs(30),
        }
    }

    pub fn until(mut self, subset: serde_json::Value) -> Self {
        self.until = Some(subset);
        self
    }

    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    pub fn auth(mut self, token: impl Into<String>) -> Self {
        self.auth = Some(token.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Runs `zero-client.mjs` until the awaited row appears. Returns the client's output lines (one
/// JSON object `{resultType, rows}` per result change); fails on timeout with what it saw.
pub async fn zero_client_wait(w: &ZeroClientWait) -> anyhow::Result<Vec<serde_json::Value>> {
    let schema = w.schema_file.to_str().context("schema path is not UTF-8")?;
    let timeout_ms = w.timeout.as_millis().to_string();
    let until = w.until.as_ref().map(|u| u.to_string());
    let mut args = vec![
        "--url",
        &w.url,
        "--schema",
        schema,
        "--table",
        &w.table,
        "--timeout-ms",
        &timeout_ms,
    ];
    if let Some(u) = &until {
        args.extend(["--until-json", u]);
    }
    if let Some(u) = &w.user_id {
        args.extend(["--user-id", u]);
    }
    if let Some(a) = &w.auth {
        args.extend(["--auth", a]);
    }
    let out = node_tool("zero-client.mjs", &args).await?;
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .with_context(|| format!("zero-client.mjs printed non-JSON: {l}"))
        })
        .collect()
}
