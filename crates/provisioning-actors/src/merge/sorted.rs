//! Walks over member lists sorted by node id (one member per id): the diff,
//! lookups, interning and the k-way union, each one linear pass or a binary
//! search. Used by [`TopologyMerger`](super::TopologyMerger).

use std::cmp::Ordering;

use std::sync::Arc;

use cluster_core::{BlockedMember, Member, NodeId, TopologyDiff, TopologyHash, canonicalize};

/// The diff from `before` to `after`, both sorted by node id with one member
/// per node id, and blocked lists both sorted: the same result as
/// [`TopologyDiff::between`] in one linear walk.
pub fn diff_sorted(
    before: &[Member],
    after: &[Member],
    blocked_before: &[BlockedMember],
    blocked_after: &[BlockedMember],
) -> TopologyDiff {
    let mut diff = TopologyDiff::default();
    if !std::ptr::eq(before, after) {
        let (mut i, mut j) = (0, 0);
        while i < before.len() || j < after.len() {
            let ord = match (before.get(i), after.get(j)) {
                (Some(b), Some(a)) => id_cmp(&b.node_id, &a.node_id),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match ord {
                Ordering::Less => {
                    diff.left.push(before[i].clone());
                    i += 1;
                }
                Ordering::Greater => {
                    diff.joined.push(after[j].clone());
                    j += 1;
                }
                Ordering::Equal => {
                    if !same_member(&before[i], &after[j]) {
                        diff.changed.push(after[j].clone());
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < blocked_before.len() || j < blocked_after.len() {
        match (blocked_before.get(i), blocked_after.get(j)) {
            (Some(b), Some(a)) if b == a => {
                i += 1;
                j += 1;
            }
            (Some(b), Some(a)) if b < a => {
                diff.unblocked.push(b.clone());
                i += 1;
            }
            (Some(b), None) => {
                diff.unblocked.push(b.clone());
                i += 1;
            }
            (_, Some(a)) => {
                diff.blocked.push(a.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    diff
}

/// `a == b`, cheapest fields first (the same member, cloned into the next
/// list of a provider, differs in none): the integers, the node id (by
/// pointer when interned), the host, then roles and labels only when one
/// of them has any.
pub(super) fn same_member(a: &Member, b: &Member) -> bool {
    if std::ptr::eq(a, b) {
        return true;
    }
    a.incarnation == b.incarnation
        && a.address.port == b.address.port
        && id_cmp(&a.node_id, &b.node_id) == Ordering::Equal
        && a.address.host == b.address.host
        && a.roles.len() == b.roles.len()
        && a.labels.len() == b.labels.len()
        && (a.roles.is_empty() || a.roles == b.roles)
        && (a.labels.is_empty() || a.labels == b.labels)
}

/// Node id order, with a pointer shortcut for interned ids.
pub(super) fn id_cmp(a: &NodeId, b: &NodeId) -> Ordering {
    let (a, b) = (a.as_str(), b.as_str());
    if std::ptr::eq(a, b) {
        Ordering::Equal
    } else {
        a.cmp(b)
    }
}

pub(super) fn search(members: &[Member], node: &NodeId) -> Result<usize, usize> {
    members.binary_search_by(|m| id_cmp(&m.node_id, node))
}

pub(super) fn find<'a>(members: &'a [Member], node: &NodeId) -> Option<&'a Member> {
    search(members, node).ok().map(|i| &members[i])
}

/// Replaces node ids in `members` by the equal ones of `reference` (both
/// sorted), so copies share one allocation and compare by pointer.
pub(super) fn intern_ids(members: &mut [Member], reference: &[Member]) {
    let mut j = 0;
    for m in members.iter_mut() {
        while j < reference.len() && id_cmp(&reference[j].node_id, &m.node_id) == Ordering::Less {
            j += 1;
        }
        match reference.get(j) {
            Some(r) if id_cmp(&r.node_id, &m.node_id) == Ordering::Equal => {
                m.node_id = r.node_id.clone();
            }
            Some(_) => {}
            None => return,
        }
    }
}

/// Node ids of `before` missing from `after` (both sorted).
pub(super) fn removed_ids<'a>(before: &'a [Member], after: &[Member]) -> Vec<&'a NodeId> {
    let mut out = Vec::new();
    let mut j = 0;
    for m in before {
        while j < after.len() && id_cmp(&after[j].node_id, &m.node_id) == Ordering::Less {
            j += 1;
        }
        if after
            .get(j)
            .is_none_or(|a| id_cmp(&a.node_id, &m.node_id) != Ordering::Equal)
        {
            out.push(&m.node_id);
        }
    }
    out
}

/// How many of `ids` (sorted) `members` (sorted) lists.
pub(super) fn count_listed(ids: &[&NodeId], members: &[Member]) -> usize {
    let mut j = 0;
    let mut n = 0;
    for id in ids {
        while j < members.len() && id_cmp(&members[j].node_id, id) == Ordering::Less {
            j += 1;
        }
        if members
            .get(j)
            .is_some_and(|m| id_cmp(&m.node_id, id) == Ordering::Equal)
        {
            n += 1;
        }
    }
    n
}

/// A k-way merge of sorted lists given in preference order: for each node
/// id, (list, index) of the first list that has it.
pub(super) fn union_picks(lists: &[&[Member]]) -> Vec<(u32, u32)> {
    let mut cursor = vec![0usize; lists.len()];
    let mut picks = Vec::with_capacity(lists.iter().map(|l| l.len()).max().unwrap_or(0));
    loop {
        let mut best: Option<(usize, &NodeId)> = None;
        for (s, list) in lists.iter().enumerate() {
            if let Some(m) = list.get(cursor[s])
                && best.is_none_or(|(_, id)| id_cmp(&m.node_id, id) == Ordering::Less)
            {
                best = Some((s, &m.node_id));
            }
        }
        let Some((s, id)) = best else {
            break;
        };
        picks.push((s as u32, cursor[s] as u32));
        for (t, list) in lists.iter().enumerate() {
            if list
                .get(cursor[t])
                .is_some_and(|m| id_cmp(&m.node_id, id) == Ordering::Equal)
            {
                cursor[t] += 1;
            }
        }
    }
    picks
}

/// `members` without the (ascending) indices in `removed`.
pub(super) fn without(members: &[Member], removed: &[u32]) -> Vec<Member> {
    let mut out = Vec::with_capacity(members.len().saturating_sub(removed.len()));
    let mut skip = removed.iter().peekable();
    for (i, m) in members.iter().enumerate() {
        if skip.peek().is_some_and(|&&r| r as usize == i) {
            skip.next();
        } else {
            out.push(m.clone());
        }
    }
    out
}

/// Whether `members` is canonical: strictly sorted by node id (so one
/// member per id).
pub(super) fn strictly_sorted(members: &[Member]) -> bool {
    members
        .windows(2)
        .all(|w| id_cmp(&w[0].node_id, &w[1].node_id) == Ordering::Less)
}

/// `members` in canonical form ([`canonicalize`]): sorted in place when the
/// list is not shared and holds one member per id, else copied once.
pub(super) fn canonical(mut members: Arc<[Member]>) -> Arc<[Member]> {
    if let Some(list) = Arc::get_mut(&mut members) {
        // The order `canonicalize` sorts by.
        list.sort_by(|a, b| {
            a.node_id
                .cmp(&b.node_id)
                .then(b.incarnation.cmp(&a.incarnation))
                .then_with(|| b.cmp(a))
        });
        if strictly_sorted(list) {
            return members;
        }
    }
    let mut list = members.to_vec();
    canonicalize(&mut list);
    Arc::from(list)
}

/// What a refresh changed against the list it was compared with: the
/// members that joined, left (their old version) and changed (their new
/// version), as [`diff_sorted`] would list them.
#[derive(Clone, Debug, Default)]
pub(super) struct Changes {
    pub(super) joined: Vec<Member>,
    pub(super) left: Vec<Member>,
    pub(super) changed: Vec<Member>,
}

/// The hash of `new` from the hash `old_hash` of `old` (`old` canonical):
/// one walk comparing the two lists (members by pointer first), and
/// [`TopologyHash::replace`] for each member that left, joined or changed;
/// past a quarter of the list changed, the hash of `new` from scratch (the
/// same value, cheaper then). Returns whether the lists are equal, the hash
/// of `new`, and what changed (`None` past that quarter); or `None` when
/// `new` is not canonical (strictly sorted by node id), which the same walk
/// finds: two neighbours of `new` that both matched members of `old` are in
/// order because `old` is, the others are compared.
pub(super) fn rehash(
    new: &[Member],
    old: &[Member],
    old_hash: TopologyHash,
) -> Option<(bool, TopologyHash, Option<Changes>)> {
    if std::ptr::eq(new, old) {
        return Some((true, old_hash, Some(Changes::default())));
    }
    let limit = new.len() / 4 + 8;
    let mut changes = Changes::default();
    let mut hash = old_hash;
    let (mut i, mut j) = (0, 0);
    // Whether new[j - 1] matched a member of `old`.
    let mut matched = false;
    let in_order = |j: usize, matched_both: bool| {
        j == 0 || matched_both || id_cmp(&new[j - 1].node_id, &new[j].node_id) == Ordering::Less
    };
    while i < old.len() || j < new.len() {
        let ord = match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) => id_cmp(&o.node_id, &n.node_id),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ord {
            Ordering::Less => {
                hash = hash.replace(Some(&old[i]), None);
                changes.left.push(old[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                if !in_order(j, false) {
                    return None;
                }
                hash = hash.replace(None, Some(&new[j]));
                changes.joined.push(new[j].clone());
                matched = false;
                j += 1;
            }
            Ordering::Equal => {
                if !in_order(j, matched) {
                    return None;
                }
                if !same_member(&old[i], &new[j]) {
                    hash = hash.replace(Some(&old[i]), Some(&new[j]));
                    changes.changed.push(new[j].clone());
                }
                matched = true;
                i += 1;
                j += 1;
            }
        }
        if changes.joined.len() + changes.left.len() + changes.changed.len() > limit {
            return strictly_sorted(new).then(|| (false, TopologyHash::of_sorted(new), None));
        }
    }
    let equal = changes.joined.is_empty() && changes.left.is_empty() && changes.changed.is_empty();
    Some((equal, hash, Some(changes)))
}
