//! The Remoting actor: one [`Peer`] entry per remote member, driven by
//! topologies, its own tick and the reports of the connection tasks. The
//! rules are in the [module documentation](super).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actor_runtime::{Actor, Context, HandlerResult};
use cluster_core::events::{RemoteNodeQuarantined, TopologyUpdated};
use cluster_core::{Member, NodeId, ProvisioningStatus, Topology};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::association::{Association, Close, Dialed, Effects, Listing, Report, Timing, opens_new};
use super::conn::{self, AbortOnDrop};
use super::tls::Stream;
use metrics::{Gauge, gauge};

use super::{
    AssociationState, M_ASSOCIATIONS, M_DEGRADED_REFUSALS, M_FRAMES_DROPPED, M_FRAMES_REFUSED,
    M_FROZEN, M_HEARTBEATS_MISSED, M_HEARTBEATS_SENT, M_IDLE_CLOSED, M_LOCAL_HEALTH,
    M_MON_MISSED_NACKS, M_MON_REPORTS, M_MON_ROUNDS, M_MON_STALLS, M_MON_VOTES, M_OPENED,
    M_PEER_LAST_HEARD, M_PEER_UP, M_QUARANTINES, M_REACHABLE, PROTOCOL, QUARANTINED, Shared,
    StaleTopologyWarning, lock,
};
use crate::failure_detector::{DetectorConfig, FailureDetector};
use crate::follower::{CatchUp, Step};
use crate::monitoring::{MonitorMsg, MonitorStats, Monitoring, MonitoringMode};
use crate::wire::{Frame, Hello, WireError, encode_frame};

/// The actor's messages.
pub(crate) enum Msg {
    /// A topology.
    Topology(TopologyUpdated),
    /// A node incarnation was quarantined (its topology follows).
    Quarantined(RemoteNodeQuarantined),
    /// Heartbeats, failure detection, re-dials.
    Tick,
    /// Ring mode: the monitoring core's deadline (`docs/monitoring-design.md`).
    MonitorTick(std::time::Instant),
    /// Ring mode: a frame waits for an association with this member (sent
    /// by [`super::RemotingHandle::tell`] for the first waiting frame).
    Demand(NodeId),
    /// The follower's catch-up (sent by `spawn` after the subscriptions, by
    /// a restarted instance, and again after a failed pull); the accept
    /// loop starts once the first one was handled.
    CatchUp,
    /// An inbound connection passed the handshake.
    Accepted { peer: Hello, stream: Stream },
    /// A dial finished.
    Dialed {
        node: NodeId,
        attempt: u64,
        result: Result<(Hello, Stream), WireError>,
    },
    /// A frame on an established connection.
    Frame {
        node: NodeId,
        conn: u64,
        frame: Frame,
    },
    /// An established connection ended or sent a bad frame.
    Lost {
        node: NodeId,
        conn: u64,
        error: WireError,
    },
}

impl From<TopologyUpdated> for Msg {
    fn from(e: TopologyUpdated) -> Self {
        Self::Topology(e)
    }
}

impl From<RemoteNodeQuarantined> for Msg {
    fn from(e: RemoteNodeQuarantined) -> Self {
        Self::Quarantined(e)
    }
}

/// An established connection.
struct Conn {
    id: u64,
    queue: mpsc::Sender<Vec<u8>>,
    /// This node dialed it (else it was accepted): when both sides dialed
    /// at once, the connection dialed by the smaller node id stays.
    dialed: bool,
    /// Frames its writer has taken (activity, for the idle close).
    written: Arc<std::sync::atomic::AtomicU64>,
    /// Taken into [`Peer::draining`] when the connection is replaced.
    reader: Option<AbortOnDrop>,
    /// Taken by [`close`]; aborted if the actor is dropped without closing.
    writer: Option<JoinHandle<()>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(w) = &self.writer {
            w.abort();
        }
    }
}

/// The association with one remote member.
struct Peer {
    member: Member,
    /// The decision state (the network-free core).
    a: Association,
    conn: Option<Conn>,
    /// The dial in flight: its attempt number and task.
    dial: Option<(u64, AbortOnDrop)>,
    /// Signs of life, judged by the configured detector.
    detector: FailureDetector,
    hb_sent: u64,
    hb_acked: u64,
    /// Refused once, since the last association, for a reason that may be
    /// a race (`conn::may_be_race`): the next such refusal is a WARN.
    raced: bool,
    /// Ring mode: this node needs the association for its own frames, so
    /// it dials (whatever the ids).
    demanded: bool,
    /// Ring mode: the last frame received or written, and the writer's
    /// count then (an association outside the ring's set idle for
    /// `idle_timeout` closes).
    last_active: Instant,
    written_seen: u64,
    /// Readers of replaced connections, kept until their end: frames the
    /// peer queued on a connection before both sides settled on another
    /// (both dialed at once) are still delivered, not lost with it.
    draining: Vec<(u64, AbortOnDrop)>,
}

/// Replaced connections whose readers are kept per peer.
const MAX_DRAINING: usize = 4;

impl Peer {
    fn new(member: Member, now: Instant, detector: DetectorConfig) -> Self {
        Self {
            member,
            a: Association::new(now.into_std()),
            conn: None,
            dial: None,
            detector: FailureDetector::new(detector),
            hb_sent: 0,
            hb_acked: 0,
            raced: false,
            demanded: false,
            last_active: now,
            written_seen: 0,
            draining: Vec::new(),
        }
    }

    fn send(&self, frame: &Frame, max_frame: usize) -> bool {
        let Some(conn) = &self.conn else { return false };
        match encode_frame(frame, max_frame) {
            Ok(bytes) => conn.queue.try_send(bytes).is_ok(),
            Err(_) => false,
        }
    }
}

/// Closes the connection of `peer` (with a `Goodbye` first if asked);
/// returns its writer, which ends once the queue is flushed.
fn close(shared: &Shared, node: &NodeId, peer: &mut Peer, goodbye: bool) -> Option<JoinHandle<()>> {
    let mut conn = peer.conn.take()?;
    {
        let mut writers = lock(&shared.writers);
        if writers
            .get(node)
            .is_some_and(|q| q.same_channel(&conn.queue))
        {
            writers.remove(node);
        }
    }
    if goodbye && let Ok(bytes) = encode_frame(&Frame::Goodbye, shared.config.handshake.max_frame) {
        let _ = conn.queue.try_send(bytes);
    }
    conn.writer.take()
}

/// Executes the connection effects of a transition: close (with a
/// `Goodbye` if asked) and cancel the dial. Reports and removal are the
/// caller's (they need the node's incarnation and the map).
fn execute(shared: &Shared, node: &NodeId, peer: &mut Peer, fx: &Effects) {
    if let Some(how) = fx.close {
        close(shared, node, peer, how == Close::WithGoodbye);
    }
    if fx.cancel_dial {
        peer.dial = None;
    }
}

/// The Remoting actor (`/system/remoting`).
pub(crate) struct RemotingActor {
    shared: Arc<Shared>,
    listener: Arc<TcpListener>,
    accept: Option<AbortOnDrop>,
    /// Re-reads the TLS files when they change (with TLS only).
    tls_watch: Option<AbortOnDrop>,
    /// The follower's view (`shared.follower`), copied at each change.
    topology: Arc<Topology>,
    /// The view's status: the status is read from the topology only.
    status: ProvisioningStatus,
    /// Incarnations quarantined ahead of the view.
    quarantined: Vec<(NodeId, u64)>,
    peers: BTreeMap<NodeId, Peer>,
    next_id: u64,
    /// Whether new associations are frozen, as last published (`None`:
    /// no status but `Starting` seen yet).
    frozen: Option<bool>,
    /// The per-peer gauges (`remoting_peer_up`, last heard) of the peers
    /// published so far; a peer's are zeroed and dropped when it leaves.
    peer_gauges: BTreeMap<NodeId, (Gauge, Gauge)>,
    /// Whether an association with some member ever came up: evidence
    /// that this node's own secret and cluster name are right, without
    /// which a refused handshake says nothing about which side is wrong.
    authenticated_any: bool,
    /// When the last tick ran: a tick much later than due means this
    /// process was stalled (SIGSTOP, a VM freeze), not its peers.
    last_tick: Option<Instant>,
    /// Ring mode: the monitoring core (it judges liveness instead of the
    /// per-peer detectors) and the deadline its tick is scheduled for.
    monitor: Option<Monitoring>,
    monitor_wake: Option<std::time::Instant>,
    /// The core's counters as last published (the metrics get the deltas).
    monitor_published: MonitorStats,
}

/// Frames dropped because the association they waited for did not come.
const DROPPED_NOT_ASSOCIATED: &str = "not_associated";

/// Whether a tick that runs `gap` after the previous one says this process
/// was stalled: the gap exceeds half the failure timeout and several tick
/// intervals. Its peers' silence during the stall is then this process's
/// doing, and is not counted against them (issue 16, FS-1).
pub(super) fn stalled(gap: Duration, tick_every: Duration, failure_timeout: Duration) -> bool {
    gap > failure_timeout / 2 && gap > tick_every * 4
}

impl RemotingActor {
    pub(crate) fn new(shared: Arc<Shared>, listener: Arc<TcpListener>) -> Self {
        Self {
            shared,
            listener,
            accept: None,
            tls_watch: None,
            topology: Arc::new(Topology::starting()),
            status: ProvisioningStatus::Starting,
            quarantined: Vec::new(),
            peers: BTreeMap::new(),
            next_id: 0,
            frozen: None,
            peer_gauges: BTreeMap::new(),
            authenticated_any: false,
            last_tick: None,
            monitor: None,
            monitor_wake: None,
            monitor_published: MonitorStats::default(),
        }
        .with_monitor()
    }

    fn with_monitor(mut self) -> Self {
        let config = &self.shared.config.monitoring;
        if config.mode == MonitoringMode::Ring {
            let me = self.shared.local.node_id.clone();
            // The seed only spreads the helper choices; any value will do.
            let seed = xxhash_rust::xxh3::xxh3_64(me.as_str().as_bytes())
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos() as u64;
            self.monitor = Some(Monitoring::new(config.clone(), me, seed));
        }
        self
    }

    /// Ring mode: executes the monitoring core's output: frames on the
    /// associations that are up (a verdict that cannot go is handed back to
    /// the core, which gives the child's interval to its children), the
    /// quorum's quarantines to provisioning, and the next deadline.
    fn drive(&mut self, ctx: &mut Context<Self>, now: Instant) {
        let max_frame = self.shared.config.handshake.max_frame;
        // Each round of unsendable verdicts halves their spans: bounded.
        for _ in 0..64 {
            let Some(m) = self.monitor.as_mut() else {
                return;
            };
            let ready = m.ready();
            let mut unsendable = Vec::new();
            for (to, msg) in ready.send {
                let sent = self.peers.get(&to).is_some_and(|p| {
                    p.a.state == AssociationState::Up && p.send(&to_frame(msg.clone()), max_frame)
                });
                if !sent {
                    unsendable.push((to, msg));
                }
            }
            for r in ready.reports {
                // The supervisor logs the quarantine (N3: one line).
                tracing::debug!(node = %r.node, incarnation = r.incarnation, source = r.source.as_str(), voters = ?r.voters, "monitors' quorum: reporting the node for quarantine");
                self.shared
                    .provisioning
                    .quarantine(r.node.clone(), r.incarnation, r.reason());
                metrics::counter!(M_QUARANTINES, "node" => self.shared.node.clone()).increment(1);
            }
            if let Some(at) = ready.wake_at
                && self.monitor_wake.is_none_or(|w| at < w)
            {
                self.monitor_wake = Some(at);
                let delay = at.saturating_duration_since(now.into_std());
                ctx.schedule_once(delay, Msg::MonitorTick(at));
            }
            // A verdict relay to a member outside the ring's set opens an
            // association on demand (design §2.10); one that cannot be
            // opened goes back to the core.
            let mut back = Vec::new();
            for (to, msg) in unsendable {
                let queued = matches!(msg, MonitorMsg::Verdict(_))
                    && self.queue_on_demand(&to, &to_frame(msg.clone()), ctx, now);
                if !queued {
                    back.push((to, msg));
                }
            }
            if back.is_empty() {
                break;
            }
            if let Some(m) = self.monitor.as_mut() {
                for (to, msg) in back {
                    m.on_unsendable(&to, msg, now.into_std());
                }
            }
        }
    }

    /// Ring mode: queues `frame` for `node` and opens the association on
    /// demand; `false` (nothing queued) if `node` cannot have one now.
    fn queue_on_demand(
        &mut self,
        node: &NodeId,
        frame: &Frame,
        ctx: &mut Context<Self>,
        now: Instant,
    ) -> bool {
        let Ok(bytes) = encode_frame(frame, self.shared.config.handshake.max_frame) else {
            return false;
        };
        {
            let mut pending = lock(&self.shared.pending);
            let queue = pending.entry(node.clone()).or_default();
            if queue.len() >= self.shared.config.send_queue.max(1) {
                return false;
            }
            queue.push(bytes);
        }
        if self.open_on_demand(node.clone(), ctx, now) {
            true
        } else {
            lock(&self.shared.pending).remove(node);
            false
        }
    }

    /// The per-peer gauges (R4.5): `remoting_peer_up` is 1 while the
    /// association is `Up` and the failure detector trusts the peer, and
    /// `remoting_peer_last_heard_timestamp_seconds` is the Unix time of its
    /// last sign of life (unset before the first). A peer that left (its
    /// association removed) gets both set to 0 and is forgotten, so the
    /// series stay bounded by the members seen.
    fn publish_peers(&mut self, now: Instant) {
        let node = &self.shared.node;
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        for (peer, p) in &self.peers {
            let (up, heard) = self.peer_gauges.entry(peer.clone()).or_insert_with(|| {
                let label = peer.to_string();
                (
                    gauge!(M_PEER_UP, "node" => node.clone(), "peer" => label.clone()),
                    gauge!(M_PEER_LAST_HEARD, "node" => node.clone(), "peer" => label),
                )
            });
            let healthy = p.a.state == AssociationState::Up
                && (self.monitor.is_some() || p.detector.is_available(now.into_std()));
            up.set(if healthy { 1.0 } else { 0.0 });
            if p.detector.has_heard() {
                let silence = p.detector.silence(now.into_std());
                heard.set(wall.saturating_sub(silence).as_secs_f64());
            }
        }
        let peers = &self.peers;
        self.peer_gauges.retain(|peer, (up, heard)| {
            let keep = peers.contains_key(peer);
            if !keep {
                up.set(0.0);
                heard.set(0.0);
            }
            keep
        });
    }

    fn tick_every(&self) -> Duration {
        self.shared
            .config
            .heartbeat_interval
            .max(Duration::from_millis(1))
    }

    /// The timing of the association core.
    fn timing(&self) -> Timing {
        let c = &self.shared.config;
        Timing {
            heartbeat: c.heartbeat_interval,
            failure_timeout: c.failure_timeout,
        }
    }

    /// Copies the follower's view and reconciles the associations with it.
    fn sync_view(&mut self, ctx: &mut Context<Self>, now: Instant) {
        {
            let f = self.shared.follower.lock();
            self.topology = f.view().clone();
            self.status = self.topology.status;
            self.quarantined = f
                .pending_quarantines()
                .iter()
                .map(|q| (q.node.clone(), q.incarnation))
                .collect();
        }
        // R4.3: while the status is not Active the ring keeps its last
        // assignment (no monitoring on the strength of stale data). First,
        // so that `reconcile` knows the ring's set of associations.
        if let Some(m) = self.monitor.as_mut() {
            if self.status == ProvisioningStatus::Active {
                m.on_topology(&self.topology, now.into_std());
            } else if self.status == ProvisioningStatus::Degraded {
                m.on_degraded_topology(&self.topology, now.into_std());
            }
        }
        self.reconcile(ctx, now);
    }

    /// Ring mode: whether this node needs an association with `node` now:
    /// a ring neighbour (a target or a watcher), or frames wait for it.
    fn wanted(&self, node: &NodeId) -> bool {
        match &self.monitor {
            None => true,
            Some(m) => m.keep().contains(node) || lock(&self.shared.pending).contains_key(node),
        }
    }

    /// Ring mode: a frame waits for an association with `node` (design
    /// §2.10: associations on demand). Opened if `node` is a current member
    /// and the status allows new associations; otherwise the waiting frames
    /// are dropped.
    fn on_demand(&mut self, node: NodeId, ctx: &mut Context<Self>, now: Instant) {
        if !self.open_on_demand(node.clone(), ctx, now) {
            let dropped = lock(&self.shared.pending)
                .remove(&node)
                .map_or(0, |f| f.len());
            metrics::counter!(M_FRAMES_DROPPED, "node" => self.shared.node.clone(), "reason" => DROPPED_NOT_ASSOCIATED).increment(dropped as u64);
        }
    }

    /// Ring mode: makes sure an association with `node` exists and dials
    /// it if needed (this node's frames wait for it); `false` if `node` is
    /// not a current, unblocked member or no association may open now.
    fn open_on_demand(&mut self, node: NodeId, ctx: &mut Context<Self>, now: Instant) -> bool {
        let member = self.topology.member(&node).cloned().filter(|m| {
            node != self.shared.local.node_id
                && !self.topology.is_blocked(&m.node_id, m.incarnation)
                && !self
                    .quarantined
                    .iter()
                    .any(|(n, i)| *n == m.node_id && *i == m.incarnation)
        });
        let usable = self.monitor.is_some() && opens_new(self.status);
        let Some(member) = member.filter(|_| usable) else {
            return false;
        };
        let p = self.peers.entry(node.clone()).or_insert_with(|| {
            metrics::counter!(M_OPENED, "node" => self.shared.node.clone(), "reason" => "demand").increment(1);
            tracing::debug!(%node, incarnation = member.incarnation, "association opened on demand");
            Peer::new(member, now, self.shared.config.detector())
        });
        p.demanded = true;
        p.last_active = now;
        // Up already (the frame raced with the install): drain here.
        if p.a.state == AssociationState::Up
            && let Some(c) = &p.conn
            && !c.queue.is_closed()
        {
            let waiting = lock(&self.shared.pending).remove(&node).unwrap_or_default();
            for bytes in waiting {
                if c.queue.try_send(bytes).is_err() {
                    metrics::counter!(M_FRAMES_DROPPED, "node" => self.shared.node.clone(), "reason" => DROPPED_NOT_ASSOCIATED).increment(1);
                }
            }
        }
        self.dial_due(ctx, now);
        true
    }

    /// Ring mode: the core's counters as metrics (their growth since the
    /// last tick) and the local health gauge; once per heartbeat interval.
    fn publish_monitor(&mut self) {
        let Some(m) = &self.monitor else { return };
        let node = self.shared.node.clone();
        let (now, was) = (m.stats(), &self.monitor_published);
        let delta = |a: u64, b: u64| a.saturating_sub(b);
        for (result, n) in [
            ("ack", delta(now.direct_acks, was.direct_acks)),
            ("indirect_ack", delta(now.indirect_acks, was.indirect_acks)),
            ("failed", delta(now.failed_rounds, was.failed_rounds)),
        ] {
            metrics::counter!(M_MON_ROUNDS, "node" => node.clone(), "result" => result)
                .increment(n);
        }
        metrics::counter!(M_MON_MISSED_NACKS, "node" => node.clone())
            .increment(delta(now.missed_nacks, was.missed_nacks));
        for (suspect, n) in [
            ("true", delta(now.votes_sent, was.votes_sent)),
            ("false", delta(now.retractions_sent, was.retractions_sent)),
        ] {
            metrics::counter!(M_MON_VOTES, "node" => node.clone(), "suspect" => suspect)
                .increment(n);
        }
        for (source, n) in [
            ("local", delta(now.reports_local, was.reports_local)),
            ("relayed", delta(now.reports_relayed, was.reports_relayed)),
        ] {
            metrics::counter!(M_MON_REPORTS, "node" => node.clone(), "source" => source)
                .increment(n);
        }
        metrics::counter!(M_MON_STALLS, "node" => node.clone())
            .increment(delta(now.stalls, was.stalls));
        gauge!(M_LOCAL_HEALTH, "node" => node).set(f64::from(m.health()));
        self.monitor_published = now.clone();
    }

    /// Ring mode: closes (with `Goodbye`) the associations outside the
    /// ring's set that carried no frame for `idle_timeout`; a `Failed` one
    /// stays (it is the quarantined node's reachability probe, R4.4).
    fn close_idle(&mut self, now: Instant) {
        let Some(m) = &self.monitor else { return };
        let idle_timeout = self.shared.config.monitoring.idle_timeout;
        let pending = lock(&self.shared.pending);
        let mut idle = Vec::new();
        for (node, p) in &mut self.peers {
            if let Some(c) = &p.conn {
                let written = c.written.load(std::sync::atomic::Ordering::Relaxed);
                if written != p.written_seen {
                    p.written_seen = written;
                    p.last_active = now;
                }
            }
            if m.keep().contains(node)
                || pending.contains_key(node)
                || p.dial.is_some()
                || p.a.state == AssociationState::Failed
                || now.saturating_duration_since(p.last_active) < idle_timeout
            {
                continue;
            }
            idle.push(node.clone());
        }
        drop(pending);
        for node in idle {
            if let Some(mut p) = self.peers.remove(&node) {
                tracing::debug!(%node, "association idle: closed");
                metrics::counter!(M_IDLE_CLOSED, "node" => self.shared.node.clone()).increment(1);
                close(&self.shared, &node, &mut p, true);
            }
        }
    }

    fn on_topology(&mut self, t: TopologyUpdated, ctx: &mut Context<Self>, now: Instant) {
        let step = self.shared.follower.lock().step(t);
        if let Step::Applied { missed, .. } = step {
            if missed > 0 {
                tracing::warn!(
                    missed,
                    "remoting: topologies were not delivered (gap); the newest carries them"
                );
            }
            self.sync_view(ctx, now);
        }
    }

    /// A6: a quarantine known before its topology: the association with
    /// that incarnation is dropped at once and the incarnation refused
    /// (the accept check reads `quarantined`); the topology that follows
    /// blocks it, and a later one that lists it unblocked lifts it (R4.4).
    fn on_quarantined(&mut self, q: RemoteNodeQuarantined, ctx: &mut Context<Self>, now: Instant) {
        let step = self.shared.follower.lock().step(q);
        let Step::Quarantined(q) = step else { return };
        if let Some(m) = self.monitor.as_mut() {
            m.on_quarantined(&q.node, q.incarnation, now.into_std());
            // Ring mode: this node may have no association with it (it
            // learned the verdict from a relay). One is made, to turn
            // `Failed` below: its reachability probe is what lifts the
            // quarantine here after a heal (R4.4).
            if !self.peers.contains_key(&q.node)
                && let Some(member) = self
                    .topology
                    .member(&q.node)
                    .filter(|m| m.incarnation == q.incarnation)
            {
                self.peers.insert(
                    q.node.clone(),
                    Peer::new(member.clone(), now, self.shared.config.detector()),
                );
            }
        }
        let timing = self.timing();
        if let Some(p) = self.peers.get_mut(&q.node)
            && p.member.incarnation == q.incarnation
        {
            let fx = p.a.on_quarantined(now.into_std(), timing);
            if fx != Effects::default() {
                tracing::debug!(node = %q.node, incarnation = q.incarnation, reason = %q.reason, "node quarantined: association dropped");
            }
            execute(&self.shared, &q.node, p, &fx);
        }
        self.sync_view(ctx, now);
    }

    /// Keeps the gauge `remoting_new_associations_frozen` current and
    /// publishes [`StaleTopologyWarning`] when Remoting stops or resumes
    /// opening associations (R4.3). `Starting` is not a warning: nothing is
    /// known yet. The first known status publishes only if it is frozen.
    fn warn_if_frozen(&mut self, ctx: &mut Context<Self>) {
        if self.status == ProvisioningStatus::Starting {
            return;
        }
        let frozen = self.status != ProvisioningStatus::Active;
        if self.frozen == Some(frozen) {
            return;
        }
        let first = self.frozen.is_none();
        self.frozen = Some(frozen);
        gauge!(M_FROZEN, "node" => self.shared.node.clone()).set(if frozen { 1.0 } else { 0.0 });
        if first && !frozen {
            return;
        }
        if frozen {
            // The supervisor logs the status change itself (N3: one line;
            // a leave, Draining, is no warning).
            tracing::debug!(
                status = self.status.as_str(),
                "provisioning status is not active: no new association will be opened (the member list may be stale)"
            );
        } else {
            tracing::debug!("provisioning status active again: associations open normally");
        }
        ctx.system().event_stream().publish(StaleTopologyWarning {
            frozen,
            status: self.status,
            seq_no: self.topology.seq_no,
        });
    }

    /// Makes the associations follow the topology (R4.1, R4.3).
    fn reconcile(&mut self, ctx: &mut Context<Self>, now: Instant) {
        self.warn_if_frozen(ctx);
        let t = self.topology.clone();
        let timing = self.timing();
        let mut remove = Vec::new();
        for (node, p) in &mut self.peers {
            let incarnation = p.member.incarnation;
            let listing = Listing::of(&t, node, incarnation);
            let failed = p.a.state == AssociationState::Failed;
            let fx = p.a.on_topology(listing, now.into_std(), timing);
            if fx.remove {
                remove.push((node.clone(), fx.close));
                continue;
            }
            if let (Listing::Same, Some(m)) = (listing, t.member(node)) {
                p.member = m.clone();
                if failed && p.a.state != AssociationState::Failed {
                    tracing::debug!(%node, incarnation, "quarantine lifted: the association starts over");
                    *p = Peer::new(m.clone(), now, self.shared.config.detector());
                }
            }
            if fx.close.is_some() {
                tracing::debug!(%node, incarnation, "node blocked by the topology: association closed");
            }
            execute(&self.shared, node, p, &fx);
        }
        for (node, how) in remove {
            if let Some(mut p) = self.peers.remove(&node) {
                let left = how == Some(Close::WithGoodbye);
                tracing::info!(%node, incarnation = p.member.incarnation, left, "association closed: member left or restarted");
                close(&self.shared, &node, &mut p, left);
            }
        }
        let open = opens_new(self.status);
        for m in t.members.iter() {
            if m.node_id == self.shared.local.node_id
                || self.peers.contains_key(&m.node_id)
                || !self.wanted(&m.node_id)
                || t.is_blocked(&m.node_id, m.incarnation)
                || self
                    .quarantined
                    .iter()
                    .any(|(n, i)| n == &m.node_id && *i == m.incarnation)
            {
                continue;
            }
            if !open {
                metrics::counter!(M_DEGRADED_REFUSALS, "node" => self.shared.node.clone())
                    .increment(1);
                tracing::debug!(node = %m.node_id, status = self.status.as_str(), "no new association while the status is not active");
                continue;
            }
            tracing::debug!(node = %m.node_id, incarnation = m.incarnation, "association opened");
            if self.monitor.is_some() {
                metrics::counter!(M_OPENED, "node" => self.shared.node.clone(), "reason" => "ring")
                    .increment(1);
            }
            self.peers.insert(
                m.node_id.clone(),
                Peer::new(m.clone(), now, self.shared.config.detector()),
            );
        }
        self.dial_due(ctx, now);
    }

    /// Starts the dials that are due: this node dials the peers with a
    /// greater node id; a `Failed` one is probed (R4.4).
    fn dial_due(&mut self, ctx: &mut Context<Self>, now: Instant) {
        let ring = self.monitor.as_ref().map(Monitoring::keep);
        for (node, p) in &mut self.peers {
            // The smaller id dials (all-to-all; in ring mode for the ring's
            // set), and in ring mode the side whose frames need it dials
            // whatever the ids, and so does every side that quarantined the
            // peer: its reachability probe (R4.4) cannot wait for the peer
            // to connect, which in ring mode may never need to (it can keep
            // a dead connection it sends nothing on).
            let dialer = match ring {
                None => *node > self.shared.local.node_id,
                Some(keep) => {
                    (keep.contains(node) && *node > self.shared.local.node_id)
                        || p.a.state == AssociationState::Failed
                        || p.demanded
                }
            };
            if !p.a.dial_due(dialer, p.dial.is_some(), now.into_std()) {
                continue;
            }
            self.next_id += 1;
            let attempt = self.next_id;
            let shared = self.shared.clone();
            let myself = ctx.myself().clone();
            let address = p.member.address.to_string();
            let target = node.clone();
            let task = tokio::spawn(async move {
                let result = conn::dial(&target, address, shared).await;
                let _ = myself.tell(Msg::Dialed {
                    node: target,
                    attempt,
                    result,
                });
            });
            p.dial = Some((attempt, AbortOnDrop(task)));
            p.a.on_dial();
        }
    }

    /// Heartbeats and failure detection (R4.2), then the due dials.
    fn on_tick(&mut self, ctx: &mut Context<Self>, now: Instant) {
        let max_frame = self.shared.config.handshake.max_frame;
        let failure_timeout = self.shared.config.failure_timeout;
        let gap = self
            .last_tick
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.last_tick = Some(now);
        if stalled(gap, self.tick_every(), failure_timeout) {
            // This process did not run for `gap` (its own tick was late):
            // whatever its peers sent meanwhile waits unread in the
            // sockets. Start every peer's clock again instead of
            // suspecting them all; the next heartbeats decide (FS-1).
            tracing::info!(
                stalled = ?gap,
                "this process was stalled: the peers' silence during the stall is not counted"
            );
            for p in self.peers.values_mut() {
                if p.a.state != AssociationState::Failed {
                    p.detector.touch(now.into_std());
                }
            }
        }
        let timing = self.timing();
        let ring = self.monitor.is_some();
        let mut lost = Vec::new();
        for (node, p) in &mut self.peers {
            if p.a.state == AssociationState::Up && ring {
                let queue_open = p.conn.as_ref().is_some_and(|c| !c.queue.is_closed());
                if !queue_open {
                    lost.push(node.clone());
                }
            } else if p.a.state == AssociationState::Up {
                if p.hb_sent > p.hb_acked {
                    metrics::counter!(M_HEARTBEATS_MISSED, "node" => self.shared.node.clone())
                        .increment(1);
                }
                p.hb_sent += 1;
                let queue_open = p.conn.as_ref().is_some_and(|c| !c.queue.is_closed());
                if !queue_open {
                    lost.push(node.clone());
                } else if p.send(&Frame::Heartbeat { seq: p.hb_sent }, max_frame) {
                    metrics::counter!(M_HEARTBEATS_SENT, "node" => self.shared.node.clone())
                        .increment(1);
                }
            }
            // Ring mode: liveness is the monitors' quorum's to judge, never
            // one detector's.
            let available = ring || p.detector.is_available(now.into_std());
            let fx = p.a.on_tick(available, now.into_std(), timing);
            if let Some(Report::Quarantine(reason)) = &fx.report {
                let silent = p.detector.silence(now.into_std());
                let incarnation = p.member.incarnation;
                // The supervisor logs the quarantine (N3: one line).
                tracing::debug!(%node, incarnation, ?silent, "peer unreachable: reporting it for quarantine");
                self.shared
                    .provisioning
                    .quarantine(node.clone(), incarnation, reason.clone());
                metrics::counter!(M_QUARANTINES, "node" => self.shared.node.clone()).increment(1);
            }
            execute(&self.shared, node, p, &fx);
        }
        for node in lost {
            if let Some(p) = self.peers.get_mut(&node) {
                tracing::info!(%node, "association writer ended: connection lost");
                let fx = p.a.on_lost(now.into_std(), timing);
                execute(&self.shared, &node, p, &fx);
            }
        }
        self.close_idle(now);
        self.publish_monitor();
        self.dial_due(ctx, now);
    }

    /// Makes `stream` the connection of the association with `node`.
    fn install(
        &mut self,
        node: &NodeId,
        stream: Stream,
        dialed: bool,
        ctx: &mut Context<Self>,
        now: Instant,
    ) {
        self.authenticated_any = true;
        self.next_id += 1;
        let id = self.next_id;
        let config = &self.shared.config;
        let (queue, rx) = mpsc::channel(config.send_queue.max(1));
        let net = config
            .netsim
            .clone()
            .map(|n| (n, self.shared.local.node_id.clone()));
        let (max_frame, me) = (config.handshake.max_frame, ctx.myself().clone());
        let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
        // A plain TCP stream splits into two owned halves without a lock; a
        // TLS stream (one session for both directions) through tokio's
        // split.
        let (writer, reader) = match stream {
            Stream::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                (
                    tokio::spawn(conn::write_loop(
                        w,
                        rx,
                        config.failure_timeout,
                        written.clone(),
                    )),
                    tokio::spawn(conn::read_loop(r, max_frame, node.clone(), id, me, net)),
                )
            }
            tls @ Stream::Tls(_) => {
                let (r, w) = tokio::io::split(tls);
                (
                    tokio::spawn(conn::write_loop(
                        w,
                        rx,
                        config.failure_timeout,
                        written.clone(),
                    )),
                    tokio::spawn(conn::read_loop(r, max_frame, node.clone(), id, me, net)),
                )
            }
        };
        let reader = AbortOnDrop(reader);
        let Some(p) = self.peers.get_mut(node) else {
            return;
        };
        // The replaced connection's reader stays until the peer closes it.
        if let Some(old) = p.conn.as_mut()
            && let Some(r) = old.reader.take()
        {
            if p.draining.len() >= MAX_DRAINING {
                p.draining.remove(0);
            }
            p.draining.push((old.id, r));
        }
        close(&self.shared, node, p, false);
        lock(&self.shared.writers).insert(node.clone(), queue.clone());
        // Ring mode: the frames that waited for this association go first
        // (published first, then drained: see `tell_on_demand`).
        let waiting = lock(&self.shared.pending).remove(node).unwrap_or_default();
        for bytes in waiting {
            if queue.try_send(bytes).is_err() {
                metrics::counter!(M_FRAMES_DROPPED, "node" => self.shared.node.clone(), "reason" => DROPPED_NOT_ASSOCIATED).increment(1);
            }
        }
        p.conn = Some(Conn {
            id,
            queue,
            dialed,
            written,
            reader: Some(reader),
            writer: Some(writer),
        });
        p.last_active = now;
        p.written_seen = 0;
        if let Some(m) = self.monitor.as_mut() {
            m.on_sign_of_life(node, now.into_std());
        }
        // Ring mode: an accepted connection does not cancel this node's own
        // dial in flight: the peer may already have finished that handshake
        // and queued frames on it, so it is settled by the tie-break (and
        // read) when it completes. All-to-all: only one side dials.
        if dialed || self.monitor.is_none() {
            p.dial = None;
        }
        p.a.on_up();
        p.detector.touch(now.into_std());
        p.hb_sent = 0;
        p.hb_acked = 0;
        p.raced = false;
        tracing::info!(%node, incarnation = p.member.incarnation, "association up");
    }

    /// Both sides dialed at once and `stream` lost the tie-break: it is not
    /// installed, but what the peer may already have queued on it is still
    /// read (until the peer closes it), and nothing is written to it.
    fn drain(&mut self, node: &NodeId, stream: Stream, ctx: &mut Context<Self>) {
        let Some(p) = self.peers.get_mut(node) else {
            return;
        };
        self.next_id += 1;
        let id = self.next_id;
        let config = &self.shared.config;
        let net = config
            .netsim
            .clone()
            .map(|n| (n, self.shared.local.node_id.clone()));
        let (max_frame, me) = (config.handshake.max_frame, ctx.myself().clone());
        let reader = match stream {
            Stream::Plain(tcp) => {
                // Dropping the write half shuts our direction down.
                let (r, _w) = tcp.into_split();
                tokio::spawn(conn::read_loop(r, max_frame, node.clone(), id, me, net))
            }
            tls @ Stream::Tls(_) => {
                let (r, _w) = tokio::io::split(tls);
                tokio::spawn(conn::read_loop(r, max_frame, node.clone(), id, me, net))
            }
        };
        if p.draining.len() >= MAX_DRAINING {
            p.draining.remove(0);
        }
        p.draining.push((id, AbortOnDrop(reader)));
    }

    fn on_accepted(&mut self, peer: Hello, stream: Stream, ctx: &mut Context<Self>, now: Instant) {
        // Ring mode: the connector needs this association; it is created
        // as it is accepted (the accept check admitted a current member).
        if self.monitor.is_some()
            && !self.peers.contains_key(&peer.node_id)
            && opens_new(self.status)
            && let Some(m) = self
                .topology
                .member(&peer.node_id)
                .filter(|m| m.incarnation == peer.incarnation)
        {
            self.peers.insert(
                peer.node_id.clone(),
                Peer::new(m.clone(), now, self.shared.config.detector()),
            );
            metrics::counter!(M_OPENED, "node" => self.shared.node.clone(), "reason" => "accept")
                .increment(1);
        }
        let me = &self.shared.local.node_id;
        let wanted = self.peers.get(&peer.node_id).is_some_and(|p| {
            p.member.incarnation == peer.incarnation
                && p.a.wants_inbound()
                // Both dialed at once: the connection dialed by the smaller
                // id stays (here: ours, if we are the smaller and up on it).
                && !(p.a.state == AssociationState::Up
                    && p.conn.as_ref().is_some_and(|c| c.dialed)
                    && *me < peer.node_id)
        });
        let lost_tie = self.peers.get(&peer.node_id).is_some_and(|p| {
            p.member.incarnation == peer.incarnation && p.a.state == AssociationState::Up
        });
        if wanted {
            self.install(&peer.node_id, stream, false, ctx, now);
        } else if lost_tie {
            tracing::debug!(node = %peer.node_id, "both sides dialed: our connection stays, the peer's is read until it closes");
            self.drain(&peer.node_id, stream, ctx);
        } else {
            tracing::debug!(node = %peer.node_id, incarnation = peer.incarnation, "inbound connection no longer wanted: dropped");
        }
    }

    fn on_dialed(
        &mut self,
        node: NodeId,
        attempt: u64,
        result: Result<(Hello, Stream), WireError>,
        ctx: &mut Context<Self>,
        now: Instant,
    ) {
        let Some(mut p) = self.peers.remove(&node) else {
            return;
        };
        if p.dial.as_ref().is_none_or(|(a, _)| *a != attempt) {
            self.peers.insert(node, p);
            return;
        }
        p.dial = None;
        let incarnation = p.member.incarnation;
        let failed = p.a.state == AssociationState::Failed;
        let (dialed, stream, code) = match result {
            Ok((hello, stream)) if hello.node_id == node && hello.incarnation == incarnation => {
                p.detector.touch(now.into_std());
                (Dialed::Reached, Some(stream), None)
            }
            Ok((hello, _)) => {
                tracing::warn!(%node, incarnation, answered = %hello.node_id, answered_incarnation = hello.incarnation, "dialed address answered as another node incarnation");
                (Dialed::OtherPeer, None, None)
            }
            Err(e) => {
                if let WireError::Refused { .. } | WireError::Tls { .. } = &e {
                    // The peer answered: it is alive. A TLS refusal is an
                    // answer too: a certificate problem (a rotation in
                    // progress) never turns into a quarantine by silence
                    // (see `tls`). In ring mode the monitors learn it too
                    // (design §2.9: a joining node refuses until its view
                    // lists us; it is not suspected for that).
                    p.detector.touch(now.into_std());
                    if let Some(m) = self.monitor.as_mut() {
                        m.on_sign_of_life(&node, now.into_std());
                    }
                }
                match conn::refusal(&e) {
                    Some((code, reason)) if conn::may_be_race(code) && !p.raced => {
                        p.raced = true;
                        tracing::debug!(side = "dial", %node, code, reason, "remoting handshake refused (first time: may be a race)");
                    }
                    Some((code, reason)) => {
                        tracing::warn!(side = "dial", %node, code, reason, "remoting handshake refused");
                    }
                    None => tracing::debug!(%node, error = %conn::Chain(&e), "dial failed"),
                }
                // A member this node cannot authenticate with (another
                // secret or cluster name at its advertised address) cannot
                // be used: it is reported for quarantine, so that this
                // node's placement sends its grains to members it can reach.
                // Only with evidence that the fault is the member's: this
                // node has authenticated with some other member (a node
                // whose own secret is wrong must not quarantine the healthy
                // ones and own every grain). Only the dialing side decides:
                // it asked the member's own address; an acceptor has only
                // the dialer's unauthenticated claim. A protocol version
                // mismatch (a rolling upgrade) is not a reason. A later dial
                // that succeeds reports the member reachable again (R4.4).
                let dialed = if conn::quarantine_for_refusal(&e, failed, self.authenticated_any) {
                    Dialed::CannotAuthenticate
                } else if matches!(&e, WireError::Refused { code, .. } if code == QUARANTINED) {
                    Dialed::RefusedQuarantined
                } else {
                    Dialed::Failed
                };
                (dialed, None, Some(e.code()))
            }
        };
        if stream.is_none() && p.demanded {
            // The association the frames waited for did not come: they are
            // dropped (at most once), and the next frame asks again.
            p.demanded = false;
            let dropped = lock(&self.shared.pending)
                .remove(&node)
                .map_or(0, |f| f.len());
            metrics::counter!(M_FRAMES_DROPPED, "node" => self.shared.node.clone(), "reason" => DROPPED_NOT_ASSOCIATED).increment(dropped as u64);
        }
        let fx = p.a.on_dialed(dialed, now.into_std(), self.timing());
        match &fx.report {
            Some(Report::Reachable) => self.report_reachable(&node, incarnation),
            Some(Report::Quarantine(_)) => {
                let code = code.unwrap_or("dial");
                // The refusal is logged above (WARN) and the quarantine by the
                // supervisor (N3: one line each).
                tracing::debug!(%node, incarnation, code, "cannot authenticate with a member: reporting it for quarantine");
                self.shared.provisioning.quarantine(
                    node.clone(),
                    incarnation,
                    format!("handshake refused: {code}"),
                );
                metrics::counter!(M_QUARANTINES, "node" => self.shared.node.clone()).increment(1);
            }
            None => {}
        }
        // Both dialed at once and the peer's connection (accepted here) is
        // up: the connection dialed by the smaller id stays.
        let keep_accepted = p.a.state == AssociationState::Up
            && p.conn.as_ref().is_some_and(|c| !c.dialed)
            && node < self.shared.local.node_id;
        match stream {
            Some(stream) if fx.install && keep_accepted => {
                tracing::debug!(%node, "both sides dialed: the peer's connection stays, ours is read until it closes");
                self.peers.insert(node.clone(), p);
                self.drain(&node, stream, ctx);
                return;
            }
            Some(stream) if fx.install => {
                self.peers.insert(node.clone(), p);
                self.install(&node, stream, true, ctx, now);
                return;
            }
            Some(stream) if fx.goodbye_probe => {
                let c = &self.shared.config;
                tokio::spawn(conn::goodbye(
                    stream,
                    c.handshake.max_frame,
                    c.failure_timeout,
                ));
            }
            _ => {}
        }
        self.peers.insert(node, p);
    }

    fn report_reachable(&self, node: &NodeId, incarnation: u64) {
        tracing::debug!(%node, incarnation, "quarantined node answered: reported reachable");
        self.shared
            .provisioning
            .reachable(node.clone(), incarnation);
        metrics::counter!(M_REACHABLE, "node" => self.shared.node.clone()).increment(1);
    }

    fn on_frame(&mut self, node: NodeId, conn: u64, mut frame: Frame, now: Instant) {
        let max_frame = self.shared.config.handshake.max_frame;
        let timing = self.timing();
        let Some(mut p) = self.peers.remove(&node) else {
            return;
        };
        if p.conn.as_ref().is_some_and(|c| c.id == conn) {
            p.detector.touch(now.into_std());
            p.last_active = now;
            if let Some(m) = self.monitor.as_mut() {
                match from_frame(frame) {
                    Ok(msg) => {
                        m.on_message(&node, msg, now.into_std());
                        self.peers.insert(node, p);
                        return;
                    }
                    Err(other) => {
                        m.on_sign_of_life(&node, now.into_std());
                        frame = other;
                    }
                }
            }
            match frame {
                Frame::Heartbeat { seq } => {
                    // The peer's own rhythm: the detector learns from it.
                    p.detector.heartbeat(now.into_std());
                    p.send(&Frame::HeartbeatAck { seq }, max_frame);
                }
                Frame::HeartbeatAck { seq } => p.hb_acked = p.hb_acked.max(seq),
                Frame::Tell {
                    to,
                    type_id,
                    payload,
                } => self.shared.deliver(&node, &to, &type_id, &payload),
                Frame::Goodbye => {
                    // Ring mode: an idle close by the peer; frames of ours
                    // ask again.
                    p.demanded = false;
                    tracing::info!(%node, "peer said goodbye");
                    let fx = p.a.on_goodbye(now.into_std(), timing);
                    execute(&self.shared, &node, &mut p, &fx);
                }
                Frame::PingReq { .. }
                | Frame::PingReqAnswer { .. }
                | Frame::Vote { .. }
                | Frame::Verdict { .. } => {
                    // From a node in ring mode, while this one runs
                    // all-to-all: nothing to do with it.
                    tracing::debug!(%node, frame = frame.kind(), "ring monitoring frame ignored: this node is in all-to-all mode");
                }
                Frame::Reject { code, reason } => {
                    tracing::warn!(%node, code, reason, "peer rejected the association");
                    let fx = p.a.on_lost(now.into_std(), timing);
                    execute(&self.shared, &node, &mut p, &fx);
                }
                other => {
                    tracing::warn!(%node, frame = other.kind(), "handshake frame after the handshake: connection closed");
                    metrics::counter!(M_FRAMES_REFUSED, "node" => self.shared.node.clone(), "code" => PROTOCOL).increment(1);
                    let fx = p.a.on_lost(now.into_std(), timing);
                    execute(&self.shared, &node, &mut p, &fx);
                }
            }
        } else if p.draining.iter().any(|(id, _)| *id == conn) {
            // A replaced connection: what the peer sent on it before both
            // sides settled still counts; it changes no association.
            p.last_active = now;
            match frame {
                Frame::Tell {
                    to,
                    type_id,
                    payload,
                } => self.shared.deliver(&node, &to, &type_id, &payload),
                other => {
                    if let Some(m) = self.monitor.as_mut()
                        && let Ok(msg) = from_frame(other)
                    {
                        m.on_message(&node, msg, now.into_std());
                    }
                }
            }
        }
        self.peers.insert(node, p);
    }

    fn on_lost(&mut self, node: NodeId, conn: u64, error: WireError, now: Instant) {
        let Some(mut p) = self.peers.remove(&node) else {
            return;
        };
        p.draining.retain(|(id, _)| *id != conn);
        if p.conn.as_ref().is_some_and(|c| c.id == conn) {
            match conn::refused_code(&error) {
                Some(code) => {
                    metrics::counter!(M_FRAMES_REFUSED, "node" => self.shared.node.clone(), "code" => code.clone()).increment(1);
                    tracing::warn!(%node, code, %error, "bad frame: connection closed");
                }
                None => {
                    tracing::info!(%node, error = %conn::Chain(&error), "association connection lost")
                }
            }
            let fx = p.a.on_lost(now.into_std(), self.timing());
            execute(&self.shared, &node, &mut p, &fx);
        }
        self.peers.insert(node, p);
    }

    /// Publishes the associations (query, gauges) and the accept check's
    /// view.
    fn publish(&self) {
        let mut counts = [0u32; AssociationState::ALL.len()];
        let list: Vec<_> = self
            .peers
            .iter()
            .map(|(n, p)| {
                if let Some(i) = AssociationState::ALL.iter().position(|s| *s == p.a.state) {
                    counts[i] += 1;
                }
                (n.clone(), p.member.incarnation, p.a.state)
            })
            .collect();
        for (state, count) in AssociationState::ALL.iter().zip(counts) {
            metrics::gauge!(M_ASSOCIATIONS, "node" => self.shared.node.clone(), "state" => state.as_str()).set(f64::from(count));
        }
        *lock(&self.shared.associations) = list;
        let mut view = lock(&self.shared.view);
        view.topology = self.topology.clone();
        view.quarantined.clone_from(&self.quarantined);
        view.status = self.status;
        view.peers = self
            .peers
            .iter()
            .map(|(n, p)| {
                let failed = p.a.state == AssociationState::Failed;
                (n.clone(), (p.member.incarnation, failed))
            })
            .collect();
    }
}

impl RemotingActor {
    /// The follower's catch-up, then (the first time) the accept loop: the
    /// accept check must not answer from the empty starting view
    /// (connections wait in the listener's backlog meanwhile). A failed
    /// pull is tried again later; the accept loop starts all the same (the
    /// EventStream's next topology, or the retry, brings the view).
    async fn on_catch_up(&mut self, ctx: &mut Context<Self>) {
        let source = self.shared.source.clone();
        if let CatchUp::Retry(delay) = self.shared.follower.catch_up_once(Some(&source)).await {
            ctx.schedule_once(delay, Msg::CatchUp);
        }
        self.sync_view(ctx, Instant::now());
        if self.accept.is_none() {
            self.start_listening(ctx);
        }
    }

    /// Starts the accept loop, the TLS reloads and the ticks.
    fn start_listening(&mut self, ctx: &mut Context<Self>) {
        let accept = conn::accept_loop(
            self.listener.clone(),
            self.shared.clone(),
            ctx.myself().clone(),
        );
        self.accept = Some(AbortOnDrop(tokio::spawn(accept)));
        if self.shared.tls.is_some() {
            let shared = self.shared.clone();
            self.tls_watch = Some(AbortOnDrop(tokio::spawn(async move {
                let Some(tls) = &shared.tls else { return };
                let mut every =
                    tokio::time::interval(tls.config.reload_check.max(Duration::from_millis(10)));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                every.tick().await;
                loop {
                    every.tick().await;
                    // A failure is logged by `reload` and the old material stays.
                    let _ = tls.reload(false);
                }
            })));
        }
        ctx.schedule_once(self.tick_every(), Msg::Tick);
        tracing::info!(
            node = %self.shared.local.node_id,
            address = ?self.listener.local_addr().ok(),
            "remoting listening"
        );
    }
}

impl Actor for RemotingActor {
    type Msg = Msg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> HandlerResult {
        // A restarted instance starts from scratch.
        lock(&self.shared.writers).clear();
        // The first instance's catch-up is sent by `spawn` once the
        // subscriptions are made (pulling before subscribing would miss a
        // publication in between); a restarted instance resumes from the
        // follower's view (pulling only if no pull has succeeded yet).
        if ctx.restart_count() > 0 {
            let _ = ctx.myself().tell(Msg::CatchUp);
        }
        Ok(())
    }

    async fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) -> HandlerResult {
        let now = Instant::now();
        // Frames are many and change no association: their signs of life
        // reach the per-peer gauges at the next tick.
        let monitor_tick = matches!(msg, Msg::MonitorTick(_));
        let peer_gauges = !matches!(msg, Msg::Frame { .. }) && !monitor_tick;
        match msg {
            Msg::Topology(t) => self.on_topology(t, ctx, now),
            Msg::Quarantined(q) => self.on_quarantined(q, ctx, now),
            Msg::Tick => {
                self.on_tick(ctx, now);
                ctx.schedule_once(self.tick_every(), Msg::Tick);
            }
            Msg::Demand(node) => self.on_demand(node, ctx, now),
            Msg::MonitorTick(at) => {
                if self.monitor_wake == Some(at) {
                    self.monitor_wake = None;
                }
                if let Some(m) = self.monitor.as_mut() {
                    m.tick(now.into_std());
                }
            }
            Msg::CatchUp => self.on_catch_up(ctx).await,
            Msg::Accepted { peer, stream } => self.on_accepted(peer, stream, ctx, now),
            Msg::Dialed {
                node,
                attempt,
                result,
            } => self.on_dialed(node, attempt, result, ctx, now),
            Msg::Frame { node, conn, frame } => self.on_frame(node, conn, frame, now),
            Msg::Lost { node, conn, error } => self.on_lost(node, conn, error, now),
        }
        self.drive(ctx, now);
        // A monitoring deadline changes no association (a verdict relay
        // that opens one is published at the next tick, one heartbeat
        // interval later at most): no O(N) work per wake-up.
        if !monitor_tick {
            self.publish();
        }
        if peer_gauges {
            self.publish_peers(now);
        }
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.accept = None;
        let mut writers = Vec::new();
        let goodbye = !self
            .shared
            .crashed
            .load(std::sync::atomic::Ordering::SeqCst);
        for (node, mut p) in std::mem::take(&mut self.peers) {
            writers.extend(close(&self.shared, &node, &mut p, goodbye));
        }
        lock(&self.shared.writers).clear();
        self.publish();
        self.publish_peers(Instant::now());
        let flush = async {
            for w in writers {
                let _ = w.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), flush).await;
        tracing::info!(node = %self.shared.local.node_id, "remoting stopped");
    }
}

/// A monitoring message as its wire frame (a probe is today's `Heartbeat`).
fn to_frame(msg: MonitorMsg) -> Frame {
    match msg {
        MonitorMsg::Probe { seq } => Frame::Heartbeat { seq },
        MonitorMsg::Ack { seq } => Frame::HeartbeatAck { seq },
        MonitorMsg::PingReq {
            seq,
            target,
            incarnation,
        } => Frame::PingReq {
            seq,
            target,
            incarnation,
        },
        MonitorMsg::PingReqAnswer {
            seq,
            target,
            reached,
        } => Frame::PingReqAnswer {
            seq,
            target,
            reached,
        },
        MonitorMsg::Vote {
            target,
            incarnation,
            suspect,
        } => Frame::Vote {
            target,
            incarnation,
            suspect,
        },
        MonitorMsg::Verdict(v) => Frame::Verdict {
            target: v.target,
            incarnation: v.incarnation,
            voters: v.voters,
            span: v.span,
            backward: v.backward,
        },
    }
}

/// The monitoring message a frame carries; any other frame back.
fn from_frame(frame: Frame) -> Result<MonitorMsg, Frame> {
    Ok(match frame {
        Frame::Heartbeat { seq } => MonitorMsg::Probe { seq },
        Frame::HeartbeatAck { seq } => MonitorMsg::Ack { seq },
        Frame::PingReq {
            seq,
            target,
            incarnation,
        } => MonitorMsg::PingReq {
            seq,
            target,
            incarnation,
        },
        Frame::PingReqAnswer {
            seq,
            target,
            reached,
        } => MonitorMsg::PingReqAnswer {
            seq,
            target,
            reached,
        },
        Frame::Vote {
            target,
            incarnation,
            suspect,
        } => MonitorMsg::Vote {
            target,
            incarnation,
            suspect,
        },
        Frame::Verdict {
            target,
            incarnation,
            voters,
            span,
            backward,
        } => MonitorMsg::Verdict(crate::monitoring::Verdict {
            target,
            incarnation,
            voters,
            span,
            backward,
        }),
        other => return Err(other),
    })
}

#[cfg(test)]
mod tests {
    use super::stalled;
    use std::time::Duration;

    /// Issue 16, FS-1: a tick late by more than half the failure timeout
    /// (and several intervals) means this process stalled; ordinary jitter
    /// does not.
    #[test]
    fn fs1_a_late_tick_is_a_stall_and_jitter_is_not() {
        let ms = Duration::from_millis;
        let (tick, timeout) = (ms(100), ms(1000));
        assert!(!stalled(ms(100), tick, timeout));
        assert!(!stalled(ms(350), tick, timeout));
        assert!(!stalled(ms(500), tick, timeout));
        assert!(stalled(ms(501), tick, timeout));
        assert!(stalled(ms(6000), tick, timeout));
        // A tick interval close to the timeout: four intervals are needed.
        assert!(!stalled(ms(3000), ms(1000), ms(1200)));
        assert!(stalled(ms(4001), ms(1000), ms(1200)));
    }

    /// Issue 17: every monitoring message survives its frame, through the
    /// real encoder and decoder; a probe and its ack are today's
    /// `Heartbeat` and `HeartbeatAck` (so an all-to-all node of this build
    /// answers a ring node's probes), and other frames are not taken.
    #[test]
    fn i17_monitoring_messages_round_trip_through_their_frames() {
        use crate::monitoring::{MonitorMsg, Verdict};
        use crate::wire::{DEFAULT_MAX_FRAME, Frame, encode_frame};
        use cluster_core::NodeId;

        let n = |s: &str| NodeId::new(s).unwrap();
        let msgs = vec![
            MonitorMsg::Probe { seq: 1 },
            MonitorMsg::Ack { seq: 2 },
            MonitorMsg::PingReq {
                seq: 3,
                target: n("x"),
                incarnation: 4,
            },
            MonitorMsg::PingReqAnswer {
                seq: 5,
                target: n("x"),
                reached: false,
            },
            MonitorMsg::Vote {
                target: n("x"),
                incarnation: 6,
                suspect: true,
            },
            MonitorMsg::Verdict(Verdict {
                target: n("x"),
                incarnation: 7,
                voters: vec![n("a"), n("b"), n("c")],
                span: 9,
                backward: true,
            }),
        ];
        for msg in msgs {
            let frame = super::to_frame(msg.clone());
            let bytes = encode_frame(&frame, DEFAULT_MAX_FRAME).unwrap();
            let decoded: Frame = rmp_serde::from_slice(&bytes[4..]).unwrap();
            assert_eq!(super::from_frame(decoded).unwrap(), msg);
        }
        assert!(matches!(
            super::to_frame(MonitorMsg::Probe { seq: 1 }),
            Frame::Heartbeat { seq: 1 }
        ));
        assert!(super::from_frame(Frame::Goodbye).is_err());
        // A node id that is not valid does not decode (the frame is refused).
        let bad = encode_frame(
            &Frame::Vote {
                target: n("x"),
                incarnation: 1,
                suspect: true,
            },
            DEFAULT_MAX_FRAME,
        )
        .unwrap();
        let mut bad = bad[4..].to_vec();
        let at = bad.iter().position(|b| *b == b'x').unwrap();
        bad[at] = b' ';
        assert!(rmp_serde::from_slice::<Frame>(&bad).is_err());
    }
}
