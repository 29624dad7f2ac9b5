//! A deterministic discrete-event simulation of failure detection at 100
//! and 1,000 nodes (issue 17, item 2; `docs/monitoring-design.md` §4,
//! stages 3 and 4).
//!
//! Every simulated node runs the **real** [`cluster::monitoring::Monitoring`]
//! core (ring mode) or, in legacy mode, today's all-to-all heartbeats with
//! the real [`cluster::failure_detector::FailureDetector`]; the provider and
//! the network are simulated. With [`sim::SimConfig::provisioning`]
//! (`--provisioning`, ring mode) every node also runs the **real**
//! `ProvisioningCore` of `provisioning-actors` (design stage 4): the
//! provider's table reaches it as snapshots, one `Arc<[Member]>` per table
//! version (shared by every simulated node: one process would decode its
//! own), and the provider re-sends its last snapshot every
//! [`sim::SimConfig::keepalive`] (5 s, below the failover's 15 s silence
//! timeout, as the in-memory provider's default); a monitoring report
//! becomes `ProvisioningCore::quarantine`; the core's
//! `RemoteNodeQuarantined` and `TopologyUpdated` go back to the monitoring
//! core as the Remoting actor passes them (`on_quarantined`, then
//! `on_topology` while Active, so the quorum counts blocked incarnations;
//! while Degraded only departures from the ring); the core's one timer is
//! armed from `Ready::wake_at`; the node's view is the topology its core
//! published, and a crash counts as removed from a node's view at the
//! publication that drops it (the "last live view" figure is then the
//! last node's `TopologyUpdated`). Without it, a node's view is a plain
//! member table (below). Not here in either mode: the `TopologyFollower`
//! (one core per node publishes in order, so the follower would pass
//! everything through), a provider that stops answering, dials and
//! associations on demand (the "peers sent to" figure stands in for
//! associations), reachable verdicts (so a healed partition stays split).
//!
//! # The loop
//!
//! A priority queue of `(time, sequence number, event)` over simulated
//! nanoseconds and one seeded `fastrand::Rng` for every draw (latencies,
//! loss, watch delays, the cores' seeds, the scenarios' choices): the same
//! seed gives the same run, event for event
//! (`c1_sim_is_deterministic_per_seed`). The cores get
//! `base + offset` as `now`, `base` read once. After every input to a core
//! the node calls `ready()`: `send` goes into the network, each report
//! quarantines `(node, incarnation)` in this node's view (then
//! `on_quarantined` and `on_view`, and `ready()` again), and one `tick` is
//! scheduled at `wake_at` (only the latest wake per node counts).
//!
//! # The model
//!
//! - **Nodes** `n0000`, `n0001`, ...; each has a core and a member table
//!   (what the provider told it). Its **view** is the table minus the
//!   incarnations it quarantined; a quarantined incarnation stays out until
//!   the table drops it; a restarted node is a new incarnation.
//! - **Provider**: one shared table. Registration on start (a restart
//!   replaces the entry), removal of a crashed node after `lease_ttl`
//!   (default 4 s; S2 and S7 run without expiry, as static seeds, so that
//!   every detection there is the monitors'). Each node receives each
//!   change after its own watch delay, drawn once (uniform 5–50 ms), so its
//!   changes stay in order; a starting node reads the whole table.
//! - **Network**: per directed link, latency 0.5 ms + uniform 0–1.5 ms,
//!   FIFO; iid loss ℓ or Gilbert–Elliott bursts per directed link (in time:
//!   exponential good and bad periods, loss 50 % in a bad one, the mean good
//!   period set for the average loss asked); faults: a cut directed link, a
//!   node's inbound or outbound cut, partition sides, crash (its events are
//!   dropped; a message to it is lost, and a verdict sent to it comes back
//!   as `on_unsendable` after 2 ms, a refused connection), pause (its
//!   events are held and delivered on resume: its next input sees the gap,
//!   the core's stall rule). Every message is counted per node, sent and
//!   received, by kind ([`sim::KINDS`]).
//! - **Legacy mode** (`--mode all-to-all`): Remoting's `on_tick` every
//!   `heartbeat_interval` (1 s, a random phase per node): a `Heartbeat` to
//!   every peer in the view, `HeartbeatAck` back; the detector (timeout
//!   5 s, Remoting's defaults) heartbeats on a `Heartbeat` and is touched by
//!   an ack; the stall rule of `remoting::actor::stalled`; a report on the
//!   detector's suspicion, by that node alone. Associations come up at once
//!   (no handshake): a peer's detector starts when it enters the view.
//!
//! # Scenarios and what a false quarantine is
//!
//! A **report** is one node quarantining one incarnation in its own view
//! (its own quorum, a relayed verdict, or in legacy mode its detector). A
//! **false quarantine** is a report about an incarnation that the fault
//! schedule says was up and reachable, i.e. not in the scenario's faulty
//! set: S1, S4, S9: none is faulty (every report is false); S2, S7: the
//! crashed incarnations; S3a/S3b: the broken node (it cannot send, resp.
//! receive: quarantining it is right; anything it or anyone reports about
//! another node is false); S6: the paused node (from its pause on;
//! whatever the resumed node reports is false); S8: the incarnations that
//! left (a report about a joined or staying node is false); S5: a report
//! is false when the reporter and the reported node are on the same side
//! (across the partition the sides cannot reach each other). The scenarios
//! ([`scenario::Scenario`]) follow design §4.3; the first 10 s are warm-up,
//! rates are measured from 10 s to the end.
//!
//! # Running it
//!
//! `cargo run --release -p cluster-sim -- --nodes 1000 --minutes 10 --loss
//! 0.05 --seed 1 --scenarios all --mode ring --out target/sim/1000.md`, or
//! `scripts/sim`; add `--provisioning` for the provisioning core on every
//! node (`scripts/sim --provisioning --memory nodes` writes
//! `target/sim/1000.md` the same way). The CI tests (`tests/`) run 100
//! nodes for shorter simulated durations, with and without the
//! provisioning core, and assert on simulated time and counts only.

pub mod memory;
pub mod report;
pub mod scenario;
pub mod sim;

pub use scenario::{Outcome, RunParams, Scenario, run};
pub use sim::{Mode, Sim, SimConfig};
