//! The `TopologyMerger`: the pure core that turns the providers' latest
//! snapshots and the quarantine overlay into the [`Topology`] the
//! ProvisioningSupervisor publishes, with its hash and its diff against the
//! previously published one. No IO, no async, no clock reads: time enters
//! only as an `Instant` argument ([`TopologyMerger::expire`]).
//!
//! # Rules
//!
//! 1. **Snapshots.** [`TopologyMerger::on_refresh`] records a provider's
//!    latest snapshot (a *refresh*): canonicalized with
//!    [`canonicalize`] (sorted by node id, one member per node id), hashed
//!    once and kept as an `Arc<[Member]>`. Every call counts as one refresh,
//!    even when the content is identical: a provider re-delivering its list
//!    confirms it (the glitch rule and R4.4 count refreshes, not merges).
//! 2. **Policies.** The *candidate* member set of a merge is
//!    - [`MergePolicy::Priority`]: the active provider's snapshot (the active
//!      provider is decided by the failover policy and passed in);
//!    - [`MergePolicy::Union`]: every healthy provider's snapshot; a node
//!      listed by several takes the whole member version of the provider with
//!      the lowest priority value, ties broken by provider id. Providers are
//!      sorted first, so the order they are given in never matters.
//! 3. **Glitch rule (Priority).** One provider's one-off empty or truncated
//!    snapshot must not tear the cluster down when another healthy provider
//!    disagrees. The active provider's snapshot is a *suspect* when it is
//!    empty while the published members are not ([`GlitchKind::Emptied`]),
//!    or when it removes more than `glitch_fraction` (default 0.5) of the
//!    published members ([`GlitchKind::MassRemoval`]). A suspect is *disputed*
//!    when another healthy provider's snapshot still lists at least half of
//!    the removed node ids (by node id, any incarnation). A disputed suspect
//!    is held: the previous candidate set stays, the decision is
//!    [`MergeDecision::Held`], for at most `glitch_hold_snapshots` (default 1)
//!    consecutive refreshes of that provider; the next suspect refresh past
//!    that confirms the removal and is applied. Merges without a new refresh
//!    (health changes, quarantines) re-evaluate the dispute but never count
//!    as a confirmation; a non-suspect refresh ends the hold. Undisputed
//!    suspects are applied at once (a real mass departure); an applied empty
//!    set gives status [`ProvisioningStatus::Empty`] (R2.4).
//!    [`TopologyMerger::release_hold`] lets the caller apply a held snapshot
//!    early (e.g. after a deadline of its own). **Union never holds**: a
//!    member leaves the union only when no healthy provider lists it, which
//!    is exactly the glitch rule's "nobody disagrees" condition.
//! 4. **No input.** Without an active provider (Priority), when the active
//!    provider has no snapshot yet, or when no healthy provider has one
//!    (Union), the previous candidate set is kept
//!    ([`MergeDecision::NoInput`]), and so is the status unless it is
//!    Active or Empty (then recomputed, the overlay may still change); the
//!    supervisor reports the status. A topology restored with
//!    [`TopologyMerger::with_published`] stays `stale` until a merge with
//!    input.
//! 5. **Quarantine overlay (R4.2).** [`TopologyMerger::quarantine`] blocks
//!    one `(node, incarnation)`: from the next merge on it is removed from
//!    the published members and listed in `blocked` (sorted), even while no
//!    provider lists it. Another incarnation of the node is not blocked. In
//!    Union, a blocked version is not replaced by another provider's version
//!    of the node: the node stays out until its preferred provider moves on.
//! 6. **Reactivation (R4.4).** A block is lifted by the R4.4 rule only when
//!    Remoting reported the incarnation reachable
//!    ([`TopologyMerger::mark_reachable`]) *and* a refresh from the active
//!    provider, received after that report, is applied (not held) while the
//!    active provider is healthy, and lists that exact incarnation. If that
//!    first later refresh does not list it, the reachable report is consumed
//!    and Remoting must report again.
//! 7. **Supersede.** A block is dropped once the candidate set lists the node
//!    at a newer incarnation (the node restarted); quarantining an
//!    incarnation older than the one already listed is refused.
//! 8. **Clear and expiry.** [`TopologyMerger::clear`] lifts a block at once;
//!    a block may carry an expiry `Instant`, applied by
//!    [`TopologyMerger::expire`]`(now)`. Both take effect at the next merge.
//! 9. **Output.** [`TopologyMerger::merge`] returns the members (sorted,
//!    overlay applied), `blocked` (sorted), the hash
//!    ([`TopologyHash::of_sorted`]), status `Active` or `Empty` (the
//!    supervisor overrides to Degraded / Unavailable / Draining), and the
//!    diff against the previous output. `changed` is false when the hash,
//!    the blocked set and the status are all unchanged (R2.3: identical hash,
//!    nothing published); the diff is then empty. **seq_no is assigned by
//!    the caller**: it passes the number the topology gets *if* it changed
//!    (the supervisor owns one monotonic counter for all its events); an
//!    unchanged outcome keeps the previous topology and seq_no.
//!
//! # Cost
//!
//! Every step is a linear walk over sorted lists or a binary search, never a
//! nested scan: merge + diff + hash is O(n · providers) and O(q log n) for q
//! quarantined incarnations. Snapshots are shared, not copied: in Priority
//! without blocks the published members *are* the active snapshot's
//! `Arc<[Member]>`; equal snapshots of different providers share one
//! allocation; node ids are interned against the published set so that
//! copies share their `Arc<str>` and compare by pointer.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use cluster_core::{
    BlockedMember, Member, NodeId, ProviderId, ProvisioningStatus, Topology, TopologyDiff,
    TopologyHash, canonicalize,
};

/// How the candidate member set is chosen (rule 2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum MergePolicy {
    /// The active provider's members.
    #[default]
    Priority,
    /// Every healthy provider's members; conflicts resolved by priority,
    /// then provider id.
    Union,
}

/// The merger's settings.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct MergeConfig {
    /// Which providers contribute.
    pub policy: MergePolicy,
    /// A snapshot removing more than this fraction of the published members
    /// is a glitch suspect (rule 3). Default 0.5.
    pub glitch_fraction: f64,
    /// How many consecutive disputed suspect refreshes of one provider are
    /// held before the removal is applied (rule 3). Default 1; 0 disables the
    /// glitch rule.
    pub glitch_hold_snapshots: u32,
}

impl Default for MergeConfig {
    fn default() -> Self {
        Self {
            policy: MergePolicy::Priority,
            glitch_fraction: 0.5,
            glitch_hold_snapshots: 1,
        }
    }
}

impl MergeConfig {
    /// The defaults with `policy`.
    pub fn with_policy(policy: MergePolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }
}

/// What the merger needs to know about one provider at merge time.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ProviderInput {
    /// The provider.
    pub id: ProviderId,
    /// Lower is preferred.
    pub priority: u32,
    /// Whether the failover policy judges it healthy now.
    pub healthy: bool,
}

impl ProviderInput {
    /// A provider input.
    pub fn new(id: ProviderId, priority: u32, healthy: bool) -> Self {
        Self {
            id,
            priority,
            healthy,
        }
    }
}

/// A provider's latest snapshot as the merger keeps it.
#[derive(Clone, Debug)]
pub struct ProviderSnapshot {
    members: Arc<[Member]>,
    hash: TopologyHash,
    refresh: u64,
}

impl ProviderSnapshot {
    /// The members, canonical (sorted by node id, one per node id).
    pub fn members(&self) -> &Arc<[Member]> {
        &self.members
    }

    /// Their hash.
    pub fn hash(&self) -> TopologyHash {
        self.hash
    }

    /// Whether it lists this incarnation of `node`.
    pub fn lists(&self, node: &NodeId, incarnation: u64) -> bool {
        find(&self.members, node).is_some_and(|m| m.incarnation == incarnation)
    }
}

/// What [`TopologyMerger::on_refresh`] recorded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RefreshInfo {
    /// The hash of the canonical snapshot.
    pub hash: TopologyHash,
    /// The hash of the provider's previous snapshot, if it had one.
    pub previous_hash: Option<TopologyHash>,
    /// Members after canonicalization.
    pub members: usize,
}

impl RefreshInfo {
    /// The provider re-delivered what it had.
    pub fn unchanged(&self) -> bool {
        self.previous_hash == Some(self.hash)
    }
}

/// Which glitch suspect was held (rule 3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GlitchKind {
    /// The snapshot is empty while the published members are not.
    Emptied,
    /// The snapshot removes more than the configured fraction.
    MassRemoval,
}

/// Why a snapshot was held instead of applied.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HoldReason {
    /// Empty or truncated.
    pub kind: GlitchKind,
    /// The active provider whose snapshot is held.
    pub provider: ProviderId,
    /// Published node ids the snapshot would remove.
    pub removed: usize,
    /// Published members before.
    pub published: usize,
    /// The best-priority healthy provider that still lists them.
    pub disputed_by: ProviderId,
    /// Consecutive refreshes held so far (1 ..= `glitch_hold_snapshots`).
    pub held_snapshots: u32,
}

/// What the merge did with its input.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MergeDecision {
    /// The candidate set was applied.
    Applied,
    /// A glitch suspect was held; the previous candidate set stays (rule 3).
    Held {
        /// Why.
        reason: HoldReason,
    },
    /// Nothing to merge; the previous candidate set stays (rule 4).
    NoInput,
}

/// The result of a merge.
#[derive(Clone, Debug)]
pub struct MergeOutcome {
    /// The topology now published (the previous one, same `seq_no`, when
    /// nothing changed; only `active_provider` and `stale` may then differ).
    pub topology: Arc<Topology>,
    /// The hash of the previous topology.
    pub previous_hash: TopologyHash,
    /// What changed since the previous topology (empty when unchanged).
    pub diff: TopologyDiff,
    /// Whether the hash, the blocked set or the status changed (R2.3).
    pub changed: bool,
    /// Applied, held or no input.
    pub decision: MergeDecision,
}

#[derive(Clone, Debug)]
struct Quarantine {
    expires_at: Option<Instant>,
    /// The refresh counter when Remoting reported the incarnation reachable.
    reachable_after: Option<u64>,
}

#[derive(Clone, Debug)]
struct Hold {
    provider: ProviderId,
    /// The refresh that was held last.
    refresh: u64,
    count: u32,
}

struct Candidate {
    members: Arc<[Member]>,
    hash: Option<TopologyHash>,
}

/// The merge core. See the [module documentation](self) for its rules.
#[derive(Debug)]
pub struct TopologyMerger {
    config: MergeConfig,
    slots: BTreeMap<ProviderId, ProviderSnapshot>,
    quarantine: BTreeMap<BlockedMember, Quarantine>,
    /// The candidate set (before the overlay) of the last merge.
    base: Arc<[Member]>,
    base_hash: Option<TopologyHash>,
    /// Indices into `base` the overlay removed at the last merge.
    overlay_removed: Vec<u32>,
    published: Arc<Topology>,
    hold: Option<Hold>,
    released: Option<(ProviderId, u64)>,
    refreshes: u64,
}

impl TopologyMerger {
    /// A merger that has published nothing (status `Starting`).
    pub fn new(config: MergeConfig) -> Self {
        let empty: Arc<[Member]> = Arc::from(Vec::new());
        Self {
            config,
            slots: BTreeMap::new(),
            quarantine: BTreeMap::new(),
            base: empty,
            base_hash: Some(TopologyHash::of_sorted(&[])),
            overlay_removed: Vec::new(),
            published: Arc::new(Topology::starting()),
            hold: None,
            released: None,
            refreshes: 0,
        }
    }

    /// A merger continuing from `topology` (e.g. restored from the store):
    /// the next diff is against it, and its blocked incarnations stay
    /// quarantined (without expiry).
    pub fn with_published(config: MergeConfig, topology: Topology) -> Self {
        let mut merger = Self::new(config);
        merger.quarantine = topology
            .blocked
            .iter()
            .map(|b| {
                let q = Quarantine {
                    expires_at: None,
                    reachable_after: None,
                };
                (b.clone(), q)
            })
            .collect();
        merger.base = topology.members.clone();
        merger.base_hash = Some(TopologyHash::of_sorted(&topology.members));
        merger.published = Arc::new(topology);
        merger
    }

    /// The settings.
    pub fn config(&self) -> &MergeConfig {
        &self.config
    }

    /// The last topology returned by [`merge`](Self::merge).
    pub fn published(&self) -> &Arc<Topology> {
        &self.published
    }

    /// A provider's latest snapshot (R2.2: it stays available after its
    /// stream ended).
    pub fn snapshot(&self, provider: &ProviderId) -> Option<&ProviderSnapshot> {
        self.slots.get(provider)
    }

    /// Records a refresh from `provider` (rule 1). `members` may be in any
    /// order and contain duplicates.
    pub fn on_refresh(&mut self, provider: &ProviderId, mut members: Vec<Member>) -> RefreshInfo {
        // Strictly sorted input is already canonical: skip the sort.
        if !members.windows(2).all(|w| w[0].node_id < w[1].node_id) {
            canonicalize(&mut members);
        }
        self.refreshes += 1;
        let refresh = self.refreshes;
        let count = members.len();
        let previous_hash = self.slots.get(provider).map(|s| s.hash);
        // Node ids are interned against the provider's previous snapshot,
        // else the published set, else another provider's snapshot; the
        // same walk tells whether the snapshot equals that reference.
        let reference: (Arc<[Member]>, Option<TopologyHash>) = match self.slots.get(provider) {
            Some(p) => (p.members.clone(), Some(p.hash)),
            None if !self.base.is_empty() => (self.base.clone(), self.base_hash),
            None => match self.slots.values().next() {
                Some(s) => (s.members.clone(), Some(s.hash)),
                None => (self.base.clone(), self.base_hash),
            },
        };
        let (members, hash) = if intern_ids(&mut members, &reference.0) {
            let hash = reference
                .1
                .unwrap_or_else(|| TopologyHash::of_sorted(&members));
            (reference.0, hash)
        } else {
            drop(reference);
            let hash = TopologyHash::of_sorted(&members);
            let shared = self
                .slots
                .values()
                .filter(|s| s.hash == hash)
                .map(|s| &s.members)
                .chain(std::iter::once(&self.base).filter(|_| self.base_hash == Some(hash)))
                .find(|m| ***m == *members)
                .cloned();
            (shared.unwrap_or_else(|| Arc::from(members)), hash)
        };
        self.slots.insert(
            provider.clone(),
            ProviderSnapshot {
                members,
                hash,
                refresh,
            },
        );
        RefreshInfo {
            hash,
            previous_hash,
            members: count,
        }
    }

    /// Forgets a provider (removed from the configuration).
    pub fn remove_provider(&mut self, provider: &ProviderId) -> bool {
        if self.hold.as_ref().is_some_and(|h| &h.provider == provider) {
            self.hold = None;
        }
        self.slots.remove(provider).is_some()
    }

    /// Applies the currently held snapshot at the next merge, confirmed or
    /// not (rule 3). Returns whether a snapshot was held.
    pub fn release_hold(&mut self) -> bool {
        match self.hold.take() {
            Some(h) => {
                self.released = Some((h.provider, h.refresh));
                true
            }
            None => false,
        }
    }

    /// Blocks `incarnation` of `node` (R4.2) from the next merge on, until
    /// reactivated (R4.4), superseded, cleared or expired. Returns false when
    /// it was already blocked (its expiry is then replaced) or when the
    /// candidate set already lists a newer incarnation (nothing blocked).
    pub fn quarantine(
        &mut self,
        node: NodeId,
        incarnation: u64,
        expires_at: Option<Instant>,
    ) -> bool {
        if find(&self.base, &node).is_some_and(|m| m.incarnation > incarnation) {
            return false;
        }
        let key = BlockedMember {
            node_id: node,
            incarnation,
        };
        if let Some(q) = self.quarantine.get_mut(&key) {
            q.expires_at = expires_at;
            return false;
        }
        let q = Quarantine {
            expires_at,
            reachable_after: None,
        };
        self.quarantine.insert(key, q);
        true
    }

    /// Lifts a block at once (from the next merge on). Returns whether it
    /// was blocked.
    pub fn clear(&mut self, node: &NodeId, incarnation: u64) -> bool {
        self.quarantine.remove(&key(node, incarnation)).is_some()
    }

    /// Remoting reached this incarnation again: it is reactivated by the
    /// next applied healthy refresh of the active provider that lists it
    /// (R4.4). Returns whether it is blocked.
    pub fn mark_reachable(&mut self, node: &NodeId, incarnation: u64) -> bool {
        match self.quarantine.get_mut(&key(node, incarnation)) {
            Some(q) => {
                q.reachable_after = Some(self.refreshes);
                true
            }
            None => false,
        }
    }

    /// Whether this incarnation is blocked now (it may still be published
    /// until the next merge).
    pub fn is_quarantined(&self, node: &NodeId, incarnation: u64) -> bool {
        self.quarantine.contains_key(&key(node, incarnation))
    }

    /// The blocked incarnations, sorted.
    pub fn quarantined(&self) -> impl Iterator<Item = &BlockedMember> {
        self.quarantine.keys()
    }

    /// The blocked incarnations with their expiry, to checkpoint and give
    /// back to [`quarantine`](Self::quarantine) after a restart.
    pub fn quarantines(&self) -> Vec<(BlockedMember, Option<Instant>)> {
        self.quarantine
            .iter()
            .map(|(b, q)| (b.clone(), q.expires_at))
            .collect()
    }

    /// Lifts the blocks whose expiry is at or before `now`; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<BlockedMember> {
        let mut expired = Vec::new();
        self.quarantine.retain(|b, q| {
            let keep = q.expires_at.is_none_or(|t| t > now);
            if !keep {
                expired.push(b.clone());
            }
            keep
        });
        expired
    }

    /// The earliest quarantine expiry, to arm a timer for.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.quarantine.values().filter_map(|q| q.expires_at).min()
    }

    /// Merges the providers' latest snapshots and the quarantine overlay
    /// (rules 2 to 9). `providers` may come in any order (ids should be
    /// unique; for a repeated id the lowest priority, then healthy, wins);
    /// providers not listed are ignored. `active` is the failover policy's
    /// choice. `seq_no` is what the topology gets if it changed.
    pub fn merge(
        &mut self,
        providers: &[ProviderInput],
        active: Option<&ProviderId>,
        seq_no: u64,
    ) -> MergeOutcome {
        let providers = normalize(providers);
        let active_input = active.and_then(|id| providers.iter().copied().find(|p| &p.id == id));

        // Rules 2 to 4: the candidate set.
        let (decision, candidate) = match self.config.policy {
            MergePolicy::Priority => self.priority_candidate(&providers, active_input),
            MergePolicy::Union => self.union_candidate(&providers),
        };
        let no_input = candidate.is_none();
        let (base, base_hash) = match candidate {
            Some(c) => (c.members, c.hash),
            None => (self.base.clone(), self.base_hash),
        };

        // Rule 6 (R4.4): reactivation by an applied healthy refresh.
        if decision == MergeDecision::Applied
            && let Some(a) = active_input.filter(|a| a.healthy)
            && let Some(snap) = self.slots.get(&a.id)
        {
            self.quarantine.retain(|b, q| match q.reachable_after {
                Some(after) if snap.refresh > after => {
                    if snap.lists(&b.node_id, b.incarnation) {
                        false
                    } else {
                        q.reachable_after = None;
                        true
                    }
                }
                _ => true,
            });
        }
        // Rule 7: a newer listed incarnation supersedes the block.
        self.quarantine
            .retain(|b, _| find(&base, &b.node_id).is_none_or(|m| m.incarnation <= b.incarnation));

        // Rule 5 (R4.2): the overlay.
        let removed: Vec<u32> = self
            .quarantine
            .keys()
            .filter_map(|b| {
                let i = search(&base, &b.node_id).ok()?;
                (base[i].incarnation == b.incarnation).then_some(i as u32)
            })
            .collect();
        let (members, hash) = if removed.is_empty() {
            let h = base_hash.unwrap_or_else(|| TopologyHash::of_sorted(&base));
            (base.clone(), h)
        } else if Arc::ptr_eq(&base, &self.base) && removed == self.overlay_removed {
            (self.published.members.clone(), self.published.hash)
        } else {
            let kept = without(&base, &removed);
            let h = TopologyHash::of_sorted(&kept);
            (Arc::from(kept), h)
        };

        // Rule 9: output.
        let prev = self.published.clone();
        let blocked: Arc<[BlockedMember]> = if self.quarantine.keys().eq(prev.blocked.iter()) {
            prev.blocked.clone()
        } else {
            self.quarantine.keys().cloned().collect()
        };
        let keep_status = !matches!(
            prev.status,
            ProvisioningStatus::Active | ProvisioningStatus::Empty
        );
        let status = if no_input && keep_status {
            prev.status
        } else if members.is_empty() {
            ProvisioningStatus::Empty
        } else {
            ProvisioningStatus::Active
        };
        let changed =
            hash != prev.hash || status != prev.status || !Arc::ptr_eq(&blocked, &prev.blocked);
        let stale = prev.stale && no_input;
        let (topology, diff) = if changed {
            let diff = diff_sorted(&prev.members, &members, &prev.blocked, &blocked);
            let topology = Topology {
                members,
                blocked,
                status,
                hash,
                seq_no,
                active_provider: active.cloned(),
                stale,
            };
            (Arc::new(topology), diff)
        } else if prev.active_provider.as_ref() != active || prev.stale != stale {
            let mut topology = (*prev).clone();
            topology.active_provider = active.cloned();
            topology.stale = stale;
            (Arc::new(topology), TopologyDiff::default())
        } else {
            (prev.clone(), TopologyDiff::default())
        };
        self.published = topology.clone();
        self.base = base;
        self.base_hash = base_hash.or((removed.is_empty()).then_some(hash));
        self.overlay_removed = removed;
        MergeOutcome {
            topology,
            previous_hash: prev.hash,
            diff,
            changed,
            decision,
        }
    }

    /// Rule 2 (Priority) and rule 3.
    fn priority_candidate(
        &mut self,
        providers: &[&ProviderInput],
        active: Option<&ProviderInput>,
    ) -> (MergeDecision, Option<Candidate>) {
        let Some(a) = active else {
            return (MergeDecision::NoInput, None);
        };
        let Some(snap) = self.slots.get(&a.id) else {
            return (MergeDecision::NoInput, None);
        };
        let apply = Candidate {
            members: snap.members.clone(),
            hash: Some(snap.hash),
        };
        let refresh = snap.refresh;
        let suspect = self.disputed_suspect(a, snap, providers);
        let released = self
            .released
            .take()
            .is_some_and(|(p, r)| p == a.id && r == refresh);
        let Some((kind, removed, published, disputed_by)) = suspect else {
            self.hold = None;
            return (MergeDecision::Applied, Some(apply));
        };
        let max = self.config.glitch_hold_snapshots;
        if released || max == 0 {
            self.hold = None;
            return (MergeDecision::Applied, Some(apply));
        }
        let held_snapshots = match &mut self.hold {
            Some(h) if h.provider == a.id => {
                if h.refresh == refresh {
                    h.count
                } else if h.count < max {
                    h.count += 1;
                    h.refresh = refresh;
                    h.count
                } else {
                    // Confirmed by the next refresh: a real removal.
                    self.hold = None;
                    return (MergeDecision::Applied, Some(apply));
                }
            }
            _ => {
                self.hold = Some(Hold {
                    provider: a.id.clone(),
                    refresh,
                    count: 1,
                });
                1
            }
        };
        let reason = HoldReason {
            kind,
            provider: a.id.clone(),
            removed,
            published,
            disputed_by,
            held_snapshots,
        };
        let keep = Candidate {
            members: self.base.clone(),
            hash: self.base_hash,
        };
        (MergeDecision::Held { reason }, Some(keep))
    }

    /// Rule 3: whether `snap` is a suspect, and which healthy provider
    /// disputes it.
    fn disputed_suspect(
        &self,
        active: &ProviderInput,
        snap: &ProviderSnapshot,
        providers: &[&ProviderInput],
    ) -> Option<(GlitchKind, usize, usize, ProviderId)> {
        let published = &self.published.members;
        if published.is_empty() || Arc::ptr_eq(&snap.members, &self.base) {
            return None;
        }
        let removed = removed_ids(published, &snap.members);
        let kind = if snap.members.is_empty() {
            GlitchKind::Emptied
        } else if removed.len() as f64 > self.config.glitch_fraction * published.len() as f64 {
            GlitchKind::MassRemoval
        } else {
            return None;
        };
        providers
            .iter()
            .filter(|p| p.healthy && p.id != active.id)
            .find(|p| {
                self.slots.get(&p.id).is_some_and(|s| {
                    let listed = count_listed(&removed, &s.members);
                    listed > 0 && listed * 2 >= removed.len()
                })
            })
            .map(|p| (kind, removed.len(), published.len(), p.id.clone()))
    }

    /// Rule 2 (Union).
    fn union_candidate(&self, providers: &[&ProviderInput]) -> (MergeDecision, Option<Candidate>) {
        let sources: Vec<&ProviderSnapshot> = providers
            .iter()
            .filter(|p| p.healthy)
            .filter_map(|p| self.slots.get(&p.id))
            .collect();
        let from_slot = |s: &ProviderSnapshot| Candidate {
            members: s.members.clone(),
            hash: Some(s.hash),
        };
        match sources.as_slice() {
            [] => return (MergeDecision::NoInput, None),
            [only] => return (MergeDecision::Applied, Some(from_slot(only))),
            _ => {}
        }
        let lists: Vec<&[Member]> = sources.iter().map(|s| &s.members[..]).collect();
        let picks = union_picks(&lists);
        let picked = |&(s, i): &(u32, u32)| &lists[s as usize][i as usize];
        // Every pick from one source, covering it: the union is that source
        // (decided from the indices, without comparing members).
        let single = picks
            .first()
            .map(|p| p.0)
            .filter(|&s| picks.len() == lists[s as usize].len() && picks.iter().all(|p| p.0 == s));
        let same_as = |other: &[Member]| {
            picks.len() == other.len()
                && picks
                    .iter()
                    .map(picked)
                    .zip(other)
                    .all(|(a, b)| std::ptr::eq(a, b) || a == b)
        };
        let candidate = if let Some(s) = single {
            from_slot(sources[s as usize])
        } else if let Some(s) = sources.iter().find(|s| same_as(&s.members)) {
            from_slot(s)
        } else if same_as(&self.base) {
            Candidate {
                members: self.base.clone(),
                hash: self.base_hash,
            }
        } else {
            let members: Vec<Member> = picks.iter().map(picked).cloned().collect();
            Candidate {
                members: Arc::from(members),
                hash: None,
            }
        };
        (MergeDecision::Applied, Some(candidate))
    }
}

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
                    if before[i] != after[j] {
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

fn key(node: &NodeId, incarnation: u64) -> BlockedMember {
    BlockedMember {
        node_id: node.clone(),
        incarnation,
    }
}

/// Node id order, with a pointer shortcut for interned ids.
fn id_cmp(a: &NodeId, b: &NodeId) -> Ordering {
    let (a, b) = (a.as_str(), b.as_str());
    if std::ptr::eq(a, b) {
        Ordering::Equal
    } else {
        a.cmp(b)
    }
}

fn search(members: &[Member], node: &NodeId) -> Result<usize, usize> {
    members.binary_search_by(|m| id_cmp(&m.node_id, node))
}

fn find<'a>(members: &'a [Member], node: &NodeId) -> Option<&'a Member> {
    search(members, node).ok().map(|i| &members[i])
}

/// Sorted by (priority, id), one entry per id.
fn normalize(providers: &[ProviderInput]) -> Vec<&ProviderInput> {
    let mut ps: Vec<&ProviderInput> = providers.iter().collect();
    ps.sort_by(|a, b| (a.priority, &a.id, !a.healthy).cmp(&(b.priority, &b.id, !b.healthy)));
    let mut seen: Vec<&ProviderId> = Vec::with_capacity(ps.len());
    ps.retain(|p| {
        let new = !seen.contains(&&p.id);
        seen.push(&p.id);
        new
    });
    ps
}

/// Replaces node ids in `members` by the equal ones of `reference` (both
/// sorted), so copies share one allocation and compare by pointer. Returns
/// whether `members` equals `reference`.
fn intern_ids(members: &mut [Member], reference: &[Member]) -> bool {
    let mut equal = members.len() == reference.len();
    let mut j = 0;
    for m in members.iter_mut() {
        while j < reference.len() && id_cmp(&reference[j].node_id, &m.node_id) == Ordering::Less {
            j += 1;
        }
        match reference.get(j) {
            Some(r) if id_cmp(&r.node_id, &m.node_id) == Ordering::Equal => {
                m.node_id = r.node_id.clone();
                equal = equal && *m == *r;
            }
            Some(_) => equal = false,
            None => return false,
        }
    }
    equal
}

/// Node ids of `before` missing from `after` (both sorted).
fn removed_ids<'a>(before: &'a [Member], after: &[Member]) -> Vec<&'a NodeId> {
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
fn count_listed(ids: &[&NodeId], members: &[Member]) -> usize {
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
fn union_picks(lists: &[&[Member]]) -> Vec<(u32, u32)> {
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
fn without(members: &[Member], removed: &[u32]) -> Vec<Member> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cluster_core::MemberAddress;
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
            .map(|(i, (prio, healthy, _))| {
                ProviderInput::new(pid(&format!("p{i}")), *prio, *healthy)
            })
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
}
