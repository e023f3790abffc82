//! Lease-based leader election, so two operator replicas (or a rolling update) never reconcile
//! the same objects at once. kube-rs does not ship one; this is client-go's algorithm on a
//! `coordination.k8s.io/v1` Lease with optimistic concurrency (resourceVersion):
//!
//! - **Another holder's lease expires by our clock, never by theirs.** The holder's `renewTime`
//!   is a wall-clock time written by another machine; comparing it with ours would let clock
//!   skew make two leaders. Instead we remember when *we* last saw the lease record change
//!   (holder, renewTime or resourceVersion), on the local monotonic clock, and take the lease
//!   only once it has not changed for its `leaseDurationSeconds` as measured here.
//! - **Every lease call has a timeout** (`call_timeout`, and never past the renew deadline while
//!   we lead), so a stalled API server cannot hold the elector in a call forever.
//! - **The leader steps down strictly before anyone else can take over.** Leadership is valid
//!   until the start of the last successful renewal plus `renew_deadline`; a renewal that is
//!   written later than it started only makes the others wait longer. `renew_deadline` is
//!   shorter than `lease_duration`, and a follower counts the lease duration from when it saw the
//!   renewal, which is after the renewal started. [`Leadership::is_leader`] checks the deadline
//!   itself, so it turns false on time even when the renewing task is stuck.
//!
//! The API is behind [`LeaseStore`] so the algorithm can be tested with a stalling store and
//! tokio's paused clock.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

/// Errors of one lease call. Messages name the Lease and never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The API answered with an error.
    #[error("lease {lease}: {source}")]
    Api {
        /// `namespace/name` of the Lease.
        lease: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The call did not answer within its timeout.
    #[error("lease {lease}: no answer within {timeout:?}")]
    Timeout {
        /// `namespace/name` of the Lease.
        lease: String,
        /// The timeout that passed.
        timeout: Duration,
    },
}

/// Where the Lease lives: the API server in production, a fake in tests.
pub trait LeaseStore: Send + Sync + 'static {
    /// The Lease, if it exists.
    fn get(&self) -> impl Future<Output = Result<Option<Lease>, kube::Error>> + Send;
    /// Creates the Lease; a 409 when it exists already.
    fn create(&self, lease: &Lease) -> impl Future<Output = Result<Lease, kube::Error>> + Send;
    /// Replaces the Lease; a 409 when its resourceVersion is no longer current.
    fn replace(&self, lease: &Lease) -> impl Future<Output = Result<Lease, kube::Error>> + Send;
}

/// The Lease `name` in `namespace` of the API server.
pub struct KubeLeases {
    api: Api<Lease>,
    name: String,
}

impl KubeLeases {
    /// The Lease `namespace/name`.
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
        }
    }
}

impl LeaseStore for KubeLeases {
    async fn get(&self) -> Result<Option<Lease>, kube::Error> {
        self.api.get_opt(&self.name).await
    }
    async fn create(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        self.api.create(&PostParams::default(), lease).await
    }
    async fn replace(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        self.api
            .replace(&self.name, &PostParams::default(), lease)
            .await
    }
}

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long others wait, after they last saw the lease change, before taking it.
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal. Shorter than
    /// `lease_duration`; the difference is the margin for in-flight work and clock rates.
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
    /// Timeout of one lease API call.
    pub call_timeout: Duration,
    /// The wall clock written into `acquireTime`/`renewTime` (for humans and other tools;
    /// never compared). Replaceable so tests can prove that skew does not matter.
    pub wall_clock: fn() -> Timestamp,
}

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry; 5 s per call.
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
            wall_clock: Timestamp::now,
        }
    }

    fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What identifies one version of the lease record: any change means its holder is alive.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    resource_version: Option<String>,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        Record {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            renew_time: spec.and_then(|s| s.renew_time.clone()),
            resource_version: lease.metadata.resource_version.clone(),
        }
    }
}

/// The elector: tries to take or renew the lease, remembering what it saw and when.
pub struct Elector<S> {
    store: S,
    cfg: LeaseConfig,
    /// The last record seen and the local instant it was first seen.
    observed: Option<(Record, Instant)>,
}

impl<S: LeaseStore> Elector<S> {
    /// An elector that has seen nothing yet.
    pub fn new(store: S, cfg: LeaseConfig) -> Self {
        Self {
            store,
            cfg,
            observed: None,
        }
    }

    async fn call<T>(
        &self,
        timeout: Duration,
        f: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, LeaseError> {
        match tokio::time::timeout(timeout, f).await {
            Ok(r) => r.map_err(|source| LeaseError::Api {
                lease: self.cfg.lease(),
                source,
            }),
            Err(_) => Err(LeaseError::Timeout {
                lease: self.cfg.lease(),
                timeout,
            }),
        }
    }

    fn spec(&self, prev: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime((self.cfg.wall_clock)());
        let ours = prev.and_then(|s| s.holder_identity.as_deref()) == Some(&self.cfg.identity);
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(self.cfg.lease_duration.as_secs().max(1) as i32),
            acquire_time: if ours {
                prev.and_then(|s| s.acquire_time.clone())
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(
                prev.and_then(|s| s.lease_transitions).unwrap_or(0) + i32::from(!ours),
            ),
            ..Default::default()
        }
    }

    /// One attempt to take or renew the lease, no call running past `deadline` (when given).
    /// `Ok(true)`: we hold it, and have held it since at least the instant this attempt began.
    pub async fn try_acquire_or_renew(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<bool, LeaseError> {
        let started = Instant::now();
        let timeout = |now: Instant| match deadline {
            Some(d) => self.cfg.call_timeout.min(d.saturating_duration_since(now)),
            None => self.cfg.call_timeout,
        };
        let current = self.call(timeout(started), self.store.get()).await?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(None)),
            };
            let t = timeout(Instant::now());
            return match self.call(t, self.store.create(&lease)).await {
                Ok(created) => {
                    self.observed = Some((Record::of(&created), started));
                    Ok(true)
                }
                Err(LeaseError::Api {
                    source: kube::Error::Api(s),
                    ..
                }) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        // When we first saw this version of the record: only a change restarts the count.
        let seen = Instant::now();
        let record = Record::of(&lease);
        let first_seen = match &self.observed {
            Some((r, at)) if *r == record => *at,
            _ => {
                self.observed = Some((record.clone(), seen));
                seen
            }
        };
        let ours = record.holder.as_deref() == Some(self.cfg.identity.as_str());
        if let Some(holder) = &record.holder
            && !ours
        {
            let secs = lease
                .spec
                .as_ref()
                .and_then(|s| s.lease_duration_seconds)
                .filter(|s| *s > 0)
                .map_or(self.cfg.lease_duration, |s| Duration::from_secs(s as u64));
            if first_seen + secs > seen {
                tracing::debug!(holder = %holder, "leader election: the lease is held");
                return Ok(false);
            }
            info!(holder = %holder, "leader election: the lease expired (unchanged for its duration as seen here)");
        }
        lease.spec = Some(self.spec(lease.spec.as_ref()));
        // resourceVersion is kept, so a concurrent writer makes this fail with 409.
        let t = timeout(Instant::now());
        match self.call(t, self.store.replace(&lease)).await {
            Ok(written) => {
                self.observed = Some((Record::of(&written), started));
                Ok(true)
            }
            Err(LeaseError::Api {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (best effort, one bounded call), so a successor need not wait for it
    /// to expire. Call only after reconciling has stopped.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self
            .call(self.cfg.call_timeout, self.store.get())
            .await
            .inspect_err(
                |e| warn!(error = %e, "leader election: could not read the lease to release it"),
            )
        else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime((self.cfg.wall_clock)()));
        match self
            .call(self.cfg.call_timeout, self.store.replace(&lease))
            .await
        {
            Ok(_) => info!("leader election: released the lease"),
            Err(e) => warn!(error = %e, "leader election: could not release the lease"),
        }
    }
}

/// The state shared between the renewing task and the rest of the process.
#[derive(Debug)]
struct Held {
    /// Leadership is valid until then, unless renewed.
    valid_until: Instant,
    /// Set once leadership is lost; never cleared.
    lost: bool,
}

/// This replica's leadership, from acquisition until it is lost or released.
pub struct Leadership {
    held: Arc<Mutex<Held>>,
    lost: watch::Receiver<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Leadership {
    /// Whether we lead right now: not lost, and the renew deadline not passed (checked here,
    /// so it turns false on time even if the renewing task is stuck).
    pub fn is_leader(&self) -> bool {
        let held = self.held.lock().expect("leadership lock");
        !held.lost && Instant::now() < held.valid_until
    }

    /// Resolves when leadership is lost (the renew deadline passed without a renewal, or
    /// someone else holds the lease). Reconciling must stop then.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.lost.clone();
        async move {
            let _ = rx.wait_for(|lost| *lost).await;
        }
    }

    /// Stops renewing and releases the lease; call after reconciling has stopped.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Blocks until this replica holds the lease, then renews it in the background. The returned
/// [`Leadership`] says whether we still lead and resolves [`Leadership::lost`] when we don't.
pub async fn acquire<S: LeaseStore>(mut elector: Elector<S>) -> Leadership {
    let retry = elector.cfg.retry_period;
    let valid_until = loop {
        let started = Instant::now();
        match elector.try_acquire_or_renew(None).await {
            Ok(true) => break started + elector.cfg.renew_deadline,
            Ok(false) => {}
            Err(e) => warn!(error = %e, "leader election: could not read or write the lease"),
        }
        tokio::time::sleep_until(started + retry).await;
    };
    info!(lease = %elector.cfg.lease(), identity = %elector.cfg.identity, "became leader");
    let held = Arc::new(Mutex::new(Held {
        valid_until,
        lost: false,
    }));
    let (lost_tx, lost_rx) = watch::channel(false);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let held = held.clone();
        async move {
            let lose = |why: &str| {
                warn!("leader election: {why}; no longer leading");
                held.lock().expect("leadership lock").lost = true;
                let _ = lost_tx.send(true);
            };
            let mut valid_until = valid_until;
            loop {
                let next = Instant::now() + retry;
                tokio::select! {
                    _ = &mut stop_rx => {
                        held.lock().expect("leadership lock").lost = true;
                        let _ = lost_tx.send(true);
                        elector.release().await;
                        return;
                    }
                    _ = tokio::time::sleep_until(next.min(valid_until)) => {}
                }
                let started = Instant::now();
                if started >= valid_until {
                    return lose("could not renew the lease within the renew deadline");
                }
                match elector.try_acquire_or_renew(Some(valid_until)).await {
                    Ok(true) => {
                        valid_until = started + elector.cfg.renew_deadline;
                        held.lock().expect("leadership lock").valid_until = valid_until;
                    }
                    Ok(false) => return lose("another replica holds the lease"),
                    Err(e) => warn!(error = %e, "leader election: renewal failed"),
                }
            }
        }
    });
    Leadership {
        held,
        lost: lost_rx,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;
