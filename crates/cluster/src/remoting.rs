//! Remoting: the TCP associations between cluster nodes (R4.1–R4.5), as
//! designed in `docs/cluster.md`.
//!
//! [`Remoting::spawn`] starts the system actor `/system/remoting`. It
//! serves one TCP listener, follows what the ProvisioningSupervisor
//! publishes (`TopologyUpdated`, `RemoteNodeQuarantined`) through a
//! [`TopologyFollower`](crate::follower) (one successful pull at start,
//! after subscribing and before the accept loop starts, retried while it
//! fails; never again; the status is read from the topology only) and keeps one *association*
//! per remote member. Frames and the handshake are those of [`crate::wire`].
//!
//! # The listener and the local address
//!
//! The local [`Member`] (registered with the providers by the
//! ProvisioningSupervisor, which is started first) must advertise the
//! address Remoting listens on. With a fixed port, set
//! [`RemotingConfig::bind`] and call [`Remoting::spawn`], which binds it.
//! With port 0 (tests), bind a [`TcpListener`] first, build the member from
//! its [`local_addr`](TcpListener::local_addr), start provisioning, then
//! hand the listener to [`Remoting::spawn_with_listener`].
//!
//! # Associations
//!
//! The transitions below are decided by a network-free core,
//! `remoting/association.rs` (its module doc has the full table, with
//! table-driven tests for R4.1–R4.4); the actor only executes them.
//!
//! One entry per remote member, keyed by node id and bound to the member's
//! incarnation. There is one TCP stream per pair of nodes: the node with
//! the **smaller node id dials**, the other waits for the connection.
//!
//! ```text
//!             dial / accept
//!  Idle ─────────────────────► Handshaking ──Welcome──► Up ──silent past failure_timeout──► Failed
//!   ▲   (acceptor: waits)                │               │   (quarantine reported)          │
//!   │                                    │ Reject /      │ Goodbye, connection lost,        │ blocked: probed
//!   │                                    │ timeout       │ bad frame                        │ (dialer) or refused
//!   │                                    ▼               ▼                                  ▼ (acceptor)
//!   └───── backoff (dialer) ────────── Closed ◄────────── (closing is immediate)     unblocked: Idle
//! ```
//!
//! - **Topology (R4.1).** On each newer topology: every member that is not
//!   ourselves and not blocked gets an association (a new incarnation
//!   replaces the old one); an association whose member left is closed with
//!   a `Goodbye` and removed; one whose incarnation got blocked turns
//!   `Failed` and its connection is dropped. An `Empty` or `Starting`
//!   topology closes nothing (its member list says nothing about who left).
//! - **Quarantine (A6).** A `RemoteNodeQuarantined` acts at once, before
//!   the topology that follows it: the association with that incarnation
//!   turns `Failed` and its connection is dropped, and the accept check
//!   refuses it (`remoting.quarantined`).
//! - **Degraded (R4.3).** New associations are opened only while the status
//!   is `Active`: otherwise the member list may be stale, so nothing new is
//!   opened (outbound or inbound, `remoting.degraded`) and each refusal is
//!   counted in `remoting_degraded_refusals_total`. Existing associations
//!   stay, and a dialer keeps re-dialing its existing associations. The
//!   warning is published as [`StaleTopologyWarning`] (and the gauge
//!   `remoting_new_associations_frozen`) when this starts and ends.
//! - **Accept check (R4.2).** The handshake's check refuses a peer whose
//!   `(node, incarnation)` is blocked or whose association failed
//!   (`remoting.quarantined`, reporting it
//!   [`reachable`](ProvisioningHandle::reachable), R4.4), a peer that is not a
//!   member at that incarnation (`remoting.not_member`), and a member we
//!   have no association for because the status is not `Active`
//!   (`remoting.degraded`). The last inbound connection of an association
//!   wins (a dialer that reconnects replaces a half-open stream).
//! - **Heartbeats (R4.2).** Every `heartbeat_interval` both sides send a
//!   `Heartbeat` on each `Up` association and answer the other's with a
//!   `HeartbeatAck`. Any frame counts as a sign of life; the peer's own
//!   heartbeats also teach its rhythm to the failure detector
//!   ([`crate::failure_detector`]: a timeout of `failure_timeout` by
//!   default, phi accrual with [`RemotingConfig::with_phi_accrual`]). A peer
//!   that was `Up` once and that the detector suspects (across reconnects:
//!   a lost connection keeps the clock running) is reported with
//!   [`quarantine`](ProvisioningHandle::quarantine)`(node, incarnation,
//!   "heartbeat timeout")` and its association turns `Failed`. A peer that
//!   said `Goodbye` is not watched until it comes back.
//! - **Reaching a quarantined node (R4.4).** It connects to us: the check
//!   reports it reachable and refuses it. We are its dialer: from one
//!   `failure_timeout` after the quarantine on, we probe it with a
//!   handshake (with backoff); a handshake that reaches that incarnation,
//!   or a `remoting.quarantined` refusal from it, is reported reachable and
//!   the probe closes with a `Goodbye`. The supervisor lifts the block after
//!   its next healthy refresh that still lists the node; the association
//!   then starts over from `Idle`.
//! - **Dialing.** A dial (connect and handshake) is bounded by the
//!   handshake timeout; after a failure the dialer retries after
//!   `heartbeat_interval · 2^attempts`, capped at `failure_timeout`.
//! - **Bad input.** Garbage, an empty or oversized frame, a stalled
//!   handshake (after `handshake.timeout`) or a handshake frame after the
//!   handshake closes that connection with a logged reason; the listener
//!   keeps serving. Memory per connection is bounded by the frame limit.
//! - **Remote tell.** [`RemotingHandle::tell`] sends a `Tell` frame on the
//!   association with that node. On the receiving side,
//!   [`RemotingHandle::register`] maps a `(to, type_id)` pair to a typed
//!   [`ActorRef`]; the payload is decoded with `rmp-serde`. Delivery is at
//!   most once: a frame for an unknown pair or with an undecodable payload
//!   is dropped and counted.
//!
//! # Ring monitoring (issue 17)
//!
//! With [`RemotingConfig::with_monitoring`] and
//! [`MonitoringMode::Ring`](crate::monitoring::MonitoringMode::Ring), the
//! heartbeats above and the per-peer detectors' verdicts are replaced by
//! the ring monitoring core ([`crate::monitoring`],
//! `docs/monitoring-design.md`): each node probes only its k ring
//! predecessors (a probe is a `Heartbeat`, its ack a `HeartbeatAck`), asks
//! r of a silent target's other monitors for indirect probes (`PingReq`,
//! `PingReqAnswer`), sends its suspicion to the co-monitors (`Vote`), and a
//! node is reported for quarantine only on a quorum of q votes: by the
//! monitor that completes it, and by every other node when the quorum's
//! `Verdict` reaches it along the broadcast trees. The report is the same
//! [`quarantine`](ProvisioningHandle::quarantine) call, with the reason
//! `monitors' verdict: a, b, c`. The ring follows the topology while the
//! status is `Active` (R4.3: it keeps its last assignment otherwise, minus
//! the members that left). A target is suspected only once it was heard
//! (a frame, or a refused dial: a refusal is an answer), so a joining node
//! whose view lags is not quarantined.
//!
//! **Associations on demand.** In ring mode a node associates with its
//! ring set (targets and watchers, ≤ 2k; the smaller id dials). A frame for
//! any other member ([`RemotingHandle::tell`], a verdict relay) waits in a
//! bounded queue (`send_queue` frames) while this node dials it, whatever
//! the ids; the accept check admits a member without an association while
//! `Active`; when both sides dialed at once, the connection dialed by the
//! smaller id stays. An association outside the ring set with no frame
//! sent or received for `idle_timeout` closes with a `Goodbye`; a `Failed`
//! one stays (it probes the quarantined node, R4.4). A dial that fails
//! drops the frames that waited (`remoting_frames_dropped_total{reason =
//! "not_associated"}`). `remoting_heartbeats_sent_total` and
//! `_missed_total` stay at 0 in ring mode (the probes are the core's), and
//! the per-peer gauges cover the associations that exist. The new frames are unknown to
//! builds before this one (such a peer closes the connection on the first
//! one): switch the whole cluster to ring mode at once; a node of this
//! build in all-to-all mode answers a ring node's probes and ignores the
//! other ring frames.
//!
//! # Security
//!
//! With [`RemotingConfig::with_tls`] every connection (associations and
//! probes) runs over mutual TLS, and the certificate must name the peer's
//! node id in this cluster: see [`tls`]. A shared secret
//! ([`RemotingConfig::with_secret`]) authenticates the handshake only; the
//! frames after it travel in plain text. The bootstrap refuses to listen off
//! loopback with neither (`cluster.insecure`).
//!
//! # Metrics
//!
//! Every metric also carries `node`, the local node id (N2), and
//! [`crate::metrics::describe`] registers their descriptions and units.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `remoting_peer_up` | gauge | `peer` (a remote node id) | 1 while the association is `Up` and the failure detector trusts the peer (ring mode: while it is `Up`), else 0; set to 0 when the association is removed (the member left or restarted) |
//! | `remoting_peer_last_heard_timestamp_seconds` | gauge | `peer` | Unix time of the peer's last sign of life (any frame, or a dial answer), refreshed every heartbeat interval; 0 once the association is removed |
//! | `remoting_associations` | gauge | `state` (`idle`, `handshaking`, `up`, `closed`, `failed`) | associations in each state |
//! | `remoting_heartbeats_sent_total` | counter | | heartbeats sent |
//! | `remoting_heartbeats_missed_total` | counter | | heartbeats not acknowledged before the next one was due |
//! | `remoting_quarantines_reported_total` | counter | | peers reported unreachable to provisioning (R4.2; ring mode: on a quorum's verdict) |
//! | `remoting_reachable_reported_total` | counter | | quarantined peers reported reachable again (R4.4) |
//! | `remoting_new_associations_frozen` | gauge | | 1 while no new association is opened because the status is not `Active` (R4.3; see [`StaleTopologyWarning`]) |
//! | `remoting_degraded_refusals_total` | counter | | associations not opened (or inbound ones refused) because the status is not `Active` (R4.3) |
//! | `remoting_frames_refused_total` | counter | `code` | connections closed by us for a bad or refused frame: the handshake's `wire.*` codes, `remoting.not_member`, `remoting.quarantined`, `remoting.degraded`, `remoting.protocol` (a handshake frame after the handshake), the `remoting.tls.*` codes |
//! | `remoting_tls_certificate_expiry_timestamp_seconds` | gauge | | with [`tls`]: Unix time at which this node's certificate expires |
//! | `remoting_tls_reloads_total` | counter | `result` (`ok`, `error`) | with [`tls`]: the files read again after a change or [`RemotingHandle::reload_tls`] |
//! | `remoting_frames_dropped_total` | counter | `reason` (`unknown_type`, `undecodable`, `undeliverable`: the actor is stopped or its mailbox full; or a reason given by a [`register_fn`](RemotingHandle::register_fn) handler, e.g. placement's `late_reply`; `not_associated`: ring mode, an outgoing frame whose association on demand did not come up) | received `Tell` frames not delivered, and in ring mode outgoing frames that waited in vain |
//! | `remoting_associations_opened_total` | counter | `reason` (`ring`, `demand`, `accept`) | ring mode: associations created for the ring's set, for this node's own frames, or as a peer's connection was accepted |
//! | `remoting_associations_idle_closed_total` | counter | | ring mode: associations outside the ring's set closed after `idle_timeout` without a frame |
//! | `remoting_monitor_rounds_total` | counter | `result` (`ack`, `indirect_ack`, `failed`) | ring mode: probe rounds of this node's targets, answered directly, saved by a helper, or failed both ways |
//! | `remoting_monitor_missed_nacks_total` | counter | | ring mode: failed rounds in which no helper answered at all (this node's own links are the likely problem; raises its health score) |
//! | `remoting_monitor_votes_sent_total` | counter | `suspect` (`true`, `false`) | ring mode: suspicions sent to co-monitors (and the target), and their retractions |
//! | `remoting_monitor_reports_total` | counter | `source` (`local`, `relayed`) | ring mode: quarantines reported on this node's own quorum, or on a verdict relayed to it |
//! | `remoting_monitor_stalls_total` | counter | | ring mode: stalls of this process detected by the core (FS-1) |
//! | `remoting_local_health` | gauge | | ring mode: the local health score, 0 (healthy) to `health_max`; from `vote_limit` on the node votes nothing |

mod actor;
mod association;
mod conn;
mod probe;
pub mod tls;

pub use self::probe::{ProbeAnswer, ProbeConfig, ProbeTls, probe, probe_over};

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use actor_runtime::{ActorRef, ActorSystem, SpawnError};
use cluster_core::{Member, NodeId, ProvisioningStatus, Topology};
use provisioning_actors::ProvisioningHandle;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::failure_detector::{DetectorConfig, PhiAccrualConfig};
use crate::follower::{SharedFollower, TopologySource};
use crate::monitoring::{MonitoringConfig, MonitoringConfigError, MonitoringMode};
use crate::netsim::NetSim;
use crate::wire::{Frame, HandshakeConfig, Hello, Refusal, WireError};

use self::tls::Tls;
pub use self::tls::{TlsConfig, TlsConfigError};

use self::actor::{Msg, RemotingActor};

/// Refusal code: the peer is not a member of the current topology (at the
/// incarnation it claims).
pub const NOT_MEMBER: &str = "remoting.not_member";
/// Refusal code: the peer's incarnation is quarantined (blocked).
pub const QUARANTINED: &str = "remoting.quarantined";
/// Refusal code: the status is not `Active`, so no new association is
/// accepted (R4.3).
pub const DEGRADED: &str = "remoting.degraded";
/// Close code: a handshake frame arrived after the handshake.
pub const PROTOCOL: &str = "remoting.protocol";
/// Close code: too many inbound connections are shaking hands at once
/// ([`RemotingConfig::max_pending_handshakes`]).
pub const BUSY: &str = "remoting.busy";

pub(crate) const M_ASSOCIATIONS: &str = "remoting_associations";
pub(crate) const M_HEARTBEATS_SENT: &str = "remoting_heartbeats_sent_total";
pub(crate) const M_HEARTBEATS_MISSED: &str = "remoting_heartbeats_missed_total";
pub(crate) const M_QUARANTINES: &str = "remoting_quarantines_reported_total";
pub(crate) const M_REACHABLE: &str = "remoting_reachable_reported_total";
pub(crate) const M_DEGRADED_REFUSALS: &str = "remoting_degraded_refusals_total";
pub(crate) const M_FRAMES_REFUSED: &str = "remoting_frames_refused_total";
pub(crate) const M_FRAMES_DROPPED: &str = "remoting_frames_dropped_total";
pub(crate) const M_FROZEN: &str = "remoting_new_associations_frozen";
pub(crate) const M_PEER_UP: &str = "remoting_peer_up";
pub(crate) const M_PEER_LAST_HEARD: &str = "remoting_peer_last_heard_timestamp_seconds";
pub(crate) const M_OPENED: &str = "remoting_associations_opened_total";
pub(crate) const M_MON_ROUNDS: &str = "remoting_monitor_rounds_total";
pub(crate) const M_MON_MISSED_NACKS: &str = "remoting_monitor_missed_nacks_total";
pub(crate) const M_MON_VOTES: &str = "remoting_monitor_votes_sent_total";
pub(crate) const M_MON_REPORTS: &str = "remoting_monitor_reports_total";
pub(crate) const M_MON_STALLS: &str = "remoting_monitor_stalls_total";
pub(crate) const M_LOCAL_HEALTH: &str = "remoting_local_health";
pub(crate) const M_IDLE_CLOSED: &str = "remoting_associations_idle_closed_total";

/// Published on the EventStream when Remoting stops opening new
/// associations because the provisioning status is no longer `Active` (the
/// member list may be stale), and again when it resumes (R4.3). `Starting`
/// (nothing known yet) is not a warning, and a first status of `Active` is
/// not a resumption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleTopologyWarning {
    /// `true`: no new association is opened; `false`: resumed.
    pub frozen: bool,
    /// The provisioning status that caused it.
    pub status: ProvisioningStatus,
    /// The seq_no of the last topology Remoting applied.
    pub seq_no: u64,
}

/// How Remoting behaves. [`RemotingConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct RemotingConfig {
    /// Where [`Remoting::spawn`] listens (default `0.0.0.0:4000`).
    pub bind: SocketAddr,
    /// Cluster name, shared secret, handshake timeout and frame limit.
    pub handshake: HandshakeConfig,
    /// Interval between heartbeats on an association (default 1 s).
    pub heartbeat_interval: Duration,
    /// A peer not heard from for this long is reported unreachable, with
    /// the timeout detector (default 5 s). Also caps the re-dial backoff and
    /// bounds a stalled write.
    pub failure_timeout: Duration,
    /// Use the phi-accrual detector with these parameters instead of the
    /// timeout (default none; see [`crate::failure_detector`]).
    pub phi_accrual: Option<PhiAccrualConfig>,
    /// Frames queued per association before [`RemotingHandle::tell`]
    /// answers [`RemotingError::Backpressure`] (default 1024).
    pub send_queue: usize,
    /// Inbound connections shaking hands at once (TLS and the handshake,
    /// each bounded by the handshake timeout); one more is closed at once
    /// and counted (`remoting_frames_refused_total{code="remoting.busy"}`).
    /// Bounds the memory a flood of stalled connections can take
    /// (default 256).
    pub max_pending_handshakes: usize,
    /// A simulated network to pass every inbound frame through (tests;
    /// default none).
    pub netsim: Option<NetSim>,
    /// Mutual TLS on every association (default none: plain TCP; see
    /// [`tls`]).
    pub tls: Option<TlsConfig>,
    /// Failure detection: all-to-all heartbeats (the default) or the ring
    /// of k monitors with votes and a quorum (issue 17; see
    /// [`crate::monitoring`] and the module doc's "Ring monitoring").
    pub monitoring: MonitoringConfig,
}

impl RemotingConfig {
    /// The defaults for `cluster`: no secret, listen on `0.0.0.0:4000`,
    /// heartbeat 1 s, failure timeout 5 s, the wire defaults for the
    /// handshake timeout (5 s) and the frame limit (1 MiB).
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 4000)),
            handshake: HandshakeConfig::new(cluster),
            heartbeat_interval: Duration::from_secs(1),
            failure_timeout: Duration::from_secs(5),
            send_queue: 1024,
            max_pending_handshakes: 256,
            phi_accrual: None,
            netsim: None,
            tls: None,
            monitoring: MonitoringConfig::default(),
        }
    }

    /// Sets the failure detection ([`RemotingConfig::monitoring`]); checked
    /// by [`Remoting::spawn`] (`remoting.monitoring_config`).
    pub fn with_monitoring(mut self, monitoring: MonitoringConfig) -> Self {
        self.monitoring = monitoring;
        self
    }

    /// Sets the listen address of [`Remoting::spawn`].
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Sets the shared secret of the handshake.
    pub fn with_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.handshake = self.handshake.with_secret(secret);
        self
    }

    /// Sets the heartbeat interval (at least 1 ms).
    pub fn with_heartbeat_interval(mut self, every: Duration) -> Self {
        self.heartbeat_interval = every;
        self
    }

    /// Detects failures with phi accrual (see [`crate::failure_detector`])
    /// instead of the plain timeout.
    pub fn with_phi_accrual(mut self, config: PhiAccrualConfig) -> Self {
        self.phi_accrual = Some(config);
        self
    }

    /// The detector each association uses.
    pub fn detector(&self) -> DetectorConfig {
        match self.phi_accrual {
            Some(c) => DetectorConfig::PhiAccrual(c),
            None => DetectorConfig::Timeout(self.failure_timeout),
        }
    }

    /// Sets the failure timeout.
    pub fn with_failure_timeout(mut self, timeout: Duration) -> Self {
        self.failure_timeout = timeout;
        self
    }

    /// Sets the handshake timeout (it also bounds a dial).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake = self.handshake.with_timeout(timeout);
        self
    }

    /// Passes every inbound frame through `net` (see [`crate::netsim`]).
    pub fn with_netsim(mut self, net: NetSim) -> Self {
        self.netsim = Some(net);
        self
    }

    /// Runs every association over mutual TLS with these files (see
    /// [`tls`]).
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets how many inbound connections may shake hands at once.
    pub fn with_max_pending_handshakes(mut self, max: usize) -> Self {
        self.max_pending_handshakes = max;
        self
    }

    /// Sets the frame limit.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.handshake = self.handshake.with_max_frame(max_frame);
        self
    }
}

impl Default for RemotingConfig {
    /// [`RemotingConfig::new`] for the cluster `"default"`.
    fn default() -> Self {
        Self::new("default")
    }
}

/// Where an association stands (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssociationState {
    /// No connection yet: the dialer is about to dial, the acceptor waits.
    Idle,
    /// The dialer is connecting or shaking hands.
    Handshaking,
    /// The connection is established; heartbeats flow.
    Up,
    /// The connection was lost or refused; the dialer retries after a
    /// backoff, the acceptor waits.
    Closed,
    /// The peer was reported unreachable (quarantined); no connection is
    /// used until the topology unblocks it.
    Failed,
}

impl AssociationState {
    /// Every state, in the order of the lifecycle.
    pub const ALL: [Self; 5] = [
        Self::Idle,
        Self::Handshaking,
        Self::Up,
        Self::Closed,
        Self::Failed,
    ];

    /// A stable lower-case name (metrics label `state`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Handshaking => "handshaking",
            Self::Up => "up",
            Self::Closed => "closed",
            Self::Failed => "failed",
        }
    }
}

/// Why a Remoting call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemotingError {
    /// The listener could not be bound (`remoting.bind`).
    #[error("could not bind the remoting listener")]
    Bind(#[source] io::Error),
    /// The actor could not be spawned (`remoting.spawn`).
    #[error("could not spawn the remoting actor")]
    Spawn(#[from] SpawnError),
    /// No association with this node is up (`remoting.not_associated`).
    #[error("no association with node {0} is up")]
    NotAssociated(NodeId),
    /// The association's send queue is full (`remoting.backpressure`).
    #[error("the send queue to node {0} is full")]
    Backpressure(NodeId),
    /// The frame could not be encoded, e.g. it is over the frame limit
    /// (the wire error's code).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The TLS certificate, key or CA file cannot be used
    /// (`remoting.tls.config`).
    #[error("remoting TLS: {0}")]
    Tls(#[from] TlsConfigError),
    /// A monitoring parameter is out of range (`remoting.monitoring_config`).
    #[error(transparent)]
    Monitoring(#[from] MonitoringConfigError),
}

impl RemotingError {
    /// A stable code for logs and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Bind(_) => "remoting.bind",
            Self::Spawn(_) => "remoting.spawn",
            Self::NotAssociated(_) => "remoting.not_associated",
            Self::Backpressure(_) => "remoting.backpressure",
            Self::Wire(e) => e.code(),
            Self::Tls(e) => e.code(),
            Self::Monitoring(e) => e.code(),
        }
    }
}

/// Decodes a payload and delivers it; `Err` says why it was dropped.
type Handler = Arc<dyn Fn(&NodeId, &[u8]) -> Result<(), &'static str> + Send + Sync>;

/// What the accept check needs, kept current by the actor.
struct View {
    topology: Arc<Topology>,
    /// Incarnations quarantined ahead of `topology` (A6: refused at once).
    quarantined: Vec<(NodeId, u64)>,
    status: ProvisioningStatus,
    /// The associations: incarnation, and whether it failed.
    peers: HashMap<NodeId, (u64, bool)>,
}

/// State shared between the actor, its connection tasks and the handles.
struct Shared {
    config: RemotingConfig,
    local: Hello,
    /// The `node` label of the metrics: the local node id.
    node: Arc<str>,
    provisioning: ProvisioningHandle,
    /// Where the follower's catch-up pulls from (`provisioning`).
    source: TopologySource,
    /// What provisioning published, by seq_no (kept across restarts of the
    /// actor: one pull in the life of Remoting).
    follower: SharedFollower,
    /// Send queues of the `Up` associations (encoded frames).
    writers: Mutex<HashMap<NodeId, mpsc::Sender<Vec<u8>>>>,
    /// Ring mode: frames told to a member without an association, waiting
    /// for the one the actor opens on demand (at most `send_queue` per
    /// member; lock order: `pending`, then `writers`).
    pending: Mutex<HashMap<NodeId, Vec<Vec<u8>>>>,
    registry: RwLock<HashMap<(String, String), Handler>>,
    view: Mutex<View>,
    associations: Mutex<Vec<(NodeId, u64, AssociationState)>>,
    /// Set by [`RemotingHandle::crash`]: stop without `Goodbye`.
    crashed: AtomicBool,
    /// The TLS material, when associations run over TLS.
    tls: Option<Tls>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The accept side's check on a connector's Hello (R4.2, R4.3, R4.4):
    /// the association core's [`association::admit`] over the current view.
    fn check(&self, peer: &Hello) -> Result<(), Refusal> {
        let view = lock(&self.view);
        let node = &peer.node_id;
        let known = association::Known {
            association: view.peers.get(node).copied(),
            quarantined: view.topology.is_blocked(node, peer.incarnation)
                || view
                    .quarantined
                    .iter()
                    .any(|(n, i)| n == node && *i == peer.incarnation),
            member: view
                .topology
                .member(node)
                .is_some_and(|m| m.incarnation == peer.incarnation),
            on_demand: self.config.monitoring.mode == MonitoringMode::Ring,
        };
        match association::admit(peer, known, view.status, view.topology.seq_no) {
            association::Admission::Admit => Ok(()),
            association::Admission::Refuse { refusal, reachable } => {
                if reachable {
                    self.provisioning.reachable(node.clone(), peer.incarnation);
                    metrics::counter!(M_REACHABLE, "node" => self.node.clone()).increment(1);
                    tracing::debug!(%node, incarnation = peer.incarnation, "quarantined node reached again; reported reachable");
                }
                if refusal.code == DEGRADED {
                    metrics::counter!(M_DEGRADED_REFUSALS, "node" => self.node.clone())
                        .increment(1);
                }
                Err(refusal)
            }
        }
    }

    /// Delivers a received `Tell`.
    fn deliver(&self, from: &NodeId, to: &str, type_id: &str, payload: &[u8]) {
        let handler = self
            .registry
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(to.to_owned(), type_id.to_owned()))
            .cloned();
        let outcome = match handler {
            Some(h) => h(from, payload),
            None => Err("unknown_type"),
        };
        if let Err(reason) = outcome {
            metrics::counter!(M_FRAMES_DROPPED, "node" => self.node.clone(), "reason" => reason)
                .increment(1);
            tracing::debug!(to, type_id, reason, "remote tell dropped");
        }
    }
}

/// The Remoting system actor; start it with [`Remoting::spawn`] and use it
/// through the returned [`RemotingHandle`].
#[derive(Debug)]
pub struct Remoting;

impl Remoting {
    /// Binds [`RemotingConfig::bind`] and spawns Remoting as the system
    /// actor `/system/remoting`, subscribed to `TopologyUpdated` and
    /// `RemoteNodeQuarantined` (the status is the topology's). `local` must advertise the bound
    /// address (see the [module documentation](self#the-listener-and-the-local-address)).
    pub async fn spawn(
        system: &ActorSystem,
        config: RemotingConfig,
        local: Member,
        provisioning: ProvisioningHandle,
    ) -> Result<RemotingHandle, RemotingError> {
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(RemotingError::Bind)?;
        Self::spawn_with_listener(system, config, local, provisioning, listener)
    }

    /// [`spawn`](Self::spawn) on a listener bound by the caller
    /// ([`RemotingConfig::bind`] is ignored).
    pub fn spawn_with_listener(
        system: &ActorSystem,
        config: RemotingConfig,
        local: Member,
        provisioning: ProvisioningHandle,
        listener: TcpListener,
    ) -> Result<RemotingHandle, RemotingError> {
        config.monitoring.validate()?;
        let local_addr = listener.local_addr().map_err(RemotingError::Bind)?;
        let hello = Hello::for_member(config.handshake.cluster.clone(), &local);
        let node: Arc<str> = Arc::from(hello.node_id.to_string());
        let tls = match &config.tls {
            Some(c) => Some(Tls::load(
                c.clone(),
                node.clone(),
                Some(tls::identity_uri(&hello.cluster, hello.node_id.as_str())),
            )?),
            None => None,
        };
        let shared = Arc::new(Shared {
            node,
            tls,
            local: hello,
            source: TopologySource::from(provisioning.clone()),
            provisioning,
            writers: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            registry: RwLock::new(HashMap::new()),
            follower: SharedFollower::new(),
            view: Mutex::new(View {
                topology: Arc::new(Topology::starting()),
                quarantined: Vec::new(),
                status: ProvisioningStatus::Starting,
                peers: HashMap::new(),
            }),
            associations: Mutex::new(Vec::new()),
            crashed: AtomicBool::new(false),
            config,
        });
        let listener = Arc::new(listener);
        let for_actor = shared.clone();
        let actor = system.spawn_system("remoting", move || {
            RemotingActor::new(for_actor.clone(), listener.clone())
        })?;
        let es = system.event_stream();
        // The status is read from the topology only.
        es.subscribe::<cluster_core::events::TopologyUpdated, _>(&actor);
        es.subscribe::<cluster_core::events::RemoteNodeQuarantined, _>(&actor);
        // Subscribed first, then the one pull: a publication in between is
        // in the mailbox, not lost. The accept loop starts after it.
        let _ = actor.tell(Msg::CatchUp);
        Ok(RemotingHandle {
            actor,
            shared,
            local_addr,
        })
    }
}

/// A handle to a running Remoting: remote tell, handler registry, queries.
#[derive(Clone)]
pub struct RemotingHandle {
    actor: ActorRef<Msg>,
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl fmt::Debug for RemotingHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotingHandle")
            .field("node", &self.shared.local.node_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RemotingHandle {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sends `payload` (a message encoded with `rmp-serde`, e.g.
    /// `rmp_serde::to_vec(&msg)`) to the actor registered as `(to,
    /// type_id)` on `node`. At most once: the frame is queued on the `Up`
    /// association with `node`, or refused at once.
    pub fn tell(
        &self,
        node: &NodeId,
        to: &str,
        type_id: &str,
        payload: Vec<u8>,
    ) -> Result<(), RemotingError> {
        let frame = Frame::Tell {
            to: to.to_owned(),
            type_id: type_id.to_owned(),
            payload,
        };
        let bytes = crate::wire::encode_frame(&frame, self.shared.config.handshake.max_frame)?;
        let writer = lock(&self.shared.writers).get(node).cloned();
        let on_demand = self.shared.config.monitoring.mode == MonitoringMode::Ring;
        let bytes = match writer {
            Some(w) => match w.try_send(bytes) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err(RemotingError::Backpressure(node.clone()));
                }
                Err(mpsc::error::TrySendError::Closed(bytes)) if on_demand => bytes,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Err(RemotingError::NotAssociated(node.clone()));
                }
            },
            None if on_demand => bytes,
            None => return Err(RemotingError::NotAssociated(node.clone())),
        };
        self.tell_on_demand(node, bytes)
    }

    /// Ring mode: the frame waits for the association the actor opens on
    /// demand (design §2.10); the first frame for a member asks for it.
    fn tell_on_demand(&self, node: &NodeId, bytes: Vec<u8>) -> Result<(), RemotingError> {
        // Refused at once, as without ring mode, when no association can
        // come: not a current member (or quarantined), or no new
        // association while the status is not Active (R4.3).
        let can_open = {
            let view = lock(&self.shared.view);
            *node != self.shared.local.node_id
                && association::opens_new(view.status)
                && view.topology.member(node).is_some_and(|m| {
                    !view
                        .quarantined
                        .iter()
                        .any(|(n, i)| n == node && *i == m.incarnation)
                })
        };
        if !can_open {
            return Err(RemotingError::NotAssociated(node.clone()));
        }
        let mut pending = lock(&self.shared.pending);
        // An association may have come up since: its writer drains
        // `pending` only after it is published, so look again under the lock.
        if let Some(w) = lock(&self.shared.writers).get(node).cloned()
            && !w.is_closed()
        {
            drop(pending);
            return w.try_send(bytes).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => RemotingError::Backpressure(node.clone()),
                mpsc::error::TrySendError::Closed(_) => RemotingError::NotAssociated(node.clone()),
            });
        }
        let queue = pending.entry(node.clone()).or_default();
        if queue.len() >= self.shared.config.send_queue.max(1) {
            return Err(RemotingError::Backpressure(node.clone()));
        }
        let first = queue.is_empty();
        queue.push(bytes);
        drop(pending);
        if first {
            let _ = self.actor.tell(Msg::Demand(node.clone()));
        }
        Ok(())
    }

    /// Delivers the remote tells addressed to `(to, type_id)` to `actor`,
    /// each payload decoded as an `M` with `rmp-serde` (replacing an earlier
    /// registration of the pair). An undecodable payload, or a stopped or
    /// full actor, drops the message (counted in
    /// `remoting_frames_dropped_total`).
    pub fn register<M>(&self, to: &str, type_id: &str, actor: ActorRef<M>)
    where
        M: DeserializeOwned + Send + 'static,
    {
        let handler: Handler = Arc::new(move |_from: &NodeId, payload: &[u8]| {
            let msg: M = rmp_serde::from_slice(payload).map_err(|_| "undecodable")?;
            actor.tell(msg).map_err(|_| "undeliverable")
        });
        self.shared
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((to.to_owned(), type_id.to_owned()), handler);
    }

    /// Delivers the remote tells addressed to `(to, type_id)` to `deliver`,
    /// with the node that sent them (authenticated by the association's
    /// handshake), each payload decoded as an `M` with `rmp-serde`
    /// (replacing an earlier registration of the pair). `deliver` runs
    /// inside the Remoting actor and must not block; an `Err(reason)` drops
    /// the message and is counted in `remoting_frames_dropped_total` under
    /// that reason.
    pub fn register_fn<M>(
        &self,
        to: &str,
        type_id: &str,
        deliver: impl Fn(&NodeId, M) -> Result<(), &'static str> + Send + Sync + 'static,
    ) where
        M: DeserializeOwned + Send + 'static,
    {
        let handler: Handler = Arc::new(move |from: &NodeId, payload: &[u8]| {
            let msg: M = rmp_serde::from_slice(payload).map_err(|_| "undecodable")?;
            deliver(from, msg)
        });
        self.shared
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((to.to_owned(), type_id.to_owned()), handler);
    }

    /// Removes the registration of `(to, type_id)`; whether there was one.
    pub fn unregister(&self, to: &str, type_id: &str) -> bool {
        self.shared
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(to.to_owned(), type_id.to_owned()))
            .is_some()
    }

    /// Every association: the node, the incarnation it is bound to, and its
    /// state, sorted by node id.
    pub fn associations(&self) -> Vec<(NodeId, u64, AssociationState)> {
        lock(&self.shared.associations).clone()
    }

    /// The state of the association with `node`, if there is one.
    pub fn association(&self, node: &NodeId) -> Option<AssociationState> {
        lock(&self.shared.associations)
            .iter()
            .find(|(n, _, _)| n == node)
            .map(|(_, _, s)| *s)
    }

    /// Stops Remoting: `Goodbye` on every association, then the listener
    /// closes.
    pub fn stop(&self) {
        self.actor.stop();
    }

    /// Stops Remoting the way a crash would: connections are dropped
    /// without a `Goodbye`, so the peers' failure detectors see the node go
    /// silent (for demonstrations and tests of R4.2).
    pub fn crash(&self) {
        self.shared.crashed.store(true, Ordering::SeqCst);
        self.actor.stop();
    }

    /// Waits until the Remoting actor has stopped.
    pub async fn stopped(&self) {
        self.actor.stopped().await;
    }

    /// Re-reads the TLS files now (what a node's SIGHUP calls; they are
    /// also re-read when they change, see [`tls`]). `Ok(false)` without TLS.
    /// On an error the previous material stays in use.
    pub fn reload_tls(&self) -> Result<bool, TlsConfigError> {
        match &self.shared.tls {
            Some(tls) => tls.reload(true),
            None => Ok(false),
        }
    }

    /// Whether associations run over TLS.
    pub fn tls_enabled(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// Whether the Remoting actor (and with it the listener) is running.
    pub fn is_running(&self) -> bool {
        !self.actor.is_closed()
    }
}
