//! The consumers that act on the topology (A6, R3, R4), and the [`Cluster`]
//! bootstrap that starts them with provisioning.
//!
//! A node of a cluster is an [`ActorSystem`](actor_runtime::ActorSystem)
//! with four system actors; the three consumers follow the events the
//! ProvisioningSupervisor publishes on the EventStream through one
//! [`follower::TopologyFollower`] each (one way: see `docs/cluster.md`):
//!
//! | actor | module | acts on the topology by |
//! |---|---|---|
//! | `/system/provisioning` | [`provisioning_actors`] | merging the providers' snapshots, failing over, publishing `TopologyUpdated` |
//! | `/system/remoting` | [`remoting`] | opening TCP associations to joiners, closing them for leavers, refusing strangers and quarantined incarnations, reporting silent peers ([`failure_detector`]: timeout or phi accrual) |
//! | `/system/partitions` | [`partition_manager`] | serving the partition map placement computed, and the ownership ledger |
//! | `/system/placement` | [`placement`] | computing who owns each identity (rendezvous hashing, [`partition`]; the one place), activating grains on their owner, handing them off when ownership moves |
//!
//! [`Cluster::builder`] starts them in that order and [`Cluster::leave`]
//! stops them in reverse. The wire format of Remoting is in [`wire`]; a
//! simulated network for partition tests is in [`netsim`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use actor_runtime::ActorSystem;
//! use cluster::Cluster;
//! use cluster::placement::Grain;
//! use cluster_core::{NodeId, ProviderDescriptor, ProviderId};
//! use provider_memory::{MembershipTable, MemoryKind};
//! use provisioning_actors::ProviderKinds;
//!
//! struct Counter(u64);
//! impl Grain for Counter {
//!     type Request = u64;
//!     type Response = u64;
//!     async fn handle(&mut self, add: u64) -> u64 {
//!         self.0 += add;
//!         self.0
//!     }
//! }
//!
//! let table = MembershipTable::new();
//! let system = ActorSystem::new("node-a");
//! let node = Cluster::builder(&system, "demo", NodeId::new("a")?)
//!     .bind("127.0.0.1:0")
//!     .kinds(ProviderKinds::new().with(MemoryKind::new().with_table("t", table)))
//!     .provider(ProviderDescriptor::new(ProviderId::new("mem")?, "memory", 0).with_setting("table", "t"))
//!     .grain("counter", |_id| Counter(0))
//!     .start()
//!     .await?;
//! let total = node.request::<Counter>("counter", "visits", &1).await?;
//! node.leave(std::time::Duration::from_secs(5)).await;
//! # let _ = total; Ok(()) }
//! ```

pub mod bootstrap;
pub mod failure_detector;
pub mod follower;
pub mod grain;
pub mod metrics;
pub mod monitoring;
pub mod netsim;
pub mod partition;
pub mod partition_manager;
pub mod placement;
pub mod remoting;
pub mod wire;

pub use bootstrap::{Cluster, ClusterBuilder, ClusterError, LeaveReport, TopologyWatch};
