//! Mutual TLS against plain TCP on Remoting (issue 14), in one run, over
//! real TCP on 127.0.0.1 (two nodes of the test cluster, certificates from
//! `test-pki`):
//!
//! - `tls/tell/{plain,tls}`: 10 000 remote tells of a 16-byte payload from
//!   one node to an actor on the other, until all arrived (messages/s).
//! - `tls/request/{plain,tls}`: one grain request to the other node (the
//!   criterion mean); p50 and p99 over 2 000 sequential requests are
//!   printed (`request latency`).
//! - `tls/setup/{plain,tls}`: a new association's set-up as a probe:
//!   connect, (TLS handshake,) the remoting handshake, one answer frame.
//! - Bytes on the wire per tell: the sending socket's `bytes_sent` (from
//!   `ss -ti`) before and after 10 000 tells sent one by one (each its own
//!   write: the worst case, no batching) and 10 000 sent in a burst
//!   (batched writes), printed (`bytes per tell`).
//!
//! ```sh
//! cargo bench -p cluster --bench tls
//! ```

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/nodes.rs"]
mod nodes;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actor_runtime::{Actor, Context, HandlerResult};
use cluster::partition::PartitionTable;
use cluster::remoting::tls::identity_uri;
use cluster::remoting::{ProbeConfig, ProbeTls, TlsConfig, probe};
use cluster::wire::{HandshakeConfig, Hello, PROTOCOL_VERSION};
use criterion::{BenchmarkId, Criterion, Throughput};
use nodes::*;
use test_pki::{NodeCert, NodePki};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Sink {
    count: Arc<AtomicU64>,
    target: Arc<AtomicU64>,
    done: Arc<Notify>,
}

impl Actor for Sink {
    type Msg = Vec<u8>;
    async fn handle(&mut self, _m: Vec<u8>, _ctx: &mut Context<Self>) -> HandlerResult {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.target.load(Ordering::Relaxed) {
            self.done.notify_one();
        }
        Ok(())
    }
}

fn tls_config(pki: &NodePki, node: &str) -> TlsConfig {
    let pair = pki
        .node(node, &identity_uri(CLUSTER, node), NodeCert::Valid)
        .unwrap();
    TlsConfig::new(&pair.cert, &pair.key, &pki.ca)
}

/// Two nodes `x` and `y` (x dials y), with TLS or without.
struct Pair {
    x: TestNode,
    y: TestNode,
    count: Arc<AtomicU64>,
    target: Arc<AtomicU64>,
    done: Arc<Notify>,
}

async fn pair(pki: Option<&NodePki>) -> Pair {
    let b = Backends::new();
    let (x, y) = match pki {
        Some(pki) => {
            let (tx, ty) = (tls_config(pki, "x"), tls_config(pki, "y"));
            (
                b.start_with("x", move |c| c.tls(tx)).await,
                b.start_with("y", move |c| c.tls(ty)).await,
            )
        }
        None => (b.start("x").await, b.start("y").await),
    };
    converge(&[&x, &y], &["x", "y"]).await;
    let count = Arc::new(AtomicU64::new(0));
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(Notify::new());
    let (c2, t2, d2) = (count.clone(), target.clone(), done.clone());
    let sink = y
        .system
        .spawn("sink", move || Sink {
            count: c2.clone(),
            target: t2.clone(),
            done: d2.clone(),
        })
        .unwrap();
    y.cluster.remoting().register("sink", "bytes", sink);
    Pair {
        x,
        y,
        count,
        target,
        done,
    }
}

impl Pair {
    /// Sends `n` tells (one at a time, waiting for each to be written, when
    /// `one_by_one`) and waits until all arrived.
    async fn tells(&self, n: u64, one_by_one: bool) -> Duration {
        let encoded = rmp_serde::to_vec(&vec![7u8; 16]).unwrap();
        self.count.store(0, Ordering::Relaxed);
        self.target.store(n, Ordering::Relaxed);
        let notified = self.done.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let start = Instant::now();
        let remote = self.x.cluster.remoting();
        let mut sent = 0;
        while sent < n {
            match remote.tell(&self.y.id, "sink", "bytes", encoded.clone()) {
                Ok(()) => {
                    sent += 1;
                    if one_by_one {
                        // Let the writer flush this frame alone.
                        while self.count.load(Ordering::Relaxed) < sent {
                            tokio::task::yield_now().await;
                        }
                    }
                }
                Err(cluster::remoting::RemotingError::Backpressure(_)) => {
                    tokio::task::yield_now().await
                }
                Err(e) => panic!("tell failed: {e}"),
            }
        }
        tokio::time::timeout(Duration::from_secs(60), notified)
            .await
            .expect("every tell arrives");
        start.elapsed()
    }

    /// `bytes_sent` of x's socket to y's listener, from `ss -ti`.
    fn bytes_sent(&self) -> u64 {
        let port = self.y.cluster.remoting().local_addr().port();
        let out = std::process::Command::new("ss")
            .args([
                "-tinH",
                "state",
                "established",
                "dst",
                &format!("127.0.0.1:{port}"),
            ])
            .output()
            .expect("ss");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("bytes_sent:"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    async fn shutdown(self) {
        self.x.cluster.leave(Duration::from_secs(2)).await;
        self.y.cluster.leave(Duration::from_secs(2)).await;
        self.x.system.shutdown().await;
        self.y.system.shutdown().await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let pki = NodePki::generate(dir.path()).unwrap();
    let pairs =
        rt.block_on(async { [("plain", pair(None).await), ("tls", pair(Some(&pki)).await)] });

    // Bytes on the wire per tell, and request latency percentiles.
    for (mode, p) in &pairs {
        rt.block_on(async {
            for (how, one_by_one) in [("one by one", true), ("burst", false)] {
                let before = p.bytes_sent();
                p.tells(10_000, one_by_one).await;
                let after = p.bytes_sent();
                println!(
                    "bytes per tell ({mode}, {how}): {:.1}",
                    (after - before) as f64 / 10_000.0
                );
            }
            let t = p.x.topology().await;
            let table = PartitionTable::from_topology(&t);
            let id = (0..)
                .map(|i| format!("g{i}"))
                .find(|g| table.owner("echo", g).unwrap().node_id.as_str() == "y")
                .unwrap();
            let mut lat = Vec::with_capacity(2000);
            for _ in 0..2000 {
                let start = Instant::now();
                p.x.request(&id).await.unwrap();
                lat.push(start.elapsed());
            }
            lat.sort();
            println!(
                "request latency ({mode}): p50 {:?} p99 {:?}",
                percentile(&lat, 0.5),
                percentile(&lat, 0.99)
            );
        });
    }

    let mut g = c.benchmark_group("tls");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(10_000));
    for (mode, p) in &pairs {
        g.bench_function(BenchmarkId::new("tell", mode), |bch| {
            bch.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += p.tells(10_000, false).await;
                }
                total
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("tls");
    g.measurement_time(Duration::from_secs(4));
    for (mode, p) in &pairs {
        let id = rt.block_on(async {
            let t = p.x.topology().await;
            let table = PartitionTable::from_topology(&t);
            (0..)
                .map(|i| format!("g{i}"))
                .find(|g| table.owner("echo", g).unwrap().node_id.as_str() == "y")
                .unwrap()
        });
        g.bench_function(BenchmarkId::new("request", mode), |bch| {
            bch.to_async(&rt)
                .iter(|| async { p.x.request(&id).await.unwrap() })
        });
    }
    for (mode, p) in &pairs {
        let addr = p.y.cluster.remoting().local_addr().to_string();
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster: CLUSTER.to_owned(),
            node_id: nid("prober"),
            incarnation: 1,
            address: "127.0.0.1:1".to_owned(),
        };
        let mut config = ProbeConfig::new(HandshakeConfig::new(CLUSTER), hello);
        if *mode == "tls" {
            config = config.with_tls(ProbeTls::load(tls_config(&pki, "prober"), "prober").unwrap());
        }
        g.bench_function(BenchmarkId::new("setup", mode), |bch| {
            bch.to_async(&rt)
                .iter(|| async { probe(&addr, &config).await.unwrap() })
        });
    }
    g.finish();

    rt.block_on(async {
        for (_, p) in pairs {
            p.shutdown().await;
        }
    });
    c.final_summary();
}
