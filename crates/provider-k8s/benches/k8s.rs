//! Kubernetes provider benchmarks over the fake API server on loopback (P3,
//! issue 6).
//!
//! - `k8s/pod_ready_to_topology_updated`: a pod's `Ready` condition turns
//!   `True` in the fake API → the watch event → the provider → the
//!   supervisor publishes the `TopologyUpdated` that lists it. Target ≤ 50
//!   ms. Between iterations (untimed) the pod turns unready and its leave
//!   is observed. p50 / p99 / max are printed after the group.
//! - `k8s/membership_initial_list_1000`: the provider's processing of a
//!   first list of 1,000 member pods (decode 1,000 `InitApply` events,
//!   `InitDone`, build the snapshot); pure CPU, no IO.
//! - `k8s/membership_change_among_1000`: one pod event among 1,000 members
//!   and the snapshot it publishes.
//! - `k8s/first_snapshot_1000_pods_http`: `watch()` → first snapshot with
//!   1,000 pods, through the client, HTTP and the fake (2 list pages of
//!   500).
//! - steady state (printed, not a criterion measurement): one provider over
//!   1,000 pods idles for a window (default 10 s, `K8S_BENCH_WINDOW_S`); the
//!   fake's request counters show one list (its pages) and one watch per
//!   `watch_timeout_s` (10 s by default: each is resumed from its resource
//!   version, no list), no polling, and the process CPU time over the
//!   window (fake included) is printed.
//!
//! ```sh
//! cargo bench -p provider-k8s --bench k8s
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use actor_runtime::ActorSystem;
use cluster_core::events::TopologyUpdated;
use cluster_core::{ClusterProvider, ProviderDescriptor, ProviderId};
use criterion::{BatchSize, Criterion};
use fake_kube::{FakeKube, FakePod};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;
use provider_k8s::{AnnotationKeys, KubernetesKind, Membership};
use provisioning_actors::{ProviderKinds, ProvisioningConfig, ProvisioningSupervisor};
use tokio::sync::mpsc;

const NS: &str = "bench";

fn pod(i: usize, ready: bool) -> FakePod {
    FakePod::new(NS, format!("node-{i}"))
        .label("cluster-provisioning.io/cluster", "bench")
        .annotation("cluster-provisioning.io/node-id", format!("node-{i}"))
        .annotation("cluster-provisioning.io/port", "4000")
        .annotation("cluster-provisioning.io/incarnation", "1")
        .ip(format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256))
        .ready(ready)
}

fn descriptor(kubeconfig: &std::path::Path) -> ProviderDescriptor {
    ProviderDescriptor::new(ProviderId::new("k8s").expect("id"), "kubernetes", 0)
        .with_setting("cluster", "bench")
        .with_setting("namespace", NS)
        .with_setting("kubeconfig", kubeconfig.to_str().expect("utf-8 path"))
}

fn write_kubeconfig(fake: &FakeKube) -> tempfile::TempPath {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), fake.kubeconfig(NS)).expect("write kubeconfig");
    f.into_temp_path()
}

fn percentiles(name: &str, samples: &mut [Duration]) {
    if samples.is_empty() {
        return;
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{name}: n={} p50={:?} p99={:?} max={:?}",
        samples.len(),
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    );
}

fn pods_json(n: usize) -> Vec<Pod> {
    (0..n)
        .map(|i| serde_json::from_value(pod(i, true).build()).expect("a pod"))
        .collect()
}

fn bench_membership(c: &mut Criterion) {
    let pods = pods_json(1000);
    let mut g = c.benchmark_group("k8s");
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(30);
    g.bench_function("membership_initial_list_1000", |b| {
        b.iter_batched(
            || pods.clone(),
            |pods| {
                let mut m = Membership::new(AnnotationKeys::default());
                m.apply(Event::Init);
                for p in pods {
                    m.apply(Event::InitApply(p));
                }
                m.apply(Event::InitDone);
                m.members()
            },
            BatchSize::LargeInput,
        );
    });
    let mut base = Membership::new(AnnotationKeys::default());
    base.apply(Event::Init);
    for p in pods.iter().cloned() {
        base.apply(Event::InitApply(p));
    }
    base.apply(Event::InitDone);
    let unready: Pod = serde_json::from_value(pod(500, false).build()).expect("a pod");
    let ready = pods[500].clone();
    let mut flip = false;
    g.bench_function("membership_change_among_1000", |b| {
        b.iter(|| {
            flip = !flip;
            let p = if flip { unready.clone() } else { ready.clone() };
            base.apply(Event::Apply(p));
            base.members()
        });
    });
    g.finish();
}

fn bench_e2e(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (fake, kc, system, mut updates) = rt.block_on(async {
        let fake = FakeKube::start().await.expect("fake");
        fake.create_pod(pod(0, true)).expect("pod");
        fake.create_pod(pod(1, false)).expect("pod");
        let kc = write_kubeconfig(&fake);
        let system = ActorSystem::new("bench");
        let (tx, rx) = mpsc::unbounded_channel::<usize>();
        let sub = system
            .event_stream()
            .subscribe_fn(move |u: &TopologyUpdated| {
                let _ = tx.send(u.topology.members.len());
            });
        std::mem::forget(sub);
        let kinds = ProviderKinds::new().with(KubernetesKind::new().with_namespace_file("/none"));
        let _handle = ProvisioningSupervisor::spawn(
            &system,
            ProvisioningConfig::default(),
            kinds,
            vec![descriptor(&kc)],
        )
        .await
        .expect("supervisor");
        (fake, kc, system, rx)
    });
    let fake = Arc::new(fake);
    rt.block_on(async { while updates.recv().await != Some(1) {} });
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut g = c.benchmark_group("k8s");
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(50);
    g.bench_function("pod_ready_to_topology_updated", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(async {
                    let start = Instant::now();
                    fake.set_ready(NS, "node-1", true).expect("ready");
                    while updates.recv().await != Some(2) {}
                    let d = start.elapsed();
                    total += d;
                    samples.lock().expect("lock").push(d);
                    fake.set_ready(NS, "node-1", false).expect("unready");
                    while updates.recv().await != Some(1) {}
                });
            }
            total
        });
    });
    g.finish();
    percentiles(
        "k8s/pod_ready_to_topology_updated",
        &mut samples.lock().expect("lock"),
    );
    rt.block_on(system.shutdown());
    drop(kc);

    // First snapshot of 1,000 pods through HTTP.
    let (fake, kc) = rt.block_on(async {
        let fake = FakeKube::start().await.expect("fake");
        for i in 0..1000 {
            fake.create_pod(pod(i, true)).expect("pod");
        }
        let kc = write_kubeconfig(&fake);
        (fake, kc)
    });
    let kind = KubernetesKind::new().with_namespace_file("/none");
    let mut g = c.benchmark_group("k8s");
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(20);
    g.bench_function("first_snapshot_1000_pods_http", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let provider = kind.build(&descriptor(&kc)).expect("provider");
                rt.block_on(async {
                    let start = Instant::now();
                    let mut s = provider.watch();
                    let snap = s.next().await.expect("item").expect("snapshot");
                    total += start.elapsed();
                    assert_eq!(snap.members.len(), 1000);
                });
            }
            total
        });
    });
    g.finish();

    // Steady state: one provider over 1,000 pods, idle.
    let window = std::env::var("K8S_BENCH_WINDOW_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10u64);
    let provider = kind.build(&descriptor(&kc)).expect("provider");
    rt.block_on(async {
        let before = fake.requests();
        let mut s = provider.watch();
        let first = s.next().await.expect("item").expect("snapshot");
        assert_eq!(first.members.len(), 1000);
        let cpu0 = process_cpu();
        let t0 = Instant::now();
        let mut keepalives = 0;
        while t0.elapsed() < Duration::from_secs(window) {
            if let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(200), s.next()).await {
                keepalives += 1;
            }
        }
        let cpu = process_cpu().zip(cpu0).map(|(a, b)| a.saturating_sub(b));
        let after = fake.requests();
        println!(
            "k8s/steady_1000_pods: window={window}s lists={} (pages of 500) watches={} other requests={} keepalive snapshots={keepalives} process CPU (provider + fake)={}",
            after.list - before.list,
            after.watch - before.watch,
            (after.get + after.patch + after.create + after.delete + after.discovery + after.other)
                - (before.get + before.patch + before.create + before.delete + before.discovery + before.other),
            cpu.map_or("n/a".to_owned(), |d| format!("{d:?}")),
        );
    });
    drop(kc);
}

/// utime + stime of this process from /proc (10 ms resolution).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_membership(&mut c);
    bench_e2e(&mut c);
    c.final_summary();
}
