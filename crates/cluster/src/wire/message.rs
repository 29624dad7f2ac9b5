//! The messages: [`Frame`] and [`Hello`].

use std::collections::BTreeMap;

use cluster_core::{Member, NodeId};
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks. Both sides of a handshake must
/// speak the same one.
pub const PROTOCOL_VERSION: u16 = 1;

/// Length of a handshake nonce in bytes.
pub const NONCE_LEN: usize = 32;

/// A handshake nonce: [`NONCE_LEN`] random bytes.
pub type Nonce = [u8; NONCE_LEN];

/// Who a node is, sent by both sides at the start of a connection.
///
/// Its encoding must stay readable by every protocol version (only then can
/// a version mismatch be reported as such): future versions may change any
/// other frame, but not this one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the sender speaks ([`PROTOCOL_VERSION`]).
    pub protocol_version: u16,
    /// The cluster the sender belongs to.
    pub cluster: String,
    /// The sender's node id.
    pub node_id: NodeId,
    /// The sender's process incarnation.
    pub incarnation: u64,
    /// Where the sender accepts remoting connections (`host:port`).
    pub address: String,
}

impl Hello {
    /// A Hello speaking this build's [`PROTOCOL_VERSION`].
    pub fn new(
        cluster: impl Into<String>,
        node_id: NodeId,
        incarnation: u64,
        address: impl Into<String>,
    ) -> Self {
        Self {
            protocol_version: PROTOCOL_VERSION,
            cluster: cluster.into(),
            node_id,
            incarnation,
            address: address.into(),
        }
    }

    /// The Hello of `member` in `cluster` (its address as `host:port`, an
    /// IPv6 host in brackets).
    pub fn for_member(cluster: impl Into<String>, member: &Member) -> Self {
        Self::new(
            cluster,
            member.node_id.clone(),
            member.incarnation,
            member.address.to_string(),
        )
    }
}

/// One frame on the wire. The handshake uses the first five variants (see
/// the [module documentation](super#handshake) for their order), an
/// established association the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The sender's identity (both sides, first thing in the handshake).
    Hello(Hello),
    /// The acceptor's challenge: prove the shared secret over this nonce.
    Challenge {
        /// Fresh random bytes chosen by the acceptor.
        #[serde(with = "nonce_bytes")]
        nonce: Nonce,
    },
    /// The connector's answer to a [`Frame::Challenge`], and its own
    /// challenge to the acceptor.
    Proof {
        /// HMAC-SHA256 over the handshake transcript, role `connector`.
        #[serde(with = "serde_bytes")]
        mac: Vec<u8>,
        /// Fresh random bytes chosen by the connector, which the acceptor's
        /// [`Frame::Welcome`] proof covers.
        #[serde(with = "nonce_bytes")]
        nonce: Nonce,
    },
    /// The acceptor accepts: the handshake is over.
    Welcome {
        /// The acceptor's proof (HMAC-SHA256, role `acceptor`); empty when
        /// the acceptor has no shared secret.
        #[serde(with = "serde_bytes")]
        mac: Vec<u8>,
    },
    /// The sender refuses the handshake and closes the connection.
    Reject {
        /// A stable error code: a `wire.*` code, or the check's
        /// [`Refusal`](super::Refusal) code.
        code: String,
        /// Human-readable reason.
        reason: String,
    },
    /// A liveness probe; the peer answers with [`Frame::HeartbeatAck`]
    /// carrying the same `seq`.
    Heartbeat {
        /// The sender's sequence number.
        seq: u64,
    },
    /// The answer to [`Frame::Heartbeat`].
    HeartbeatAck {
        /// The `seq` of the heartbeat answered.
        seq: u64,
    },
    /// A message for a named actor on the receiving node.
    Tell {
        /// The name of the target actor on the receiving node.
        to: String,
        /// The registered name of the message type, which selects the
        /// decoder for `payload`.
        type_id: String,
        /// The encoded message.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// The sender closes the association gracefully.
    Goodbye,
    /// Sent by a connector *instead of* [`Frame::Hello`] to open a probe:
    /// the same identity and the same handshake (version, cluster, node id,
    /// and the shared-secret exchange), but the acceptor skips its
    /// membership check (a node that is still discovering its contact
    /// points is not a member yet) and, after its `Welcome`, answers one
    /// [`Frame::ProbeInfo`] and closes. See the
    /// [module documentation](super#probes).
    Probe(Hello),
    /// The acceptor's answer to a [`Frame::Probe`], after its `Welcome`.
    ProbeInfo(ProbeInfo),
    /// Ring monitoring (issue 17, `docs/monitoring-design.md` §2.7):
    /// "probe `target` for me", from a monitor to one of the target's other
    /// monitors. Sent only by nodes in ring mode; a build without it closes
    /// the connection on it (a protocol error), so ring mode is turned on
    /// for the whole cluster at once.
    PingReq {
        /// The requester's round number, echoed in the answer.
        seq: u64,
        /// The node to probe.
        target: NodeId,
        /// Its incarnation as the requester knows it.
        incarnation: u64,
    },
    /// The answer to a [`Frame::PingReq`]: whether the target answered the
    /// helper's own probe (`false`: a nack).
    PingReqAnswer {
        /// The requester's round number.
        seq: u64,
        /// The node probed.
        target: NodeId,
        /// Whether it answered.
        reached: bool,
    },
    /// A suspicion of `target` (`suspect: true`) or its retraction, to the
    /// target's other monitors and to the target.
    Vote {
        /// The suspected node.
        target: NodeId,
        /// Its incarnation.
        incarnation: u64,
        /// Suspected or withdrawn.
        suspect: bool,
    },
    /// A quorum's verdict that `target` is unreachable, relayed along a
    /// broadcast tree over the ring.
    Verdict {
        /// The node found unreachable.
        target: NodeId,
        /// Its incarnation.
        incarnation: u64,
        /// The members whose votes formed the quorum (at most 16 are
        /// considered; a longer list is ignored).
        voters: Vec<NodeId>,
        /// Ring positions the receiver relays to, itself first.
        span: u32,
        /// Which way that interval runs.
        backward: bool,
    },
}

/// What a probed node says about itself (the payload of
/// [`Frame::ProbeInfo`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeInfo {
    /// Whether the acceptor has joined a cluster: its own node is listed,
    /// at its incarnation, in the topology it follows.
    pub joined: bool,
    /// How many members that topology lists.
    pub members: u32,
    /// The acceptor's roles as its topology lists them (empty when not
    /// joined).
    pub roles: Vec<String>,
    /// The acceptor's labels as its topology lists them (empty when not
    /// joined).
    pub labels: BTreeMap<String, String>,
}

impl Frame {
    /// The variant's name, for logs and metrics (`"Hello"`, `"Tell"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello(_) => "Hello",
            Self::Challenge { .. } => "Challenge",
            Self::Proof { .. } => "Proof",
            Self::Welcome { .. } => "Welcome",
            Self::Reject { .. } => "Reject",
            Self::Heartbeat { .. } => "Heartbeat",
            Self::HeartbeatAck { .. } => "HeartbeatAck",
            Self::Tell { .. } => "Tell",
            Self::Goodbye => "Goodbye",
            Self::Probe(_) => "Probe",
            Self::ProbeInfo { .. } => "ProbeInfo",
            Self::PingReq { .. } => "PingReq",
            Self::PingReqAnswer { .. } => "PingReqAnswer",
            Self::Vote { .. } => "Vote",
            Self::Verdict { .. } => "Verdict",
        }
    }
}

/// A [`Nonce`] as MessagePack `bin` of exactly [`NONCE_LEN`] bytes.
mod nonce_bytes {
    use std::fmt;

    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    use super::{NONCE_LEN, Nonce};

    pub(super) fn serialize<S: Serializer>(v: &Nonce, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Nonce, D::Error> {
        d.deserialize_bytes(NonceVisitor)
    }

    struct NonceVisitor;

    impl Visitor<'_> for NonceVisitor {
        type Value = Nonce;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a byte string of {NONCE_LEN} bytes")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Nonce, E> {
            Nonce::try_from(v).map_err(|_| E::invalid_length(v.len(), &self))
        }
    }
}
