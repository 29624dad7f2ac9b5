//! [`EtcdStats`]: counters of one provider, for operators and tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one provider has seen since it was built.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EtcdStats {
    /// Successful registrations (lease granted and key put), first one
    /// included: more than one means the lease was renewed after a loss.
    pub registrations: u64,
    /// Leases etcd reported gone (expired, or a new etcd).
    pub leases_lost: u64,
    /// Registrations (a first put or a re-registration) given up because a
    /// newer incarnation of the node held the key (a newer process with the
    /// same node id): `ProviderError::Superseded`.
    pub superseded: u64,
    /// Values under the members prefix that were skipped because they do
    /// not decode to a member matching their key.
    pub malformed_values: u64,
    /// Snapshots read with a prefix get (the first one and every resync).
    pub resyncs: u64,
    /// Watches that etcd cancelled because their revision was compacted.
    pub compactions: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    registrations: AtomicU64,
    leases_lost: AtomicU64,
    superseded: AtomicU64,
    malformed_values: AtomicU64,
    resyncs: AtomicU64,
    compactions: AtomicU64,
    /// The `node` label of the metrics: the node id of the member last
    /// registered (the provider is not told its node otherwise), empty
    /// before.
    node: std::sync::Mutex<std::sync::Arc<str>>,
}

impl Stats {
    pub(crate) fn set_node(&self, node: &str) {
        *self
            .node
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = node.into();
    }
    pub(crate) fn node(&self) -> std::sync::Arc<str> {
        self.node
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
    pub(crate) fn registered(&self) {
        self.registrations.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn lease_lost(&self) {
        self.leases_lost.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn superseded(&self) {
        self.superseded.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn malformed(&self) {
        self.malformed_values.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn resynced(&self) {
        self.resyncs.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn compacted(&self) {
        self.compactions.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn snapshot(&self) -> EtcdStats {
        EtcdStats {
            registrations: self.registrations.load(Ordering::Relaxed),
            leases_lost: self.leases_lost.load(Ordering::Relaxed),
            superseded: self.superseded.load(Ordering::Relaxed),
            malformed_values: self.malformed_values.load(Ordering::Relaxed),
            resyncs: self.resyncs.load(Ordering::Relaxed),
            compactions: self.compactions.load(Ordering::Relaxed),
        }
    }
}
