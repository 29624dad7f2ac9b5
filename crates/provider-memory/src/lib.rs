//! The in-memory membership provider (requirement P1): the reference
//! [`ClusterProvider`](cluster_core::ClusterProvider) most tests use, and
//! its provider kind [`MemoryKind`] (`memory`) for a supervisor's registry.
//!
//! # The table
//!
//! A [`MembershipTable`] is a map of [`Member`](cluster_core::Member)s keyed
//! by [`NodeId`](cluster_core::NodeId), living in process memory. It plays the
//! part a Consul catalog or a Kubernetes API server plays for the real
//! providers: the shared place where nodes register and from which they learn
//! who else is there. Cloning a table is cheap and every clone is the same
//! table.
//!
//! # Several nodes in one process
//!
//! To simulate a cluster inside one test, create one table and one
//! [`MemoryProvider`] per simulated node, each over a clone of that table.
//! Each node registers its own member through its provider and watches the
//! table through it; every node sees every registration. Tests can also edit
//! the table directly ([`upsert`](MembershipTable::upsert),
//! [`remove`](MembershipTable::remove),
//! [`replace_all`](MembershipTable::replace_all), ...) to play a node
//! appearing, crashing or the backend changing under everyone.
//!
//! A watch stream yields the current snapshot at once, then a full snapshot
//! after every change of the table. Snapshots list members sorted by node id.
//! A consumer that falls behind sees only the latest state (snapshots are
//! full lists, so nothing is lost by coalescing).
//!
//! ```
//! use cluster_core::{ClusterProvider, Member, MemberAddress, NodeId};
//! use futures::StreamExt;
//! use provider_memory::{MembershipTable, MemoryProvider};
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let table = MembershipTable::new();
//! let node_a = MemoryProvider::new(table.clone());
//! let node_b = MemoryProvider::new(table.clone());
//!
//! let a = Member::new(NodeId::new("a")?, MemberAddress::new("10.0.0.1", 4000)?, 1);
//! let b = Member::new(NodeId::new("b")?, MemberAddress::new("10.0.0.2", 4000)?, 1);
//! node_a.register(&a).await?;
//! node_b.register(&b).await?;
//!
//! // Node a's watch sees both members in its first snapshot.
//! let mut snapshots = node_a.watch();
//! let first = snapshots.next().await.expect("a snapshot")?;
//! assert_eq!(*first.members, [a.clone(), b.clone()]);
//!
//! // A graceful leave of b reaches a's stream.
//! node_b.deregister(&b).await?;
//! let next = snapshots.next().await.expect("a snapshot")?;
//! assert_eq!(*next.members, [a]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Faults
//!
//! Each provider has its own [`FaultHandle`] ([`MemoryProvider::faults`]), so
//! two nodes over one table fail independently. Faults take effect at once,
//! on streams already open too:
//!
//! - [`silence`](FaultHandle::silence): streams yield nothing, then resume
//!   with the latest snapshot (a hung backend; drives silence timeouts).
//! - [`fail_next`](FaultHandle::fail_next): the next n stream items are a
//!   given [`ProviderError`](cluster_core::ProviderError), then a fresh
//!   snapshot (errors the provider recovers from).
//! - [`end_stream`](FaultHandle::end_stream): every open stream ends (the
//!   provider gave up); new `watch` calls work.
//! - [`end_all_streams_forever`](FaultHandle::end_all_streams_forever):
//!   every stream, including new ones, ends at once while set.
//! - [`slow`](FaultHandle::slow): each snapshot is delayed (uses
//!   `tokio::time`, so paused-clock tests work).
//! - [`empty_snapshots`](FaultHandle::empty_snapshots): snapshots list no
//!   member.
//! - [`truncate_to`](FaultHandle::truncate_to): snapshots list only the first
//!   k members (a truncated response).
//! - [`fail_registration`](FaultHandle::fail_registration): `register` and
//!   `deregister` fail with `ProviderError::Registration`.
//! - [`fail_connectivity`](FaultHandle::fail_connectivity):
//!   `check_connectivity` returns the given error.
//! - [`fail_always`](FaultHandle::fail_always): every snapshot the
//!   streams would yield (keepalives included) is a given error instead,
//!   and `register` / `deregister` fail with it (a permission revoked
//!   while running).
//! - [`reset`](FaultHandle::reset) clears them all.
//!
//! [`MembershipTable::lose_all_data`] plays a backend that comes back
//! without its data (every node's provider over the table sees an empty
//! list; nothing registers again by itself). A [`FaultHandle`] made with
//! [`FaultHandle::new`] and given to
//! [`MemoryProvider::with_faults`] lets faults be set before the provider
//! exists.

mod faults;
mod kind;
mod provider;
mod table;

pub use faults::FaultHandle;
pub use kind::MemoryKind;
pub use provider::MemoryProvider;
pub use table::MembershipTable;

#[cfg(test)]
mod tests;
