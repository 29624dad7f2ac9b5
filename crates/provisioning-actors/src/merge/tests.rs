//! Unit and property tests of the merge rules (module docs of `merge`).

use std::time::Duration;

use cluster_core::{MemberAddress, canonicalize};
use proptest::prelude::*;

use super::*;

fn nid(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn pid(s: &str) -> ProviderId {
    ProviderId::new(s).unwrap()
}

fn mem(id: &str, inc: u64) -> Member {
    Member::new(nid(id), MemberAddress::new("10.0.0.1", 4000).unwrap(), inc)
}

fn list(ids: &[&str]) -> Vec<Member> {
    ids.iter().map(|i| mem(i, 1)).collect()
}

fn blk(id: &str, inc: u64) -> BlockedMember {
    key(&nid(id), inc)
}

fn names(t: &Topology) -> Vec<String> {
    t.members
        .iter()
        .map(|m| format!("{}@{}", m.node_id, m.incarnation))
        .collect()
}

/// A merger with providers `a` (priority 0) and `b` (priority 1), both
/// healthy, `a` active, and a caller-side seq_no counter.
struct Lab {
    merger: TopologyMerger,
    providers: Vec<ProviderInput>,
    active: Option<ProviderId>,
    seq: u64,
}

impl Lab {
    fn new(config: MergeConfig) -> Self {
        Self {
            merger: TopologyMerger::new(config),
            providers: vec![
                ProviderInput::new(pid("a"), 0, true),
                ProviderInput::new(pid("b"), 1, true),
            ],
            active: Some(pid("a")),
            seq: 0,
        }
    }

    fn refresh(&mut self, provider: &str, members: Vec<Member>) -> RefreshInfo {
        self.merger.on_refresh(&pid(provider), members)
    }

    fn healthy(&mut self, provider: &str, healthy: bool) {
        for p in &mut self.providers {
            if p.id.as_str() == provider {
                p.healthy = healthy;
            }
        }
    }

    fn merge(&mut self) -> MergeOutcome {
        let out = self
            .merger
            .merge(&self.providers, self.active.as_ref(), self.seq + 1);
        if out.changed {
            self.seq += 1;
        }
        out
    }
}

fn ten() -> Vec<Member> {
    list(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])
}

fn held(out: &MergeOutcome) -> &HoldReason {
    match &out.decision {
        MergeDecision::Held { reason } => reason,
        other => panic!("expected Held, got {other:?}"),
    }
}

/// Priority: the active provider's members, sorted, hashed with
/// `of_sorted`, shared with its snapshot (no copy).
#[test]
fn priority_publishes_the_active_snapshot_sorted_and_hashed() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", list(&["c", "a", "b"]));
    lab.refresh("b", list(&["x"]));
    let out = lab.merge();
    let t = &out.topology;
    assert_eq!(out.decision, MergeDecision::Applied);
    assert!(out.changed);
    assert_eq!(names(t), ["a@1", "b@1", "c@1"]);
    assert_eq!(t.hash, TopologyHash::of_sorted(&t.members));
    assert_eq!(t.status, ProvisioningStatus::Active);
    assert_eq!((t.seq_no, t.active_provider.clone()), (1, Some(pid("a"))));
    assert!(!t.stale);
    assert_eq!(out.diff.joined.len(), 3);
    assert_eq!(out.previous_hash, Topology::starting().hash);
    let snap = lab.merger.snapshot(&pid("a")).unwrap();
    assert!(Arc::ptr_eq(&t.members, snap.members()));
    assert_eq!(snap.hash(), t.hash);
}

/// R2.3: identical input (merged again, or re-delivered in another
/// order) publishes nothing: `changed == false`, same topology and
/// seq_no, empty diff.
#[test]
fn identical_input_publishes_nothing() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", list(&["a", "b"]));
    let first = lab.merge();
    let again = lab.merge();
    assert!(!again.changed);
    assert!(again.diff.is_empty());
    assert!(Arc::ptr_eq(&first.topology, &again.topology));
    let info = lab.refresh("a", list(&["b", "a", "b"]));
    assert!(info.unchanged());
    let third = lab.merge();
    assert!(!third.changed);
    assert_eq!(third.topology.seq_no, 1, "seq_no only moves on a change");
}

/// R2.3: a changed member changes the hash; the diff names it.
#[test]
fn a_changed_member_changes_hash_and_diff() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", list(&["a", "b"]));
    let first = lab.merge();
    let mut next = list(&["a", "b"]);
    next[1].address.port = 4001;
    let info = lab.refresh("a", next.clone());
    assert_eq!(info.previous_hash, Some(first.topology.hash));
    let out = lab.merge();
    assert!(out.changed);
    assert_eq!(out.previous_hash, first.topology.hash);
    assert_ne!(out.topology.hash, first.topology.hash);
    assert_eq!(out.diff.changed, vec![next[1].clone()]);
    assert!(out.diff.joined.is_empty() && out.diff.left.is_empty());
    assert_eq!(out.topology.seq_no, 2);
}

/// R2.4: an empty snapshot that no healthy provider disputes empties
/// the topology at once (status Empty).
#[test]
fn undisputed_empty_snapshot_marks_the_topology_empty() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", ten());
    lab.refresh("b", ten());
    lab.merge();
    lab.healthy("b", false); // an unhealthy provider does not dispute
    lab.refresh("a", Vec::new());
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::Applied);
    assert!(out.changed);
    assert_eq!(out.topology.status, ProvisioningStatus::Empty);
    assert!(out.topology.members.is_empty());
    assert_eq!(out.diff.left.len(), 10);
}

/// Glitch rule: an empty snapshot disputed by a healthy provider is
/// held once; merges without a new refresh do not confirm it; the next
/// empty refresh does (R2.4 then applies).
#[test]
fn disputed_empty_snapshot_is_held_until_the_next_refresh_confirms_it() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", ten());
    lab.refresh("b", ten());
    let before = lab.merge().topology;
    lab.refresh("a", Vec::new());
    let out = lab.merge();
    let r = held(&out);
    assert_eq!(r.kind, GlitchKind::Emptied);
    assert_eq!((r.provider.as_str(), r.disputed_by.as_str()), ("a", "b"));
    assert_eq!((r.removed, r.published, r.held_snapshots), (10, 10, 1));
    assert!(!out.changed);
    assert!(Arc::ptr_eq(&out.topology, &before));
    let again = lab.merge();
    assert_eq!(held(&again).held_snapshots, 1, "a merge is not a refresh");
    lab.refresh("a", Vec::new());
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::Applied);
    assert_eq!(out.topology.status, ProvisioningStatus::Empty);
}

/// Glitch rule: a truncated snapshot (removing more than half) is held;
/// a full one next ends the hold without change, and a later
/// truncation starts a new hold.
#[test]
fn truncated_snapshot_is_held_and_a_full_one_ends_the_hold() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", ten());
    lab.refresh("b", ten());
    lab.merge();
    lab.refresh("a", list(&["a", "b"]));
    let out = lab.merge();
    assert_eq!(held(&out).kind, GlitchKind::MassRemoval);
    assert_eq!(held(&out).removed, 8);
    assert_eq!(out.topology.members.len(), 10);
    lab.refresh("a", ten());
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::Applied);
    assert!(!out.changed);
    lab.refresh("a", list(&["a", "b"]));
    assert_eq!(held(&lab.merge()).held_snapshots, 1);
}

/// Glitch rule: removing at most the configured fraction applies at
/// once, disputed or not.
#[test]
fn removals_up_to_the_fraction_apply_at_once() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", ten());
    lab.refresh("b", ten());
    lab.merge();
    lab.refresh("a", list(&["a", "b", "c", "d", "e"]));
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::Applied);
    assert_eq!(out.diff.left.len(), 5);
}

/// Glitch rule: only a healthy provider that still lists at least half
/// of the removed nodes disputes; otherwise the removal is real.
#[test]
fn only_a_healthy_provider_listing_the_removed_nodes_disputes() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", ten());
    lab.refresh("b", list(&["a", "b", "x", "y"]));
    lab.merge();
    lab.refresh("a", list(&["a", "b"]));
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::Applied, "b lists none removed");
    assert_eq!(out.topology.members.len(), 2);

    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", ten());
    lab.refresh("b", list(&["c", "d", "e", "f"])); // 4 of the 8 removed
    lab.merge();
    lab.refresh("a", list(&["a", "b"]));
    assert_eq!(held(&lab.merge()).disputed_by, pid("b"));
    lab.healthy("b", false);
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::Applied, "dispute gone");
    assert_eq!(out.topology.members.len(), 2);
}

/// Glitch rule: the dispute is re-evaluated at every merge; when the
/// other provider agrees, the held removal applies without waiting.
#[test]
fn hold_ends_when_the_other_provider_agrees() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", ten());
    lab.refresh("b", ten());
    lab.merge();
    lab.refresh("a", list(&["a"]));
    held(&lab.merge());
    lab.refresh("b", list(&["a"]));
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::Applied);
    assert_eq!(names(&out.topology), ["a@1"]);
}

/// Glitch rule: the number of held refreshes is configurable; 0 turns
/// the rule off; `release_hold` applies early.
#[test]
fn hold_length_is_configurable_and_can_be_released() {
    let config = MergeConfig {
        glitch_hold_snapshots: 2,
        ..MergeConfig::default()
    };
    let mut lab = Lab::new(config);
    lab.refresh("a", ten());
    lab.refresh("b", ten());
    lab.merge();
    for n in 1..=2 {
        lab.refresh("a", Vec::new());
        assert_eq!(held(&lab.merge()).held_snapshots, n);
    }
    lab.refresh("a", Vec::new());
    assert_eq!(lab.merge().decision, MergeDecision::Applied);

    let config = MergeConfig {
        glitch_hold_snapshots: 0,
        ..MergeConfig::default()
    };
    let mut lab = Lab::new(config);
    lab.refresh("a", ten());
    lab.refresh("b", ten());
    lab.merge();
    lab.refresh("a", Vec::new());
    assert_eq!(lab.merge().decision, MergeDecision::Applied);

    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", ten());
    lab.refresh("b", ten());
    lab.merge();
    assert!(!lab.merger.release_hold());
    lab.refresh("a", Vec::new());
    held(&lab.merge());
    assert!(lab.merger.release_hold());
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::Applied);
    assert_eq!(out.topology.status, ProvisioningStatus::Empty);
}

/// Union: all healthy providers; a node listed by several takes the
/// version of the best priority, ties broken by provider id; never
/// held, since a member leaves only when no healthy provider lists it.
#[test]
fn union_resolves_conflicts_by_priority_then_id() {
    let mut lab = Lab::new(MergeConfig::with_policy(MergePolicy::Union));
    lab.providers = vec![
        ProviderInput::new(pid("p-late"), 1, true),
        ProviderInput::new(pid("p-c"), 0, true),
        ProviderInput::new(pid("p-b"), 0, true),
        ProviderInput::new(pid("p-sick"), 0, false),
    ];
    lab.active = Some(pid("p-b"));
    lab.refresh("p-late", vec![mem("n", 1), mem("only-late", 1)]);
    lab.refresh("p-c", vec![mem("n", 3), mem("only-c", 1)]);
    lab.refresh("p-b", vec![mem("n", 2), mem("only-b", 1)]);
    lab.refresh("p-sick", vec![mem("n", 9), mem("only-sick", 1)]);
    let out = lab.merge();
    assert_eq!(
        names(&out.topology),
        ["n@2", "only-b@1", "only-c@1", "only-late@1"]
    );
    assert_eq!(out.topology.active_provider, Some(pid("p-b")));
    lab.refresh("p-b", Vec::new());
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::Applied);
    assert_eq!(names(&out.topology), ["n@3", "only-c@1", "only-late@1"]);
}

/// Memory: equal snapshots of two providers share one allocation, and
/// their union is that same allocation.
#[test]
fn equal_snapshots_share_one_allocation() {
    let mut lab = Lab::new(MergeConfig::with_policy(MergePolicy::Union));
    lab.refresh("a", ten());
    let mut shuffled = ten();
    shuffled.reverse();
    lab.refresh("b", shuffled);
    let a = lab.merger.snapshot(&pid("a")).unwrap().members().clone();
    let b = lab.merger.snapshot(&pid("b")).unwrap().members().clone();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(Arc::ptr_eq(&lab.merge().topology.members, &a));
}

/// R4.2: a quarantined incarnation leaves the members and is listed in
/// `blocked` (even while unlisted); the diff reports it; quarantining
/// an incarnation older than the listed one blocks nothing.
#[test]
fn quarantine_removes_the_incarnation_and_lists_it_blocked() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", vec![mem("a", 1), mem("b", 3)]);
    lab.merge();
    assert!(lab.merger.quarantine(nid("b"), 3, None));
    assert!(!lab.merger.quarantine(nid("b"), 3, None), "already");
    assert!(!lab.merger.quarantine(nid("b"), 2, None), "older");
    assert!(lab.merger.quarantine(nid("z"), 5, None));
    assert!(lab.merger.is_quarantined(&nid("b"), 3));
    let out = lab.merge();
    assert!(out.changed);
    assert_eq!(names(&out.topology), ["a@1"]);
    assert_eq!(*out.topology.blocked, [blk("b", 3), blk("z", 5)]);
    assert!(out.topology.is_blocked(&nid("b"), 3));
    assert_eq!(out.diff.left, vec![mem("b", 3)]);
    assert_eq!(out.diff.blocked, vec![blk("b", 3), blk("z", 5)]);
    assert_eq!(
        out.topology.hash,
        TopologyHash::of_sorted(&out.topology.members)
    );
    assert!(!lab.merge().changed, "stable under the overlay");
}

/// R4.2 / R4.4: a newer incarnation is not blocked, and once listed it
/// supersedes the block.
#[test]
fn a_newer_incarnation_supersedes_the_block() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", vec![mem("a", 1), mem("b", 1)]);
    lab.merge();
    lab.merger.quarantine(nid("b"), 1, None);
    lab.merge();
    lab.refresh("a", vec![mem("a", 1), mem("b", 2)]);
    let out = lab.merge();
    assert_eq!(names(&out.topology), ["a@1", "b@2"]);
    assert!(out.topology.blocked.is_empty());
    assert_eq!(out.diff.unblocked, vec![blk("b", 1)]);
    assert_eq!(out.diff.joined, vec![mem("b", 2)]);
    assert!(!lab.merger.is_quarantined(&nid("b"), 1));
}

/// R4.4: reactivation needs Remoting's reachable report AND a later
/// applied refresh from the healthy active provider that lists the
/// incarnation: none of the conditions alone is enough.
#[test]
fn reactivation_needs_reachable_and_a_later_healthy_active_refresh() {
    let mut lab = Lab::new(MergeConfig::default());
    let both = || vec![mem("a", 1), mem("b", 1)];
    lab.refresh("a", both());
    lab.refresh("b", both());
    lab.merge();
    lab.merger.quarantine(nid("b"), 1, None);
    lab.merge();
    lab.refresh("a", both());
    assert_eq!(names(&lab.merge().topology), ["a@1"], "no reachable report");
    assert!(lab.merger.mark_reachable(&nid("b"), 1));
    assert!(!lab.merger.mark_reachable(&nid("q"), 1));
    assert_eq!(names(&lab.merge().topology), ["a@1"], "no later refresh");
    lab.refresh("b", both());
    assert_eq!(names(&lab.merge().topology), ["a@1"], "not the active");
    lab.healthy("a", false);
    lab.refresh("a", both());
    assert_eq!(names(&lab.merge().topology), ["a@1"], "active unhealthy");
    lab.healthy("a", true);
    lab.refresh("a", both());
    let out = lab.merge();
    assert_eq!(names(&out.topology), ["a@1", "b@1"]);
    assert_eq!(out.diff.unblocked, vec![blk("b", 1)]);
    assert_eq!(out.diff.joined, vec![mem("b", 1)]);
}

/// R4.4: the first later healthy refresh decides; if it does not list
/// the incarnation, the reachable report is consumed.
#[test]
fn a_refresh_without_the_node_consumes_the_reachable_report() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", vec![mem("a", 1), mem("b", 1)]);
    lab.merge();
    lab.merger.quarantine(nid("b"), 1, None);
    lab.merge();
    lab.merger.mark_reachable(&nid("b"), 1);
    lab.refresh("a", vec![mem("a", 1)]);
    lab.merge();
    lab.refresh("a", vec![mem("a", 1), mem("b", 1)]);
    assert_eq!(names(&lab.merge().topology), ["a@1"]);
    lab.merger.mark_reachable(&nid("b"), 1);
    lab.refresh("a", vec![mem("a", 1), mem("b", 1)]);
    assert_eq!(names(&lab.merge().topology), ["a@1", "b@1"]);
}

/// R4.4 with the glitch rule: a held refresh is not a healthy refresh;
/// it neither reactivates nor consumes the reachable report.
#[test]
fn a_held_refresh_does_not_decide_reactivation() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", ten());
    lab.refresh("b", ten());
    lab.merge();
    lab.merger.quarantine(nid("j"), 1, None);
    lab.merge();
    lab.merger.mark_reachable(&nid("j"), 1);
    lab.refresh("a", Vec::new());
    held(&lab.merge());
    assert!(lab.merger.is_quarantined(&nid("j"), 1));
    lab.refresh("a", ten());
    let out = lab.merge();
    assert_eq!(out.topology.members.len(), 10);
    assert!(out.topology.blocked.is_empty());
}

/// R4.2: clear and expiry lift a block (expiry instants are passed in,
/// never read from a clock).
#[test]
fn clear_and_expiry_lift_blocks() {
    let t0 = Instant::now();
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", vec![mem("a", 1), mem("b", 1)]);
    lab.merger.quarantine(nid("a"), 1, None);
    lab.merger
        .quarantine(nid("b"), 1, Some(t0 + Duration::from_secs(10)));
    assert!(lab.merge().topology.members.is_empty());
    assert_eq!(lab.merge().topology.status, ProvisioningStatus::Empty);
    assert_eq!(lab.merger.next_expiry(), Some(t0 + Duration::from_secs(10)));
    assert!(lab.merger.expire(t0 + Duration::from_secs(5)).is_empty());
    assert_eq!(
        lab.merger.expire(t0 + Duration::from_secs(10)),
        vec![blk("b", 1)]
    );
    assert_eq!(lab.merger.next_expiry(), None);
    assert_eq!(names(&lab.merge().topology), ["b@1"]);
    assert!(lab.merger.clear(&nid("a"), 1));
    assert!(!lab.merger.clear(&nid("a"), 1));
    let out = lab.merge();
    assert_eq!(names(&out.topology), ["a@1", "b@1"]);
    assert_eq!(out.topology.status, ProvisioningStatus::Active);
}

/// No input (no active provider, or no snapshot yet) keeps the previous
/// members and status; the supervisor reports the status.
#[test]
fn no_input_keeps_the_previous_topology() {
    let mut lab = Lab::new(MergeConfig::default());
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::NoInput);
    assert!(!out.changed);
    assert_eq!(out.topology.status, ProvisioningStatus::Starting);
    lab.refresh("a", list(&["a"]));
    lab.merge();
    lab.active = None;
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::NoInput);
    assert!(!out.changed);
    assert_eq!(names(&out.topology), ["a@1"]);
    assert_eq!(out.topology.active_provider, None);
    lab.merger.quarantine(nid("a"), 1, None);
    let out = lab.merge();
    assert_eq!(out.decision, MergeDecision::NoInput);
    assert!(out.changed, "the overlay still applies");
    assert_eq!(out.topology.status, ProvisioningStatus::Empty);
    lab.active = Some(pid("b"));
    assert_eq!(lab.merge().decision, MergeDecision::NoInput);
    lab.merger.remove_provider(&pid("a"));
    lab.providers.clear();
    let mut union = Lab::new(MergeConfig::with_policy(MergePolicy::Union));
    union.healthy("a", false);
    union.refresh("a", list(&["a"]));
    assert_eq!(union.merge().decision, MergeDecision::NoInput);
}

/// A merger restored from a stored topology diffs against it; the
/// first confirmation with the same members changes nothing but the
/// `stale` flag.
#[test]
fn restored_topology_is_the_base_of_the_first_diff() {
    let members: Arc<[Member]> = Arc::from(list(&["a", "b"]));
    let restored = Topology {
        hash: TopologyHash::of_sorted(&members),
        members,
        blocked: Arc::from(vec![blk("c", 1)]),
        status: ProvisioningStatus::Active,
        seq_no: 41,
        active_provider: Some(pid("a")),
        stale: true,
    };
    let mut merger = TopologyMerger::with_published(MergeConfig::default(), restored);
    let inputs = [ProviderInput::new(pid("a"), 0, true)];
    merger.quarantine(nid("b"), 1, None);
    let out = merger.merge(&inputs, Some(&pid("a")), 42);
    assert_eq!(out.decision, MergeDecision::NoInput);
    assert!(
        out.changed && out.topology.stale,
        "unconfirmed: still stale"
    );
    assert_eq!(names(&out.topology), ["a@1"]);
    assert!(merger.clear(&nid("b"), 1));
    merger.merge(&inputs, Some(&pid("a")), 43);
    merger.on_refresh(&pid("a"), list(&["b", "c", "a"]));
    let out = merger.merge(&inputs, Some(&pid("a")), 44);
    assert!(!out.changed);
    assert_eq!(out.topology.seq_no, 43);
    assert!(!out.topology.stale);
    assert_eq!(names(&out.topology), ["a@1", "b@1"]);
}

// ---- property tests ----

fn arb_members() -> impl Strategy<Value = Vec<Member>> {
    proptest::collection::vec(("[a-h]", 1u64..4, 1u16..3), 0..10).prop_map(|v| {
        v.into_iter()
            .map(|(id, inc, port)| {
                let mut m = mem(&id, inc);
                m.address.port = port;
                m
            })
            .collect()
    })
}

/// (priority, healthy, snapshot) for providers p0, p1, p2.
fn arb_providers() -> impl Strategy<Value = Vec<(u32, bool, Vec<Member>)>> {
    proptest::collection::vec((0u32..3, any::<bool>(), arb_members()), 1..4)
}

fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed | 1;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
}

fn policy(union: bool) -> MergeConfig {
    MergeConfig::with_policy(if union {
        MergePolicy::Union
    } else {
        MergePolicy::Priority
    })
}

fn provider_inputs(ps: &[(u32, bool, Vec<Member>)]) -> Vec<ProviderInput> {
    ps.iter()
        .enumerate()
        .map(|(i, (prio, healthy, _))| ProviderInput::new(pid(&format!("p{i}")), *prio, *healthy))
        .collect()
}

/// What a merge published: members, blocked, hash, status, decision.
type Observed = (
    Vec<Member>,
    Vec<BlockedMember>,
    TopologyHash,
    ProvisioningStatus,
    MergeDecision,
);

/// Feeds rounds of snapshots, in the given provider order, with the
/// members in the given order, and merges after each round.
fn run(
    config: MergeConfig,
    rounds: &[Vec<(u32, bool, Vec<Member>)>],
    active: usize,
    seed: Option<u64>,
) -> Vec<Observed> {
    let mut merger = TopologyMerger::new(config);
    merger.quarantine(nid("c"), 2, None);
    let mut out = Vec::new();
    for (r, round) in rounds.iter().enumerate() {
        let mut order: Vec<usize> = (0..round.len()).collect();
        let mut inputs = provider_inputs(round);
        if let Some(seed) = seed {
            shuffle(&mut order, seed.wrapping_add(r as u64));
            shuffle(&mut inputs, seed.rotate_left(7));
        }
        for &i in &order {
            let mut members = round[i].2.clone();
            if let Some(seed) = seed {
                shuffle(&mut members, seed ^ i as u64);
            }
            merger.on_refresh(&pid(&format!("p{i}")), members);
        }
        let active = pid(&format!("p{}", active % round.len()));
        let o = merger.merge(&inputs, Some(&active), r as u64 + 1);
        let t = &o.topology;
        out.push((
            t.members.to_vec(),
            t.blocked.to_vec(),
            t.hash,
            t.status,
            o.decision,
        ));
    }
    out
}

proptest! {
    /// Merge does not depend on the order of members within snapshots,
    /// on the order providers are given in, nor on the order providers
    /// refresh in (both policies, with the glitch rule and an overlay).
    #[test]
    fn merge_is_independent_of_member_and_provider_order(
        first in arb_providers(),
        second in arb_members(),
        union in any::<bool>(),
        active in 0usize..3,
        seed in any::<u64>(),
    ) {
        let mut again = first.clone();
        if let Some(p) = again.get_mut(active % first.len()) {
            p.2 = second;
        }
        let rounds = vec![first, again];
        let plain = run(policy(union), &rounds, active, None);
        let shuffled = run(policy(union), &rounds, active, Some(seed));
        prop_assert_eq!(plain, shuffled);
    }

    /// R2.3: merging identical inputs twice, or after the same
    /// snapshots are re-delivered in another order, changes nothing.
    #[test]
    fn identical_inputs_twice_change_nothing(
        ps in arb_providers(),
        union in any::<bool>(),
        active in 0usize..3,
        blocked in proptest::collection::vec(("[a-h]", 1u64..4), 0..3),
        seed in any::<u64>(),
    ) {
        let mut merger = TopologyMerger::new(policy(union));
        for (n, inc) in &blocked {
            merger.quarantine(nid(n), *inc, None);
        }
        for (i, p) in ps.iter().enumerate() {
            merger.on_refresh(&pid(&format!("p{i}")), p.2.clone());
        }
        let inputs = provider_inputs(&ps);
        let active = pid(&format!("p{}", active % ps.len()));
        let first = merger.merge(&inputs, Some(&active), 1);
        let second = merger.merge(&inputs, Some(&active), 2);
        prop_assert!(!second.changed);
        prop_assert!(second.diff.is_empty());
        prop_assert!(Arc::ptr_eq(&first.topology, &second.topology));
        for (i, p) in ps.iter().enumerate() {
            let mut members = p.2.clone();
            shuffle(&mut members, seed);
            merger.on_refresh(&pid(&format!("p{i}")), members);
        }
        let third = merger.merge(&inputs, Some(&active), 3);
        prop_assert!(!third.changed);
        prop_assert_eq!(third.topology.seq_no, first.topology.seq_no);
    }

    /// R4.2 / R4.4: after `quarantine(x, 2)` the incarnation is never
    /// published, and stays blocked, until Remoting reported it
    /// reachable and a later refresh of the healthy active provider
    /// listing it was merged (newer incarnations are not generated here,
    /// so nothing supersedes the block).
    #[test]
    fn quarantined_incarnation_stays_out_until_r44_holds(
        union in any::<bool>(),
        ops in proptest::collection::vec(
            prop_oneof![
                (0usize..2, proptest::option::of(1u64..3), proptest::collection::vec("[a-d]", 0..4))
                    .prop_map(|(p, x, others)| Op::Refresh(p, x, others)),
                (0usize..2, any::<bool>(), any::<bool>()).prop_map(|(a, h0, h1)| Op::Merge(a, [h0, h1])),
                Just(Op::Reachable),
            ],
            1..40,
        ),
    ) {
        let mut merger = TopologyMerger::new(policy(union));
        merger.quarantine(nid("x"), 2, None);
        let mut refreshes = 0u64;
        let mut last: [(u64, bool); 2] = [(0, false); 2];
        let mut mark: Option<u64> = None;
        let mut eligible = false;
        for op in ops {
            match op {
                Op::Refresh(p, x, others) => {
                    let mut members: Vec<Member> = others.iter().map(|o| mem(o, 1)).collect();
                    if let Some(inc) = x {
                        members.push(mem("x", inc));
                    }
                    merger.on_refresh(&pid(&format!("p{p}")), members);
                    refreshes += 1;
                    last[p] = (refreshes, x == Some(2));
                }
                Op::Reachable => {
                    merger.mark_reachable(&nid("x"), 2);
                    mark = Some(refreshes);
                }
                Op::Merge(a, health) => {
                    let inputs = [
                        ProviderInput::new(pid("p0"), 0, health[0]),
                        ProviderInput::new(pid("p1"), 1, health[1]),
                    ];
                    if health[a] && mark.is_some_and(|m| last[a].0 > m) && last[a].1 {
                        eligible = true;
                    }
                    let out = merger.merge(&inputs, Some(&pid(&format!("p{a}"))), 1);
                    let listed = out.topology.members.iter().any(|m| m.node_id == nid("x") && m.incarnation == 2);
                    prop_assert!(!listed || eligible, "x@2 published before R4.4 held");
                    prop_assert!(eligible || out.topology.is_blocked(&nid("x"), 2));
                }
            }
        }
    }

    /// Issue 17: the hash walk finds a list that is not canonical (it
    /// then returns nothing), and otherwise gives the full hash, equality
    /// and the diff's members.
    #[test]
    fn i17_the_hash_walk_checks_canonical_order(old in arb_members(), new in arb_members()) {
        let mut old = old;
        canonicalize(&mut old);
        let walked = sorted::rehash(&new, &old, TopologyHash::of_sorted(&old));
        prop_assert_eq!(walked.is_some(), sorted::strictly_sorted(&new));
        if let Some((equal, hash, changes)) = walked {
            prop_assert_eq!(equal, old == new);
            prop_assert_eq!(hash, TopologyHash::of_sorted(&new));
            if let Some(c) = changes {
                let d = diff_sorted(&old, &new, &[], &[]);
                prop_assert_eq!((c.joined, c.left, c.changed), (d.joined, d.left, d.changed));
            }
        }
    }

    /// `same_member` is `==`.
    #[test]
    fn same_member_is_equality(
        a in arb_members(),
        b in arb_members(),
        role in any::<bool>(),
        label in any::<bool>(),
    ) {
        for (x, y) in a.iter().zip(&b) {
            let mut y = y.clone();
            if role {
                y.roles.insert("r".into());
            }
            if label {
                y.labels.insert("k".into(), "v".into());
            }
            prop_assert_eq!(sorted::same_member(x, &y), *x == y);
            prop_assert!(sorted::same_member(x, &x.clone()));
            prop_assert!(sorted::same_member(&y, &y.clone()), "equal roles and labels");
        }
    }

    /// The linear diff gives what `TopologyDiff::between` gives.
    #[test]
    fn diff_sorted_matches_topology_diff_between(
        before in arb_members(),
        after in arb_members(),
        bb in proptest::collection::btree_set(("[a-d]", 1u64..3), 0..4),
        ba in proptest::collection::btree_set(("[a-d]", 1u64..3), 0..4),
    ) {
        let (mut before, mut after) = (before, after);
        canonicalize(&mut before);
        canonicalize(&mut after);
        let to_blocked = |s: &std::collections::BTreeSet<(String, u64)>| -> Vec<BlockedMember> {
            s.iter().map(|(n, i)| blk(n, *i)).collect()
        };
        let (bb, ba) = (to_blocked(&bb), to_blocked(&ba));
        prop_assert_eq!(
            diff_sorted(&before, &after, &bb, &ba),
            TopologyDiff::between(&before, &after, &bb, &ba)
        );
    }
}

#[derive(Clone, Debug)]
enum Op {
    Refresh(usize, Option<u64>, Vec<String>),
    Merge(usize, [bool; 2]),
    Reachable,
}

// ---- issue 17: shared snapshots and the incremental hash ----

/// Issue 17: a provider's `Arc<[Member]>` is kept and published as it is
/// (no copy), and a keepalive that re-sends the same `Arc` is only counted:
/// the slot, the published topology and its `Arc` stay the very same
/// objects, the diff is empty and nothing is published (R2.3).
#[test]
fn i17_a_shared_list_is_published_without_a_copy_and_its_keepalive_costs_nothing() {
    let mut lab = Lab::new(MergeConfig::default());
    let shared: Arc<[Member]> = Arc::from(list(&["a", "b", "c"]));
    lab.merger.on_refresh(&pid("a"), shared.clone());
    let first = lab.merge();
    assert!(Arc::ptr_eq(&first.topology.members, &shared), "no copy");
    let before = lab.merger.refreshes;
    let info = lab.merger.on_refresh(&pid("a"), shared.clone());
    assert!(info.unchanged());
    assert_eq!(lab.merger.refreshes, before + 1, "counted as a refresh");
    let snap = lab.merger.snapshot(&pid("a")).unwrap();
    assert!(Arc::ptr_eq(snap.members(), &shared));
    assert_eq!(snap.refresh, before + 1);
    let second = lab.merge();
    assert!(!second.changed);
    assert!(second.diff.is_empty());
    assert!(Arc::ptr_eq(&first.topology, &second.topology));
    // Held by us, the slot, the merger's candidate base and the one
    // topology: nothing else refers to it, no other copy was made.
    assert_eq!(Arc::strong_count(&shared), 4);
}

/// Issue 17: a re-delivered list equal to the previous one but freshly
/// built (a decoding provider's keepalive) is dropped: the previous `Arc`
/// stays, and so does the published topology.
#[test]
fn i17_an_equal_fresh_list_keeps_the_previous_one() {
    let mut lab = Lab::new(MergeConfig::default());
    lab.refresh("a", list(&["c", "a", "b"]));
    let first = lab.merge();
    let info = lab.refresh("a", list(&["b", "c", "a"]));
    assert!(info.unchanged());
    let snap = lab.merger.snapshot(&pid("a")).unwrap();
    assert!(Arc::ptr_eq(snap.members(), &first.topology.members));
    let second = lab.merge();
    assert!(!second.changed && Arc::ptr_eq(&first.topology, &second.topology));
}

/// Issue 17: a list that is not canonical and that nobody else holds is
/// sorted in place; one that is shared is copied (the provider's list is
/// never changed under it).
#[test]
fn i17_a_shared_unsorted_list_is_not_changed_under_its_provider() {
    let mut lab = Lab::new(MergeConfig::default());
    let shared: Arc<[Member]> = Arc::from(list(&["c", "a", "b"]));
    lab.merger.on_refresh(&pid("a"), shared.clone());
    let out = lab.merge();
    assert_eq!(names(&out.topology), ["a@1", "b@1", "c@1"]);
    assert_eq!(shared[0].node_id, nid("c"), "the provider's list as it was");
}

#[derive(Clone, Debug)]
enum HashOp {
    /// A fresh list for provider p.
    Fresh(usize, Vec<Member>),
    /// Provider p re-sends its current list (the same `Arc`).
    Keepalive(usize),
    /// Provider p sends the other provider's current list (the same `Arc`).
    Borrow(usize),
    /// Provider p's list with one member's port changed, built from it.
    Edit(usize, usize),
    Quarantine(String, u64),
    Clear(String, u64),
    Merge(usize, [bool; 2]),
}

fn arb_hash_op() -> impl Strategy<Value = HashOp> {
    prop_oneof![
        (0usize..2, arb_members()).prop_map(|(p, m)| HashOp::Fresh(p, m)),
        (0usize..2).prop_map(HashOp::Keepalive),
        (0usize..2).prop_map(HashOp::Borrow),
        (0usize..2, 0usize..10).prop_map(|(p, i)| HashOp::Edit(p, i)),
        ("[a-h]", 1u64..4).prop_map(|(n, i)| HashOp::Quarantine(n, i)),
        ("[a-h]", 1u64..4).prop_map(|(n, i)| HashOp::Clear(n, i)),
        (0usize..2, any::<bool>(), any::<bool>())
            .prop_map(|(a, h0, h1)| HashOp::Merge(a, [h0, h1])),
    ]
}

proptest! {
    /// Issue 17: over any sequence of refreshes (fresh lists, keepalives of
    /// the same `Arc`, lists shared between providers, small edits),
    /// quarantines and merges, in both policies, every hash the merger
    /// keeps or publishes, updated incrementally, equals the hash of its
    /// list computed from scratch, every kept list is canonical, and every
    /// published diff (reused from the refresh when it can be) is the walk's.
    #[test]
    fn i17_incremental_hashes_equal_full_hashes(
        union in any::<bool>(),
        ops in proptest::collection::vec(arb_hash_op(), 1..40),
    ) {
        let mut merger = TopologyMerger::new(policy(union));
        let ids = [pid("p0"), pid("p1")];
        let mut seq = 0;
        for op in ops {
            match op {
                HashOp::Fresh(p, m) => {
                    merger.on_refresh(&ids[p], m);
                }
                HashOp::Keepalive(p) => {
                    if let Some(s) = merger.snapshot(&ids[p]) {
                        let list = s.members().clone();
                        merger.on_refresh(&ids[p], list);
                    }
                }
                HashOp::Borrow(p) => {
                    if let Some(s) = merger.snapshot(&ids[1 - p]) {
                        let list = s.members().clone();
                        merger.on_refresh(&ids[p], list);
                    }
                }
                HashOp::Edit(p, i) => {
                    if let Some(s) = merger.snapshot(&ids[p]).filter(|s| !s.members().is_empty()) {
                        let mut list = s.members().to_vec();
                        let i = i % list.len();
                        list[i].address.port += 1;
                        merger.on_refresh(&ids[p], list);
                    }
                }
                HashOp::Quarantine(n, i) => {
                    merger.quarantine(nid(&n), i, None);
                }
                HashOp::Clear(n, i) => {
                    merger.clear(&nid(&n), i);
                }
                HashOp::Merge(a, health) => {
                    let inputs = [
                        ProviderInput::new(ids[0].clone(), 0, health[0]),
                        ProviderInput::new(ids[1].clone(), 1, health[1]),
                    ];
                    seq += 1;
                    let prev = merger.published().clone();
                    let out = merger.merge(&inputs, Some(&ids[a]), seq);
                    let t = &out.topology;
                    prop_assert_eq!(t.hash, TopologyHash::of_sorted(&t.members));
                    // The diff, taken from the refresh when it can be, is
                    // the one a walk over the two topologies gives.
                    if out.changed {
                        prop_assert_eq!(
                            &out.diff,
                            &diff_sorted(&prev.members, &t.members, &prev.blocked, &t.blocked)
                        );
                    }
                    if !out.changed {
                        prop_assert_eq!(out.previous_hash, t.hash);
                    }
                }
            }
            for id in &ids {
                if let Some(s) = merger.snapshot(id) {
                    prop_assert!(sorted::strictly_sorted(s.members()));
                    prop_assert_eq!(s.hash(), TopologyHash::of_sorted(s.members()));
                }
            }
            let t = merger.published();
            prop_assert_eq!(t.hash, TopologyHash::of_sorted(&t.members));
        }
    }
}
