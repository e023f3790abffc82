//! A real Zero client in Node (`tests/node/zero-client.mjs`) reads ZRocket through a *named*
//! query, against the whole stack started for real: a MongoDB replica set, the source-server
//! loaded with `zrocket export`, PostgreSQL, zero-cache 1.9.0 wired to the app's mutate/query
//! URLs, and `zrocket serve`.
//!
//! It exists because ZRocket publishes `null` permissions: a legacy (ad-hoc) ZQL client sees
//! nothing, so the only way to prove "a write in MongoDB reaches a Zero client" against a
//! ZRocket stack (what `tests/e2e/kind.sh` checks in a cluster) is the path the browser takes:
//! sign up, get a bearer token, connect with it, subscribe to `rooms.publicChannels`, let zero-cache ask the
//! app for the query's AST, and see a channel inserted straight into MongoDB arrive live.
//!
//! Needs the workspace binaries (`cargo build --bins` first; this test does not build other
//! packages) and Node with `tests/node` installed (installed on first use).
//!
//! The stack starts once and the scenario runs as named cases in order; each needs the one
//! before it (the login's token, then the running client), and says so when that one failed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use zerostack_harness::cases::Cases;
use zerostack_harness::node::ensure_node_modules;
use zerostack_harness::stack::{ApiLogin, DATABASE, Stack, StackOptions, sign_up_api_client};
use zerostack_harness::{ManagedProcess, free_port, node_dir};

/// How long the client may take to connect and show its first complete result.
const FIRST_RESULT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the inserted channel may take to reach the client (the client's own timeout).
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// The JSON lines the client printed so far (`{resultType, rows, error?}`).
fn client_lines(client: &ManagedProcess) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(client.stdout_log()).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("client printed non-JSON: {l}")))
        .collect()
}

fn rows(line: &Value) -> &[Value] {
    line.get("rows")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn names(line: &Value) -> Vec<&str> {
    rows(line)
        .iter()
        .filter_map(|r| r.get("name").and_then(Value::as_str))
        .collect()
}

/// Waits until the client prints a complete result (the server answered the named query and
/// the rows synced), failing early if it exits or reports an error.
async fn wait_first_complete(client: &mut ManagedProcess) -> anyhow::Result<Value> {
    let deadline = Instant::now() + FIRST_RESULT_TIMEOUT;
    loop {
        let lines = client_lines(client)?;
        if let Some(err) = lines.iter().find(|l| l["resultType"] == "error") {
            bail!("the named query failed: {err}\n{}", client.log_tail(40));
        }
        if let Some(done) = lines.iter().find(|l| l["resultType"] == "complete") {
            return Ok(done.clone());
        }
        if !client.is_running() {
            bail!(
                "the client exited before a complete result\n{}",
                client.log_tail(40)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "no complete result after {FIRST_RESULT_TIMEOUT:?}\n{}",
                client.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `node tests/node/zero-client.mjs args...`, output to log files in `logs`.
fn spawn_client(name: &str, args: &[String], logs: &Path) -> anyhow::Result<ManagedProcess> {
    let dir = node_dir();
    let mut cmd = Command::new(zerostack_harness::paths::node_bin());
    cmd.arg(dir.join("zero-client.mjs"))
        .args(args)
        .current_dir(&dir);
    ManagedProcess::spawn(name, cmd, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_written_to_mongodb_reaches_a_named_query_client() -> Result<()> {
    ensure_node_modules()?;
    let stack = Stack::start(StackOptions::temp()?).await?;
    // The channel the client waits for; unique, so a reused database cannot have it already.
    let mark = format!("nq-{}-{}", std::process::id(), free_port());
    let mut cases = Cases::new("zero_client_named_query");
    let mut login: Option<ApiLogin> = None;
    let mut client: Option<ManagedProcess> = None;

    cases
        .run("a new user signs up and gets an API token", async {
            login =
                Some(sign_up_api_client(&stack.app_url, "nq-client", "Named Query Client").await?);
            Ok(())
        })
        .await;
    cases
        .run(
            "the named query's first result holds the seeded channels, and only channels",
            async {
                let login = login.as_ref().context("the login case failed")?;
                let args = named_query_args(&stack, login, &mark);
                let logs = stack.state.path();
                let client = client.insert(spawn_client("zero-client-named", &args, logs)?);
                first_result_has_the_seeded_channels(&stack, client, &mark).await
            },
        )
        .await;
    cases
        .run(
            "a channel inserted into MongoDB reaches the client live",
            async {
                let client = client
                    .as_mut()
                    .context("the named-query client did not start")?;
                a_channel_written_to_mongodb_arrives(&stack, client, &mark).await
            },
        )
        .await;
    cases
        .run(
            "the same client as a legacy query sees nothing under null permissions",
            async {
                let login = login.as_ref().context("the login case failed")?;
                a_legacy_query_sees_nothing(&stack, login).await
            },
        )
        .await;

    if let Some(mut client) = client {
        let _ = client.terminate().await;
    }
    let stopped = stack.stop().await;
    cases.finish()?;
    stopped
}

/// The client's connection arguments, for reading `table`.
fn client_args(stack: &Stack, login: &ApiLogin, table: &str) -> Vec<String> {
    vec![
        "--url".to_string(),
        stack.zero.url(),
        "--schema".into(),
        stack.export_dir.join("schema.json").display().to_string(),
        "--table".into(),
        table.into(),
        "--auth".into(),
        login.token.clone(),
        "--user-id".into(),
        login.user_id.clone(),
    ]
}

/// The named-query client on `channels`, waiting for the channel `mark`, which does not exist
/// yet.
fn named_query_args(stack: &Stack, login: &ApiLogin, mark: &str) -> Vec<String> {
    let until = json!({"name": mark}).to_string();
    let mut args = client_args(stack, login, "channels");
    args.extend([
        "--query".into(),
        "rooms.publicChannels".into(),
        "--args".into(),
        "{}".into(),
        "--until-json".into(),
        until,
        "--timeout-ms".into(),
        (FIRST_RESULT_TIMEOUT + ARRIVAL_TIMEOUT)
            .as_millis()
            .to_string(),
    ]);
    args
}

/// The server's AST for rooms.publicChannels selected the seeded public channels (and only
/// channels: no group or direct chat is in that table).
async fn first_result_has_the_seeded_channels(
    stack: &Stack,
    client: &mut ManagedProcess,
    mark: &str,
) -> Result<()> {
    let first = wait_first_complete(client)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", stack.log_tails()))?;
    let initial = names(&first);
    assert!(
        initial.contains(&"general") && initial.contains(&"random"),
        "the first complete result lacks the seeded channels: {first}"
    );
    assert!(
        !initial.contains(&mark),
        "{mark} was there before it was written"
    );
    Ok(())
}

/// A public channel written straight to MongoDB, with every non-optional column of `channels`
/// (and a few optional ones), reaches the waiting client, which then exits 0.
async fn a_channel_written_to_mongodb_arrives(
    stack: &Stack,
    client: &mut ManagedProcess,
    mark: &str,
) -> Result<()> {
    let now = bson::DateTime::now();
    stack
        .mongo
        .client()
        .await?
        .database(DATABASE)
        .collection::<bson::Document>(zrocket::db::ROOMS)
        .insert_one(bson::doc! {
            "_id": mark,
            "t": "c",
            "name": mark,
            "topic": "written by zero_client_named_query",
            "readOnly": false,
            "archived": false,
            "memberIds": ["u-alice"],
            "usernames": ["alice"],
            "messageCount": 0_i64,
            "createdBy": "u-alice",
            "createdAt": now,
            "updatedAt": now,
        })
        .await
        .context("inserting the channel into MongoDB")?;

    let outcome = client
        .wait_exit(ARRIVAL_TIMEOUT + Duration::from_secs(30))
        .await;
    let _ = client.terminate().await;
    if outcome.as_ref().ok() != Some(&Some(0)) {
        bail!(
            "the client did not see {mark}: {outcome:?}\n{}\n{}",
            client.log_tail(20),
            stack.log_tails()
        );
    }
    let lines = client_lines(client)?;
    let row = lines
        .iter()
        .rev()
        .flat_map(rows)
        .find(|r| r["name"] == mark)
        .with_context(|| format!("exit 0 but no line holds {mark}: {lines:?}"))?;
    assert_eq!(row["_id"], mark, "{row}");
    assert_eq!(row["t"], "c", "{row}");
    assert_eq!(row["memberIds"], json!(["u-alice"]), "{row}");
    assert_eq!(row["messageCount"], 0, "{row}");
    assert_eq!(
        row["createdAt"].as_i64(),
        Some(now.timestamp_millis()),
        "createdAt must arrive as epoch milliseconds: {row}"
    );
    Ok(())
}

/// The reason for the named mode: the same client, as a legacy ZQL query, is authorized by the
/// published permissions, which are `null`, so it sees no channel at all.
async fn a_legacy_query_sees_nothing(stack: &Stack, login: &ApiLogin) -> Result<()> {
    let mut args = client_args(stack, login, "channels");
    args.extend(["--timeout-ms".into(), "60000".into()]);
    let mut legacy = spawn_client("zero-client-legacy", &args, stack.state.path())?;
    let legacy_exit = legacy.wait_exit(Duration::from_secs(90)).await;
    let _ = legacy.terminate().await;
    let legacy_lines = client_lines(&legacy)?;
    let complete = legacy_lines
        .iter()
        .find(|l| l["resultType"] == "complete")
        .with_context(|| {
            format!(
                "the legacy client gave no complete result ({legacy_exit:?})\n{}",
                legacy.log_tail(20)
            )
        })?;
    assert!(
        rows(complete).is_empty(),
        "a legacy query saw rows despite null permissions: {complete}"
    );
    Ok(())
}
