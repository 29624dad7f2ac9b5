//! The monitoring ring: who watches whom (`docs/monitoring-design.md` §2.2).
//!
//! **Positions.** A member's position is
//! `xxh3_64("monitor-ring" ‖ node_id)` ([`ring_position`]): XXH3, 64 bits,
//! seed 0, from the `xxhash-rust` crate (the topology hash's library), over
//! the bytes of [`RING_HASH_DOMAIN`] followed by the node id's UTF-8
//! bytes. **This function must never change between versions**: during a
//! rolling upgrade nodes of different builds must compute the same ring,
//! or a node would watch targets nobody else thinks it watches and votes
//! would not meet. A change of hash, domain or input is a protocol change.
//! The incarnation is *not* hashed: a restarted node keeps its place, so a
//! restart moves no monitor. Equal positions (never seen in practice) are
//! ordered by node id, so the order is total.
//!
//! **Assignment.** With the members sorted by `(position, node id)` as a
//! cycle, the *watchers* (monitors) of X are the `k_eff = min(k, N − 1)`
//! members that follow X, and the members X *watches* (its targets) are
//! the `k_eff` members that precede it ([`Ring::watchers_of`],
//! [`Ring::watched_by`]). Every member has exactly `k_eff` watchers and
//! `k_eff` targets, all distinct and none of them itself.
//!
//! **Laws** (property tests below): the ring is a function of the member
//! *set* (any order, duplicates ignored); every member has `min(k, N − 1)`
//! distinct watchers other than itself; `watchers_of` and `watched_by` are
//! inverse; one join or leave changes at most **3k** (target, watcher)
//! pairs whatever N (a join of J: each of J's k predecessors gains J and
//! loses its former k-th successor, 2k pairs, and J gets its k watchers,
//! k more; a leave is the mirror image; in clusters of at most k + 1
//! members everyone watches everyone and a change moves 2(N − 1) ≤ 2k).
//!
//! **Broadcast trees** (design §2.6): a verdict about X travels from its
//! reporter R to every other member along a tree over the ring without X.
//! Positions are counted from R (offset 0) forward or backward; a node
//! responsible for `span` positions (itself first) gives the upper half to
//! a child and keeps halving ([`tree_children`],
//! [`Ring::broadcast_children`]). Law 12: every member but X once, depth
//! and fan-out ≤ ⌈log2 M⌉, and for any one failed relay the forward and
//! the backward tree of one root together still reach everyone else.
//!
//! **Cost.** [`Ring::new`] hashes each id once, sorts (O(N log N)) and
//! builds an index from id to slot (a hash map, O(N)); the queries look
//! the node up in that index (O(1) expected) and walk `k_eff` slots: O(k).
//! Memory: one `(u64, NodeId)` slot and one index entry per member. The
//! build time is **not measured** (no benchmark yet; the design estimates
//! tens of µs for 1,000 members).

use std::collections::HashMap;

use cluster_core::{NodeId, Topology};
use xxhash_rust::xxh3::xxh3_64;

use super::config::k_eff;

/// The bytes hashed before the node id (domain separation from the
/// topology hash and any other use of XXH3). Part of the protocol: never
/// change it.
pub const RING_HASH_DOMAIN: &[u8] = b"monitor-ring";

/// A member's position on the ring: `xxh3_64(RING_HASH_DOMAIN ‖ node_id)`.
/// Stable across processes, builds and versions (see the module doc).
pub fn ring_position(node: &NodeId) -> u64 {
    let id = node.as_str().as_bytes();
    let mut buf = Vec::with_capacity(RING_HASH_DOMAIN.len() + id.len());
    buf.extend_from_slice(RING_HASH_DOMAIN);
    buf.extend_from_slice(id);
    xxh3_64(&buf)
}

/// The monitoring assignment of one member set.
#[derive(Clone, Debug)]
pub struct Ring {
    /// Members sorted by `(position, node id)`.
    slots: Vec<(u64, NodeId)>,
    /// Node id → its index in `slots`.
    index: HashMap<NodeId, usize>,
    /// `min(k, N − 1)`.
    k_eff: usize,
}

impl Ring {
    /// The ring of `members` with `monitors` (k) watchers per member.
    /// The order of `members` does not matter; a repeated id counts once.
    pub fn new<'a>(members: impl IntoIterator<Item = &'a NodeId>, monitors: usize) -> Self {
        let mut slots: Vec<(u64, NodeId)> = members
            .into_iter()
            .map(|id| (ring_position(id), id.clone()))
            .collect();
        slots.sort_unstable();
        slots.dedup_by(|a, b| a.1 == b.1);
        let index = slots
            .iter()
            .enumerate()
            .map(|(i, (_, id))| (id.clone(), i))
            .collect();
        let k_eff = k_eff(monitors, slots.len());
        Self {
            slots,
            index,
            k_eff,
        }
    }

    /// The ring of a topology's members (blocked incarnations are not
    /// members, so they have no place).
    pub fn from_topology(topology: &Topology, monitors: usize) -> Self {
        Self::new(topology.members.iter().map(|m| &m.node_id), monitors)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the ring has no member.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Watchers (and targets) per member: `min(k, N − 1)`.
    pub fn k_eff(&self) -> usize {
        self.k_eff
    }

    /// Whether `node` is on the ring.
    pub fn contains(&self, node: &NodeId) -> bool {
        self.index.contains_key(node)
    }

    /// The members in ring order (by position, then id).
    pub fn members(&self) -> impl ExactSizeIterator<Item = &NodeId> + '_ {
        self.slots.iter().map(|(_, id)| id)
    }

    /// The watchers (monitors) of `node`: the `k_eff` members that follow
    /// it, nearest first. `None` if `node` is not on the ring.
    pub fn watchers_of(&self, node: &NodeId) -> Option<impl ExactSizeIterator<Item = &NodeId>> {
        let at = *self.index.get(node)?;
        let n = self.slots.len();
        Some((1..self.k_eff + 1).map(move |d| &self.slots[(at + d) % n].1))
    }

    /// The members `node` watches (its targets): the `k_eff` members that
    /// precede it, nearest first. `None` if `node` is not on the ring.
    pub fn watched_by(&self, node: &NodeId) -> Option<impl ExactSizeIterator<Item = &NodeId>> {
        let at = *self.index.get(node)?;
        let n = self.slots.len();
        Some((1..self.k_eff + 1).map(move |d| &self.slots[(at + n - d) % n].1))
    }

    /// The children of `me` in a verdict's broadcast tree about `target`
    /// (design §2.6): `me` is responsible for `span` consecutive positions
    /// (itself first) of the ring without `target`, running forward (the
    /// successors' way) or `backward`. Returns each child with the span it
    /// becomes responsible for, in sending order ([`tree_children`]).
    /// The root of a tree passes `span` = [`Ring::broadcast_span`].
    /// `None` if `me` is not on the ring or is the target. A span beyond
    /// the ring is cut to it.
    pub fn broadcast_children(
        &self,
        me: &NodeId,
        target: &NodeId,
        span: usize,
        backward: bool,
    ) -> Option<Vec<(&NodeId, usize)>> {
        let at = *self.index.get(me)?;
        if me == target {
            return None;
        }
        let n = self.slots.len();
        // Steps from `me` to the target along the tree's direction; a
        // position at or beyond it skips the target's slot.
        let to_target = self.index.get(target).map(|&t| {
            if backward {
                (at + n - t) % n
            } else {
                (t + n - at) % n
            }
        });
        let span = span.min(self.broadcast_span(target));
        Some(
            tree_children(span)
                .map(|(offset, child_span)| {
                    let steps = match to_target {
                        Some(d) if offset >= d => offset + 1,
                        _ => offset,
                    };
                    let slot = if backward {
                        (at + n - steps % n) % n
                    } else {
                        (at + steps) % n
                    };
                    (&self.slots[slot].1, child_span)
                })
                .collect(),
        )
    }

    /// The positions a verdict about `target` covers: every member but the
    /// target (the root's span).
    pub fn broadcast_span(&self, target: &NodeId) -> usize {
        self.slots.len() - usize::from(self.contains(target))
    }

    /// Every `(target, watcher)` pair, `N · k_eff` of them.
    pub fn pairs(&self) -> impl Iterator<Item = (&NodeId, &NodeId)> + '_ {
        let n = self.slots.len();
        (0..n).flat_map(move |at| {
            (1..=self.k_eff).map(move |d| (&self.slots[at].1, &self.slots[(at + d) % n].1))
        })
    }
}

/// The children of a node responsible for `span` consecutive positions of
/// a broadcast tree, itself at offset 0 (design §2.6): while the interval
/// `[a, b)` (at first `[0, span)`) holds more than the node itself, the
/// child at `c = a + ⌈(b − a) / 2⌉` takes `[c, b)` and the node keeps
/// `[a, c)`. Yields `(c, b − c)`: the child's offset from the node and its
/// span. At most ⌈log2 span⌉ children; the tree is ⌈log2 span⌉ deep.
/// A sender that cannot reach a child takes its interval back and halves it
/// the same way (`tree_children(child_span)` shifted by the child's offset,
/// without the child itself: stage 2's driver).
pub fn tree_children(span: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut b = span;
    std::iter::from_fn(move || {
        if b <= 1 {
            return None;
        }
        let c = b.div_ceil(2);
        let child = (c, b - c);
        b = c;
        Some(child)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn ids(n: usize) -> Vec<NodeId> {
        (0..n).map(|i| id(&format!("node-{i}"))).collect()
    }

    fn pair_set(ring: &Ring) -> BTreeSet<(NodeId, NodeId)> {
        ring.pairs().map(|(t, w)| (t.clone(), w.clone())).collect()
    }

    fn changed(a: &Ring, b: &Ring) -> usize {
        pair_set(a).symmetric_difference(&pair_set(b)).count()
    }

    /// Pinned values: a change here breaks mixed-version clusters (see the
    /// module doc). The expected numbers were computed independently of
    /// this crate (Python's `xxhash` package, `xxh3_64_intdigest` of the
    /// concatenated bytes, seed 0) and agree with `xxhash-rust`.
    #[test]
    fn i17_ring_positions_are_pinned_across_versions() {
        assert_eq!(RING_HASH_DOMAIN, b"monitor-ring");
        assert_eq!(ring_position(&id("node-a")), xxh3_64(b"monitor-ringnode-a"));
        assert_eq!(ring_position(&id("node-a")), PINNED_NODE_A);
        assert_eq!(ring_position(&id("10.0.0.7:4000")), PINNED_ADDR);
        assert_ne!(ring_position(&id("node-a")), ring_position(&id("node-b")));
    }

    const PINNED_NODE_A: u64 = 4_310_986_505_381_052_900;
    const PINNED_ADDR: u64 = 13_759_099_686_077_504_051;

    #[test]
    fn i17_watchers_are_the_k_successors_and_targets_the_k_predecessors() {
        let members = ids(8);
        let ring = Ring::new(&members, 3);
        assert_eq!(ring.len(), 8);
        assert_eq!(ring.k_eff(), 3);
        let order: Vec<NodeId> = ring.members().cloned().collect();
        let positions: Vec<u64> = order.iter().map(ring_position).collect();
        assert!(
            positions.windows(2).all(|w| w[0] <= w[1]),
            "sorted by position"
        );
        for (i, x) in order.iter().enumerate() {
            let watchers: Vec<&NodeId> = ring.watchers_of(x).unwrap().collect();
            let want: Vec<&NodeId> = (1..=3).map(|d| &order[(i + d) % 8]).collect();
            assert_eq!(watchers, want);
            let targets: Vec<&NodeId> = ring.watched_by(x).unwrap().collect();
            let want: Vec<&NodeId> = (1..=3).map(|d| &order[(i + 8 - d) % 8]).collect();
            assert_eq!(targets, want);
        }
        assert!(ring.watchers_of(&id("stranger")).is_none());
        assert!(ring.watched_by(&id("stranger")).is_none());
        assert!(!ring.contains(&id("stranger")));
    }

    #[test]
    fn i17_small_rings_watch_everyone_else() {
        let empty = Ring::new(&[], 5);
        assert!(empty.is_empty());
        assert_eq!(empty.pairs().count(), 0);

        let one = Ring::new(&ids(1), 5);
        assert_eq!(one.k_eff(), 0);
        assert_eq!(one.watchers_of(&id("node-0")).unwrap().len(), 0);

        for n in 2..=6 {
            let members = ids(n);
            let ring = Ring::new(&members, 5);
            assert_eq!(ring.k_eff(), (n - 1).min(5));
            // N ≤ k + 1: everyone else watches each member.
            for x in &members {
                let w: BTreeSet<&NodeId> = ring.watchers_of(x).unwrap().collect();
                let others: BTreeSet<&NodeId> = members.iter().filter(|m| *m != x).collect();
                assert_eq!(w, others, "N = {n}: everyone else watches {x}");
            }
        }
    }

    #[test]
    fn i17_a_join_in_a_large_ring_moves_exactly_3k_pairs() {
        let members = ids(200);
        let before = Ring::new(&members[..199], 5);
        let after = Ring::new(&members, 5);
        assert_eq!(changed(&before, &after), 15);
    }

    #[test]
    fn i17_from_topology_places_its_members() {
        use cluster_core::{Member, MemberAddress};
        let members: Vec<Member> = ids(7)
            .into_iter()
            .enumerate()
            .map(|(i, node_id)| {
                let port = 4000 + i as u16;
                Member::new(node_id, MemberAddress::new("127.0.0.1", port).unwrap(), 9)
            })
            .collect();
        let topology = Topology {
            members: members.into(),
            ..Topology::starting()
        };
        let ring = Ring::from_topology(&topology, 5);
        let direct = Ring::new(&ids(7), 5);
        assert_eq!(ring.len(), 7);
        assert_eq!(pair_set(&ring), pair_set(&direct));
    }

    fn ceil_log2(m: usize) -> usize {
        if m <= 1 {
            0
        } else {
            (usize::BITS - (m - 1).leading_zeros()) as usize
        }
    }

    /// Walks the tree of a root responsible for `[0, m)`, skipping the
    /// subtree of `failed` (an offset from the root); returns how often
    /// each offset was reached and the depth.
    fn walk(m: usize, failed: Option<usize>) -> (Vec<usize>, usize) {
        let mut reached = vec![0; m];
        reached[0] = 1;
        let mut depth = 0;
        let mut level = vec![(0usize, m)];
        while !level.is_empty() {
            let mut next = Vec::new();
            for (at, span) in level {
                let children: Vec<_> = tree_children(span).collect();
                assert!(children.len() <= ceil_log2(m), "m = {m}");
                for (offset, child_span) in children {
                    let child = at + offset;
                    assert!(child < m && child + child_span <= at + span);
                    if Some(child) == failed {
                        continue;
                    }
                    reached[child] += 1;
                    next.push((child, child_span));
                }
            }
            if !next.is_empty() {
                depth += 1;
            }
            level = next;
        }
        (reached, depth)
    }

    /// Law 12: every position once, depth and fan-out within ⌈log2 M⌉.
    #[test]
    fn i17_broadcast_tree_covers_every_position_once_within_log_depth() {
        assert_eq!(tree_children(0).count(), 0);
        assert_eq!(tree_children(1).count(), 0);
        assert_eq!(
            tree_children(8).collect::<Vec<_>>(),
            vec![(4, 4), (2, 2), (1, 1)]
        );
        for m in 1..=300 {
            let (reached, depth) = walk(m, None);
            assert!(reached.iter().all(|&r| r == 1), "m = {m}: {reached:?}");
            assert!(depth <= ceil_log2(m), "m = {m}: depth {depth}");
        }
    }

    /// Law 12: for any one failed relay, the forward and the backward tree
    /// of one root together reach every other position.
    #[test]
    fn i17_forward_and_backward_trees_survive_any_one_failed_relay() {
        for m in 2..=80 {
            for failed in 1..m {
                let (forward, _) = walk(m, Some(failed));
                // The backward tree's offset d is the forward position m − d.
                let (backward, _) = walk(m, Some(m - failed));
                for p in 1..m {
                    if p == failed {
                        continue;
                    }
                    let b = backward[m - p];
                    assert!(
                        forward[p] + b >= 1,
                        "m = {m}, failed {failed}: position {p} unreached"
                    );
                }
            }
        }
    }

    prop_compose! {
        fn member_ids(max: usize)(raw in prop::collection::vec("[a-z0-9]{1,6}", 0..max)) -> Vec<NodeId> {
            raw.iter().map(|s| id(s)).collect()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Law 1: a function of the member set (any order, duplicates
        /// ignored).
        #[test]
        fn i17_ring_is_a_function_of_the_member_set(
            (members, shuffled) in member_ids(60).prop_flat_map(|m| {
                // The same ids with a few repeated, in any order.
                let mut more = m.clone();
                more.extend(m.iter().take(3).cloned());
                (Just(m), Just(more).prop_shuffle())
            }),
            k in 1usize..=16,
        ) {
            let ring = Ring::new(&members, k);
            let again = Ring::new(&shuffled, k);
            prop_assert_eq!(ring.members().collect::<Vec<_>>(), again.members().collect::<Vec<_>>());
            prop_assert_eq!(pair_set(&ring), pair_set(&again));
        }

        /// Law 1: every member has min(k, N − 1) distinct watchers and as
        /// many targets, none of them itself; and the two queries are
        /// inverse: W watches X iff X is among W's targets.
        #[test]
        fn i17_every_member_has_k_eff_distinct_watchers_and_the_queries_are_inverse(
            members in member_ids(60),
            k in 1usize..=16,
        ) {
            let ring = Ring::new(&members, k);
            let n = ring.len();
            let distinct: BTreeSet<&NodeId> = members.iter().collect();
            prop_assert_eq!(n, distinct.len());
            let k_eff = k.min(n.saturating_sub(1));
            prop_assert_eq!(ring.k_eff(), k_eff);
            for x in ring.members() {
                let watchers: BTreeSet<&NodeId> = ring.watchers_of(x).unwrap().collect();
                let targets: BTreeSet<&NodeId> = ring.watched_by(x).unwrap().collect();
                prop_assert_eq!(watchers.len(), k_eff);
                prop_assert_eq!(targets.len(), k_eff);
                prop_assert!(!watchers.contains(x));
                prop_assert!(!targets.contains(x));
                for w in &watchers {
                    prop_assert!(ring.watched_by(w).unwrap().any(|t| t == x));
                }
                for t in &targets {
                    prop_assert!(ring.watchers_of(t).unwrap().any(|w| w == x));
                }
            }
            prop_assert_eq!(ring.pairs().count(), n * k_eff);
        }

        /// Law 2: one join or one leave changes at most 3k
        /// (target, watcher) pairs, whatever N.
        #[test]
        fn i17_one_join_or_leave_moves_at_most_3k_pairs(
            members in member_ids(80),
            k in 1usize..=16,
            newcomer in "[a-z0-9]{1,6}",
        ) {
            let newcomer = id(&newcomer);
            let without: Vec<NodeId> = members.iter().filter(|m| **m != newcomer).cloned().collect();
            let mut with = without.clone();
            with.push(newcomer);
            let before = Ring::new(&without, k);
            let after = Ring::new(&with, k);
            // A join is before → after, its leave after → before: the
            // symmetric difference is the same set of pairs.
            prop_assert!(changed(&before, &after) <= 3 * k,
                "N = {}, k = {}: {} pairs moved", before.len(), k, changed(&before, &after));
        }

        /// Law 12 on a ring: a verdict about any target (a member or not),
        /// from any root, in either direction, reaches every member but
        /// the target exactly once, within ⌈log2 M⌉ hops.
        #[test]
        fn i17_a_verdict_reaches_every_member_but_the_target_once(
            members in member_ids(70),
            root_pick in any::<prop::sample::Index>(),
            target_pick in any::<prop::sample::Index>(),
            target_is_member in any::<bool>(),
            backward in any::<bool>(),
        ) {
            let ring = Ring::new(&members, 5);
            prop_assume!(ring.len() >= 2 || !target_is_member);
            prop_assume!(!ring.is_empty());
            let order: Vec<&NodeId> = ring.members().collect();
            let root = order[root_pick.index(order.len())];
            let target = if target_is_member {
                let others: Vec<&NodeId> = order.iter().copied().filter(|m| *m != root).collect();
                others[target_pick.index(others.len())].clone()
            } else {
                id("not-a-member-")
            };
            let m = ring.broadcast_span(&target);
            let mut reached: HashMap<&NodeId, usize> = HashMap::new();
            reached.insert(root, 1);
            let mut level = vec![(root, m)];
            let mut depth = 0;
            while !level.is_empty() {
                let mut next = Vec::new();
                for (node, span) in level {
                    for (child, child_span) in ring.broadcast_children(node, &target, span, backward).unwrap() {
                        prop_assert!(child != &target);
                        *reached.entry(child).or_default() += 1;
                        next.push((child, child_span));
                    }
                }
                if !next.is_empty() {
                    depth += 1;
                }
                level = next;
            }
            prop_assert!(depth <= ceil_log2(m));
            for x in &order {
                let want = usize::from(**x != target);
                prop_assert_eq!(reached.get(x).copied().unwrap_or(0), want, "{}", x);
            }
            prop_assert!(ring.broadcast_children(&target, &target, m, backward).is_none());
        }
    }
}
