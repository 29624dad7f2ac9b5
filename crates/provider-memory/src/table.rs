//! The shared membership table.

use std::fmt;
use std::sync::Arc;

use cluster_core::{Member, NodeId};
use tokio::sync::watch;

/// What the table broadcasts to its watchers: a version that grows by one on
/// every real change, and the full member list sorted by node id.
///
/// The list is immutable and shared (issue 17): a watcher's snapshot is this
/// very `Arc`, so the supervisor keeps and publishes it without a copy; a
/// change builds the next list once (the members are cloned into it, the
/// changed one replaced), and a keepalive re-sends the same `Arc`.
#[derive(Clone, Debug)]
pub(crate) struct TableState {
    /// Bumped once per change that altered the member list.
    pub(crate) version: u64,
    /// Every member, sorted by node id, at most one per node id.
    pub(crate) members: Arc<[Member]>,
}

impl Default for TableState {
    fn default() -> Self {
        Self {
            version: 0,
            members: Arc::from(Vec::new()),
        }
    }
}

impl TableState {
    /// Where `id` is (`Ok`) or would be inserted (`Err`).
    fn position(&self, id: &NodeId) -> Result<usize, usize> {
        self.members.binary_search_by(|m| m.node_id.cmp(id))
    }

    /// The next list: the current one with the members in `drop` replaced
    /// by `insert` (a replacement, an insertion at `drop.start` when `drop`
    /// is empty, a removal when `insert` is `None`). One allocation of the
    /// exact size, the other members cloned into it.
    fn rebuild(&mut self, drop: std::ops::Range<usize>, insert: Option<Member>) {
        let old = &self.members;
        let next: Arc<[Member]> = old[..drop.start]
            .iter()
            .cloned()
            .chain(insert)
            .chain(old[drop.end..].iter().cloned())
            .collect();
        self.members = next;
    }
}

/// A table of [`Member`]s keyed by [`NodeId`], shared by every node of one
/// process.
///
/// Cloning is cheap and every clone sees the same table: hand one clone to
/// each [`MemoryProvider`](crate::MemoryProvider). Each change that alters
/// the list bumps [`version`](Self::version) and wakes every watch stream; a
/// change that leaves the list as it was (upserting an identical member,
/// removing an absent one) wakes nobody.
#[derive(Clone)]
pub struct MembershipTable {
    tx: Arc<watch::Sender<TableState>>,
}

impl MembershipTable {
    /// An empty table at version 0.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(TableState::default());
        Self { tx: Arc::new(tx) }
    }

    /// Inserts `member`, or replaces the member with the same node id.
    /// Returns the member it replaced, if any.
    pub fn upsert(&self, member: Member) -> Option<Member> {
        let mut previous = None;
        self.tx
            .send_if_modified(|st| match st.position(&member.node_id) {
                Ok(i) if st.members[i] == member => {
                    previous = Some(member);
                    false
                }
                Ok(i) => {
                    previous = Some(st.members[i].clone());
                    st.rebuild(i..i + 1, Some(member));
                    st.version += 1;
                    true
                }
                Err(i) => {
                    st.rebuild(i..i, Some(member));
                    st.version += 1;
                    true
                }
            });
        previous
    }

    /// Removes the member with node id `id` and returns it.
    pub fn remove(&self, id: &NodeId) -> Option<Member> {
        self.remove_if(id, |_| true)
    }

    /// Removes the member with node id `id` only if its incarnation is
    /// `incarnation`, and returns it. A restarted node (new incarnation) is
    /// therefore not removed by its former self leaving late.
    pub fn remove_incarnation(&self, id: &NodeId, incarnation: u64) -> Option<Member> {
        self.remove_if(id, |m| m.incarnation == incarnation)
    }

    fn remove_if(&self, id: &NodeId, pred: impl FnOnce(&Member) -> bool) -> Option<Member> {
        let mut removed = None;
        self.tx.send_if_modified(|st| match st.position(id) {
            Ok(i) if pred(&st.members[i]) => {
                removed = Some(st.members[i].clone());
                st.rebuild(i..i + 1, None);
                st.version += 1;
                true
            }
            _ => false,
        });
        removed
    }

    /// The member with node id `id`, if present.
    pub fn get(&self, id: &NodeId) -> Option<Member> {
        let st = self.tx.borrow();
        st.position(id).ok().map(|i| st.members[i].clone())
    }

    /// Every member, sorted by node id.
    pub fn members(&self) -> Vec<Member> {
        self.tx.borrow().members.to_vec()
    }

    /// Every member, sorted by node id: the table's own list, shared (no
    /// copy). Watch streams deliver this same `Arc`.
    pub fn shared_members(&self) -> Arc<[Member]> {
        self.tx.borrow().members.clone()
    }

    /// How many members the table holds.
    pub fn len(&self) -> usize {
        self.tx.borrow().members.len()
    }

    /// Whether the table holds no member.
    pub fn is_empty(&self) -> bool {
        self.tx.borrow().members.is_empty()
    }

    /// Removes every member.
    pub fn clear(&self) {
        self.tx.send_if_modified(|st| {
            if st.members.is_empty() {
                return false;
            }
            st.members = Arc::from(Vec::new());
            st.version += 1;
            true
        });
    }

    /// The backend lost all its data (restarted empty, restored from an
    /// empty backup): every member is removed in one change, as with
    /// [`clear`](Self::clear), and every node's provider over this table
    /// sees it. Nothing registers again by itself: the nodes' supervisors
    /// must notice that they are missing and register again.
    pub fn lose_all_data(&self) {
        self.clear();
    }

    /// Replaces the whole content with `members` in one change (watchers see
    /// no intermediate state). If several members share a node id, the last
    /// one wins.
    pub fn replace_all(&self, members: Vec<Member>) {
        let mut members = members;
        // Reverse, then a stable sort and a dedup that keeps the first of
        // each run: the survivor is the last occurrence in the input.
        members.reverse();
        members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        members.dedup_by(|later, earlier| later.node_id == earlier.node_id);
        self.tx.send_if_modified(|st| {
            if *st.members == *members {
                return false;
            }
            st.members = Arc::from(members);
            st.version += 1;
            true
        });
    }

    /// The number of changes made so far; 0 for a new table.
    pub fn version(&self) -> u64 {
        self.tx.borrow().version
    }

    /// A receiver of every change, with the current state marked as seen.
    pub(crate) fn subscribe(&self) -> watch::Receiver<TableState> {
        self.tx.subscribe()
    }
}

impl Default for MembershipTable {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MembershipTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.tx.borrow();
        f.debug_struct("MembershipTable")
            .field("version", &st.version)
            .field("members", &st.members.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::MemberAddress;

    fn member(id: &str, incarnation: u64) -> Member {
        Member::new(
            NodeId::new(id).unwrap(),
            MemberAddress::new("127.0.0.1", 4000).unwrap(),
            incarnation,
        )
    }

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn ids(t: &MembershipTable) -> Vec<String> {
        t.members()
            .iter()
            .map(|m| m.node_id.as_str().to_owned())
            .collect()
    }

    /// P1: upsert inserts a new node and replaces an existing one by node id,
    /// returning what it replaced.
    #[test]
    fn p1_upsert_inserts_new_and_replaces_by_node_id() {
        let t = MembershipTable::new();
        assert_eq!(t.upsert(member("a", 1)), None);
        assert_eq!(t.upsert(member("a", 2)), Some(member("a", 1)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(&id("a")), Some(member("a", 2)));
    }

    /// P1: remove returns the removed member, and None for an absent one.
    #[test]
    fn p1_remove_returns_the_removed_member() {
        let t = MembershipTable::new();
        t.upsert(member("a", 1));
        assert_eq!(t.remove(&id("a")), Some(member("a", 1)));
        assert_eq!(t.remove(&id("a")), None);
        assert!(t.is_empty());
    }

    /// P1: remove_incarnation leaves a member with another incarnation alone.
    #[test]
    fn p1_remove_incarnation_only_removes_a_matching_incarnation() {
        let t = MembershipTable::new();
        t.upsert(member("a", 2));
        assert_eq!(t.remove_incarnation(&id("a"), 1), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove_incarnation(&id("a"), 2), Some(member("a", 2)));
        assert!(t.is_empty());
    }

    /// P1: members() is sorted by node id whatever the insertion order.
    #[test]
    fn p1_members_are_sorted_by_node_id() {
        let t = MembershipTable::new();
        for n in ["c", "a", "d", "b"] {
            t.upsert(member(n, 1));
        }
        assert_eq!(ids(&t), ["a", "b", "c", "d"]);
    }

    /// P1: len, is_empty and clear agree.
    #[test]
    fn p1_len_is_empty_and_clear() {
        let t = MembershipTable::new();
        assert_eq!((t.len(), t.is_empty()), (0, true));
        t.upsert(member("a", 1));
        t.upsert(member("b", 1));
        assert_eq!((t.len(), t.is_empty()), (2, false));
        t.clear();
        assert_eq!((t.len(), t.is_empty()), (0, true));
    }

    /// P1: replace_all swaps the whole content, sorts it, and keeps the last
    /// of duplicate node ids.
    #[test]
    fn p1_replace_all_swaps_content_sorted_with_last_duplicate_winning() {
        let t = MembershipTable::new();
        t.upsert(member("z", 1));
        t.replace_all(vec![member("b", 1), member("a", 1), member("b", 7)]);
        assert_eq!(t.members(), vec![member("a", 1), member("b", 7)]);
    }

    /// P1: the version grows once per real change and not for no-ops, so
    /// watchers are not woken for nothing.
    #[test]
    fn p1_version_bumps_only_on_real_changes() {
        let t = MembershipTable::new();
        assert_eq!(t.version(), 0);
        t.upsert(member("a", 1));
        assert_eq!(t.version(), 1);
        t.upsert(member("a", 1));
        t.remove(&id("nobody"));
        t.remove_incarnation(&id("a"), 9);
        t.replace_all(vec![member("a", 1)]);
        assert_eq!(t.version(), 1);
        t.clear();
        t.clear();
        assert_eq!(t.version(), 2);
        t.replace_all(vec![member("b", 1)]);
        assert_eq!(t.version(), 3);
    }

    /// P1: clones share one table (several nodes in one process).
    #[test]
    fn p1_clones_share_one_table() {
        let t = MembershipTable::default();
        let u = t.clone();
        u.upsert(member("a", 1));
        assert_eq!(ids(&t), ["a"]);
        assert!(format!("{t:?}").contains("members: 1"));
    }
}
