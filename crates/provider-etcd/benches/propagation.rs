//! Latency of a registration through a real etcd (P5 target ≤ 50 ms):
//! another node's provider registers a new member (lease grant + put) →
//! the `TopologyUpdated` listing it is published by a supervisor watching
//! etcd through its own provider.
//!
//! Criterion reports the mean and median; every latency is also kept and
//! p50 / p99 / max are printed at the end. Without an `etcd` binary the
//! bench prints a skip line and measures nothing.
//!
//! ```sh
//! cargo bench -p provider-etcd --bench propagation
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/etcd.rs"]
mod etcd;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actor_runtime::ActorSystem;
use cluster_core::events::TopologyUpdated;
use cluster_core::{
    ClusterProvider, Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId,
};
use criterion::Criterion;
use provider_etcd::{EtcdConfig, EtcdKind, EtcdProvider};
use provisioning_actors::{ProviderKinds, ProvisioningConfig, ProvisioningSupervisor};
use tokio::sync::mpsc;

fn member(id: &str, port: u16) -> Member {
    Member::new(
        NodeId::new(id).expect("node id"),
        MemberAddress::new("127.0.0.1", port).expect("address"),
        1,
    )
}

/// Waits for the next update whose diff satisfies `f`.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<TopologyUpdated>,
    f: impl Fn(&TopologyUpdated) -> bool,
) {
    loop {
        let u = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a TopologyUpdated within 10 s")
            .expect("the subscription is open");
        if f(&u) {
            return;
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(server) = rt.block_on(etcd::EtcdServer::start()) else {
        return;
    };
    let ep = server.endpoint();

    // Node a: a supervisor over an etcd provider, publishing to `rx`.
    let _enter = rt.enter();
    let system = ActorSystem::new("a");
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = system
        .event_stream()
        .subscribe_fn(move |u: &TopologyUpdated| {
            let _ = tx.send(u.clone());
        });
    let descriptor = ProviderDescriptor::new(ProviderId::new("etcd").expect("id"), "etcd", 0)
        .with_setting("endpoints", ep.clone())
        .with_setting("cluster", "bench");
    let config = ProvisioningConfig {
        local: Some(member("a", 4001)),
        ..ProvisioningConfig::default()
    };
    let _handle = rt
        .block_on(ProvisioningSupervisor::spawn(
            &system,
            config,
            ProviderKinds::new().with(EtcdKind::new()),
            vec![descriptor],
        ))
        .expect("supervisor");
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    rt.block_on(async {
        let mut rx = rx.lock().await;
        wait_for(&mut rx, |u| {
            u.topology.members.iter().any(|m| m.node_id.as_str() == "a")
        })
        .await;
    });

    // Node b: another provider instance against the same etcd.
    let other = Arc::new(
        EtcdProvider::new(EtcdConfig::new(vec![ep.clone()], "bench")).expect("provider b"),
    );
    let samples = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));

    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    let mut group = c.benchmark_group("etcd");
    group.bench_function("register_to_topology_updated", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (other, rx, samples, counter) =
                (other.clone(), rx.clone(), samples.clone(), counter.clone());
            async move {
                let mut rx = rx.lock().await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let m = member(&format!("b-{i}"), 4002);
                    let id = m.node_id.clone();
                    let start = Instant::now();
                    other.register(&m).await.expect("register b");
                    wait_for(&mut rx, |u| u.diff.joined.iter().any(|j| j.node_id == id)).await;
                    let took = start.elapsed();
                    total += took;
                    samples.lock().expect("samples").push(took);
                    // Untimed: b leaves again, so every iteration is a join.
                    other.deregister(&m).await.expect("deregister b");
                    wait_for(&mut rx, |u| u.diff.left.iter().any(|l| l.node_id == id)).await;
                }
                total
            }
        });
    });
    group.finish();
    c.final_summary();

    let mut s = samples.lock().expect("samples").clone();
    s.sort();
    if !s.is_empty() {
        let pct = |p: f64| s[((s.len() as f64 * p).ceil() as usize).clamp(1, s.len()) - 1];
        println!(
            "etcd register → TopologyUpdated: n = {}, p50 = {:.2?}, p99 = {:.2?}, max = {:.2?}",
            s.len(),
            pct(0.50),
            pct(0.99),
            s[s.len() - 1]
        );
    }
    rt.block_on(system.shutdown());
    drop(server);
}
