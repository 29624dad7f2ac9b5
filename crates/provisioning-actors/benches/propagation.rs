//! End-to-end latency of the ProvisioningSupervisor (issue 3 targets).
//!
//! - `propagation/1k`: a provider's table changes (one member of 1,000 gets
//!   a new incarnation) → the `TopologyUpdated` carrying it has reached 3
//!   subscriber actors. Target p99 ≤ 200 µs (issue 3), ≤ 150 µs (issue 17).
//! - `propagation/10k`: the same with 10,000 members (issue 17: p99 ≤
//!   1.5 ms), on its own node and tables.
//! - `failover/1k`: the active provider's stream ends → the
//!   `TopologyUpdated` from the hot standby has reached a subscriber.
//!   Target p99 ≤ 1 ms. Between iterations (untimed) the primary restarts
//!   and the node fails back.
//!
//! Criterion reports the mean and median of each; every single latency is
//! also kept, and p50 / p99 / max are printed at the end of the group.
//!
//! ```sh
//! cargo bench -p provisioning-actors --bench propagation
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actor_runtime::{Actor, ActorSystem, Backoff, Context, HandlerResult};
use cluster_core::events::TopologyUpdated;
use cluster_core::{Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use provider_memory::MembershipTable;
use provider_memory::MemoryKind;
use provisioning_actors::failover::FailoverConfig;
use provisioning_actors::{
    ProviderKinds, ProvisioningConfig, ProvisioningHandle, ProvisioningSupervisor,
};
use tokio::sync::mpsc;

const MEMBERS: usize = 1_000;
const MEMBERS_10K: usize = 10_000;

fn member(i: usize, incarnation: u64) -> Member {
    Member::new(
        NodeId::new(format!("node-{i:05}")).expect("node id"),
        MemberAddress::new(format!("10.0.{}.{}", i / 256, i % 256), 4000).expect("address"),
        incarnation,
    )
}

/// A subscriber actor: forwards the seq_no and active provider of every
/// TopologyUpdated to the bench.
struct Listener(mpsc::UnboundedSender<(u64, Option<ProviderId>)>);

impl Actor for Listener {
    type Msg = TopologyUpdated;
    async fn handle(&mut self, e: TopologyUpdated, _: &mut Context<Self>) -> HandlerResult {
        let _ = self
            .0
            .send((e.topology.seq_no, e.topology.active_provider.clone()));
        Ok(())
    }
}

struct Setup {
    system: ActorSystem,
    handle: ProvisioningHandle,
    primary: MembershipTable,
    kind: MemoryKind,
    rx: Vec<mpsc::UnboundedReceiver<(u64, Option<ProviderId>)>>,
}

async fn setup(listeners: usize, members: usize) -> Setup {
    let system = ActorSystem::new("bench");
    let (primary, standby) = (MembershipTable::new(), MembershipTable::new());
    primary.replace_all((0..members).map(|i| member(i, 1)).collect());
    standby.replace_all((0..members).map(|i| member(i, 1)).collect());
    let kind = MemoryKind::new()
        .with_table("primary", primary.clone())
        .with_table("standby", standby.clone());
    let config = ProvisioningConfig {
        failover: FailoverConfig {
            stability_window: Duration::from_millis(20),
            startup_grace: Duration::from_millis(50),
            ..FailoverConfig::default()
        },
        provider_backoff: Backoff::none(),
        provider_max_restarts: u32::MAX,
        ..ProvisioningConfig::default()
    };
    let defs = vec![
        ProviderDescriptor::new(ProviderId::new("primary").expect("id"), "memory", 0)
            .with_setting("table", "primary"),
        ProviderDescriptor::new(ProviderId::new("standby").expect("id"), "memory", 1)
            .with_setting("table", "standby"),
    ];
    let handle = ProvisioningSupervisor::spawn(
        &system,
        config,
        ProviderKinds::new().with(kind.clone()),
        defs,
    )
    .await
    .expect("supervisor");
    let mut rx = Vec::new();
    for i in 0..listeners {
        let (tx, r) = mpsc::unbounded_channel();
        let l = system
            .spawn(&format!("listener-{i}"), move || Listener(tx.clone()))
            .expect("listener");
        system.event_stream().subscribe::<TopologyUpdated, _>(&l);
        rx.push(r);
    }
    let s = Setup {
        system,
        handle,
        primary,
        kind,
        rx,
    };
    wait_primary(&s.handle, members).await;
    s
}

async fn wait_primary(h: &ProvisioningHandle, members: usize) {
    for _ in 0..10_000 {
        if let Ok(t) = h.topology().await
            && t.active_provider.as_ref().map(|p| p.as_str()) == Some("primary")
            && t.members.len() == members
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("primary never became active");
}

fn percentiles(name: &str, samples: &Mutex<Vec<Duration>>) {
    let mut v = samples.lock().map(|v| v.clone()).unwrap_or_default();
    if v.is_empty() {
        return;
    }
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    eprintln!(
        "{name}: n={} p50={:?} p99={:?} max={:?}",
        v.len(),
        at(0.50),
        at(0.99),
        v[v.len() - 1]
    );
}

/// `propagation/<name>`: one member of `members` gets a new incarnation
/// in the primary's table → the `TopologyUpdated` has reached every
/// subscriber; p50 / p99 / max printed after the run.
fn propagation(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    s: &mut Setup,
    name: &str,
    members: usize,
) {
    let samples = Mutex::new(Vec::new());
    let mut incarnation = 1;
    group.bench_function(format!("propagation/{name}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                incarnation += 1;
                let inc = incarnation;
                let d = rt.block_on(async {
                    // Drain anything left over (keepalive re-sends publish
                    // nothing, but be safe).
                    for r in &mut s.rx {
                        while r.try_recv().is_ok() {}
                    }
                    let start = Instant::now();
                    s.primary.upsert(member(members / 2, inc));
                    for r in &mut s.rx {
                        let _ = r.recv().await;
                    }
                    start.elapsed()
                });
                if let Ok(mut v) = samples.lock() {
                    v.push(d);
                }
                total += d;
            }
            total
        })
    });
    percentiles(&format!("propagation/{name} (3 subscribers)"), &samples);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut group = c.benchmark_group("provisioning");

    // 10,000 members first, on a node of its own, shut down before the
    // 1,000-member node starts.
    let mut s = rt.block_on(setup(3, MEMBERS_10K));
    group.sample_size(20);
    propagation(&mut group, &rt, &mut s, "10k", MEMBERS_10K);
    rt.block_on(async {
        s.system.shutdown().await;
    });

    let mut s = rt.block_on(setup(3, MEMBERS));
    group.sample_size(50);
    propagation(&mut group, &rt, &mut s, "1k", MEMBERS);

    let fsamples = Arc::new(Mutex::new(Vec::new()));
    let fs = fsamples.clone();
    group.sample_size(20);
    group.bench_function("failover/1k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let d = rt.block_on(async {
                    wait_primary(&s.handle, MEMBERS).await;
                    let rx = &mut s.rx[0];
                    while rx.try_recv().is_ok() {}
                    let faults = s.kind.faults("primary").expect("faults");
                    let start = Instant::now();
                    faults.end_stream();
                    loop {
                        match rx.recv().await {
                            Some((_, Some(p))) if p.as_str() == "standby" => break,
                            Some(_) => continue,
                            None => break,
                        }
                    }
                    start.elapsed()
                });
                if let Ok(mut v) = fs.lock() {
                    v.push(d);
                }
                total += d;
            }
            total
        })
    });
    percentiles(
        "failover/1k (stream end -> standby's TopologyUpdated)",
        &fsamples,
    );
    group.finish();
    rt.block_on(async {
        s.system.shutdown().await;
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
