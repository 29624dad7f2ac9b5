//! Heap of the Kubernetes provider with 1,000 member pods (P3, issue 6),
//! measured with dhat's counting allocator (not a criterion benchmark: it
//! prints bytes and blocks).
//!
//! 1. The membership store alone: 1,000 pods decoded from a first list and
//!    kept as members (what the provider retains between events), and the
//!    peak while the list's pods are being decoded.
//! 2. The whole provider over the fake API server: heap growth from just
//!    before `watch()` to the first snapshot of 1,000 pods and after an
//!    idle second, the fake's store (created earlier) excluded; the fake's
//!    per-watch state is included.
//!
//! ```sh
//! cargo bench -p provider-k8s --bench memory
//! ```

use std::time::Duration;

use cluster_core::{ClusterProvider, ProviderDescriptor, ProviderId};
use fake_kube::{FakeKube, FakePod};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;
use provider_k8s::{AnnotationKeys, KubernetesKind, Membership};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const NS: &str = "bench";

fn pod(i: usize) -> FakePod {
    FakePod::new(NS, format!("node-{i}"))
        .label("cluster-provisioning.io/cluster", "bench")
        .annotation("cluster-provisioning.io/node-id", format!("node-{i}"))
        .annotation("cluster-provisioning.io/port", "4000")
        .annotation("cluster-provisioning.io/incarnation", "1")
        .ip(format!("10.0.{}.{}", i / 256, i % 256))
        .ready(true)
}

fn kib(b: usize) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();

    // 1. The membership store (the decoded pods are dropped as it goes).
    let before = dhat::HeapStats::get();
    let pods: Vec<Pod> = (0..1000)
        .map(|i| serde_json::from_value(pod(i).build()).expect("pod"))
        .collect();
    let with_pods = dhat::HeapStats::get();
    let mut m = Membership::new(AnnotationKeys::default());
    m.apply(Event::Init);
    for p in pods {
        m.apply(Event::InitApply(p));
    }
    m.apply(Event::InitDone);
    let after = dhat::HeapStats::get();
    let snapshot = m.members();
    let with_snapshot = dhat::HeapStats::get();
    println!(
        "k8s/memory/membership_1000: the 1000 decoded Pod objects {}; the store retains {} ({} blocks); one snapshot of 1000 members {}",
        kib(with_pods.curr_bytes.saturating_sub(before.curr_bytes)),
        kib(after.curr_bytes.saturating_sub(before.curr_bytes)),
        after.curr_blocks.saturating_sub(before.curr_blocks),
        kib(with_snapshot.curr_bytes.saturating_sub(after.curr_bytes)),
    );
    drop(snapshot);
    drop(m);

    // 2. The provider over the fake.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let fake = FakeKube::start().await.expect("fake");
        for i in 0..1000 {
            fake.create_pod(pod(i)).expect("pod");
        }
        let f = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(f.path(), fake.kubeconfig(NS)).expect("kubeconfig");
        let d = ProviderDescriptor::new(ProviderId::new("k8s").expect("id"), "kubernetes", 0)
            .with_setting("cluster", "bench")
            .with_setting("namespace", NS)
            .with_setting("kubeconfig", f.path().to_str().expect("utf-8"));
        let provider = KubernetesKind::new()
            .with_namespace_file("/none")
            .build(&d)
            .expect("provider");
        let base = dhat::HeapStats::get();
        let mut s = provider.watch();
        let first = s.next().await.expect("item").expect("snapshot");
        assert_eq!(first.members.len(), 1000);
        drop(first);
        let at_first = dhat::HeapStats::get();
        let _ = tokio::time::timeout(Duration::from_secs(1), s.next()).await;
        let idle = dhat::HeapStats::get();
        println!(
            "k8s/memory/provider_1000_pods: heap growth at first snapshot {} ({} blocks), after 1 s idle {}; peak since start of process {}",
            kib(at_first.curr_bytes.saturating_sub(base.curr_bytes)),
            at_first.curr_blocks.saturating_sub(base.curr_blocks),
            kib(idle.curr_bytes.saturating_sub(base.curr_bytes)),
            kib(idle.max_bytes),
        );
        drop(s);
        fake.shutdown().await;
    });
}
