//! [`ProvisioningCore`]: every decision of the ProvisioningSupervisor, as a
//! synchronous state machine in the shape of raft-rs's `RawNode` / `Ready`.
//!
//! The actor ([`driver`](super::driver)) turns each message into one input
//! call, then takes the [`Ready`] and executes it: publish its events in
//! order, start and stop provider actors, deregister, persist the topology,
//! arm one timer. The core never does IO, never reads a clock (time comes
//! in as `now` and `wall`, randomness from a seed) and never awaits; its only
//! side effects are metrics and log lines. Every rule below is tested without tokio
//! (the unit tests and the property laws of this module).
//!
//! # State
//!
//! ```text
//!                 add / reload            drain()
//!   (nothing) ──────────────► Running ───────────► Draining (terminal:
//!                               │  ▲                 only queries answer,
//!       every input: provider,  │  │ Ready            nothing is published
//!       quarantine, tick, ...   └──┘                  after the drain's own
//!                                                     TopologyUpdated)
//! ```
//!
//! Per provider (`Slot`): its definition, whether an actor runs for it and
//! the oldest instance whose events still count (`min_instance`), its
//! activation (R5.2) and its suppression:
//!
//! ```text
//!            activation failures ≥ threshold (before any snapshot)
//!  Active ─────────────────────────────────────────────► Suppressed{attempt, at}
//!    ▲                                                     │ tick ≥ at (backoff with
//!    │ a snapshot                                          │ jitter, doubling), or
//!    │                                                     │ lift_suppression (operator)
//!  HalfOpen{attempt} ◄─────────────────────────────────────┘
//!    │ one activation failure
//!    └──────────────────────────────────────────────────► Suppressed{attempt + 1, at'}
//! ```
//!
//! The failover policy, the merger and the self-presence rule are the pure
//! cores of [`failover`](crate::failover), [`merge`](crate::merge) and
//! [`presence`](crate::presence); this core owns them and the one published
//! topology (`published`), the one seq_no counter, and the event order.
//!
//! # Rules
//!
//! 1. **One counter.** Each publication takes the next seq_no; every event
//!    of one publication carries it. In order: `RemoteNodeQuarantined`,
//!    `TopologyUpdated`, `ProvisioningStatusChanged`, `ProviderChanged`.
//!    Provider health changes, stream terminations and suppressions are
//!    published before, as they happen.
//! 2. **Nothing twice (R2.3).** A `TopologyUpdated` is published only when
//!    the topology differs from the last one in its members (hash), its
//!    blocked incarnations, its status, its active provider or its `stale`
//!    flag, or when a quarantine must be announced.
//! 3. **A quarantine is always visible.** `RemoteNodeQuarantined` is
//!    followed, in the same publication, by a topology in which the
//!    incarnation is blocked or absent, whatever the status: while Starting
//!    or Unavailable the merger still runs, without input (merge rule 4),
//!    so its quarantine overlay applies to the last members.
//! 4. **Stale until confirmed.** A topology restored from the store is
//!    published `stale: true` until a provider's snapshot is merged.
//! 5. **Stale instances.** An event of a provider actor instance older than
//!    `min_instance` (a failed or replaced one) changes nothing.
//! 6. **Streams.** `ProviderStreamTerminated` fires only when a stream ends
//!    (`child_exited` with `stream_ended`); an error item of a stream that
//!    goes on is counted (`provisioning_stream_errors_total`) and feeds the
//!    failover policy, nothing more.
//! 7. **Draining.** `drain` publishes the Draining topology once, stops
//!    every provider actor (deregistering), and from then on the core
//!    ignores every input but queries: nothing else is published.
//! 8. **Suppression has a way back (R5.2).** A suppressed provider is probed
//!    again after a backoff (`reprobe`, doubling, with jitter), half-open: a
//!    snapshot ends the suppression, one more activation failure (or the
//!    restart limit again) suppresses it again with the next delay. An
//!    operator can lift a suppression at once
//!    ([`ProvisioningCore::lift_suppression`]), with the full threshold
//!    again. A provider Failed by its restart limit (A4) is handled the same
//!    way: a backend outage longer than the restart budget does not disable
//!    it for good.
//! 9. **Checkpoint.** [`ProvisioningCore::checkpoint`] captures what a
//!    restarted supervisor actor must not forget: the published topology,
//!    its status and seq_no, the quarantines (with their expiry), whether it
//!    was draining, the suppressed providers and the instance numbering (so
//!    the old children's queued events stay stale);
//!    [`ProvisioningCore::restore`] resumes from it.
//! 10. **Gaps.** While the providers of a reload or of a restored core have
//!     not reported yet, only the quarantine overlay changes what is
//!     published, with the status, active provider and `stale` flag
//!     consumers last saw: a restart or a reload never shows the cluster a
//!     `Starting` it would then take back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actor_runtime::Backoff;
use cluster_core::events::{
    ActivationSuppressed, ChangeReason, LocalMemberSuperseded, ProviderChanged,
    ProviderHealthChanged, ProviderStreamTerminated, ProvisioningStatusChanged,
    RemoteNodeQuarantined, TopologyUpdated,
};
use cluster_core::{
    BlockedMember, Member, NodeId, ProviderDescriptor, ProviderError, ProviderHealth, ProviderId,
    ProvisioningError, ProvisioningStatus, Result, Snapshot, Topology, TopologyDiff, TopologyHash,
};
use metrics::{counter, gauge, histogram};
use tokio::time::Instant;

use super::{ProviderStatus, ProvisioningConfig};
use crate::activation::{Activation, Verdict as ActivationVerdict};
use crate::failover::{
    Availability, Decision, FailoverConfig, FailoverPolicy, HealthChange, Input,
};
use crate::merge::{MergeConfig, ProviderInput, TopologyMerger, canonical_members};
use crate::metrics as m;
use crate::presence::{Release, SelfPresence, Verdict as PresenceVerdict};
use crate::provider_actor::ProviderEvent;

/// The settings the core decides with (the part of
/// [`ProvisioningConfig`] that is not about IO).
#[derive(Clone, Debug)]
pub struct CoreSettings {
    /// The local member.
    pub local: Option<Member>,
    /// Failover timing.
    pub failover: FailoverConfig,
    /// Merge policy and glitch rule.
    pub merge: MergeConfig,
    /// The self-presence rule's bound.
    pub suspect_hold: Duration,
    /// R5.2's threshold.
    pub activation_failure_threshold: u32,
    /// Quarantine expiry.
    pub quarantine_ttl: Option<Duration>,
    /// Delay before a suppressed provider is probed again (rule 8).
    pub reprobe: Backoff,
}

impl From<&ProvisioningConfig> for CoreSettings {
    fn from(c: &ProvisioningConfig) -> Self {
        Self {
            local: c.local.clone(),
            failover: c.failover,
            merge: c.merge,
            suspect_hold: c.suspect_hold,
            activation_failure_threshold: c.activation_failure_threshold,
            quarantine_ttl: c.quarantine_ttl,
            reprobe: c.suppression_reprobe,
        }
    }
}

/// An accepted definition, as the core sees it.
#[derive(Clone, Debug)]
pub struct ProviderSpec {
    /// The definition.
    pub descriptor: ProviderDescriptor,
    /// Why it does not run (disabled at acceptance), if so.
    pub disabled: Option<String>,
    /// Whether the provider registers the local member (it must be
    /// deregistered when it is stopped for good).
    pub can_register: bool,
}

/// One event to publish, in the order of [`Ready::events`].
#[derive(Clone, Debug)]
pub enum Event {
    /// [`ProviderHealthChanged`].
    Health(ProviderHealthChanged),
    /// [`ProviderStreamTerminated`].
    StreamTerminated(ProviderStreamTerminated),
    /// [`ActivationSuppressed`].
    Suppressed(ActivationSuppressed),
    /// [`LocalMemberSuperseded`].
    Superseded(LocalMemberSuperseded),
    /// [`RemoteNodeQuarantined`].
    Quarantined(RemoteNodeQuarantined),
    /// [`TopologyUpdated`].
    Topology(TopologyUpdated),
    /// [`ProvisioningStatusChanged`].
    Status(ProvisioningStatusChanged),
    /// [`ProviderChanged`].
    Changed(ProviderChanged),
}

/// Start an actor for a provider; its instances are numbered from
/// `first_instance` (one more per restart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    /// The provider.
    pub id: ProviderId,
    /// The number of its first instance.
    pub first_instance: u64,
}

/// Stop a provider's actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    /// The provider.
    pub id: ProviderId,
    /// Deregister the local member once the actor has stopped.
    pub deregister: bool,
}

/// What the driver must do after an input, in this order: stop, start,
/// re-register, publish, persist, arm the timer.
#[derive(Debug, Default)]
pub struct Ready {
    /// Actors to stop.
    pub stop: Vec<Stop>,
    /// Actors to start.
    pub start: Vec<Start>,
    /// Providers that must register the local member again now.
    pub reregister: Vec<ProviderId>,
    /// Events to publish, in order.
    pub events: Vec<Event>,
    /// The topology to persist (the last published).
    pub persist: Option<Arc<Topology>>,
    /// When to call [`ProvisioningCore::tick`] next (`None`: no timer).
    pub wake_at: Option<Instant>,
}

impl Ready {
    /// Whether there is nothing to do but (re)arm the timer.
    pub fn is_idle(&self) -> bool {
        self.stop.is_empty()
            && self.start.is_empty()
            && self.reregister.is_empty()
            && self.events.is_empty()
            && self.persist.is_none()
    }
}

/// How a provider actor stopped running (from supervision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It failed and is being restarted; `stream_ended` when its watch
    /// stream ended rather than panicked or returned an error.
    Restarting {
        /// The stream ended.
        stream_ended: bool,
    },
    /// It failed and was stopped for good.
    Stopped,
    /// Its restart limit was reached after `failures` failures.
    RestartLimit {
        /// Failures in the window.
        failures: u32,
    },
}

/// What a restarted supervisor actor resumes from (rule 9).
#[derive(Clone, Debug)]
pub struct Checkpoint {
    published: Arc<Topology>,
    quarantines: Vec<(BlockedMember, Option<std::time::Instant>)>,
    draining: bool,
    /// Actor instances are numbered on from here: the old children's
    /// queued events stay stale after a restart.
    next_instance: u64,
    /// Suppressed providers and their re-probe attempt (R5.2).
    suppressed: BTreeMap<ProviderId, u32>,
}

impl Checkpoint {
    /// A checkpoint of a supervisor that published `topology` (restored
    /// from the store: stale) and nothing else.
    pub fn from_topology(topology: Topology) -> Self {
        Self {
            published: Arc::new(topology),
            quarantines: Vec::new(),
            draining: false,
            next_instance: 0,
            suppressed: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// Runs normally.
    None,
    /// Suppressed; probed again at `at` (none: only by an operator).
    Suppressed { attempt: u32, at: Option<Instant> },
    /// Probing after a suppression: one activation failure suppresses again.
    HalfOpen { attempt: u32 },
}

impl Slot {
    fn new(spec: ProviderSpec) -> Self {
        Self {
            spec,
            running: false,
            min_instance: 0,
            last_observed: None,
            last_hash: None,
            last_update: None,
            activation: Activation::new(),
            probe: Probe::None,
            stream_errors: 0,
        }
    }
}

#[derive(Clone, Debug)]
struct Slot {
    spec: ProviderSpec,
    /// An actor runs for it.
    running: bool,
    /// The oldest instance whose events still count.
    min_instance: u64,
    last_observed: Option<SystemTime>,
    last_hash: Option<TopologyHash>,
    last_update: Option<SystemTime>,
    activation: Activation,
    probe: Probe,
    /// Error items of its stream so far.
    stream_errors: u64,
}

/// The supervisor's state machine. See the [module docs](self).
#[derive(Debug)]
pub struct ProvisioningCore {
    settings: CoreSettings,
    /// The `node` label of the metrics.
    node: Arc<str>,
    slots: BTreeMap<ProviderId, Slot>,
    policy: FailoverPolicy,
    merger: TopologyMerger,
    presence: SelfPresence,
    published: Arc<Topology>,
    status: ProvisioningStatus,
    seq_no: u64,
    draining: bool,
    next_instance: u64,
    /// Suppressions of a checkpoint, applied as their providers come back.
    suppressed_at_restart: BTreeMap<ProviderId, u32>,
    /// Restored with a status other than Starting, and no provider trusted
    /// since: a gap (rule 10).
    resuming: bool,
    pending_change: Option<(Option<ProviderId>, Option<ProviderId>, ChangeReason)>,
    pending_quarantine: Vec<RemoteNodeQuarantined>,
    /// A reload is in progress: the next change of the active provider is
    /// reported with reason `Reload`, and a gap is not published.
    reloading: bool,
    /// Several changes are applied as one: publish once, at the end.
    batching: bool,
    policy_deadline: Option<Instant>,
    rng: fastrand::Rng,
    ready: Ready,
}

fn now_unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A provider id in a log line, `none` when there is none.
fn or_none(id: &Option<ProviderId>) -> &str {
    id.as_ref().map_or("none", |id| id.as_str())
}

/// The one log line of a provider health change (N3): WARN when the
/// provider stops being usable, INFO otherwise.
fn log_health_change(h: &HealthChange, last_error: Option<&'static str>) {
    let (provider, from, to) = (&h.provider, h.previous.as_str(), h.health.as_str());
    let error = last_error.unwrap_or("none");
    if matches!(
        h.health,
        ProviderHealth::Degraded | ProviderHealth::Down | ProviderHealth::Failed
    ) {
        tracing::warn!(provider = %provider, from, to, last_error = error, "provider health changed");
    } else {
        tracing::info!(provider = %provider, from, to, last_error = error, "provider health changed");
    }
}

/// The one log line of a provisioning status change (N3): WARN when
/// placement or new associations stop (Empty, Degraded, Unavailable), INFO
/// otherwise (Starting, Active, Draining).
fn log_status_change(from: ProvisioningStatus, to: ProvisioningStatus, seq_no: u64) {
    let (f, t) = (from.as_str(), to.as_str());
    if matches!(
        to,
        ProvisioningStatus::Empty | ProvisioningStatus::Degraded | ProvisioningStatus::Unavailable
    ) {
        tracing::warn!(from = f, to = t, seq_no, "provisioning status changed");
    } else {
        tracing::info!(from = f, to = t, seq_no, "provisioning status changed");
    }
}

impl ProvisioningCore {
    /// A core that has published nothing yet (seq_no 0, status Starting).
    /// `seed` seeds the re-probe jitter: the driver passes a random one
    /// (nodes suppressed at once must not probe at once), tests a fixed one.
    pub fn new(settings: CoreSettings, node: Arc<str>, seed: u64) -> Self {
        Self::resume(settings, node, None, seed)
    }

    /// A core resuming from `checkpoint` (rule 9): its published topology
    /// and status, seq_no, quarantines, draining state, suppressions and
    /// instance numbering. Until a provider is trusted again it publishes
    /// nothing but quarantines, with the status it had (rule 10).
    pub fn restore(
        settings: CoreSettings,
        node: Arc<str>,
        checkpoint: Checkpoint,
        seed: u64,
    ) -> Self {
        Self::resume(settings, node, Some(checkpoint), seed)
    }

    fn resume(
        settings: CoreSettings,
        node: Arc<str>,
        checkpoint: Option<Checkpoint>,
        seed: u64,
    ) -> Self {
        let (published, quarantines, draining, next_instance, suppressed) = match checkpoint {
            Some(c) => (
                c.published,
                c.quarantines,
                c.draining,
                c.next_instance,
                c.suppressed,
            ),
            None => (
                Arc::new(Topology::starting()),
                Vec::new(),
                false,
                0,
                BTreeMap::new(),
            ),
        };
        let mut merger = if published.status == ProvisioningStatus::Starting
            && published.members.is_empty()
            && published.blocked.is_empty()
        {
            TopologyMerger::new(settings.merge)
        } else {
            TopologyMerger::with_published(settings.merge, (*published).clone())
        };
        for (b, expires) in quarantines {
            merger.quarantine(b.node_id, b.incarnation, expires);
        }
        let local = settings
            .local
            .as_ref()
            .map(|m| (m.node_id.clone(), m.incarnation));
        // The status consumers last saw: a restarted core does not fall
        // back to Starting (rule 10).
        let status = if draining {
            ProvisioningStatus::Draining
        } else {
            published.status
        };
        Self {
            presence: SelfPresence::new(local, settings.suspect_hold),
            policy: FailoverPolicy::new(settings.failover),
            merger,
            node,
            slots: BTreeMap::new(),
            seq_no: published.seq_no,
            published,
            status,
            draining,
            next_instance,
            suppressed_at_restart: suppressed,
            resuming: status != ProvisioningStatus::Starting,
            pending_change: None,
            pending_quarantine: Vec::new(),
            reloading: false,
            batching: false,
            policy_deadline: None,
            rng: fastrand::Rng::with_seed(seed),
            ready: Ready::default(),
            settings,
        }
    }

    /// What a restarted supervisor actor resumes from (rule 9).
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            published: self.published.clone(),
            quarantines: self.merger.quarantines(),
            draining: self.draining,
            next_instance: self.next_instance,
            suppressed: self
                .slots
                .iter()
                .filter_map(|(id, s)| match s.probe {
                    Probe::Suppressed { attempt, .. } => Some((id.clone(), attempt)),
                    _ => None,
                })
                .chain(self.suppressed_at_restart.clone())
                .collect(),
        }
    }

    /// Takes what the driver must do now.
    pub fn ready(&mut self) -> Ready {
        let mut r = std::mem::take(&mut self.ready);
        r.wake_at = self.wake_at();
        r
    }

    // ----- queries -----

    /// The published topology (the only copy).
    pub fn published(&self) -> &Arc<Topology> {
        &self.published
    }

    /// The published status.
    pub fn status(&self) -> ProvisioningStatus {
        self.status
    }

    /// Whether `drain` was called.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Whether `id` is defined.
    pub fn contains(&self, id: &ProviderId) -> bool {
        self.slots.contains_key(id)
    }

    /// The definitions, by id.
    pub fn definitions(&self) -> Vec<ProviderDescriptor> {
        self.slots
            .values()
            .map(|s| s.spec.descriptor.clone())
            .collect()
    }

    /// The accepted specs, by id.
    pub fn specs(&self) -> Vec<ProviderSpec> {
        self.slots.values().map(|s| s.spec.clone()).collect()
    }

    /// Whether reloading `d` must replace the running provider: it changed,
    /// or it stopped for good (Failed, suppressed) and a reload revives it.
    pub fn must_replace(&self, d: &ProviderDescriptor) -> bool {
        match self.slots.get(&d.id) {
            Some(s) => {
                s.spec.descriptor != *d
                    || s.spec.disabled.is_some() == d.enabled
                    || self.policy.health(&d.id) == Some(ProviderHealth::Failed)
            }
            None => true,
        }
    }

    /// Every provider's state.
    pub fn statuses(&self) -> Vec<ProviderStatus> {
        let active = self.policy.active();
        self.policy
            .views()
            .into_iter()
            .filter_map(|v| {
                let s = self.slots.get(&v.id)?;
                Some(ProviderStatus {
                    active: active == Some(&v.id),
                    kind: s.spec.descriptor.kind.clone(),
                    priority: v.priority,
                    health: v.health,
                    last_update: s.last_update,
                    last_error: v.last_error,
                    disabled_reason: s.spec.disabled.clone(),
                    last_hash: s.last_hash,
                    last_members: self.merger.snapshot(&v.id).map_or(0, |s| s.members().len()),
                    stream_errors: s.stream_errors,
                    id: v.id,
                })
            })
            .collect()
    }

    /// A provider's last applied snapshot (R2.2: kept after its stream
    /// ended).
    pub fn last_snapshot(&self, id: &ProviderId) -> Option<Snapshot> {
        let s = self.slots.get(id)?;
        Some(Snapshot {
            members: self.merger.snapshot(id)?.members().clone(),
            observed_at: s.last_observed?,
        })
    }

    // ----- inputs: the provider set -----

    /// Adds an accepted provider: into the failover policy, with an actor
    /// when it is enabled. Refused while draining or for a known id.
    pub fn add(&mut self, spec: ProviderSpec, now: Instant) -> Result<()> {
        self.check_add(&spec.descriptor.id)?;
        self.install(spec, now);
        Ok(())
    }

    /// Whether [`add`](Self::add) would take a provider with this id: not
    /// while draining, not a known id (R1.2). The driver asks before its
    /// async acceptance and persistence, so both see one rule.
    pub fn check_add(&self, id: &ProviderId) -> Result<()> {
        if self.draining {
            return Err(ProvisioningError::Draining);
        }
        if self.slots.contains_key(id) {
            return Err(ProvisioningError::Duplicate(id.clone()));
        }
        Ok(())
    }

    /// Whether [`remove`](Self::remove) would remove this id.
    pub fn check_remove(&self, id: &ProviderId) -> Result<()> {
        if self.draining {
            return Err(ProvisioningError::Draining);
        }
        if !self.slots.contains_key(id) {
            return Err(ProvisioningError::NotFound(id.clone()));
        }
        Ok(())
    }

    /// Adds a provider of a (re)starting supervisor: as [`add`](Self::add),
    /// but a draining core only lists it (no actor, nothing published).
    pub fn resume_provider(&mut self, spec: ProviderSpec, now: Instant) {
        let id = spec.descriptor.id.clone();
        if self.slots.contains_key(&id) {
            return;
        }
        if self.draining {
            self.slots.insert(id, Slot::new(spec));
        } else if let Some(attempt) = self.suppressed_at_restart.remove(&id) {
            // Still suppressed: listed, not run, probed again after the
            // next delay (R5.2's way back survives a restart).
            self.install(spec, now);
            let delay = self.settings.reprobe.delay(attempt, self.rng.f64());
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.probe = Probe::Suppressed {
                    attempt,
                    at: now.checked_add(delay),
                };
            }
        } else {
            self.install(spec, now);
        }
    }

    fn install(&mut self, spec: ProviderSpec, now: Instant) {
        let id = spec.descriptor.id.clone();
        let enabled = spec.disabled.is_none();
        let priority = spec.descriptor.priority;
        let mut slot = Slot::new(spec);
        if enabled {
            self.start_actor(&id, &mut slot);
        }
        self.slots.insert(id.clone(), slot);
        let d = self.policy.add(id.clone(), priority, enabled, now);
        gauge!(m::PROVIDER_HEALTH, "node" => self.node.clone(), "provider" => id.to_string())
            .set(self.policy.health(&id).map_or(0.0, ProviderHealth::gauge));
        self.apply(d);
    }

    fn start_actor(&mut self, id: &ProviderId, slot: &mut Slot) {
        self.next_instance += 1;
        let base = self.next_instance * 1_000_000;
        slot.running = true;
        slot.min_instance = base + 1;
        self.ready.start.push(Start {
            id: id.clone(),
            first_instance: base + 1,
        });
    }

    /// Removes a provider: its actor stops, the merger forgets it.
    pub fn remove(&mut self, id: &ProviderId, now: Instant) -> Result<()> {
        self.check_remove(id)?;
        self.uninstall(id, now);
        Ok(())
    }

    fn uninstall(&mut self, id: &ProviderId, now: Instant) {
        self.merger.remove_provider(id);
        self.presence.forget(id);
        if let Some(s) = self.slots.remove(id)
            && s.running
        {
            self.ready.stop.push(Stop {
                id: id.clone(),
                deregister: false,
            });
        }
        let d = self.policy.remove(id, now);
        self.apply(d);
    }

    /// R5.4: replaces the provider set as one change. `specs` lists every
    /// provider of the new set, in order; `Some` for a new or replaced one
    /// (see [`must_replace`](Self::must_replace)), `None` for one kept
    /// running. Publishes once, at the end.
    pub fn reload(
        &mut self,
        specs: Vec<(ProviderId, Option<ProviderSpec>)>,
        now: Instant,
    ) -> Result<()> {
        if self.draining {
            return Err(ProvisioningError::Draining);
        }
        self.reloading = true;
        self.batching = true;
        let keep: std::collections::BTreeSet<&ProviderId> =
            specs.iter().map(|(id, _)| id).collect();
        let gone: Vec<ProviderId> = self
            .slots
            .keys()
            .filter(|id| !keep.contains(id))
            .cloned()
            .collect();
        for id in gone {
            self.uninstall(&id, now);
        }
        for (id, spec) in specs {
            if let Some(spec) = spec {
                if self.slots.contains_key(&id) {
                    self.uninstall(&id, now);
                }
                self.install(spec, now);
            }
        }
        self.batching = false;
        if self.policy.active().is_some() {
            self.reloading = false;
        }
        self.recompute();
        Ok(())
    }

    // ----- inputs: provider actors -----

    /// An event of a provider actor `instance`.
    pub fn provider_event(
        &mut self,
        id: &ProviderId,
        instance: u64,
        event: ProviderEvent,
        now: Instant,
        wall: SystemTime,
    ) {
        if self.draining {
            return; // Rule 7 (R3.5: the last snapshot is kept).
        }
        let Some(slot) = self.slots.get(id) else {
            return;
        };
        if instance < slot.min_instance || !slot.running {
            return; // Rule 5.
        }
        let decision = match event {
            ProviderEvent::Started => self.policy.on_input(id, Input::Started, now),
            ProviderEvent::Snapshot(snapshot) => match self.on_snapshot(id, snapshot, now, wall) {
                Some(d) => d,
                None => return,
            },
            ProviderEvent::Error(e) => {
                let code = e.code();
                if matches!(e, ProviderError::Auth(_)) {
                    tracing::warn!(provider = %id, code, error = %e, "provider authorisation failed");
                }
                if let Some(slot) = self.slots.get_mut(id) {
                    slot.stream_errors += 1;
                }
                counter!(m::STREAM_ERRORS, "node" => self.node.clone(), "provider" => id.to_string(), "reason" => code)
                    .increment(1);
                if let ProviderError::Superseded { .. } = &e {
                    self.superseded(id, &e);
                }
                // Superseded is not a misconfiguration: it is announced, and
                // what to do (stop this process) is the application's call.
                let activation = matches!(
                    e,
                    ProviderError::Auth(_)
                        | ProviderError::Protocol(_)
                        | ProviderError::Config { .. }
                );
                if activation && self.count_activation_failure(id, code, now) {
                    return;
                }
                self.policy.on_input(id, Input::Error(code), now)
            }
            ProviderEvent::RegistrationFailed(e) => {
                counter!(m::REGISTRATION_FAILURES, "node" => self.node.clone(), "provider" => id.to_string(), "reason" => e.code())
                    .increment(1);
                if let ProviderError::Superseded { .. } = &e {
                    self.superseded(id, &e);
                }
                // An unreachable backend is not a validation failure (R5.2):
                // the registration is retried and failover handles the rest.
                // Nor is a newer incarnation of this node (announced above):
                // suppressing would deregister, and the application decides.
                if !matches!(
                    e,
                    ProviderError::Connectivity(_) | ProviderError::Superseded { .. }
                ) {
                    self.count_activation_failure(id, e.code(), now);
                }
                return;
            }
        };
        self.apply(decision);
    }

    /// A newer process of this node holds its registration.
    fn superseded(&mut self, id: &ProviderId, e: &ProviderError) {
        let ProviderError::Superseded {
            node,
            incarnation,
            newer,
        } = e
        else {
            return;
        };
        tracing::error!(provider = %id, %node, incarnation, newer, code = e.code(), "this node is superseded: a newer incarnation of it is registered");
        self.emit(Event::Superseded(LocalMemberSuperseded {
            provider: id.clone(),
            node: node.clone(),
            incarnation: *incarnation,
            newer: *newer,
        }));
    }

    /// A snapshot: the decision to apply, or `None` when held and already
    /// applied as a sign of life.
    fn on_snapshot(
        &mut self,
        id: &ProviderId,
        snapshot: Snapshot,
        now: Instant,
        wall: SystemTime,
    ) -> Option<Decision> {
        let lag = wall
            .duration_since(snapshot.observed_at)
            .unwrap_or(Duration::ZERO);
        histogram!(m::SNAPSHOT_LATENCY, "node" => self.node.clone(), "provider" => id.to_string())
            .record(lag.as_secs_f64());
        gauge!(m::PROVIDER_LAST_UPDATE, "node" => self.node.clone(), "provider" => id.to_string())
            .set(now_unix(wall));
        let slot = self.slots.get_mut(id)?;
        slot.last_update = Some(wall);
        slot.activation.on_snapshot();
        if slot.probe != Probe::None {
            tracing::info!(provider = %id, "suppression ended: the provider delivered a snapshot");
            slot.probe = Probe::None;
        }
        // The self-presence rule (issue 19): a suspect snapshot is held, the
        // provider's last applied one stays in force.
        // Canonical first when the rule runs: it then compares the two
        // lists in one walk, and the merger keeps the list as it is.
        let mut snapshot = snapshot;
        if self.presence.is_enabled() {
            snapshot.members = canonical_members(snapshot.members);
        }
        let previous = self.merger.snapshot(id).map(|s| s.members().clone());
        let previous: &[Member] = previous.as_deref().unwrap_or(&[]);
        match self
            .presence
            .on_snapshot(id, previous, &snapshot.members, now)
        {
            PresenceVerdict::Apply => {}
            PresenceVerdict::ApplyEndingHold { held, held_for } => {
                tracing::info!(
                    provider = %id,
                    held,
                    held_for_ms = millis(held_for),
                    "suspect snapshots released: this node and every member are listed again"
                );
            }
            PresenceVerdict::Hold {
                kind,
                first,
                reregister,
                previous,
                members,
            } => {
                counter!(m::SUSPECT_SNAPSHOTS_HELD, "node" => self.node.clone(), "provider" => id.to_string(), "reason" => kind.as_str())
                    .increment(1);
                if first {
                    tracing::warn!(
                        provider = %id,
                        reason = kind.as_str(),
                        members,
                        previous,
                        hold_ms = millis(self.settings.suspect_hold),
                        "suspect snapshot held: it does not list this node or lost more than half of the members"
                    );
                } else {
                    tracing::debug!(provider = %id, reason = kind.as_str(), members, "suspect snapshot held");
                }
                if reregister {
                    self.ready.reregister.push(id.clone());
                }
                // A sign of life all the same: the stream works.
                let d = self.policy.on_input(id, Input::Snapshot { lag }, now);
                self.apply(d);
                return None;
            }
        }
        let info = self.merger.on_refresh(id, snapshot.members);
        let slot = self.slots.get_mut(id)?;
        slot.last_observed = Some(snapshot.observed_at);
        slot.last_hash = Some(info.hash);
        Some(self.policy.on_input(id, Input::Snapshot { lag }, now))
    }

    /// Supervision reports that a provider's actor stopped running.
    pub fn child_exited(&mut self, id: &ProviderId, exit: Exit, now: Instant) {
        if self.draining {
            return;
        }
        let Some(slot) = self.slots.get_mut(id) else {
            return;
        };
        if let Exit::RestartLimit { failures } = exit {
            // Failed, and probed again after the re-probe delay like a
            // suppressed provider (rule 8): a backend outage longer than the
            // restart budget must not disable the provider for good.
            let attempt = match slot.probe {
                Probe::HalfOpen { attempt } => attempt + 1,
                _ => 0,
            };
            let delay = self.settings.reprobe.delay(attempt, self.rng.f64());
            slot.probe = Probe::Suppressed {
                attempt,
                at: now.checked_add(delay),
            };
            slot.spec.disabled = Some(format!("restart limit exceeded after {failures} failures"));
            tracing::warn!(provider = %id, failures, reprobe_in_ms = millis(delay), "provider restart limit exceeded: Failed until it is probed again");
        }
        if !slot.running {
            return; // Already stopped (a Stop directive comes before the limit).
        }
        let input = match exit {
            Exit::Restarting { stream_ended } => {
                // Whatever the failed instance still had queued is stale.
                slot.min_instance += 1;
                if stream_ended {
                    let last_hash = slot.last_hash;
                    counter!(m::STREAM_INTERRUPTIONS, "node" => self.node.clone(), "provider" => id.to_string(), "reason" => "ended")
                        .increment(1);
                    self.emit(Event::StreamTerminated(ProviderStreamTerminated {
                        provider: id.clone(),
                        reason: "ended",
                        last_hash,
                    }));
                    Input::StreamEnded
                } else {
                    counter!(m::STREAM_INTERRUPTIONS, "node" => self.node.clone(), "provider" => id.to_string(), "reason" => "crashed")
                        .increment(1);
                    Input::Crashed
                }
            }
            Exit::Stopped | Exit::RestartLimit { .. } => {
                slot.running = false;
                Input::Failed
            }
        };
        let d = self.policy.on_input(id, input, now);
        self.apply(d);
    }

    /// Counts an activation failure (R5.2, see [`crate::activation`]):
    /// past the threshold (or at once while half-open) the provider is
    /// stopped, deregistered, Failed, and probed again later. Returns
    /// whether it was suppressed.
    fn count_activation_failure(
        &mut self,
        id: &ProviderId,
        code: &'static str,
        now: Instant,
    ) -> bool {
        let Some(slot) = self.slots.get_mut(id) else {
            return false;
        };
        let (threshold, attempt) = match slot.probe {
            Probe::HalfOpen { attempt } => (1, attempt + 1),
            _ => (self.settings.activation_failure_threshold, 0),
        };
        let ActivationVerdict::Suppress { failures } = slot.activation.on_failure(threshold) else {
            return false;
        };
        let delay = self.settings.reprobe.delay(attempt, self.rng.f64());
        let at = now.checked_add(delay);
        slot.probe = Probe::Suppressed { attempt, at };
        slot.spec.disabled = Some(format!(
            "activation suppressed after {failures} consecutive failures (last: {code})"
        ));
        if slot.running {
            slot.running = false;
            // The provider may keep the registration alive on its own (a TTL
            // heartbeat, a lease): nothing watches it any more, so take the
            // member back once the actor has stopped.
            let deregister = slot.spec.can_register && self.settings.local.is_some();
            self.ready.stop.push(Stop {
                id: id.clone(),
                deregister,
            });
        }
        self.presence.forget(id);
        tracing::warn!(provider = %id, failures, code, reprobe_in_ms = millis(delay), "activation suppressed");
        counter!(m::ACTIVATION_SUPPRESSED, "node" => self.node.clone(), "provider" => id.to_string()).increment(1);
        self.emit(Event::Suppressed(ActivationSuppressed {
            provider: id.clone(),
            failures,
            last_error: code,
        }));
        let d = self.policy.on_input(id, Input::Failed, now);
        self.apply(d);
        true
    }

    /// An operator lifts a suppression (rule 8): the provider is probed at
    /// once with the full threshold.
    pub fn lift_suppression(&mut self, id: &ProviderId, now: Instant) -> Result<()> {
        if self.draining {
            return Err(ProvisioningError::Draining);
        }
        let slot = self
            .slots
            .get(id)
            .ok_or_else(|| ProvisioningError::NotFound(id.clone()))?;
        if !matches!(slot.probe, Probe::Suppressed { .. }) {
            return Err(ProvisioningError::NotSuppressed(id.clone()));
        }
        tracing::info!(provider = %id, "suppression lifted by an operator");
        self.reprobe(id, Probe::None, now);
        Ok(())
    }

    /// Starts a suppressed provider again, in `probe` state.
    fn reprobe(&mut self, id: &ProviderId, probe: Probe, now: Instant) {
        let Some(mut slot) = self.slots.remove(id) else {
            return;
        };
        slot.probe = probe;
        slot.spec.disabled = None;
        slot.activation = Activation::new();
        self.start_actor(id, &mut slot);
        let priority = slot.spec.descriptor.priority;
        self.slots.insert(id.clone(), slot);
        // Back into the policy as a new provider (it was Failed).
        let mut d = self.policy.remove(id, now);
        let added = self.policy.add(id.clone(), priority, true, now);
        d.health.extend(added.health);
        d.active = match (d.active, added.active) {
            (Some(a), Some(b)) => Some(crate::failover::ActiveChange {
                from: a.from,
                to: b.to,
                reason: b.reason,
            }),
            (a, b) => b.or(a),
        };
        d.next_deadline = added.next_deadline;
        self.apply(d);
    }

    // ----- inputs: Remoting, operators, time -----

    /// Remoting reports an incarnation unreachable (R4.2).
    pub fn quarantine(&mut self, node: NodeId, incarnation: u64, reason: String, now: Instant) {
        if self.draining {
            return;
        }
        let expires = self
            .settings
            .quarantine_ttl
            .and_then(|t| now.checked_add(t))
            .map(Instant::into_std);
        if self.merger.quarantine(node.clone(), incarnation, expires) {
            counter!(m::QUARANTINES, "node" => self.node.clone()).increment(1);
            tracing::warn!(%node, incarnation, %reason, "node quarantined");
            self.pending_quarantine.push(RemoteNodeQuarantined {
                node,
                incarnation,
                reason,
                seq_no: 0,
            });
            self.recompute();
        }
    }

    /// Remoting reached a quarantined incarnation again (R4.4).
    pub fn reachable(&mut self, node: &NodeId, incarnation: u64) {
        if !self.draining {
            self.merger.mark_reachable(node, incarnation);
        }
    }

    /// An operator lifts a quarantine.
    pub fn clear_quarantine(&mut self, node: NodeId, incarnation: u64) -> Result<()> {
        if self.draining {
            return Err(ProvisioningError::Draining);
        }
        if self.merger.clear(&node, incarnation) {
            self.recompute();
            Ok(())
        } else {
            Err(ProvisioningError::NotQuarantined { node, incarnation })
        }
    }

    /// Time passed: silence and fail-back deadlines, quarantine expiry, the
    /// end of a suspect snapshot's hold, re-probes.
    pub fn tick(&mut self, now: Instant, wall: SystemTime) {
        if self.draining {
            return;
        }
        self.merger.expire(now.into_std());
        let released = self.presence.tick(now);
        self.release_held(released, wall);
        let due: Vec<ProviderId> = self
            .slots
            .iter()
            .filter_map(|(id, s)| match s.probe {
                Probe::Suppressed { at: Some(at), .. } if at <= now => Some(id.clone()),
                _ => None,
            })
            .collect();
        for id in due {
            let attempt = match self.slots.get(&id).map(|s| s.probe) {
                Some(Probe::Suppressed { attempt, .. }) => attempt,
                _ => continue,
            };
            tracing::info!(provider = %id, attempt, "probing a suppressed provider again (half-open)");
            self.reprobe(&id, Probe::HalfOpen { attempt }, now);
        }
        let d = self.policy.tick(now);
        self.apply(d);
    }

    /// Applies the snapshots whose hold reached its bound (issue 19).
    fn release_held(&mut self, released: Vec<Release>, wall: SystemTime) {
        for r in released {
            tracing::warn!(
                provider = %r.provider,
                reason = r.kind.as_str(),
                held = r.held,
                held_for_ms = millis(r.held_for),
                members = r.members.len(),
                lists_this_node = r.lists_self,
                "suspect snapshot applied: the hold reached its bound"
            );
            if !self.slots.contains_key(&r.provider) {
                continue;
            }
            let info = self.merger.on_refresh(&r.provider, r.members);
            if let Some(slot) = self.slots.get_mut(&r.provider) {
                slot.last_observed = Some(wall);
                slot.last_hash = Some(info.hash);
            }
        }
    }

    /// Graceful drain (R3.5): publishes the Draining topology once and stops
    /// every provider actor, deregistering the local member. Returns the
    /// providers to deregister from (those that were running).
    pub fn drain(&mut self) -> Vec<ProviderId> {
        if self.draining {
            return Vec::new();
        }
        self.seq_no += 1;
        let mut t = (*self.published).clone();
        t.status = ProvisioningStatus::Draining;
        t.seq_no = self.seq_no;
        let t = Arc::new(t);
        self.emit(Event::Topology(TopologyUpdated {
            topology: t.clone(),
            previous_hash: self.published.hash,
            diff: Arc::new(TopologyDiff::default()),
        }));
        self.status_gauge(self.status, ProvisioningStatus::Draining);
        log_status_change(self.status, ProvisioningStatus::Draining, self.seq_no);
        self.emit(Event::Status(ProvisioningStatusChanged {
            previous: self.status,
            status: ProvisioningStatus::Draining,
            seq_no: self.seq_no,
        }));
        self.status = ProvisioningStatus::Draining;
        self.published = t;
        self.draining = true;
        self.pending_quarantine.clear();
        self.pending_change = None;
        let mut running = Vec::new();
        for (id, s) in self.slots.iter_mut() {
            if s.running {
                s.running = false;
                self.ready.stop.push(Stop {
                    id: id.clone(),
                    deregister: s.spec.can_register && self.settings.local.is_some(),
                });
                running.push(id.clone());
            }
        }
        running
    }

    // ----- the publication -----

    fn emit(&mut self, e: Event) {
        self.ready.events.push(e);
    }

    /// The `provisioning_status` gauge: `previous` to 0, `status` to 1.
    fn status_gauge(&self, previous: ProvisioningStatus, status: ProvisioningStatus) {
        gauge!(m::STATUS, "node" => self.node.clone(), "status" => previous.as_str()).set(0.0);
        gauge!(m::STATUS, "node" => self.node.clone(), "status" => status.as_str()).set(1.0);
    }

    /// Publishes a decision's health changes, remembers an active change and
    /// recomputes the topology.
    fn apply(&mut self, d: Decision) {
        for h in &d.health {
            gauge!(m::PROVIDER_HEALTH, "node" => self.node.clone(), "provider" => h.provider.to_string()).set(h.health.gauge());
            let last_error = self
                .policy
                .views()
                .into_iter()
                .find(|v| v.id == h.provider)
                .and_then(|v| v.last_error);
            log_health_change(h, last_error);
            let last_update = self.slots.get(&h.provider).and_then(|s| s.last_update);
            self.emit(Event::Health(ProviderHealthChanged {
                provider: h.provider.clone(),
                previous: h.previous,
                health: h.health,
                last_update,
                last_error,
            }));
        }
        if let Some(c) = d.active {
            counter!(m::FAILOVERS, "node" => self.node.clone(), "reason" => c.reason.as_str())
                .increment(1);
            tracing::debug!(from = %or_none(&c.from), to = %or_none(&c.to), reason = c.reason.as_str(), "failover decision");
            // `from` is what consumers last saw, whatever changed in between
            // (several changes before one publication, a restored core).
            let from = match self.pending_change.take() {
                Some((from, _, _)) => from,
                None => self.published.active_provider.clone(),
            };
            let reason = if self.reloading {
                ChangeReason::Reload
            } else {
                c.reason
            };
            if c.to.is_some() {
                self.reloading = false;
            }
            self.pending_change = Some((from, c.to, reason));
        }
        self.policy_deadline = d.next_deadline;
        self.recompute();
    }

    /// The earliest of the policy's deadline, the next quarantine expiry, the
    /// end of a suspect snapshot's hold and the next re-probe.
    fn wake_at(&self) -> Option<Instant> {
        if self.draining {
            return None;
        }
        let expiry = self.merger.next_expiry().map(Instant::from_std);
        let reprobe = self
            .slots
            .values()
            .filter_map(|s| match s.probe {
                Probe::Suppressed { at, .. } => at,
                _ => None,
            })
            .min();
        [
            self.policy_deadline,
            expiry,
            self.presence.next_deadline(),
            reprobe,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Merges, and publishes what changed (rules 1 to 4).
    fn recompute(&mut self) {
        if self.draining || self.batching {
            return;
        }
        let availability = self.policy.availability();
        // A gap: the new providers of a reload, or the providers of a
        // restarted core, have not reported yet. Keep the last topology's
        // members, status, active provider and `stale` flag rather than
        // publish Starting; only the quarantine overlay changes meanwhile
        // (rule 10).
        if availability != Availability::Starting {
            self.resuming = false;
        }
        let gap = (self.reloading || self.resuming)
            && availability == Availability::Starting
            && self.status != ProvisioningStatus::Starting;
        let active = self.policy.active().cloned();
        // While nothing can be trusted the merger runs without input (merge
        // rule 4): the last members stay, the quarantine overlay applies.
        let trusted = !matches!(
            availability,
            Availability::Starting | Availability::Unavailable
        );
        let inputs: Vec<ProviderInput> = if trusted {
            self.slots
                .iter()
                .map(|(id, s)| {
                    ProviderInput::new(
                        id.clone(),
                        s.spec.descriptor.priority,
                        self.policy.health(id) == Some(ProviderHealth::Healthy),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let outcome = self.merger.merge(&inputs, active.as_ref(), self.seq_no + 1);
        let merged = outcome.topology.clone();
        let p = &self.published;
        let (status, active, stale) = if gap {
            (self.status, p.active_provider.clone(), p.stale)
        } else {
            (availability.status(merged.status), active, merged.stale)
        };
        let same = merged.hash == p.hash
            && merged.blocked == p.blocked
            && status == p.status
            && active == p.active_provider
            && stale == p.stale;
        if same && self.pending_quarantine.is_empty() {
            // Rule 2 (R2.3). A pending change of the active provider that
            // ends where it started (A → none → A within one batch) is no
            // change; in a gap it waits for the end of the gap.
            if !gap {
                self.pending_change = None;
            }
            return;
        }
        self.seq_no += 1;
        let previous = self.published.clone();
        for b in previous.blocked.iter() {
            if !merged.blocked.contains(b) {
                let listed = merged
                    .members
                    .iter()
                    .any(|m| m.node_id == b.node_id && m.incarnation == b.incarnation);
                tracing::info!(node = %b.node_id, incarnation = b.incarnation, listed, "node reactivated: quarantine lifted");
            }
        }
        // The merger's published members are always the core's (it runs at
        // every publication), so its diff is against what consumers saw.
        let diff = outcome.diff;
        let topology = Arc::new(Topology {
            members: merged.members.clone(),
            blocked: merged.blocked.clone(),
            status,
            hash: merged.hash,
            seq_no: self.seq_no,
            active_provider: active,
            stale,
        });
        for mut q in std::mem::take(&mut self.pending_quarantine) {
            q.seq_no = self.seq_no;
            self.emit(Event::Quarantined(q));
        }
        gauge!(m::MEMBERS, "node" => self.node.clone()).set(topology.members.len() as f64);
        counter!(m::TOPOLOGY_UPDATES, "node" => self.node.clone()).increment(1);
        self.emit(Event::Topology(TopologyUpdated {
            topology: topology.clone(),
            previous_hash: previous.hash,
            diff: Arc::new(diff),
        }));
        if status != self.status {
            self.status_gauge(self.status, status);
            log_status_change(self.status, status, self.seq_no);
            self.emit(Event::Status(ProvisioningStatusChanged {
                previous: self.status,
                status,
                seq_no: self.seq_no,
            }));
            self.status = status;
        }
        let change = if gap {
            None // Announced with the topology that ends the gap.
        } else {
            self.pending_change.take()
        };
        if let Some((from, to, reason)) = change
            && from != to
        {
            tracing::info!(
                from = %or_none(&from),
                to = %or_none(&to),
                reason = reason.as_str(),
                seq_no = self.seq_no,
                "active provider changed"
            );
            self.emit(Event::Changed(ProviderChanged {
                from,
                to,
                reason,
                seq_no: self.seq_no,
                hash: topology.hash,
            }));
        }
        self.published = topology.clone();
        self.ready.persist = Some(topology);
    }
}

#[cfg(test)]
#[path = "provisioning_core_tests.rs"]
mod tests;
