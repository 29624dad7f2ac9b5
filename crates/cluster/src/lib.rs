//! The consumers that act on the topology (A6, R3, R4): Remoting over TCP,
//! the PartitionManager and the PlacementSupervisor, and the `Cluster`
//! bootstrap that starts them with provisioning.
//!
//! Work in progress (issue 4): this crate so far holds the pure cores the
//! actors will drive.

pub mod partition;
pub mod partition_manager;
pub mod remoting;
pub mod wire;
