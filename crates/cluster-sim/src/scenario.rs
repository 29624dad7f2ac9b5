//! The scenarios of design §4.3 and what each measures (the definitions of
//! a false quarantine per scenario are in the [crate doc](crate)).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::sim::{Burst, KINDS, KindCounts, MS, Mode, Nanos, NodeState, SEC, Sim, SimConfig};

/// The scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// S1: steady iid loss, no fault.
    S1SteadyLoss,
    /// S2: a random node crashes every 10 s and restarts 10 s later.
    S2Crashes,
    /// S3a: one node's outbound traffic cut.
    S3BrokenOutbound,
    /// S3b: one node's inbound traffic cut.
    S3BrokenInbound,
    /// S4: the link between a node and one of its monitors cut both ways.
    S4OneLink,
    /// S6: one node paused 8 s (FS-1).
    S6Pause,
    /// S7: 10 % of the nodes crash at once.
    S7CorrelatedCrash,
    /// S9: Gilbert–Elliott burst loss.
    S9BurstLoss,
    /// S5: a partition of 20 % / 80 % for 60 s, then healed.
    S5Partition,
    /// S8: churn, 5 joins and 5 leaves per minute.
    S8Churn,
}

impl Scenario {
    /// Every scenario, in table order.
    pub const ALL: [Scenario; 10] = [
        Self::S1SteadyLoss,
        Self::S2Crashes,
        Self::S3BrokenOutbound,
        Self::S3BrokenInbound,
        Self::S4OneLink,
        Self::S5Partition,
        Self::S6Pause,
        Self::S7CorrelatedCrash,
        Self::S8Churn,
        Self::S9BurstLoss,
    ];

    /// The short name (`S1`, `S3a`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::S1SteadyLoss => "S1",
            Self::S2Crashes => "S2",
            Self::S3BrokenOutbound => "S3a",
            Self::S3BrokenInbound => "S3b",
            Self::S4OneLink => "S4",
            Self::S6Pause => "S6",
            Self::S7CorrelatedCrash => "S7",
            Self::S9BurstLoss => "S9",
            Self::S5Partition => "S5",
            Self::S8Churn => "S8",
        }
    }

    /// What it does, in a few words.
    pub fn title(self) -> &'static str {
        match self {
            Self::S1SteadyLoss => "steady, iid loss",
            Self::S2Crashes => "a crash every 10 s, restart 10 s later, 1 % loss",
            Self::S3BrokenOutbound => "one node's outbound cut",
            Self::S3BrokenInbound => "one node's inbound cut",
            Self::S4OneLink => "one monitor-target link cut both ways",
            Self::S6Pause => "one node paused 8 s",
            Self::S7CorrelatedCrash => "10 % of the nodes crash at once, 1 % loss",
            Self::S9BurstLoss => "burst loss (Gilbert-Elliott)",
            Self::S5Partition => "partition 20 % / 80 % for 60 s, healed",
            Self::S8Churn => "churn: 5 joins and 5 leaves per minute",
        }
    }

    /// Parses a short name (case-insensitive; `S3` means both S3a and S3b).
    pub fn parse(s: &str) -> Option<Vec<Scenario>> {
        let s = s.trim().to_ascii_lowercase();
        if s == "s3" {
            return Some(vec![Self::S3BrokenOutbound, Self::S3BrokenInbound]);
        }
        Self::ALL
            .iter()
            .find(|sc| sc.name().to_ascii_lowercase() == s)
            .map(|sc| vec![*sc])
    }
}

/// The parameters of one run of a scenario.
#[derive(Clone, Debug)]
pub struct RunParams {
    /// Nodes.
    pub nodes: usize,
    /// The seed.
    pub seed: u64,
    /// Ring or all-to-all.
    pub mode: Mode,
    /// The simulated duration of the long scenarios (S1, S2, S9; the
    /// others are capped, see [`run`]).
    pub duration: Duration,
    /// The loss of S1, S3, S4 and S6, and the average loss of S9.
    pub loss: f64,
    /// Loss as TCP retransmission delays instead of lost messages.
    pub loss_as_delay: bool,
    /// The real provisioning core on every node ([`SimConfig::provisioning`]).
    pub provisioning: bool,
}

/// A distribution's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Summary {
    /// The summary of `samples` (empty: all zero).
    pub fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Self {
            count: n,
            mean: samples.iter().sum::<f64>() / n as f64,
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples[n - 1],
        }
    }
}

/// Messages per node per second over the steady window.
#[derive(Clone, Debug, Default)]
pub struct Rates {
    /// The window's length in simulated seconds.
    pub seconds: f64,
    /// Per kind ([`KINDS`] order): sent per node per second, over nodes.
    pub sent_by_kind: Vec<Summary>,
    /// Per kind: received per node per second, over nodes.
    pub received_by_kind: Vec<Summary>,
    /// All kinds: sent per node per second.
    pub sent: Summary,
    /// All kinds: received per node per second.
    pub received: Summary,
    /// Distinct peers each node sent to in the window (associations in use).
    pub peers: Summary,
}

/// Crash detection times, in milliseconds of simulated time.
#[derive(Clone, Debug, Default)]
pub struct Detection {
    /// Crashes measured (those early enough to be followed to the end).
    pub crashes: usize,
    /// Of them, reported by at least one node.
    pub reported: usize,
    /// Of them, dropped by every live node's view.
    pub removed_everywhere: usize,
    /// Crash → the first quarantine report.
    pub first_report: Summary,
    /// Crash → the last live node's view without it.
    pub last_view: Summary,
    /// (crash, live node) pairs where the node's view dropped the crashed
    /// incarnation only more than 5 s after the first report, or never:
    /// the verdicts missed it (the provider's table, e.g. the restart's new
    /// incarnation, dropped it later).
    pub missed: usize,
    /// (crash, live node) pairs measured.
    pub pairs: usize,
}

/// What one run of a scenario measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Which scenario.
    pub scenario: Scenario,
    /// The parameters.
    pub mode: Mode,
    /// Nodes.
    pub nodes: usize,
    /// Seed.
    pub seed: u64,
    /// Simulated seconds run.
    pub simulated_secs: f64,
    /// The loss model, as text.
    pub loss: String,
    /// Quarantine reports (one per node and quarantined incarnation).
    pub reports: usize,
    /// Reports about an incarnation the fault schedule says was up and
    /// reachable.
    pub false_reports: usize,
    /// Distinct incarnations falsely reported.
    pub false_targets: usize,
    /// The first few false reports, for the reader.
    pub false_examples: Vec<String>,
    /// Message rates over the steady window (from 10 s on).
    pub rates: Rates,
    /// Crash detection (S2, S7).
    pub detection: Option<Detection>,
    /// S8: the most (target, monitor) pairs one join or leave moved in the
    /// provider table's ring.
    pub churn_max_moved: Option<f64>,
    /// Scenario-specific figures (`name = value`).
    pub notes: Vec<String>,
    /// Events handled.
    pub events: u64,
    /// Wall time of the run (not asserted anywhere).
    pub wall: Duration,
}

const WARMUP: Nanos = 10 * SEC;

/// Runs one scenario. S1, S2, S8 and S9 run `params.duration`; S3a, S3b
/// and S4 run at most 5 minutes with the fault (from 10 s on); S5 runs the
/// partition from 10 s to 70 s, then 60 s healed; S6 runs 30 s, the pause,
/// then 60 s; S7 runs 30 s, the crash, then 60 s.
pub fn run(scenario: Scenario, params: &RunParams) -> Outcome {
    let wall = Instant::now();
    let dur = u64::try_from(params.duration.as_nanos()).unwrap_or(u64::MAX);
    let mut config = SimConfig::new(params.nodes, params.seed, params.mode);
    config.provisioning = params.provisioning;
    let mut loss = format!("{} % iid", params.loss * 100.0);
    match scenario {
        Scenario::S2Crashes | Scenario::S7CorrelatedCrash => {
            config.loss = 0.01;
            config.lease_ttl = None;
            loss = "1 % iid".into();
        }
        Scenario::S9BurstLoss => {
            let b = Burst {
                average_loss: params.loss,
                loss_in_bad: 0.5,
                mean_bad: Duration::from_secs(1),
            };
            loss = format!(
                "{} % average, bursts: 50 % loss for 1 s (mean) every {:.1} s (mean) per link",
                params.loss * 100.0,
                b.mean_good().as_secs_f64() + 1.0
            );
            config.burst = Some(b);
        }
        _ => config.loss = params.loss,
    }
    config.loss_as_delay = params.loss_as_delay;
    if params.loss_as_delay {
        loss.push_str(", as retransmission delays");
    }
    let churn_changes = (dur / (6 * SEC)) as usize;
    if scenario == Scenario::S8Churn {
        config.spare = churn_changes / 2 + 1;
    }
    let mut sim = Sim::new(config);
    // S5: reports are false only within a side.
    let mut sides: Option<Vec<u8>> = None;
    let mut faulty: HashSet<(u32, u64)> = HashSet::new();
    let mut notes = Vec::new();
    let n = params.nodes as u32;
    let end = match scenario {
        Scenario::S1SteadyLoss
        | Scenario::S9BurstLoss
        | Scenario::S2Crashes
        | Scenario::S8Churn => dur,
        Scenario::S5Partition => 130 * SEC,
        Scenario::S3BrokenOutbound | Scenario::S3BrokenInbound | Scenario::S4OneLink => {
            dur.min(5 * 60 * SEC + WARMUP)
        }
        Scenario::S6Pause | Scenario::S7CorrelatedCrash => 90 * SEC + 8 * SEC,
    }
    .max(WARMUP + SEC);

    sim.run_until(WARMUP);
    let sent0 = sim.sent().to_vec();
    let received0 = sim.received().to_vec();
    sim.reset_peer_sets();
    let mut detection_horizon = end;
    let mut churn_max_moved = None;

    match scenario {
        Scenario::S1SteadyLoss | Scenario::S9BurstLoss => sim.run_until(end),
        Scenario::S2Crashes => {
            let mut t = WARMUP;
            let mut restarts: Vec<(Nanos, u32)> = Vec::new();
            while t + 10 * SEC <= end {
                sim.run_until(t);
                let up: Vec<u32> = (0..n).filter(|i| sim.state(*i) == NodeState::Up).collect();
                if !up.is_empty() {
                    let x = up[sim.rng().usize(..up.len())];
                    faulty.insert((x, sim.incarnation(x)));
                    sim.crash(x);
                    restarts.push((t + 10 * SEC, x));
                }
                // The restarts due before the next crash.
                let next = t + 10 * SEC;
                restarts.sort();
                while let Some(&(at, x)) = restarts.first() {
                    if at > next {
                        break;
                    }
                    sim.run_until(at);
                    sim.restart(x);
                    restarts.remove(0);
                }
                t = next;
            }
            sim.run_until(end);
            detection_horizon = end.saturating_sub(20 * SEC);
        }
        Scenario::S3BrokenOutbound | Scenario::S3BrokenInbound => {
            let b = sim.rng().u32(0..n);
            faulty.insert((b, sim.incarnation(b)));
            if scenario == Scenario::S3BrokenOutbound {
                sim.set_outbound_cut(b, true);
            } else {
                sim.set_inbound_cut(b, true);
            }
            sim.run_until(end);
            let others = sim
                .reports()
                .iter()
                .filter(|r| r.node == b && r.reporter != b)
                .count();
            let by_b = sim.reports().iter().filter(|r| r.reporter == b).count();
            notes.push(format!("broken node {}", sim.id(b)));
            notes.push(format!("nodes that quarantined it {others} of {}", n - 1));
            notes.push(format!("its own reports {by_b}"));
            if let Some(core) = sim.core(b) {
                let s = core.stats();
                notes.push(format!(
                    "its votes sent {} (retractions {}), missed nacks {}, health {}",
                    s.votes_sent,
                    s.retractions_sent,
                    s.missed_nacks,
                    core.health()
                ));
            }
        }
        Scenario::S4OneLink => {
            let b = sim.rng().u32(0..n);
            let a = sim
                .core(b)
                .and_then(|c| {
                    c.ring()
                        .watchers_of(sim.id(b))
                        .and_then(|mut w| w.next().cloned())
                })
                .and_then(|id| (0..n).find(|i| sim.id(*i) == &id))
                .unwrap_or((b + 1) % n);
            sim.set_link_cut(a, b, true);
            sim.set_link_cut(b, a, true);
            let before = sim.core(a).map(|c| c.stats().indirect_acks).unwrap_or(0);
            sim.run_until(end);
            let after = sim.core(a).map(|c| c.stats().indirect_acks).unwrap_or(0);
            notes.push(format!(
                "link {} <-> {} cut; rounds of {} saved by helpers {}",
                sim.id(a),
                sim.id(b),
                sim.id(a),
                after - before
            ));
        }
        Scenario::S6Pause => {
            let p = sim.rng().u32(0..n);
            sim.run_until(30 * SEC);
            faulty.insert((p, sim.incarnation(p)));
            sim.pause(p);
            sim.run_until(38 * SEC);
            sim.resume(p);
            let at_resume = sim.reports().len();
            sim.run_until(end);
            let after: Vec<_> = sim.reports()[at_resume..]
                .iter()
                .filter(|r| r.reporter == p)
                .collect();
            let quarantined_it = sim
                .reports()
                .iter()
                .filter(|r| r.node == p && r.reporter != p)
                .count();
            notes.push(format!("paused node {}", sim.id(p)));
            notes.push(format!("its reports after resuming {}", after.len()));
            notes.push(format!(
                "nodes that quarantined it while paused {quarantined_it}"
            ));
            if let Some(core) = sim.core(p) {
                notes.push(format!(
                    "its stalls detected {}, health at the end {}",
                    core.stats().stalls,
                    core.health()
                ));
            }
        }
        Scenario::S5Partition => {
            let mut all: Vec<u32> = (0..n).collect();
            sim.rng().shuffle(&mut all);
            let minority = (params.nodes / 5).max(1);
            let mut side = vec![0u8; params.nodes];
            for &x in &all[..minority] {
                side[x as usize] = 1;
            }
            sim.set_partition(Some(side.clone()));
            sim.run_until(70 * SEC);
            sim.set_partition(None);
            let during = sim.reports().len();
            sim.run_until(end);
            let cross = sim
                .reports()
                .iter()
                .filter(|r| side[r.reporter as usize] != side[r.node as usize])
                .count();
            let by_minority = sim
                .reports()
                .iter()
                .filter(|r| side[r.reporter as usize] == 1 && side[r.node as usize] == 0)
                .count();
            let expected = 2 * minority * (params.nodes - minority);
            notes.push(format!(
                "minority side {minority} nodes; quarantines across the partition {cross} of {expected} \
                 possible ({during} by the heal), of which by the minority {by_minority} of {}; after the heal the sides stay apart (reachable verdicts \
                 and the association probe that lifts a quarantine are not simulated)",
                minority * (params.nodes - minority)
            ));
            sides = Some(side);
        }
        Scenario::S8Churn => {
            let spare: Vec<u32> = (n..n + (churn_changes / 2 + 1) as u32).collect();
            let mut next_spare = 0;
            let mut moved = Vec::new();
            let k = sim.config().monitoring.monitors;
            let ring_pairs = |sim: &Sim| -> HashSet<(u32, u32)> {
                let ids: Vec<_> = sim
                    .table()
                    .iter()
                    .map(|(i, _)| sim.id(*i).clone())
                    .collect();
                let ring = cluster::monitoring::Ring::new(ids.iter(), k);
                ring.pairs()
                    .map(|(a, b)| (node_index(a), node_index(b)))
                    .collect()
            };
            let mut t = WARMUP;
            let mut join = true;
            let (mut joins, mut leaves) = (0, 0);
            while t + 6 * SEC <= end {
                t += 6 * SEC;
                sim.run_until(t);
                let before = ring_pairs(&sim);
                if join && next_spare < spare.len() {
                    sim.join(spare[next_spare]);
                    next_spare += 1;
                    joins += 1;
                } else {
                    let up: Vec<u32> = (0..sim.len() as u32)
                        .filter(|i| sim.state(*i) == NodeState::Up)
                        .collect();
                    let x = up[sim.rng().usize(..up.len())];
                    faulty.insert((x, sim.incarnation(x)));
                    sim.leave(x);
                    leaves += 1;
                }
                join = !join;
                let after = ring_pairs(&sim);
                moved.push(before.symmetric_difference(&after).count() as f64);
            }
            sim.run_until(end);
            let m = Summary::of(moved);
            let departed = sim
                .reports()
                .iter()
                .filter(|r| faulty.contains(&(r.node, r.incarnation)))
                .count();
            notes.push(format!(
                "{joins} joins, {leaves} leaves; (target, monitor) pairs moved per change mean {:.1}, \
                 max {:.0} (3k = {}); reports about departed incarnations {departed}",
                m.mean,
                m.max,
                3 * k
            ));
            churn_max_moved = Some(m.max);
        }
        Scenario::S7CorrelatedCrash => {
            sim.run_until(30 * SEC);
            let count = (params.nodes / 10).max(1);
            let mut all: Vec<u32> = (0..n).collect();
            sim.rng().shuffle(&mut all);
            let crashed: HashSet<u32> = all[..count].iter().copied().collect();
            // How many of each crashed node's monitors crash with it (in
            // the ring of a node that stays up).
            let observer = all[count..].first().copied();
            let monitors_down = |sim: &Sim, x: u32| -> usize {
                observer
                    .and_then(|o| sim.core(o))
                    .and_then(|c| {
                        c.ring()
                            .watchers_of(sim.id(x))
                            .map(|w| w.filter(|id| crashed.contains(&node_index(id))).count())
                    })
                    .unwrap_or(0)
            };
            let down: Vec<(u32, usize)> = all[..count]
                .iter()
                .map(|&x| (x, monitors_down(&sim, x)))
                .collect();
            for &x in &all[..count] {
                faulty.insert((x, sim.incarnation(x)));
                sim.crash(x);
            }
            sim.run_until(end);
            notes.push(format!("crashed {count} nodes at 30 s"));
            let mut by_detection: Vec<(Nanos, u32, usize)> = down
                .iter()
                .filter_map(|&(x, d)| {
                    let c = sim.crashes().iter().find(|c| c.node == x)?;
                    Some((c.first_report.map_or(Nanos::MAX, |t| t - c.at), x, d))
                })
                .collect();
            by_detection.sort();
            let slowest: Vec<String> = by_detection
                .iter()
                .rev()
                .take(3)
                .map(|(t, x, d)| format!("{} {} ms ({d} of its monitors down)", sim.id(*x), t / MS))
                .collect();
            let many_down = down.iter().filter(|(_, d)| *d >= 3).count();
            notes.push(format!(
                "slowest detections: {}; nodes with 3 or more of their monitors down: {many_down}",
                slowest.join(", ")
            ));
        }
    }

    // False quarantines: a report about an incarnation not in `faulty`.
    let mut false_targets = HashSet::new();
    let mut false_examples = Vec::new();
    let mut false_reports = 0;
    for r in sim.reports() {
        let wrong = match &sides {
            Some(side) => side[r.reporter as usize] == side[r.node as usize],
            None => !faulty.contains(&(r.node, r.incarnation)),
        };
        if wrong {
            false_reports += 1;
            false_targets.insert((r.node, r.incarnation));
            if false_examples.len() < 5 {
                false_examples.push(format!(
                    "{}@{} by {} at {:.3} s ({})",
                    sim.id(r.node),
                    r.incarnation,
                    sim.id(r.reporter),
                    r.at as f64 / SEC as f64,
                    if r.local { "local" } else { "relayed" }
                ));
            }
        }
    }

    let detection = matches!(scenario, Scenario::S2Crashes | Scenario::S7CorrelatedCrash)
        .then(|| detection_of(&sim, detection_horizon));

    let rates = rates_of(&sim, &sent0, &received0, (end - WARMUP) as f64 / SEC as f64);
    if sim.spin_guards() > 0 {
        notes.push(format!("spin guards {}", sim.spin_guards()));
    }
    Outcome {
        scenario,
        mode: params.mode,
        nodes: params.nodes,
        seed: params.seed,
        simulated_secs: end as f64 / SEC as f64,
        loss,
        reports: sim.reports().len(),
        false_reports,
        false_targets: false_targets.len(),
        false_examples,
        rates,
        detection,
        churn_max_moved,
        notes,
        events: sim.events(),
        wall: wall.elapsed(),
    }
}

/// The index of a simulated node from its id (`n0042` → 42).
fn node_index(id: &cluster_core::NodeId) -> u32 {
    id.as_str()[1..].parse().unwrap_or(u32::MAX)
}

fn detection_of(sim: &Sim, horizon: Nanos) -> Detection {
    let mut d = Detection::default();
    let mut first = Vec::new();
    let mut last = Vec::new();
    for c in sim.crashes().iter().filter(|c| c.at <= horizon) {
        d.crashes += 1;
        if let Some(t) = c.first_report {
            d.reported += 1;
            first.push((t - c.at) as f64 / MS as f64);
        }
        // The nodes up at the crash that are still the same process now
        // and never dropped the crashed incarnation: none, if complete.
        let missing = c
            .up_then
            .iter()
            .filter(|i| !c.removed_at.contains_key(i) && sim.state(**i) != NodeState::Crashed)
            .count();
        let listing = sim.still_listing(c.node, c.incarnation).len();
        for i in c
            .up_then
            .iter()
            .filter(|i| sim.state(**i) != NodeState::Crashed)
        {
            d.pairs += 1;
            let late = match (c.removed_at.get(i), c.first_report) {
                (Some(t), Some(f)) => *t > f + 5 * SEC,
                _ => true,
            };
            d.missed += usize::from(late);
        }
        if missing == 0 && listing == 0 {
            d.removed_everywhere += 1;
            if let Some(t) = c.removed_at.values().max() {
                last.push((t - c.at) as f64 / MS as f64);
            }
        }
    }
    d.first_report = Summary::of(first);
    d.last_view = Summary::of(last);
    d
}

fn rates_of(sim: &Sim, sent0: &[KindCounts], received0: &[KindCounts], seconds: f64) -> Rates {
    // Nodes that sent nothing in the window never ran in it (S8's spares).
    let ran: Vec<bool> = sim.sent().iter().zip(sent0).map(|(a, b)| a != b).collect();
    let per_node = |now: &[KindCounts], then: &[KindCounts], kind: Option<usize>| -> Vec<f64> {
        now.iter()
            .zip(then)
            .zip(&ran)
            .filter(|(_, ran)| **ran)
            .map(|((a, b), _)| {
                let d: u64 = match kind {
                    Some(k) => a[k] - b[k],
                    None => a.iter().zip(b).map(|(x, y)| x - y).sum(),
                };
                d as f64 / seconds
            })
            .collect()
    };
    Rates {
        seconds,
        sent_by_kind: (0..KINDS.len())
            .map(|k| Summary::of(per_node(sim.sent(), sent0, Some(k))))
            .collect(),
        received_by_kind: (0..KINDS.len())
            .map(|k| Summary::of(per_node(sim.received(), received0, Some(k))))
            .collect(),
        sent: Summary::of(per_node(sim.sent(), sent0, None)),
        received: Summary::of(per_node(sim.received(), received0, None)),
        peers: Summary::of(
            sim.peers_used()
                .into_iter()
                .zip(&ran)
                .filter(|(_, ran)| **ran)
                .map(|(p, _)| f64::from(p))
                .collect(),
        ),
    }
}
