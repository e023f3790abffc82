//! Prometheus metrics of the source server, and the "log once per column" bookkeeping for values
//! that do not fit their column (those are counted forever but logged only the first time, so a
//! bad field in a hot collection cannot flood the log).

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

const DATA_OPERATIONS: [&str; 4] = ["insert", "update", "replace", "delete"];

/// Seconds; fine below 50 ms, where a healthy stream lives.
const COMMIT_LAG_BUCKETS: [f64; 18] = [
    0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25,
    0.5, 1.0, 5.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    pub events: Family<Labels, Counter>,
    pub rows_sent: Counter,
    pub transactions: Counter,
    pub bytes_sent: Counter,
    pub acks: Counter,
    pub coerced_values: Family<Labels, Counter>,
    pub unkeyed_changes: Counter,
    pub connections: Gauge,
    pub lag_ms: Gauge,
    /// Per transaction with rows: MongoDB commit (`wallTime`) of its oldest change → sent.
    pub commit_lag: Histogram,
    pub snapshot_rows: Counter,
    pub resets: Family<Labels, Counter>,
    pub keepalives: Counter,
    /// Change streams reopened after MongoDB went away (restart, step-down, network).
    pub mongodb_reconnects: Counter,
    /// The `events` counters of the four data operations, looked up once: a family lookup
    /// hashes and allocates its label set, which showed in the per-event profile.
    data_events: [Counter; 4],
    warned_columns: Mutex<HashSet<(String, String)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("zerostack_source");
        let mut m = Metrics {
            events: Family::default(),
            rows_sent: Counter::default(),
            transactions: Counter::default(),
            bytes_sent: Counter::default(),
            acks: Counter::default(),
            coerced_values: Family::default(),
            unkeyed_changes: Counter::default(),
            connections: Gauge::default(),
            lag_ms: Gauge::default(),
            commit_lag: Histogram::new(COMMIT_LAG_BUCKETS),
            snapshot_rows: Counter::default(),
            resets: Family::default(),
            keepalives: Counter::default(),
            mongodb_reconnects: Counter::default(),
            data_events: Default::default(),
            warned_columns: Mutex::new(HashSet::new()),
            registry: Registry::default(),
        };
        for (i, op) in DATA_OPERATIONS.iter().enumerate() {
            m.data_events[i] = m
                .events
                .get_or_create(&vec![("operation".into(), op.to_string())])
                .clone();
        }
        registry.register(
            "change_events",
            "MongoDB change events read, by operation",
            m.events.clone(),
        );
        registry.register(
            "rows_sent",
            "Row changes sent to zero-cache",
            m.rows_sent.clone(),
        );
        registry.register(
            "transactions_sent",
            "Zero transactions committed downstream",
            m.transactions.clone(),
        );
        registry.register(
            "bytes_sent",
            "Bytes of protocol messages sent",
            m.bytes_sent.clone(),
        );
        registry.register(
            "acks",
            "Commit acknowledgements received from zero-cache",
            m.acks.clone(),
        );
        registry.register(
            "coerced_values",
            "Values that did not fit their column and were sent as null, by table and column",
            m.coerced_values.clone(),
        );
        registry.register(
            "unkeyed_changes",
            "Deletes or moves that could not be sent because the row key was not derivable",
            m.unkeyed_changes.clone(),
        );
        registry.register(
            "connections",
            "Open zero-cache connections",
            m.connections.clone(),
        );
        registry.register(
            "lag_milliseconds",
            "Time from the MongoDB commit to the moment its Zero transaction was sent",
            m.lag_ms.clone(),
        );
        registry.register(
            "commit_lag_seconds",
            "Per transaction: time from the MongoDB commit of its oldest change to the moment it was sent (MongoDB's wallTime has millisecond precision)",
            m.commit_lag.clone(),
        );
        registry.register(
            "snapshot_rows",
            "Rows sent by initial syncs",
            m.snapshot_rows.clone(),
        );
        registry.register(
            "resets",
            "reset-required messages sent, by reason",
            m.resets.clone(),
        );
        registry.register(
            "keepalives",
            "Empty transactions sent to advance an idle stream",
            m.keepalives.clone(),
        );
        registry.register(
            "mongodb_reconnects",
            "Change streams reopened at the last commit after MongoDB went away",
            m.mongodb_reconnects.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn event(&self, op: &str) {
        if let Some(i) = DATA_OPERATIONS.iter().position(|o| *o == op) {
            self.data_events[i].inc();
            return;
        }
        self.events
            .get_or_create(&vec![("operation".into(), op.into())])
            .inc();
    }

    pub fn reset(&self, reason: &str) {
        self.resets
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc();
    }

    /// Counts a coerced value; returns true the first time this column is seen, so the caller
    /// logs it once.
    pub fn coerced(&self, table: &str, column: &str) -> bool {
        self.coerced_values
            .get_or_create(&vec![
                ("table".into(), table.into()),
                ("column".into(), column.into()),
            ])
            .inc();
        let mut warned = self.warned_columns.lock().expect("metrics lock");
        warned.insert((table.to_string(), column.to_string()))
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
