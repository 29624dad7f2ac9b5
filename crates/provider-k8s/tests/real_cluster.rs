//! Opt-in suite against a real cluster (P3, R1.4). Ignored by default:
//!
//! ```text
//! KUBECONFIG=~/.kube/config \
//! K8S_TEST_NAMESPACE=default \
//! K8S_TEST_CLUSTER=provider-k8s-test \
//! K8S_TEST_POD=some-pod-you-may-patch \
//!   cargo test -p provider-k8s --test real_cluster -- --ignored
//! ```
//!
//! `K8S_TEST_NAMESPACE` defaults to `default`, `K8S_TEST_CLUSTER` to
//! `provider-k8s-test`. `K8S_TEST_POD` is optional: with it, the suite also
//! registers (patches that pod) and deregisters. The credentials need the
//! Role of `deploy/kubernetes/rbac.yaml` in that namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use cluster_core::{
    ClusterProvider, Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId,
};
use futures::StreamExt;
use provider_k8s::KubernetesKind;

fn env(k: &str, default: &str) -> String {
    std::env::var(k)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn descriptor() -> ProviderDescriptor {
    let kubeconfig =
        std::env::var("KUBECONFIG").expect("set KUBECONFIG to run the real-cluster suite");
    let mut d = ProviderDescriptor::new(ProviderId::new("real").unwrap(), "kubernetes", 0)
        .with_setting("cluster", env("K8S_TEST_CLUSTER", "provider-k8s-test"))
        .with_setting("namespace", env("K8S_TEST_NAMESPACE", "default"))
        .with_setting(
            "kubeconfig",
            kubeconfig.split(':').next().unwrap_or_default(),
        )
        .with_setting("keepalive_ms", "1000");
    if let Ok(pod) = std::env::var("K8S_TEST_POD") {
        d = d.with_setting("pod_name", pod);
    }
    d
}

/// R1.4, P3: the real API answers the connectivity check, the watch yields
/// a first snapshot and keepalives; with `K8S_TEST_POD`, the pod is
/// patched on register and cleaned on deregister.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real cluster: set KUBECONFIG and run with --ignored"]
async fn real_cluster_connectivity_watch_and_registration() {
    let provider = KubernetesKind::new().build(&descriptor()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), provider.check_connectivity())
        .await
        .expect("connectivity check in time")
        .expect("API reachable and list pods permitted");
    let mut items = provider.watch();
    let first = tokio::time::timeout(Duration::from_secs(30), items.next())
        .await
        .expect("a first snapshot in time")
        .expect("the stream goes on")
        .expect("a snapshot, not an error");
    eprintln!("members: {:?}", first.members);
    let again = tokio::time::timeout(Duration::from_secs(10), items.next())
        .await
        .expect("a keepalive in time")
        .expect("the stream goes on")
        .expect("a snapshot");
    assert_eq!(again.members, first.members);
    if provider.capabilities().register {
        let me = Member::new(
            NodeId::new("provider-k8s-real-test").unwrap(),
            MemberAddress::new("127.0.0.1", 4000).unwrap(),
            1,
        );
        provider.register(&me).await.expect("patch the test pod");
        provider.deregister(&me).await.expect("clean the test pod");
    }
}
