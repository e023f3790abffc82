//! zero-cache's custom-path ceiling: a change source with no database behind it. Its rows are
//! pre-serialised in memory, in exactly the shape source-server sends for the benchmark's
//! documents (checked against a capture of the real source in the same run, see
//! [`check_frames`]), and its send loop does nothing but write prebuilt frames. Whatever rate
//! zero-cache reaches from it is the most any custom source can get from zero-cache on this
//! machine, which is the bar for source-server's initial sync and bursts.
//!
//! It speaks the protocol as zero-cache 1.9.0 expects it: a connection without `lastWatermark`
//! gets the snapshot as one `begin … commit` transaction; a resume connection is handed to the
//! bench ([`StreamConn`]), which sends bursts of N-row transactions on it while a task drains
//! zero-cache's acks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::probes::lexi_to_u64;
use super::workload::{Message as Row, message_sized};

/// A u64 as a LexiVersion: one base-36 digit giving the number of digits minus one, then the
/// number in base 36 (what zero-cache's `versionToLexi` writes).
pub fn u64_to_lexi(v: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut digits = Vec::new();
    let mut n = v;
    loop {
        digits.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.push(DIGITS[digits.len() - 1]);
    digits.reverse();
    String::from_utf8(digits).expect("base-36 digits are ASCII")
}

fn begin(watermark: &str) -> String {
    format!(r#"["begin",{{"tag":"begin"}},{{"commitWatermark":"{watermark}"}}]"#)
}

fn commit(watermark: &str, commit_time_ms: u64) -> String {
    format!(
        r#"["commit",{{"tag":"commit","commitTimeMs":{commit_time_ms}}},{{"watermark":"{watermark}"}}]"#
    )
}

/// The `relation` of the bench table, as source-server renders it.
pub const RELATION: &str = r#"{"schema":"public","name":"messages","rowKey":{"columns":["_id"]}}"#;

/// One insert frame of message `i` (body of `text_len` bytes), in source-server's column
/// order (the schema's) and value encoding (a date as integer epoch ms, a missing number as
/// null). The text never needs JSON escaping (see `workload::message_sized`).
pub fn insert_frame(i: u64, text_len: usize, created_at_ms: i64) -> String {
    let Row {
        id,
        room,
        author,
        text,
    } = message_sized(i, text_len);
    format!(
        r#"["data",{{"tag":"insert","relation":{RELATION},"new":{{"_id":"{id}","room_id":"{room}","author":"{author}","text":"{text}","sent_ms":null,"created_at":{created_at_ms}}}}}]"#
    )
}

/// Checks the ceiling's frames against what source-server sent for the same documents: each
/// captured insert must equal [`insert_frame`] for its message number and `created_at`, byte
/// for byte. Returns how many were compared.
pub fn check_frames(captured_rows: &[String], text_len: usize) -> anyhow::Result<usize> {
    for frame in captured_rows {
        let v: serde_json::Value = serde_json::from_str(frame)
            .with_context(|| format!("source-server sent invalid JSON: {frame}"))?;
        let new = &v[1]["new"];
        let id = new["_id"].as_str().context("captured insert without _id")?;
        let i: u64 = id
            .strip_prefix('m')
            .and_then(|d| d.parse().ok())
            .with_context(|| format!("captured _id {id:?} is not a bench message id"))?;
        let created = new["created_at"]
            .as_i64()
            .with_context(|| format!("captured created_at is not an integer: {frame}"))?;
        let ours = insert_frame(i, text_len, created);
        if &ours != frame {
            bail!(
                "the ceiling's frame differs from source-server's:\n  source:  {frame}\n  ceiling: {ours}"
            );
        }
    }
    Ok(captured_rows.len())
}

/// What one send (a snapshot or a burst) cost the ceiling.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SendStats {
    pub frames: u64,
    pub bytes: u64,
    /// From the first frame to the last one flushed.
    pub secs: f64,
    /// Epoch ms when the connection was accepted and when the last frame was flushed: with
    /// zero-cache's start and ready times they split its initial sync into start-up, the
    /// stream, and the work after the commit.
    pub connected_ms: f64,
    pub done_ms: f64,
    /// Time spent inside `feed`/`flush` (writing, and waiting while zero-cache's socket was
    /// full): the rest of `secs` is the send loop's own work.
    pub in_socket_secs: f64,
}

type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;

/// Writes `frames` as text messages and flushes once at the end (`feed` itself writes whenever
/// the socket buffer fills, and waits while zero-cache's side is full: that wait is the
/// back-pressure).
async fn send_frames(
    sink: &mut Sink,
    frames: impl IntoIterator<Item = Utf8Bytes>,
    stats: &mut SendStats,
) -> anyhow::Result<()> {
    let t = Instant::now();
    for f in frames {
        stats.frames += 1;
        stats.bytes += f.len() as u64;
        sink.feed(Message::Text(f))
            .await
            .context("zero-cache closed the ceiling's stream")?;
    }
    sink.flush()
        .await
        .context("zero-cache closed the ceiling's stream")?;
    stats.in_socket_secs += t.elapsed().as_secs_f64();
    Ok(())
}

/// The snapshot every initial-sync connection gets: the tables (taken verbatim from
/// source-server's own snapshot, so zero-cache creates the same ones) and the rows.
pub struct Snapshot {
    pub ddl: Vec<Utf8Bytes>,
    pub rows: Vec<Utf8Bytes>,
}

/// A resume connection zero-cache opened after its initial sync, ready for bursts.
pub struct StreamConn {
    sink: Sink,
    pub acks: Arc<AtomicU64>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for StreamConn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

pub struct CeilingSource {
    pub port: u16,
    shared: Arc<Shared>,
    streams: mpsc::UnboundedReceiver<StreamConn>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for CeilingSource {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

struct Shared {
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    /// The next watermark handed out; starts well above any earlier one.
    next_version: AtomicU64,
    /// Stats of each snapshot sent, in order.
    sent: Mutex<Vec<SendStats>>,
}

impl CeilingSource {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the ceiling source")?;
        let port = listener.local_addr()?.port();
        // Like a MongoDB cluster time: (seconds << 32) | increment.
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let shared = Arc::new(Shared {
            snapshot: Mutex::new(None),
            next_version: AtomicU64::new(now_secs << 32),
            sent: Mutex::new(Vec::new()),
        });
        let (tx, streams) = mpsc::unbounded_channel();
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (s, tx) = (s.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve(tcp, s, tx).await {
                        eprintln!("[bench] ceiling source: {e:#}");
                    }
                });
            }
        });
        Ok(Self {
            port,
            shared,
            streams,
            accept,
        })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/changes/v0/stream", self.port)
    }

    pub fn set_snapshot(&self, snapshot: Arc<Snapshot>) {
        *self.shared.snapshot.lock().expect("snapshot lock") = Some(snapshot);
    }

    /// Stats of the last snapshot sent.
    pub fn last_snapshot(&self) -> Option<SendStats> {
        self.shared.sent.lock().expect("stats lock").last().copied()
    }

    /// The next resume connection zero-cache opens.
    pub async fn next_stream(&mut self, timeout: Duration) -> anyhow::Result<StreamConn> {
        tokio::time::timeout(timeout, self.streams.recv())
            .await
            .context("zero-cache did not open a resume connection to the ceiling")?
            .context("the ceiling source stopped")
    }

    /// Sends messages `from..to` as transactions of `txn_rows` rows, as fast as zero-cache's
    /// socket takes them (one flush per transaction, as source-server flushes per batch).
    pub async fn burst(
        &self,
        conn: &mut StreamConn,
        from: u64,
        to: u64,
        txn_rows: u64,
        text_len: usize,
    ) -> anyhow::Result<SendStats> {
        let created = super::workload::now_ms() as i64;
        let frames: Vec<Vec<Utf8Bytes>> = (from..to)
            .step_by(txn_rows.max(1) as usize)
            .map(|start| {
                let w = u64_to_lexi(self.shared.next_version.fetch_add(1, Ordering::Relaxed));
                let end = (start + txn_rows).min(to);
                let mut txn = Vec::with_capacity((end - start) as usize + 2);
                txn.push(begin(&w).into());
                txn.extend((start..end).map(|i| insert_frame(i, text_len, created).into()));
                txn.push(commit(&w, created as u64).into());
                txn
            })
            .collect();
        let t0 = Instant::now();
        let mut stats = SendStats::default();
        for txn in frames {
            send_frames(&mut conn.sink, txn, &mut stats).await?;
        }
        stats.secs = t0.elapsed().as_secs_f64();
        Ok(stats)
    }
}

async fn serve(
    tcp: TcpStream,
    shared: Arc<Shared>,
    streams: mpsc::UnboundedSender<StreamConn>,
) -> anyhow::Result<()> {
    let connected_ms = super::workload::now_ms();
    tcp.set_nodelay(true)?;
    let mut query = String::new();
    // The callback's error type is tungstenite's (an HTTP response); it never errs here.
    #[allow(clippy::result_large_err)]
    let ws = tokio_tungstenite::accept_hdr_async(
        tcp,
        |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
            query = req.uri().query().unwrap_or_default().to_string();
            Ok(resp)
        },
    )
    .await
    .context("WebSocket handshake")?;
    let last_watermark = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("lastWatermark="))
        .map(str::to_string);
    let (mut sink, mut stream) = ws.split();
    let acks = Arc::new(AtomicU64::new(0));
    let counted = acks.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(&msg, Message::Text(t) if t.starts_with("[\"status\"")) {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    match last_watermark {
        Some(w) => {
            // Keep the watermarks above what zero-cache has already stored.
            let resumed = lexi_to_u64(&w)?;
            shared
                .next_version
                .fetch_max(resumed + 1, Ordering::Relaxed);
            let _ = streams.send(StreamConn { sink, acks, reader });
        }
        None => {
            let snapshot = shared
                .snapshot
                .lock()
                .expect("snapshot lock")
                .clone()
                .context(
                    "an initial-sync connection reached the ceiling before its snapshot was set",
                )?;
            let version = shared.next_version.fetch_add(1, Ordering::Relaxed);
            let w = u64_to_lexi(version);
            let t0 = Instant::now();
            let mut stats = SendStats {
                connected_ms,
                ..Default::default()
            };
            let frames = std::iter::once(Utf8Bytes::from(begin(&w)))
                .chain(snapshot.ddl.iter().cloned())
                .chain(snapshot.rows.iter().cloned())
                .chain(std::iter::once(Utf8Bytes::from(commit(
                    &w,
                    super::workload::now_ms() as u64,
                ))));
            send_frames(&mut sink, frames, &mut stats).await?;
            stats.secs = t0.elapsed().as_secs_f64();
            stats.done_ms = super::workload::now_ms();
            shared.sent.lock().expect("stats lock").push(stats);
            // zero-cache closes the initial-sync socket after the commit.
            let _ = tokio::time::timeout(Duration::from_secs(600), reader).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexi_versions_round_trip_and_sort() {
        for v in [0u64, 35, 36, 1000, 1 << 40, u64::MAX] {
            assert_eq!(lexi_to_u64(&u64_to_lexi(v)).unwrap(), v, "{v}");
        }
        assert_eq!(u64_to_lexi(1000), "1rs");
        assert!(u64_to_lexi(35) < u64_to_lexi(36));
        assert!(u64_to_lexi((1 << 40) - 1) < u64_to_lexi(1 << 40));
    }

    #[test]
    fn frames_are_valid_json_of_the_protocols_shape() {
        let f = insert_frame(7, 90, 1_795_566_166_899);
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v[0], "data");
        assert_eq!(v[1]["tag"], "insert");
        assert_eq!(v[1]["relation"]["rowKey"]["columns"][0], "_id");
        assert_eq!(v[1]["new"]["_id"], "m000000007");
        assert!(v[1]["new"]["sent_ms"].is_null());
        assert_eq!(check_frames(std::slice::from_ref(&f), 90).unwrap(), 1);
        let other = f.replace("room-7", "room-8");
        assert!(check_frames(&[other], 90).is_err());
        let b: serde_json::Value = serde_json::from_str(&begin("1rs")).unwrap();
        let c: serde_json::Value = serde_json::from_str(&commit("1rs", 5)).unwrap();
        assert_eq!(b[2]["commitWatermark"], c[2]["watermark"]);
    }
}
