//! Leader election against an in-memory Lease API whose clients can be stalled, on tokio's
//! paused clock (deterministic: time only moves when every task waits).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::jiff::SignedDuration;
use kube::core::Status;

use super::*;

/// How a client's calls behave.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stall {
    /// Answered after a millisecond.
    No,
    /// Never reach the API server, never answer.
    BeforeApply,
    /// Reads answer; writes reach it (and are applied), but their answers never come back.
    AfterApply,
}

/// The API server's one Lease, with resourceVersion checks.
#[derive(Default)]
struct FakeApi {
    lease: Mutex<Option<Lease>>,
    version: AtomicU64,
}

struct FakeLeases {
    api: Arc<FakeApi>,
    stall: watch::Receiver<Stall>,
}

fn conflict() -> kube::Error {
    kube::Error::Api(
        Status::failure("the object has been modified", "Conflict")
            .with_code(409)
            .boxed(),
    )
}

impl FakeApi {
    fn client(self: &Arc<Self>) -> (watch::Sender<Stall>, FakeLeases) {
        let (tx, rx) = watch::channel(Stall::No);
        (
            tx,
            FakeLeases {
                api: self.clone(),
                stall: rx,
            },
        )
    }

    fn stored(&self, mut lease: Lease) -> Lease {
        let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        lease.metadata.resource_version = Some(v.to_string());
        *self.lease.lock().unwrap() = Some(lease.clone());
        lease
    }
}

impl FakeLeases {
    async fn serve<T>(
        &self,
        write: bool,
        op: impl FnOnce(&FakeApi) -> Result<T, kube::Error>,
    ) -> Result<T, kube::Error> {
        let mode = *self.stall.borrow();
        if mode == Stall::BeforeApply {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let result = op(&self.api);
        if write && mode == Stall::AfterApply {
            std::future::pending::<()>().await;
        }
        result
    }
}

impl LeaseStore for FakeLeases {
    async fn get(&self) -> Result<Option<Lease>, kube::Error> {
        self.serve(false, |api| Ok(api.lease.lock().unwrap().clone()))
            .await
    }
    async fn create(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        let lease = lease.clone();
        self.serve(true, move |api| {
            if api.lease.lock().unwrap().is_some() {
                return Err(conflict());
            }
            Ok(api.stored(lease))
        })
        .await
    }
    async fn replace(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        let lease = lease.clone();
        self.serve(true, move |api| {
            let current = api
                .lease
                .lock()
                .unwrap()
                .as_ref()
                .and_then(|l| l.metadata.resource_version.clone());
            if current != lease.metadata.resource_version {
                return Err(conflict());
            }
            Ok(api.stored(lease))
        })
        .await
    }
}

fn cfg(identity: &str) -> LeaseConfig {
    LeaseConfig::new("zerostack-operator", "ops", identity)
}

/// A wall clock an hour ahead of everyone else's: under the old algorithm (the holder's
/// renewTime compared with the local clock) this replica took every live lease at once.
fn an_hour_ahead() -> Timestamp {
    Timestamp::now() + SignedDuration::from_hours(1)
}

fn held_by(api: &FakeApi, holder: &str) {
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("zerostack-operator".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            // Written by a clock a day behind: never compared, so it must not matter.
            renew_time: Some(MicroTime(Timestamp::now() - SignedDuration::from_hours(24))),
            ..Default::default()
        }),
    };
    api.stored(lease);
}

#[tokio::test(start_paused = true)]
async fn another_holders_lease_expires_only_when_unchanged_for_its_duration_as_seen_here() {
    let api = Arc::new(FakeApi::default());
    held_by(&api, "other");
    let (_stall, store) = api.client();
    let mut elector = Elector::new(store, cfg("me"));
    let t0 = Instant::now();
    assert!(
        !elector.try_acquire_or_renew(None).await.unwrap(),
        "a renewTime a day old is not an expiry"
    );
    tokio::time::sleep_until(t0 + Duration::from_secs(10)).await;
    assert!(!elector.try_acquire_or_renew(None).await.unwrap());
    // The holder renews: the count starts again from this observation.
    let mut lease = api.lease.lock().unwrap().clone().unwrap();
    lease.spec.as_mut().unwrap().renew_time = Some(MicroTime(Timestamp::now()));
    api.stored(lease);
    let renewed_seen = Instant::now();
    assert!(!elector.try_acquire_or_renew(None).await.unwrap());
    tokio::time::sleep_until(t0 + Duration::from_secs(16)).await;
    assert!(
        !elector.try_acquire_or_renew(None).await.unwrap(),
        "16 s after the first look, but only 6 s after the renewal was seen"
    );
    tokio::time::sleep_until(renewed_seen + Duration::from_secs(15) + Duration::from_millis(10))
        .await;
    assert!(
        elector.try_acquire_or_renew(None).await.unwrap(),
        "unchanged for 15 s: expired"
    );
    let spec = api.lease.lock().unwrap().clone().unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("me"));
    assert_eq!(spec.lease_transitions, Some(1));
}

#[tokio::test(start_paused = true)]
async fn every_lease_call_times_out() {
    let api = Arc::new(FakeApi::default());
    let (stall, store) = api.client();
    stall.send(Stall::BeforeApply).unwrap();
    let mut elector = Elector::new(store, cfg("me"));
    let t0 = Instant::now();
    let err = elector.try_acquire_or_renew(None).await.unwrap_err();
    assert!(matches!(err, LeaseError::Timeout { .. }), "{err}");
    assert_eq!(t0.elapsed(), cfg("me").call_timeout);
    assert!(err.to_string().contains("ops/zerostack-operator"), "{err}");
    // While leading, no call runs past the renew deadline, even with a longer call timeout.
    let deadline = Instant::now() + Duration::from_secs(1);
    let t1 = Instant::now();
    elector
        .try_acquire_or_renew(Some(deadline))
        .await
        .unwrap_err();
    assert_eq!(t1.elapsed(), Duration::from_secs(1));
}

/// Samples both replicas' "am I leader" every 5 ms until `until` or `stop()` says so.
struct Sampler {
    overlaps: u64,
    a_last_led: Option<Instant>,
    b_first_led: Option<Instant>,
}

async fn sample(
    a: &Leadership,
    b: &OnceLock<Leadership>,
    until: Instant,
    stop: impl Fn(&Sampler) -> bool,
) -> Sampler {
    let mut s = Sampler {
        overlaps: 0,
        a_last_led: None,
        b_first_led: None,
    };
    while Instant::now() < until && !stop(&s) {
        let now = Instant::now();
        let la = a.is_leader();
        let lb = b.get().is_some_and(Leadership::is_leader);
        if la && lb {
            s.overlaps += 1;
        }
        if la {
            s.a_last_led = Some(now);
        }
        if lb && s.b_first_led.is_none() {
            s.b_first_led = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s
}

/// Two replicas, B with a wall clock an hour ahead. A leads; B never takes a lease A renews.
/// Then A's API calls stall (requests lost, or writes applied and answers lost): A stops
/// leading at its renew deadline, strictly before B takes over, and the two never overlap in
/// any 5 ms sample. A restarted A then stays a follower while B renews.
#[tokio::test(start_paused = true)]
async fn a_stalled_leader_steps_down_before_the_other_takes_over_and_they_never_overlap() {
    for mode in [Stall::BeforeApply, Stall::AfterApply] {
        let api = Arc::new(FakeApi::default());
        let (a_stall, a_store) = api.client();
        let (_b_stall, b_store) = api.client();
        let a = acquire(Elector::new(a_store, cfg("a"))).await;
        assert!(a.is_leader());
        let b: Arc<OnceLock<Leadership>> = Arc::new(OnceLock::new());
        let b_elector = Elector::new(
            b_store,
            LeaseConfig {
                wall_clock: an_hour_ahead,
                ..cfg("b")
            },
        );
        let b_task = tokio::spawn({
            let b = b.clone();
            async move {
                let _ = b.set(acquire(b_elector).await);
            }
        });

        let healthy = sample(&a, &b, Instant::now() + Duration::from_secs(60), |_| false).await;
        assert_eq!(healthy.overlaps, 0, "{mode:?}");
        assert!(
            healthy.b_first_led.is_none(),
            "{mode:?}: B took a live lease"
        );
        assert!(a.is_leader(), "{mode:?}: A renews for a minute");

        a_stall.send(mode).unwrap();
        let stalled_at = Instant::now();
        let takeover = sample(&a, &b, stalled_at + Duration::from_secs(60), |s| {
            s.b_first_led
                .is_some_and(|t| t.elapsed() > Duration::from_secs(5))
        })
        .await;
        assert_eq!(takeover.overlaps, 0, "{mode:?}: both led at once");
        let b_led = takeover
            .b_first_led
            .unwrap_or_else(|| panic!("{mode:?}: B never took over"));
        let a_last = takeover.a_last_led.expect("A led right after the stall");
        println!(
            "{mode:?}: A led {:?} into the stall; B led {:?} after A's last lead, {:?} after the stall",
            a_last - stalled_at,
            b_led - a_last,
            b_led - stalled_at
        );
        assert!(a_last < b_led, "{mode:?}");
        let c = cfg("a");
        assert!(
            a_last - stalled_at <= c.renew_deadline,
            "{mode:?}: A led {:?} into the stall",
            a_last - stalled_at
        );
        assert!(
            b_led - a_last >= c.lease_duration - c.renew_deadline - c.retry_period,
            "{mode:?}: only {:?} between A's last lead and B's first",
            b_led - a_last
        );
        // Writes that land unanswered keep the lease fresh until A gives up at its deadline.
        let bound = match mode {
            Stall::AfterApply => c.renew_deadline + c.lease_duration + c.retry_period * 2,
            _ => c.lease_duration + c.retry_period * 2,
        };
        assert!(
            b_led - stalled_at <= bound,
            "{mode:?}: B took {:?}",
            b_led - stalled_at
        );
        tokio::time::timeout(Duration::from_millis(1), a.lost())
            .await
            .unwrap_or_else(|_| panic!("{mode:?}: A's lost() has not fired"));
        b_task.await.unwrap();

        // A comes back (a restarted process, its API reachable again): it stays a follower.
        drop((a, a_stall));
        let (_s, a2_store) = api.client();
        let a2: Arc<OnceLock<Leadership>> = Arc::new(OnceLock::new());
        let a2_task = tokio::spawn({
            let a2 = a2.clone();
            async move {
                let _ = a2.set(acquire(Elector::new(a2_store, cfg("a"))).await);
            }
        });
        let b_ref = b.get().unwrap();
        let after = sample(b_ref, &a2, Instant::now() + Duration::from_secs(60), |_| {
            false
        })
        .await;
        assert_eq!(after.overlaps, 0, "{mode:?}");
        assert!(
            after.b_first_led.is_none(),
            "{mode:?}: A took B's live lease"
        );
        assert!(b_ref.is_leader());
        a2_task.abort();
    }
}

/// A leader that shuts down gives the lease up, and the follower takes it on its next look
/// instead of waiting out the lease duration.
#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_at_once() {
    let api = Arc::new(FakeApi::default());
    let (_a, a_store) = api.client();
    let (_b, b_store) = api.client();
    let a = acquire(Elector::new(a_store, cfg("a"))).await;
    let b = tokio::spawn(acquire(Elector::new(b_store, cfg("b"))));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!b.is_finished());
    a.release().await;
    let released = Instant::now();
    let b = tokio::time::timeout(Duration::from_secs(60), b)
        .await
        .unwrap()
        .unwrap();
    assert!(b.is_leader());
    assert!(
        released.elapsed() <= cfg("b").retry_period + Duration::from_millis(50),
        "took {:?}",
        released.elapsed()
    );
}
