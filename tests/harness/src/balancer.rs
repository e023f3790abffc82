//! A loopback TCP balancer: what a Kubernetes Service (kube-proxy) does for a test with several
//! replicas of one server behind one address.
//!
//! It listens on a free 127.0.0.1 port and hands each new connection to a backend, taking them
//! in turn (round-robin) and skipping a backend that refuses or does not answer within the
//! connect timeout, as a Service skips an endpoint that is gone. Once paired, bytes are relayed
//! unchanged both ways; when a backend dies its connections end too (an end of stream is passed
//! on as one, an error as a reset), so the client sees what it would see through a Service and
//! has to reconnect, which lands on a live backend. Connections are bounded, the balancer is
//! stopped by [`Balancer::stop`] (or on drop), and it counts per backend how many connections
//! it made and how many are open, so a test can tell where its client is and how often it moved.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How the balancer behaves; [`Default`] suits a test.
#[derive(Debug, Clone)]
pub struct BalancerOptions {
    /// Connections relayed at once; more are closed at once (a bounded test never needs them).
    pub max_connections: usize,
    /// How long a backend may take to accept before the next one is tried.
    pub connect_timeout: Duration,
}

impl Default for BalancerOptions {
    fn default() -> Self {
        BalancerOptions {
            max_connections: 256,
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// Per-backend counts.
#[derive(Debug, Default)]
struct BackendStats {
    /// Connections relayed to it, ever.
    connected: AtomicU64,
    /// Connection attempts it refused or did not answer.
    failed: AtomicU64,
    /// Connections to it open now.
    open: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    backends: Vec<SocketAddr>,
    stats: Vec<BackendStats>,
    /// The backend the next connection tries first.
    next: AtomicUsize,
    /// Client connections that found no live backend (closed at once).
    unserved: AtomicU64,
    opts: BalancerOptions,
}

pub struct Balancer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Balancer {
    /// Starts a balancer in front of `backends` (at least one) with default options.
    pub async fn start(backends: Vec<SocketAddr>) -> anyhow::Result<Self> {
        Self::start_with(backends, BalancerOptions::default()).await
    }

    pub async fn start_with(
        backends: Vec<SocketAddr>,
        opts: BalancerOptions,
    ) -> anyhow::Result<Self> {
        if backends.is_empty() {
            anyhow::bail!("a balancer needs at least one backend");
        }
        if opts.max_connections == 0 {
            anyhow::bail!("BalancerOptions.max_connections must be at least 1");
        }
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stats: backends.iter().map(|_| BackendStats::default()).collect(),
            backends,
            next: AtomicUsize::new(0),
            unserved: AtomicU64::new(0),
            opts,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        Ok(Balancer {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections relayed to backend `i` so far.
    pub fn connections_to(&self, i: usize) -> u64 {
        self.shared.stats[i].connected.load(Ordering::Relaxed)
    }

    /// Connections to backend `i` open now.
    pub fn open_to(&self, i: usize) -> u64 {
        self.shared.stats[i].open.load(Ordering::Relaxed)
    }

    /// Attempts backend `i` refused or did not answer.
    pub fn failed_to(&self, i: usize) -> u64 {
        self.shared.stats[i].failed.load(Ordering::Relaxed)
    }

    /// Client connections closed because no backend was live.
    pub fn unserved(&self) -> u64 {
        self.shared.unserved.load(Ordering::Relaxed)
    }

    /// Stops accepting and ends every relayed connection; waits for that to finish.
    pub async fn stop(mut self) {
        self.stop_now().await;
    }

    async fn stop_now(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // Without an await here: the accept loop sees the signal (or the abort) and its
        // `JoinSet` aborts every relay as it is dropped.
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(shared.opts.max_connections));
    let mut relays = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            a = listener.accept() => a,
            // Reap finished relays so the set stays as small as what is open.
            Some(_) = relays.join_next(), if !relays.is_empty() => continue,
        };
        let Ok((client, _)) = accepted else {
            // A transient accept error (e.g. out of file descriptors): try again shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            shared.unserved.fetch_add(1, Ordering::Relaxed);
            reset(&client);
            continue;
        };
        let shared = shared.clone();
        relays.spawn(async move {
            relay(client, &shared).await;
            drop(permit);
        });
    }
    // Dropping the set aborts every relay: their sockets close with them.
    relays.shutdown().await;
}

/// The first backend, in turn from the round-robin position, that accepts.
async fn connect_backend(shared: &Shared) -> Option<(usize, TcpStream)> {
    let n = shared.backends.len();
    let first = shared.next.fetch_add(1, Ordering::Relaxed) % n;
    for k in 0..n {
        let i = (first + k) % n;
        let attempt = tokio::time::timeout(
            shared.opts.connect_timeout,
            TcpStream::connect(shared.backends[i]),
        )
        .await;
        match attempt {
            Ok(Ok(stream)) => return Some((i, stream)),
            _ => {
                shared.stats[i].failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    None
}

async fn relay(mut client: TcpStream, shared: &Shared) {
    let Some((i, mut backend)) = connect_backend(shared).await else {
        shared.unserved.fetch_add(1, Ordering::Relaxed);
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let stats = &shared.stats[i];
    stats.connected.fetch_add(1, Ordering::Relaxed);
    stats.open.fetch_add(1, Ordering::Relaxed);
    // An end of stream on one side is passed on as one (a half close) until both have ended;
    // an error on either side (a reset, a dead peer) resets the other, as a peer's kernel would.
    if tokio::io::copy_bidirectional(&mut client, &mut backend)
        .await
        .is_err()
    {
        reset(&client);
        reset(&backend);
    }
    stats.open.fetch_sub(1, Ordering::Relaxed);
}

/// Makes the coming close of `stream` a reset (RST) instead of an orderly end.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo server that prefixes its replies with `tag`; returns its address and task.
    async fn echo(tag: u8) -> (SocketAddr, JoinHandle<()>) {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut s, _)) = l.accept().await {
                conns.spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&[tag]).await.is_err() {
                            break;
                        }
                        if s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, task)
    }

    async fn ask(port: u16) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"hi").await?;
        let mut buf = [0u8; 3];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn takes_backends_in_turn_and_skips_a_dead_one() {
        let (a, a_task) = echo(b'a').await;
        let (b, _b_task) = echo(b'b').await;
        let lb = Balancer::start(vec![a, b]).await.unwrap();
        let first = ask(lb.port()).await.unwrap();
        let second = ask(lb.port()).await.unwrap();
        assert_ne!(first[0], second[0], "round-robin");
        assert_eq!(&first[1..], b"hi");
        a_task.abort();
        let _ = a_task.await;
        for _ in 0..4 {
            assert_eq!(ask(lb.port()).await.unwrap()[0], b'b', "only b is live");
        }
        assert!(
            lb.failed_to(0) >= 1,
            "the dead backend was tried and skipped"
        );
        assert_eq!(lb.unserved(), 0);
        lb.stop().await;
    }

    #[tokio::test]
    async fn a_dead_backend_ends_its_connections_and_stop_ends_the_rest() {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let backend = l.local_addr().unwrap();
        let lb = Balancer::start(vec![backend]).await.unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", lb.port())).await.unwrap();
        let (server_side, _) = l.accept().await.unwrap();
        // Wait (bounded) until the relay counts it.
        for _ in 0..100 {
            if lb.open_to(0) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(lb.open_to(0), 1);
        drop(server_side);
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("the client is told its backend went away");
        assert!(matches!(n, Ok(0) | Err(_)));
        // No backend at all: a new client is refused (closed), not left hanging.
        drop(l);
        let mut c2 = TcpStream::connect(("127.0.0.1", lb.port())).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), c2.read(&mut buf))
            .await
            .expect("closed at once");
        assert!(matches!(n, Ok(0) | Err(_)));
        let port = lb.port();
        lb.stop().await;
        assert!(
            TcpStream::connect(("127.0.0.1", port)).await.is_err(),
            "a stopped balancer no longer listens"
        );
    }
}
