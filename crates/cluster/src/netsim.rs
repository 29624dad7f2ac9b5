//! A simulated network between Remoting nodes, for partition tests (in the
//! spirit of raft-rs's `harness/src/network.rs`): drop or delay the traffic
//! from one chosen node to another while the real TCP connections stay up.
//!
//! Give the same [`NetSim`] to every node's
//! [`RemotingConfig::netsim`](crate::remoting::RemotingConfig::netsim). Links
//! are directed: `(from, to)` covers what `from` sends to `to`. A node
//! applies the rules of its inbound links:
//!
//! - **cut**: frames from `from` are discarded on arrival at `to` (counted
//!   in [`NetSim::dropped`]), and a connection attempt across a cut link is
//!   lost: the dialer's attempt times out without an answer, so it is not
//!   mistaken for a sign of life. Heartbeats are lost, so the failure
//!   detectors fire exactly as they would on a real partition;
//! - **delay**: the reader of `to` waits `delay` before delivering each
//!   frame from `from`, in order. Frames queue behind each other, so a
//!   delayed link also carries at most one frame per `delay`: a slow link
//!   rather than a pure latency.
//!
//! Without a `NetSim` (the default) Remoting pays nothing for this module.
//!
//! ```
//! use cluster::netsim::NetSim;
//! use cluster_core::NodeId;
//! use std::time::Duration;
//!
//! let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
//! let net = NetSim::new();
//! net.partition(&[a.clone()], &[b.clone()]);
//! assert!(net.link(&a, &b).cut && net.link(&b, &a).cut);
//! net.delay(&a, &b, Duration::from_millis(30));
//! net.heal();
//! assert!(!net.link(&a, &b).cut);
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use cluster_core::NodeId;

/// The rule of one directed link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// Everything sent on the link is lost.
    pub cut: bool,
    /// Everything sent on the link arrives this much later.
    pub delay: Duration,
}

#[derive(Default)]
struct Inner {
    links: RwLock<HashMap<(NodeId, NodeId), Link>>,
    dropped: AtomicU64,
}

/// A shared set of link rules (cheap to clone; every clone is the same
/// network).
#[derive(Clone, Default)]
pub struct NetSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NetSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let links = self
            .inner
            .links
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("NetSim")
            .field("rules", &links.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl NetSim {
    /// A network where every link works.
    pub fn new() -> Self {
        Self::default()
    }

    fn edit(&self, from: &NodeId, to: &NodeId, f: impl FnOnce(&mut Link)) {
        let mut links = self
            .inner
            .links
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let link = links.entry((from.clone(), to.clone())).or_default();
        f(link);
        if *link == Link::default() {
            links.remove(&(from.clone(), to.clone()));
        }
    }

    /// Cuts the link from `from` to `to` (one way).
    pub fn cut(&self, from: &NodeId, to: &NodeId) {
        self.edit(from, to, |l| l.cut = true);
    }

    /// Cuts every link between a node of `side_a` and a node of `side_b`,
    /// both ways.
    pub fn partition(&self, side_a: &[NodeId], side_b: &[NodeId]) {
        for a in side_a {
            for b in side_b {
                self.cut(a, b);
                self.cut(b, a);
            }
        }
    }

    /// Delays the link from `from` to `to` (one way).
    pub fn delay(&self, from: &NodeId, to: &NodeId, delay: Duration) {
        self.edit(from, to, |l| l.delay = delay);
    }

    /// Restores the links between `a` and `b`, both ways.
    pub fn heal_between(&self, a: &NodeId, b: &NodeId) {
        self.edit(a, b, |l| *l = Link::default());
        self.edit(b, a, |l| *l = Link::default());
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.inner
            .links
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The rule of the link from `from` to `to`.
    pub fn link(&self, from: &NodeId, to: &NodeId) -> Link {
        let links = self
            .inner
            .links
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if links.is_empty() {
            return Link::default();
        }
        links
            .get(&(from.clone(), to.clone()))
            .copied()
            .unwrap_or_default()
    }

    /// Frames discarded by cut links so far.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn count_drop(&self) {
        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
    }
}
