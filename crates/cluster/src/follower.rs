//! The topology follower (issue 13, item 3): the one way every consumer
//! (PlacementSupervisor, PartitionManager, Remoting) takes in what the
//! ProvisioningSupervisor publishes (A6). A pure core, no IO, no actors,
//! no time; the consumers feed it the events their mailbox delivers and act
//! on what [`TopologyFollower::step`] returns.
//!
//! # What it follows
//!
//! One publication of the ProvisioningSupervisor is a *round* with one
//! `seq_no`, published in this order (`docs/provisioning.md`, "Events and
//! ordering"):
//!
//! ```text
//! RemoteNodeQuarantined(s)*  TopologyUpdated(s)  ProvisioningStatusChanged(s)?  ProviderChanged(s)?
//! ```
//!
//! Every `TopologyUpdated` carries the **whole** published state (members,
//! blocked incarnations, status, active provider), not a change: the
//! newest one applied is the follower's *view*, and nothing else is needed
//! to act. The other events say something early (a quarantine, before its
//! topology) or name the reason of a change (a provider change, after its
//! topology).
//!
//! # State machine
//!
//! ```text
//!            first TopologyUpdated, or the catch-up answer (seq_no > 0)
//!   Fresh ───────────────────────────────────────────────────────────► Following(applied)
//!     │                                                                   │   ▲
//!     └── catch-up: one successful pull of the current topology, at ─────┘   │
//!         most once in the life of the follower (a restarted consumer        │
//!         keeps its follower and does not pull again)                        │
//!                                                       TopologyUpdated(s > applied)
//! ```
//!
//! The catch-up itself, beside the view:
//!
//! ```text
//!   Idle ──begin_catch_up──► InFlight ──caught_up──────────────► Done
//!    ▲                          │
//!    │   catch_up_failed,       │ catch_up_failed, a view applied
//!    │   no view applied:       └──────────────────────────────► Done
//!    └── retry after 100 ms, doubling up to 5 s
//! ```
//!
//! In `Following(applied)`, by event (`s` its seq_no):
//!
//! | event | `s <= applied` | `s == applied + 1` | `s > applied + 1` |
//! |---|---|---|---|
//! | `TopologyUpdated` | stale or duplicate: dropped | applied: the view | a **gap**: applied, `missed = s - applied - 1` counted |
//! | `RemoteNodeQuarantined` | already in the view (blocked or absent): dropped | **act at once** (kept as *pending* until a topology `>= s`); the same incarnation again: dropped | the same |
//! | `ProviderChanged` | `s == applied`: the change of the view (reported once); older: dropped | **ahead**: the view is *behind* until a topology `>= s` | the same |
//! | `ProvisioningStatusChanged` | dropped: the status is read from the topology only | ahead: behind until a topology `>= s` | the same |
//!
//! Before the first topology (`Fresh`) a quarantine or a provider change is
//! kept the same way (pending, or behind), and the first topology is never
//! a gap.
//!
//! Laws (property-tested below, over arbitrary interleavings of delivered,
//! duplicated, reordered and lost events):
//!
//! 1. the view's `seq_no` never goes back;
//! 2. the view is the topology of the greatest `seq_no` delivered (the
//!    catch-up answer counts as delivered);
//! 3. a pending quarantine always has a `seq_no` greater than the view's,
//!    and every quarantine delivered ahead of its topology is reported
//!    exactly once;
//! 4. delivered in publication order without loss, nothing is a gap and
//!    nothing is behind.
//!
//! # Gaps
//!
//! The supervisor increments `seq_no` by one per published topology, so a
//! `TopologyUpdated` more than one ahead of the view means topologies were
//! not delivered (the EventStream drops only for a subscriber with a bounded
//! mailbox; the consumers' mailboxes are unbounded, so in practice a gap is
//! a bug or a future bounded mailbox). A gap is **not** a reason to pull:
//! the newer topology carries everything the missed ones did (a missed
//! quarantine is in its blocked set, a missed provider change in its
//! `active_provider`, a missed status in its status), so it is applied like
//! any other, and the step reports `missed` so the consumer can log and
//! count it (consumers recompute from the whole view, never from a diff,
//! so nothing else is lost). A provider or status change *ahead* of the
//! view means its topology is still to come (or was lost): the follower
//! says it is *behind* ([`TopologyFollower::behind`]) until a topology of
//! that `seq_no` or newer arrives, and consumers do not place on a view
//! older than a change they have been told about (R3.4).
//!
//! # Catch-up
//!
//! A consumer subscribes first, then asks the follower whether to catch up
//! ([`TopologyFollower::begin_catch_up`], true once in its life) and pulls
//! the current topology once; the answer goes through
//! [`TopologyFollower::caught_up`] with the same rules as a
//! `TopologyUpdated` (events already applied from the mailbox win if
//! newer, a `seq_no` of 0, nothing published yet, is not a topology).
//! After that the follower never asks again: not after a gap, not after a
//! provider change ahead of the view, not after a restart of the consumer
//! (the consumers keep the follower outside the restartable actor state).
//!
//! A failed pull (an ask timeout, a supervisor restarting) is not a pull:
//! [`TopologyFollower::catch_up_failed`] gives the delay after which the
//! consumer tries again (100 ms, doubling up to 5 s), as long as no view
//! is applied. Without the retry, a consumer whose pull failed would wait
//! for the next publication, which a stable cluster may never make.
//! Exactly one *successful* pull stays the law; once a view is applied
//! (from the EventStream, which the consumer subscribed to before pulling)
//! nothing is pulled any more.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cluster_core::events::{
    ProviderChanged, ProvisioningStatusChanged, RemoteNodeQuarantined, TopologyUpdated,
};
use cluster_core::{NodeId, Topology};
use provisioning_actors::ProvisioningHandle;

/// An event of the ProvisioningSupervisor, as the follower takes it.
#[derive(Clone, Debug)]
pub enum FollowerInput {
    /// A new topology.
    Topology(TopologyUpdated),
    /// A node incarnation was quarantined (its topology follows).
    Quarantined(RemoteNodeQuarantined),
    /// The active provider changed (after its topology).
    ProviderChanged(ProviderChanged),
    /// The status changed (after its topology; the status itself is read
    /// from the topology).
    StatusChanged(ProvisioningStatusChanged),
}

impl FollowerInput {
    /// The event's `seq_no`.
    pub fn seq_no(&self) -> u64 {
        match self {
            Self::Topology(t) => t.topology.seq_no,
            Self::Quarantined(q) => q.seq_no,
            Self::ProviderChanged(c) => c.seq_no,
            Self::StatusChanged(s) => s.seq_no,
        }
    }
}

impl From<TopologyUpdated> for FollowerInput {
    fn from(e: TopologyUpdated) -> Self {
        Self::Topology(e)
    }
}

impl From<RemoteNodeQuarantined> for FollowerInput {
    fn from(e: RemoteNodeQuarantined) -> Self {
        Self::Quarantined(e)
    }
}

impl From<ProviderChanged> for FollowerInput {
    fn from(e: ProviderChanged) -> Self {
        Self::ProviderChanged(e)
    }
}

impl From<ProvisioningStatusChanged> for FollowerInput {
    fn from(e: ProvisioningStatusChanged) -> Self {
        Self::StatusChanged(e)
    }
}

/// Why an event changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Its `seq_no` is not newer than the view (a duplicate, a late
    /// delivery, or already reflected in the view).
    Stale,
    /// The same quarantine or provider change was already reported.
    Duplicate,
    /// A status change of the view's `seq_no` or older: the status is read
    /// from the topology.
    StatusInTopology,
}

/// What the consumer does after a step.
#[derive(Clone, Debug)]
pub enum Step {
    /// A new view: recompute everything from [`TopologyFollower::view`].
    Applied {
        /// The view before.
        previous: Arc<Topology>,
        /// Topologies skipped (a gap; 0 normally). See the [module
        /// documentation](self#gaps).
        missed: u64,
    },
    /// A node incarnation is quarantined and the view does not show it yet:
    /// act at once (stop routing to it, drop and refuse it).
    Quarantined(RemoteNodeQuarantined),
    /// The active provider changed. `ahead`: its topology is not in the view
    /// yet, the follower is [`behind`](TopologyFollower::behind) until it is.
    ProviderChanged {
        /// The change.
        change: ProviderChanged,
        /// Whether it is ahead of the view.
        ahead: bool,
    },
    /// A status change ahead of the view: behind until its topology.
    Ahead(u64),
    /// Nothing to do.
    Ignored(Ignored),
}

/// The follower (see the [module documentation](self)).
#[derive(Clone, Debug)]
pub struct TopologyFollower {
    view: Arc<Topology>,
    /// `None` while `Fresh`.
    applied: Option<u64>,
    /// Quarantines ahead of the view, in arrival order.
    pending: Vec<RemoteNodeQuarantined>,
    /// The last provider change reported.
    provider: Option<ProviderChanged>,
    /// A change ahead of the view: behind until a topology of this seq_no.
    behind: Option<u64>,
    catch_up: CatchUpState,
    /// Failed pulls in a row (the retry delay doubles with each).
    failed_pulls: u32,
    gaps: u64,
    missed: u64,
}

impl Default for TopologyFollower {
    fn default() -> Self {
        Self::new()
    }
}

impl TopologyFollower {
    /// A fresh follower: the view is [`Topology::starting`], nothing applied.
    pub fn new() -> Self {
        Self {
            view: Arc::new(Topology::starting()),
            applied: None,
            pending: Vec::new(),
            provider: None,
            behind: None,
            catch_up: CatchUpState::Idle,
            failed_pulls: 0,
            gaps: 0,
            missed: 0,
        }
    }

    /// The newest topology applied ([`Topology::starting`] before any).
    pub fn view(&self) -> &Arc<Topology> {
        &self.view
    }

    /// The `seq_no` of the view, `None` before the first topology.
    pub fn applied(&self) -> Option<u64> {
        self.applied
    }

    /// Quarantines delivered ahead of their topology, in arrival order.
    pub fn pending_quarantines(&self) -> &[RemoteNodeQuarantined] {
        &self.pending
    }

    /// Whether `(node, incarnation)` must not be used: blocked in the view,
    /// or quarantined ahead of it.
    pub fn is_excluded(&self, node: &NodeId, incarnation: u64) -> bool {
        self.view.is_blocked(node, incarnation)
            || self
                .pending
                .iter()
                .any(|q| &q.node == node && q.incarnation == incarnation)
    }

    /// Whether `node`, at the incarnation the view lists, must not be used
    /// (a node the view does not list is not excluded by this).
    pub fn is_member_excluded(&self, node: &NodeId) -> bool {
        self.view
            .member(node)
            .is_some_and(|m| self.is_excluded(node, m.incarnation))
    }

    /// The last provider change reported.
    pub fn provider_change(&self) -> Option<&ProviderChanged> {
        self.provider.as_ref()
    }

    /// `Some(s)` while a provider or status change of `seq_no` `s` is ahead
    /// of the view (its topology has not arrived).
    pub fn behind(&self) -> Option<u64> {
        self.behind
    }

    /// Gaps seen, and topologies missed in them.
    pub fn gaps(&self) -> (u64, u64) {
        (self.gaps, self.missed)
    }

    /// True when the consumer pulls the current topology now and hands it
    /// to [`caught_up`](Self::caught_up) (or reports the failure to
    /// [`catch_up_failed`](Self::catch_up_failed)): once in the follower's
    /// life, and again after a failed pull as long as no view is applied.
    pub fn begin_catch_up(&mut self) -> bool {
        match self.catch_up {
            CatchUpState::Idle if self.failed_pulls > 0 && self.applied.is_some() => {
                // A retry, and the EventStream delivered a view meanwhile.
                self.catch_up = CatchUpState::Done;
                false
            }
            CatchUpState::Idle => {
                self.catch_up = CatchUpState::InFlight;
                true
            }
            CatchUpState::InFlight | CatchUpState::Done => false,
        }
    }

    /// Whether the catch-up is still to be done: never pulled, or the
    /// last pull failed and no view is applied (a restarted consumer asks
    /// this to resume the retries its previous instance scheduled).
    pub fn needs_catch_up(&self) -> bool {
        self.catch_up == CatchUpState::Idle && (self.failed_pulls == 0 || self.applied.is_none())
    }

    /// The pull failed: `Some(delay)` after which to pull again (100 ms,
    /// doubling up to 5 s), or `None` when a view is applied meanwhile
    /// (the catch-up is then done: the EventStream delivered a topology).
    pub fn catch_up_failed(&mut self) -> Option<Duration> {
        if self.applied.is_some() {
            self.catch_up = CatchUpState::Done;
            return None;
        }
        self.catch_up = CatchUpState::Idle;
        self.failed_pulls = self.failed_pulls.saturating_add(1);
        Some(retry_delay(self.failed_pulls))
    }

    /// The answer of the one pull: applied like a `TopologyUpdated` (never
    /// counted as a gap: it is not a delivery of the EventStream).
    pub fn caught_up(&mut self, topology: Arc<Topology>) -> Step {
        self.catch_up = CatchUpState::Done;
        if topology.seq_no == 0 {
            // Nothing has been published yet.
            return Step::Ignored(Ignored::Stale);
        }
        self.apply(topology, false)
    }

    /// Takes one event (see the table in the [module
    /// documentation](self#state-machine)).
    pub fn step(&mut self, input: impl Into<FollowerInput>) -> Step {
        let input = input.into();
        let s = input.seq_no();
        let newer = self.applied.is_none_or(|a| s > a);
        match input {
            FollowerInput::Topology(t) => {
                if !newer || t.topology.seq_no == 0 {
                    return Step::Ignored(Ignored::Stale);
                }
                self.apply(t.topology, true)
            }
            FollowerInput::Quarantined(q) => {
                if !newer {
                    return Step::Ignored(Ignored::Stale);
                }
                let known = self
                    .pending
                    .iter()
                    .any(|p| p.node == q.node && p.incarnation == q.incarnation);
                if known {
                    return Step::Ignored(Ignored::Duplicate);
                }
                self.pending.push(q.clone());
                Step::Quarantined(q)
            }
            FollowerInput::ProviderChanged(c) => {
                if self.applied.is_some_and(|a| s < a) {
                    return Step::Ignored(Ignored::Stale);
                }
                if self.provider.as_ref().is_some_and(|p| p.seq_no >= s) {
                    return Step::Ignored(Ignored::Duplicate);
                }
                self.provider = Some(c.clone());
                if newer {
                    self.behind = Some(self.behind.map_or(s, |b| b.max(s)));
                }
                Step::ProviderChanged {
                    change: c,
                    ahead: newer,
                }
            }
            FollowerInput::StatusChanged(_) => {
                if !newer {
                    return Step::Ignored(Ignored::StatusInTopology);
                }
                self.behind = Some(self.behind.map_or(s, |b| b.max(s)));
                Step::Ahead(s)
            }
        }
    }

    fn apply(&mut self, topology: Arc<Topology>, count_gap: bool) -> Step {
        let s = topology.seq_no;
        if self.applied.is_some_and(|a| s <= a) {
            return Step::Ignored(Ignored::Stale);
        }
        let missed = match self.applied {
            Some(a) if count_gap => s - a - 1,
            _ => 0,
        };
        if missed > 0 {
            self.gaps += 1;
            self.missed += missed;
        }
        self.applied = Some(s);
        self.pending.retain(|q| q.seq_no > s);
        if self.behind.is_some_and(|b| b <= s) {
            self.behind = None;
        }
        let previous = std::mem::replace(&mut self.view, topology);
        Step::Applied { previous, missed }
    }
}

/// Where the catch-up is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CatchUpState {
    /// Not pulled yet, or the last pull failed.
    Idle,
    /// A pull is under way.
    InFlight,
    /// One pull succeeded, or a view arrived after a failed one.
    Done,
}

/// The first retry of a failed pull.
pub const CATCH_UP_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two pulls.
pub const CATCH_UP_RETRY_MAX: Duration = Duration::from_secs(5);

/// The pause after the `failures`-th failed pull in a row (from 1).
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    CATCH_UP_RETRY_FIRST
        .saturating_mul(1 << doublings)
        .min(CATCH_UP_RETRY_MAX)
}

type Pull = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = cluster_core::Result<Arc<Topology>>> + Send>>
        + Send
        + Sync,
>;

/// Where a consumer's catch-up pulls the current topology from: the
/// ProvisioningSupervisor ([`From<ProvisioningHandle>`]), or any function
/// (tests: a supervisor whose first answer fails).
#[derive(Clone)]
pub struct TopologySource(Pull);

impl std::fmt::Debug for TopologySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TopologySource(..)")
    }
}

impl TopologySource {
    /// A source that calls `pull`.
    pub fn from_fn<F, Fut>(pull: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = cluster_core::Result<Arc<Topology>>> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(pull())))
    }

    /// Pulls the current topology once.
    pub async fn topology(&self) -> cluster_core::Result<Arc<Topology>> {
        (self.0)().await
    }
}

impl From<ProvisioningHandle> for TopologySource {
    fn from(p: ProvisioningHandle) -> Self {
        Self::from_fn(move || {
            let p = p.clone();
            async move { p.topology().await }
        })
    }
}

/// What [`SharedFollower::catch_up_once`] did.
#[derive(Clone, Debug)]
pub enum CatchUp {
    /// The pull answered; the answer was applied like a topology.
    Pulled(Step),
    /// Nothing to do: done before, or under way, or no source.
    Skipped,
    /// The pull failed and no view is applied: pull again after the delay
    /// (the consumer schedules it).
    Retry(Duration),
}

/// A follower shared by the successive instances of one consumer actor, so
/// that a restarted instance resumes from the view instead of pulling again.
#[derive(Clone, Debug, Default)]
pub struct SharedFollower(Arc<Mutex<TopologyFollower>>);

impl SharedFollower {
    /// A fresh one.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks it (a poisoned lock is taken over: the follower's state is
    /// consistent after every method).
    pub fn lock(&self) -> MutexGuard<'_, TopologyFollower> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The one catch-up of the follower's life: pulls the current topology
    /// from `source` if no pull has succeeded before, and applies it. On a
    /// failure (logged) with no view applied, [`CatchUp::Retry`] says when
    /// to call this again.
    pub async fn catch_up_once(&self, source: Option<&TopologySource>) -> CatchUp {
        let Some(source) = source else {
            return CatchUp::Skipped;
        };
        if !self.lock().begin_catch_up() {
            return CatchUp::Skipped;
        }
        match source.topology().await {
            Ok(t) => CatchUp::Pulled(self.lock().caught_up(t)),
            Err(e) => match self.lock().catch_up_failed() {
                Some(delay) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "could not read the current topology; trying again");
                    CatchUp::Retry(delay)
                }
                None => {
                    tracing::debug!(error = %e, "could not read the current topology; a newer one was delivered meanwhile");
                    CatchUp::Skipped
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::events::ChangeReason;
    use cluster_core::{
        BlockedMember, Member, MemberAddress, ProviderId, ProvisioningStatus, TopologyDiff,
        TopologyHash,
    };
    use proptest::prelude::*;

    fn nid(n: &str) -> NodeId {
        NodeId::new(n).expect("id")
    }

    fn topo(seq_no: u64, names: &[&str], blocked: &[(&str, u64)]) -> Arc<Topology> {
        let members: Vec<Member> = names
            .iter()
            .map(|n| Member::new(nid(n), MemberAddress::new("127.0.0.1", 4000).expect("a"), 1))
            .collect();
        let hash = TopologyHash::of(&members);
        Arc::new(Topology {
            members: Arc::from(members),
            blocked: blocked
                .iter()
                .map(|(n, i)| BlockedMember {
                    node_id: nid(n),
                    incarnation: *i,
                })
                .collect(),
            status: ProvisioningStatus::Active,
            hash,
            seq_no,
            active_provider: None,
            stale: false,
        })
    }

    fn updated(t: Arc<Topology>) -> TopologyUpdated {
        TopologyUpdated {
            topology: t,
            previous_hash: TopologyHash::default(),
            diff: Arc::new(TopologyDiff::default()),
        }
    }

    fn quarantined(node: &str, incarnation: u64, seq_no: u64) -> RemoteNodeQuarantined {
        RemoteNodeQuarantined {
            node: nid(node),
            incarnation,
            reason: "heartbeat timeout".into(),
            seq_no,
        }
    }

    fn changed(seq_no: u64) -> ProviderChanged {
        ProviderChanged {
            from: None,
            to: Some(ProviderId::new("b").expect("id")),
            reason: ChangeReason::StreamEnded,
            seq_no,
            hash: TopologyHash::default(),
        }
    }

    fn status(seq_no: u64) -> ProvisioningStatusChanged {
        ProvisioningStatusChanged {
            previous: ProvisioningStatus::Active,
            status: ProvisioningStatus::Degraded,
            seq_no,
        }
    }

    #[test]
    fn a_topology_is_applied_once_and_older_ones_are_dropped() {
        let mut f = TopologyFollower::new();
        assert_eq!(f.applied(), None);
        assert!(matches!(
            f.step(updated(topo(1, &["a"], &[]))),
            Step::Applied { missed: 0, .. }
        ));
        assert!(matches!(
            f.step(updated(topo(1, &["z"], &[]))),
            Step::Ignored(Ignored::Stale)
        ));
        assert!(matches!(
            f.step(updated(topo(2, &["a", "b"], &[]))),
            Step::Applied { missed: 0, .. }
        ));
        assert!(matches!(
            f.step(updated(topo(1, &["z"], &[]))),
            Step::Ignored(Ignored::Stale)
        ));
        assert_eq!(f.applied(), Some(2));
        assert_eq!(f.view().members.len(), 2);
    }

    /// The gap rule: a topology more than one ahead is applied (it carries
    /// everything), the gap is counted and reported, and nothing asks for a
    /// pull (`begin_catch_up` stays spent).
    #[test]
    fn a_gap_is_applied_counted_and_never_pulls() {
        let mut f = TopologyFollower::new();
        assert!(f.begin_catch_up());
        f.caught_up(topo(3, &["a"], &[]));
        match f.step(updated(topo(7, &["a", "b"], &[("c", 1)]))) {
            Step::Applied { previous, missed } => {
                assert_eq!(previous.seq_no, 3);
                assert_eq!(missed, 3);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(f.gaps(), (1, 3));
        // The missed quarantine of c is in the new view's blocked set.
        assert!(f.is_excluded(&nid("c"), 1));
        assert!(!f.begin_catch_up(), "no second pull, not even after a gap");
        // The first topology of a fresh follower is not a gap.
        let mut g = TopologyFollower::new();
        assert!(matches!(
            g.step(updated(topo(9, &["a"], &[]))),
            Step::Applied { missed: 0, .. }
        ));
        assert_eq!(g.gaps(), (0, 0));
    }

    #[test]
    fn catch_up_happens_once_and_loses_to_newer_events() {
        let mut f = TopologyFollower::new();
        f.step(updated(topo(5, &["a", "b"], &[])));
        assert!(f.begin_catch_up());
        assert!(!f.begin_catch_up());
        // The pull answered an older topology than the mailbox delivered.
        assert!(matches!(
            f.caught_up(topo(4, &["z"], &[])),
            Step::Ignored(Ignored::Stale)
        ));
        assert_eq!(f.applied(), Some(5));
        // Nothing published yet: seq_no 0 is not a topology.
        let mut g = TopologyFollower::new();
        assert!(g.begin_catch_up());
        assert!(matches!(
            g.caught_up(Arc::new(Topology::starting())),
            Step::Ignored(Ignored::Stale)
        ));
        assert_eq!(g.applied(), None);
    }

    /// A failed pull is not a pull: retried with a doubling delay (100 ms
    /// up to 5 s) while no view is applied; one success ends it, and so
    /// does a view delivered meanwhile.
    #[test]
    fn a_failed_pull_is_retried_until_one_succeeds() {
        let ms = Duration::from_millis;
        let mut f = TopologyFollower::new();
        assert!(f.needs_catch_up());
        assert!(f.begin_catch_up());
        assert!(!f.begin_catch_up(), "one pull at a time");
        let delays: Vec<_> = (0..8)
            .map(|_| {
                let d = f.catch_up_failed().expect("no view: retry");
                assert!(f.needs_catch_up());
                assert!(f.begin_catch_up(), "pulls again after a failure");
                d
            })
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000]
                .map(ms)
                .to_vec()
        );
        assert!(matches!(
            f.caught_up(topo(2, &["a"], &[])),
            Step::Applied { .. }
        ));
        assert!(!f.needs_catch_up());
        assert!(!f.begin_catch_up(), "exactly one successful pull");
        // A view delivered while a retry is scheduled ends the catch-up.
        let mut g = TopologyFollower::new();
        assert!(g.begin_catch_up());
        assert!(g.catch_up_failed().is_some());
        g.step(updated(topo(1, &["a"], &[])));
        assert!(!g.needs_catch_up());
        assert!(!g.begin_catch_up());
        // A failure after a view arrived while pulling: no retry.
        let mut h = TopologyFollower::new();
        assert!(h.begin_catch_up());
        h.step(updated(topo(1, &["a"], &[])));
        assert_eq!(h.catch_up_failed(), None);
        assert!(!h.begin_catch_up());
    }

    /// The pull of [`SharedFollower::catch_up_once`]: a failing source is
    /// asked again only after [`CatchUp::Retry`], and never after a success.
    #[tokio::test]
    async fn catch_up_once_asks_for_a_retry_after_a_failure() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let source = TopologySource::from_fn(move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(cluster_core::ProvisioningError::Supervisor(
                        "ask timed out".into(),
                    ))
                } else {
                    Ok(topo(3, &["a"], &[]))
                }
            }
        });
        let f = SharedFollower::new();
        assert!(matches!(f.catch_up_once(None).await, CatchUp::Skipped));
        assert!(matches!(
            f.catch_up_once(Some(&source)).await,
            CatchUp::Retry(d) if d == CATCH_UP_RETRY_FIRST
        ));
        assert!(matches!(
            f.catch_up_once(Some(&source)).await,
            CatchUp::Pulled(Step::Applied { .. })
        ));
        assert!(matches!(
            f.catch_up_once(Some(&source)).await,
            CatchUp::Skipped
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(f.lock().applied(), Some(3));
    }

    /// A6: a quarantine ahead of its topology is reported once, excludes
    /// the incarnation at once, and is dropped when its topology arrives
    /// (which shows it blocked); one of an older round is dropped.
    #[test]
    fn a6_a_quarantine_acts_at_once_until_its_topology() {
        let mut f = TopologyFollower::new();
        f.step(updated(topo(1, &["a", "b"], &[])));
        assert!(!f.is_member_excluded(&nid("b")));
        assert!(matches!(
            f.step(quarantined("b", 1, 2)),
            Step::Quarantined(_)
        ));
        assert!(f.is_excluded(&nid("b"), 1));
        assert!(f.is_member_excluded(&nid("b")));
        assert!(!f.is_excluded(&nid("b"), 2), "only that incarnation");
        assert!(matches!(
            f.step(quarantined("b", 1, 2)),
            Step::Ignored(Ignored::Duplicate)
        ));
        f.step(updated(topo(2, &["a"], &[("b", 1)])));
        assert!(f.pending_quarantines().is_empty());
        assert!(f.is_excluded(&nid("b"), 1), "blocked in the view now");
        assert!(matches!(
            f.step(quarantined("b", 1, 2)),
            Step::Ignored(Ignored::Stale)
        ));
    }

    /// R3.4: a provider change after its topology is reported once; one
    /// ahead of the view makes the follower behind until its topology.
    #[test]
    fn r3_4_a_provider_change_ahead_of_its_topology_means_behind() {
        let mut f = TopologyFollower::new();
        f.step(updated(topo(4, &["a"], &[])));
        assert!(matches!(
            f.step(changed(4)),
            Step::ProviderChanged { ahead: false, .. }
        ));
        assert_eq!(f.behind(), None);
        assert!(matches!(
            f.step(changed(4)),
            Step::Ignored(Ignored::Duplicate)
        ));
        assert!(matches!(f.step(changed(3)), Step::Ignored(Ignored::Stale)));
        assert!(matches!(
            f.step(changed(6)),
            Step::ProviderChanged { ahead: true, .. }
        ));
        assert_eq!(f.behind(), Some(6));
        f.step(updated(topo(5, &["a"], &[])));
        assert_eq!(f.behind(), Some(6), "still behind: 5 < 6");
        f.step(updated(topo(6, &["b"], &[])));
        assert_eq!(f.behind(), None);
        assert_eq!(f.provider_change().map(|c| c.seq_no), Some(6));
    }

    #[test]
    fn status_is_read_from_the_topology_only() {
        let mut f = TopologyFollower::new();
        f.step(updated(topo(2, &["a"], &[])));
        assert!(matches!(
            f.step(status(2)),
            Step::Ignored(Ignored::StatusInTopology)
        ));
        assert!(matches!(f.step(status(3)), Step::Ahead(3)));
        assert_eq!(f.behind(), Some(3));
        f.step(updated(topo(3, &["a"], &[])));
        assert_eq!(f.behind(), None);
    }

    /// The topology the supervisor publishes in round `s` of `rounds`:
    /// members change from round to round, and the quarantines of this
    /// and earlier rounds (`quarantined`) are blocked in it. The catch-up
    /// answers the same one.
    fn round_topology(s: u64, quarantined: &[(String, u64)]) -> Arc<Topology> {
        let extra = format!("m{}", s % 3);
        let blocked: Vec<(&str, u64)> = quarantined.iter().map(|(n, i)| (n.as_str(), *i)).collect();
        topo(s, &["a", extra.as_str()], &blocked)
    }

    /// One round of publication: `RemoteNodeQuarantined*`, `TopologyUpdated`,
    /// `ProvisioningStatusChanged?`, `ProviderChanged?`, all with one seq_no.
    /// The topologies, by seq_no, are in `.1` (index 0 unused).
    fn rounds(
        n: u64,
        shape: &[(bool, bool, bool)],
    ) -> (Vec<Vec<FollowerInput>>, Vec<Arc<Topology>>) {
        let mut topologies = vec![Arc::new(Topology::starting())];
        let mut blocked: Vec<(String, u64)> = Vec::new();
        let rounds = (1..=n)
            .map(|s| {
                let (q, st, pc) = shape[usize::try_from(s - 1).expect("small") % shape.len()];
                let mut round = Vec::new();
                if q {
                    round.push(FollowerInput::from(quarantined(&format!("n{s}"), s, s)));
                    blocked.push((format!("n{s}"), s));
                }
                let t = round_topology(s, &blocked);
                topologies.push(t.clone());
                round.push(updated(t).into());
                if st {
                    round.push(status(s).into());
                }
                if pc {
                    round.push(changed(s).into());
                }
                round
            })
            .collect();
        (rounds, topologies)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Laws 1-3 over arbitrary deliveries: events of `n` rounds are
        /// delivered in any order, some twice, some never, optionally with a
        /// catch-up answer (the supervisor's topology of some round) in
        /// between.
        #[test]
        fn a6_follower_laws_hold_for_any_interleaving(
            n in 1u64..12,
            shape in proptest::collection::vec(any::<(bool, bool, bool)>(), 1..6),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..60),
            catch_up in proptest::option::of((any::<prop::sample::Index>(), 0u64..12)),
        ) {
            let (rounds, topologies) = rounds(n, &shape);
            let all: Vec<FollowerInput> = rounds.into_iter().flatten().collect();
            let mut f = TopologyFollower::new();
            let mut max_delivered: Option<u64> = None;
            let mut last = None;
            let mut reported: Vec<(NodeId, u64)> = Vec::new();
            for (i, pick) in picks.iter().enumerate() {
                if let Some((at, s)) = &catch_up
                    && at.index(picks.len().max(1)) == i
                    && f.begin_catch_up()
                {
                    let s = (*s).min(n);
                    let t = if s == 0 {
                        Arc::new(Topology::starting())
                    } else {
                        topologies[usize::try_from(s).expect("small")].clone()
                    };
                    f.caught_up(t);
                    if s > 0 {
                        max_delivered = max_delivered.max(Some(s));
                    }
                }
                let e = all[pick.index(all.len())].clone();
                if let FollowerInput::Topology(t) = &e {
                    max_delivered = max_delivered.max(Some(t.topology.seq_no));
                }
                let out = f.step(e.clone());
                if let Step::Quarantined(q) = &out {
                    let key = (q.node.clone(), q.incarnation);
                    // Law 3: reported at most once.
                    prop_assert!(!reported.contains(&key), "reported twice: {key:?}");
                    reported.push(key);
                }
                // Law 1: never back.
                prop_assert!(f.applied() >= last);
                last = f.applied();
                // Law 2: the view is the newest delivered, content and all.
                prop_assert_eq!(f.applied(), max_delivered);
                prop_assert_eq!(f.view().seq_no, max_delivered.unwrap_or(0));
                if let Some(s) = max_delivered {
                    let want = &topologies[usize::try_from(s).expect("small")];
                    prop_assert!(Arc::ptr_eq(f.view(), want), "view {:?} is not round {s}'s", f.view());
                }
                // Law 3: pending quarantines are ahead of the view, and a
                // quarantine the view shows is not pending.
                for q in f.pending_quarantines() {
                    prop_assert!(f.applied().is_none_or(|a| q.seq_no > a));
                    prop_assert!(!f.view().is_blocked(&q.node, q.incarnation));
                }
                // Every quarantine delivered is excluded, pending or blocked.
                for (node, incarnation) in &reported {
                    prop_assert!(f.is_excluded(node, *incarnation), "{node} {incarnation} used again");
                }
                // Behind only for a change ahead of the view.
                if let Some(b) = f.behind() {
                    prop_assert!(f.applied().is_none_or(|a| b > a));
                }
            }
        }

        /// A lost `TopologyUpdated` whose round's `ProviderChanged` is
        /// delivered: the follower is behind until the next topology, which
        /// is applied as a gap and clears it.
        #[test]
        fn r3_4_a_lost_topology_with_its_provider_change_is_behind_until_the_next(
            n in 2u64..12,
            lost in any::<prop::sample::Index>(),
        ) {
            // Every round has a provider change.
            let (rounds, _) = rounds(n, &[(false, false, true)]);
            let lost = 1 + lost.index(usize::try_from(n - 1).expect("small"));
            let mut f = TopologyFollower::new();
            for (i, round) in rounds.into_iter().enumerate() {
                let s = u64::try_from(i).expect("small") + 1;
                for e in round {
                    if i + 1 == lost && matches!(e, FollowerInput::Topology(_)) {
                        continue;
                    }
                    let out = f.step(e);
                    if i == lost && lost > 1 {
                        // The round after the lost one: a gap of one.
                        if let Step::Applied { missed, .. } = out {
                            prop_assert_eq!(missed, 1);
                        }
                    }
                }
                if i + 1 == lost {
                    prop_assert_eq!(f.behind(), Some(s), "behind the change of round {}", s);
                    prop_assert_eq!(f.applied(), (s > 1).then_some(s - 1));
                } else {
                    prop_assert_eq!(f.behind(), None, "round {}", s);
                    prop_assert_eq!(f.applied(), Some(s));
                }
            }
            prop_assert_eq!(f.gaps(), if lost > 1 { (1, 1) } else { (0, 0) });
        }

        /// Law 4: in publication order without loss, nothing is a gap,
        /// nothing is behind after a round, every quarantine is reported
        /// exactly once before its topology, and every provider change once.
        #[test]
        fn a6_in_order_delivery_has_no_gap_and_acts_on_everything(
            n in 1u64..20,
            shape in proptest::collection::vec(any::<(bool, bool, bool)>(), 1..6),
        ) {
            let mut f = TopologyFollower::new();
            let (mut quarantines, mut changes) = (0, 0);
            for round in rounds(n, &shape).0 {
                for e in round {
                    match f.step(e) {
                        Step::Applied { missed, .. } => prop_assert_eq!(missed, 0),
                        Step::Quarantined(_) => quarantines += 1,
                        Step::ProviderChanged { ahead, .. } => {
                            prop_assert!(!ahead);
                            changes += 1;
                        }
                        Step::Ahead(_) => prop_assert!(false, "nothing is ahead in order"),
                        Step::Ignored(_) => {}
                    }
                }
                prop_assert_eq!(f.behind(), None);
                prop_assert!(f.pending_quarantines().is_empty());
            }
            let all: Vec<FollowerInput> = rounds(n, &shape).0.into_iter().flatten().collect();
            let want_q = all.iter().filter(|e| matches!(e, FollowerInput::Quarantined(_))).count();
            let want_c = all.iter().filter(|e| matches!(e, FollowerInput::ProviderChanged(_))).count();
            prop_assert_eq!(quarantines, want_q);
            prop_assert_eq!(changes, want_c);
            prop_assert_eq!(f.gaps(), (0, 0));
            prop_assert_eq!(f.applied(), Some(n));
        }
    }
}
