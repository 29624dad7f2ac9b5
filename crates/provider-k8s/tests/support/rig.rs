//! Test rig: a fake API server, a kubeconfig pointing at it, and a node
//! (ActorSystem + ProvisioningSupervisor) with the `kubernetes` kind and an
//! optional in-memory standby.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actor_runtime::{ActorSystem, Backoff};
use cluster_core::{
    Member, MemberAddress, NodeId, ProviderDescriptor, ProviderHealth, ProviderId, Topology,
};
use fake_kube::{FakeKube, FakePod};
use provider_k8s::KubernetesKind;
use provider_memory::MembershipTable;
use provider_memory::MemoryKind;
use provisioning_actors::failover::FailoverConfig;
use provisioning_actors::{
    ProviderKinds, ProviderStatus, ProvisioningConfig, ProvisioningHandle, ProvisioningSupervisor,
};

pub const NS: &str = "apps";
pub const CLUSTER: &str = "demo";
/// Every wait of a test is bounded by this.
pub const WAIT: Duration = Duration::from_secs(15);

pub fn nid(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

pub fn pid(s: &str) -> ProviderId {
    ProviderId::new(s).unwrap()
}

/// A pod of the cluster, annotated as a member (`node` on port 4000).
pub fn member_pod(name: &str, node: &str, ip: &str, ready: bool) -> FakePod {
    FakePod::new(NS, name)
        .label("cluster-provisioning.io/cluster", CLUSTER)
        .label("app", "node")
        .annotation("cluster-provisioning.io/node-id", node)
        .annotation("cluster-provisioning.io/port", "4000")
        .annotation("cluster-provisioning.io/incarnation", "1")
        .ip(ip)
        .ready(ready)
}

/// Writes a kubeconfig for `fake` into a temp dir.
pub fn kubeconfig(fake: &FakeKube) -> tempfile::TempPath {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), fake.kubeconfig(NS)).unwrap();
    file.into_temp_path()
}

/// A `kubernetes` descriptor over `kubeconfig`, with fast timings.
pub fn k8s(id: &str, priority: u32, kubeconfig: &tempfile::TempPath) -> ProviderDescriptor {
    ProviderDescriptor::new(pid(id), "kubernetes", priority)
        .with_setting("cluster", CLUSTER)
        .with_setting("namespace", NS)
        .with_setting("kubeconfig", kubeconfig.to_str().unwrap())
        .with_setting("keepalive_ms", "200")
        .with_setting("backoff_initial_ms", "50")
        .with_setting("backoff_max_ms", "200")
}

/// Fast failover timings on the real clock (the API is real HTTP).
pub fn config(local: Option<Member>) -> ProvisioningConfig {
    ProvisioningConfig {
        local,
        failover: FailoverConfig {
            silence_timeout: Duration::from_secs(2),
            error_threshold: 3,
            stability_window: Duration::from_millis(800),
            max_snapshot_lag: Duration::from_secs(30),
            startup_grace: Duration::from_millis(200),
        },
        provider_backoff: Backoff::exponential(
            Duration::from_millis(50),
            Duration::from_millis(500),
        ),
        persist_topology: false,
        ..ProvisioningConfig::default()
    }
}

pub struct Node {
    pub system: ActorSystem,
    pub handle: ProvisioningHandle,
}

pub async fn node(
    config: ProvisioningConfig,
    defs: Vec<ProviderDescriptor>,
    standby: Option<MembershipTable>,
) -> Node {
    let system = ActorSystem::new("k8s-test");
    let mut memory = MemoryKind::new();
    if let Some(t) = standby {
        memory = memory.with_table("standby", t);
    }
    let kinds = ProviderKinds::new()
        .with(KubernetesKind::new().with_namespace_file("/nonexistent"))
        .with(memory);
    let handle = ProvisioningSupervisor::spawn(&system, config, kinds, defs)
        .await
        .unwrap();
    Node { system, handle }
}

pub fn ids(t: &Topology) -> BTreeSet<String> {
    t.members.iter().map(|m| m.node_id.to_string()).collect()
}

pub fn set(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|s| (*s).to_owned()).collect()
}

impl Node {
    /// Waits until the published topology satisfies `f` (bounded by WAIT).
    pub async fn wait_topology(&self, what: &str, f: impl Fn(&Topology) -> bool) -> Arc<Topology> {
        let r = tokio::time::timeout(WAIT, async {
            loop {
                let t = self.handle.topology().await.unwrap();
                if f(&t) {
                    return t;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        match r {
            Ok(t) => t,
            Err(_) => panic!(
                "timed out waiting for: {what}; last: {:?}; providers: {:?}",
                self.handle.topology().await.unwrap(),
                self.handle.providers().await.unwrap()
            ),
        }
    }

    pub async fn provider(&self, id: &str) -> ProviderStatus {
        self.handle
            .providers()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.id == pid(id))
            .unwrap()
    }

    /// Waits until provider `id`'s status satisfies `f` (bounded by WAIT).
    pub async fn wait_provider(
        &self,
        id: &str,
        what: &str,
        f: impl Fn(&ProviderStatus) -> bool,
    ) -> ProviderStatus {
        let r = tokio::time::timeout(WAIT, async {
            loop {
                let p = self.provider(id).await;
                if f(&p) {
                    return p;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        match r {
            Ok(p) => p,
            Err(_) => panic!(
                "timed out waiting for: {what}; last: {:?}",
                self.provider(id).await
            ),
        }
    }

    pub async fn shutdown(self) {
        self.system.shutdown().await;
    }
}

pub fn healthy(p: &ProviderStatus) -> bool {
    p.health == ProviderHealth::Healthy
}

/// Waits for a condition on the fake (bounded by WAIT).
pub async fn wait_for(what: &str, f: impl Fn() -> bool) {
    let r = tokio::time::timeout(WAIT, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(r.is_ok(), "timed out waiting for: {what}");
}

pub fn local_member(node: &str, port: u16, incarnation: u64) -> Member {
    Member::new(
        nid(node),
        MemberAddress::new("127.0.0.1", port).unwrap(),
        incarnation,
    )
}
