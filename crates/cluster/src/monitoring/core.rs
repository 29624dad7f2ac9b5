//! The monitoring core: [`Monitoring`], the pure state machine of one node's
//! failure detection in ring mode (`docs/monitoring-design.md` §2.3–§2.6;
//! the state machine is drawn in the [module doc](super)).
//!
//! No IO, no clock, no await: time comes in as `now`, randomness (the
//! choice of indirect helpers) from a seeded `fastrand::Rng`, and every
//! step's effects leave through [`Monitoring::ready`]. The Remoting actor
//! and the simulation (`crates/cluster-sim`) drive the same core.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use cluster_core::{NodeId, Topology};
use xxhash_rust::xxh3::xxh3_64;

use super::config::{MonitoringConfig, MonitoringDetector, q_eff};
use super::health::Health;
use super::message::{MonitorMsg, MonitorReady, MonitorReport, ReportSource, Verdict};
use super::ring::Ring;
use crate::failure_detector::{DetectorConfig, FailureDetector, PhiAccrualConfig};

/// Counters of what one core did, for metrics and the simulation's tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonitorStats {
    /// Rounds answered directly in time.
    pub direct_acks: u64,
    /// Rounds saved by a helper's relayed ack (or a late frame from the
    /// target during the indirect phase).
    pub indirect_acks: u64,
    /// Rounds that failed directly and indirectly.
    pub failed_rounds: u64,
    /// Indirect rounds in which no helper answered at all (missed nacks).
    pub missed_nacks: u64,
    /// `Vote{suspect: true}` messages sent.
    pub votes_sent: u64,
    /// `Vote{suspect: false}` messages sent.
    pub retractions_sent: u64,
    /// Quarantines reported on this node's own quorum.
    pub reports_local: u64,
    /// Quarantines reported on a relayed verdict.
    pub reports_relayed: u64,
    /// Verdicts about this node received (and not applied).
    pub verdicts_about_me: u64,
    /// Stalls of this process detected (a tick more than one interval late).
    pub stalls: u64,
}

/// One member this node monitors (≤ k of them), bound to an incarnation.
#[derive(Debug)]
struct Target {
    incarnation: u64,
    /// When the next round starts (first at the pair's phase within the
    /// interval, design §2.4 "Stagger", then every `I × h`).
    next_probe: Instant,
    round: Round,
    suspicion: Option<Suspicion>,
    /// Reported (locally or on a relayed verdict): no more probing.
    reported: bool,
    /// Any frame ever received from it (or a refusal, which is an answer).
    /// A target never heard from fails no round: a joining or restarting
    /// node that does not answer yet is not suspected (design §2.9, "a
    /// refusal is an answer"); one that dies before it was ever heard is
    /// left to its provider's lease, as in all-to-all mode (`ever_up`).
    heard: bool,
    /// Phi-accrual mode only: fed by every sign of life.
    detector: Option<FailureDetector>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Waiting for `next_probe`.
    Idle,
    /// The probe is out; `direct_until` ends the direct phase, `end` the round.
    Direct {
        seq: u64,
        direct_until: Instant,
        end: Instant,
    },
    /// Helpers were asked; `end` ends the round.
    Indirect {
        seq: u64,
        end: Instant,
        asked: usize,
        answered: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Suspicion {
    since: Instant,
    /// Whether `Vote{suspect: true}` went out (and must be retracted).
    voted: bool,
    /// When the votes were last (re)sent.
    sent_at: Instant,
}

/// An indirect probe this node makes for another monitor.
#[derive(Debug, Clone)]
struct Helping {
    requester: NodeId,
    requester_seq: u64,
    target: NodeId,
    deadline: Instant,
}

/// One node's ring monitoring (see the [module doc](super)).
#[derive(Debug)]
pub struct Monitoring {
    config: MonitoringConfig,
    me: NodeId,
    rng: fastrand::Rng,
    /// The members of the last view, with their incarnations.
    view: HashMap<NodeId, u64>,
    ring: Ring,
    targets: BTreeMap<NodeId, Target>,
    /// Votes about this node's targets: target → voter → when received.
    votes: HashMap<NodeId, BTreeMap<NodeId, Instant>>,
    helping: Vec<Helping>,
    /// (node, incarnation) already reported (at most once per episode).
    reported: HashSet<(NodeId, u64)>,
    health: Health,
    next_seq: u64,
    keep: BTreeSet<NodeId>,
    keep_changed: bool,
    send: Vec<(NodeId, MonitorMsg)>,
    reports: Vec<MonitorReport>,
    /// The deadline the last `ready()` asked for (stall detection).
    armed: Option<Instant>,
    /// The latest `now` seen.
    now: Option<Instant>,
    /// Quarantined incarnations in the last topology (see `quorum`).
    blocked: usize,
    stats: MonitorStats,
}

impl Monitoring {
    /// A core for node `me`, with `seed` for its helper choices. The
    /// config must be valid ([`MonitoringConfig::validate`]); the core
    /// monitors nobody until its first view.
    pub fn new(config: MonitoringConfig, me: NodeId, seed: u64) -> Self {
        let health = Health::new(config.health_max);
        let ring = Ring::new(std::iter::empty(), config.monitors);
        Self {
            config,
            me,
            rng: fastrand::Rng::with_seed(seed),
            view: HashMap::new(),
            ring,
            targets: BTreeMap::new(),
            votes: HashMap::new(),
            helping: Vec::new(),
            reported: HashSet::new(),
            health,
            next_seq: 1,
            keep: BTreeSet::new(),
            keep_changed: false,
            send: Vec::new(),
            reports: Vec::new(),
            armed: None,
            now: None,
            blocked: 0,
            stats: MonitorStats::default(),
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// The local health score (0 = healthy).
    pub fn health(&self) -> u32 {
        self.health.score()
    }

    /// What this core has done so far.
    pub fn stats(&self) -> &MonitorStats {
        &self.stats
    }

    /// The members this node monitors now, with their incarnations.
    pub fn targets(&self) -> impl Iterator<Item = (&NodeId, u64)> + '_ {
        self.targets.iter().map(|(id, t)| (id, t.incarnation))
    }

    /// Since when this node suspects `node` (`None`: it does not).
    pub fn suspected_since(&self, node: &NodeId) -> Option<Instant> {
        self.targets
            .get(node)
            .and_then(|t| t.suspicion.map(|s| s.since))
    }

    /// The associations monitoring needs: its targets and its watchers.
    pub fn keep(&self) -> &BTreeSet<NodeId> {
        &self.keep
    }

    /// The ring of the last view.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// A newer topology: its members are the view, and its quarantined
    /// incarnations still count towards the cluster's size for the quorum
    /// (so that quarantining one node does not lower the votes needed for
    /// the next one: a cascade keeps the full quorum).
    pub fn on_topology(&mut self, topology: &Topology, now: Instant) {
        self.blocked = topology.blocked.len();
        self.on_view(
            topology.members.iter().map(|m| (&m.node_id, m.incarnation)),
            now,
        );
    }

    /// A topology published while provisioning is Degraded (R4.3): the
    /// members may be stale, so nobody new is monitored and the ring
    /// keeps its assignment, but ring members the topology no longer
    /// lists (left or quarantined) are dropped, with their state and the
    /// association kept for them. A member the topology lists with another
    /// incarnation stays, at that incarnation.
    pub fn on_degraded_topology(&mut self, topology: &Topology, now: Instant) {
        let kept: Vec<(NodeId, u64)> = topology
            .members
            .iter()
            .filter(|m| self.ring.contains(&m.node_id))
            .map(|m| (m.node_id.clone(), m.incarnation))
            .collect();
        if kept.len() < self.ring.len() {
            self.on_view(kept.iter().map(|(n, i)| (n, *i)), now);
        }
    }

    /// The votes needed: `q_eff` over the cluster's size with its
    /// quarantined incarnations, but never more than the monitors a target
    /// has in this view (`k_eff`).
    fn quorum(&self) -> usize {
        let size = self.ring.len() + self.blocked;
        let k_all = super::config::k_eff(self.config.monitors, size);
        q_eff(self.config.quorum, k_all).min(self.ring.k_eff().max(1))
    }

    /// A newer view of the members (the provisioning topology's members,
    /// blocked incarnations excluded): the ring is recomputed, targets
    /// are added or dropped, state about departed or re-incarnated members
    /// is removed (law 10).
    pub fn on_view<'a>(
        &mut self,
        members: impl IntoIterator<Item = (&'a NodeId, u64)>,
        now: Instant,
    ) {
        self.observe(now);
        self.view = members
            .into_iter()
            .map(|(id, inc)| (id.clone(), inc))
            .collect();
        // The old ring stays until the stale targets are dropped: their
        // votes are withdrawn from the co-monitors they were sent to.
        let ring = Ring::new(self.view.keys(), self.config.monitors);
        let wanted: Vec<NodeId> = ring
            .watched_by(&self.me)
            .map(|it| it.cloned().collect())
            .unwrap_or_default();

        // Drop targets that are no longer this node's, or changed incarnation.
        let stale: Vec<NodeId> = self
            .targets
            .iter()
            .filter(|(id, t)| !wanted.contains(id) || self.view.get(*id) != Some(&t.incarnation))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            // Votes are about the old incarnation too.
            self.votes.remove(&id);
            if let Some(t) = self.targets.remove(&id) {
                // Still a member at that incarnation but no longer ours
                // (the ring moved): withdraw the votes sent about it.
                let voted = t.suspicion.is_some_and(|s| s.voted);
                if voted && self.view.get(&id) == Some(&t.incarnation) {
                    self.send_votes(&id, t.incarnation, false);
                }
            }
        }
        self.ring = ring;
        for id in wanted {
            if self.targets.contains_key(&id) {
                continue;
            }
            let incarnation = self.view[&id];
            let phase = self.phase_of(&id);
            let detector = self.new_detector();
            // At most once per (node, incarnation): a target the ring moved
            // away and back keeps its report.
            let reported = self.reported.contains(&(id.clone(), incarnation));
            self.targets.insert(
                id,
                Target {
                    incarnation,
                    next_probe: now + phase,
                    round: Round::Idle,
                    suspicion: None,
                    reported,
                    heard: false,
                    detector,
                },
            );
        }
        let view = &self.view;
        let targets = &self.targets;
        self.votes.retain(|id, voters| {
            voters.retain(|v, _| view.contains_key(v));
            targets.contains_key(id)
        });
        self.helping.retain(|h| view.contains_key(&h.target));
        self.reported.retain(|(id, inc)| view.get(id) == Some(inc));

        let mut keep: BTreeSet<NodeId> = self.targets.keys().cloned().collect();
        if let Some(watchers) = self.ring.watchers_of(&self.me) {
            keep.extend(watchers.cloned());
        }
        if keep != self.keep {
            self.keep = keep;
            self.keep_changed = true;
        }
    }

    /// `RemoteNodeQuarantined` ahead of its topology: this node is done
    /// with `(node, incarnation)` (no more probes, votes or reports).
    pub fn on_quarantined(&mut self, node: &NodeId, incarnation: u64, now: Instant) {
        self.observe(now);
        self.reported.insert((node.clone(), incarnation));
        if let Some(t) = self.targets.get_mut(node)
            && t.incarnation == incarnation
        {
            t.reported = true;
            t.round = Round::Idle;
            t.suspicion = None;
        }
        self.votes.remove(node);
    }

    /// Any other frame from `from` (a tell, a placement reply): a sign of
    /// life.
    pub fn on_sign_of_life(&mut self, from: &NodeId, now: Instant) {
        self.observe(now);
        self.heard_from(from, now);
    }

    /// A monitoring message from `from`.
    pub fn on_message(&mut self, from: &NodeId, msg: MonitorMsg, now: Instant) {
        self.observe(now);
        self.heard_from(from, now);
        match msg {
            MonitorMsg::Probe { seq } => self.push(from.clone(), MonitorMsg::Ack { seq }),
            // Matched by `heard_from`: any frame from a target ends its
            // round, and any frame from a helper's target answers it.
            MonitorMsg::Ack { .. } => {}
            MonitorMsg::PingReq {
                seq,
                target,
                incarnation,
            } => self.on_ping_req(from, seq, target, incarnation, now),
            MonitorMsg::PingReqAnswer {
                seq,
                target,
                reached,
            } => self.on_answer(seq, &target, reached),
            MonitorMsg::Vote {
                target,
                incarnation,
                suspect,
            } => self.on_vote(from, target, incarnation, suspect, now),
            MonitorMsg::Verdict(v) => self.on_verdict(v),
        }
    }

    /// A message to `to` could not be sent (no association, the dial
    /// failed). A verdict's interval is taken back and halved among the
    /// child's own children (design §2.6); other messages are left to
    /// their round's deadline.
    pub fn on_unsendable(&mut self, to: &NodeId, msg: MonitorMsg, now: Instant) {
        self.observe(now);
        if let MonitorMsg::Verdict(v) = msg {
            let children: Vec<(NodeId, usize)> = self
                .ring
                .broadcast_children(to, &v.target, v.span as usize, v.backward)
                .map(|c| c.into_iter().map(|(n, s)| (n.clone(), s)).collect())
                .unwrap_or_default();
            for (child, span) in children {
                if child == self.me {
                    continue;
                }
                self.push(
                    child,
                    MonitorMsg::Verdict(Verdict {
                        span: span as u32,
                        ..v.clone()
                    }),
                );
            }
        }
    }

    /// Time passed: deadlines of rounds, helpers, suspicions and votes.
    pub fn tick(&mut self, now: Instant) {
        self.observe(now);
        let ttl = self.config.vote_ttl;
        for voters in self.votes.values_mut() {
            voters.retain(|_, at| now.saturating_duration_since(*at) < ttl);
        }
        self.expire_helping(now);
        let ids: Vec<NodeId> = self.targets.keys().cloned().collect();
        for id in &ids {
            self.advance_round(id, now);
        }
        for id in &ids {
            self.refresh_votes(id, now);
            self.check_quorum(id, now);
        }
    }

    /// This step's output (see [`MonitorReady`]); arms the next deadline.
    pub fn ready(&mut self) -> MonitorReady {
        let wake_at = self.next_deadline();
        self.armed = wake_at;
        MonitorReady {
            send: std::mem::take(&mut self.send),
            reports: std::mem::take(&mut self.reports),
            keep: if std::mem::take(&mut self.keep_changed) {
                Some(self.keep.clone())
            } else {
                None
            },
            wake_at,
        }
    }

    // ---- inputs --------------------------------------------------------

    /// Stall detection (FS-1, design §2.5): an input more than one probe
    /// interval after the deadline this core asked for means this process
    /// did not run. The score saturates and every round in flight starts
    /// over instead of failing.
    fn observe(&mut self, now: Instant) {
        self.now = Some(self.now.map_or(now, |n| n.max(now)));
        let Some(armed) = self.armed else { return };
        if now.saturating_duration_since(armed) <= self.config.probe_interval {
            return;
        }
        self.armed = None;
        self.stats.stalls += 1;
        self.health.saturate();
        for t in self.targets.values_mut() {
            if !t.reported {
                t.round = Round::Idle;
                t.next_probe = now;
            }
        }
        self.helping.clear();
    }

    fn heard_from(&mut self, from: &NodeId, now: Instant) {
        // A helper's target spoke: answer the requesters.
        self.answer_requesters(true, |h| &h.target == from);
        let Some(t) = self.targets.get_mut(from) else {
            return;
        };
        t.heard = true;
        if let Some(d) = t.detector.as_mut() {
            d.heartbeat(now);
        }
        if t.reported {
            return;
        }
        match t.round {
            Round::Direct { .. } => {
                self.stats.direct_acks += 1;
                self.health.succeeded();
            }
            Round::Indirect { .. } => self.stats.indirect_acks += 1,
            Round::Idle => {}
        }
        self.target_alive(from);
    }

    /// `id` answered (directly or through a helper): its round ends, and a
    /// suspicion of it ends with its votes withdrawn (law 7).
    fn target_alive(&mut self, id: &NodeId) {
        let Some(t) = self.targets.get_mut(id) else {
            return;
        };
        t.round = Round::Idle;
        if let Some(s) = t.suspicion.take()
            && s.voted
        {
            let inc = t.incarnation;
            self.send_votes(id, inc, false);
        }
    }

    fn on_ping_req(
        &mut self,
        from: &NodeId,
        seq: u64,
        target: NodeId,
        incarnation: u64,
        now: Instant,
    ) {
        let k = self.ring.k_eff().max(2);
        let bound = k * (k - 1);
        let member = self.view.get(&target) == Some(&incarnation);
        if !member || target == self.me || self.helping.len() >= bound {
            self.push(
                from.clone(),
                MonitorMsg::PingReqAnswer {
                    seq,
                    target,
                    reached: false,
                },
            );
            return;
        }
        let probe_seq = self.take_seq();
        self.push(target.clone(), MonitorMsg::Probe { seq: probe_seq });
        let deadline = now + self.scaled(self.helper_timeout());
        self.helping.push(Helping {
            requester: from.clone(),
            requester_seq: seq,
            target,
            deadline,
        });
    }

    fn on_answer(&mut self, seq: u64, target: &NodeId, reached: bool) {
        let Some(t) = self.targets.get_mut(target) else {
            return;
        };
        let Round::Indirect {
            seq: round_seq,
            answered,
            ..
        } = &mut t.round
        else {
            return;
        };
        if *round_seq != seq {
            return;
        }
        *answered += 1;
        if !reached {
            return;
        }
        self.stats.indirect_acks += 1;
        self.target_alive(target);
    }

    fn on_vote(
        &mut self,
        from: &NodeId,
        target: NodeId,
        incarnation: u64,
        suspect: bool,
        now: Instant,
    ) {
        // Votes from non-members change nothing (law 10), and nobody votes
        // about itself.
        if !self.view.contains_key(from) || *from == target {
            return;
        }
        if target == self.me {
            if suspect {
                // Someone suspects this node: lower the confidence and
                // refute at once with a probe to each monitor (§2.4).
                self.health.raise();
                let watchers: Vec<NodeId> = self
                    .ring
                    .watchers_of(&self.me)
                    .map(|w| w.cloned().collect())
                    .unwrap_or_default();
                for w in watchers {
                    let seq = self.take_seq();
                    self.push(w, MonitorMsg::Probe { seq });
                }
            }
            return;
        }
        let Some(t) = self.targets.get(&target) else {
            return;
        };
        if t.incarnation != incarnation || t.reported {
            return;
        }
        let voters = self.votes.entry(target.clone()).or_default();
        if suspect {
            // Only monitors vote; views may differ for a moment, so any
            // member counts, up to a bound.
            if voters.len() >= 2 * super::config::MAX_MONITORS && !voters.contains_key(from) {
                return;
            }
            voters.insert(from.clone(), now);
        } else {
            voters.remove(from);
        }
        if suspect {
            self.check_quorum(&target, now);
        }
    }

    fn on_verdict(&mut self, v: Verdict) {
        if v.voters.len() > super::config::MAX_MONITORS {
            return;
        }
        // The voters first: distinct current members, the target not
        // among them (law 10: a verdict from non-members changes nothing).
        let voters: BTreeSet<&NodeId> = v
            .voters
            .iter()
            .filter(|n| **n != v.target && self.view.contains_key(*n))
            .collect();
        if voters.len() < self.quorum() {
            return;
        }
        if v.target == self.me {
            // Not applied: a node does not quarantine itself. The score
            // saturates (a signal for a future self-fence, design §2.10;
            // the trees leave the target out, so such a copy comes from a
            // view that differs from the reporter's).
            self.stats.verdicts_about_me += 1;
            self.health.saturate();
            return;
        }
        if self.view.get(&v.target) == Some(&v.incarnation)
            && self.reported.insert((v.target.clone(), v.incarnation))
        {
            self.stats.reports_relayed += 1;
            let monitor = if let Some(t) = self.targets.get_mut(&v.target) {
                t.reported = true;
                t.round = Round::Idle;
                true
            } else {
                false
            };
            self.reports.push(MonitorReport {
                node: v.target.clone(),
                incarnation: v.incarnation,
                voters: v.voters.clone(),
                source: ReportSource::Relayed,
            });
            // A monitor of the target that learns the verdict from another
            // roots two trees of its own: the first reporter's verdict
            // otherwise stops the other monitors from reporting, leaving
            // two trees, and one lost relay in each cuts a node off. With
            // up to k roots a node misses the verdict only if every tree
            // loses it (an event cost of 2k(N − 1) messages at most).
            if monitor {
                self.root_trees(&v.target, v.incarnation, &v.voters);
            }
        }
        // Relay the interval this node is responsible for.
        let children: Vec<(NodeId, usize)> = self
            .ring
            .broadcast_children(&self.me, &v.target, v.span as usize, v.backward)
            .map(|c| c.into_iter().map(|(n, s)| (n.clone(), s)).collect())
            .unwrap_or_default();
        for (child, span) in children {
            self.push(
                child,
                MonitorMsg::Verdict(Verdict {
                    span: span as u32,
                    ..v.clone()
                }),
            );
        }
    }

    // ---- rounds --------------------------------------------------------

    fn advance_round(&mut self, id: &NodeId, now: Instant) {
        let probe_timeout = self.scaled(self.config.probe_timeout);
        let interval = self.scaled(self.config.probe_interval);
        let phi = self.config.detector == MonitoringDetector::PhiAccrual;
        let Some(t) = self.targets.get_mut(id) else {
            return;
        };
        if t.reported {
            return;
        }
        // The direct phase ends: ask helpers.
        if let Round::Direct {
            seq,
            direct_until,
            end,
        } = t.round
            && now >= direct_until
        {
            // Phi mode: the phase lasts while the detector still trusts
            // the target; the indirect phase keeps its full length.
            let trusted = phi
                && t.detector
                    .as_ref()
                    .is_some_and(|d| d.has_heard() && d.is_available(now));
            if trusted {
                let step = (probe_timeout / 4).max(Duration::from_millis(1));
                t.round = Round::Direct {
                    seq,
                    direct_until: now + step,
                    end: end + step,
                };
            } else {
                let incarnation = t.incarnation;
                let helpers = self.pick_helpers(id);
                let asked = helpers.len();
                for h in helpers {
                    self.push(
                        h,
                        MonitorMsg::PingReq {
                            seq,
                            target: id.clone(),
                            incarnation,
                        },
                    );
                }
                if let Some(t) = self.targets.get_mut(id) {
                    t.round = Round::Indirect {
                        seq,
                        end,
                        asked,
                        answered: 0,
                    };
                }
            }
        }
        let Some(t) = self.targets.get_mut(id) else {
            return;
        };
        // The round ends without an ack: a failed round.
        if let Round::Indirect {
            end,
            asked,
            answered,
            ..
        } = t.round
            && now >= end
        {
            t.round = Round::Idle;
            let heard = t.heard;
            self.stats.failed_rounds += 1;
            if asked > 0 && answered == 0 {
                self.stats.missed_nacks += 1;
                self.health.raise();
            }
            let t = self.targets.get_mut(id).expect("target present");
            if heard && t.suspicion.is_none() {
                t.suspicion = Some(Suspicion {
                    since: now,
                    voted: false,
                    sent_at: now,
                });
            }
        }
        // The next round starts.
        let Some(t) = self.targets.get_mut(id) else {
            return;
        };
        if t.round == Round::Idle && now >= t.next_probe {
            let seq = self.next_seq;
            self.next_seq += 1;
            t.round = Round::Direct {
                seq,
                direct_until: now + probe_timeout,
                end: now + interval,
            };
            // Keep the pair's phase: the next round starts one interval
            // after this one was due (or now, if this one ran late).
            t.next_probe = (t.next_probe + interval).max(now + interval / 2);
            self.push(id.clone(), MonitorMsg::Probe { seq });
        }
    }

    /// Sends the first votes once the score allows, and re-sends them every
    /// half `vote_ttl` while the suspicion lasts (so a long suspicion's
    /// votes do not expire at the co-monitors).
    fn refresh_votes(&mut self, id: &NodeId, now: Instant) {
        if self.health.score() >= self.config.vote_limit {
            return;
        }
        let refresh = self.config.vote_ttl / 2;
        let Some(t) = self.targets.get_mut(id) else {
            return;
        };
        if t.reported {
            return;
        }
        let Some(s) = t.suspicion.as_mut() else {
            return;
        };
        if s.voted && now.saturating_duration_since(s.sent_at) < refresh {
            return;
        }
        s.voted = true;
        s.sent_at = now;
        let inc = t.incarnation;
        self.send_votes(id, inc, true);
    }

    /// Reports `id` if this node suspects it, holds `q_eff` live votes
    /// (its own included) and has suspected it for `T_min × h`, or every
    /// monitor voted (law 4).
    fn check_quorum(&mut self, id: &NodeId, now: Instant) {
        if self.health.score() >= self.config.vote_limit {
            return;
        }
        let t_min = self.scaled(self.config.t_min(self.ring.len()));
        let k = self.ring.k_eff();
        let q = self.quorum();
        let ttl = self.config.vote_ttl;
        let Some(t) = self.targets.get(id) else {
            return;
        };
        if t.reported || self.reported.contains(&(id.clone(), t.incarnation)) {
            return;
        }
        let Some(s) = t.suspicion else {
            return;
        };
        let mut voters: Vec<NodeId> = self
            .votes
            .get(id)
            .map(|v| {
                v.iter()
                    .filter(|(n, at)| {
                        now.saturating_duration_since(**at) < ttl && self.view.contains_key(*n)
                    })
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default();
        voters.push(self.me.clone());
        voters.sort();
        voters.dedup();
        let count = voters.len();
        // "Every monitor voted" skips T_min: counted among X's monitors in
        // this node's ring only.
        let monitors_voting = self
            .ring
            .watchers_of(id)
            .map_or(0, |w| w.filter(|n| voters.binary_search(n).is_ok()).count());
        if count < q || (now.saturating_duration_since(s.since) < t_min && monitors_voting < k) {
            return;
        }
        let incarnation = t.incarnation;
        let Some(t) = self.targets.get_mut(id) else {
            return;
        };
        t.reported = true;
        t.round = Round::Idle;
        self.reported.insert((id.clone(), incarnation));
        self.stats.reports_local += 1;
        self.reports.push(MonitorReport {
            node: id.clone(),
            incarnation,
            voters: voters.clone(),
            source: ReportSource::Local,
        });
        self.root_trees(id, incarnation, &voters);
    }

    /// Sends a verdict down the two broadcast trees rooted at this node
    /// (design §2.6): forward and backward along the ring.
    fn root_trees(&mut self, id: &NodeId, incarnation: u64, voters: &[NodeId]) {
        let span = self.ring.broadcast_span(id);
        for backward in [false, true] {
            let children: Vec<(NodeId, usize)> = self
                .ring
                .broadcast_children(&self.me, id, span, backward)
                .map(|c| c.into_iter().map(|(n, s)| (n.clone(), s)).collect())
                .unwrap_or_default();
            for (child, span) in children {
                self.push(
                    child,
                    MonitorMsg::Verdict(Verdict {
                        target: id.clone(),
                        incarnation,
                        voters: voters.to_vec(),
                        span: span as u32,
                        backward,
                    }),
                );
            }
        }
    }

    fn expire_helping(&mut self, now: Instant) {
        self.answer_requesters(false, |h| now >= h.deadline);
    }

    /// Ends the indirect probes `which` selects, in the order they were
    /// taken on, answering each requester: `reached`, or a nack.
    fn answer_requesters(&mut self, reached: bool, mut which: impl FnMut(&Helping) -> bool) {
        let done: Vec<Helping> = self.helping.extract_if(.., |h| which(h)).collect();
        for h in done {
            self.push(
                h.requester,
                MonitorMsg::PingReqAnswer {
                    seq: h.requester_seq,
                    target: h.target,
                    reached,
                },
            );
        }
    }

    // ---- helpers -------------------------------------------------------

    /// Up to r of `target`'s other monitors, chosen at random (seeded);
    /// not one this node reported or suspects itself (it would not answer).
    fn pick_helpers(&mut self, target: &NodeId) -> Vec<NodeId> {
        let r = self.config.indirect_fanout;
        if r == 0 {
            return Vec::new();
        }
        let usable = |n: &NodeId| {
            *n != self.me
                && self
                    .targets
                    .get(n)
                    .is_none_or(|t| !t.reported && t.suspicion.is_none())
                && self
                    .view
                    .get(n)
                    .is_none_or(|inc| !self.reported.contains(&(n.clone(), *inc)))
        };
        let mut others: Vec<NodeId> = self
            .ring
            .watchers_of(target)
            .map(|w| w.filter(|n| usable(n)).cloned().collect())
            .unwrap_or_default();
        self.rng.shuffle(&mut others);
        others.truncate(r);
        others
    }

    /// Sends a vote about `target` to its other monitors, and a suspicion
    /// to the target too (so it can refute).
    fn send_votes(&mut self, target: &NodeId, incarnation: u64, suspect: bool) {
        let mut to: Vec<NodeId> = self
            .ring
            .watchers_of(target)
            .map(|w| w.filter(|n| **n != self.me).cloned().collect())
            .unwrap_or_default();
        if suspect {
            to.push(target.clone());
        }
        for n in to {
            if suspect {
                self.stats.votes_sent += 1;
            } else {
                self.stats.retractions_sent += 1;
            }
            self.push(
                n,
                MonitorMsg::Vote {
                    target: target.clone(),
                    incarnation,
                    suspect,
                },
            );
        }
    }

    fn push(&mut self, to: NodeId, msg: MonitorMsg) {
        self.send.push((to, msg));
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// How long a helper waits for the target before its nack: within the
    /// requester's indirect phase (`I − probe_timeout`, which starts when
    /// the request leaves), with a fifth left for the way back, and never
    /// longer than a direct probe's timeout. A nack that came after the
    /// round's end would count as no answer (a missed nack) and lower the
    /// requester's confidence for nothing.
    fn helper_timeout(&self) -> Duration {
        let phase = self
            .config
            .probe_interval
            .saturating_sub(self.config.probe_timeout);
        self.config.probe_timeout.min(phase * 4 / 5)
    }

    /// `d × (1 + s)`: the local health multiplier.
    fn scaled(&self, d: Duration) -> Duration {
        d * self.health.multiplier()
    }

    /// The pair's phase: `xxh3("monitor-phase" ‖ me ‖ 0 ‖ target) mod I`.
    fn phase_of(&self, target: &NodeId) -> Duration {
        let mut buf = Vec::with_capacity(14 + self.me.as_str().len() + 1 + target.as_str().len());
        buf.extend_from_slice(b"monitor-phase");
        buf.extend_from_slice(self.me.as_str().as_bytes());
        buf.push(0);
        buf.extend_from_slice(target.as_str().as_bytes());
        let nanos = self.config.probe_interval.as_nanos().max(1) as u64;
        Duration::from_nanos(xxh3_64(&buf) % nanos)
    }

    fn new_detector(&self) -> Option<FailureDetector> {
        match self.config.detector {
            MonitoringDetector::Timeout => None,
            MonitoringDetector::PhiAccrual => Some(FailureDetector::new(
                DetectorConfig::PhiAccrual(PhiAccrualConfig::new(self.config.probe_interval)),
            )),
        }
    }

    /// The earliest deadline of any round, helper, suspicion or vote.
    fn next_deadline(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut consider = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        let t_min = self.scaled(self.config.t_min(self.ring.len()));
        let refresh = self.config.vote_ttl / 2;
        let may_vote = self.health.score() < self.config.vote_limit;
        // Deadlines the tick does not consume (a suspicion's T_min, a vote
        // refresh) count only while ahead, or the driver would spin.
        let now = self.now;
        let ahead = |t: Instant| now.is_none_or(|n| t > n);
        for t in self.targets.values() {
            if t.reported {
                continue;
            }
            match t.round {
                Round::Idle => consider(t.next_probe),
                Round::Direct {
                    direct_until, end, ..
                } => {
                    consider(direct_until);
                    consider(end.max(t.next_probe));
                }
                Round::Indirect { end, .. } => consider(end),
            }
            if let Some(s) = t.suspicion {
                if ahead(s.since + t_min) {
                    consider(s.since + t_min);
                }
                if may_vote {
                    if !s.voted {
                        // The score came down: the first votes are due.
                        consider(now.unwrap_or(s.since));
                    } else if ahead(s.sent_at + refresh) {
                        consider(s.sent_at + refresh);
                    }
                }
            }
        }
        for h in &self.helping {
            consider(h.deadline);
        }
        for voters in self.votes.values() {
            for at in voters.values() {
                consider(*at + self.config.vote_ttl);
            }
        }
        at
    }
}
