//! What the monitoring core exchanges with its driver: the messages between
//! monitoring cores ([`MonitorMsg`]), the reports to the node's own
//! provisioning ([`MonitorReport`]) and one step's output ([`MonitorReady`])
//! (`docs/monitoring-design.md` §2.3 and §2.7).
//!
//! The messages are plain values: the Remoting driver maps them to wire
//! frames (design stage 5), the simulation (`crates/cluster-sim`) delivers
//! them as they are.

use std::collections::BTreeSet;
use std::time::Instant;

use cluster_core::NodeId;

/// A message from one monitoring core to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MonitorMsg {
    /// A direct probe (today's `Heartbeat` frame). Answered with
    /// [`MonitorMsg::Ack`] carrying the same `seq`.
    Probe {
        /// The prober's sequence number.
        seq: u64,
    },
    /// The answer to a [`MonitorMsg::Probe`] (today's `HeartbeatAck`).
    Ack {
        /// The probe's sequence number.
        seq: u64,
    },
    /// "Probe `target` for me" (requester → helper), SWIM's indirect probe.
    PingReq {
        /// The requester's round sequence number, echoed in the answer.
        seq: u64,
        /// The node to probe.
        target: NodeId,
        /// Its incarnation as the requester knows it.
        incarnation: u64,
    },
    /// The helper's answer to a [`MonitorMsg::PingReq`]: `reached` if the
    /// target acked the helper's probe, otherwise a *nack* (the helper is
    /// alive and heard nothing from the target within its probe timeout).
    PingReqAnswer {
        /// The requester's sequence number.
        seq: u64,
        /// The node that was probed.
        target: NodeId,
        /// Whether the target answered the helper.
        reached: bool,
    },
    /// A suspicion of `target` (`suspect: true`) or its retraction, sent to
    /// the target's other monitors and to the target itself.
    Vote {
        /// The suspected node.
        target: NodeId,
        /// Its incarnation.
        incarnation: u64,
        /// `true`: suspected; `false`: the suspicion is withdrawn.
        suspect: bool,
    },
    /// A quorum's verdict travelling along a broadcast tree.
    Verdict(Verdict),
}

impl MonitorMsg {
    /// A short stable name of the kind (metrics labels, simulation tables).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Probe { .. } => "probe",
            Self::Ack { .. } => "ack",
            Self::PingReq { .. } => "ping_req",
            Self::PingReqAnswer { .. } => "ping_req_answer",
            Self::Vote { .. } => "vote",
            Self::Verdict(_) => "verdict",
        }
    }
}

/// A quorum's verdict that `target` at `incarnation` is unreachable
/// (design §2.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The node found unreachable.
    pub target: NodeId,
    /// Its incarnation.
    pub incarnation: u64,
    /// The members whose votes formed the quorum, the reporter included,
    /// sorted, at most [`super::config::MAX_MONITORS`].
    pub voters: Vec<NodeId>,
    /// How many consecutive ring positions (the receiver first) the
    /// receiver is responsible for relaying to.
    pub span: u32,
    /// Which way that interval runs along the ring.
    pub backward: bool,
}

/// Where a quarantine report comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReportSource {
    /// This node's own quorum: it suspected the node and held the votes.
    Local,
    /// A verdict relayed by another member, checked against this node's view.
    Relayed,
}

impl ReportSource {
    /// `local` or `relayed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Relayed => "relayed",
        }
    }
}

/// What the core asks its node to do about a member: today's
/// `ProvisioningHandle::quarantine(node, incarnation, reason)` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorReport {
    /// The node to quarantine.
    pub node: NodeId,
    /// Its incarnation.
    pub incarnation: u64,
    /// The voters of the quorum, sorted.
    pub voters: Vec<NodeId>,
    /// This node's own quorum, or a relayed verdict.
    pub source: ReportSource,
}

impl MonitorReport {
    /// The reason given to provisioning: `monitors' verdict: a, b, c`.
    pub fn reason(&self) -> String {
        let names: Vec<&str> = self.voters.iter().map(NodeId::as_str).collect();
        format!("monitors' verdict: {}", names.join(", "))
    }
}

/// One step's output of [`super::Monitoring`]: what to send (in order),
/// what to report, the associations monitoring needs when that set changed,
/// and the next deadline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonitorReady {
    /// Messages to send, in order.
    pub send: Vec<(NodeId, MonitorMsg)>,
    /// Quarantines to report to this node's provisioning, in order.
    pub reports: Vec<MonitorReport>,
    /// The associations monitoring needs (its targets and its watchers),
    /// when the set changed since the last `ready()`.
    pub keep: Option<BTreeSet<NodeId>>,
    /// When to call [`super::Monitoring::tick`] next (`None`: nothing is
    /// due until an input arrives).
    pub wake_at: Option<Instant>,
}

impl MonitorReady {
    /// Whether there is nothing to send or report and no new set to keep.
    pub fn is_idle(&self) -> bool {
        self.send.is_empty() && self.reports.is_empty() && self.keep.is_none()
    }
}
