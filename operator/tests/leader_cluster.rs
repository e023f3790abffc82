//! Leader election against a real API server: two electors on one Lease, one of them reaching
//! the API server through a TCP proxy the test can pause (its requests and answers then hang,
//! as on a partitioned node). Both say "am I leader" every 10 ms; they must never both say yes,
//! and the other must take over once the stalled one has stepped down. Runs when a cluster is
//! available (see `zerostack_harness::cluster`); the Lease lives in a fresh namespace that is
//! deleted at the end.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use zerostack_harness::cluster::Cluster;
use zerostack_operator::leader::{Elector, KubeLeases, Leadership, LeaseConfig, acquire};

/// A TCP relay to `upstream` that holds every byte, both ways, while paused.
struct PausableProxy {
    addr: SocketAddr,
    paused: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl PausableProxy {
    async fn start(upstream: SocketAddr) -> PausableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (paused, _) = watch::channel(false);
        let pause = paused.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, pause.subscribe()));
                tokio::spawn(pipe(sr, cw, pause.subscribe()));
            }
        });
        PausableProxy { addr, paused, task }
    }
}

impl Drop for PausableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut paused: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if paused.wait_for(|p| !*p).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Short timings, so the test takes seconds; the same ratios as the defaults.
fn cfg(ns: &str, identity: &str) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(6),
        renew_deadline: Duration::from_secs(4),
        retry_period: Duration::from_millis(800),
        call_timeout: Duration::from_secs(2),
        ..LeaseConfig::new("leader-test", ns, identity)
    }
}

#[derive(Default)]
struct Samples {
    overlaps: u64,
    a_last_led: Option<Instant>,
    b_first_led: Option<Instant>,
}

async fn sample(
    a: &Leadership,
    b: &OnceLock<Leadership>,
    until: Instant,
    stop: impl Fn(&Samples) -> bool,
) -> Samples {
    let mut s = Samples::default();
    while Instant::now() < until && !stop(&s) {
        let now = Instant::now();
        let (la, lb) = (a.is_leader(), b.get().is_some_and(Leadership::is_leader));
        if la && lb {
            s.overlaps += 1;
        }
        if la {
            s.a_last_led = Some(now);
        }
        if lb && s.b_first_led.is_none() {
            s.b_first_led = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s
}

#[tokio::test]
async fn two_electors_on_a_real_lease_never_overlap_when_one_stalls() {
    let Some(cluster) = Cluster::get("two_electors_on_a_real_lease_never_overlap_when_one_stalls")
    else {
        return;
    };
    let kubeconfig = Kubeconfig::read_from(&cluster.kubeconfig).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig usable");
    let direct = Client::try_from(config.clone()).expect("client");

    let host = config.cluster_url.host().expect("API host").to_string();
    let port = config.cluster_url.port_u16().unwrap_or(443);
    let upstream = tokio::net::lookup_host((host.as_str(), port))
        .await
        .expect("API address")
        .next()
        .expect("an API address");
    let proxy = PausableProxy::start(upstream).await;
    let mut via_proxy = config.clone();
    via_proxy.cluster_url = format!("https://{}", proxy.addr).parse().unwrap();
    // The certificate names the API server, not the proxy.
    via_proxy.tls_server_name = Some(host.trim_matches(['[', ']']).to_string());
    let stalled_client = Client::try_from(via_proxy).expect("proxied client");

    let ns = format!(
        "zs-lease-{}",
        &zerostack_operator::reconcile::random_hex()[..8]
    );
    let namespaces: Api<Namespace> = Api::all(direct.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("namespace created");
    let result = tokio::spawn(run(direct.clone(), stalled_client, proxy, ns.clone())).await;
    let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run(direct: Client, stalled_client: Client, proxy: PausableProxy, ns: String) {
    let a = acquire(Elector::new(
        KubeLeases::new(stalled_client, &ns, "leader-test"),
        cfg(&ns, "a"),
    ))
    .await;
    assert!(a.is_leader());
    let b: Arc<OnceLock<Leadership>> = Arc::new(OnceLock::new());
    let b_task = tokio::spawn({
        let (b, direct, ns) = (b.clone(), direct.clone(), ns.clone());
        async move {
            let elector = Elector::new(KubeLeases::new(direct, &ns, "leader-test"), cfg(&ns, "b"));
            let _ = b.set(acquire(elector).await);
        }
    });

    let healthy = sample(&a, &b, Instant::now() + Duration::from_secs(10), |_| false).await;
    assert_eq!(healthy.overlaps, 0);
    assert!(healthy.b_first_led.is_none(), "B took a lease A renews");
    assert!(a.is_leader(), "A renews through the proxy");

    proxy.paused.send(true).unwrap();
    let stalled_at = Instant::now();
    let takeover = sample(&a, &b, stalled_at + Duration::from_secs(40), |s| {
        s.b_first_led
            .is_some_and(|t| t.elapsed() > Duration::from_secs(3))
    })
    .await;
    let c = cfg(&ns, "a");
    assert_eq!(takeover.overlaps, 0, "both led at once");
    let b_led = takeover.b_first_led.expect("B took over");
    let a_last = takeover.a_last_led.expect("A led at the stall");
    println!(
        "A led {:?} into the stall; B led {:?} after A's last lead, {:?} after the stall",
        a_last - stalled_at,
        b_led - a_last,
        b_led - stalled_at
    );
    assert!(a_last < b_led);
    assert!(a_last - stalled_at <= c.renew_deadline + Duration::from_millis(50));
    tokio::time::timeout(Duration::from_millis(100), a.lost())
        .await
        .expect("A's lost() fired");
    b_task.await.unwrap();
    let lease: Api<Lease> = Api::namespaced(direct, &ns);
    let holder = lease
        .get("leader-test")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder.as_deref(), Some("b"));

    // The proxy comes back; A's elector is gone (the process would have exited), B keeps leading.
    proxy.paused.send(false).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(b.get().unwrap().is_leader());
    drop(a);
}
