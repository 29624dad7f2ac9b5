//! Test harness: a node (ActorSystem + ProvisioningSupervisor over in-memory
//! providers) and a recorder of every provisioning event.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use actor_runtime::{ActorSystem, Backoff};
use cluster_core::{Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId, Topology};
use provider_memory::MemoryKind;
use provider_memory::{FaultHandle, MembershipTable};
use provisioning_actors::failover::FailoverConfig;
use provisioning_actors::{
    ProviderKinds, ProvisioningConfig, ProvisioningHandle, ProvisioningSupervisor,
};

/// The recorder of provisioning events lives in the crate (it serves the
/// provider crates' tests too).
#[allow(unused_imports)] // `Ev` is used by some of the test binaries only.
pub use provisioning_actors::recorder::{EventRecorder as Events, ProvisioningEvent as Ev};

pub fn nid(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

pub fn pid(s: &str) -> ProviderId {
    ProviderId::new(s).unwrap()
}

pub fn member(id: &str, incarnation: u64) -> Member {
    Member::new(
        nid(id),
        MemberAddress::new("127.0.0.1", 4000).unwrap(),
        incarnation,
    )
}

pub fn memory(id: &str, priority: u32, table: &str) -> ProviderDescriptor {
    ProviderDescriptor::new(pid(id), "memory", priority).with_setting("table", table)
}

/// Fast timings for tests on tokio's paused clock.
pub fn test_config(local: Option<Member>) -> ProvisioningConfig {
    ProvisioningConfig {
        local,
        failover: FailoverConfig {
            silence_timeout: Duration::from_secs(15),
            error_threshold: 3,
            stability_window: Duration::from_secs(10),
            max_snapshot_lag: Duration::from_secs(30),
            startup_grace: Duration::from_secs(2),
        },
        provider_backoff: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1)),
        provider_max_restarts: 10,
        provider_restart_window: Duration::from_secs(60),
        ..ProvisioningConfig::default()
    }
}

pub struct Node {
    pub system: ActorSystem,
    pub handle: ProvisioningHandle,
    pub events: Events,
    pub kind: MemoryKind,
}

impl Node {
    pub fn faults(&self, provider: &str) -> FaultHandle {
        self.kind.faults(provider).expect("provider built")
    }

    pub async fn topology(&self) -> Arc<Topology> {
        self.handle.topology().await.unwrap()
    }

    /// Waits (virtual time on a paused clock) until the published topology
    /// satisfies `f`; panics after 120 s of virtual time.
    pub async fn wait_topology(&self, what: &str, f: impl Fn(&Topology) -> bool) -> Arc<Topology> {
        for _ in 0..12_000 {
            let t = self.topology().await;
            if f(&t) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "timed out waiting for: {what}; last: {:?}",
            self.topology().await
        );
    }

    pub async fn wait_events(&self, what: &str, f: impl Fn(&Events) -> bool) {
        for _ in 0..12_000 {
            if f(&self.events) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "timed out waiting for: {what}; events: {:#?}",
            self.events.all()
        );
    }

    pub async fn shutdown(self) {
        self.system.shutdown().await;
    }
}

/// A node over the named tables.
pub async fn node_with(
    name: &str,
    tables: &[(&str, MembershipTable)],
    config: ProvisioningConfig,
    defs: Vec<ProviderDescriptor>,
) -> cluster_core::Result<Node> {
    let mut kind = MemoryKind::new();
    for (n, t) in tables {
        kind = kind.with_table(n, t.clone());
    }
    node_with_kind(name, kind, config, defs).await
}

/// A node over a prepared memory kind (tables, preset faults).
pub async fn node_with_kind(
    name: &str,
    kind: MemoryKind,
    config: ProvisioningConfig,
    defs: Vec<ProviderDescriptor>,
) -> cluster_core::Result<Node> {
    let system = ActorSystem::new(name);
    let events = Events::record(&system);
    let kinds = ProviderKinds::new().with(kind.clone());
    let handle = ProvisioningSupervisor::spawn(&system, config, kinds, defs).await?;
    Ok(Node {
        system,
        handle,
        events,
        kind,
    })
}

/// A node over any provider kinds (`kind` is an empty memory kind: the
/// fault handles of [`Node::faults`] do not apply).
pub async fn node_with_kinds(
    name: &str,
    kinds: ProviderKinds,
    config: ProvisioningConfig,
    defs: Vec<ProviderDescriptor>,
) -> cluster_core::Result<Node> {
    let system = ActorSystem::new(name);
    let events = Events::record(&system);
    let handle = ProvisioningSupervisor::spawn(&system, config, kinds, defs).await?;
    Ok(Node {
        system,
        handle,
        events,
        kind: MemoryKind::new(),
    })
}

/// The usual node: two in-memory providers over two tables, primary
/// (priority 0) and standby (priority 1), the local member registered in
/// both.
pub async fn two_provider_node(primary: &MembershipTable, standby: &MembershipTable) -> Node {
    two_provider_node_with(primary, standby, test_config(Some(member("local", 1)))).await
}

/// [`two_provider_node`] with another configuration.
pub async fn two_provider_node_with(
    primary: &MembershipTable,
    standby: &MembershipTable,
    config: ProvisioningConfig,
) -> Node {
    node_with(
        "node",
        &[("primary", primary.clone()), ("standby", standby.clone())],
        config,
        vec![
            memory("primary", 0, "primary"),
            memory("standby", 1, "standby"),
        ],
    )
    .await
    .unwrap()
}

/// [`two_provider_node`] whose primary is built with `primary_faults`, set
/// beforehand: faults that hit its activation (its first calls).
pub async fn two_provider_node_failing_primary(
    primary: &MembershipTable,
    standby: &MembershipTable,
    primary_faults: FaultHandle,
) -> Node {
    let kind = MemoryKind::new()
        .with_table("primary", primary.clone())
        .with_table("standby", standby.clone())
        .with_faults("primary", primary_faults);
    node_with_kind(
        "node",
        kind,
        test_config(Some(member("local", 1))),
        vec![
            memory("primary", 0, "primary"),
            memory("standby", 1, "standby"),
        ],
    )
    .await
    .unwrap()
}
