//! The ProvisioningSupervisor and its pure cores.

pub mod failover;
pub mod merge;
pub mod store;
