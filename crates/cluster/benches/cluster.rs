//! Benchmarks of the consumers over real TCP on 127.0.0.1 (issue 4):
//!
//! - `grains/request/local`: one grain request answered on the asking node
//!   (one node): the placement round trip through the PlacementSupervisor
//!   and the activation's mailbox, with rmp-serde encoding both ways.
//! - `grains/request/remote`: the same with the owner on another node of
//!   three (TCP both ways).
//! - `grains/burst64/{local,remote}`: 64 concurrent requests (throughput).
//! - `remoting/tell/10000`: 10 000 remote tells of a 16-byte payload from
//!   one node to a registered actor on another, until all have arrived
//!   (messages per second). The bytes per message on the wire are printed
//!   (`bytes per tell frame`).
//! - `node_loss/grains_answer_again`: three nodes, the grains of `c`
//!   active; `c` crashes; time until every one of its grains answers from
//!   a new owner. Dominated by the failure timeout (600 ms here), which is
//!   configuration, not cost. (The other cases run with the test cluster's
//!   default failure timeout of 3 s.)
//!
//! ```sh
//! cargo bench -p cluster --bench cluster
//! ```

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/nodes.rs"]
mod nodes;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actor_runtime::{Actor, Context, HandlerResult};
use cluster::partition::PartitionTable;
use cluster::wire::{Frame, encode_frame};
use criterion::{BenchmarkId, Criterion, Throughput};
use nodes::*;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An identity owned by `want` under `node`'s topology.
async fn owned_by(node: &TestNode, want: &str) -> String {
    let t = node.topology().await;
    let table = PartitionTable::from_topology(&t);
    (0..)
        .map(|i| format!("g{i}"))
        .find(|g| table.owner("echo", g).unwrap().node_id.as_str() == want)
        .unwrap()
}

async fn burst(
    node: &TestNode,
    id: &str,
) -> Vec<Result<EchoReply, cluster::placement::PlacementError>> {
    let futs: Vec<_> = (0..64).map(|_| node.request(id)).collect();
    futures::future::join_all(futs).await
}

fn grains(c: &mut Criterion) {
    let rt = runtime();
    let (single, three) = rt.block_on(async {
        let solo = Backends::new();
        let s = solo.start("s").await;
        converge(&[&s], &["s"]).await;
        let b = Backends::new();
        let a = b.start("a").await;
        let bb = b.start("b").await;
        let cc = b.start("c").await;
        converge(&[&a, &bb, &cc], &["a", "b", "c"]).await;
        (s, (a, bb, cc))
    });
    let (a, _b, _c) = &three;
    let local_id = rt.block_on(async { owned_by(&single, "s").await });
    let remote_id = rt.block_on(async { owned_by(a, "b").await });
    let mut g = c.benchmark_group("grains");
    g.measurement_time(Duration::from_secs(4));
    g.bench_function(BenchmarkId::new("request", "local"), |bch| {
        bch.to_async(&rt)
            .iter(|| async { single.request(&local_id).await.unwrap() })
    });
    g.bench_function(BenchmarkId::new("request", "remote"), |bch| {
        bch.to_async(&rt)
            .iter(|| async { a.request(&remote_id).await.unwrap() })
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function(BenchmarkId::new("burst64", "local"), |bch| {
        bch.to_async(&rt).iter(|| async {
            for r in burst(&single, &local_id).await {
                r.unwrap();
            }
        })
    });
    g.bench_function(BenchmarkId::new("burst64", "remote"), |bch| {
        bch.to_async(&rt).iter(|| async {
            for r in burst(a, &remote_id).await {
                r.unwrap();
            }
        })
    });
    g.finish();
    rt.block_on(async {
        single.cluster.leave(Duration::from_secs(2)).await;
        for n in [&three.0, &three.1, &three.2] {
            n.cluster.leave(Duration::from_secs(2)).await;
        }
    });
}

/// Counts the tells it receives and wakes the benchmark at the target.
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

fn remoting(c: &mut Criterion) {
    const N: u64 = 10_000;
    let rt = runtime();
    let b = Backends::new();
    let (x, y) = rt.block_on(async {
        let x = b.start("x").await;
        let y = b.start("y").await;
        converge(&[&x, &y], &["x", "y"]).await;
        (x, y)
    });
    let count = Arc::new(AtomicU64::new(0));
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(Notify::new());
    let (c2, t2, d2) = (count.clone(), target.clone(), done.clone());
    let sink = rt.block_on(async {
        y.system
            .spawn("sink", move || Sink {
                count: c2.clone(),
                target: t2.clone(),
                done: d2.clone(),
            })
            .unwrap()
    });
    y.cluster.remoting().register("sink", "bytes", sink);
    let payload = vec![7u8; 16];
    let encoded = rmp_serde::to_vec(&payload).unwrap();
    let frame = Frame::Tell {
        to: "sink".into(),
        type_id: "bytes".into(),
        payload: encoded.clone(),
    };
    let wire = encode_frame(&frame, 1 << 20).unwrap().len();
    println!(
        "bytes per tell frame: {wire} (16-byte message, {} bytes encoded, 4-byte length header)",
        encoded.len()
    );
    let mut g = c.benchmark_group("remoting");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    let remote = x.cluster.remoting().clone();
    let to = y.id.clone();
    g.bench_function(BenchmarkId::new("tell", N), |bch| {
        bch.to_async(&rt).iter_custom(|iters| {
            let (remote, to, encoded) = (remote.clone(), to.clone(), encoded.clone());
            let (count, target, done) = (count.clone(), target.clone(), done.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    count.store(0, Ordering::Relaxed);
                    target.store(N, Ordering::Relaxed);
                    let start = Instant::now();
                    let notified = done.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    let mut sent = 0;
                    while sent < N {
                        match remote.tell(&to, "sink", "bytes", encoded.clone()) {
                            Ok(()) => sent += 1,
                            // The send queue is full; let the writer drain it.
                            Err(cluster::remoting::RemotingError::Backpressure(_)) => {
                                tokio::task::yield_now().await
                            }
                            Err(e) => panic!("tell failed: {e}"),
                        }
                    }
                    tokio::time::timeout(Duration::from_secs(30), notified)
                        .await
                        .expect("every tell arrives");
                    total += start.elapsed();
                }
                total
            }
        })
    });
    g.finish();
    rt.block_on(async {
        x.cluster.leave(Duration::from_secs(2)).await;
        y.cluster.leave(Duration::from_secs(2)).await;
    });
}

fn node_loss(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("node_loss");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("grains_answer_again", |bch| {
        bch.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let b = Backends::fast_detection();
                let a = b.start("a").await;
                let bb = b.start("b").await;
                let cc = b.start("c").await;
                converge(&[&a, &bb, &cc], &["a", "b", "c"]).await;
                let t = a.topology().await;
                let table = PartitionTable::from_topology(&t);
                let on_c: Vec<String> = (0..30)
                    .map(|i| format!("g{i}"))
                    .filter(|g| table.owner("echo", g).unwrap().node_id.as_str() == "c")
                    .collect();
                for g in &on_c {
                    a.request(g).await.unwrap();
                }
                let start = Instant::now();
                cc.cluster.crash().await;
                for g in &on_c {
                    loop {
                        match a.request(g).await {
                            Ok(r) if r.node.as_str() != "c" => break,
                            _ => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                }
                total += start.elapsed();
                a.cluster.leave(Duration::from_secs(2)).await;
                bb.cluster.leave(Duration::from_secs(2)).await;
                for n in [a, bb, cc] {
                    n.system.shutdown().await;
                }
            }
            total
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    grains(&mut c);
    remoting(&mut c);
    node_loss(&mut c);
    c.final_summary();
}
