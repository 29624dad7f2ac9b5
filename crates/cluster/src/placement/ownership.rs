//! Ownership: the one place it is computed from the follower's view, the
//! history of tables a new activation asks to release a grain, and the
//! release block.

use super::*;

/// Tables kept to find a grain's previous owners.
pub(super) const HISTORY: usize = 4;

/// How long a released grain stays blocked here while the views disagree.
pub(super) const RELEASE_BLOCK: Duration = Duration::from_secs(10);

/// Released grains remembered at most (a peer cannot grow the map without
/// bound).
pub(super) const MAX_RELEASED: usize = 100_000;

/// The ownership under what `follower` knows: the one place it is computed
/// (the PartitionManager receives the result). The view's members, without
/// an incarnation quarantined ahead of the view (A6: not routed to from the
/// moment the quarantine is known, before its topology arrives).
pub(super) fn ownership(follower: &TopologyFollower) -> PartitionTable {
    let view = follower.view();
    let quarantined = |m: &Member| {
        follower
            .pending_quarantines()
            .iter()
            .any(|q| q.node == m.node_id && q.incarnation == m.incarnation)
    };
    if view.members.iter().any(quarantined) {
        PartitionTable::from_members(
            view.members.iter().filter(|m| !quarantined(m)).cloned(),
            view.seq_no,
            view.status,
        )
    } else {
        PartitionTable::from_topology(view)
    }
}

/// The members a new activation of `(kind, id)` on `local` asks to release
/// the grain: the rendezvous runner-up among the current members (who owned
/// it before `local` joined; a node that just joined has no older table to
/// ask it from), then the owners under the older tables `history` (newest
/// first), each once, never `local`, and only those still members of
/// `table` (a member that left has saved before it deregistered; one that
/// crashed has nothing to release).
pub(super) fn previous_owners(
    table: &PartitionTable,
    history: &VecDeque<Arc<PartitionTable>>,
    local: &NodeId,
    kind: &str,
    id: &str,
) -> Vec<NodeId> {
    let runner_up = table
        .members()
        .iter()
        .filter(|m| &m.node_id != local)
        .max_by_key(|m| {
            (
                crate::partition::weight(&m.node_id, kind, id),
                m.node_id.clone(),
            )
        })
        .map(|m| m.node_id.clone());
    let older = history
        .iter()
        .filter_map(|old| old.place(kind, id, None).ok().map(|m| m.node_id.clone()));
    let mut asked: Vec<NodeId> = Vec::new();
    for owner in runner_up.into_iter().chain(older) {
        if &owner != local
            && !asked.contains(&owner)
            && table.members().iter().any(|m| m.node_id == owner)
        {
            asked.push(owner);
        }
    }
    asked
}

/// Keeps `prev` (the table `next` replaces) in `history`, newest first, at
/// most [`HISTORY`], unless its membership is `next`'s (a status change, a
/// recompute of the same members): duplicates would push out older owners
/// and shorten [`previous_owners`]' reach.
pub(super) fn push_history(
    history: &mut VecDeque<Arc<PartitionTable>>,
    prev: Arc<PartitionTable>,
    next: &PartitionTable,
) {
    if prev.hash() == next.hash() && prev.members() == next.members() {
        return;
    }
    history.push_front(prev);
    history.truncate(HISTORY);
}

/// Whether this node's view `table` disagrees with `asker`'s claim to own
/// `(kind, id)`: it does not list the asker, or it names this node the
/// owner.
pub(super) fn views_disagree(
    table: &PartitionTable,
    local: &NodeId,
    asker: &NodeId,
    kind: &str,
    id: &str,
) -> bool {
    let lists_asker = table.members().iter().any(|m| &m.node_id == asker);
    let we_own = table.owner(kind, id).is_some_and(|m| &m.node_id == local);
    !lists_asker || we_own
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::{MemberAddress, ProvisioningStatus};

    pub(super) fn table(names: &[&str], seq_no: u64) -> PartitionTable {
        let members = names.iter().enumerate().map(|(i, n)| {
            Member::new(
                NodeId::new(n).expect("id"),
                MemberAddress::new("127.0.0.1", 4000 + u16::try_from(i).expect("few"))
                    .expect("addr"),
                1,
            )
        });
        PartitionTable::from_members(members, seq_no, ProvisioningStatus::Active)
    }

    pub(super) fn nid(n: &str) -> NodeId {
        NodeId::new(n).expect("id")
    }

    /// An identity `local` owns in `t`, found by search.
    pub(super) fn owned_by(t: &PartitionTable, local: &str) -> String {
        (0..10_000)
            .map(|i| format!("g-{i}"))
            .find(|id| {
                t.owner("k", id)
                    .is_some_and(|m| m.node_id.as_str() == local)
            })
            .expect("some identity")
    }

    /// Issue 18: after a join, the joiner asks the member that owned the
    /// grain before it joined (the rendezvous runner-up), though it has no
    /// older table; owners under older tables are asked once each, never
    /// itself, and only while they are members.
    #[test]
    pub(super) fn g18_previous_owners_are_the_runner_up_and_older_owners_still_listed() {
        let before = table(&["a", "b"], 1);
        let after = table(&["a", "b", "c"], 2);
        let id = owned_by(&after, "c");
        let old_owner = before.owner("k", &id).expect("owner").node_id.clone();
        // A joiner without history asks the previous owner all the same.
        let asked = previous_owners(&after, &VecDeque::new(), &nid("c"), "k", &id);
        assert_eq!(asked, vec![old_owner.clone()]);
        // With history naming the same owner: asked once.
        let history: VecDeque<_> = [Arc::new(before.clone())].into();
        assert_eq!(
            previous_owners(&after, &history, &nid("c"), "k", &id),
            vec![old_owner.clone()]
        );
        // A previous owner that is gone from the current table is not asked.
        let without = table(&["c", if old_owner.as_str() == "a" { "b" } else { "a" }], 3);
        assert!(
            !previous_owners(&without, &history, &nid("c"), "k", &id).contains(&old_owner),
            "a member that left is not asked"
        );
        // Never oneself.
        let id_a = owned_by(&after, "a");
        assert!(!previous_owners(&after, &history, &nid("a"), "k", &id_a).contains(&nid("a")));
    }

    /// Issue 18: recomputes of the same membership (a status change, a
    /// quarantine recompute followed by its topology) keep no duplicate in
    /// the history, so the four entries reach four distinct memberships.
    #[test]
    pub(super) fn g18_history_keeps_distinct_memberships_only() {
        let mut history = VecDeque::new();
        let ab = Arc::new(table(&["a", "b"], 1));
        let abc = table(&["a", "b", "c"], 2);
        push_history(&mut history, ab.clone(), &abc);
        assert_eq!(history.len(), 1);
        // The same members again (another seq_no, another status): skipped.
        for seq_no in 3..10 {
            let same = Arc::new(table(&["a", "b", "c"], seq_no));
            let next = PartitionTable::from_members(
                same.members().to_vec(),
                seq_no + 1,
                ProvisioningStatus::Degraded,
            );
            push_history(&mut history, same, &next);
        }
        assert_eq!(history.len(), 1, "no duplicates: {history:?}");
        assert!(Arc::ptr_eq(&history[0], &ab));
        // Distinct memberships: kept, newest first, at most HISTORY.
        for (i, names) in [&["a"][..], &["a", "c"], &["b"], &["c"], &["d"]]
            .iter()
            .enumerate()
        {
            let prev = Arc::new(table(names, 20 + i as u64));
            push_history(&mut history, prev, &abc);
        }
        assert_eq!(history.len(), HISTORY);
        assert_eq!(history[0].members()[0].node_id.as_str(), "d");
    }

    /// Issue 18: a released grain stays blocked only while this node's view
    /// disagrees with the asker's (it does not list the asker, or still
    /// names this node the owner); seq_nos are not compared across nodes.
    #[test]
    pub(super) fn g18_views_disagree_by_membership_and_ownership() {
        let old = table(&["a", "b"], 9);
        let new = table(&["a", "b", "c"], 1);
        let id = owned_by(&new, "c");
        let owner_before = old.owner("k", &id).expect("owner").node_id.clone();
        // The old owner has not seen c join: disagree.
        assert!(views_disagree(&old, &owner_before, &nid("c"), "k", &id));
        // Once it lists c, which owns the grain: agree (whatever the seq_nos).
        assert!(!views_disagree(&new, &owner_before, &nid("c"), "k", &id));
        // If its view still names itself the owner: disagree.
        let id_own = owned_by(&new, owner_before.as_str());
        assert!(views_disagree(&new, &owner_before, &nid("c"), "k", &id_own));
    }
}
