//! The ProvisioningSupervisor: providers as supervised child actors, merged
//! into one topology that fails over by restart and by priority (A3–A5, R1,
//! R2, R5).
//!
//! # Shape
//!
//! - [`ProvisioningSupervisor`] is a system actor (`/system/provisioning`).
//!   It runs one [`ProviderActor`](provider_actor::ProviderActor) child per
//!   enabled provider; all of them watch at once (hot standby).
//! - Two pure cores decide, the actor only drives them:
//!   [`failover::FailoverPolicy`] (which provider is active, from health and
//!   time) and [`merge::TopologyMerger`] (the published member set, the
//!   quarantine overlay and the diff).
//! - Two more small cores guard against backend trouble (issue 19):
//!   [`activation::Activation`] (only a provider that was never activated
//!   is suppressed by R5.2) and [`presence::SelfPresence`] (a snapshot that
//!   no longer lists this node is held while the node registers again).
//! - [`registry`] accepts definitions (R1.1–R1.4); [`store`] persists them
//!   (R1.5).
//! - Everything consumers need travels on the EventStream as
//!   [`cluster_core::events`]; [`ProvisioningHandle`] answers queries and
//!   takes Remoting's quarantine reports.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use actor_runtime::ActorSystem;
//! use cluster_core::{Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId, events::TopologyUpdated};
//! use provider_memory::{MembershipTable, MemoryKind};
//! use provisioning_actors::{ProviderKinds, ProvisioningConfig, ProvisioningSupervisor};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let system = ActorSystem::new("node-a");
//! let table = MembershipTable::new();
//! let kinds = ProviderKinds::new().with(MemoryKind::new().with_table("lab", table.clone()));
//! let local = Member::new(NodeId::new("a")?, MemberAddress::new("127.0.0.1", 4000)?, 1);
//! let config = ProvisioningConfig { local: Some(local), ..Default::default() };
//! let primary = ProviderDescriptor::new(ProviderId::new("primary")?, "memory", 0)
//!     .with_setting("table", "lab");
//! let provisioning = ProvisioningSupervisor::spawn(&system, config, kinds, vec![primary]).await?;
//! // The local member registered itself; the topology lists it.
//! let mut topology = provisioning.topology().await?;
//! for _ in 0..100 {
//!     if topology.members.len() == 1 { break; }
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//!     topology = provisioning.topology().await?;
//! }
//! assert_eq!(topology.members[0].node_id.as_str(), "a");
//! system.shutdown().await;
//! # Ok(()) }
//! ```

pub mod activation;
pub mod failover;
pub mod merge;
pub mod metrics;
pub mod presence;
pub mod provider_actor;
pub mod recorder;
pub mod registry;
pub mod store;
mod supervisor;

pub use registry::{ProviderFactory, ProviderKinds};
pub use supervisor::{
    ProviderStatus, ProvisioningConfig, ProvisioningHandle, ProvisioningSupervisor, SupervisorMsg,
    provisioning_core,
};
