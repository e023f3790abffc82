//! Prometheus metrics of the reconciler, served on `/metrics` in OpenMetrics text.
//!
//! Three questions an operator's dashboard must answer: is it reconciling, how long does it
//! take, and what fails (by error class).

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label set of the failures counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Error class (`Error::metric_label`).
    pub error: String,
}

/// The operator's metrics and their registry.
pub struct Metrics {
    registry: Mutex<Registry>,
    reconciles: Counter,
    failures: Family<ErrorLabels, Counter>,
    duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("zerostack_operator");
        let reconciles = Counter::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0]);
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by error class",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            duration.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            reconciles,
            failures,
            duration,
        }
    }
}

impl Metrics {
    /// Counts a reconcile.
    pub fn reconcile_started(&self) {
        self.reconciles.inc();
    }
    /// Records a reconcile's duration.
    pub fn reconcile_finished(&self, took: Duration) {
        self.duration.observe(took.as_secs_f64());
    }
    /// Counts a failure.
    pub fn failure(&self, error: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                error: error.into(),
            })
            .inc();
    }
    /// Number of failures of one class so far.
    pub fn failures_of(&self, error: &str) -> u64 {
        self.failures
            .get_or_create(&ErrorLabels {
                error: error.into(),
            })
            .get()
    }
    /// Number of reconciles so far.
    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }
    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock().expect("registry lock");
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encoding to a String");
        out
    }
}
