//! Test cluster: nodes built with the `Cluster` bootstrap, each its own
//! `ActorSystem`, on 127.0.0.1 with real TCP, over two shared in-memory
//! tables (`primary`, priority 0, and `standby`, priority 1), with short
//! timings (heartbeat 100 ms, provider keepalive 100 ms, silence timeout
//! 600 ms). The failure timeout is 3 s by default, so that a loaded machine
//! does not quarantine a node by mistake; tests of failure detection ask
//! for 600 ms with [`Backends::fast_detection`]. Shared by the scenario
//! tests and the benchmarks (`#[path]`-included).
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actor_runtime::ActorSystem;
use cluster::Cluster;
use cluster::netsim::NetSim;
use cluster::placement::{Grain, PlacementConfig};
use cluster::remoting::RemotingConfig;
use cluster_core::{NodeId, ProviderDescriptor, ProviderId, Topology};
use provider_memory::MemoryKind;
use provider_memory::{FaultHandle, MembershipTable};
use provisioning_actors::failover::FailoverConfig;
use provisioning_actors::{ProviderKinds, ProvisioningConfig};
use serde::{Deserialize, Serialize};

pub const CLUSTER: &str = "test";
pub const WAIT: Duration = Duration::from_secs(10);

pub fn nid(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

/// A grain that counts its requests and says where it runs.
pub struct Echo {
    pub node: NodeId,
    pub count: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    pub node: NodeId,
    pub id: String,
    pub count: u64,
}

pub struct EchoWithId {
    pub echo: Echo,
    pub id: String,
}

impl Grain for EchoWithId {
    type Request = u32;
    type Response = EchoReply;
    async fn handle(&mut self, _ping: u32) -> EchoReply {
        self.echo.count += 1;
        EchoReply {
            node: self.echo.node.clone(),
            id: self.id.clone(),
            count: self.echo.count,
        }
    }
}

/// The backends every node of a test cluster shares.
#[derive(Clone)]
pub struct Backends {
    pub primary: MembershipTable,
    pub standby: MembershipTable,
    pub net: NetSim,
    pub failure_timeout: Duration,
    /// `ProvisioningConfig::suspect_hold` (the self-presence rule of issue
    /// 19; zero turns it off). Default: the provisioning default.
    pub suspect_hold: Option<Duration>,
}

impl Default for Backends {
    fn default() -> Self {
        Self {
            primary: MembershipTable::new(),
            standby: MembershipTable::new(),
            net: NetSim::new(),
            failure_timeout: Duration::from_secs(3),
            suspect_hold: None,
        }
    }
}

pub struct TestNode {
    pub id: NodeId,
    pub system: ActorSystem,
    pub cluster: Cluster,
    pub kind: MemoryKind,
}

impl TestNode {
    pub fn faults(&self, provider: &str) -> FaultHandle {
        self.kind.faults(provider).expect("provider built")
    }
    pub async fn topology(&self) -> Arc<Topology> {
        self.cluster.topology().await.unwrap()
    }
    pub async fn request(&self, id: &str) -> Result<EchoReply, cluster::placement::PlacementError> {
        self.cluster.request::<EchoWithId>("echo", id, &0).await
    }
}

pub fn failover() -> FailoverConfig {
    FailoverConfig {
        silence_timeout: Duration::from_millis(600),
        error_threshold: 3,
        stability_window: Duration::from_millis(500),
        max_snapshot_lag: Duration::from_secs(30),
        startup_grace: Duration::from_millis(50),
    }
}

pub fn remoting(failure_timeout: Duration) -> RemotingConfig {
    RemotingConfig::new(CLUSTER)
        .with_heartbeat_interval(Duration::from_millis(100))
        .with_failure_timeout(failure_timeout)
        .with_handshake_timeout(Duration::from_secs(2))
}

pub fn descriptor(id: &str, table: &str, priority: u32) -> ProviderDescriptor {
    ProviderDescriptor::new(ProviderId::new(id).unwrap(), "memory", priority)
        .with_setting("table", table)
        .with_setting("keepalive_ms", "100")
}

impl Backends {
    pub fn new() -> Self {
        Self::default()
    }

    /// Backends whose nodes detect a silent peer after 600 ms.
    pub fn fast_detection() -> Self {
        Self {
            failure_timeout: Duration::from_millis(600),
            ..Self::default()
        }
    }

    /// Starts the node `name` (the `echo` grain kind, both providers).
    pub async fn start(&self, name: &str) -> TestNode {
        self.start_with(name, |b| b).await
    }

    pub async fn start_with(
        &self,
        name: &str,
        tweak: impl FnOnce(cluster::ClusterBuilder) -> cluster::ClusterBuilder,
    ) -> TestNode {
        let id = nid(name);
        let system = ActorSystem::builder(name)
            .shutdown_timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let kind = MemoryKind::new()
            .with_table("primary", self.primary.clone())
            .with_table("standby", self.standby.clone());
        let node = id.clone();
        let builder = Cluster::builder(&system, CLUSTER, id.clone())
            .bind("127.0.0.1:0")
            .kinds(ProviderKinds::new().with(kind.clone()))
            .provider(descriptor("primary", "primary", 0))
            .provider(descriptor("standby", "standby", 1))
            .provisioning_config(ProvisioningConfig {
                failover: failover(),
                suspect_hold: self
                    .suspect_hold
                    .unwrap_or(ProvisioningConfig::default().suspect_hold),
                ..ProvisioningConfig::default()
            })
            .remoting_config(remoting(self.failure_timeout).with_netsim(self.net.clone()))
            .placement_config(PlacementConfig {
                request_timeout: Duration::from_secs(3),
                ..PlacementConfig::default()
            })
            .grain("echo", move |gid| EchoWithId {
                echo: Echo {
                    node: node.clone(),
                    count: 0,
                },
                id: gid.to_owned(),
            });
        let cluster = tweak(builder).start().await.unwrap();
        TestNode {
            id,
            system,
            cluster,
            kind,
        }
    }
}

/// Polls `check` every 20 ms until it is true; panics with `what` after
/// [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn ids(t: &Topology) -> BTreeSet<String> {
    t.members.iter().map(|m| m.node_id.to_string()).collect()
}

/// Waits until every node sees exactly `names` as members and every pair
/// of them has an association `Up`.
pub async fn converge(nodes: &[&TestNode], names: &[&str]) {
    let want: BTreeSet<String> = names.iter().map(|s| (*s).to_owned()).collect();
    for n in nodes {
        let want = want.clone();
        eventually(&format!("{} sees {:?}", n.id, want), || {
            let want = want.clone();
            async move { ids(&*n.topology().await) == want }
        })
        .await;
    }
    for n in nodes {
        for m in nodes {
            if n.id == m.id || !want.contains(m.id.as_str()) {
                continue;
            }
            eventually(&format!("{} associated with {}", n.id, m.id), || async {
                n.cluster.remoting().association(&m.id)
                    == Some(cluster::remoting::AssociationState::Up)
            })
            .await;
        }
    }
}
