//! The events the ProvisioningSupervisor publishes on the actor
//! `EventStream` (A5). They are cheap to clone: large parts sit behind `Arc`.
//!
//! | event | when |
//! |---|---|
//! | [`TopologyUpdated`] | the published member set, blocked set or status changed (never for an identical hash and status, R2.3) |
//! | [`ProviderChanged`] | the active provider changed (failover or fail-back, R2.5, R3.4) |
//! | [`ProviderHealthChanged`] | a provider's health changed (R4.5) |
//! | [`ProviderStreamTerminated`] | a provider's stream ended (its actor is restarted; an error item of a stream that goes on is not a termination); carries the hash of its last snapshot (R2.2) |
//! | [`ProvisioningStatusChanged`] | Active / Empty / Degraded / Unavailable / Draining changed (R2.4, R5.3, R3.5) |
//! | [`RemoteNodeQuarantined`] | a node incarnation was quarantined at Remoting's report (R4.2); a `TopologyUpdated` follows |
//! | [`ActivationSuppressed`] | a provider failed validation past the threshold and will not be activated again (R5.2) |
//! | [`LocalMemberSuperseded`] | a provider reported [`ProviderError::Superseded`](crate::error::ProviderError::Superseded): the backend holds a newer incarnation of the local node id, which was not overwritten |
//!
//! `seq_no` is monotonic per supervisor: consumers drop anything older than
//! what they applied. It goes up by exactly one per [`TopologyUpdated`] (the
//! other events of one publication carry the same number), and a supervisor
//! restarted from its checkpoint or from a stored topology continues it; a
//! consumer that sees a topology more than one ahead missed one (a gap).

use std::sync::Arc;
use std::time::SystemTime;

use crate::node::NodeId;
use crate::provider::{ProviderHealth, ProviderId};
use crate::topology::{ProvisioningStatus, Topology, TopologyDiff, TopologyHash};

/// A new topology.
#[derive(Clone, Debug)]
pub struct TopologyUpdated {
    /// The topology (carries seq_no, hash, members, blocked, status and the
    /// active provider).
    pub topology: Arc<Topology>,
    /// The hash of the previous published topology.
    pub previous_hash: TopologyHash,
    /// What changed since the previous one.
    pub diff: Arc<TopologyDiff>,
}

/// Why the active provider changed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChangeReason {
    /// The first provider became active.
    Initial,
    /// The active provider's stream ended.
    StreamEnded,
    /// The active provider reported errors past the threshold.
    Errors,
    /// The active provider went silent past the timeout.
    Silence,
    /// The active provider's actor failed and is restarting, or stopped.
    Crashed,
    /// A higher-priority provider was healthy for the stability window.
    FailBack,
    /// The provider set was replaced (R5.4).
    Reload,
    /// The active provider was removed or disabled.
    Removed,
}

impl ChangeReason {
    /// A stable lower-case name (metrics label `reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::StreamEnded => "stream_ended",
            Self::Errors => "errors",
            Self::Silence => "silence",
            Self::Crashed => "crashed",
            Self::FailBack => "fail_back",
            Self::Reload => "reload",
            Self::Removed => "removed",
        }
    }
}

/// The active provider changed.
#[derive(Clone, Debug)]
pub struct ProviderChanged {
    /// The previous active provider.
    pub from: Option<ProviderId>,
    /// The new one (`None`: every provider is down).
    pub to: Option<ProviderId>,
    /// Why.
    pub reason: ChangeReason,
    /// The seq_no of the topology published with the change.
    pub seq_no: u64,
    /// That topology's hash.
    pub hash: TopologyHash,
}

/// A provider's health changed.
#[derive(Clone, Debug)]
pub struct ProviderHealthChanged {
    /// The provider.
    pub provider: ProviderId,
    /// The health before.
    pub previous: ProviderHealth,
    /// The health now.
    pub health: ProviderHealth,
    /// When its last snapshot arrived.
    pub last_update: Option<SystemTime>,
    /// The code of its last error, if any.
    pub last_error: Option<&'static str>,
}

/// A provider's stream ended (R2.2); its actor is restarted (or, at the
/// restart limit, stopped and probed again later). Its last snapshot stays
/// available through the supervisor's queries.
#[derive(Clone, Debug)]
pub struct ProviderStreamTerminated {
    /// The provider.
    pub provider: ProviderId,
    /// Why: `"ended"` (the stream ended; kept a string for compatibility).
    pub reason: &'static str,
    /// Hash of the last snapshot it delivered, if any.
    pub last_hash: Option<TopologyHash>,
}

/// The subsystem's status changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProvisioningStatusChanged {
    /// Before.
    pub previous: ProvisioningStatus,
    /// Now.
    pub status: ProvisioningStatus,
    /// The seq_no of the topology published with it.
    pub seq_no: u64,
}

/// A node incarnation was quarantined (R4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteNodeQuarantined {
    /// The node.
    pub node: NodeId,
    /// The quarantined incarnation.
    pub incarnation: u64,
    /// Why (Remoting's words).
    pub reason: String,
    /// The seq_no of the topology that no longer lists it.
    pub seq_no: u64,
}

/// A provider failed validation or activation too often and will not be
/// tried again until reloaded (R5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationSuppressed {
    /// The provider.
    pub provider: ProviderId,
    /// Consecutive failures counted.
    pub failures: u32,
    /// The code of the last one.
    pub last_error: &'static str,
}

/// A provider found a newer incarnation of the local node id in its
/// backend and refused to overwrite it: a newer process of this node runs
/// (or ran) and this one is superseded. Published when a provider reports
/// [`ProviderError::Superseded`](crate::error::ProviderError::Superseded)
/// (its registration failed or its stream failed with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMemberSuperseded {
    /// The provider that found it.
    pub provider: ProviderId,
    /// The local node id.
    pub node: NodeId,
    /// The local (superseded) incarnation.
    pub incarnation: u64,
    /// The newer incarnation the backend holds.
    pub newer: u64,
}
