//! The discrete-event loop, the nodes, the provider model and the network
//! model (see the [crate doc](crate) for the model and its limits).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cluster::failure_detector::{DetectorConfig, FailureDetector};
use cluster::monitoring::{MonitorMsg, Monitoring, MonitoringConfig, MonitoringMode};
use cluster_core::{
    Member, MemberAddress, NodeId, ProviderDescriptor, ProviderId, ProvisioningStatus, Snapshot,
    Topology,
};
use provisioning_actors::ProvisioningConfig;
use provisioning_actors::provider_actor::ProviderEvent;
use provisioning_actors::provisioning_core::{
    CoreSettings, Event as ProvisioningEvent, ProviderSpec, ProvisioningCore,
};

/// Simulated time: nanoseconds since the start of the run.
pub type Nanos = u64;

/// One millisecond in [`Nanos`].
pub const MS: Nanos = 1_000_000;
/// One second in [`Nanos`].
pub const SEC: Nanos = 1_000_000_000;

fn nanos(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Which failure detection the simulated nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The ring of k monitors with votes and a quorum (the `Monitoring`
    /// core).
    Ring,
    /// Today's scheme: every node heartbeats every other member and
    /// reports on its own detector's suspicion.
    AllToAll,
}

impl Mode {
    /// `ring` or `all-to-all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ring => "ring",
            Self::AllToAll => "all-to-all",
        }
    }
}

/// Correlated loss: the Gilbert–Elliott model per directed link, in time.
/// A link alternates between a good state (no loss) and a bad state (loss
/// `loss_in_bad`); the time in each state is exponential, with means
/// chosen so that the long-run loss is `average_loss`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Burst {
    /// Long-run loss probability (the bad state's share of time × its loss).
    pub average_loss: f64,
    /// Loss probability in the bad state.
    pub loss_in_bad: f64,
    /// Mean duration of a bad period.
    pub mean_bad: Duration,
}

impl Burst {
    /// Mean duration of a good period.
    pub fn mean_good(&self) -> Duration {
        let bad_share = (self.average_loss / self.loss_in_bad).clamp(1e-6, 1.0 - 1e-6);
        self.mean_bad.mul_f64((1.0 - bad_share) / bad_share)
    }
}

/// The parameters of one simulated cluster.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Nodes at the start.
    pub nodes: usize,
    /// Nodes that exist but have not started (they can [`Sim::join`]
    /// later), numbered after the `nodes` started ones.
    pub spare: usize,
    /// The seed of the one RNG every draw comes from.
    pub seed: u64,
    /// Ring monitoring or today's all-to-all heartbeats.
    pub mode: Mode,
    /// The ring's parameters (mode ring).
    pub monitoring: MonitoringConfig,
    /// Legacy mode: the heartbeat interval (Remoting's default 1 s).
    pub heartbeat_interval: Duration,
    /// Legacy mode: the timeout detector's failure timeout (Remoting's
    /// default 5 s).
    pub failure_timeout: Duration,
    /// Independent loss probability of each message.
    pub loss: f64,
    /// Correlated loss, in place of `loss` when set.
    pub burst: Option<Burst>,
    /// TCP's view of loss: a lost message is retransmitted after 200 ms
    /// (doubling while the retransmission is lost too) on its FIFO link,
    /// delaying the messages behind it, instead of being lost (design
    /// §4.2, `--loss-as-delay`). Faults (cuts, partitions) still lose.
    pub loss_as_delay: bool,
    /// Fixed part of a link's latency (default 0.5 ms).
    pub latency_base: Duration,
    /// Uniform jitter on top of it (default 0–1.5 ms).
    pub latency_jitter: Duration,
    /// When the provider drops a crashed node's registration (an etcd
    /// lease, default 4 s); `None`: never (static seeds).
    pub lease_ttl: Option<Duration>,
    /// Each node's provider watch delay is drawn once, uniform in this
    /// range (default 5–50 ms).
    pub watch_delay: (Duration, Duration),
    /// A send to a crashed process is refused after this long (a refused
    /// connection); the core then hears `on_unsendable` for a verdict.
    pub refused_after: Duration,
    /// Ring mode only: run the real [`ProvisioningCore`] on every node
    /// (design stage 4, `--provisioning`). The provider's table reaches it
    /// as snapshots (one shared `Arc<[Member]>` per table version), the
    /// monitoring core's reports become `ProvisioningCore::quarantine`,
    /// and the node's view is the core's published topology, fed back to
    /// the monitoring core as Remoting does (`on_quarantined`, then
    /// `on_topology` while the status is Active). Off: the node's view is
    /// the table minus its own quarantines.
    pub provisioning: bool,
    /// With the provisioning core: each node's provider re-sends its last
    /// snapshot this often (the in-memory provider's default `keepalive_ms`,
    /// 5 s; it must stay below the failover silence timeout, 15 s, or the
    /// core turns Degraded in a quiet cluster).
    pub keepalive: Duration,
}

impl SimConfig {
    /// The defaults of design §4.2 for `nodes` nodes.
    pub fn new(nodes: usize, seed: u64, mode: Mode) -> Self {
        Self {
            nodes,
            spare: 0,
            seed,
            mode,
            monitoring: MonitoringConfig {
                mode: MonitoringMode::Ring,
                ..MonitoringConfig::default()
            },
            heartbeat_interval: Duration::from_secs(1),
            failure_timeout: Duration::from_secs(5),
            loss: 0.0,
            burst: None,
            loss_as_delay: false,
            latency_base: Duration::from_micros(500),
            latency_jitter: Duration::from_micros(1500),
            lease_ttl: Some(Duration::from_secs(4)),
            watch_delay: (Duration::from_millis(5), Duration::from_millis(50)),
            refused_after: Duration::from_millis(2),
            provisioning: false,
            keepalive: Duration::from_secs(5),
        }
    }
}

/// What travels between simulated nodes.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Ring mode: a monitoring core's message.
    Monitor(MonitorMsg),
    /// Legacy mode: `Frame::Heartbeat`.
    Heartbeat(u64),
    /// Legacy mode: `Frame::HeartbeatAck`.
    HeartbeatAck(u64),
}

/// The message kinds counted per node, in table order.
pub const KINDS: [&str; 8] = [
    "probe",
    "ack",
    "ping_req",
    "ping_req_answer",
    "vote",
    "verdict",
    "heartbeat",
    "heartbeat_ack",
];

impl Payload {
    /// The index of this message's kind in [`KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            Self::Monitor(m) => match m {
                MonitorMsg::Probe { .. } => 0,
                MonitorMsg::Ack { .. } => 1,
                MonitorMsg::PingReq { .. } => 2,
                MonitorMsg::PingReqAnswer { .. } => 3,
                MonitorMsg::Vote { .. } => 4,
                MonitorMsg::Verdict(_) => 5,
            },
            Self::Heartbeat(_) => 6,
            Self::HeartbeatAck(_) => 7,
        }
    }
}

/// Counts per kind (indexed like [`KINDS`]).
pub type KindCounts = [u64; KINDS.len()];

/// A change of the provider's member table, as one node receives it.
#[derive(Clone, Debug)]
enum Change {
    /// The whole table (a node's first read after it starts).
    Snapshot(Vec<(u32, u64)>),
    /// A registration (or a re-registration with a new incarnation).
    Put(u32, u64),
    /// A registration removed (a leave, or an expired lease).
    Remove(u32, u64),
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: u32,
        to_inc: u64,
        from: u32,
        payload: Payload,
    },
    Wake {
        node: u32,
        inc: u64,
        generation: u64,
    },
    LegacyTick {
        node: u32,
        inc: u64,
    },
    Provider {
        node: u32,
        inc: u64,
        change: Change,
        /// With the provisioning core: the table's version after the
        /// change, as the provider's snapshot.
        list: Option<Arc<[Member]>>,
    },
    ProvisioningWake {
        node: u32,
        inc: u64,
        generation: u64,
    },
    Keepalive {
        node: u32,
        inc: u64,
    },
    LeaseExpire {
        node: u32,
        inc: u64,
    },
    Unsendable {
        node: u32,
        inc: u64,
        to: u32,
        msg: MonitorMsg,
    },
}

impl Ev {
    /// The node (and incarnation) this event is for, if it is a node's.
    fn target(&self) -> Option<(u32, u64)> {
        match self {
            Ev::Deliver { to, to_inc, .. } => Some((*to, *to_inc)),
            Ev::Wake { node, inc, .. }
            | Ev::LegacyTick { node, inc }
            | Ev::Provider { node, inc, .. }
            | Ev::ProvisioningWake { node, inc, .. }
            | Ev::Keepalive { node, inc }
            | Ev::Unsendable { node, inc, .. } => Some((*node, *inc)),
            Ev::LeaseExpire { .. } => None,
        }
    }
}

struct Queued {
    at: Nanos,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    // A min-heap on (time, sequence number).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Whether a simulated process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Running.
    Up,
    /// Stopped (SIGSTOP, a VM freeze): its events are held until resume.
    Paused,
    /// Crashed: its events are dropped; a restart is a new incarnation.
    Crashed,
}

/// Legacy mode: one peer's association and detector.
struct LegacyPeer {
    incarnation: u64,
    detector: FailureDetector,
    hb_sent: u64,
}

/// Legacy mode: the Remoting actor's heartbeat part.
struct Legacy {
    peers: BTreeMap<u32, LegacyPeer>,
    last_tick: Option<Nanos>,
}

/// One simulated node.
struct Node {
    inc: u64,
    state: NodeState,
    held: Vec<Queued>,
    /// The provider's member table as this node last received it.
    table: BTreeMap<u32, u64>,
    /// Incarnations this node quarantined (out of its view until the
    /// table drops them).
    quarantined: HashSet<(u32, u64)>,
    core: Option<Monitoring>,
    legacy: Option<Legacy>,
    /// With [`SimConfig::provisioning`]: the node's provisioning core.
    provisioning: Option<Box<ProvisioningNode>>,
    wake_generation: u64,
    watch_delay: Nanos,
}

/// A node's [`ProvisioningCore`] and what its driver keeps.
struct ProvisioningNode {
    core: ProvisioningCore,
    /// The provider "actor"'s instance (it starts at once in the model).
    instance: u64,
    /// The last published topology.
    topology: Arc<Topology>,
    /// The provider's last snapshot to this node (a keepalive re-sends it).
    last_list: Option<Arc<[Member]>>,
    /// The timer armed (`Ready::wake_at`), if any, and its generation: a
    /// wake of another generation is stale.
    wake_at: Option<Nanos>,
    wake_generation: u64,
    /// When its timer last fired: a timer asked for again at or before
    /// that instant is pushed 1 µs on (counted in `spin_guards`).
    fired_at: Option<Nanos>,
}

/// One quarantine report: `reporter` (at `reporter_inc`) quarantined
/// `(node, incarnation)` in its own view at `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRecord {
    /// When.
    pub at: Nanos,
    /// The node whose view dropped the target.
    pub reporter: u32,
    /// The reporter's incarnation.
    pub reporter_inc: u64,
    /// The quarantined node.
    pub node: u32,
    /// Its incarnation.
    pub incarnation: u64,
    /// The reporter's own quorum (`true`), a relayed verdict, or (legacy
    /// mode) its own detector.
    pub local: bool,
}

/// A crash that the simulation injected, with what followed.
#[derive(Clone, Debug)]
pub struct CrashRecord {
    /// The crashed node.
    pub node: u32,
    /// Its incarnation.
    pub incarnation: u64,
    /// When it crashed.
    pub at: Nanos,
    /// The first quarantine report about it, by any node.
    pub first_report: Option<Nanos>,
    /// Per node that was up at the crash: when its view dropped the
    /// crashed incarnation (a report or the provider's table).
    pub removed_at: BTreeMap<u32, Nanos>,
    /// The nodes up when it crashed.
    pub up_then: Vec<u32>,
}

/// Network faults in force.
#[derive(Default)]
struct Faults {
    cut: HashSet<(u32, u32)>,
    out_cut: HashSet<u32>,
    in_cut: HashSet<u32>,
    /// Partition side per node, when partitioned.
    sides: Option<Vec<u8>>,
}

/// The simulated cluster: the event loop and everything it drives.
pub struct Sim {
    config: SimConfig,
    base: Instant,
    now: Nanos,
    seq: u64,
    queue: BinaryHeap<Queued>,
    rng: fastrand::Rng,
    ids: Vec<NodeId>,
    index: HashMap<NodeId, u32>,
    nodes: Vec<Node>,
    /// The provider's member table.
    table: BTreeMap<u32, u64>,
    /// With the provisioning core: the table as members, one shared list
    /// per version, and each node's address.
    list: Arc<[Member]>,
    addresses: Vec<MemberAddress>,
    provider: ProviderId,
    next_inc: u64,
    /// Per directed link: the last arrival time (FIFO per link).
    last_arrival: Vec<Nanos>,
    /// Per directed link: the Gilbert–Elliott state (bad, until).
    burst_state: Vec<(bool, Nanos)>,
    faults: Faults,
    /// Counters per node (by index), cumulative.
    sent: Vec<KindCounts>,
    received: Vec<KindCounts>,
    /// Per node: the distinct peers it sent to since the last
    /// [`Sim::reset_peer_sets`] (a bitmap: associations in use).
    peers_used: Vec<Vec<u64>>,
    lost: u64,
    reports: Vec<ReportRecord>,
    crashes: Vec<CrashRecord>,
    /// Open crash records, by (node, incarnation).
    open_crashes: HashMap<(u32, u64), usize>,
    /// Events handled.
    events: u64,
    /// Wakes the core asked for at or before `now` more than once in a row
    /// (pushed 1 µs ahead; a core that spins would show here).
    spin_guards: u64,
    last_wake: Vec<(Nanos, u32)>,
}

impl Sim {
    /// A cluster of `config.nodes` nodes, all registered at time 0 (each
    /// reads the table after its watch delay).
    pub fn new(config: SimConfig) -> Self {
        let started = config.nodes;
        let n = config.nodes + config.spare;
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let ids: Vec<NodeId> = (0..n)
            .map(|i| NodeId::new(format!("n{i:04}")).expect("a valid node id"))
            .collect();
        let index = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        let (lo, hi) = (nanos(config.watch_delay.0), nanos(config.watch_delay.1));
        let nodes = (0..n)
            .map(|_| Node {
                inc: 0,
                state: NodeState::Crashed,
                held: Vec::new(),
                table: BTreeMap::new(),
                quarantined: HashSet::new(),
                core: None,
                legacy: None,
                provisioning: None,
                wake_generation: 0,
                watch_delay: rng.u64(lo..=hi.max(lo)),
            })
            .collect();
        assert!(
            !config.provisioning || config.mode == Mode::Ring,
            "the provisioning core is simulated in ring mode only"
        );
        let addresses = (0..n)
            .map(|i| {
                MemberAddress::new(
                    format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                    4000,
                )
                .expect("a valid address")
            })
            .collect();
        let burst_state = if config.burst.is_some() {
            vec![(false, 0); n * n]
        } else {
            Vec::new()
        };
        let mut sim = Self {
            base: Instant::now(),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            rng,
            ids,
            index,
            nodes,
            table: BTreeMap::new(),
            list: Arc::from(Vec::new()),
            addresses,
            provider: ProviderId::new("sim").expect("a valid provider id"),
            next_inc: 1,
            last_arrival: vec![0; n * n],
            burst_state,
            faults: Faults::default(),
            sent: vec![[0; KINDS.len()]; n],
            received: vec![[0; KINDS.len()]; n],
            peers_used: vec![vec![0; n.div_ceil(64)]; n],
            lost: 0,
            reports: Vec::new(),
            crashes: Vec::new(),
            open_crashes: HashMap::new(),
            events: 0,
            spin_guards: 0,
            last_wake: vec![(u64::MAX, 0); n],
            config,
        };
        for i in 0..started as u32 {
            let inc = sim.take_inc();
            sim.table.insert(i, inc);
        }
        sim.rebuild_list();
        for i in 0..started as u32 {
            let inc = sim.table[&i];
            sim.boot(i, inc);
        }
        sim
    }

    // ---- queries ---------------------------------------------------------

    /// The simulated time now.
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there is no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A node's id (`n0042`).
    pub fn id(&self, node: u32) -> &NodeId {
        &self.ids[node as usize]
    }

    /// A node's current incarnation.
    pub fn incarnation(&self, node: u32) -> u64 {
        self.nodes[node as usize].inc
    }

    /// Whether a node is up, paused or crashed.
    pub fn state(&self, node: u32) -> NodeState {
        self.nodes[node as usize].state
    }

    /// A node's monitoring core (ring mode, while it runs).
    pub fn core(&self, node: u32) -> Option<&Monitoring> {
        self.nodes[node as usize].core.as_ref()
    }

    /// The members (and incarnations) in `node`'s view now.
    pub fn view(&self, node: u32) -> Vec<(u32, u64)> {
        let n = &self.nodes[node as usize];
        if let Some(p) = n.provisioning.as_ref() {
            return p
                .topology
                .members
                .iter()
                .filter_map(|m| Some((*self.index.get(&m.node_id)?, m.incarnation)))
                .collect();
        }
        n.table
            .iter()
            .filter(|(i, inc)| !n.quarantined.contains(&(**i, **inc)))
            .map(|(i, inc)| (*i, *inc))
            .collect()
    }

    /// With the provisioning core: the topology `node` published last.
    pub fn topology(&self, node: u32) -> Option<&Arc<Topology>> {
        Some(&self.nodes[node as usize].provisioning.as_ref()?.topology)
    }

    /// Every quarantine report so far, in order.
    pub fn reports(&self) -> &[ReportRecord] {
        &self.reports
    }

    /// Every crash injected so far.
    pub fn crashes(&self) -> &[CrashRecord] {
        &self.crashes
    }

    /// Messages sent per node (cumulative, by kind).
    pub fn sent(&self) -> &[KindCounts] {
        &self.sent
    }

    /// Messages received per node (cumulative, by kind).
    pub fn received(&self) -> &[KindCounts] {
        &self.received
    }

    /// Messages lost by the network so far (loss and faults).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Events handled so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// How often a core asked for a wake at or before `now` repeatedly.
    pub fn spin_guards(&self) -> u64 {
        self.spin_guards
    }

    /// Per node: how many distinct peers it sent to since the last
    /// [`Sim::reset_peer_sets`].
    pub fn peers_used(&self) -> Vec<u32> {
        self.peers_used
            .iter()
            .map(|b| b.iter().map(|w| w.count_ones()).sum())
            .collect()
    }

    /// Starts counting distinct peers afresh.
    pub fn reset_peer_sets(&mut self) {
        for b in &mut self.peers_used {
            b.iter_mut().for_each(|w| *w = 0);
        }
    }

    /// The one RNG (scenarios draw their choices from it too).
    pub fn rng(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }

    // ---- faults ----------------------------------------------------------

    /// Crashes `node`: its events are dropped from now on. With a lease,
    /// the provider drops its registration `lease_ttl` later.
    pub fn crash(&mut self, node: u32) {
        let n = &mut self.nodes[node as usize];
        if n.state == NodeState::Crashed {
            return;
        }
        n.state = NodeState::Crashed;
        n.core = None;
        n.legacy = None;
        n.provisioning = None;
        n.held.clear();
        let inc = n.inc;
        let up_then: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|i| *i != node && self.nodes[*i as usize].state != NodeState::Crashed)
            .collect();
        self.open_crashes.insert((node, inc), self.crashes.len());
        self.crashes.push(CrashRecord {
            node,
            incarnation: inc,
            at: self.now,
            first_report: None,
            removed_at: BTreeMap::new(),
            up_then,
        });
        if let Some(ttl) = self.config.lease_ttl {
            let at = self.now + nanos(ttl);
            self.push(at, Ev::LeaseExpire { node, inc });
        }
    }

    /// Restarts a crashed `node` as a new incarnation: it registers (the
    /// provider's entry is replaced) and reads the table after its watch
    /// delay. The same as a [`Sim::join`]: only the fault schedule tells
    /// the two apart.
    pub fn restart(&mut self, node: u32) {
        self.join(node);
    }

    /// Starts a node that never ran or left (a join): a new incarnation,
    /// registered, reading the table after its watch delay.
    pub fn join(&mut self, node: u32) {
        if self.nodes[node as usize].state != NodeState::Crashed {
            return;
        }
        let inc = self.take_inc();
        self.provider_put(node, inc);
        self.boot(node, inc);
    }

    /// A graceful leave: the provider removes the registration at once
    /// and the process stops (not a crash: no crash record).
    pub fn leave(&mut self, node: u32) {
        let n = &mut self.nodes[node as usize];
        if n.state == NodeState::Crashed {
            return;
        }
        n.state = NodeState::Crashed;
        n.core = None;
        n.legacy = None;
        n.provisioning = None;
        n.held.clear();
        let inc = n.inc;
        if self.table.get(&node) == Some(&inc) {
            self.table.remove(&node);
            self.rebuild_list();
            self.broadcast(Change::Remove(node, inc));
        }
    }

    /// The provider's member table now (node, incarnation).
    pub fn table(&self) -> Vec<(u32, u64)> {
        self.table.iter().map(|(i, inc)| (*i, *inc)).collect()
    }

    /// Pauses `node` (SIGSTOP): its events are held until [`Sim::resume`].
    pub fn pause(&mut self, node: u32) {
        let n = &mut self.nodes[node as usize];
        if n.state == NodeState::Up {
            n.state = NodeState::Paused;
        }
    }

    /// Resumes a paused `node`: its held events are delivered now, in
    /// order; its next input sees the gap (the core's stall rule).
    pub fn resume(&mut self, node: u32) {
        let n = &mut self.nodes[node as usize];
        if n.state != NodeState::Paused {
            return;
        }
        n.state = NodeState::Up;
        let held = std::mem::take(&mut n.held);
        let now = self.now;
        for q in held {
            self.push(now, q.ev);
        }
    }

    /// Cuts (or restores) the directed link `from → to`.
    pub fn set_link_cut(&mut self, from: u32, to: u32, cut: bool) {
        if cut {
            self.faults.cut.insert((from, to));
        } else {
            self.faults.cut.remove(&(from, to));
        }
    }

    /// Cuts (or restores) everything `node` sends.
    pub fn set_outbound_cut(&mut self, node: u32, cut: bool) {
        if cut {
            self.faults.out_cut.insert(node);
        } else {
            self.faults.out_cut.remove(&node);
        }
    }

    /// Cuts (or restores) everything `node` receives.
    pub fn set_inbound_cut(&mut self, node: u32, cut: bool) {
        if cut {
            self.faults.in_cut.insert(node);
        } else {
            self.faults.in_cut.remove(&node);
        }
    }

    /// Partitions the nodes by side (a message between different sides is
    /// lost), or heals with `None`.
    pub fn set_partition(&mut self, sides: Option<Vec<u8>>) {
        self.faults.sides = sides;
    }

    // ---- the loop ----------------------------------------------------------

    /// Handles every event up to and including time `t`; `now` is `t` after.
    pub fn run_until(&mut self, t: Nanos) {
        while self.queue.peek().is_some_and(|q| q.at <= t) {
            let Some(q) = self.queue.pop() else { break };
            self.now = q.at;
            self.events += 1;
            self.handle(q);
        }
        self.now = self.now.max(t);
    }

    fn push(&mut self, at: Nanos, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn take_inc(&mut self) -> u64 {
        let inc = self.next_inc;
        self.next_inc += 1;
        inc
    }

    fn instant(&self, t: Nanos) -> Instant {
        self.base + Duration::from_nanos(t)
    }

    fn handle(&mut self, q: Queued) {
        if let Some((node, inc)) = q.ev.target() {
            let n = &mut self.nodes[node as usize];
            if n.inc != inc || n.state == NodeState::Crashed {
                return;
            }
            if n.state == NodeState::Paused {
                n.held.push(q);
                return;
            }
        }
        let now = self.instant(self.now);
        match q.ev {
            Ev::Deliver {
                to, from, payload, ..
            } => {
                self.received[to as usize][payload.kind_index()] += 1;
                let from_id = self.ids[from as usize].clone();
                match payload {
                    Payload::Monitor(msg) => {
                        if let Some(core) = self.nodes[to as usize].core.as_mut() {
                            core.on_message(&from_id, msg, now);
                            self.drain(to);
                        }
                    }
                    Payload::Heartbeat(seq) => {
                        let mut ack = false;
                        if let Some(l) = self.nodes[to as usize].legacy.as_mut()
                            && let Some(p) = l.peers.get_mut(&from)
                        {
                            p.detector.heartbeat(now);
                            ack = true;
                        }
                        if ack {
                            self.send(to, from, Payload::HeartbeatAck(seq));
                        }
                    }
                    Payload::HeartbeatAck(_) => {
                        if let Some(l) = self.nodes[to as usize].legacy.as_mut()
                            && let Some(p) = l.peers.get_mut(&from)
                        {
                            p.detector.touch(now);
                        }
                    }
                }
            }
            Ev::Wake {
                node, generation, ..
            } => {
                if self.nodes[node as usize].wake_generation != generation {
                    return;
                }
                if let Some(core) = self.nodes[node as usize].core.as_mut() {
                    core.tick(now);
                    self.drain(node);
                }
            }
            Ev::LegacyTick { node, inc } => {
                let next = self.now + nanos(self.config.heartbeat_interval);
                self.push(next, Ev::LegacyTick { node, inc });
                self.legacy_tick(node);
            }
            Ev::Provider {
                node, change, list, ..
            } => self.apply_change(node, change, list),
            Ev::ProvisioningWake {
                node, generation, ..
            } => {
                let wall = self.wall();
                let Some(p) = self.nodes[node as usize].provisioning.as_mut() else {
                    return;
                };
                if p.wake_generation != generation {
                    return;
                }
                p.wake_at = None;
                p.fired_at = Some(self.now);
                p.core.tick(tokio::time::Instant::from_std(now), wall);
                self.provisioning_step(node);
                self.drain(node);
            }
            Ev::Keepalive { node, inc } => {
                let next = self.now + nanos(self.config.keepalive).max(1);
                self.push(next, Ev::Keepalive { node, inc });
                let list = self.nodes[node as usize]
                    .provisioning
                    .as_ref()
                    .and_then(|p| p.last_list.clone());
                if let Some(list) = list {
                    self.provider_snapshot(node, list);
                    self.provisioning_step(node);
                    self.drain(node);
                }
            }
            Ev::LeaseExpire { node, inc } => {
                if self.table.get(&node) == Some(&inc) {
                    self.table.remove(&node);
                    self.rebuild_list();
                    self.broadcast(Change::Remove(node, inc));
                }
            }
            Ev::Unsendable { node, to, msg, .. } => {
                let to_id = self.ids[to as usize].clone();
                if let Some(core) = self.nodes[node as usize].core.as_mut() {
                    core.on_unsendable(&to_id, msg, now);
                    self.drain(node);
                }
            }
        }
    }

    /// Starts the process of `node` at incarnation `inc`: a fresh core, the
    /// table read after its watch delay.
    fn boot(&mut self, node: u32, inc: u64) {
        let seed = self.rng.u64(..);
        let mode = self.config.mode;
        let monitoring = self.config.monitoring.clone();
        let id = self.ids[node as usize].clone();
        let interval = nanos(self.config.heartbeat_interval);
        let phase = self.rng.u64(0..interval.max(1));
        let n = &mut self.nodes[node as usize];
        n.inc = inc;
        n.state = NodeState::Up;
        n.held.clear();
        n.table.clear();
        n.quarantined.clear();
        n.wake_generation += 1;
        if self.config.provisioning {
            let local = Member::new(id.clone(), self.addresses[node as usize].clone(), inc);
            let settings = CoreSettings {
                local: Some(local),
                ..CoreSettings::from(&ProvisioningConfig::default())
            };
            let mut core = ProvisioningCore::new(settings, Arc::from(id.as_str()), seed);
            let spec = ProviderSpec {
                descriptor: ProviderDescriptor::new(self.provider.clone(), "sim", 0),
                disabled: None,
                can_register: true,
            };
            core.add(
                spec,
                tokio::time::Instant::from_std(self.base + Duration::from_nanos(self.now)),
            )
            .expect("a fresh core accepts its one provider");
            n.provisioning = Some(Box::new(ProvisioningNode {
                core,
                instance: 0,
                topology: Arc::new(Topology::starting()),
                last_list: None,
                wake_at: None,
                wake_generation: 0,
                fired_at: None,
            }));
        }
        match mode {
            Mode::Ring => n.core = Some(Monitoring::new(monitoring, id, seed)),
            Mode::AllToAll => {
                n.legacy = Some(Legacy {
                    peers: BTreeMap::new(),
                    last_tick: None,
                })
            }
        }
        let delay = n.watch_delay;
        let snapshot = self.table.iter().map(|(i, inc)| (*i, *inc)).collect();
        let at = self.now + delay;
        let list = self.config.provisioning.then(|| self.list.clone());
        self.push(
            at,
            Ev::Provider {
                node,
                inc,
                change: Change::Snapshot(snapshot),
                list,
            },
        );
        // The provider actor starts (Ready.start) before any snapshot.
        self.provisioning_step(node);
        if self.config.provisioning {
            // The first keepalive one period after the first read (no draw
            // from the RNG: the runs without the core stay event for event
            // the same).
            let at = at + nanos(self.config.keepalive).max(1);
            self.push(at, Ev::Keepalive { node, inc });
        }
        if mode == Mode::AllToAll {
            self.push(self.now + phase, Ev::LegacyTick { node, inc });
        }
    }

    /// The provider registers `(node, inc)` (replacing an older entry) and
    /// tells every node.
    fn provider_put(&mut self, node: u32, inc: u64) {
        self.table.insert(node, inc);
        self.rebuild_list();
        self.broadcast(Change::Put(node, inc));
    }

    /// With the provisioning core: the table's next version as one shared
    /// member list (sorted by node id, as the ids are zero-padded).
    fn rebuild_list(&mut self) {
        if !self.config.provisioning {
            return;
        }
        self.list = self
            .table
            .iter()
            .map(|(i, inc)| {
                Member::new(
                    self.ids[*i as usize].clone(),
                    self.addresses[*i as usize].clone(),
                    *inc,
                )
            })
            .collect();
    }

    /// The wall clock the provisioning cores see: the Unix epoch plus the
    /// simulated time.
    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.now)
    }

    fn broadcast(&mut self, change: Change) {
        let list = self.config.provisioning.then(|| self.list.clone());
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if n.state == NodeState::Crashed {
                continue;
            }
            let (inc, at) = (n.inc, self.now + n.watch_delay);
            self.push(
                at,
                Ev::Provider {
                    node: i as u32,
                    inc,
                    change: change.clone(),
                    list: list.clone(),
                },
            );
        }
    }

    fn apply_change(&mut self, node: u32, change: Change, list: Option<Arc<[Member]>>) {
        let n = &mut self.nodes[node as usize];
        let mut removed = Vec::new();
        match change {
            Change::Snapshot(members) => {
                n.table = members.into_iter().collect();
            }
            Change::Put(i, inc) => {
                if let Some(old) = n.table.insert(i, inc)
                    && old != inc
                {
                    removed.push((i, old));
                }
            }
            Change::Remove(i, inc) => {
                if n.table.get(&i) == Some(&inc) {
                    n.table.remove(&i);
                    removed.push((i, inc));
                }
            }
        }
        for r in &removed {
            n.quarantined.remove(r);
        }
        if let (true, Some(members)) = (n.provisioning.is_some(), list) {
            // The view is what the core publishes; removals are noted
            // there (`provisioning_step`).
            self.provider_snapshot(node, members);
            self.provisioning_step(node);
            self.drain(node);
            return;
        }
        for (i, inc) in removed {
            self.note_removed(node, i, inc);
        }
        self.view_changed(node);
    }

    /// With the provisioning core: the provider's snapshot `members` (a
    /// change, or a keepalive re-sending the same list) reaches `node`'s
    /// core.
    fn provider_snapshot(&mut self, node: u32, members: Arc<[Member]>) {
        let now = tokio::time::Instant::from_std(self.instant(self.now));
        let wall = self.wall();
        let Some(p) = self.nodes[node as usize].provisioning.as_mut() else {
            return;
        };
        p.last_list = Some(members.clone());
        let snapshot = Snapshot {
            members,
            observed_at: wall,
        };
        p.core.provider_event(
            &self.provider,
            p.instance,
            ProviderEvent::Snapshot(snapshot),
            now,
            wall,
        );
    }

    /// With the provisioning core: executes its `Ready` as the supervisor
    /// actor and Remoting would: the provider actor started, the local
    /// member registered again when asked, `RemoteNodeQuarantined` then
    /// `TopologyUpdated` to the monitoring core as the Remoting actor
    /// passes it (R4.3: the whole topology while Active; while Degraded
    /// only the departure of ring members, nobody new), the next timer.
    /// A re-registration is immediate here (the real one is a message to
    /// the provider actor), and no scenario makes a live node's own entry
    /// vanish, so that path is not exercised. Does not drain the
    /// monitoring core: the caller does.
    fn provisioning_step(&mut self, node: u32) {
        loop {
            let now_std = self.instant(self.now);
            let now = tokio::time::Instant::from_std(now_std);
            let wall = self.wall();
            let provider = self.provider.clone();
            let n = &mut self.nodes[node as usize];
            let inc = n.inc;
            let Some(p) = n.provisioning.as_mut() else {
                return;
            };
            let ready = p.core.ready();
            let started = !ready.start.is_empty();
            for s in &ready.start {
                p.instance = s.first_instance;
                p.core.provider_event(
                    &provider,
                    s.first_instance,
                    ProviderEvent::Started,
                    now,
                    wall,
                );
            }
            let mut topology = None;
            for e in ready.events {
                match e {
                    ProvisioningEvent::Quarantined(q) => {
                        if let Some(core) = n.core.as_mut() {
                            core.on_quarantined(&q.node, q.incarnation, now_std);
                        }
                    }
                    ProvisioningEvent::Topology(t) => {
                        if let Some(core) = n.core.as_mut() {
                            match t.topology.status {
                                ProvisioningStatus::Active => {
                                    core.on_topology(&t.topology, now_std);
                                }
                                ProvisioningStatus::Degraded => {
                                    core.on_degraded_topology(&t.topology, now_std);
                                }
                                _ => {}
                            }
                        }
                        topology = Some(t.topology);
                    }
                    _ => {}
                }
            }
            // One timer, re-armed only when its instant changes; none
            // cancels it (as the driver's).
            let mut at = ready
                .wake_at
                .map(|at| nanos(at.into_std().saturating_duration_since(self.base)).max(self.now));
            let mut spun = false;
            if let (Some(a), Some(fired)) = (at, p.fired_at)
                && a <= fired
            {
                at = Some(fired + 1_000);
                spun = true;
            }
            if at != p.wake_at {
                p.wake_at = at;
                p.wake_generation += 1;
                if let Some(at) = at {
                    let generation = p.wake_generation;
                    self.push(
                        at,
                        Ev::ProvisioningWake {
                            node,
                            inc,
                            generation,
                        },
                    );
                }
            }
            self.spin_guards += u64::from(spun);
            if let Some(t) = topology {
                self.published(node, t);
            }
            if !ready.reregister.is_empty() && self.table.get(&node) != Some(&inc) {
                self.provider_put(node, inc);
            }
            if !started {
                return;
            }
        }
    }

    /// `node` published `topology`: the open crashes its previous topology
    /// listed and this one does not are removed from its view now (a node
    /// that never listed one, as one started after the crash, records
    /// nothing, as without the provisioning core).
    fn published(&mut self, node: u32, topology: Arc<Topology>) {
        let Some(p) = self.nodes[node as usize].provisioning.as_mut() else {
            return;
        };
        let previous = std::mem::replace(&mut p.topology, topology);
        let current = &p.topology;
        let ids = &self.ids;
        let lists = |t: &Topology, target: u32, inc: u64| {
            t.member(&ids[target as usize])
                .is_some_and(|m| m.incarnation == inc)
        };
        let gone: Vec<usize> = self
            .open_crashes
            .iter()
            .filter(|((target, inc), _)| {
                lists(&previous, *target, *inc) && !lists(current, *target, *inc)
            })
            .map(|(_, c)| *c)
            .collect();
        for c in gone {
            self.crashes[c].removed_at.entry(node).or_insert(self.now);
        }
    }

    /// `node`'s view changed: tell its core (or its legacy peers).
    fn view_changed(&mut self, node: u32) {
        let now = self.instant(self.now);
        let ids = &self.ids;
        let n = &mut self.nodes[node as usize];
        let table = &n.table;
        let quarantined = &n.quarantined;
        let view = table
            .iter()
            .filter(|(i, inc)| !quarantined.contains(&(**i, **inc)))
            .map(|(i, inc)| (*i, *inc));
        if let Some(core) = n.core.as_mut() {
            core.on_view(view.map(|(i, inc)| (&ids[i as usize], inc)), now);
            self.drain(node);
        } else if let Some(l) = n.legacy.as_mut() {
            let view: BTreeMap<u32, u64> = view.filter(|(i, _)| *i != node).collect();
            l.peers.retain(|i, p| view.get(i) == Some(&p.incarnation));
            let detector = DetectorConfig::Timeout(self.config.failure_timeout);
            for (i, inc) in view {
                l.peers.entry(i).or_insert_with(|| {
                    // The association comes up at once (no handshake in
                    // the model): the detector starts from now.
                    let mut detector = FailureDetector::new(detector);
                    detector.touch(now);
                    LegacyPeer {
                        incarnation: inc,
                        detector,
                        hb_sent: 0,
                    }
                });
            }
        }
    }

    /// After an input to `node`'s core: sends, reports (each applied to the
    /// node's own view, which is an input again) and the next wake.
    fn drain(&mut self, node: u32) {
        loop {
            let now = self.instant(self.now);
            let Some(core) = self.nodes[node as usize].core.as_mut() else {
                return;
            };
            let ready = core.ready();
            for (to, msg) in ready.send {
                let Some(&to) = self.index.get(&to) else {
                    continue;
                };
                self.send(node, to, Payload::Monitor(msg));
            }
            if ready.reports.is_empty() {
                if let Some(at) = ready.wake_at {
                    let mut at = nanos(at.saturating_duration_since(self.base)).max(self.now);
                    let (last, count) = self.last_wake[node as usize];
                    if at <= self.now && last == self.now {
                        if count >= 100 {
                            self.spin_guards += 1;
                            at = self.now + 1_000;
                        }
                        self.last_wake[node as usize] = (self.now, count + 1);
                    } else if at <= self.now {
                        self.last_wake[node as usize] = (self.now, 1);
                    }
                    let n = &mut self.nodes[node as usize];
                    n.wake_generation += 1;
                    let (inc, generation) = (n.inc, n.wake_generation);
                    self.push(
                        at,
                        Ev::Wake {
                            node,
                            inc,
                            generation,
                        },
                    );
                }
                return;
            }
            let provisioning = self.nodes[node as usize].provisioning.is_some();
            for r in ready.reports {
                let Some(&target) = self.index.get(&r.node) else {
                    continue;
                };
                let local = r.source == cluster::monitoring::ReportSource::Local;
                self.quarantine(node, target, r.incarnation, local);
                if let Some(p) = self.nodes[node as usize].provisioning.as_mut() {
                    // Remoting's report: the provisioning core publishes
                    // the quarantine, which comes back to the monitoring
                    // core as Remoting hears it.
                    let reason = format!("monitors' verdict ({:?})", r.source);
                    p.core.quarantine(
                        r.node.clone(),
                        r.incarnation,
                        reason,
                        tokio::time::Instant::from_std(now),
                    );
                    self.provisioning_step(node);
                } else if let Some(core) = self.nodes[node as usize].core.as_mut() {
                    core.on_quarantined(&r.node, r.incarnation, now);
                }
            }
            if !provisioning {
                self.view_changed_no_drain(node);
            }
        }
    }

    /// Like [`Sim::view_changed`] for a core whose output the caller drains.
    fn view_changed_no_drain(&mut self, node: u32) {
        let now = self.instant(self.now);
        let ids = &self.ids;
        let n = &mut self.nodes[node as usize];
        let table = &n.table;
        let quarantined = &n.quarantined;
        if let Some(core) = n.core.as_mut() {
            core.on_view(
                table
                    .iter()
                    .filter(|(i, inc)| !quarantined.contains(&(**i, **inc)))
                    .map(|(i, inc)| (&ids[*i as usize], *inc)),
                now,
            );
        }
    }

    /// `reporter` quarantines `(target, inc)` in its own view.
    fn quarantine(&mut self, reporter: u32, target: u32, inc: u64, local: bool) {
        let n = &mut self.nodes[reporter as usize];
        let listed = n.table.get(&target) == Some(&inc);
        if !n.quarantined.insert((target, inc)) {
            return;
        }
        self.reports.push(ReportRecord {
            at: self.now,
            reporter,
            reporter_inc: n.inc,
            node: target,
            incarnation: inc,
            local,
        });
        if let Some(&c) = self.open_crashes.get(&(target, inc)) {
            let rec = &mut self.crashes[c];
            rec.first_report.get_or_insert(self.now);
        }
        if listed && n.provisioning.is_none() {
            self.note_removed(reporter, target, inc);
        }
    }

    fn note_removed(&mut self, node: u32, target: u32, inc: u64) {
        if let Some(&c) = self.open_crashes.get(&(target, inc)) {
            self.crashes[c].removed_at.entry(node).or_insert(self.now);
        }
    }

    /// Legacy mode: Remoting's `on_tick` (heartbeats to every peer, the
    /// stall rule, a report on the detector's suspicion).
    fn legacy_tick(&mut self, node: u32) {
        let now_n = self.now;
        let now = self.instant(now_n);
        let tick_every = self.config.heartbeat_interval;
        let failure_timeout = self.config.failure_timeout;
        let Some(l) = self.nodes[node as usize].legacy.as_mut() else {
            return;
        };
        let gap = l
            .last_tick
            .map_or(Duration::ZERO, |t| Duration::from_nanos(now_n - t));
        l.last_tick = Some(now_n);
        // `remoting::actor::stalled`: the peers' silence during a stall of
        // this process is not counted against them (FS-1).
        if gap > failure_timeout / 2 && gap > tick_every * 4 {
            for p in l.peers.values_mut() {
                p.detector.touch(now);
            }
        }
        let mut heartbeats = Vec::new();
        let mut suspected = Vec::new();
        for (i, p) in &mut l.peers {
            p.hb_sent += 1;
            heartbeats.push((*i, p.hb_sent));
            if !p.detector.is_available(now) {
                suspected.push((*i, p.incarnation));
            }
        }
        for (to, seq) in heartbeats {
            self.send(node, to, Payload::Heartbeat(seq));
        }
        if suspected.is_empty() {
            return;
        }
        for (target, inc) in suspected {
            self.quarantine(node, target, inc, true);
        }
        self.view_changed(node);
    }

    // ---- the network -------------------------------------------------------

    fn send(&mut self, from: u32, to: u32, payload: Payload) {
        let kind = payload.kind_index();
        self.sent[from as usize][kind] += 1;
        let n = self.nodes.len();
        if (to as usize) < n {
            self.peers_used[from as usize][to as usize / 64] |= 1 << (to % 64);
        }
        let dest = &self.nodes[to as usize];
        if dest.state == NodeState::Crashed {
            self.lost += 1;
            // A crashed process refuses connections: a verdict's relay
            // hears of it (design §2.6).
            if let Payload::Monitor(msg @ MonitorMsg::Verdict(_)) = payload {
                let inc = self.nodes[from as usize].inc;
                let at = self.now + nanos(self.config.refused_after);
                self.push(
                    at,
                    Ev::Unsendable {
                        node: from,
                        inc,
                        to,
                        msg,
                    },
                );
            }
            return;
        }
        let to_inc = dest.inc;
        if self.cut(from, to) {
            self.lost += 1;
            return;
        }
        let mut retransmit = 0;
        if self.config.loss_as_delay {
            let mut rto = 200 * MS;
            while self.lost_by_chance(from, to, self.now + retransmit) {
                retransmit += rto;
                rto *= 2;
            }
        } else if self.lost_by_chance(from, to, self.now) {
            self.lost += 1;
            return;
        }
        let link = from as usize * n + to as usize;
        let jitter = nanos(self.config.latency_jitter);
        let latency = nanos(self.config.latency_base) + self.rng.u64(0..=jitter) + retransmit;
        let at = (self.now + latency).max(self.last_arrival[link] + 1);
        self.last_arrival[link] = at;
        self.push(
            at,
            Ev::Deliver {
                to,
                to_inc,
                from,
                payload,
            },
        );
    }

    /// Whether a fault cuts `from → to` now.
    fn cut(&self, from: u32, to: u32) -> bool {
        let f = &self.faults;
        if f.out_cut.contains(&from) || f.in_cut.contains(&to) || f.cut.contains(&(from, to)) {
            return true;
        }
        f.sides
            .as_ref()
            .is_some_and(|sides| sides[from as usize] != sides[to as usize])
    }

    /// Whether the loss model loses one transmission `from → to` at `at`.
    fn lost_by_chance(&mut self, from: u32, to: u32, at: Nanos) -> bool {
        match self.config.burst {
            None => self.config.loss > 0.0 && self.rng.f64() < self.config.loss,
            Some(b) => {
                let link = from as usize * self.nodes.len() + to as usize;
                let mean_good = nanos(b.mean_good()) as f64;
                let mean_bad = nanos(b.mean_bad) as f64;
                let (mut bad, mut until) = self.burst_state[link];
                if until == 0 {
                    // First use: start in the stationary distribution.
                    bad = self.rng.f64() < b.average_loss / b.loss_in_bad;
                    until = at + exp(&mut self.rng, if bad { mean_bad } else { mean_good });
                }
                while until <= at {
                    bad = !bad;
                    until += exp(&mut self.rng, if bad { mean_bad } else { mean_good }).max(1);
                }
                self.burst_state[link] = (bad, until);
                bad && self.rng.f64() < b.loss_in_bad
            }
        }
    }

    /// Marks the end of a measurement: the crash records are closed.
    pub fn close_crash_records(&mut self) {
        self.open_crashes.clear();
    }

    /// The live nodes (up or paused) whose view still lists `(node, inc)`.
    pub fn still_listing(&self, node: u32, inc: u64) -> BTreeSet<u32> {
        (0..self.nodes.len() as u32)
            .filter(|i| {
                let n = &self.nodes[*i as usize];
                *i != node
                    && n.state != NodeState::Crashed
                    && match n.provisioning.as_ref() {
                        Some(p) => p
                            .topology
                            .member(&self.ids[node as usize])
                            .is_some_and(|m| m.incarnation == inc),
                        None => {
                            n.table.get(&node) == Some(&inc)
                                && !n.quarantined.contains(&(node, inc))
                        }
                    }
            })
            .collect()
    }
}

/// An exponential draw with mean `mean` nanoseconds.
fn exp(rng: &mut fastrand::Rng, mean: f64) -> Nanos {
    let u = 1.0 - rng.f64(); // (0, 1]
    (-u.ln() * mean) as Nanos
}
