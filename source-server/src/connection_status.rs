//! Live state of each zero-cache connection, for `/metadata/status`.
//!
//! Written by the connection tasks, read by the HTTP handlers; plain mutex-guarded values are
//! enough because they change once per transaction, not per row.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotProgress {
    pub collection: String,
    pub rows_done: u64,
    pub rows_estimated: u64,
    pub rows_per_second: f64,
    pub done: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub id: u64,
    pub app_id: String,
    pub shard_num: u32,
    /// "initial-sync" or "streaming".
    pub mode: String,
    pub connected_at_ms: u64,
    pub last_watermark_sent: Option<String>,
    pub last_watermark_acked: Option<String>,
    /// Commit time (epoch ms) of the last transaction sent.
    pub last_commit_time_ms: Option<u64>,
    /// Milliseconds from the MongoDB commit to sending it, for the last transaction.
    pub lag_ms: Option<u64>,
    pub transactions_sent: u64,
    pub snapshot: Option<SnapshotProgress>,
}

pub struct ConnectionStatus {
    view: Mutex<ConnectionView>,
}

impl ConnectionStatus {
    pub fn update(&self, f: impl FnOnce(&mut ConnectionView)) {
        f(&mut self.view.lock().expect("status lock"));
    }

    pub fn view(&self) -> ConnectionView {
        self.view.lock().expect("status lock").clone()
    }
}

#[derive(Default)]
pub struct Connections {
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<ConnectionStatus>>>,
}

/// Removes the connection from the table when its task ends, however it ends.
pub struct Registration<'a> {
    connections: &'a Connections,
    pub status: Arc<ConnectionStatus>,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.connections
            .open
            .lock()
            .expect("status lock")
            .remove(&self.id);
    }
}

impl Connections {
    pub fn register(&self, app_id: &str, shard_num: u32, mode: &str) -> Registration<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let status = Arc::new(ConnectionStatus {
            view: Mutex::new(ConnectionView {
                id,
                app_id: app_id.to_string(),
                shard_num,
                mode: mode.to_string(),
                connected_at_ms: now_ms(),
                ..Default::default()
            }),
        });
        self.open
            .lock()
            .expect("status lock")
            .insert(id, status.clone());
        Registration {
            connections: self,
            status,
            id,
        }
    }

    pub fn views(&self) -> Vec<ConnectionView> {
        self.open
            .lock()
            .expect("status lock")
            .values()
            .map(|s| s.view())
            .collect()
    }
}
