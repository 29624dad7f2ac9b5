//! The `ProvisioningSupervisor` system actor (A3–A5), split by role:
//!
//! - [`provisioning_core`]: [`ProvisioningCore`], every decision, as a
//!   synchronous state machine with a `Ready` output (publication rules,
//!   seq_no, event order, reload batching, suppression, draining,
//!   checkpoints); tested without tokio, with property laws.
//! - `driver`: the actor. It turns each message into one input of the core
//!   and executes the `Ready`: publishes events, starts and stops the
//!   [`ProviderActor`](crate::provider_actor::ProviderActor) children
//!   (every enabled provider watches at once: hot standby), deregisters,
//!   persists, arms one timer. It also does the async work the core must
//!   not: accepting definitions (connectivity checks) and persisting them
//!   *before* the core applies them.
//! - `handle`: [`ProvisioningHandle`], the API that Remoting, placement,
//!   the node program and operators use.
//!
//! ```text
//!  ProviderActor ──ProviderEvent──►┐          ┌──► Ready.events ──► EventStream
//!  supervision (restart, limit) ──►│ driver ─►│ProvisioningCore──► Ready.start/stop ──► children
//!  Remoting (quarantine) ─────────►│ (async:  │ (FailoverPolicy,──► Ready.persist ──► store
//!  operators, timer ──────────────►┘ accept,  │  TopologyMerger,──► Ready.wake_at ──► timer
//!                                    persist) │  SelfPresence)
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actor_runtime::{Backoff, ReplyTo};
use cluster_core::Member;
use cluster_core::{
    NodeId, ProviderDescriptor, ProviderError, ProviderHealth, ProviderId, Result, Snapshot,
    Topology, TopologyHash,
};

use crate::failover::FailoverConfig;
use crate::merge::MergeConfig;
use crate::provider_actor::ProviderEvent;

mod driver;
mod handle;
pub mod provisioning_core;

pub use driver::ProvisioningSupervisor;
pub use handle::ProvisioningHandle;

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
    /// R5.2's way back: how long a suppressed provider waits before it is
    /// probed again, half-open (one more activation failure suppresses it
    /// again, with the next, doubled delay). Default 30 s doubling to
    /// 10 min, 20 % jitter. An operator lifts a suppression at once with
    /// [`ProvisioningHandle::lift_suppression`].
    pub suppression_reprobe: Backoff,
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
            suppression_reprobe: Backoff::exponential(
                Duration::from_secs(30),
                Duration::from_secs(600),
            )
            .with_jitter(0.2),
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
    /// Error items of its stream so far (a stream that goes on after an
    /// error; stream ends are `ProviderStreamTerminated` events).
    pub stream_errors: u64,
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
    /// An operator lifts an activation suppression (R5.2).
    LiftSuppression(ProviderId, ReplyTo<Result<()>>),
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

/// Logs each definition given in code that a stored one with the same id
/// overrides (the store wins: `definitions_from_config` is false), naming
/// the fields that differ. Never silent: an operator who changed the code
/// and sees the old behaviour finds the reason in the log.
fn log_overridden_by_store(stored: &[ProviderDescriptor], given: &[ProviderDescriptor]) {
    for g in given {
        if let Some(s) = stored.iter().find(|s| s.id == g.id)
            && s != g
        {
            tracing::warn!(
                provider = %g.id,
                differs = %definition_differences(s, g).join(", "),
                "the stored definition overrides the one given in code (the store wins unless definitions_from_config is set)"
            );
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
