//! The `TopologyMerger`: the pure core that turns the providers' latest
//! snapshots and the quarantine overlay into the [`Topology`] the
//! ProvisioningSupervisor publishes, with its hash and its diff against the
//! previously published one. No IO, no async, no clock reads: time enters
//! only as an `Instant` argument ([`TopologyMerger::expire`]).
//!
//! # Rules
//!
//! 1. **Snapshots.** [`TopologyMerger::on_refresh`] records a provider's
//!    latest snapshot (a *refresh*) as an `Arc<[Member]>` in canonical form
//!    ([`canonicalize`](cluster_core::canonicalize): sorted by node id, one
//!    member per node id), the provider's own `Arc` when it already is, with
//!    its hash updated from the previous snapshot's. Every call counts as
//!    one refresh, even when the content is identical: a provider
//!    re-delivering its list confirms it (the glitch rule and R4.4 count
//!    refreshes, not merges).
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
//! nested scan: merge + diff is O(n · providers) and O(q log n) for q
//! quarantined incarnations; the hash costs O(changed members) on top of
//! the walk comparing a snapshot with its predecessor
//! ([`TopologyHash::replace`]; the value is always
//! [`TopologyHash::of_sorted`]'s). Snapshots are shared, not copied (see
//! `docs/provisioning.md`, "Snapshots: built once"): the provider's
//! `Arc<[Member]>` is kept as it is; the same `Arc` again (a keepalive) is
//! only counted; in Priority without blocks the published members *are* the
//! active snapshot's `Arc<[Member]>`; equal snapshots of different providers
//! share one allocation; node ids are interned against the published set so
//! that copies share their `Arc<str>` and compare by pointer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use cluster_core::{
    BlockedMember, Member, NodeId, ProviderId, ProvisioningStatus, Topology, TopologyDiff,
    TopologyHash,
};

mod sorted;

pub use sorted::diff_sorted;
use sorted::{
    Changes, canonical, count_listed, find, intern_ids, rehash, removed_ids, search,
    strictly_sorted, union_picks, without,
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
    /// What the refresh changed against the list it was compared with
    /// (`from`), kept until the next merge: when `from` is the published
    /// list, the merge's diff and the glitch rule's removed ids are these,
    /// without walking the lists again.
    change: Option<Box<(Arc<[Member]>, Changes)>>,
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
        // A topology stored by an older build carries that build's hash
        // (v1 before issue 17): recomputed, so that the next merge compares
        // like with like.
        let mut topology = topology;
        topology.hash = TopologyHash::of_sorted(&topology.members);
        merger.base = topology.members.clone();
        merger.base_hash = Some(topology.hash);
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
    /// order and contain duplicates; a list already canonical (sorted by
    /// node id, one member per id, as the in-memory table keeps it) is kept
    /// as it is, without a copy.
    ///
    /// The cost is proportional to what changed, plus one walk comparing
    /// the list with the provider's previous one (node ids by pointer):
    /// - the **same `Arc`** as the provider's last refresh (a keepalive of a
    ///   provider that keeps its list) is only counted: O(1);
    /// - a list **equal** to the previous one (a keepalive of a provider that
    ///   decodes a fresh list) is dropped and the previous `Arc` kept;
    /// - otherwise the hash is updated from the previous one with the
    ///   members that left, joined or changed ([`TopologyHash::replace`]).
    pub fn on_refresh(
        &mut self,
        provider: &ProviderId,
        members: impl Into<Arc<[Member]>>,
    ) -> RefreshInfo {
        let mut members: Arc<[Member]> = members.into();
        self.refreshes += 1;
        let refresh = self.refreshes;
        let previous_hash = self.slots.get(provider).map(|s| s.hash);
        if let Some(slot) = self.slots.get_mut(provider)
            && Arc::ptr_eq(&slot.members, &members)
        {
            slot.refresh = refresh;
            slot.change = Some(Box::new((members.clone(), Changes::default())));
            return RefreshInfo {
                hash: slot.hash,
                previous_hash,
                members: members.len(),
            };
        }
        // The reference is the provider's previous snapshot, else the
        // published set, else another provider's snapshot: node ids are
        // interned against it (when the list is ours to change; a shared
        // list comes from a provider that already shares its ids), and the
        // hash is updated from its hash.
        let reference: (Arc<[Member]>, Option<TopologyHash>) = match self.slots.get(provider) {
            Some(p) => (p.members.clone(), Some(p.hash)),
            None if !self.base.is_empty() => (self.base.clone(), self.base_hash),
            None => match self.slots.values().next() {
                Some(s) => (s.members.clone(), Some(s.hash)),
                None => (self.base.clone(), self.base_hash),
            },
        };
        if let Some(list) = Arc::get_mut(&mut members) {
            intern_ids(list, &reference.0);
        }
        // The hash walk also checks that the list is canonical (sorted, one
        // member per id); when it is not, or there is no reference hash, the
        // list is made canonical and compared again.
        let walked = reference.1.and_then(|h| rehash(&members, &reference.0, h));
        let (equal, hash, changes) = match walked {
            Some(w) => w,
            None => {
                if !strictly_sorted(&members) {
                    members = canonical(members);
                    if let Some(list) = Arc::get_mut(&mut members) {
                        intern_ids(list, &reference.0);
                    }
                }
                match reference.1.and_then(|h| rehash(&members, &reference.0, h)) {
                    Some(w) => w,
                    None => (
                        *members == *reference.0,
                        TopologyHash::of_sorted(&members),
                        None,
                    ),
                }
            }
        };
        let count = members.len();
        let change = changes.map(|c| Box::new((reference.0.clone(), c)));
        let members = if equal {
            reference.0
        } else {
            drop(reference);
            let shared = self
                .slots
                .values()
                .filter(|s| s.hash == hash)
                .map(|s| &s.members)
                .chain(std::iter::once(&self.base).filter(|_| self.base_hash == Some(hash)))
                .find(|m| ***m == *members)
                .cloned();
            shared.unwrap_or(members)
        };
        self.slots.insert(
            provider.clone(),
            ProviderSnapshot {
                members,
                hash,
                refresh,
                change,
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
            // The base's hash without the blocked members, when known.
            let h = match base_hash {
                Some(h) => removed
                    .iter()
                    .fold(h, |h, &i| h.replace(Some(&base[i as usize]), None)),
                None => TopologyHash::of_sorted(&kept),
            };
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
            // The refresh that gave these members already listed what
            // changed since the published ones: reused, else one walk.
            let recorded = self.slots.values().find_map(|s| {
                let (from, c) = &**s.change.as_ref()?;
                (Arc::ptr_eq(&s.members, &members) && Arc::ptr_eq(from, &prev.members)).then_some(c)
            });
            let diff = match recorded {
                Some(c) => {
                    let mut diff = diff_sorted(&[], &[], &prev.blocked, &blocked);
                    diff.joined = c.joined.clone();
                    diff.left = c.left.clone();
                    diff.changed = c.changed.clone();
                    diff
                }
                None => diff_sorted(&prev.members, &members, &prev.blocked, &blocked),
            };
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
        for slot in self.slots.values_mut() {
            slot.change = None;
        }
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
        let removed: Vec<&NodeId> = match snap.change.as_deref() {
            Some((from, c)) if Arc::ptr_eq(from, published) => {
                c.left.iter().map(|m| &m.node_id).collect()
            }
            _ => removed_ids(published, &snap.members),
        };
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
            // Hashed from the previous candidate's hash and what changed.
            let hash = self
                .base_hash
                .and_then(|h| rehash(&members, &self.base, h))
                .map(|w| w.1);
            Candidate {
                members: Arc::from(members),
                hash,
            }
        };
        (MergeDecision::Applied, Some(candidate))
    }
}

/// `members` in canonical form
/// ([`canonicalize`](cluster_core::canonicalize)): the same `Arc` when it
/// already is (sorted by node id, one member per id), else sorted in place
/// when not shared, else copied once.
pub fn canonical_members(members: Arc<[Member]>) -> Arc<[Member]> {
    if strictly_sorted(&members) {
        members
    } else {
        canonical(members)
    }
}

fn key(node: &NodeId, incarnation: u64) -> BlockedMember {
    BlockedMember {
        node_id: node.clone(),
        incarnation,
    }
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

#[cfg(test)]
mod tests;
