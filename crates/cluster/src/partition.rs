//! The `PartitionTable` pure core of the PartitionManager (A6, R3.1–R3.3):
//! who owns a virtual actor (grain) identity under a topology, and which
//! identities move when the topology changes. No IO, no time, no actors.
//!
//! # Rules
//!
//! 1. **Identities.** An identity is a `(kind, id)` pair of strings, e.g.
//!    `("user", "42")`. Both parts are arbitrary UTF-8 (empty allowed).
//! 2. **Weight.** `weight(node, kind, id)` is XXH3-64 with seed 0 over the
//!    length-prefixed encoding
//!    `len(kind) ‖ kind ‖ len(id) ‖ id ‖ len(node) ‖ node`, every length a
//!    little-endian `u64` byte count and every string its UTF-8 bytes (the
//!    identity comes first so that one encoding of it is reused for every
//!    member). It depends on nothing else: not on the process, the build,
//!    the platform, the member order or the member's address, incarnation,
//!    roles or labels. A pinned test keeps it that way: changing it makes
//!    every running node disagree with the new build.
//! 3. **Owner** (rendezvous, or highest-random-weight, hashing). The owner
//!    of an identity is the member with the highest weight; equal weights
//!    (a 64-bit collision) go to the smallest node id. The result does not
//!    depend on the order of the members. No members: no owner.
//! 4. **Roles.** [`PartitionTable::owner_with_role`] applies rule 3 to the
//!    members whose `roles` contain the role only. Weights are the same as
//!    without the filter, so when the unfiltered owner has the role it is
//!    also the owner by role. No member with the role: no owner.
//! 5. **Ownership is by node id.** A member that keeps its node id keeps its
//!    identities when its address, incarnation, roles or labels change; a
//!    restart is visible as a move only if the topologies in between drop
//!    the node.
//! 6. **Minimal movement** (the property rendezvous hashing gives, and the
//!    tests check). Between two tables, when a member leaves, only the
//!    identities it owned move (each to the member with the next highest
//!    weight); when a member joins, only the identities it now wins move,
//!    all to it. [`PartitionTable::moved`] lists the identities whose owner
//!    changed.
//! 7. **Pausing** (R2.4, R5.3, R3.5). A table remembers the topology's
//!    status; [`PartitionTable::is_paused`] is true when that status does not
//!    allow placement (`Starting`, `Empty`, `Unavailable`, `Draining`).
//!    `owner` still answers while paused (for reference and draining);
//!    [`PartitionTable::place`] is the checked entry point that refuses,
//!    saying why (R3.2).
//! 8. **Lease metadata** (R3.3). An [`OwnershipLedger`] records, per
//!    identity, its owner and the `seq_no` of the topology that made it the
//!    owner. A batch of moves tagged with a `seq_no` older than the last
//!    applied one is stale and ignored whole; the same `seq_no` is the same
//!    logical tick and applies (a tick's moves may arrive in several
//!    batches).
//!
//! # Cost
//!
//! [`PartitionTable::owner`] hashes the identity once per member: O(members)
//! XXH3 calls on a few dozen bytes, no allocation for short identities.
//! [`PartitionTable::owners`] answers a batch with one scratch buffer.
//! [`PartitionTable::moved`] uses rule 6: an identity whose old owner is
//! still a member is only weighed against the joiners, so a leave or a join
//! costs one full pass over the old members per identity, plus one over the
//! new members for the identities the leavers owned.
//!
//! ```
//! use cluster::partition::PartitionTable;
//! use cluster_core::{Member, MemberAddress, NodeId, ProvisioningStatus};
//!
//! let member = |id: &str| -> Result<Member, cluster_core::ProvisioningError> {
//!     Ok(Member::new(NodeId::new(id)?, MemberAddress::new("10.0.0.1", 4000)?, 1))
//! };
//! let before = PartitionTable::from_members(
//!     vec![member("a")?, member("b")?, member("c")?],
//!     1,
//!     ProvisioningStatus::Active,
//! );
//! let after = PartitionTable::from_members(
//!     vec![member("a")?, member("b")?],
//!     2,
//!     ProvisioningStatus::Active,
//! );
//! let owner = before.place("user", "42", None)?;
//! let moved = before.moved(&after, [("user", "42")]);
//! // Only an identity that "c" owned can move when "c" leaves.
//! assert_eq!(moved.is_empty(), owner.node_id.as_str() != "c");
//! # Ok::<(), cluster_core::ProvisioningError>(())
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use cluster_core::{
    Member, NodeId, ProvisioningError, ProvisioningStatus, Topology, TopologyHash, canonicalize,
};
use xxhash_rust::xxh3::xxh3_64;

/// Identities up to this many encoded bytes (with the node id) are weighed
/// in a stack buffer; longer ones use a heap buffer.
const INLINE: usize = 256;

/// The rendezvous weight of `node` for the identity `(kind, id)` (rule 2 of
/// the module documentation): XXH3-64, seed 0, over
/// `len(kind) ‖ kind ‖ len(id) ‖ id ‖ len(node) ‖ node` with little-endian
/// `u64` lengths. Stable across processes, builds and platforms.
pub fn weight(node: &NodeId, kind: &str, id: &str) -> u64 {
    let mut scratch = Scratch::new(kind, id);
    scratch.weight(node)
}

/// The encoded identity, reused for every member it is weighed against.
struct Scratch {
    inline: [u8; INLINE],
    heap: Vec<u8>,
    /// Bytes of the encoded identity; in `inline` when `on_heap` is false.
    prefix: usize,
    on_heap: bool,
}

impl Scratch {
    fn new(kind: &str, id: &str) -> Self {
        let mut s = Self {
            inline: [0; INLINE],
            heap: Vec::new(),
            prefix: 0,
            on_heap: false,
        };
        s.set_identity(kind, id);
        s
    }

    fn set_identity(&mut self, kind: &str, id: &str) {
        let len = 8 + kind.len() + 8 + id.len();
        // Node ids are at most 128 bytes (`NodeId::new`).
        self.on_heap = len + 8 + 128 > INLINE;
        self.prefix = len;
        if self.on_heap {
            self.heap.clear();
            put(&mut self.heap, kind.as_bytes());
            put(&mut self.heap, id.as_bytes());
        } else {
            let mut at = write_at(&mut self.inline, 0, kind.as_bytes());
            at = write_at(&mut self.inline, at, id.as_bytes());
            debug_assert_eq!(at, len);
        }
    }

    fn weight(&mut self, node: &NodeId) -> u64 {
        let node = node.as_str().as_bytes();
        if self.on_heap {
            self.heap.truncate(self.prefix);
            put(&mut self.heap, node);
            xxh3_64(&self.heap)
        } else if self.prefix + 8 + node.len() <= INLINE {
            let end = write_at(&mut self.inline, self.prefix, node);
            xxh3_64(&self.inline[..end])
        } else {
            // Unreachable for validated node ids; kept for safety.
            let mut buf = self.inline[..self.prefix].to_vec();
            put(&mut buf, node);
            xxh3_64(&buf)
        }
    }

    /// The best of `members` under rule 3.
    fn best<'m>(&mut self, members: impl IntoIterator<Item = &'m Member>) -> Option<&'m Member> {
        let mut best: Option<(u64, &'m Member)> = None;
        for m in members {
            let w = self.weight(&m.node_id);
            best = match best {
                Some((bw, b)) if !beats(w, &m.node_id, bw, &b.node_id) => Some((bw, b)),
                _ => Some((w, m)),
            };
        }
        best.map(|(_, m)| m)
    }
}

/// Rule 3's total order: a higher weight wins, then a smaller node id.
fn beats(w: u64, node: &NodeId, other_w: u64, other: &NodeId) -> bool {
    w > other_w || (w == other_w && node < other)
}

fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// Writes `len(bytes) ‖ bytes` at `at`; the caller checked that it fits.
fn write_at(buf: &mut [u8; INLINE], at: usize, bytes: &[u8]) -> usize {
    buf[at..at + 8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    buf[at + 8..at + 8 + bytes.len()].copy_from_slice(bytes);
    at + 8 + bytes.len()
}

/// The owners of identities under one topology (rules 3–7 of the module
/// documentation). Cheap to clone: the members are shared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionTable {
    members: Arc<[Member]>,
    seq_no: u64,
    hash: TopologyHash,
    status: ProvisioningStatus,
}

impl PartitionTable {
    /// The table of `topology`: its members (shared, not copied), `seq_no`,
    /// `hash` and status. The members are sorted by node id as the topology
    /// guarantees; a topology that breaks that promise is canonicalized
    /// here (sorted, one member per node id) so ownership stays well
    /// defined, and keeps its own hash.
    pub fn from_topology(topology: &Topology) -> Self {
        let sorted = topology
            .members
            .windows(2)
            .all(|w| w[0].node_id < w[1].node_id);
        let members = if sorted {
            Arc::clone(&topology.members)
        } else {
            let mut ms = topology.members.to_vec();
            canonicalize(&mut ms);
            Arc::from(ms)
        };
        Self {
            members,
            seq_no: topology.seq_no,
            hash: topology.hash,
            status: topology.status,
        }
    }

    /// A table of `members` in any order (canonicalized: sorted, one member
    /// per node id, as in a topology), with their [`TopologyHash`]. For tests,
    /// benchmarks and callers without a [`Topology`].
    pub fn from_members(
        members: impl IntoIterator<Item = Member>,
        seq_no: u64,
        status: ProvisioningStatus,
    ) -> Self {
        let mut ms: Vec<Member> = members.into_iter().collect();
        canonicalize(&mut ms);
        let hash = TopologyHash::of_sorted(&ms);
        Self {
            members: Arc::from(ms),
            seq_no,
            hash,
            status,
        }
    }

    /// The members, sorted by node id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The `seq_no` of the topology this table was built from.
    pub fn seq_no(&self) -> u64 {
        self.seq_no
    }

    /// The hash of the topology this table was built from.
    pub fn hash(&self) -> TopologyHash {
        self.hash
    }

    /// The status of the topology this table was built from.
    pub fn status(&self) -> ProvisioningStatus {
        self.status
    }

    /// Whether placement is paused: the status does not allow it
    /// ([`ProvisioningStatus::allows_placement`]; rule 7).
    pub fn is_paused(&self) -> bool {
        !self.status.allows_placement()
    }

    /// The owner of `(kind, id)` among all members (rule 3), `None` when
    /// there are no members. Answers even while paused; see
    /// [`place`](Self::place) for the checked form.
    pub fn owner(&self, kind: &str, id: &str) -> Option<&Member> {
        Scratch::new(kind, id).best(self.members.iter())
    }

    /// The owner of `(kind, id)` among the members whose `roles` contain
    /// `role` (rule 4), `None` when no member has the role.
    pub fn owner_with_role(&self, kind: &str, id: &str, role: &str) -> Option<&Member> {
        Scratch::new(kind, id).best(self.members.iter().filter(|m| m.roles.contains(role)))
    }

    /// The owners of a batch of identities, in order (the same answers as
    /// [`owner`](Self::owner), one scratch buffer for the batch).
    pub fn owners<'i>(
        &self,
        identities: impl IntoIterator<Item = (&'i str, &'i str)>,
    ) -> Vec<Option<&Member>> {
        let mut scratch = Scratch::new("", "");
        identities
            .into_iter()
            .map(|(kind, id)| {
                scratch.set_identity(kind, id);
                scratch.best(self.members.iter())
            })
            .collect()
    }

    /// Where to place `(kind, id)`, optionally among the members with
    /// `role`, or why it cannot be placed (R3.2):
    /// [`ProvisioningError::Draining`] while draining,
    /// [`ProvisioningError::Unavailable`] when paused for another status, when
    /// there are no members, or when no member has the role.
    pub fn place(
        &self,
        kind: &str,
        id: &str,
        role: Option<&str>,
    ) -> Result<&Member, ProvisioningError> {
        match self.status {
            ProvisioningStatus::Draining => return Err(ProvisioningError::Draining),
            ProvisioningStatus::Starting => {
                return Err(ProvisioningError::Unavailable(
                    "placement paused: no provider has delivered a snapshot yet",
                ));
            }
            ProvisioningStatus::Empty => {
                return Err(ProvisioningError::Unavailable(
                    "placement paused: the active provider reports zero members",
                ));
            }
            ProvisioningStatus::Unavailable => {
                return Err(ProvisioningError::Unavailable(
                    "placement stopped: every provider is down",
                ));
            }
            ProvisioningStatus::Active | ProvisioningStatus::Degraded => {}
        }
        match role {
            None => self.owner(kind, id).ok_or(ProvisioningError::Unavailable(
                "the topology has no members",
            )),
            Some(role) => {
                self.owner_with_role(kind, id, role)
                    .ok_or(ProvisioningError::Unavailable(
                        "no member has the requested role",
                    ))
            }
        }
    }

    /// The identities among `identities` whose owner (rule 3, all members)
    /// differs between `self` and `next`, in input order. Ownership is
    /// compared by node id (rule 5); the statuses play no part.
    /// `from` is `None` when `self` has no members, `to` when `next` has
    /// none. Duplicated identities are reported as often as they appear.
    pub fn moved<'i>(
        &self,
        next: &PartitionTable,
        identities: impl IntoIterator<Item = (&'i str, &'i str)>,
    ) -> Vec<Moved> {
        // Members of `next` that are not in `self` (both sorted by node id).
        let joiners: Vec<&Member> = next
            .members
            .iter()
            .filter(|m| !self.contains(&m.node_id))
            .collect();
        let mut scratch = Scratch::new("", "");
        let mut out = Vec::new();
        for (kind, id) in identities {
            scratch.set_identity(kind, id);
            let from = scratch.best(self.members.iter());
            let to = match from {
                // The old owner beat every member common to both tables, so
                // only the joiners can beat it now (rule 6).
                Some(f) if next.contains(&f.node_id) => {
                    scratch.best(std::iter::once(f).chain(joiners.iter().copied()))
                }
                _ => scratch.best(next.members.iter()),
            };
            let from = from.map(|m| &m.node_id);
            let to = to.map(|m| &m.node_id);
            if from != to {
                out.push(Moved {
                    kind: kind.to_owned(),
                    id: id.to_owned(),
                    from: from.cloned(),
                    to: to.cloned(),
                });
            }
        }
        out
    }

    fn contains(&self, node: &NodeId) -> bool {
        self.members
            .binary_search_by(|m| m.node_id.cmp(node))
            .is_ok()
    }
}

/// An identity whose owner changed between two tables.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Moved {
    /// The identity's kind.
    pub kind: String,
    /// The identity's id.
    pub id: String,
    /// The previous owner (`None`: the previous table had no members).
    pub from: Option<NodeId>,
    /// The new owner (`None`: the new table has no members).
    pub to: Option<NodeId>,
}

/// One identity's lease metadata in an [`OwnershipLedger`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Lease {
    /// The owner.
    pub owner: NodeId,
    /// The `seq_no` of the topology that made it the owner.
    pub seq_no: u64,
}

/// What [`OwnershipLedger::apply`] did with a batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LedgerOutcome {
    /// The batch was at least as new as the last applied one and is
    /// recorded.
    Applied,
    /// The batch was older than the last applied one and was ignored whole.
    Stale,
}

/// Lease metadata (R3.3, rule 8 of the module documentation): per identity,
/// its owner and the `seq_no` of the topology that made it the owner, fed
/// with the [`Moved`] lists the PlacementSupervisor computes.
///
/// - A batch tagged with a `seq_no` older than the last applied one is
///   [`LedgerOutcome::Stale`] and changes nothing.
/// - A batch with the same or a newer `seq_no` is applied: each move with a
///   `to` records `(to, seq_no)`; a move without one (no members left)
///   forgets the identity.
/// - The ledger only knows identities it was told about: an identity that
///   never moved has no entry.
#[derive(Clone, Debug, Default)]
pub struct OwnershipLedger {
    last_seq_no: Option<u64>,
    /// kind → id → lease (two levels so that lookups borrow `&str`).
    leases: HashMap<String, HashMap<String, Lease>>,
    len: usize,
}

impl OwnershipLedger {
    /// An empty ledger that has applied nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `moves` computed for the topology `seq_no`, unless older than
    /// the last applied batch.
    pub fn apply(&mut self, seq_no: u64, moves: impl IntoIterator<Item = Moved>) -> LedgerOutcome {
        if self.last_seq_no.is_some_and(|last| seq_no < last) {
            return LedgerOutcome::Stale;
        }
        self.last_seq_no = Some(seq_no);
        for mv in moves {
            match mv.to {
                Some(owner) => {
                    let previous = self
                        .leases
                        .entry(mv.kind)
                        .or_default()
                        .insert(mv.id, Lease { owner, seq_no });
                    if previous.is_none() {
                        self.len += 1;
                    }
                }
                None => {
                    if let Some(ids) = self.leases.get_mut(&mv.kind) {
                        if ids.remove(&mv.id).is_some() {
                            self.len -= 1;
                        }
                        if ids.is_empty() {
                            self.leases.remove(&mv.kind);
                        }
                    }
                }
            }
        }
        LedgerOutcome::Applied
    }

    /// The recorded owner of `(kind, id)`.
    pub fn owner_of(&self, kind: &str, id: &str) -> Option<&NodeId> {
        self.lease(kind, id).map(|l| &l.owner)
    }

    /// The recorded lease of `(kind, id)`.
    pub fn lease(&self, kind: &str, id: &str) -> Option<&Lease> {
        self.leases.get(kind)?.get(id)
    }

    /// The `seq_no` of the last applied batch, `None` before the first.
    pub fn last_seq_no(&self) -> Option<u64> {
        self.last_seq_no
    }

    /// How many identities have a lease.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No identity has a lease.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::MemberAddress;
    use proptest::prelude::*;

    fn nid(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn member(id: &str) -> Member {
        Member::new(nid(id), MemberAddress::new("10.0.0.1", 4000).unwrap(), 1)
    }

    fn table(ids: &[&str]) -> PartitionTable {
        PartitionTable::from_members(
            ids.iter().map(|id| member(id)),
            1,
            ProvisioningStatus::Active,
        )
    }

    fn topology(members: Vec<Member>, seq_no: u64, status: ProvisioningStatus) -> Topology {
        let mut t = Topology::starting();
        t.hash = TopologyHash::of(&members);
        t.members = Arc::from(members);
        t.seq_no = seq_no;
        t.status = status;
        t
    }

    /// An independent spelling of rule 2's encoding.
    fn reference_weight(node: &str, kind: &str, id: &str) -> u64 {
        let mut bytes = Vec::new();
        for part in [kind, id, node] {
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(part.as_bytes());
        }
        xxh3_64(&bytes)
    }

    /// R3.1: every node must compute the same owners, so the weight is
    /// pinned. If this fails, a new build disagrees with running nodes.
    #[test]
    fn r3_1_weight_is_pinned_across_builds() {
        assert_eq!(weight(&nid("node-1"), "user", "42"), PINNED_WEIGHT);
        assert_eq!(
            reference_weight("node-1", "user", "42"),
            PINNED_WEIGHT,
            "the documented encoding"
        );
        // Length prefixes: moving bytes between parts changes the weight.
        assert_ne!(weight(&nid("a"), "ab", "c"), weight(&nid("a"), "a", "bc"));
        // One owner pinned as well.
        let t = table(&["node-1", "node-2", "node-3"]);
        assert_eq!(
            t.owner("user", "42").map(|m| m.node_id.as_str()),
            Some(PINNED_OWNER)
        );
    }
    const PINNED_WEIGHT: u64 = 0x1830_508f_d747_5ed5;
    const PINNED_OWNER: &str = "node-3";

    #[test]
    fn long_identities_weigh_like_short_ones() {
        let long = "x".repeat(1000);
        let node = nid(&"n".repeat(128));
        assert_eq!(
            weight(&node, &long, "id"),
            reference_weight(node.as_str(), &long, "id")
        );
        let near = "y".repeat(INLINE - 8 - 8 - 8 - 128 - 1);
        for extra in 0..4 {
            let kind = format!("{near}{}", "z".repeat(extra));
            assert_eq!(
                weight(&node, &kind, ""),
                reference_weight(node.as_str(), &kind, "")
            );
        }
        let t = table(&["a", "b", "c"]);
        let ids = [(long.as_str(), "1"), ("k", "2"), (long.as_str(), "3")];
        let batch = t.owners(ids);
        for (i, (k, id)) in ids.iter().enumerate() {
            assert_eq!(batch[i], t.owner(k, id));
        }
    }

    #[test]
    fn r3_1_no_members_no_owner() {
        let t = table(&[]);
        assert_eq!(t.owner("k", "1"), None);
        assert_eq!(t.owner_with_role("k", "1", "r"), None);
        assert_eq!(t.owners([("k", "1")]), vec![None]);
        let e = t.place("k", "1", None).unwrap_err();
        assert_eq!(e.code(), "provisioning.unavailable");
        let from_topology = PartitionTable::from_topology(&Topology::starting());
        assert_eq!(from_topology.owner("k", "1"), None);
    }

    #[test]
    fn r3_1_from_topology_keeps_members_seq_no_and_hash() {
        let ms = vec![member("a"), member("b").with_role("r")];
        let topo = topology(ms.clone(), 7, ProvisioningStatus::Active);
        let t = PartitionTable::from_topology(&topo);
        assert_eq!(t.members(), &ms[..]);
        assert_eq!(t.seq_no(), 7);
        assert_eq!(t.hash(), topo.hash);
        assert_eq!(t.status(), ProvisioningStatus::Active);
        assert!(!t.is_paused());
        // Shared, not copied.
        assert!(Arc::ptr_eq(&t.members, &topo.members));
        // An unsorted topology is canonicalized and owns the same way.
        let unsorted = topology(
            vec![member("b"), member("a")],
            8,
            ProvisioningStatus::Active,
        );
        let u = PartitionTable::from_topology(&unsorted);
        assert_eq!(u.members()[0].node_id, nid("a"));
        assert_eq!(u.hash(), unsorted.hash);
    }

    #[test]
    fn r3_1_paused_unless_active_or_degraded() {
        use ProvisioningStatus::*;
        for (status, paused) in [
            (Starting, true),
            (Active, false),
            (Empty, true),
            (Degraded, false),
            (Unavailable, true),
            (Draining, true),
        ] {
            let t = PartitionTable::from_topology(&topology(vec![member("a")], 1, status));
            assert_eq!(t.is_paused(), paused, "{status:?}");
            // `owner` still answers; `place` refuses while paused (R3.2).
            assert!(t.owner("k", "1").is_some());
            let placed = t.place("k", "1", None);
            assert_eq!(placed.is_err(), paused, "{status:?}");
            if let Err(e) = placed {
                let code = if status == Draining {
                    "provisioning.draining"
                } else {
                    "provisioning.unavailable"
                };
                assert_eq!(e.code(), code);
            }
        }
    }

    #[test]
    fn roles_filter_the_candidates() {
        let t = PartitionTable::from_members(
            vec![
                member("a").with_role("frontend"),
                member("b").with_role("backend"),
                member("c").with_role("backend").with_role("frontend"),
                member("d"),
            ],
            1,
            ProvisioningStatus::Active,
        );
        for i in 0..200 {
            let id = i.to_string();
            let fe = t.owner_with_role("k", &id, "frontend").unwrap();
            assert!(fe.roles.contains("frontend"));
            // The highest weight among the role's members.
            let best = ["a", "c"]
                .into_iter()
                .max_by_key(|n| weight(&nid(n), "k", &id))
                .unwrap();
            assert_eq!(fe.node_id.as_str(), best);
            let any = t.owner("k", &id).unwrap();
            if any.roles.contains("frontend") {
                assert_eq!(any, fe);
            }
            assert_eq!(
                t.place("k", &id, Some("frontend")).unwrap().node_id,
                fe.node_id
            );
        }
        assert_eq!(t.owner_with_role("k", "1", "nobody"), None);
        let e = t.place("k", "1", Some("nobody")).unwrap_err();
        assert_eq!(e.code(), "provisioning.unavailable");
    }

    #[test]
    fn owner_is_the_highest_weight() {
        let names = ["a", "b", "c", "d", "e"];
        let t = table(&names);
        for i in 0..500 {
            let id = format!("id-{i}");
            let best = names
                .into_iter()
                .max_by_key(|n| weight(&nid(n), "grain", &id))
                .unwrap();
            assert_eq!(t.owner("grain", &id).unwrap().node_id.as_str(), best);
        }
    }

    #[test]
    fn ties_go_to_the_smallest_node_id() {
        let (a, b) = (nid("a"), nid("b"));
        assert!(beats(5, &a, 5, &b));
        assert!(!beats(5, &b, 5, &a));
        assert!(beats(6, &b, 5, &a));
    }

    #[test]
    fn r3_3_ledger_applies_newer_and_ignores_older_seq_no() {
        let mv = |id: &str, to: Option<&str>| Moved {
            kind: "k".into(),
            id: id.into(),
            from: None,
            to: to.map(nid),
        };
        let mut l = OwnershipLedger::new();
        assert!(l.is_empty());
        assert_eq!(l.last_seq_no(), None);
        assert_eq!(
            l.apply(5, [mv("1", Some("a")), mv("2", Some("b"))]),
            LedgerOutcome::Applied
        );
        assert_eq!(l.owner_of("k", "1"), Some(&nid("a")));
        assert_eq!(l.len(), 2);
        // Older: ignored whole.
        assert_eq!(l.apply(4, [mv("1", Some("z"))]), LedgerOutcome::Stale);
        assert_eq!(l.owner_of("k", "1"), Some(&nid("a")));
        assert_eq!(l.last_seq_no(), Some(5));
        // Same tick: applied.
        assert_eq!(l.apply(5, [mv("3", Some("c"))]), LedgerOutcome::Applied);
        assert_eq!(l.owner_of("k", "3"), Some(&nid("c")));
        // Newer: applied, seq_no recorded per lease.
        assert_eq!(
            l.apply(9, [mv("1", Some("b")), mv("2", None)]),
            LedgerOutcome::Applied
        );
        assert_eq!(
            l.lease("k", "1"),
            Some(&Lease {
                owner: nid("b"),
                seq_no: 9
            })
        );
        assert_eq!(l.lease("k", "3").map(|l| l.seq_no), Some(5));
        assert_eq!(l.owner_of("k", "2"), None);
        assert_eq!(l.owner_of("other", "1"), None);
        assert_eq!(l.len(), 2);
        assert_eq!(l.apply(8, []), LedgerOutcome::Stale);
    }

    #[test]
    fn r3_3_ledger_follows_the_table() {
        let before = table(&["a", "b", "c"]);
        let after = table(&["a", "c", "d"]);
        let ids: Vec<String> = (0..300).map(|i| i.to_string()).collect();
        let mut l = OwnershipLedger::new();
        let all = table(&[]).moved(&before, ids.iter().map(|i| ("k", i.as_str())));
        assert_eq!(all.len(), ids.len(), "from nothing, everything moves");
        assert_eq!(l.apply(1, all), LedgerOutcome::Applied);
        let moved = before.moved(&after, ids.iter().map(|i| ("k", i.as_str())));
        assert_eq!(l.apply(2, moved), LedgerOutcome::Applied);
        for id in &ids {
            assert_eq!(
                l.owner_of("k", id),
                after.owner("k", id).map(|m| &m.node_id)
            );
        }
        let gone = after.moved(&table(&[]), ids.iter().map(|i| ("k", i.as_str())));
        assert!(gone.iter().all(|m| m.to.is_none()));
        l.apply(3, gone);
        assert!(l.is_empty());
    }

    fn arb_names() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::btree_set("[a-z0-9]{1,6}", 1..16)
            .prop_map(|s| s.into_iter().collect())
    }

    fn arb_identities() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(("[a-c]{0,2}", "[0-9a-z]{0,6}"), 1..64)
    }

    fn pairs(ids: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
        ids.iter().map(|(k, i)| (k.as_str(), i.as_str()))
    }

    fn owner_id<'t>(t: &'t PartitionTable, k: &str, i: &str) -> Option<&'t str> {
        t.owner(k, i).map(|m| m.node_id.as_str())
    }

    proptest! {
        /// R3.1: the owner does not depend on the order members arrive in,
        /// and the batch agrees with the single form.
        #[test]
        fn r3_1_owner_is_independent_of_member_order(
            names in arb_names(),
            seed in any::<u64>(),
            ids in arb_identities(),
        ) {
            let sorted = table(&names.iter().map(String::as_str).collect::<Vec<_>>());
            let mut shuffled = names.clone();
            let n = shuffled.len();
            for i in 0..n {
                let j = (seed.wrapping_mul(i as u64 + 7) % n as u64) as usize;
                shuffled.swap(i, j);
            }
            // Unsorted members reach the core directly, bypassing
            // canonicalization, so the tie-break and order independence are
            // checked on the raw slice too.
            let raw = PartitionTable {
                members: Arc::from(shuffled.iter().map(|s| member(s)).collect::<Vec<_>>()),
                ..sorted.clone()
            };
            let batch = sorted.owners(pairs(&ids));
            for ((k, i), b) in pairs(&ids).zip(batch) {
                let owner = sorted.owner(k, i);
                prop_assert!(owner.is_some());
                prop_assert_eq!(owner, b);
                prop_assert_eq!(owner, raw.owner(k, i));
            }
        }

        /// R3.1 (rule 6): when a member leaves, only the identities it owned
        /// move; when it joins, only the identities it now owns move. And
        /// `moved` agrees with comparing owners one by one.
        #[test]
        fn r3_1_only_the_leaver_or_joiner_identities_move(
            names in arb_names(),
            pick in any::<prop::sample::Index>(),
            ids in arb_identities(),
        ) {
            let all: Vec<&str> = names.iter().map(String::as_str).collect();
            let leaver = all[pick.index(all.len())];
            let rest: Vec<&str> = all.iter().copied().filter(|n| *n != leaver).collect();
            let with = table(&all);
            let without = table(&rest);

            // Leave.
            let moved = with.moved(&without, pairs(&ids));
            for (k, i) in pairs(&ids) {
                let before = owner_id(&with, k, i);
                let after = owner_id(&without, k, i);
                prop_assert_eq!(before != after, before == Some(leaver));
            }
            let expected: Vec<(&str, &str)> = pairs(&ids)
                .filter(|(k, i)| owner_id(&with, k, i) == Some(leaver))
                .collect();
            prop_assert_eq!(
                moved.iter().map(|m| (m.kind.as_str(), m.id.as_str())).collect::<Vec<_>>(),
                expected
            );
            for m in &moved {
                prop_assert_eq!(m.from.as_ref().map(NodeId::as_str), Some(leaver));
                prop_assert_eq!(m.to.as_ref().map(NodeId::as_str), owner_id(&without, &m.kind, &m.id));
            }

            // Join.
            let moved = without.moved(&with, pairs(&ids));
            for (k, i) in pairs(&ids) {
                let before = owner_id(&without, k, i);
                let after = owner_id(&with, k, i);
                prop_assert_eq!(before != after, after == Some(leaver));
            }
            for m in &moved {
                prop_assert_eq!(m.to.as_ref().map(NodeId::as_str), Some(leaver));
            }
            prop_assert_eq!(
                moved.len(),
                pairs(&ids).filter(|(k, i)| owner_id(&with, k, i) == Some(leaver)).count()
            );
        }

        /// `moved` between any two member sets equals the naive comparison.
        #[test]
        fn moved_matches_owner_by_owner(
            a in proptest::collection::btree_set("[a-h]", 0..8),
            b in proptest::collection::btree_set("[a-h]", 0..8),
            ids in arb_identities(),
        ) {
            let ta = table(&a.iter().map(String::as_str).collect::<Vec<_>>());
            let tb = table(&b.iter().map(String::as_str).collect::<Vec<_>>());
            let naive: Vec<Moved> = pairs(&ids)
                .filter_map(|(k, i)| {
                    let from = ta.owner(k, i).map(|m| m.node_id.clone());
                    let to = tb.owner(k, i).map(|m| m.node_id.clone());
                    (from != to).then(|| Moved { kind: k.into(), id: i.into(), from, to })
                })
                .collect();
            prop_assert_eq!(ta.moved(&tb, pairs(&ids)), naive);
        }
    }
}
