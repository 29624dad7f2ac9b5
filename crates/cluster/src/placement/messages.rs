//! The messages: the wire calls between placements of different nodes, and
//! the PlacementSupervisor's mailbox.

use super::*;

/// A remote grain request.
#[derive(Serialize, Deserialize)]
pub(super) struct GrainCall {
    pub(super) req_id: u64,
    pub(super) from: NodeId,
    pub(super) kind: String,
    pub(super) id: String,
    #[serde(with = "serde_bytes")]
    pub(super) payload: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct WireFailure {
    pub(super) code: String,
    pub(super) message: String,
}

/// A new owner asks a previous owner to release a grain.
#[derive(Serialize, Deserialize)]
pub(super) struct ReleaseCall {
    pub(super) req_id: u64,
    pub(super) from: NodeId,
    pub(super) kind: String,
    pub(super) id: String,
}

/// A remote grain answer.
#[derive(Serialize, Deserialize)]
pub(super) struct GrainReply {
    pub(super) req_id: u64,
    pub(super) result: Result<serde_bytes::ByteBuf, WireFailure>,
}

/// Where a request goes.
pub(super) enum Target {
    Local(ActorRef<GrainMsg>),
    Remote(NodeId),
}

/// A message of the [`PlacementSupervisor`] (opaque: use
/// [`PlacementHandle`]; it is public so that the EventStream can deliver
/// `TopologyUpdated` and `ProviderChanged` to it).
pub struct PlacementMsg(pub(super) Msg);

pub(super) enum Msg {
    Topology(TopologyUpdated),
    Quarantined(RemoteNodeQuarantined),
    ProviderChanged(ProviderChanged),
    /// Where `(kind, id)` lives (activating it here if it is ours).
    Locate {
        kind: String,
        id: String,
        reply: ReplyTo<Result<Target, PlacementError>>,
    },
    /// A request from another member.
    Call(Box<GrainCall>),
    /// The activations on this node, sorted.
    Activations(ReplyTo<Vec<(String, String)>>),
    /// Stops every activation (graceful leave); answers how many stopped.
    HandOffAll(ReplyTo<usize>),
    /// The follower's one catch-up (sent right after the subscriptions,
    /// so nothing published before them is missed).
    CatchUp,
    /// A new owner asks for a grain (see `RELEASE_TYPE`).
    Release(Box<ReleaseCall>),
    /// An activation was idle for its kind's idle timeout.
    Idle {
        key: Key,
        actor: ActorId,
    },
    /// An activation failed to activate and stopped.
    Ended {
        key: Key,
        actor: ActorId,
    },
    /// A deactivating activation has stopped.
    Deactivated {
        key: Key,
        actor: ActorId,
    },
}

pub(super) type Key = (String, String);

/// A running activation and the reason it will be given when it ends.
pub(super) struct Activation {
    pub(super) actor: ActorRef<GrainMsg>,
    pub(super) reason: Arc<AtomicU8>,
}

impl fmt::Debug for PlacementMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match &self.0 {
            Msg::Topology(_) => "Topology",
            Msg::Quarantined(_) => "Quarantined",
            Msg::ProviderChanged(_) => "ProviderChanged",
            Msg::Locate { .. } => "Locate",
            Msg::Call(_) => "Call",
            Msg::Activations(_) => "Activations",
            Msg::HandOffAll(_) => "HandOffAll",
            Msg::CatchUp => "CatchUp",
            Msg::Release(_) => "Release",
            Msg::Idle { .. } => "Idle",
            Msg::Ended { .. } => "Ended",
            Msg::Deactivated { .. } => "Deactivated",
        };
        f.write_str(name)
    }
}

impl From<TopologyUpdated> for PlacementMsg {
    fn from(t: TopologyUpdated) -> Self {
        Self(Msg::Topology(t))
    }
}

impl From<RemoteNodeQuarantined> for PlacementMsg {
    fn from(q: RemoteNodeQuarantined) -> Self {
        Self(Msg::Quarantined(q))
    }
}

impl From<ProviderChanged> for PlacementMsg {
    fn from(c: ProviderChanged) -> Self {
        Self(Msg::ProviderChanged(c))
    }
}
