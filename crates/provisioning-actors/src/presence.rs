//! `SelfPresence`: the self-presence rule, a pure core deciding whether a
//! provider's snapshot is applied or held as *suspect* (issue 19). No IO, no
//! clock reads: the supervisor passes `now`, applies or holds what the
//! [`Verdict`] says, and calls [`SelfPresence::tick`] at
//! [`SelfPresence::next_deadline`].
//!
//! # Why
//!
//! A backend that comes back without its data (etcd restarted empty, a
//! Consul agent restarted without its services, a Kubernetes API answering
//! an empty list after a restore) makes its provider report nobody, then
//! only the nodes that registered again first. Nothing disputes that with
//! a single provider (the merger's glitch rule needs a second one), so every
//! node would publish an empty, then a partial topology, and placement and
//! Remoting would act on it. But a node that knows it is registered knows
//! such a list is wrong: it does not list the node itself.
//!
//! # The rule
//!
//! Per provider, once a snapshot of that provider has listed this node
//! (its node id at its incarnation), the node is *registered* with it. From
//! then on a snapshot is **suspect** when it
//!
//! - does not list this node ([`SuspectKind::SelfMissing`]), or
//! - lists fewer than half of the members of the provider's last applied
//!   snapshot: more than half of them removed at once
//!   ([`SuspectKind::MassRemoval`]).
//!
//! A suspect snapshot is **held**: the provider's last applied snapshot
//! stays in force, and when this node is missing the provider registers it
//! again at once: once per hold, and at most once per `hold_bound` for one
//! provider (a backend that keeps losing this node, say an agent refusing
//! its heartbeats, is left to the provider's own re-registration rather
//! than masked by the supervisor's). The hold ends
//!
//! - **early**, with the first snapshot that lists this node *and* every
//!   node of the last applied snapshot (the backend has its data back; new
//!   nodes may be listed too): that snapshot is applied;
//! - **at the bound** (`hold_bound`, a few keepalive periods, default 15 s),
//!   whatever the latest snapshot says: it is applied (the supervisor logs a
//!   WARN). If it does not list this node, the node counts as not
//!   registered again until a snapshot lists it, so the rule never holds
//!   twice in a row for the same absence.
//!
//! While a hold lasts, every later snapshot is held too (the latest one is
//! what the bound applies), even one that would not be suspect on its own:
//! the backend is known to be recovering.
//!
//! What the rule does **not** delay:
//!
//! - **start-up**: before a snapshot of the provider first listed this
//!   node, everything is applied (the node is still registering);
//! - **other nodes leaving**, gracefully or not, up to half of the members
//!   at once: such a snapshot lists this node and is applied at once;
//! - **this node's own drain**: the supervisor refuses snapshots while
//!   draining anyway (R3.5);
//! - a supervisor without a local member, or a zero `hold_bound`: the rule
//!   is off.
//!
//! A real departure of more than half of the members at once, or of other
//! nodes during a hold, is applied at the bound: late by at most
//! `hold_bound`, never lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cluster_core::{Member, NodeId, ProviderId};
use tokio::time::Instant;

/// Why a snapshot is suspect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SuspectKind {
    /// It does not list this node while this node is registered.
    SelfMissing,
    /// It lists this node but removes more than half of the members of the
    /// provider's last applied snapshot.
    MassRemoval,
}

impl SuspectKind {
    /// The stable label (`self_missing`, `mass_removal`) of logs and
    /// metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfMissing => "self_missing",
            Self::MassRemoval => "mass_removal",
        }
    }
}

/// What to do with one snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Apply it.
    Apply,
    /// Apply it: it ends a hold early (this node and every member of the
    /// last applied snapshot are listed again).
    ApplyEndingHold {
        /// Snapshots held during the hold.
        held: u32,
        /// How long the hold lasted.
        held_for: Duration,
    },
    /// Hold it: keep the provider's last applied snapshot.
    Hold {
        /// Why the hold started.
        kind: SuspectKind,
        /// Whether this snapshot started the hold.
        first: bool,
        /// Register this node with the provider again now.
        reregister: bool,
        /// Members of the provider's last applied snapshot.
        previous: usize,
        /// Members of the held snapshot.
        members: usize,
    },
}

/// How many node ids of `before` are missing from `after`, in one walk,
/// when both are strictly sorted by node id; `None` otherwise.
fn removed_sorted(before: &[Member], after: &[Member]) -> Option<usize> {
    let sorted = |l: &[Member]| l.windows(2).all(|w| w[0].node_id < w[1].node_id);
    if std::ptr::eq(before, after) {
        return Some(0);
    }
    if !sorted(before) || !sorted(after) {
        return None;
    }
    let mut removed = 0;
    let mut j = 0;
    for m in before {
        while after.get(j).is_some_and(|a| a.node_id < m.node_id) {
            j += 1;
        }
        if after.get(j).is_none_or(|a| a.node_id != m.node_id) {
            removed += 1;
        }
    }
    Some(removed)
}

/// A hold ended at its bound: apply `members`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The provider.
    pub provider: ProviderId,
    /// Its latest snapshot, to apply now.
    pub members: Vec<Member>,
    /// Why the hold started.
    pub kind: SuspectKind,
    /// Snapshots held during the hold.
    pub held: u32,
    /// How long the hold lasted.
    pub held_for: Duration,
    /// Whether the applied snapshot lists this node.
    pub lists_self: bool,
}

#[derive(Clone, Debug)]
struct Hold {
    kind: SuspectKind,
    since: Instant,
    deadline: Instant,
    /// Node ids of the last applied snapshot.
    base: BTreeSet<NodeId>,
    /// The latest held snapshot.
    latest: Vec<Member>,
    held: u32,
}

#[derive(Clone, Debug, Default)]
struct Track {
    /// A snapshot of this provider listed this node (and none applied since
    /// without it).
    listed: bool,
    hold: Option<Hold>,
    /// When a hold last asked to register this node again.
    reregistered: Option<Instant>,
}

/// The self-presence core. See the module docs for the rule.
#[derive(Clone, Debug)]
pub struct SelfPresence {
    local: Option<(NodeId, u64)>,
    bound: Duration,
    providers: BTreeMap<ProviderId, Track>,
}

impl SelfPresence {
    /// The rule for the local member `local` (its node id and incarnation;
    /// `None`: off), holding a suspect snapshot at most `bound` (zero: off).
    pub fn new(local: Option<(NodeId, u64)>, bound: Duration) -> Self {
        Self {
            local,
            bound,
            providers: BTreeMap::new(),
        }
    }

    fn enabled(&self) -> bool {
        self.local.is_some() && !self.bound.is_zero()
    }

    /// Whether the rule runs (a local member and a non-zero bound).
    pub fn is_enabled(&self) -> bool {
        self.enabled()
    }

    fn lists_self(&self, members: &[Member]) -> bool {
        self.local.as_ref().is_some_and(|(id, inc)| {
            members
                .iter()
                .any(|m| &m.node_id == id && m.incarnation == *inc)
        })
    }

    /// Judges a snapshot `members` of `provider`, whose last applied
    /// snapshot is `previous`, at `now`.
    pub fn on_snapshot(
        &mut self,
        provider: &ProviderId,
        previous: &[Member],
        members: &[Member],
        now: Instant,
    ) -> Verdict {
        if !self.enabled() {
            return Verdict::Apply;
        }
        let lists_self = self.lists_self(members);
        let bound = self.bound;
        let track = self.providers.entry(provider.clone()).or_default();
        if let Some(h) = &mut track.hold {
            let listed: BTreeSet<&NodeId> = members.iter().map(|m| &m.node_id).collect();
            if lists_self && h.base.iter().all(|id| listed.contains(id)) {
                let (held, held_for) = (h.held, now.saturating_duration_since(h.since));
                track.hold = None;
                track.listed = true;
                return Verdict::ApplyEndingHold { held, held_for };
            }
            h.held = h.held.saturating_add(1);
            h.latest = members.to_vec();
            return Verdict::Hold {
                kind: h.kind,
                first: false,
                reregister: false,
                previous: h.base.len(),
                members: members.len(),
            };
        }
        if !track.listed {
            track.listed = lists_self;
            return Verdict::Apply;
        }
        // The common case, every snapshot of a healthy provider: both lists
        // canonical (the supervisor canonicalizes first), counted in one
        // walk without building sets (issue 17).
        let (removed, base_len) = match removed_sorted(previous, members) {
            Some(removed) => (removed, previous.len()),
            None => {
                let listed: BTreeSet<&NodeId> = members.iter().map(|m| &m.node_id).collect();
                let base: BTreeSet<&NodeId> = previous.iter().map(|m| &m.node_id).collect();
                let removed = base.iter().filter(|id| !listed.contains(*id)).count();
                (removed, base.len())
            }
        };
        let kind = if !lists_self {
            SuspectKind::SelfMissing
        } else if removed * 2 > base_len {
            SuspectKind::MassRemoval
        } else {
            return Verdict::Apply;
        };
        let base: BTreeSet<NodeId> = previous.iter().map(|m| m.node_id.clone()).collect();
        let previous = base.len();
        let reregister = !lists_self
            && track
                .reregistered
                .is_none_or(|t| now.saturating_duration_since(t) >= bound);
        if reregister {
            track.reregistered = Some(now);
        }
        track.hold = Some(Hold {
            kind,
            since: now,
            deadline: now.checked_add(bound).unwrap_or(now),
            base,
            latest: members.to_vec(),
            held: 1,
        });
        Verdict::Hold {
            kind,
            first: true,
            reregister,
            previous,
            members: members.len(),
        }
    }

    /// Ends the holds whose bound has passed at `now`: apply each release's
    /// members.
    pub fn tick(&mut self, now: Instant) -> Vec<Release> {
        let mut released = Vec::new();
        let local = self.local.clone();
        for (id, track) in &mut self.providers {
            if track.hold.as_ref().is_none_or(|h| h.deadline > now) {
                continue;
            }
            let Some(h) = track.hold.take() else { continue };
            let lists_self = local.as_ref().is_some_and(|(n, inc)| {
                h.latest
                    .iter()
                    .any(|m| &m.node_id == n && m.incarnation == *inc)
            });
            track.listed = lists_self;
            released.push(Release {
                provider: id.clone(),
                members: h.latest,
                kind: h.kind,
                held: h.held,
                held_for: now.saturating_duration_since(h.since),
                lists_self,
            });
        }
        released
    }

    /// When the earliest hold ends (call [`tick`](Self::tick) then).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.providers
            .values()
            .filter_map(|t| t.hold.as_ref().map(|h| h.deadline))
            .min()
    }

    /// Whether a snapshot of `provider` is held now.
    pub fn is_holding(&self, provider: &ProviderId) -> bool {
        self.providers
            .get(provider)
            .is_some_and(|t| t.hold.is_some())
    }

    /// Forgets a provider (removed, replaced by a reload, suppressed).
    pub fn forget(&mut self, provider: &ProviderId) {
        self.providers.remove(provider);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::MemberAddress;
    use proptest::prelude::*;

    const BOUND: Duration = Duration::from_secs(15);

    fn m(id: &str) -> Member {
        Member::new(
            NodeId::new(id).unwrap(),
            MemberAddress::new("127.0.0.1", 4000).unwrap(),
            1,
        )
    }

    fn list(ids: &[&str]) -> Vec<Member> {
        ids.iter().map(|i| m(i)).collect()
    }

    fn pid() -> ProviderId {
        ProviderId::new("p").unwrap()
    }

    fn rule() -> SelfPresence {
        SelfPresence::new(Some((NodeId::new("a").unwrap(), 1)), BOUND)
    }

    fn is_hold(v: Verdict) -> bool {
        matches!(v, Verdict::Hold { .. })
    }

    /// Start-up is not blocked: before this node was ever listed, every
    /// snapshot applies, empty or not.
    #[test]
    fn before_this_node_is_listed_everything_applies() {
        let t0 = Instant::now();
        let mut r = rule();
        let all = list(&["a", "b", "c"]);
        assert_eq!(
            r.on_snapshot(&pid(), &[], &list(&["b", "c"]), t0),
            Verdict::Apply
        );
        assert_eq!(
            r.on_snapshot(&pid(), &list(&["b", "c"]), &[], t0),
            Verdict::Apply
        );
        assert_eq!(r.on_snapshot(&pid(), &[], &all, t0), Verdict::Apply);
        assert!(is_hold(r.on_snapshot(&pid(), &all, &[], t0)));
    }

    /// Other nodes leaving (up to half at once) apply at once; this node
    /// missing, or more than half gone, is held.
    #[test]
    fn departures_of_others_apply_and_suspects_hold() {
        let t0 = Instant::now();
        let mut r = rule();
        let four = list(&["a", "b", "c", "d"]);
        r.on_snapshot(&pid(), &[], &four, t0);
        let two = list(&["a", "b"]);
        assert_eq!(
            r.on_snapshot(&pid(), &four, &two, t0),
            Verdict::Apply,
            "half"
        );
        let v = r.on_snapshot(&pid(), &two, &list(&["b"]), t0);
        assert_eq!(
            v,
            Verdict::Hold {
                kind: SuspectKind::SelfMissing,
                first: true,
                reregister: true,
                previous: 2,
                members: 1
            }
        );
        let mut r = rule();
        let six = list(&["a", "b", "c", "d", "e", "f"]);
        r.on_snapshot(&pid(), &[], &six, t0);
        let v = r.on_snapshot(&pid(), &six, &list(&["a", "b"]), t0);
        assert!(matches!(
            v,
            Verdict::Hold {
                kind: SuspectKind::MassRemoval,
                reregister: false,
                ..
            }
        ));
    }

    /// A hold ends early with a snapshot listing this node and every
    /// member it had; partial ones in between stay held.
    #[test]
    fn a_hold_ends_when_everyone_is_back() {
        let t0 = Instant::now();
        let mut r = rule();
        let three = list(&["a", "b", "c"]);
        r.on_snapshot(&pid(), &[], &three, t0);
        assert!(is_hold(r.on_snapshot(&pid(), &three, &[], t0)));
        let t1 = t0 + Duration::from_secs(1);
        let v = r.on_snapshot(&pid(), &three, &list(&["a"]), t1);
        assert!(matches!(
            v,
            Verdict::Hold {
                first: false,
                reregister: false,
                ..
            }
        ));
        assert!(is_hold(r.on_snapshot(
            &pid(),
            &three,
            &list(&["a", "c"]),
            t1
        )));
        let back = list(&["a", "b", "c", "d"]);
        assert_eq!(
            r.on_snapshot(&pid(), &three, &back, t1),
            Verdict::ApplyEndingHold {
                held: 3,
                held_for: Duration::from_secs(1)
            }
        );
        assert!(!r.is_holding(&pid()));
        assert_eq!(r.next_deadline(), None);
    }

    /// At the bound the latest held snapshot applies; without this node in
    /// it, the rule waits for this node to be listed again.
    #[test]
    fn the_bound_applies_the_latest_snapshot() {
        let t0 = Instant::now();
        let mut r = rule();
        let three = list(&["a", "b", "c"]);
        r.on_snapshot(&pid(), &[], &three, t0);
        r.on_snapshot(&pid(), &three, &list(&["b"]), t0);
        assert_eq!(r.next_deadline(), Some(t0 + BOUND));
        assert!(r.tick(t0 + BOUND - Duration::from_millis(1)).is_empty());
        let rel = r.tick(t0 + BOUND);
        assert_eq!(rel.len(), 1);
        assert_eq!(rel[0].members, list(&["b"]));
        assert!(!rel[0].lists_self);
        assert_eq!(rel[0].held_for, BOUND);
        // Not registered any more: the next snapshot without it applies.
        assert_eq!(
            r.on_snapshot(&pid(), &list(&["b"]), &list(&["c"]), t0 + BOUND),
            Verdict::Apply
        );
    }

    /// Registering again is asked at most once per bound for one provider:
    /// a backend that keeps losing this node is not masked.
    #[test]
    fn registering_again_is_asked_at_most_once_per_bound() {
        let t0 = Instant::now();
        let mut r = rule();
        let two = list(&["a", "b"]);
        r.on_snapshot(&pid(), &[], &two, t0);
        let hold = |r: &mut SelfPresence, at: Instant| {
            let v = r.on_snapshot(&pid(), &two, &list(&["b"]), at);
            r.on_snapshot(&pid(), &two, &two, at);
            match v {
                Verdict::Hold { reregister, .. } => reregister,
                other => panic!("{other:?}"),
            }
        };
        assert!(hold(&mut r, t0));
        assert!(!hold(&mut r, t0 + Duration::from_secs(1)));
        assert!(!hold(&mut r, t0 + BOUND - Duration::from_millis(1)));
        assert!(hold(&mut r, t0 + BOUND));
    }

    /// Off without a local member or with a zero bound.
    #[test]
    fn off_without_local_member_or_bound() {
        let t0 = Instant::now();
        for mut r in [
            SelfPresence::new(None, BOUND),
            SelfPresence::new(Some((NodeId::new("a").unwrap(), 1)), Duration::ZERO),
        ] {
            let three = list(&["a", "b", "c"]);
            r.on_snapshot(&pid(), &[], &three, t0);
            assert_eq!(r.on_snapshot(&pid(), &three, &[], t0), Verdict::Apply);
        }
    }

    /// Another incarnation of this node does not count as this node.
    #[test]
    fn another_incarnation_is_not_this_node() {
        let t0 = Instant::now();
        let mut r = rule();
        let two = list(&["a", "b"]);
        r.on_snapshot(&pid(), &[], &two, t0);
        let mut newer = list(&["a", "b"]);
        newer[0].incarnation = 2;
        assert!(is_hold(r.on_snapshot(&pid(), &two, &newer, t0)));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Snap(Vec<bool>),
        Wait(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => proptest::collection::vec(any::<bool>(), 6).prop_map(Op::Snap),
            1 => (0u16..20_000).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Laws of the rule, over any sequence of snapshots and waits:
        /// 1. once this node was listed, an applied snapshot without it is
        ///    only ever one released by the bound;
        /// 2. no hold outlives the bound (a tick at the deadline ends it);
        /// 3. a snapshot that lists this node and removes at most half of
        ///    the applied members, outside a hold, applies at once.
        #[test]
        fn self_presence_laws(ops in proptest::collection::vec(op(), 1..60)) {
            let names = ["a", "b", "c", "d", "e", "f"];
            let t0 = Instant::now();
            let mut now = t0;
            let mut r = rule();
            let mut applied: Vec<Member> = Vec::new();
            let mut ever_listed = false;
            let mut hold_since: Option<Instant> = None;
            for o in ops {
                match o {
                    Op::Snap(bits) => {
                        let snap: Vec<Member> = names
                            .iter()
                            .zip(&bits)
                            .filter(|(_, b)| **b)
                            .map(|(n, _)| m(n))
                            .collect();
                        let has_self = bits[0];
                        let kept = applied.iter().filter(|x| snap.contains(x)).count();
                        let mild = has_self && (applied.len() - kept) * 2 <= applied.len();
                        let holding = r.is_holding(&pid());
                        let v = r.on_snapshot(&pid(), &applied, &snap, now);
                        if !holding && mild {
                            prop_assert!(matches!(v, Verdict::Apply), "{:?}", v);
                        }
                        match v {
                            Verdict::Apply | Verdict::ApplyEndingHold { .. } => {
                                if ever_listed {
                                    prop_assert!(has_self, "applied without this node");
                                }
                                ever_listed |= has_self;
                                hold_since = None;
                                applied = snap;
                            }
                            Verdict::Hold { first, .. } => {
                                if first { hold_since = Some(now); }
                            }
                        }
                    }
                    Op::Wait(ms) => {
                        now += Duration::from_millis(u64::from(ms));
                        if let Some(d) = r.next_deadline() && d <= now {
                            for rel in r.tick(now) {
                                applied = rel.members;
                                ever_listed = rel.lists_self;
                                hold_since = None;
                            }
                        }
                        if let Some(s) = hold_since {
                            prop_assert!(now.duration_since(s) < BOUND, "hold outlived the bound");
                        }
                    }
                }
            }
        }
    }
}
