//! Test harness: nodes (ActorSystem + ProvisioningSupervisor with the
//! `consul` and `memory` kinds) over fake Consul agents on loopback, in
//! real time with short timings, and a recorder of provisioning events.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use actor_runtime::{ActorSystem, Backoff};
use cluster_core::{Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId, Topology};
use fake_consul::FakeConsul;
use provider_consul::{ConsulKind, ConsulProvider};
use provider_memory::MembershipTable;
use provider_memory::MemoryKind;
use provisioning_actors::failover::FailoverConfig;
use provisioning_actors::{
    ProviderKinds, ProvisioningConfig, ProvisioningHandle, ProvisioningSupervisor,
};

/// Every wait of a test is bounded by this.
pub const BOUND: Duration = Duration::from_secs(15);

pub use provisioning_actors::recorder::EventRecorder as Events;

pub fn nid(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

pub fn pid(s: &str) -> ProviderId {
    ProviderId::new(s).unwrap()
}

pub fn member(id: &str, port: u16) -> Member {
    Member::new(nid(id), MemberAddress::new("127.0.0.1", port).unwrap(), 7)
        .with_role("worker")
        .with_label("zone", "z1")
}

/// A fake cluster with fast TTL checks and reaping.
pub async fn fake() -> FakeConsul {
    FakeConsul::builder()
        .min_deregister_after(Duration::ZERO)
        .reap_interval(Duration::from_millis(100))
        .tick(Duration::from_millis(10))
        .start()
        .await
        .unwrap()
}

/// A `consul` descriptor with test timings: TTL 1 s (passed every 333 ms),
/// blocking waits of 500 ms (the keepalive), retries 50–200 ms.
pub fn consul(id: &str, priority: u32, agent: &FakeConsul) -> ProviderDescriptor {
    ProviderDescriptor::new(pid(id), "consul", priority)
        .with_setting("address", agent.url())
        .with_setting("service", "lab")
        .with_setting("ttl_s", "1")
        .with_setting("deregister_after_s", "60")
        .with_setting("wait_ms", "500")
        .with_setting("request_timeout_ms", "1000")
        .with_setting("min_query_interval_ms", "20")
        .with_setting("retry_min_ms", "50")
        .with_setting("retry_max_ms", "200")
}

pub fn memory(id: &str, priority: u32, table: &str) -> ProviderDescriptor {
    ProviderDescriptor::new(pid(id), "memory", priority)
        .with_setting("table", table)
        .with_setting("keepalive_ms", "300")
}

pub fn fast_config(local: Member) -> ProvisioningConfig {
    ProvisioningConfig {
        local: Some(local),
        failover: FailoverConfig {
            silence_timeout: Duration::from_secs(3),
            error_threshold: 3,
            stability_window: Duration::from_secs(1),
            max_snapshot_lag: Duration::from_secs(30),
            startup_grace: Duration::from_millis(200),
        },
        provider_backoff: Backoff::exponential(
            Duration::from_millis(50),
            Duration::from_millis(500),
        ),
        provider_max_restarts: 100,
        provider_restart_window: Duration::from_secs(60),
        connectivity_timeout: Duration::from_secs(2),
        register_timeout: Duration::from_secs(2),
        ..ProvisioningConfig::default()
    }
}

pub struct Node {
    pub system: ActorSystem,
    pub handle: ProvisioningHandle,
    pub events: Events,
    pub consul: ConsulKind,
    pub local: Member,
}

impl Node {
    pub fn provider(&self, id: &str) -> ConsulProvider {
        self.consul.provider(id).expect("provider built and in use")
    }

    pub async fn topology(&self) -> Arc<Topology> {
        self.handle.topology().await.unwrap()
    }

    /// Waits until the published topology satisfies `f` (bounded).
    pub async fn wait_topology(&self, what: &str, f: impl Fn(&Topology) -> bool) -> Arc<Topology> {
        let deadline = tokio::time::Instant::now() + BOUND;
        loop {
            let t = self.topology().await;
            if f(&t) {
                return t;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}; last: {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the recorded events satisfy `f` (bounded).
    pub async fn wait_events(&self, what: &str, f: impl Fn(&Events) -> bool) {
        wait_until(what, || f(&self.events)).await;
    }

    pub fn has(t: &Topology, id: &str) -> bool {
        t.members.iter().any(|m| m.node_id == nid(id))
    }

    pub async fn shutdown(self) {
        self.system.shutdown().await;
    }
}

/// Waits until `f` holds (bounded).
pub async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A node with the given providers; `tables` are the memory kind's tables.
pub async fn node_with(
    local: Member,
    defs: Vec<ProviderDescriptor>,
    tables: &[(&str, MembershipTable)],
) -> cluster_core::Result<Node> {
    let system = ActorSystem::new(local.node_id.as_str());
    let events = Events::record(&system);
    let consul = ConsulKind::without_env();
    let mut mem = MemoryKind::new();
    for (n, t) in tables {
        mem = mem.with_table(n, t.clone());
    }
    let kinds = ProviderKinds::new().with(consul.clone()).with(mem);
    let handle =
        ProvisioningSupervisor::spawn(&system, fast_config(local.clone()), kinds, defs).await?;
    Ok(Node {
        system,
        handle,
        events,
        consul,
        local,
    })
}

/// A node whose only provider is `consul` over `agent`.
pub async fn consul_node(id: &str, port: u16, agent: &FakeConsul) -> Node {
    node_with(member(id, port), vec![consul("consul", 0, agent)], &[])
        .await
        .unwrap()
}
