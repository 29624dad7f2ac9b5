//! A node for the etcd scenarios: an ActorSystem and a
//! ProvisioningSupervisor over an etcd provider (and optionally an
//! in-memory standby), with a recorder of the provisioning events.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actor_runtime::{ActorSystem, Backoff};
use cluster_core::events::{ProviderChanged, TopologyUpdated};
use cluster_core::{Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId, Topology};
use provider_etcd::{EtcdConfig, EtcdKind, EtcdProvider};
use provider_memory::MembershipTable;
use provider_memory::MemoryKind;
use provisioning_actors::failover::FailoverConfig;
use provisioning_actors::{
    ProviderKinds, ProvisioningConfig, ProvisioningHandle, ProvisioningSupervisor,
};

/// Every wait in these tests is bounded by this.
pub const BOUND: Duration = Duration::from_secs(25);

pub const CLUSTER: &str = "lab";

pub fn member(id: &str, port: u16) -> Member {
    Member::new(
        NodeId::new(id).unwrap(),
        MemberAddress::new("127.0.0.1", port).unwrap(),
        1,
    )
}

/// Settings tuned for tests: short keepalive, lease, timeouts and backoff.
pub fn etcd_descriptor(id: &str, priority: u32, endpoint: &str) -> ProviderDescriptor {
    ProviderDescriptor::new(ProviderId::new(id).unwrap(), "etcd", priority)
        .with_setting("endpoints", endpoint)
        .with_setting("cluster", CLUSTER)
        .with_setting("lease_ttl_s", "3")
        .with_setting("keepalive_ms", "500")
        .with_setting("connect_timeout_ms", "500")
        .with_setting("request_timeout_ms", "900")
        .with_setting("register_timeout_ms", "2500")
        .with_setting("retry_initial_ms", "100")
        .with_setting("retry_max_ms", "500")
}

/// The same tuning for a provider used directly (not through a
/// supervisor): "another process" registering or a raw watch.
pub fn raw_config(endpoint: &str) -> EtcdConfig {
    let mut c = EtcdConfig::new(vec![endpoint.to_owned()], CLUSTER);
    c.lease_ttl = Duration::from_secs(3);
    c.keepalive = Duration::from_millis(500);
    c.connect_timeout = Duration::from_millis(500);
    // Below a third of the lease TTL, as validation requires.
    c.request_timeout = Duration::from_millis(900);
    c.register_timeout = Duration::from_millis(2500);
    c.retry_initial = Duration::from_millis(100);
    c.retry_max = Duration::from_millis(500);
    c
}

pub fn raw_provider(endpoint: &str) -> EtcdProvider {
    EtcdProvider::new(raw_config(endpoint)).unwrap()
}

/// Real-time failover timings, short enough for a test.
pub fn config(local: Member) -> ProvisioningConfig {
    ProvisioningConfig {
        local: Some(local),
        failover: FailoverConfig {
            silence_timeout: Duration::from_secs(3),
            error_threshold: 2,
            stability_window: Duration::from_secs(1),
            max_snapshot_lag: Duration::from_secs(30),
            startup_grace: Duration::from_millis(200),
        },
        provider_backoff: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1)),
        provider_max_restarts: 100,
        provider_restart_window: Duration::from_secs(60),
        connectivity_timeout: Duration::from_secs(3),
        register_timeout: Duration::from_secs(3),
        ..ProvisioningConfig::default()
    }
}

pub use provisioning_actors::recorder::EventRecorder as Events;

pub struct Node {
    pub name: String,
    pub system: ActorSystem,
    pub handle: ProvisioningHandle,
    pub events: Events,
}

/// A node `name` whose supervisor runs `defs`; `standby` is the in-memory
/// table named `standby` for memory descriptors.
pub async fn node(
    name: &str,
    port: u16,
    defs: Vec<ProviderDescriptor>,
    standby: Option<&MembershipTable>,
) -> Node {
    let system = ActorSystem::new(name);
    let events = Events::record(&system);
    let mut kinds = ProviderKinds::new().with(EtcdKind::new());
    if let Some(t) = standby {
        kinds = kinds.with(MemoryKind::new().with_table("standby", t.clone()));
    }
    let handle = ProvisioningSupervisor::spawn(&system, config(member(name, port)), kinds, defs)
        .await
        .expect("supervisor accepts the providers");
    Node {
        name: name.to_owned(),
        system,
        handle,
        events,
    }
}

pub fn ids(t: &Topology) -> BTreeSet<String> {
    t.members.iter().map(|m| m.node_id.to_string()).collect()
}

pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

impl Node {
    pub async fn topology(&self) -> Arc<Topology> {
        self.handle.topology().await.unwrap()
    }

    /// Waits until the published topology satisfies `f`; panics after
    /// [`BOUND`] with the last topology.
    pub async fn wait_topology(&self, what: &str, f: impl Fn(&Topology) -> bool) -> Arc<Topology> {
        let deadline = Instant::now() + BOUND;
        loop {
            let t = self.topology().await;
            if f(&t) {
                return t;
            }
            if Instant::now() > deadline {
                panic!("{}: timed out waiting for {what}; last: {t:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the members are exactly `names`.
    pub async fn wait_members(&self, names: &[&str]) -> Arc<Topology> {
        let want = set(names);
        self.wait_topology(&format!("members {want:?}"), |t| ids(t) == want)
            .await
    }

    /// Waits until the recorded TopologyUpdated events satisfy `f`.
    pub async fn wait_updates(&self, what: &str, f: impl Fn(&[TopologyUpdated]) -> bool) {
        let deadline = Instant::now() + BOUND;
        loop {
            if f(&self.events.updates()) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: timed out waiting for {what}; updates: {:?}",
                    self.name,
                    self.events.updates()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a ProviderChanged satisfies `f`.
    pub async fn wait_change(
        &self,
        what: &str,
        f: impl Fn(&ProviderChanged) -> bool,
    ) -> ProviderChanged {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(c) = self.events.changes().into_iter().find(|c| f(c)) {
                return c;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: timed out waiting for {what}; changes: {:?}",
                    self.name,
                    self.events.changes()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(self) {
        self.system.shutdown().await;
    }
}

/// The node ids registered under the cluster's members prefix, read
/// directly from etcd.
pub async fn registered(client: &mut etcd_client::Client) -> BTreeSet<String> {
    let prefix = format!("/cluster-provisioning/{CLUSTER}/members/");
    let r = client
        .get(
            prefix.clone(),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    r.kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().trim_start_matches(&prefix).to_owned())
        .collect()
}

/// Waits until etcd holds exactly `names`.
pub async fn wait_registered(client: &mut etcd_client::Client, names: &[&str]) {
    let want = set(names);
    let deadline = Instant::now() + BOUND;
    loop {
        let have = registered(client).await;
        if have == want {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for etcd to hold {want:?}; holds {have:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
