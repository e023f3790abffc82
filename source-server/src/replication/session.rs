//! One zero-cache connection on `/changes/v0/stream`, from its query parameters to its close.
//!
//! Without `lastWatermark` the connection is an initial sync (`initial_sync`); with it, a resume
//! that is first checked against the replica registry, then streams (`transactions`). Whatever
//! asks for a rebuild ends the connection with `reset-required` and its [`ResetReason`], counted
//! by its label. Each connection is independent (zero-cache may open a new one while an old one
//! is still draining) and keeps no state beyond its own lifetime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::inputs::Loaded;
use crate::config::streaming::FullDocument;
use crate::connection_status::ConnectionStatus;
use crate::connection_status::now_ms;
use crate::mongo::change_stream::{ChangeCursor, ChangeError, Images, Start, locate_oversized};
use crate::mongo::cluster_time::ClusterTime;
use crate::mongo::images;
use crate::mongo::reconnect::{Backoff, is_transient};
use crate::mongo::replica_registry::{TOUCH_EVERY, Verdict};
use crate::replication::config_history::{ConfigHistory, Direction, StoredConfig};
use crate::replication::initial_sync::{InitialSyncContext, InitialSyncError, initial_sync};
use crate::replication::reset::ResetReason;
use crate::replication::schema_apply::{self, ApplyEnd, Change};
use crate::replication::schema_status::{ChangeKind, ChangeState, LastSchemaChange};
use crate::replication::transactions::{StreamEnd, Streamer, log_end};
use crate::server_state::ServerState;
use crate::zero::catalog::{Catalog, Shard};
use crate::zero::downstream::{Downstream, WsDownstream};
use crate::zero::messages::{self, Upstream};
use zerostack_spec::schema_diff::{Step, diff};

/// The query parameters zero-cache adds to `ZERO_UPSTREAM_DB`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectParams {
    #[serde(rename = "appID", default = "default_app")]
    pub app_id: String,
    #[serde(rename = "shardNum", default)]
    pub shard_num: u32,
    #[serde(rename = "lastWatermark")]
    pub last_watermark: Option<String>,
    #[serde(rename = "replicaVersion")]
    pub replica_version: Option<String>,
    /// A `Secret`, so that `{:?}` of the parameters cannot print it.
    pub token: Option<zerostack_spec::secret::Secret>,
}

fn default_app() -> String {
    "zero".into()
}

pub async fn serve_connection(socket: WebSocket, params: ConnectParams, state: Arc<ServerState>) {
    let shard = Shard {
        app_id: params.app_id.clone(),
        shard_num: params.shard_num,
    };
    let mode = if params.last_watermark.is_some() {
        "streaming"
    } else {
        "initial-sync"
    };
    let registration = state
        .connections
        .register(&shard.app_id, shard.shard_num, mode);
    state.metrics.connections.inc();
    let _dec = scopeguard(|| {
        state.metrics.connections.dec();
    });
    info!(app = %shard.app_id, shard = shard.shard_num, mode, last_watermark = ?params.last_watermark, "zero-cache connected");

    let (sink, mut stream) = socket.split();
    let (closed_tx, mut closed_rx) = watch::channel(false);
    let status = registration.status.clone();
    let metrics = state.metrics.clone();
    // Reading zero-cache's acks (and answering its pings) runs beside the writer.
    let reader = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Text(text)) => match messages::parse_upstream(&text) {
                    Ok(Upstream::Ack { watermark }) => {
                        metrics.acks.inc();
                        status.update(|v| v.last_watermark_acked = Some(watermark));
                    }
                    Err(e) => debug!(error = %e, "ignored upstream message"),
                },
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = closed_tx.send(true);
    });

    let mut down = WsDownstream { sink };
    let catalog = match state.catalog_for(&shard) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot build the table catalog for this connection");
            close(&mut down, 1011, "source configuration error").await;
            reader.abort();
            return;
        }
    };

    let outcome = tokio::select! {
        o = run(&state, &catalog, &shard, &params, &registration.status, &mut down) => o,
        _ = closed_rx.wait_for(|c| *c) => Outcome::Closed,
    };
    match outcome {
        Outcome::InitialSyncDone => {
            // zero-cache closes the socket after validating the snapshot; anything sent now
            // would be lost, so just wait for that close (bounded, in case it never comes).
            let _ = tokio::time::timeout(Duration::from_secs(60), closed_rx.wait_for(|c| *c)).await;
        }
        Outcome::Reset(reason) => {
            state.metrics.reset(reason.metric_label());
            warn!(reason = %reason, "sending reset-required");
            let _ = down
                .feed(messages::reset_required(&reason.to_string()))
                .await;
            let _ = down.flush().await;
            close(&mut down, 1000, "reset required").await;
        }
        Outcome::Closed => {}
        Outcome::Failed(why) => {
            warn!(error = %why, "closing the stream; zero-cache will resume from its last watermark");
            close(&mut down, 1011, "source error; resume").await;
        }
    }
    reader.abort();
    info!(app = %shard.app_id, shard = shard.shard_num, "zero-cache connection ended");
}

enum Outcome {
    InitialSyncDone,
    Reset(ResetReason),
    Closed,
    Failed(String),
}

async fn run<D: Downstream>(
    state: &ServerState,
    catalog: &Catalog,
    shard: &Shard,
    params: &ConnectParams,
    status: &ConnectionStatus,
    down: &mut D,
) -> Outcome {
    // Every connection, and every reopened stream, checks the collections' images first: an
    // operator may have turned them off since start-up.
    let needs = images::needed(
        &state.loaded.tables,
        &catalog.collections(),
        state.settings.full_document,
    );
    if let Err(e) = images::check(&state.db, &needs).await {
        return Outcome::Failed(e.to_string());
    }
    let Some(last_watermark) = params.last_watermark.as_deref() else {
        let ctx = InitialSyncContext {
            db: &state.db,
            catalog,
            metrics: &state.metrics,
            status,
            registry: &state.registry,
            config_hash: state.config_hash(),
            shard,
            batch_size: state.settings.snapshot_batch_size,
        };
        prune_registry(state).await;
        return match initial_sync(&ctx, down).await {
            Ok(at) => {
                // Detached: zero-cache may close the socket (ending this task) right after the
                // commit. Should it be lost anyway, the first resume records it.
                let history = ConfigHistory::new(&state.db, &state.settings.registry_collection);
                let config = StoredConfig::of(&state.loaded.config);
                let shard = shard.clone();
                tokio::spawn(async move {
                    if let Err(e) = history.record(&at.to_watermark(), &shard, &config).await {
                        warn!(error = %e, "cannot record the replica's configuration");
                    }
                });
                Outcome::InitialSyncDone
            }
            Err(InitialSyncError::Closed(_)) => Outcome::Closed,
            Err(e) => Outcome::Failed(e.to_string()),
        };
    };

    let resume_at = match ClusterTime::from_watermark(last_watermark) {
        Ok(t) => t,
        Err(e) => return Outcome::Reset(ResetReason::ForeignWatermark(e)),
    };
    let Some(replica_version) = params.replica_version.as_deref() else {
        return Outcome::Reset(ResetReason::NoReplicaVersion);
    };
    let history = ConfigHistory::new(&state.db, &state.settings.registry_collection);
    let mut schema_change = None;
    match state
        .registry
        .check(replica_version, state.config_hash(), shard)
        .await
    {
        Ok(Verdict::ConfigChanged) => {
            match plan(state, &history, shard, replica_version, last_watermark).await {
                Ok(Plan::UpToDate) => {}
                Ok(Plan::InPlace(p)) => schema_change = Some(p),
                Ok(Plan::Reset(reason)) => return Outcome::Reset(reason),
                Ok(Plan::Refused(why)) => return Outcome::Failed(why),
                Err(e) => return Outcome::Failed(format!("schema change: {e}")),
            }
        }
        Ok(verdict) => {
            if let Some(reason) = ResetReason::from_verdict(verdict.clone(), replica_version) {
                return Outcome::Reset(reason);
            }
            remember_config(state, &history, shard, replica_version).await;
        }
        Err(e) => return Outcome::Failed(format!("replica registry unavailable: {e}")),
    }
    let mut resume_at = resume_at;
    if let Some(p) = &schema_change {
        let old_catalog = match Catalog::new(
            &p.old.tables,
            shard,
            &p.old.config.bookkeeping,
            p.old.config.permissions.as_ref(),
        ) {
            Ok(c) => c.with_pipelines(&p.old.pipelines),
            Err(e) => return Outcome::Failed(format!("schema change: the old tables: {e}")),
        };
        let change = Change {
            state,
            shard,
            replica_version,
            resume_point: last_watermark,
            old: &p.old,
            old_catalog: &old_catalog,
            new_catalog: catalog,
            steps: &p.steps,
            status,
            history: &history,
        };
        match schema_apply::apply(&change, down, resume_at).await {
            Ok(at) => resume_at = at,
            Err(ApplyEnd::Closed) => return Outcome::Closed,
            Err(ApplyEnd::Reset(r)) => return Outcome::Reset(r),
            Err(ApplyEnd::Failed(e)) => return Outcome::Failed(e),
        }
    }
    // The change becomes the replica's configuration once zero-cache acknowledges its commit.
    let record_on_ack = async {
        let Some(_) = &schema_change else {
            return std::future::pending().await;
        };
        let w = resume_at.to_watermark();
        loop {
            tokio::time::sleep(ACK_POLL).await;
            if status.view().last_watermark_acked.as_deref() >= Some(w.as_str()) {
                break;
            }
        }
        match record_committed(state, &history, shard, replica_version).await {
            Ok(()) => {
                info!(watermark = %w, config_hash = state.config_hash(), "schema change committed by zero-cache");
                state.schema_changes.update(replica_version, |s| {
                    s.state = Some(ChangeState::Committed);
                    s.committed_at_ms = Some(now_ms());
                });
            }
            Err(e) => {
                warn!(error = %e, "cannot record the committed schema change; the next resume will")
            }
        }
        std::future::pending().await
    };
    let history_lost = || ResetReason::HistoryLost {
        resume_point: last_watermark.to_string(),
    };

    // The entry is marked used while the stream lasts, so a long-lived connection is never
    // pruned from under its replica.
    let keep_marked = async {
        loop {
            tokio::time::sleep(TOUCH_EVERY).await;
            if let Err(e) = state.registry.touch(replica_version, shard).await {
                warn!(error = %e, "cannot mark the replica registry entry used");
            }
        }
    };
    let streaming = async {
        let collections = catalog.collections();
        let mut streamer = Streamer::new(
            catalog,
            &state.metrics,
            status,
            &state.settings.stream,
            down,
            resume_at,
        )
        .post_images(state.settings.full_document != FullDocument::UpdateLookup);
        let stream_images = Images {
            full_document: state.settings.full_document,
            before_change: images::pre_images_needed(&state.loaded.tables),
        };
        let mut backoff = Backoff::default();
        // MongoDB going away (a restart, a step-down) breaks the change stream, not zero-cache's
        // connection: the stream is reopened at the last commit, with backoff. What cannot be
        // retried ends the connection, and so does MongoDB staying away for `HAND_OFF_AFTER`
        // (see there).
        let mut failing_since: Option<Instant> = None;
        let mut reopening = false;
        loop {
            // The first open was checked above, with the connection.
            let checked = if reopening {
                images::check(&state.db, &needs).await
            } else {
                Ok(Vec::new())
            };
            reopening = true;
            let opened = match checked {
                Err(images::ImagesError::Mongo(e)) => Err(ChangeError::Mongo(e)),
                Err(e) => return Outcome::Failed(e.to_string()),
                Ok(_) => {
                    ChangeCursor::open(
                        &state.db,
                        &collections,
                        Start::At(streamer.last_commit()),
                        stream_images,
                        state.settings.stream.read_batch_size,
                        Duration::from_millis(state.settings.stream.probe_ms),
                    )
                    .await
                }
            };
            let failure = match opened {
                Err(ChangeError::HistoryLost) => return Outcome::Reset(history_lost()),
                Err(ChangeError::TooLarge(_)) => {
                    return Outcome::Reset(oversized(state, &streamer, &collections).await);
                }
                Err(e) => e,
                Ok(cursor) => {
                    if backoff.attempts > 0 {
                        info!(
                            attempts = backoff.attempts,
                            resume_at = %streamer.last_commit().to_watermark(),
                            "MongoDB change stream reopened"
                        );
                    }
                    streamer.set_replay_until(cursor.opened_at());
                    let opened = Instant::now();
                    let end = streamer.run(cursor).await;
                    log_end(&end);
                    match end {
                        StreamEnd::Closed => return Outcome::Closed,
                        StreamEnd::ResetRequired(why) => return Outcome::Reset(why),
                        StreamEnd::Failed(ChangeError::HistoryLost) => {
                            return Outcome::Reset(history_lost());
                        }
                        StreamEnd::Failed(ChangeError::TooLarge(_)) => {
                            return Outcome::Reset(oversized(state, &streamer, &collections).await);
                        }
                        StreamEnd::Failed(e) => {
                            if opened.elapsed() > HEALTHY_STREAM {
                                backoff.reset();
                                failing_since = None;
                            }
                            e
                        }
                    }
                }
            };
            let retry = matches!(&failure, ChangeError::Mongo(e) if is_transient(e));
            if !retry || !streamer.discard_unsent() {
                return Outcome::Failed(failure.to_string());
            }
            let down_for = failing_since.get_or_insert_with(Instant::now).elapsed();
            if down_for >= HAND_OFF_AFTER {
                return Outcome::Failed(format!(
                    "MongoDB unreachable for {}s ({failure}); closing so that zero-cache reconnects, \
                     through the Service, to a replica that reaches it",
                    down_for.as_secs()
                ));
            }
            let delay = backoff.next_delay();
            state.metrics.mongodb_reconnects.inc();
            warn!(
                error = %failure,
                attempt = backoff.attempts,
                retry_in_ms = delay.as_millis() as u64,
                "MongoDB change stream broke; reopening it at the last commit"
            );
            tokio::time::sleep(delay).await;
        }
    };
    tokio::select! {
        outcome = streaming => outcome,
        never = keep_marked => never,
        never = record_on_ack => never,
    }
}

/// How often the acks are looked at for the commit of a schema change.
const ACK_POLL: Duration = Duration::from_millis(100);

/// An in-place change, ready to apply.
struct Prepared {
    old: Loaded,
    steps: Vec<Step>,
}

enum Plan {
    /// The replica already has the loaded configuration (changed in place earlier).
    UpToDate,
    InPlace(Box<Prepared>),
    Reset(ResetReason),
    /// Backwards during a rollout (see `config_history`): close, zero-cache resumes elsewhere.
    Refused(String),
}

/// What to do with a replica built from another configuration: compares what it has (the
/// history) with what is loaded.
async fn plan(
    state: &ServerState,
    history: &ConfigHistory,
    shard: &Shard,
    replica_version: &str,
    last_watermark: &str,
) -> Result<Plan, String> {
    let new = &state.loaded.config;
    let reset = |why: String, from: Option<&str>| {
        warn!(replica_version, reason = %why, "schema change cannot be applied in place; zero-cache must resync");
        let mut s =
            LastSchemaChange::now(ChangeKind::Reset, shard, replica_version, from, &new.hash);
        s.reason = Some(why.clone());
        state.schema_changes.set(s);
        Plan::Reset(ResetReason::ConfigChangedNotInPlace {
            replica_version: replica_version.to_string(),
            why,
        })
    };
    let entry = history
        .get(replica_version, shard)
        .await
        .map_err(|e| e.to_string())?;
    let Some(entry) = entry else {
        return Ok(reset(
            "the configuration it was built from is not recorded (it was built by an older source)"
                .into(),
            None,
        ));
    };
    let mut current = entry.current;
    if let Some((pending, w)) = entry.pending
        && last_watermark >= w.as_str()
    {
        // zero-cache only resumes from what it committed: the change's transaction is in.
        history
            .record(replica_version, shard, &pending)
            .await
            .map_err(|e| e.to_string())?;
        current = pending;
    }
    if current.hash == new.hash {
        record_committed(state, history, shard, replica_version).await?;
        return Ok(Plan::UpToDate);
    }
    if let Direction::Backwards(why) = history
        .direction(&new.hash, &current.hash)
        .await
        .map_err(|e| e.to_string())?
    {
        warn!(replica_version, reason = %why, "schema change refused");
        let mut s = LastSchemaChange::now(
            ChangeKind::Refused,
            shard,
            replica_version,
            Some(&current.hash),
            &new.hash,
        );
        s.reason = Some(why.clone());
        state.schema_changes.set(s);
        return Ok(Plan::Refused(why));
    }
    let old = match current.load() {
        Ok(old) => old,
        Err(e) => return Ok(reset(e.to_string(), Some(&current.hash))),
    };
    let steps = match diff(&old.config, new) {
        Ok(steps) => steps,
        Err(why) => return Ok(reset(why.to_string(), Some(&current.hash))),
    };
    if steps.is_empty() {
        // Nothing the replica holds changed (a client-side name, an export's metadata).
        record_committed(state, history, shard, replica_version).await?;
        return Ok(Plan::UpToDate);
    }
    let described: Vec<String> = steps.iter().map(Step::to_string).collect();
    info!(replica_version, from = %current.hash, to = %new.hash, steps = ?described, "schema change: applying it in place");
    let mut s = LastSchemaChange::now(
        ChangeKind::InPlace,
        shard,
        replica_version,
        Some(&current.hash),
        &new.hash,
    );
    s.steps = Some(described);
    s.state = Some(ChangeState::Applying);
    state.schema_changes.set(s);
    Ok(Plan::InPlace(Box::new(Prepared { old, steps })))
}

/// The replica now has the loaded configuration: in the history first, then in the registry
/// (so a crash in between still finds it in the history).
async fn record_committed(
    state: &ServerState,
    history: &ConfigHistory,
    shard: &Shard,
    replica_version: &str,
) -> Result<(), String> {
    history
        .record(
            replica_version,
            shard,
            &StoredConfig::of(&state.loaded.config),
        )
        .await
        .map_err(|e| e.to_string())?;
    state
        .registry
        .record(replica_version, state.config_hash(), shard)
        .await
        .map_err(|e| format!("replica registry: {e}"))
}

/// A known replica whose configuration is missing from the history (built by an older
/// source, or its record was lost with the initial sync's connection) gets it now: the registry
/// says it has the loaded one. Best effort.
async fn remember_config(
    state: &ServerState,
    history: &ConfigHistory,
    shard: &Shard,
    replica_version: &str,
) {
    let known = match history.get(replica_version, shard).await {
        Ok(e) => e.is_some_and(|e| e.current.hash == state.config_hash()),
        Err(e) => {
            warn!(error = %e, "cannot read the config history");
            return;
        }
    };
    if !known
        && let Err(e) = history
            .record(
                replica_version,
                shard,
                &StoredConfig::of(&state.loaded.config),
            )
            .await
    {
        warn!(error = %e, "cannot record the replica's configuration");
    }
}

/// The reset for an event over 16 MiB, naming its document when it can be found.
async fn oversized<D: Downstream>(
    state: &ServerState,
    streamer: &Streamer<'_, D>,
    collections: &[String],
) -> ResetReason {
    let document = locate_oversized(&state.db, streamer.last_commit(), collections)
        .await
        .unwrap_or_else(|| "an unknown document".into());
    ResetReason::OversizedEvent { document }
}

/// Deletes the registry entries no zero-cache used for the retention time (best effort: a
/// failure only leaves them for the next initial sync).
async fn prune_registry(state: &ServerState) {
    match state
        .registry
        .prune_unused(state.settings.registry_retention)
        .await
    {
        Ok(0) => {}
        Ok(n) => info!(entries = n, "pruned unused replica registry entries"),
        Err(e) => warn!(error = %e, "cannot prune the replica registry"),
    }
}

/// A stream that ran this long before breaking counts as working: the backoff starts over.
const HEALTHY_STREAM: Duration = Duration::from_secs(10);

/// How long a connection waits for MongoDB to come back before it is closed. Reopening in place
/// keeps zero-cache's connection through a restart or an election (seconds); but when only this
/// replica has lost MongoDB (a partition, a node's network) and another replica of the source
/// still reaches it, holding on would keep zero-cache stale for the whole outage, since a
/// Service never moves an open connection. Closed, zero-cache reconnects (from its last
/// watermark, so nothing is lost) and the Service sends it to a ready replica; with a single
/// replica it simply retries until MongoDB is back.
const HAND_OFF_AFTER: Duration = Duration::from_secs(30);

async fn close<S>(down: &mut WsDownstream<S>, code: u16, reason: &'static str)
where
    S: futures::Sink<Message> + Unpin,
{
    let _ = down
        .sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

struct Guard<F: FnMut()>(F);
impl<F: FnMut()> Drop for Guard<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}
fn scopeguard<F: FnMut()>(f: F) -> Guard<F> {
    Guard(f)
}
