//! The `ProvisioningSupervisor` system actor (A3–A5).
//!
//! It owns the registry, one [`ProviderActor`] child per enabled provider
//! (every one watching at once: hot standby), the [`FailoverPolicy`] and the
//! [`TopologyMerger`], and publishes the events of
//! [`cluster_core::events`] on the system's EventStream.
//!
//! The actor is a driver: each message is turned into inputs for the pure
//! cores, and their outputs into events, timers and child actions. Two more
//! small cores guard against backend trouble (issue 19): a snapshot passes
//! [`SelfPresence`](crate::presence::SelfPresence) before it reaches the
//! merger (held while it lacks this node, the provider told to register
//! again), and a provider's failures pass
//! [`Activation`](crate::activation::Activation) before they count towards
//! R5.2 (only a provider that never delivered a snapshot is suppressed).
//!
//! ```text
//!  ProviderActor ──ProviderEvent──► FailoverPolicy ──Decision──┐
//!        ▲ restart (backoff, limit)        ▲ tick (timer)       │
//!        │                                 │                    ▼
//!  supervision ◄── on_child_failed ────────┘           TopologyMerger ──► TopologyUpdated,
//!                                                       (+ quarantine)     ProviderChanged, ...
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actor_runtime::{
    Actor, ActorHandle, ActorRef, ActorSystem, Backoff, Context, Directive, Failure, HandlerResult,
    ReplyTo, StopReason, SupervisorStrategy, Terminated, TimerKey,
};
use cluster_core::events::{
    ActivationSuppressed, ChangeReason, ProviderChanged, ProviderHealthChanged,
    ProviderStreamTerminated, ProvisioningStatusChanged, RemoteNodeQuarantined, TopologyUpdated,
};
use cluster_core::{
    ClusterProvider, Member, NodeId, ProviderDescriptor, ProviderError, ProviderHealth, ProviderId,
    ProvisioningError, ProvisioningStatus, Result, Snapshot, Topology, TopologyDiff, TopologyHash,
};
use metrics::{counter, gauge, histogram};
use tokio::time::Instant;

use crate::activation::{Activation, Verdict as ActivationVerdict};
use crate::failover::{
    Availability, Decision, FailoverConfig, FailoverPolicy, HealthChange, Input,
};
use crate::merge::{MergeConfig, ProviderInput, TopologyMerger};
use crate::metrics as m;
use crate::presence::{Release, SelfPresence, Verdict as PresenceVerdict};
use crate::provider_actor::{ProviderActor, ProviderEvent, ProviderMsg};
use crate::registry::{Accepted, ProviderKinds, accept};
use crate::store::DefinitionStore;

/// How the supervisor behaves. `Default` gives the mission's starting points.
#[derive(Clone, Debug)]
pub struct ProvisioningConfig {
    /// The local member, registered with every provider that can.
    pub local: Option<Member>,
    /// Failover timing.
    pub failover: FailoverConfig,
    /// Merge policy and glitch rule.
    pub merge: MergeConfig,
    /// Where accepted definitions (and the last topology) are persisted.
    pub store_path: Option<PathBuf>,
    /// Whether to persist the last topology too (restored stale).
    pub persist_topology: bool,
    /// Backoff between restarts of a failing provider actor (default 2 s
    /// doubling to 30 s, 20 % jitter).
    pub provider_backoff: Backoff,
    /// Restarts allowed in `provider_restart_window` before a provider is
    /// Failed (default 10 in 5 min).
    pub provider_max_restarts: u32,
    /// See `provider_max_restarts`.
    pub provider_restart_window: Duration,
    /// Consecutive activation failures (registration failures, malformed or
    /// unauthorized responses, bad settings) before activation is suppressed
    /// (R5.2, default 5). Only failures before a provider's first snapshot
    /// count (see [`activation`](crate::activation)): a running provider
    /// that fails is Degraded, never suppressed.
    pub activation_failure_threshold: u32,
    /// The self-presence rule's bound (see [`presence`](crate::presence)):
    /// a suspect snapshot (one that does not list the local member while it
    /// is registered, or that removes more than half of the members) is
    /// held at most this long, then applied with a WARN. A few keepalive
    /// periods of the providers (default 15 s, three of the memory
    /// provider's 5 s); zero turns the rule off.
    pub suspect_hold: Duration,
    /// Bound of a connectivity check at acceptance (R1.4, default 5 s).
    pub connectivity_timeout: Duration,
    /// Bound of a register / deregister call (default 5 s).
    pub register_timeout: Duration,
    /// Quarantines expire after this long (`None`: until reactivated or
    /// cleared).
    pub quarantine_ttl: Option<Duration>,
    /// Whether the definitions given to [`ProvisioningSupervisor::spawn`]
    /// are the source of truth over the store (default false: stored
    /// definitions win, a given one whose id is stored is ignored). When
    /// true, as with a node configuration file, the given set replaces the
    /// stored one, and every stored definition that differs or is gone is
    /// logged at WARN.
    pub definitions_from_config: bool,
}

impl Default for ProvisioningConfig {
    fn default() -> Self {
        Self {
            local: None,
            failover: FailoverConfig::default(),
            merge: MergeConfig::default(),
            store_path: None,
            persist_topology: true,
            provider_backoff: Backoff::exponential(Duration::from_secs(2), Duration::from_secs(30))
                .with_jitter(0.2),
            provider_max_restarts: 10,
            provider_restart_window: Duration::from_secs(300),
            activation_failure_threshold: 5,
            suspect_hold: Duration::from_secs(15),
            connectivity_timeout: Duration::from_secs(5),
            register_timeout: Duration::from_secs(5),
            quarantine_ttl: None,
            definitions_from_config: false,
        }
    }
}

/// One provider's state, as answered by [`ProvisioningHandle::providers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderStatus {
    /// The provider.
    pub id: ProviderId,
    /// Its kind.
    pub kind: String,
    /// Its priority.
    pub priority: u32,
    /// Its health.
    pub health: ProviderHealth,
    /// Whether it is the active one.
    pub active: bool,
    /// When its last snapshot arrived.
    pub last_update: Option<SystemTime>,
    /// Code of its last error.
    pub last_error: Option<&'static str>,
    /// Why it is disabled or suppressed.
    pub disabled_reason: Option<String>,
    /// Hash of its last snapshot.
    pub last_hash: Option<TopologyHash>,
    /// Members in its last snapshot (kept after its stream ended, R2.2).
    pub last_members: usize,
}

/// Messages of the supervisor; use [`ProvisioningHandle`] rather than these.
pub enum SupervisorMsg {
    /// From a provider actor.
    Provider {
        /// Which provider.
        id: ProviderId,
        /// Which instance of its actor.
        instance: u64,
        /// What happened.
        event: ProviderEvent,
    },
    /// Time passed: silence and fail-back deadlines, quarantine expiry.
    Tick,
    /// Register one more provider.
    Register(ProviderDescriptor, ReplyTo<Result<()>>),
    /// Remove a provider.
    Remove(ProviderId, ReplyTo<Result<()>>),
    /// Replace the whole provider set atomically (R5.4).
    Reload(Vec<ProviderDescriptor>, ReplyTo<Result<()>>),
    /// Remoting reports a node incarnation unreachable (R4.2).
    Quarantine {
        /// The node.
        node: NodeId,
        /// Its incarnation.
        incarnation: u64,
        /// Why.
        reason: String,
    },
    /// Remoting reached a quarantined node again (R4.4).
    Reachable {
        /// The node.
        node: NodeId,
        /// Its incarnation.
        incarnation: u64,
    },
    /// An operator lifts a quarantine.
    ClearQuarantine(NodeId, u64, ReplyTo<Result<()>>),
    /// Graceful drain (R3.5): refuse new snapshots, deregister everywhere.
    Drain(ReplyTo<Vec<(ProviderId, std::result::Result<(), ProviderError>)>>),
    /// Query: the published topology.
    Topology(ReplyTo<Arc<Topology>>),
    /// Query: every provider's state.
    Providers(ReplyTo<Vec<ProviderStatus>>),
    /// Query: the registry's definitions.
    Definitions(ReplyTo<Vec<ProviderDescriptor>>),
    /// Query: the last snapshot of one provider (R2.2).
    LastSnapshot(ProviderId, ReplyTo<Option<Snapshot>>),
}

struct Entry {
    descriptor: ProviderDescriptor,
    provider: Arc<dyn ClusterProvider>,
    disabled: Option<String>,
    actor: Option<ActorRef<ProviderMsg>>,
    /// The oldest actor instance whose events are still applied: instances
    /// are numbered from `spawn_provider`'s base, one per (re)start, and
    /// each restart decided for the actor makes the failed instance's
    /// queued events stale.
    min_instance: u64,
    /// When its last snapshot was observed (the members live in the merger).
    last_observed: Option<SystemTime>,
    last_hash: Option<TopologyHash>,
    last_update: Option<SystemTime>,
    /// R5.2: activating or running (see [`crate::activation`]).
    activation: Activation,
}

/// The supervisor actor. Spawn it with [`ProvisioningSupervisor::spawn`].
pub struct ProvisioningSupervisor {
    config: ProvisioningConfig,
    /// The `node` label of its metrics: the local member's node id, or the
    /// system's name without a local member.
    node: Arc<str>,
    kinds: ProviderKinds,
    entries: BTreeMap<ProviderId, Entry>,
    initial: Vec<Accepted>,
    policy: FailoverPolicy,
    merger: TopologyMerger,
    /// The self-presence rule (issue 19): which snapshots are held.
    presence: SelfPresence,
    published: Arc<Topology>,
    status: ProvisioningStatus,
    seq_no: u64,
    draining: bool,
    store: Option<DefinitionStore>,
    timer: Option<(TimerKey, Instant)>,
    next_instance: u64,
    pending_change: Option<(Option<ProviderId>, Option<ProviderId>, ChangeReason)>,
    pending_quarantine: Vec<RemoteNodeQuarantined>,
    shared: Arc<std::sync::Mutex<Shared>>,
    /// A reload is in progress: the next change of the active provider is
    /// reported with reason `Reload`.
    reloading: bool,
    /// The last topology save in flight.
    saving: Option<tokio::task::JoinHandle<()>>,
    /// The failover policy's next deadline.
    policy_deadline: Option<Instant>,
    /// Several changes are being applied as one (reload): publish once, at
    /// the end.
    batching: bool,
}

/// A handle to a running supervisor: the API that Remoting, placement and
/// operators use.
#[derive(Clone, Debug)]
pub struct ProvisioningHandle {
    actor: ActorRef<SupervisorMsg>,
    timeout: Duration,
}

/// Logs each stored definition that the configuration changes or drops
/// (the configuration wins: see
/// [`ProvisioningConfig::definitions_from_config`]).
fn log_store_differences(stored: &[ProviderDescriptor], given: &[ProviderDescriptor]) {
    for s in stored {
        match given.iter().find(|g| g.id == s.id) {
            None => tracing::warn!(
                provider = %s.id,
                "the store holds a provider the configuration does not define; the configuration wins, it is dropped"
            ),
            Some(g) if g != s => tracing::warn!(
                provider = %s.id,
                differs = %definition_differences(s, g).join(", "),
                "the stored definition differs from the configuration; the configuration wins"
            ),
            Some(_) => {}
        }
    }
}

/// The fields in which two definitions of one provider differ: `kind`,
/// `priority`, `enabled`, and `settings.<key>` for every setting added,
/// removed or changed (keys only: a value may be a secret).
fn definition_differences(a: &ProviderDescriptor, b: &ProviderDescriptor) -> Vec<String> {
    let mut out = Vec::new();
    if a.kind != b.kind {
        out.push("kind".to_owned());
    }
    if a.priority != b.priority {
        out.push("priority".to_owned());
    }
    if a.enabled != b.enabled {
        out.push("enabled".to_owned());
    }
    let keys: std::collections::BTreeSet<&String> =
        a.settings.keys().chain(b.settings.keys()).collect();
    for k in keys {
        if a.settings.get(k) != b.settings.get(k) {
            out.push(format!("settings.{k}"));
        }
    }
    out
}

fn now_unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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

impl ProvisioningSupervisor {
    /// Opens the store (failing fast on a corrupt one, R1.5), accepts the
    /// stored and the given definitions (stored ones first; a given one whose
    /// id is stored is ignored), and spawns the supervisor as the system
    /// actor `/system/provisioning` (A3).
    pub async fn spawn(
        system: &ActorSystem,
        config: ProvisioningConfig,
        kinds: ProviderKinds,
        definitions: Vec<ProviderDescriptor>,
    ) -> Result<ProvisioningHandle> {
        Self::spawn_named(system, "provisioning", config, kinds, definitions).await
    }

    /// [`spawn`](Self::spawn) under another name (several supervisors in one
    /// system, as in tests with several nodes).
    pub async fn spawn_named(
        system: &ActorSystem,
        name: &str,
        config: ProvisioningConfig,
        kinds: ProviderKinds,
        definitions: Vec<ProviderDescriptor>,
    ) -> Result<ProvisioningHandle> {
        let (store, stored) = match &config.store_path {
            Some(path) => {
                let (s, stored) = DefinitionStore::open(path.clone()).await?;
                (Some(s), Some(stored))
            }
            None => (None, None),
        };
        let mut accepted: Vec<Accepted> = Vec::new();
        let mut restored = None;
        if let Some(stored) = stored {
            let stored_defs = if config.definitions_from_config {
                log_store_differences(&stored.definitions, &definitions);
                Vec::new()
            } else {
                stored.definitions
            };
            for d in stored_defs {
                // Restored: no connectivity check (a backend down at restart
                // gives a Degraded provider, not a lost definition).
                accepted.push(accept(&kinds, d, None).await?);
            }
            restored = stored.last_topology;
        }
        for d in definitions {
            if accepted.iter().any(|a| a.descriptor.id == d.id) {
                continue;
            }
            accepted.push(accept(&kinds, d, Some(config.connectivity_timeout)).await?);
        }
        if let Some(store) = &store {
            let defs: Vec<_> = accepted.iter().map(|a| a.descriptor.clone()).collect();
            store.save_definitions(&defs).await?;
        }
        let timeout = config
            .connectivity_timeout
            .saturating_add(config.register_timeout);
        // A restored topology continues its seq_no.
        let seq_no = restored.as_ref().map_or(0, |t| t.seq_no);
        let node: Arc<str> = match &config.local {
            Some(m) => Arc::from(m.node_id.to_string()),
            None => Arc::from(system.name()),
        };
        let shared = Arc::new(std::sync::Mutex::new(Shared {
            node,
            config,
            kinds,
            accepted,
            store,
            restored,
            seq_no,
        }));
        let actor = system
            .spawn_system(name, move || {
                ProvisioningSupervisor::from_shared(shared.clone())
            })
            .map_err(|e| ProvisioningError::Supervisor(e.to_string()))?;
        Ok(ProvisioningHandle { actor, timeout })
    }

    fn from_shared(shared: Arc<std::sync::Mutex<Shared>>) -> Self {
        let (node, config, kinds, initial, store, restored, seq_no) = {
            let s = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (
                s.node.clone(),
                s.config.clone(),
                s.kinds.clone(),
                s.accepted.clone(),
                s.store.clone(),
                s.restored.clone(),
                s.seq_no,
            )
        };
        let mut published = restored.clone().unwrap_or_else(Topology::starting);
        published.seq_no = seq_no;
        let merger = match restored {
            Some(t) => TopologyMerger::with_published(config.merge, t),
            None => TopologyMerger::new(config.merge),
        };
        let local = config
            .local
            .as_ref()
            .map(|m| (m.node_id.clone(), m.incarnation));
        Self {
            presence: SelfPresence::new(local, config.suspect_hold),
            policy: FailoverPolicy::new(config.failover),
            merger,
            node,
            config,
            kinds,
            entries: BTreeMap::new(),
            initial,
            published: Arc::new(published),
            status: ProvisioningStatus::Starting,
            seq_no,
            draining: false,
            store,
            timer: None,
            next_instance: 0,
            pending_change: None,
            pending_quarantine: Vec::new(),
            shared,
            reloading: false,
            saving: None,
            policy_deadline: None,
            batching: false,
        }
    }
}

/// What survives a restart of the supervisor itself: its configuration, the
/// accepted definitions (kept current) and the last seq_no, so that a
/// rebuilt supervisor runs the same providers and never publishes an older
/// seq_no. Quarantines do not survive: a restarted supervisor trusts its
/// providers again.
struct Shared {
    /// The `node` label of the metrics.
    node: Arc<str>,
    config: ProvisioningConfig,
    kinds: ProviderKinds,
    accepted: Vec<Accepted>,
    store: Option<DefinitionStore>,
    restored: Option<Topology>,
    seq_no: u64,
}

impl ProvisioningSupervisor {
    fn sync_shared(&self) {
        let mut s = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.accepted = self
            .entries
            .values()
            .map(|e| Accepted {
                descriptor: e.descriptor.clone(),
                provider: e.provider.clone(),
                disabled: e.disabled.clone(),
            })
            .collect();
        s.seq_no = self.seq_no;
    }

    /// Adds an accepted provider: into the policy, and as a child actor when
    /// enabled.
    fn install(&mut self, a: Accepted, ctx: &mut Context<Self>) -> Result<()> {
        let id = a.descriptor.id.clone();
        let enabled = a.disabled.is_none();
        let mut entry = Entry {
            descriptor: a.descriptor,
            provider: a.provider,
            disabled: a.disabled,
            actor: None,
            min_instance: 0,
            last_observed: None,
            last_hash: None,
            last_update: None,
            activation: Activation::new(),
        };
        if enabled {
            let (actor, base) = self.spawn_provider(&id, &entry.provider, ctx)?;
            entry.actor = Some(actor);
            entry.min_instance = base + 1;
        }
        let d = self.policy.add(
            id.clone(),
            entry.descriptor.priority,
            enabled,
            Instant::now(),
        );
        gauge!(m::PROVIDER_HEALTH, "node" => self.node.clone(), "provider" => id.to_string())
            .set(self.policy.health(&id).map_or(0.0, ProviderHealth::gauge));
        self.entries.insert(id, entry);
        self.apply(d, ctx);
        Ok(())
    }

    fn spawn_provider(
        &mut self,
        id: &ProviderId,
        provider: &Arc<dyn ClusterProvider>,
        ctx: &mut Context<Self>,
    ) -> Result<(ActorRef<ProviderMsg>, u64)> {
        self.next_instance += 1;
        let base = self.next_instance * 1_000_000;
        let mut instance = base;
        let (id2, provider, local, supervisor, timeout) = (
            id.clone(),
            provider.clone(),
            self.config.local.clone(),
            ctx.myself().clone(),
            self.config.register_timeout,
        );
        let factory = move || {
            instance += 1;
            ProviderActor {
                id: id2.clone(),
                provider: provider.clone(),
                local: local.clone(),
                supervisor: supervisor.clone(),
                instance,
                register_timeout: timeout,
                pump: None,
                deregistered: false,
            }
        };
        // `provider-<id>`, or a numbered name while a replaced actor of the
        // same provider is still stopping (reload, remove + register).
        let name = if ctx
            .myself()
            .handle()
            .child(&format!("provider-{id}"))
            .is_some()
        {
            format!("provider-{id}-{}", self.next_instance)
        } else {
            format!("provider-{id}")
        };
        let actor = ctx
            .spawn(&name, factory)
            .map_err(|e| ProvisioningError::Supervisor(e.to_string()))?;
        Ok((actor, base))
    }

    /// Stops a provider's actor and forgets it.
    fn uninstall(&mut self, id: &ProviderId, ctx: &mut Context<Self>) {
        self.merger.remove_provider(id);
        self.presence.forget(id);
        if let Some(e) = self.entries.remove(id)
            && let Some(a) = e.actor
        {
            ctx.unwatch(a.handle());
            a.stop();
        }
        let d = self.policy.remove(id, Instant::now());
        self.apply(d, ctx);
    }

    fn entry_by_actor(&self, h: &ActorHandle) -> Option<ProviderId> {
        self.entries
            .iter()
            .find(|(_, e)| e.actor.as_ref().is_some_and(|a| a.handle() == h))
            .map(|(id, _)| id.clone())
    }

    fn on_provider(
        &mut self,
        id: ProviderId,
        instance: u64,
        event: ProviderEvent,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let threshold = self.config.activation_failure_threshold;
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if instance < entry.min_instance {
            return; // From an instance that has failed or been replaced.
        }
        let decision = match event {
            ProviderEvent::Started => self.policy.on_input(&id, Input::Started, now),
            ProviderEvent::Snapshot(snapshot) => {
                if self.draining {
                    return; // R3.5: refused while draining; the last is kept.
                }
                let received = SystemTime::now();
                let lag = received
                    .duration_since(snapshot.observed_at)
                    .unwrap_or(Duration::ZERO);
                histogram!(m::SNAPSHOT_LATENCY, "node" => self.node.clone(), "provider" => id.to_string())
                    .record(lag.as_secs_f64());
                gauge!(m::PROVIDER_LAST_UPDATE, "node" => self.node.clone(), "provider" => id.to_string())
                    .set(now_unix(received));
                entry.last_update = Some(received);
                entry.activation.on_snapshot();
                // The self-presence rule (issue 19): a suspect snapshot is
                // held, the provider's last applied one stays in force.
                let previous = self.merger.snapshot(&id).map(|s| s.members().clone());
                let previous: &[Member] = previous.as_deref().unwrap_or(&[]);
                let verdict = self
                    .presence
                    .on_snapshot(&id, previous, &snapshot.members, now);
                match verdict {
                    PresenceVerdict::Apply => {}
                    PresenceVerdict::ApplyEndingHold { held, held_for } => {
                        tracing::info!(
                            provider = %id,
                            held,
                            held_for_ms = u64::try_from(held_for.as_millis()).unwrap_or(u64::MAX),
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
                                hold_ms = u64::try_from(self.config.suspect_hold.as_millis()).unwrap_or(u64::MAX),
                                "suspect snapshot held: it does not list this node or lost more than half of the members"
                            );
                        } else {
                            tracing::debug!(provider = %id, reason = kind.as_str(), members, "suspect snapshot held");
                        }
                        if reregister && let Some(a) = &entry.actor {
                            let _ = a.tell(ProviderMsg::Reregister);
                        }
                        // A sign of life all the same: the stream works.
                        let d = self.policy.on_input(&id, Input::Snapshot { lag }, now);
                        self.apply(d, ctx);
                        return;
                    }
                }
                entry.last_observed = Some(snapshot.observed_at);
                let info = self.merger.on_refresh(&id, snapshot.members);
                entry.last_hash = Some(info.hash);
                self.policy.on_input(&id, Input::Snapshot { lag }, now)
            }
            ProviderEvent::Error(e) => {
                let code = e.code();
                if matches!(e, ProviderError::Auth(_)) {
                    tracing::warn!(provider = %id, code, error = %e, "provider authorisation failed");
                }
                counter!(m::STREAM_INTERRUPTIONS, "node" => self.node.clone(), "provider" => id.to_string(), "reason" => code)
                    .increment(1);
                let last_hash = entry.last_hash;
                let activation = matches!(
                    e,
                    ProviderError::Auth(_)
                        | ProviderError::Protocol(_)
                        | ProviderError::Config { .. }
                );
                ctx.system()
                    .event_stream()
                    .publish(ProviderStreamTerminated {
                        provider: id.clone(),
                        reason: code,
                        last_hash,
                    });
                if activation && self.count_activation_failure(&id, code, threshold, ctx) {
                    return;
                }
                self.policy.on_input(&id, Input::Error(code), now)
            }
            ProviderEvent::RegistrationFailed(e) => {
                counter!(m::REGISTRATION_FAILURES, "node" => self.node.clone(), "provider" => id.to_string(), "reason" => e.code())
                    .increment(1);
                // An unreachable backend is not a validation failure (R5.2):
                // the registration is retried and failover handles the rest.
                if !matches!(e, ProviderError::Connectivity(_))
                    && self.count_activation_failure(&id, e.code(), threshold, ctx)
                {
                    return;
                }
                Decision::default()
            }
        };
        self.apply(decision, ctx);
    }

    /// Applies the snapshots whose hold reached its bound (issue 19), each
    /// with a WARN line.
    fn release_held(&mut self, released: Vec<Release>) {
        for r in released {
            tracing::warn!(
                provider = %r.provider,
                reason = r.kind.as_str(),
                held = r.held,
                held_for_ms = u64::try_from(r.held_for.as_millis()).unwrap_or(u64::MAX),
                members = r.members.len(),
                lists_this_node = r.lists_self,
                "suspect snapshot applied: the hold reached its bound"
            );
            let Some(entry) = self.entries.get_mut(&r.provider) else {
                continue;
            };
            entry.last_observed = Some(SystemTime::now());
            let info = self.merger.on_refresh(&r.provider, r.members);
            entry.last_hash = Some(info.hash);
        }
    }

    /// Counts an activation failure (R5.2, see [`crate::activation`]): only
    /// a provider that has not delivered a snapshot yet is counted; past the
    /// threshold it is stopped, Failed, and a warning published. Returns
    /// whether it was suppressed.
    fn count_activation_failure(
        &mut self,
        id: &ProviderId,
        code: &'static str,
        threshold: u32,
        ctx: &mut Context<Self>,
    ) -> bool {
        let Some(entry) = self.entries.get_mut(id) else {
            return false;
        };
        let ActivationVerdict::Suppress { failures } = entry.activation.on_failure(threshold)
        else {
            return false;
        };
        self.presence.forget(id);
        entry.disabled = Some(format!(
            "activation suppressed after {failures} consecutive failures (last: {code})"
        ));
        if let Some(a) = entry.actor.take() {
            ctx.unwatch(a.handle());
            a.stop();
            // The provider may keep the registration alive on its own (a TTL
            // heartbeat, a lease): nothing watches it any more, so take the
            // member back, after the actor has stopped, without holding up
            // this handler.
            if let Some(local) = self.config.local.clone()
                && entry.provider.capabilities().register
            {
                let provider = entry.provider.clone();
                let timeout = self.config.register_timeout;
                let pid = id.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(timeout, a.stopped()).await;
                    match tokio::time::timeout(timeout, provider.deregister(&local)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(provider = %pid, error = %e, "could not deregister from a suppressed provider")
                        }
                        Err(_) => {
                            tracing::warn!(provider = %pid, "deregistration from a suppressed provider timed out")
                        }
                    }
                });
            }
        }
        tracing::warn!(provider = %id, failures, code, "activation suppressed");
        counter!(m::ACTIVATION_SUPPRESSED, "node" => self.node.clone(), "provider" => id.to_string()).increment(1);
        ctx.system().event_stream().publish(ActivationSuppressed {
            provider: id.clone(),
            failures,
            last_error: code,
        });
        let d = self.policy.on_input(id, Input::Failed, Instant::now());
        self.apply(d, ctx);
        true
    }

    /// Publishes a decision's health changes, remembers an active change,
    /// reschedules the tick and recomputes the topology.
    fn apply(&mut self, d: Decision, ctx: &mut Context<Self>) {
        for h in &d.health {
            gauge!(m::PROVIDER_HEALTH, "node" => self.node.clone(), "provider" => h.provider.to_string()).set(h.health.gauge());
            let entry = self.entries.get(&h.provider);
            let last_error = self
                .policy
                .views()
                .into_iter()
                .find(|v| v.id == h.provider)
                .and_then(|v| v.last_error);
            log_health_change(h, last_error);
            ctx.system().event_stream().publish(ProviderHealthChanged {
                provider: h.provider.clone(),
                previous: h.previous,
                health: h.health,
                last_update: entry.and_then(|e| e.last_update),
                last_error,
            });
        }
        if let Some(c) = d.active {
            counter!(m::FAILOVERS, "node" => self.node.clone(), "reason" => c.reason.as_str())
                .increment(1);
            tracing::debug!(from = %or_none(&c.from), to = %or_none(&c.to), reason = c.reason.as_str(), "failover decision");
            // Keep the first `from` if several changes happen before publish.
            let from = match self.pending_change.take() {
                Some((from, _, _)) => from,
                None => c.from,
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
        self.schedule(ctx);
        self.recompute(ctx);
    }

    /// Arms the tick timer for the earliest of the policy's deadline, the
    /// next quarantine expiry and the end of a suspect snapshot's hold.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let expiry = self.merger.next_expiry().map(Instant::from_std);
        let deadline = [self.policy_deadline, expiry, self.presence.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        match (deadline, self.timer) {
            (Some(t), Some((_, at))) if at == t => {}
            (Some(t), old) => {
                if let Some((k, _)) = old {
                    ctx.cancel_timer(k);
                }
                let delay = t.saturating_duration_since(Instant::now());
                let key = ctx.schedule_once(delay, SupervisorMsg::Tick);
                self.timer = Some((key, t));
            }
            (None, Some((k, _))) => {
                ctx.cancel_timer(k);
                self.timer = None;
            }
            (None, None) => {}
        }
    }

    /// Merges, and publishes what changed (A5): RemoteNodeQuarantined first,
    /// then TopologyUpdated, ProvisioningStatusChanged, ProviderChanged, all
    /// with the same seq_no.
    fn recompute(&mut self, ctx: &mut Context<Self>) {
        if self.draining || self.batching {
            return;
        }
        let availability = self.policy.availability();
        if self.reloading
            && availability == Availability::Starting
            && self.status != ProvisioningStatus::Starting
        {
            // The new providers of a reload have not reported yet: keep the
            // last topology rather than publish a gap.
            return;
        }
        let active = self.policy.active().cloned();
        // While nothing can be trusted, keep the last members and change only
        // the status; the merger is not run, so its next diff is still
        // against what consumers last saw.
        let keep_members = matches!(
            availability,
            Availability::Starting | Availability::Unavailable
        );
        let (members, blocked, hash, diff, changed, merged_status) = if keep_members {
            let p = &self.published;
            (
                p.members.clone(),
                p.blocked.clone(),
                p.hash,
                TopologyDiff::default(),
                false,
                p.status,
            )
        } else {
            let inputs: Vec<ProviderInput> = self
                .entries
                .iter()
                .map(|(id, e)| {
                    ProviderInput::new(
                        id.clone(),
                        e.descriptor.priority,
                        self.policy.health(id) == Some(ProviderHealth::Healthy),
                    )
                })
                .collect();
            let outcome = self.merger.merge(&inputs, active.as_ref(), self.seq_no + 1);
            let t = &outcome.topology;
            (
                t.members.clone(),
                t.blocked.clone(),
                t.hash,
                outcome.diff,
                outcome.changed,
                t.status,
            )
        };
        let status = availability.status(merged_status);
        let provider_changed = self.pending_change.is_some();
        if !changed
            && status == self.status
            && !provider_changed
            && self.pending_quarantine.is_empty()
        {
            return; // R2.3: identical hash and status: nothing published.
        }
        self.seq_no += 1;
        let previous_hash = self.published.hash;
        for b in self.published.blocked.iter() {
            if !blocked.contains(b) {
                let listed = members
                    .iter()
                    .any(|m| m.node_id == b.node_id && m.incarnation == b.incarnation);
                tracing::info!(node = %b.node_id, incarnation = b.incarnation, listed, "node reactivated: quarantine lifted");
            }
        }
        let topology = Arc::new(Topology {
            members,
            blocked,
            status,
            hash,
            seq_no: self.seq_no,
            active_provider: active.clone(),
            stale: false,
        });
        let es = ctx.system().event_stream().clone();
        for mut q in self.pending_quarantine.drain(..) {
            q.seq_no = self.seq_no;
            es.publish(q);
        }
        gauge!(m::MEMBERS, "node" => self.node.clone()).set(topology.members.len() as f64);
        counter!(m::TOPOLOGY_UPDATES, "node" => self.node.clone()).increment(1);
        es.publish(TopologyUpdated {
            topology: topology.clone(),
            previous_hash,
            diff: Arc::new(diff),
        });
        if status != self.status {
            self.status_gauge(self.status, status);
            log_status_change(self.status, status, self.seq_no);
            es.publish(ProvisioningStatusChanged {
                previous: self.status,
                status,
                seq_no: self.seq_no,
            });
            self.status = status;
        }
        if let Some((from, to, reason)) = self.pending_change.take() {
            tracing::info!(
                from = %or_none(&from),
                to = %or_none(&to),
                reason = reason.as_str(),
                seq_no = self.seq_no,
                "active provider changed"
            );
            es.publish(ProviderChanged {
                from,
                to,
                reason,
                seq_no: self.seq_no,
                hash,
            });
        }
        self.published = topology;
        self.sync_shared();
        if self.config.persist_topology
            && let Some(store) = self.store.clone()
        {
            let t = (*self.published).clone();
            // Persisting must not delay publication: the save runs in a task,
            // after the previous one (so the file never goes back in time),
            // and `stopped` waits for the last one.
            let previous = self.saving.take();
            self.saving = Some(tokio::spawn(async move {
                if let Some(p) = previous {
                    let _ = p.await;
                }
                if let Err(e) = store.save_topology(&t).await {
                    tracing::warn!(error = %e, code = e.code(), "could not persist the topology");
                }
            }));
        }
    }

    async fn persist_definitions(&self) -> Result<()> {
        self.sync_shared();
        if let Some(store) = &self.store {
            let defs: Vec<_> = self
                .entries
                .values()
                .map(|e| e.descriptor.clone())
                .collect();
            store.save_definitions(&defs).await?;
        }
        Ok(())
    }

    async fn register(&mut self, d: ProviderDescriptor, ctx: &mut Context<Self>) -> Result<()> {
        if self.draining {
            return Err(ProvisioningError::Draining);
        }
        d.validate()?;
        if self.entries.contains_key(&d.id) {
            return Err(ProvisioningError::Duplicate(d.id)); // R1.2: existing kept.
        }
        let a = accept(&self.kinds, d, Some(self.config.connectivity_timeout)).await?;
        if self.entries.contains_key(&a.descriptor.id) {
            return Err(ProvisioningError::Duplicate(a.descriptor.id));
        }
        self.install(a, ctx)?;
        self.persist_definitions().await
    }

    /// R5.4: every new or changed definition is accepted first; if any is
    /// rejected nothing changes. Then, in this one turn of the actor, removed
    /// providers stop, changed ones are replaced and new ones start.
    async fn reload(
        &mut self,
        defs: Vec<ProviderDescriptor>,
        ctx: &mut Context<Self>,
    ) -> Result<()> {
        if self.draining {
            return Err(ProvisioningError::Draining);
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &defs {
            d.validate()?;
            if !seen.insert(d.id.clone()) {
                return Err(ProvisioningError::Duplicate(d.id.clone()));
            }
        }
        let mut prepared = Vec::new();
        for d in defs {
            // An unchanged definition is kept running, unless it stopped for
            // good (Failed, suppressed): reloading it revives it.
            let alive = |e: &Entry| {
                e.disabled.is_none() == e.descriptor.enabled
                    && self.policy.health(&e.descriptor.id) != Some(ProviderHealth::Failed)
            };
            match self.entries.get(&d.id) {
                Some(e) if e.descriptor == d && alive(e) => prepared.push((d.id.clone(), None)),
                _ => {
                    let id = d.id.clone();
                    let a = accept(&self.kinds, d, Some(self.config.connectivity_timeout)).await?;
                    prepared.push((id, Some(a)));
                }
            }
        }
        // Accepted as a whole: apply, publishing once at the end.
        self.reloading = true;
        self.batching = true;
        let keep: std::collections::BTreeSet<ProviderId> =
            prepared.iter().map(|(id, _)| id.clone()).collect();
        let gone: Vec<ProviderId> = self
            .entries
            .keys()
            .filter(|id| !keep.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.uninstall(&id, ctx);
        }
        let mut result = Ok(());
        for (id, a) in prepared {
            if let Some(a) = a {
                self.uninstall(&id, ctx);
                if let Err(e) = self.install(a, ctx) {
                    // Only if the supervisor itself is stopping.
                    result = Err(e);
                }
            }
        }
        self.batching = false;
        result?;
        if self.policy.active().is_some() {
            self.reloading = false;
        }
        self.recompute(ctx);
        self.persist_definitions().await
    }

    /// The `provisioning_status` gauge: `previous` to 0, `status` to 1.
    fn status_gauge(&self, previous: ProvisioningStatus, status: ProvisioningStatus) {
        gauge!(m::STATUS, "node" => self.node.clone(), "status" => previous.as_str()).set(0.0);
        gauge!(m::STATUS, "node" => self.node.clone(), "status" => status.as_str()).set(1.0);
    }

    async fn drain(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> Vec<(ProviderId, std::result::Result<(), ProviderError>)> {
        if !self.draining {
            self.draining = true;
            self.seq_no += 1;
            let mut t = (*self.published).clone();
            t.status = ProvisioningStatus::Draining;
            t.seq_no = self.seq_no;
            let t = Arc::new(t);
            let es = ctx.system().event_stream().clone();
            es.publish(TopologyUpdated {
                topology: t.clone(),
                previous_hash: self.published.hash,
                diff: Arc::new(TopologyDiff::default()),
            });
            self.status_gauge(self.status, ProvisioningStatus::Draining);
            log_status_change(self.status, ProvisioningStatus::Draining, self.seq_no);
            es.publish(ProvisioningStatusChanged {
                previous: self.status,
                status: ProvisioningStatus::Draining,
                seq_no: self.seq_no,
            });
            self.status = ProvisioningStatus::Draining;
            self.published = t;
            self.sync_shared();
        }
        // Stop the provider actors first (a running one could register
        // again, e.g. a pending registration retry), and wait for them, so
        // that no registration lands after the deregistration. An actor in a
        // restart backoff stops at once instead of answering late.
        let mut stopped = Vec::new();
        for (id, e) in self.entries.iter_mut() {
            if let Some(a) = e.actor.take() {
                ctx.unwatch(a.handle());
                a.stop();
                stopped.push((id.clone(), a));
            }
        }
        // A stopping actor may be inside a registration bounded by
        // `register_timeout`: wait a little longer than that.
        let timeout = self.config.register_timeout;
        let stop_wait = timeout.saturating_add(Duration::from_secs(1));
        for (_, a) in &stopped {
            let _ = tokio::time::timeout(stop_wait, a.stopped()).await;
        }
        // Then deregister from every provider that was running, at once.
        let local = self.config.local.clone();
        let deregistrations = stopped.iter().map(|(id, _)| {
            let provider = self.entries.get(id).map(|e| e.provider.clone());
            let local = local.clone();
            async move {
                let result = match (provider, local) {
                    (Some(p), Some(local)) if p.capabilities().register => {
                        match tokio::time::timeout(timeout, p.deregister(&local)).await {
                            Ok(r) => r,
                            Err(_) => Err(ProviderError::Registration(format!(
                                "deregistration: no answer within {timeout:?}"
                            ))),
                        }
                    }
                    _ => Ok(()),
                };
                (id.clone(), result)
            }
        });
        let results = futures::future::join_all(deregistrations).await;
        self.pending_quarantine.clear();
        results
    }

    fn statuses(&self) -> Vec<ProviderStatus> {
        let active = self.policy.active();
        self.policy
            .views()
            .into_iter()
            .filter_map(|v| {
                let e = self.entries.get(&v.id)?;
                Some(ProviderStatus {
                    active: active == Some(&v.id),
                    kind: e.descriptor.kind.clone(),
                    priority: v.priority,
                    health: v.health,
                    last_update: e.last_update,
                    last_error: v.last_error,
                    disabled_reason: e.disabled.clone(),
                    last_hash: e.last_hash,
                    last_members: self.merger.snapshot(&v.id).map_or(0, |s| s.members().len()),
                    id: v.id,
                })
            })
            .collect()
    }
}

impl Actor for ProvisioningSupervisor {
    type Msg = SupervisorMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> HandlerResult {
        gauge!(m::STATUS, "node" => self.node.clone(), "status" => self.status.as_str()).set(1.0);
        for a in std::mem::take(&mut self.initial) {
            self.install(a, ctx)?;
        }
        Ok(())
    }

    async fn handle(&mut self, msg: SupervisorMsg, ctx: &mut Context<Self>) -> HandlerResult {
        match msg {
            SupervisorMsg::Provider {
                id,
                instance,
                event,
            } => {
                self.on_provider(id, instance, event, ctx);
            }
            SupervisorMsg::Tick => {
                self.timer = None;
                let now = Instant::now();
                self.merger.expire(now.into_std());
                let released = self.presence.tick(now);
                self.release_held(released);
                let d = self.policy.tick(now);
                self.apply(d, ctx);
            }
            SupervisorMsg::Register(d, reply) => {
                let r = self.register(d, ctx).await;
                let _ = reply.send(r);
            }
            SupervisorMsg::Remove(id, reply) => {
                let r = if self.entries.contains_key(&id) {
                    self.uninstall(&id, ctx);
                    self.persist_definitions().await
                } else {
                    Err(ProvisioningError::NotFound(id))
                };
                let _ = reply.send(r);
            }
            SupervisorMsg::Reload(defs, reply) => {
                let r = self.reload(defs, ctx).await;
                let _ = reply.send(r);
            }
            SupervisorMsg::Quarantine {
                node,
                incarnation,
                reason,
            } => {
                let expires = self
                    .config
                    .quarantine_ttl
                    .and_then(|t| Instant::now().checked_add(t))
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
                    self.schedule(ctx);
                    self.recompute(ctx);
                }
            }
            SupervisorMsg::Reachable { node, incarnation } => {
                self.merger.mark_reachable(&node, incarnation);
            }
            SupervisorMsg::ClearQuarantine(node, incarnation, reply) => {
                let r = if self.merger.clear(&node, incarnation) {
                    self.recompute(ctx);
                    Ok(())
                } else {
                    Err(ProvisioningError::NotQuarantined { node, incarnation })
                };
                let _ = reply.send(r);
            }
            SupervisorMsg::Drain(reply) => {
                let r = self.drain(ctx).await;
                let _ = reply.send(r);
            }
            SupervisorMsg::Topology(reply) => {
                let _ = reply.send(self.published.clone());
            }
            SupervisorMsg::Providers(reply) => {
                let _ = reply.send(self.statuses());
            }
            SupervisorMsg::Definitions(reply) => {
                let _ = reply.send(
                    self.entries
                        .values()
                        .map(|e| e.descriptor.clone())
                        .collect(),
                );
            }
            SupervisorMsg::LastSnapshot(id, reply) => {
                let snapshot = self.entries.get(&id).and_then(|e| {
                    let members = self.merger.snapshot(&id)?.members().to_vec();
                    Some(Snapshot {
                        members,
                        observed_at: e.last_observed?,
                    })
                });
                let _ = reply.send(snapshot);
            }
        }
        Ok(())
    }

    async fn on_child_failed(
        &mut self,
        child: ActorHandle,
        failure: Failure,
        directive: Directive,
        ctx: &mut Context<Self>,
    ) {
        if let Some(id) = self.entry_by_actor(&child) {
            // Failure reports overtake the child's last messages (system
            // messages go first), so learn the cause from the failure.
            let stream_ended = failure.error_ref().is_some_and(|e| {
                e.downcast_ref::<crate::provider_actor::StreamEnded>()
                    .is_some()
            });
            let input = match directive {
                Directive::Restart if stream_ended => Input::StreamEnded,
                Directive::Restart => Input::Crashed,
                Directive::Stop => Input::Failed,
                _ => return,
            };
            if let Some(e) = self.entries.get_mut(&id) {
                // Whatever the failed instance still had queued is stale.
                e.min_instance += 1;
                if stream_ended {
                    counter!(m::STREAM_INTERRUPTIONS, "node" => self.node.clone(), "provider" => id.to_string(), "reason" => "ended")
                        .increment(1);
                    ctx.system()
                        .event_stream()
                        .publish(ProviderStreamTerminated {
                            provider: id.clone(),
                            reason: "ended",
                            last_hash: e.last_hash,
                        });
                }
            }
            let d = self.policy.on_input(&id, input, Instant::now());
            self.apply(d, ctx);
        }
    }

    async fn on_terminated(&mut self, t: Terminated, ctx: &mut Context<Self>) -> HandlerResult {
        if let Some(id) = self.entry_by_actor(&t.actor) {
            if let Some(e) = self.entries.get_mut(&id) {
                e.actor = None;
                if let StopReason::RestartLimitExceeded { failures, .. } = &t.reason {
                    e.disabled = Some(format!("restart limit exceeded after {failures} failures"));
                }
            }
            let d = self.policy.on_input(&id, Input::Failed, Instant::now());
            self.apply(d, ctx);
        }
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(save) = self.saving.take() {
            let _ = save.await;
        }
    }

    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::one_for_one()
            .with_backoff(self.config.provider_backoff)
            .with_limit(
                self.config.provider_max_restarts,
                self.config.provider_restart_window,
            )
    }
}

impl ProvisioningHandle {
    /// The supervisor actor.
    pub fn actor(&self) -> &ActorRef<SupervisorMsg> {
        &self.actor
    }

    async fn ask<R: Send + 'static>(
        &self,
        make: impl FnOnce(ReplyTo<R>) -> SupervisorMsg,
        timeout: Duration,
    ) -> Result<R> {
        self.actor
            .ask(make, timeout)
            .await
            .map_err(|e| ProvisioningError::Supervisor(e.to_string()))
    }

    /// The published topology (R3.2: check its `status`).
    pub async fn topology(&self) -> Result<Arc<Topology>> {
        self.ask(SupervisorMsg::Topology, self.timeout).await
    }

    /// Every provider's state (health, last update, last error code).
    pub async fn providers(&self) -> Result<Vec<ProviderStatus>> {
        self.ask(SupervisorMsg::Providers, self.timeout).await
    }

    /// The registry listing.
    pub async fn definitions(&self) -> Result<Vec<ProviderDescriptor>> {
        self.ask(SupervisorMsg::Definitions, self.timeout).await
    }

    /// The last snapshot of one provider, kept after its stream ended (R2.2).
    pub async fn last_snapshot(&self, id: &ProviderId) -> Result<Option<Snapshot>> {
        let id = id.clone();
        self.ask(|r| SupervisorMsg::LastSnapshot(id, r), self.timeout)
            .await
    }

    /// Registers one more provider (R1.1–R1.5).
    pub async fn register(&self, d: ProviderDescriptor) -> Result<()> {
        self.ask(|r| SupervisorMsg::Register(d, r), self.timeout * 2)
            .await?
    }

    /// Removes a provider.
    pub async fn remove(&self, id: &ProviderId) -> Result<()> {
        let id = id.clone();
        self.ask(|r| SupervisorMsg::Remove(id, r), self.timeout)
            .await?
    }

    /// Replaces the provider set atomically (R5.4).
    pub async fn reload(&self, defs: Vec<ProviderDescriptor>) -> Result<()> {
        let n = u32::try_from(defs.len()).unwrap_or(u32::MAX).max(1);
        self.ask(|r| SupervisorMsg::Reload(defs, r), self.timeout * n * 2)
            .await?
    }

    /// Remoting reports an unreachable node incarnation (R4.2).
    pub fn quarantine(&self, node: NodeId, incarnation: u64, reason: impl Into<String>) {
        let _ = self.actor.tell(SupervisorMsg::Quarantine {
            node,
            incarnation,
            reason: reason.into(),
        });
    }

    /// Remoting reached a quarantined node again (R4.4).
    pub fn reachable(&self, node: NodeId, incarnation: u64) {
        let _ = self
            .actor
            .tell(SupervisorMsg::Reachable { node, incarnation });
    }

    /// Lifts a quarantine (operator).
    pub async fn clear_quarantine(&self, node: NodeId, incarnation: u64) -> Result<()> {
        self.ask(
            |r| SupervisorMsg::ClearQuarantine(node, incarnation, r),
            self.timeout,
        )
        .await?
    }

    /// Graceful drain (R3.5): status Draining, new snapshots refused, the
    /// local member deregistered from every provider.
    pub async fn drain(&self) -> Result<Vec<(ProviderId, std::result::Result<(), ProviderError>)>> {
        let n = u32::try_from(self.timeout.as_secs()).unwrap_or(5).max(1);
        self.ask(SupervisorMsg::Drain, self.timeout * n).await
    }
}

#[cfg(test)]
mod definition_difference_tests {
    use super::*;

    /// N1: the WARN about a stored definition names what differs, keys
    /// only (a value may be a secret).
    #[test]
    fn n1_store_differences_name_fields_not_values() {
        let id = ProviderId::new("c").expect("id");
        let stored = ProviderDescriptor::new(id.clone(), "consul", 0)
            .with_setting("token", "old-secret")
            .with_setting("wait_ms", "5000");
        let given = ProviderDescriptor::new(id, "consul", 1)
            .with_setting("token", "new-secret")
            .with_setting("ttl_s", "10");
        let d = definition_differences(&stored, &given);
        assert_eq!(
            d,
            [
                "priority",
                "settings.token",
                "settings.ttl_s",
                "settings.wait_ms"
            ]
        );
        assert!(!d.join(",").contains("secret"));
    }
}
