//! The shared vocabulary of cluster provisioning. No IO, no actors: every
//! other crate speaks in these types.
//!
//! - [`NodeId`], [`MemberAddress`], [`Member`]: who is in the cluster.
//! - [`Topology`], [`TopologyHash`], [`TopologyDiff`]: the merged view the
//!   ProvisioningSupervisor publishes, its stable digest and what changed.
//! - [`ClusterProvider`], [`ProviderDescriptor`], [`Snapshot`]: what a
//!   membership source is and how one is configured; [`ProviderFactory`]:
//!   how a kind builds providers.
//! - [`settings::Settings`]: the one typed reader of a descriptor's
//!   settings; [`backoff::Backoff`]: the one retry delay (doubling, capped,
//!   jittered). Every provider kind uses these two.
//! - [`events`]: what travels on the EventStream (A5).
//! - [`ProvisioningError`], [`ProviderError`]: stable error codes (R5.5),
//!   listed in `docs/error-codes.md`.
//!
//! ```
//! use cluster_core::{Member, MemberAddress, NodeId, TopologyHash};
//!
//! let a = Member::new(NodeId::new("a")?, MemberAddress::new("10.0.0.1", 4000)?, 1);
//! let b = Member::new(NodeId::new("b")?, MemberAddress::new("10.0.0.2", 4000)?, 1);
//! // The hash is canonical: order does not matter, any change does.
//! assert_eq!(TopologyHash::of(&[a.clone(), b.clone()]), TopologyHash::of(&[b.clone(), a.clone()]));
//! let mut b2 = b.clone();
//! b2.incarnation = 2;
//! assert_ne!(TopologyHash::of(&[a.clone(), b]), TopologyHash::of(&[a, b2]));
//! # Ok::<(), cluster_core::ProvisioningError>(())
//! ```

pub mod backoff;
mod error;
pub mod events;
mod factory;
pub mod grain_storage;
mod node;
mod provider;
pub mod settings;
mod topology;

pub use error::{ProviderError, ProvisioningError, Result};
pub use factory::ProviderFactory;
pub use grain_storage::{GrainKey, GrainStorage, MemoryGrainStorage, StorageError, StoredState};
pub use node::{Member, MemberAddress, NodeId};
pub use provider::{
    Capabilities, ClusterProvider, ProviderDescriptor, ProviderHealth, ProviderId, Snapshot,
    is_secret_setting,
};
pub use topology::{
    BlockedMember, ProvisioningStatus, Topology, TopologyDiff, TopologyHash, canonicalize,
};
