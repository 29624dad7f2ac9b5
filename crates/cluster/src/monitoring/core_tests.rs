//! Tests of the monitoring core: the transitions of the module doc's table
//! one by one, the laws of `docs/monitoring-design.md` §3.1 as property
//! tests over one core, and a small loss-free network of real cores for
//! the laws that need several (liveness, constant cost, one broken node).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use cluster_core::{Member, MemberAddress, NodeId, ProvisioningStatus, Topology};
use proptest::prelude::*;

use super::*;

const I: Duration = Duration::from_secs(1);

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn ids(n: usize) -> Vec<NodeId> {
    (0..n).map(|i| id(&format!("n{i:04}"))).collect()
}

fn ring_config() -> MonitoringConfig {
    MonitoringConfig {
        mode: MonitoringMode::Ring,
        ..MonitoringConfig::default()
    }
}

/// One core under test, with the view it was given.
struct One {
    core: Monitoring,
    base: Instant,
    now: Instant,
    members: Vec<NodeId>,
}

impl One {
    fn new(n: usize) -> Self {
        Self::with(n, ring_config())
    }

    fn with(n: usize, config: MonitoringConfig) -> Self {
        let members = ids(n);
        let base = Instant::now();
        let me = members[0].clone();
        let mut core = Monitoring::new(config, me, 7);
        core.on_view(members.iter().map(|m| (m, 1)), base);
        // Every member was heard once (a target never heard is not
        // suspected: `i17_core_a_target_never_heard_is_not_suspected`).
        for m in &members {
            core.on_sign_of_life(m, base);
        }
        Self {
            core,
            base,
            now: base,
            members,
        }
    }

    fn me(&self) -> NodeId {
        self.core.me().clone()
    }

    fn targets(&self) -> Vec<NodeId> {
        self.core.targets().map(|(n, _)| n.clone()).collect()
    }

    fn co_monitors(&self, target: &NodeId) -> BTreeSet<NodeId> {
        let me = self.me();
        self.core
            .ring()
            .watchers_of(target)
            .unwrap()
            .filter(|n| **n != me)
            .cloned()
            .collect()
    }

    fn watchers_of_me(&self) -> BTreeSet<NodeId> {
        let me = self.me();
        self.core
            .ring()
            .watchers_of(&me)
            .unwrap()
            .cloned()
            .collect()
    }

    /// Ticks at every deadline up to `until`, collecting the output.
    fn run_until(&mut self, until: Instant) -> Vec<MonitorReady> {
        let mut out = vec![self.core.ready()];
        while let Some(at) = out.last().unwrap().wake_at {
            if at > until {
                break;
            }
            self.now = at.max(self.now);
            self.core.tick(self.now);
            out.push(self.core.ready());
        }
        self.now = until.max(self.now);
        out
    }

    /// Runs until `until`, answering every probe with `answer(target)`:
    /// `true` acks it at once.
    fn run_answering(
        &mut self,
        until: Instant,
        answer: impl Fn(&NodeId) -> bool,
    ) -> Vec<(NodeId, MonitorMsg)> {
        let mut sent = Vec::new();
        let mut ready = self.core.ready();
        loop {
            let mut acks = Vec::new();
            for (to, msg) in ready.send.drain(..) {
                if let MonitorMsg::Probe { seq } = msg
                    && answer(&to)
                {
                    acks.push((to.clone(), seq));
                }
                sent.push((to, msg));
            }
            if !acks.is_empty() {
                for (from, seq) in acks {
                    self.core
                        .on_message(&from, MonitorMsg::Ack { seq }, self.now);
                }
                ready = self.core.ready();
                continue;
            }
            let Some(at) = ready.wake_at else { break };
            if at > until {
                break;
            }
            self.now = at.max(self.now);
            self.core.tick(self.now);
            ready = self.core.ready();
        }
        self.now = until.max(self.now);
        sent
    }

    fn msg(&mut self, from: &NodeId, msg: MonitorMsg) -> MonitorReady {
        self.core.on_message(from, msg, self.now);
        self.core.ready()
    }
}

fn sends(out: &[MonitorReady]) -> Vec<(NodeId, MonitorMsg)> {
    out.iter().flat_map(|r| r.send.iter().cloned()).collect()
}

fn reports(out: &[MonitorReady]) -> Vec<MonitorReport> {
    out.iter().flat_map(|r| r.reports.iter().cloned()).collect()
}

/// Lets the first round of `target` fail without any answer; returns
/// everything sent until `until`.
fn fail_rounds_of(
    one: &mut One,
    target: &NodeId,
    until: impl Fn(&One) -> Instant,
) -> Vec<(NodeId, MonitorMsg)> {
    let until = until(one);
    let t = target.clone();
    one.run_answering(until, move |to| *to != t)
}

/// Steps time until `x`'s first failed round ends (its suspicion starts),
/// acking every other target.
fn fail_until_suspected(one: &mut One, x: &NodeId) -> Instant {
    let until = one.now + 3 * I;
    let mut ready = one.core.ready();
    loop {
        let mut acks = Vec::new();
        for (to, m) in ready.send.drain(..) {
            if let MonitorMsg::Probe { seq } = m
                && to != *x
            {
                acks.push((to, seq));
            }
        }
        for (from, seq) in acks {
            one.core.on_message(&from, MonitorMsg::Ack { seq }, one.now);
        }
        if let Some(since) = one.core.suspected_since(x) {
            one.core.ready();
            return since;
        }
        let at = ready.wake_at.expect("a deadline");
        assert!(at <= until, "no suspicion by {until:?}");
        one.now = at.max(one.now);
        one.core.tick(one.now);
        ready = one.core.ready();
    }
}

// ---- transitions -----------------------------------------------------------

#[test]
fn i17_core_monitors_its_k_ring_predecessors_and_keeps_targets_and_watchers() {
    let mut one = One::new(20);
    let me = one.me();
    let expected: BTreeSet<NodeId> = one.core.ring().watched_by(&me).unwrap().cloned().collect();
    assert_eq!(expected.len(), 5);
    assert_eq!(one.targets().into_iter().collect::<BTreeSet<_>>(), expected);
    let ready = one.core.ready();
    let keep = ready
        .keep
        .expect("the first view sets the associations to keep");
    let mut wanted = expected.clone();
    wanted.extend(one.watchers_of_me());
    assert_eq!(keep, wanted, "targets and watchers, nobody else");
    assert!(keep.len() <= 10);
    one.core
        .on_view(one.members.iter().map(|m| (m, 1)), one.now);
    assert_eq!(
        one.core.ready().keep,
        None,
        "an unchanged set is not repeated"
    );
}

#[test]
fn i17_core_probes_each_target_once_per_interval_staggered() {
    let mut one = One::new(50);
    let end = one.base + I * 10;
    let base = one.base;
    let mut times: BTreeMap<NodeId, Vec<Duration>> = BTreeMap::new();
    let mut ready = one.core.ready();
    loop {
        for (to, msg) in ready.send.drain(..) {
            if let MonitorMsg::Probe { seq } = msg {
                times.entry(to.clone()).or_default().push(one.now - base);
                one.core.on_message(&to, MonitorMsg::Ack { seq }, one.now);
            }
        }
        let extra = one.core.ready();
        if !extra.send.is_empty() {
            ready = extra;
            continue;
        }
        let Some(at) = extra.wake_at else { break };
        if at >= end {
            break;
        }
        one.now = at;
        one.core.tick(at);
        ready = one.core.ready();
    }
    assert_eq!(times.len(), 5, "every target probed");
    for (target, t) in &times {
        assert!(
            (9..=10).contains(&t.len()),
            "{target}: {} probes in 10 intervals",
            t.len()
        );
        for w in t.windows(2) {
            assert_eq!(w[1] - w[0], I, "{target}: one probe per interval");
        }
    }
    let phases: BTreeSet<u128> = times.values().map(|t| t[0].as_nanos()).collect();
    assert_eq!(
        phases.len(),
        5,
        "the targets are probed at different phases"
    );
    assert_eq!(one.core.health(), 0);
    assert_eq!(one.core.stats().failed_rounds, 0);
    assert!(one.core.stats().direct_acks >= 45);
}

#[test]
fn i17_core_a_missed_ack_asks_r_helpers_among_the_targets_other_monitors() {
    let mut one = One::new(30);
    let x = one.targets()[0].clone();
    let co = one.co_monitors(&x);
    let sent = fail_rounds_of(&mut one, &x, |o| {
        o.base + I + I / 2 + Duration::from_millis(600)
    });
    let reqs: Vec<&NodeId> = sent
        .iter()
        .filter(|(_, m)| matches!(m, MonitorMsg::PingReq { target, .. } if *target == x))
        .map(|(to, _)| to)
        .collect();
    assert!(!reqs.is_empty());
    let first_round: BTreeSet<&NodeId> = reqs.iter().take(3).copied().collect();
    assert_eq!(first_round.len(), 3, "r = 3 distinct helpers");
    assert!(
        first_round.iter().all(|h| co.contains(*h)),
        "helpers are the target's other monitors"
    );
}

#[test]
fn i17_core_a_relayed_ack_saves_the_round() {
    let mut one = One::new(30);
    let x = one.targets()[0].clone();
    let mut ready = one.core.ready();
    // Run until the PingReqs go out, answer one with `reached`.
    loop {
        let req = ready.send.iter().find_map(|(to, m)| match m {
            MonitorMsg::PingReq { seq, target, .. } if *target == x => Some((to.clone(), *seq)),
            _ => None,
        });
        if let Some((helper, seq)) = req {
            let out = one.msg(
                &helper,
                MonitorMsg::PingReqAnswer {
                    seq,
                    target: x.clone(),
                    reached: true,
                },
            );
            assert!(out.send.is_empty());
            break;
        }
        let at = ready.wake_at.unwrap();
        one.now = at;
        // Ack every other target's probes so only x's round is in question.
        for (to, m) in ready.send.drain(..) {
            if let MonitorMsg::Probe { seq } = m
                && to != x
            {
                one.core.on_message(&to, MonitorMsg::Ack { seq }, one.now);
            }
        }
        one.core.tick(at);
        ready = one.core.ready();
    }
    let later = one.now + I;
    one.run_answering(later, |_| true);
    assert_eq!(one.core.suspected_since(&x), None);
    assert_eq!(one.core.stats().indirect_acks, 1);
    assert_eq!(one.core.stats().failed_rounds, 0);
}

#[test]
fn i17_core_a_failed_round_suspects_and_votes_to_co_monitors_and_the_target() {
    let mut one = One::new(30);
    let x = one.targets()[0].clone();
    let co = one.co_monitors(&x);
    let sent = fail_rounds_of(&mut one, &x, |o| o.base + 2 * I + Duration::from_millis(10));
    assert!(one.core.suspected_since(&x).is_some());
    let voted: BTreeSet<NodeId> = sent
        .iter()
        .filter(
            |(_, m)| matches!(m, MonitorMsg::Vote { target, suspect: true, .. } if *target == x),
        )
        .map(|(to, _)| to.clone())
        .collect();
    let mut expected = co.clone();
    expected.insert(x.clone());
    assert_eq!(voted, expected, "k_eff − 1 co-monitors and the target");
    // No helper answered: a missed nack (+1), undone by the other targets'
    // successful rounds (−1 each), as in Lifeguard.
    assert!(one.core.stats().missed_nacks >= 1);
    assert!(
        reports(&[one.core.ready()]).is_empty(),
        "one witness reports nothing"
    );
}

#[test]
fn i17_core_nacks_from_helpers_do_not_lower_confidence() {
    let mut one = One::new(30);
    let x = one.targets()[0].clone();
    let mut ready = one.core.ready();
    let until = one.base + 3 * I;
    while let Some(at) = ready.wake_at {
        let mut answers = Vec::new();
        for (to, m) in ready.send.drain(..) {
            match m {
                MonitorMsg::Probe { seq } if to != x => answers.push((to, MonitorMsg::Ack { seq })),
                MonitorMsg::PingReq { seq, target, .. } => answers.push((
                    to,
                    MonitorMsg::PingReqAnswer {
                        seq,
                        target,
                        reached: false,
                    },
                )),
                _ => {}
            }
        }
        if !answers.is_empty() {
            for (from, m) in answers {
                one.core.on_message(&from, m, one.now);
            }
            ready = one.core.ready();
            continue;
        }
        if at > until {
            break;
        }
        one.now = at;
        one.core.tick(at);
        ready = one.core.ready();
    }
    assert!(one.core.suspected_since(&x).is_some(), "x is suspected");
    assert_eq!(one.core.stats().missed_nacks, 0);
    assert_eq!(one.core.health(), 0, "the helpers answered: our links work");
}

#[test]
fn i17_core_reports_on_a_quorum_only_after_t_min() {
    let mut one = One::new(30);
    let x = one.targets()[0].clone();
    let co: Vec<NodeId> = one.co_monitors(&x).into_iter().collect();
    let since = fail_until_suspected(&mut one, &x);
    // T_min × (1 + s): s moves with the rounds (a missed nack +1, each
    // other target's success −1), so the report comes no sooner than T_min
    // and no later than T_min × 2 here (s ≤ 1).
    let t_min = ring_config().t_min(30);
    for v in &co[..2] {
        let out = one.msg(
            v,
            MonitorMsg::Vote {
                target: x.clone(),
                incarnation: 1,
                suspect: true,
            },
        );
        assert!(out.reports.is_empty(), "not before T_min");
    }
    let x2 = x.clone();
    let sent = one.run_answering(since + t_min - Duration::from_millis(1), move |t| *t != x2);
    assert!(
        sent.iter()
            .all(|(_, m)| !matches!(m, MonitorMsg::Verdict(_)))
    );
    let x3 = x.clone();
    let until = since + 2 * t_min;
    let mut out = Vec::new();
    let mut ready = one.core.ready();
    while let Some(at) = ready.wake_at {
        let acks: Vec<(NodeId, u64)> = ready
            .send
            .iter()
            .filter_map(|(to, m)| match m {
                MonitorMsg::Probe { seq } if *to != x3 => Some((to.clone(), *seq)),
                _ => None,
            })
            .collect();
        out.push(ready);
        if !acks.is_empty() {
            for (from, seq) in acks {
                one.core.on_message(&from, MonitorMsg::Ack { seq }, one.now);
            }
            ready = one.core.ready();
            continue;
        }
        if at > until {
            break;
        }
        one.now = at.max(one.now);
        one.core.tick(one.now);
        ready = one.core.ready();
    }
    let reps = reports(&out);
    assert_eq!(reps.len(), 1, "reported at T_min");
    let r = &reps[0];
    assert_eq!(
        (r.node.clone(), r.incarnation, r.source),
        (x.clone(), 1, ReportSource::Local)
    );
    let mut voters = vec![one.me(), co[0].clone(), co[1].clone()];
    voters.sort();
    assert_eq!(r.voters, voters);
    assert!(r.reason().starts_with("monitors' verdict: "));
    let verdicts: Vec<Verdict> = sends(&out)
        .into_iter()
        .filter_map(|(_, m)| match m {
            MonitorMsg::Verdict(v) => Some(v),
            _ => None,
        })
        .collect();
    assert!(verdicts.iter().any(|v| v.backward) && verdicts.iter().any(|v| !v.backward));
    let spans: u32 = verdicts
        .iter()
        .filter(|v| !v.backward)
        .map(|v| v.span)
        .sum();
    assert_eq!(
        spans as usize,
        30 - 2,
        "the forward tree covers every member but me and x"
    );
    // At most once, and no more probes to a reported node.
    let after = one.run_until(one.now + 5 * I);
    assert!(reports(&after).is_empty());
    let to_x: Vec<_> = sends(&after)
        .into_iter()
        .filter(|(to, _)| *to == x)
        .collect();
    assert!(to_x.is_empty(), "{to_x:?}");
}

#[test]
fn i17_core_every_monitor_voting_reports_without_waiting_for_t_min() {
    let mut one = One::new(30);
    let x = one.targets()[0].clone();
    let co: Vec<NodeId> = one.co_monitors(&x).into_iter().collect();
    fail_until_suspected(&mut one, &x);
    let mut reps = Vec::new();
    for v in &co {
        reps.extend(
            one.msg(
                v,
                MonitorMsg::Vote {
                    target: x.clone(),
                    incarnation: 1,
                    suspect: true,
                },
            )
            .reports,
        );
    }
    assert_eq!(reps.len(), 1);
    assert_eq!(reps[0].voters.len(), 5);
}

#[test]
fn i17_core_any_frame_from_the_target_refutes_and_retracts_the_votes() {
    let mut one = One::new(30);
    let x = one.targets()[0].clone();
    let co = one.co_monitors(&x);
    fail_rounds_of(&mut one, &x, |o| o.base + 2 * I + Duration::from_millis(10));
    assert!(one.core.suspected_since(&x).is_some());
    let out = one.msg(
        &x,
        MonitorMsg::PingReq {
            seq: 99,
            target: co.iter().next().unwrap().clone(),
            incarnation: 1,
        },
    );
    assert_eq!(one.core.suspected_since(&x), None);
    let retracted: BTreeSet<NodeId> = out
        .send
        .iter()
        .filter(
            |(_, m)| matches!(m, MonitorMsg::Vote { target, suspect: false, .. } if *target == x),
        )
        .map(|(to, _)| to.clone())
        .collect();
    assert_eq!(
        retracted, co,
        "every co-monitor voted to gets the retraction"
    );
}

#[test]
fn i17_core_a_vote_about_itself_raises_health_and_probes_its_monitors() {
    let mut one = One::new(30);
    let me = one.me();
    let watchers = one.watchers_of_me();
    let voter = watchers.iter().next().unwrap().clone();
    let out = one.msg(
        &voter,
        MonitorMsg::Vote {
            target: me.clone(),
            incarnation: 1,
            suspect: true,
        },
    );
    assert_eq!(one.core.health(), 1);
    let probed: BTreeSet<NodeId> = out
        .send
        .iter()
        .filter(|(_, m)| matches!(m, MonitorMsg::Probe { .. }))
        .map(|(to, _)| to.clone())
        .collect();
    assert_eq!(probed, watchers);
}

#[test]
fn i17_core_helps_with_indirect_probes_and_bounds_them() {
    let mut one = One::new(30);
    let (m, x) = (one.members[3].clone(), one.members[4].clone());
    let out = one.msg(
        &m,
        MonitorMsg::PingReq {
            seq: 5,
            target: x.clone(),
            incarnation: 1,
        },
    );
    let seq = match out.send.as_slice() {
        [(to, MonitorMsg::Probe { seq })] if *to == x => *seq,
        other => panic!("expected one probe to x, got {other:?}"),
    };
    let out = one.msg(&x, MonitorMsg::Ack { seq });
    assert_eq!(
        out.send,
        vec![(
            m.clone(),
            MonitorMsg::PingReqAnswer {
                seq: 5,
                target: x.clone(),
                reached: true
            }
        )]
    );
    // No answer from x: a nack at the probe timeout.
    one.msg(
        &m,
        MonitorMsg::PingReq {
            seq: 6,
            target: x.clone(),
            incarnation: 1,
        },
    );
    let out = one.run_until(one.now + Duration::from_millis(500));
    assert!(sends(&out).contains(&(
        m.clone(),
        MonitorMsg::PingReqAnswer {
            seq: 6,
            target: x.clone(),
            reached: false
        }
    )));
    // A non-member, or another incarnation: a nack at once.
    for (target, incarnation) in [(id("stranger"), 1), (x.clone(), 2)] {
        let out = one.msg(
            &m,
            MonitorMsg::PingReq {
                seq: 7,
                target: target.clone(),
                incarnation,
            },
        );
        assert_eq!(
            out.send,
            vec![(
                m.clone(),
                MonitorMsg::PingReqAnswer {
                    seq: 7,
                    target,
                    reached: false
                }
            )]
        );
    }
    // Beyond k(k − 1) = 20 pending requests: a nack at once.
    let mut probes = 0;
    for i in 0..25 {
        let out = one.msg(
            &m,
            MonitorMsg::PingReq {
                seq: 100 + i,
                target: x.clone(),
                incarnation: 1,
            },
        );
        probes += out
            .send
            .iter()
            .filter(|(_, msg)| matches!(msg, MonitorMsg::Probe { .. }))
            .count();
    }
    assert_eq!(probes, 20);
}

#[test]
fn i17_core_accepts_a_verdict_once_when_its_voters_are_members_and_relays_it() {
    let mut one = One::new(40);
    let x = one.members[9].clone();
    let voters = vec![
        one.members[1].clone(),
        one.members[2].clone(),
        one.members[3].clone(),
    ];
    let span = 20;
    let verdict = |voters: Vec<NodeId>, inc: u64| {
        MonitorMsg::Verdict(Verdict {
            target: x.clone(),
            incarnation: inc,
            voters,
            span,
            backward: false,
        })
    };
    let from = one.members[5].clone();
    let out = one.msg(&from, verdict(voters.clone(), 1));
    assert_eq!(out.reports.len(), 1);
    assert_eq!(out.reports[0].source, ReportSource::Relayed);
    let relayed: u32 = out
        .send
        .iter()
        .map(|(_, m)| match m {
            MonitorMsg::Verdict(v) => v.span,
            other => panic!("only relays, got {other:?}"),
        })
        .sum();
    assert_eq!(
        relayed,
        span - 1,
        "the children cover the rest of the interval"
    );
    let again = one.msg(&from, verdict(voters.clone(), 1));
    assert!(again.reports.is_empty(), "at most once");
    assert!(
        !again.send.is_empty(),
        "a second tree's copy is relayed too"
    );
    // Voters that are not members: nothing at all.
    let strangers = vec![id("s1"), id("s2"), id("s3")];
    let out = one.msg(&from, verdict(strangers, 1));
    assert!(out.reports.is_empty() && out.send.is_empty());
    // Another incarnation: relayed, not reported.
    let out = one.msg(&from, verdict(voters, 2));
    assert!(out.reports.is_empty());
    // About this node: not applied, confidence gone.
    let me = one.me();
    let out = one.msg(
        &from,
        MonitorMsg::Verdict(Verdict {
            target: me,
            incarnation: 1,
            voters: vec![
                one.members[1].clone(),
                one.members[2].clone(),
                one.members[3].clone(),
            ],
            span: 5,
            backward: true,
        }),
    );
    assert!(out.reports.is_empty() && out.send.is_empty());
    assert_eq!(one.core.health(), 8);
    assert_eq!(one.core.stats().verdicts_about_me, 1);
}

#[test]
fn i17_core_an_unreachable_child_hands_its_interval_to_its_own_children() {
    let mut one = One::new(40);
    let x = one.members[9].clone();
    let me = one.me();
    let span = one.core.ring().broadcast_span(&x);
    let children: Vec<(NodeId, usize)> = one
        .core
        .ring()
        .broadcast_children(&me, &x, span, false)
        .unwrap()
        .into_iter()
        .map(|(n, s)| (n.clone(), s))
        .collect();
    let (child, child_span) = children[0].clone();
    let v = Verdict {
        target: x.clone(),
        incarnation: 1,
        voters: vec![],
        span: child_span as u32,
        backward: false,
    };
    one.core
        .on_unsendable(&child, MonitorMsg::Verdict(v), one.now);
    let out = one.core.ready();
    let total: usize = out
        .send
        .iter()
        .map(|(to, m)| match m {
            MonitorMsg::Verdict(v) => {
                assert_ne!(*to, child);
                v.span as usize
            }
            _ => 0,
        })
        .sum();
    assert_eq!(
        total,
        child_span - 1,
        "the child's interval but the child itself"
    );
}

#[test]
fn i17_core_fs1_a_stall_saturates_health_restarts_rounds_and_withholds_votes() {
    let mut one = One::new(30);
    let x = one.targets()[0].clone();
    one.run_answering(one.base + 3 * I, |_| true);
    assert_eq!(one.core.health(), 0);
    // The process sleeps 8 s: nothing answered, no tick.
    one.now += 8 * I;
    one.core.tick(one.now);
    let out = one.core.ready();
    assert_eq!(one.core.health(), 8);
    assert_eq!(one.core.stats().stalls, 1);
    assert_eq!(
        one.core.stats().failed_rounds,
        0,
        "rounds restart, none fails"
    );
    let probed: BTreeSet<NodeId> = out
        .send
        .iter()
        .filter(|(_, m)| matches!(m, MonitorMsg::Probe { .. }))
        .map(|(to, _)| to.clone())
        .collect();
    assert_eq!(probed.len(), 5, "every target is probed again at once");
    // Nobody answers yet (the peers wait for its handshakes): it suspects
    // every target, but sends no vote and reports nothing.
    let sent = one.run_answering(one.now + 40 * I, |_| false);
    assert!(one.core.suspected_since(&x).is_some());
    assert_eq!(one.core.health(), 8);
    assert!(
        !sent
            .iter()
            .any(|(_, m)| matches!(m, MonitorMsg::Vote { .. })),
        "health ≥ vote_limit: no votes"
    );
    // The answers come back: successful rounds bring the score down and
    // end the suspicions, with nothing to retract.
    let sent = one.run_answering(one.now + 20 * I, |_| true);
    assert_eq!(one.core.health(), 0);
    assert_eq!(one.core.suspected_since(&x), None);
    assert!(
        !sent
            .iter()
            .any(|(_, m)| matches!(m, MonitorMsg::Vote { .. }))
    );
}

#[test]
fn i17_core_topology_drops_departed_targets_and_withdraws_votes_when_the_ring_moves() {
    let mut one = One::new(30);
    let x = one.targets()[0].clone();
    fail_rounds_of(&mut one, &x, |o| o.base + 2 * I + Duration::from_millis(10));
    assert!(one.core.suspected_since(&x).is_some());
    // x restarts with incarnation 2: the old suspicion is gone.
    let members = one.members.clone();
    one.core.on_view(
        members.iter().map(|m| (m, if *m == x { 2 } else { 1 })),
        one.now,
    );
    assert_eq!(one.core.suspected_since(&x), None);
    assert_eq!(
        one.core.targets().find(|(n, _)| **n == x).map(|(_, i)| i),
        Some(2)
    );
    // x's incarnation 1 is not ours any more: a vote about it changes nothing.
    let co: Vec<NodeId> = one.co_monitors(&x).into_iter().collect();
    let out = one.msg(
        &co[0],
        MonitorMsg::Vote {
            target: x.clone(),
            incarnation: 1,
            suspect: true,
        },
    );
    assert!(out.send.is_empty() && out.reports.is_empty());

    // A member joins between x and us so x is no longer our target (the
    // ring moves): the suspicion's votes are withdrawn.
    let mut one = One::new(8);
    let x = one.targets()[0].clone();
    fail_rounds_of(&mut one, &x, |o| o.base + 2 * I + Duration::from_millis(10));
    assert!(one.core.suspected_since(&x).is_some());
    let mut members = one.members.clone();
    let mut added = 0;
    let mut i = 0;
    while one.core.targets().any(|(n, _)| *n == x) {
        members.push(id(&format!("joiner-{i}")));
        i += 1;
        one.core.on_view(members.iter().map(|m| (m, 1)), one.now);
        let out = one.core.ready();
        added += out
            .send
            .iter()
            .filter(|(_, m)| matches!(m, MonitorMsg::Vote { target, suspect: false, .. } if *target == x))
            .count();
    }
    assert!(added >= 1, "the votes about x are withdrawn");
}

/// R4.3 in ring mode: a Degraded topology drops a ring member it no
/// longer lists (and the ring moves around the gap), but monitors nobody
/// new, and a topology listing everyone changes nothing.
#[test]
fn r4_3_i17_core_a_degraded_topology_drops_departures_and_adds_nobody() {
    let mut one = One::new(12);
    let x = one.targets()[0].clone();
    let topology = |ids: &[NodeId]| Topology {
        members: ids
            .iter()
            .map(|n| {
                let address = MemberAddress::new("127.0.0.1", 4000).expect("address");
                Member::new(n.clone(), address, 1)
            })
            .collect(),
        status: ProvisioningStatus::Degraded,
        ..Topology::starting()
    };
    let before: Vec<NodeId> = one.targets();
    one.core
        .on_degraded_topology(&topology(&one.members.clone()), one.now);
    assert_eq!(one.targets(), before, "everyone listed: nothing changes");

    // x left, and a newcomer is listed: x is dropped, the newcomer is not
    // monitored, and nothing is sent about x any more.
    let mut listed: Vec<NodeId> = one.members.iter().filter(|m| **m != x).cloned().collect();
    let newcomer = id("newcomer");
    listed.push(newcomer.clone());
    one.core.on_degraded_topology(&topology(&listed), one.now);
    assert!(!one.core.ring().contains(&x));
    assert!(
        !one.core.ring().contains(&newcomer),
        "nobody new while Degraded"
    );
    assert!(one.targets().iter().all(|t| *t != x && *t != newcomer));
    let sent = one.run_answering(one.now + 3 * I, |_| true);
    assert!(!sent.iter().any(|(to, _)| *to == x || *to == newcomer));
}

#[test]
fn i17_core_a_quarantined_target_is_not_probed_again() {
    let mut one = One::new(30);
    let x = one.targets()[0].clone();
    one.run_answering(one.base + 2 * I, |_| true);
    one.core.on_quarantined(&x, 1, one.now);
    let sent = one.run_answering(one.now + 5 * I, |_| true);
    assert!(!sent.iter().any(|(to, _)| *to == x));
}

#[test]
fn i17_core_phi_mode_extends_the_direct_phase_while_the_target_is_trusted() {
    let mut cfg = ring_config();
    cfg.detector = MonitoringDetector::PhiAccrual;
    let mut one = One::with(30, cfg);
    // Acks for a while: the detector learns a 1 s rhythm.
    one.run_answering(one.base + 20 * I, |_| true);
    let x = one.targets()[0].clone();
    let sent = fail_rounds_of(&mut one, &x, |o| o.now + 6 * I);
    assert!(
        sent.iter()
            .any(|(_, m)| matches!(m, MonitorMsg::PingReq { .. }))
    );
    assert!(
        one.core.suspected_since(&x).is_some(),
        "silence is still found"
    );
}

// ---- laws over one core (proptest) -----------------------------------------

#[derive(Clone, Debug)]
enum Input {
    Tick(u64),
    Ack {
        from: usize,
    },
    AnswerPingReq {
        from: usize,
        reached: bool,
    },
    Vote {
        from: usize,
        about: usize,
        inc: u64,
        suspect: bool,
    },
    Verdict {
        about: usize,
        voters: Vec<usize>,
        inc: u64,
    },
    PingReq {
        from: usize,
        about: usize,
    },
    SignOfLife {
        from: usize,
    },
    View {
        drop: usize,
        bump: usize,
    },
}

fn input(n: usize, with_votes: bool) -> impl Strategy<Value = Input> {
    let common = prop_oneof![
        6 => (1u64..1500).prop_map(Input::Tick),
        3 => (0..n).prop_map(|from| Input::Ack { from }),
        1 => (0..n, any::<bool>()).prop_map(|(from, reached)| Input::AnswerPingReq { from, reached }),
        1 => (0..n, 0..n).prop_map(|(from, about)| Input::PingReq { from, about }),
        1 => (0..n).prop_map(|from| Input::SignOfLife { from }),
        1 => (0..n, 0..n).prop_map(|(drop, bump)| Input::View { drop, bump }),
    ];
    if with_votes {
        prop_oneof![
            8 => common,
            3 => (0..n, 0..n, 1u64..3, any::<bool>())
                .prop_map(|(from, about, inc, suspect)| Input::Vote { from, about, inc, suspect }),
            1 => (0..n, prop::collection::vec(0..n + 3, 0..6), 1u64..3)
                .prop_map(|(about, voters, inc)| Input::Verdict { about, voters, inc }),
        ]
        .boxed()
    } else {
        common.boxed()
    }
}

/// Everything the laws need to know about one run.
struct Trace {
    config: MonitoringConfig,
    n: usize,
}

impl Trace {
    /// Runs `inputs` against a core of `n` members (member 0 is the core),
    /// checking laws 4, 5, 8 and 10 step by step; returns the outputs.
    fn run(&self, inputs: &[Input], seed: u64) -> Vec<(usize, MonitorReady)> {
        let members = ids(self.n);
        let stranger = |i: usize| id(&format!("stranger-{i}"));
        let node = |i: usize| members.get(i).cloned().unwrap_or_else(|| stranger(i));
        let base = Instant::now();
        let mut now = base;
        let mut incs: Vec<u64> = vec![1; self.n];
        let mut present: Vec<bool> = vec![true; self.n];
        let mut core = Monitoring::new(self.config.clone(), members[0].clone(), seed);
        core.on_view(members.iter().map(|m| (m, 1)), now);
        let mut outs = vec![(core.ring().k_eff(), core.ready())];
        // Votes received: (target, inc) → voter → (time, suspect).
        let mut votes: HashMap<(NodeId, u64), HashMap<NodeId, (Instant, bool)>> = HashMap::new();
        let mut reported: BTreeSet<(NodeId, u64)> = BTreeSet::new();
        let mut last_probe_seq: HashMap<NodeId, u64> = HashMap::new();
        let mut last_req: Option<(NodeId, u64, NodeId)> = None;
        for inp in inputs {
            let before = core.health();
            let suspected_before: HashMap<NodeId, Instant> = core
                .targets()
                .filter_map(|(t, _)| core.suspected_since(t).map(|s| (t.clone(), s)))
                .collect();
            let ring_len = core.ring().len();
            let k = core.ring().k_eff();
            let is_tick = matches!(inp, Input::Tick(_));
            match inp {
                Input::Tick(ms) => {
                    now += Duration::from_millis(*ms);
                    core.tick(now);
                }
                Input::Ack { from } => {
                    let from = node(*from);
                    let seq = last_probe_seq.get(&from).copied().unwrap_or(0);
                    core.on_message(&from, MonitorMsg::Ack { seq }, now);
                }
                Input::AnswerPingReq { from, reached } => {
                    if let Some((helper, seq, target)) = last_req.clone() {
                        let who = if *from % 2 == 0 { helper } else { node(*from) };
                        core.on_message(
                            &who,
                            MonitorMsg::PingReqAnswer {
                                seq,
                                target,
                                reached: *reached,
                            },
                            now,
                        );
                    }
                }
                Input::Vote {
                    from,
                    about,
                    inc,
                    suspect,
                } => {
                    let (from, about) = (node(*from), node(*about));
                    votes
                        .entry((about.clone(), *inc))
                        .or_default()
                        .insert(from.clone(), (now, *suspect));
                    core.on_message(
                        &from,
                        MonitorMsg::Vote {
                            target: about,
                            incarnation: *inc,
                            suspect: *suspect,
                        },
                        now,
                    );
                }
                Input::Verdict { about, voters, inc } => {
                    let v = Verdict {
                        target: node(*about),
                        incarnation: *inc,
                        voters: voters.iter().map(|&i| node(i)).collect(),
                        span: 3,
                        backward: false,
                    };
                    core.on_message(&node(1), MonitorMsg::Verdict(v), now);
                }
                Input::PingReq { from, about } => {
                    core.on_message(
                        &node(*from),
                        MonitorMsg::PingReq {
                            seq: 1,
                            target: node(*about),
                            incarnation: 1,
                        },
                        now,
                    );
                }
                Input::SignOfLife { from } => core.on_sign_of_life(&node(*from), now),
                Input::View { drop, bump } => {
                    if *drop != 0 {
                        present[*drop] = !present[*drop];
                    }
                    if *bump != 0 {
                        incs[*bump] += 1;
                    }
                    let view: Vec<(NodeId, u64)> = (0..self.n)
                        .filter(|&i| present[i])
                        .map(|i| (members[i].clone(), incs[i]))
                        .collect();
                    core.on_view(view.iter().map(|(m, i)| (m, *i)), now);
                    // Law 5's episode: a (node, inc) that left the view may be
                    // reported again once it is back.
                    reported.retain(|(m, i)| view.contains(&(m.clone(), *i)));
                }
            }
            let out = core.ready();
            let after = core.health();
            let current: BTreeSet<NodeId> = (0..self.n)
                .filter(|&i| present[i])
                .map(|i| members[i].clone())
                .collect();
            // Law 8: 0 ≤ s ≤ S; votes only below the limit.
            prop_assert_le_helper(after <= self.config.health_max, "health above its ceiling");
            if is_tick {
                for (_, m) in &out.send {
                    if matches!(m, MonitorMsg::Vote { suspect: true, .. }) {
                        prop_assert_le_helper(
                            before < self.config.vote_limit,
                            "a vote while health ≥ vote_limit",
                        );
                    }
                }
            }
            for (to, m) in &out.send {
                match m {
                    MonitorMsg::Probe { seq } => {
                        last_probe_seq.insert(to.clone(), *seq);
                    }
                    MonitorMsg::PingReq { seq, target, .. } => {
                        last_req = Some((to.clone(), *seq, target.clone()));
                    }
                    _ => {}
                }
            }
            for r in &out.reports {
                // Law 5: at most once per (node, incarnation) and episode.
                prop_assert_le_helper(
                    reported.insert((r.node.clone(), r.incarnation)),
                    "reported twice",
                );
                prop_assert_le_helper(r.node != members[0], "reported itself");
                if r.source == ReportSource::Local {
                    // Law 4: the quorum, from distinct members, unexpired.
                    let q = q_eff(self.config.quorum, k);
                    let live: BTreeSet<NodeId> = votes
                        .get(&(r.node.clone(), r.incarnation))
                        .map(|v| {
                            v.iter()
                                .filter(|(voter, (at, suspect))| {
                                    *suspect
                                        && now.saturating_duration_since(*at) < self.config.vote_ttl
                                        && current.contains(*voter)
                                        && **voter != members[0]
                                })
                                .map(|(voter, _)| voter.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    prop_assert_le_helper(live.len() + 1 >= q, "reported without a quorum");
                    prop_assert_le_helper(
                        core.suspected_since(&r.node).is_some(),
                        "reported without suspecting it itself",
                    );
                    let all = live.len() + 1 >= k;
                    let since = suspected_before.get(&r.node).copied().unwrap_or(now);
                    prop_assert_le_helper(
                        all || now.saturating_duration_since(since) >= self.config.t_min(ring_len),
                        "reported before T_min",
                    );
                    prop_assert_le_helper(
                        before < self.config.vote_limit || after < self.config.vote_limit,
                        "reported while unhealthy",
                    );
                }
            }
            outs.push((core.ring().k_eff(), out));
        }
        outs
    }
}

/// Panics with the law's name (proptest shrinks on panics too).
fn prop_assert_le_helper(ok: bool, law: &str) {
    assert!(ok, "law broken: {law}");
}

fn config_strategy() -> impl Strategy<Value = MonitoringConfig> {
    (2usize..=6, 0usize..=5, 1u32..=8, 0u32..=7, any::<bool>()).prop_map(
        |(k, r, health_max, vote_limit, phi)| {
            let quorum = 2 + (k - 2) / 2;
            MonitoringConfig {
                mode: MonitoringMode::Ring,
                monitors: k,
                quorum,
                indirect_fanout: r.min(k - 1),
                health_max,
                vote_limit: 1 + vote_limit % health_max,
                detector: if phi {
                    MonitoringDetector::PhiAccrual
                } else {
                    MonitoringDetector::Timeout
                },
                ..MonitoringConfig::default()
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Law 3: with k_eff ≥ 2 and no vote or verdict from another member, no
    /// input sequence makes the core report a quarantine.
    #[test]
    fn i17_law3_no_single_witness(
        config in config_strategy(),
        n in 3usize..40,
        inputs in prop::collection::vec(input(40, false), 1..300),
        seed in any::<u64>(),
    ) {
        prop_assume!(config.validate().is_ok());
        let inputs: Vec<Input> = inputs.into_iter().map(|i| clamp(i, n)).collect();
        let outs = Trace { config, n }.run(&inputs, seed);
        // A view of two members has k_eff = 1: one witness is all there is.
        prop_assert!(outs.iter().all(|(k, o)| *k < 2 || o.reports.is_empty()));
    }

    /// Laws 4, 5, 8 and 10 (checked at every step by `Trace::run`) and 11:
    /// the same seed, config and inputs give the same outputs.
    #[test]
    fn i17_laws_quorum_once_health_topology_and_determinism(
        config in config_strategy(),
        n in 3usize..40,
        inputs in prop::collection::vec(input(40, true), 1..300),
        seed in any::<u64>(),
    ) {
        prop_assume!(config.validate().is_ok());
        let inputs: Vec<Input> = inputs.into_iter().map(|i| clamp(i, n)).collect();
        let trace = Trace { config, n };
        let a = trace.run(&inputs, seed);
        let b = trace.run(&inputs, seed);
        type Outputs = Vec<(Vec<(NodeId, MonitorMsg)>, Vec<MonitorReport>)>;
        let strip = |o: &Vec<(usize, MonitorReady)>| -> Outputs {
            o.iter().map(|(_, r)| (r.send.clone(), r.reports.clone())).collect()
        };
        prop_assert_eq!(strip(&a), strip(&b));
    }

    /// Law 10: once a member has left the view, the core sends nothing
    /// about it (no probe, request or vote) until it is back.
    #[test]
    fn i17_law10_nothing_about_departed_members(
        n in 6usize..30,
        gone in 1usize..6,
        inputs in prop::collection::vec(input(30, true), 1..200),
    ) {
        let members = ids(n);
        let gone = members[gone].clone();
        let base = Instant::now();
        let mut now = base;
        let mut core = Monitoring::new(ring_config(), members[0].clone(), 3);
        core.on_view(members.iter().map(|m| (m, 1)), now);
        core.ready();
        core.on_view(members.iter().filter(|m| **m != gone).map(|m| (m, 1)), now);
        core.ready();
        for inp in inputs {
            match clamp(inp, n) {
                Input::Tick(ms) => {
                    now += Duration::from_millis(ms);
                    core.tick(now);
                }
                Input::Vote { from, about, inc, suspect } => core.on_message(
                    &members[from],
                    MonitorMsg::Vote { target: members[about].clone(), incarnation: inc, suspect },
                    now,
                ),
                Input::Ack { from } | Input::SignOfLife { from } => {
                    core.on_sign_of_life(&members[from], now)
                }
                _ => core.tick(now),
            }
            let out = core.ready();
            for (to, m) in &out.send {
                let about = match m {
                    MonitorMsg::PingReq { target, .. } | MonitorMsg::Vote { target, .. } => Some(target),
                    _ => None,
                };
                prop_assert!(*to != gone || matches!(m, MonitorMsg::Ack { .. }), "sent {m:?} to a departed member");
                prop_assert!(about != Some(&gone), "sent {m:?} about a departed member");
            }
            prop_assert!(out.reports.iter().all(|r| r.node != gone));
        }
    }
}

fn clamp(i: Input, n: usize) -> Input {
    let c = |x: usize| x % n;
    match i {
        Input::Ack { from } => Input::Ack { from: c(from) },
        Input::AnswerPingReq { from, reached } => Input::AnswerPingReq {
            from: c(from),
            reached,
        },
        Input::Vote {
            from,
            about,
            inc,
            suspect,
        } => Input::Vote {
            from: c(from),
            about: c(about),
            inc,
            suspect,
        },
        Input::Verdict { about, voters, inc } => Input::Verdict {
            about: c(about),
            // Strangers (ids beyond n) stay possible: n..n + 3.
            voters: voters
                .into_iter()
                .map(|v| if v >= 40 { n + (v - 40) } else { c(v) })
                .collect(),
            inc,
        },
        Input::PingReq { from, about } => Input::PingReq {
            from: c(from),
            about: c(about),
        },
        Input::SignOfLife { from } => Input::SignOfLife { from: c(from) },
        Input::View { drop, bump } => Input::View {
            drop: c(drop),
            bump: c(bump),
        },
        t => t,
    }
}

// ---- a small network of real cores -------------------------------------------

/// A loss-free network of cores with a fixed one-way latency; `cut(from,
/// to)` drops a message.
struct Net {
    cores: Vec<Monitoring>,
    index: HashMap<NodeId, usize>,
    base: Instant,
    queue: BinaryHeap<Reverse<(Duration, u64, usize, Ev)>>,
    seq: u64,
    latency: Duration,
    wake: Vec<Option<Duration>>,
    crashed: Vec<bool>,
    /// Nodes whose inbound traffic is cut (they still send).
    deaf: Vec<bool>,
    /// Messages sent per node.
    sent: Vec<u64>,
    reports: Vec<(Duration, usize, MonitorReport)>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Wake,
    Deliver(usize, MsgKey),
}

/// Messages are kept beside the queue (MonitorMsg is not `Ord`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MsgKey(u64);

impl Net {
    fn new(n: usize, seed: u64) -> (Self, HashMap<u64, MonitorMsg>) {
        let members = ids(n);
        let base = Instant::now();
        let cores: Vec<Monitoring> = members
            .iter()
            .enumerate()
            .map(|(i, m)| Monitoring::new(ring_config(), m.clone(), seed + i as u64))
            .collect();
        let index = members
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, m)| (m, i))
            .collect();
        let mut net = Self {
            cores,
            index,
            base,
            queue: BinaryHeap::new(),
            seq: 0,
            latency: Duration::from_millis(1),
            wake: vec![None; n],
            crashed: vec![false; n],
            deaf: vec![false; n],
            sent: vec![0; n],
            reports: Vec::new(),
        };
        let mut store = HashMap::new();
        for i in 0..n {
            net.cores[i].on_view(members.iter().map(|m| (m, 1)), base);
            net.after(i, Duration::ZERO, &mut store);
        }
        (net, store)
    }

    fn after(&mut self, i: usize, now: Duration, store: &mut HashMap<u64, MonitorMsg>) {
        let ready = self.cores[i].ready();
        for (to, msg) in ready.send {
            self.sent[i] += 1;
            let Some(&j) = self.index.get(&to) else {
                continue;
            };
            self.seq += 1;
            store.insert(self.seq, msg);
            self.queue.push(Reverse((
                now + self.latency,
                self.seq,
                j,
                Ev::Deliver(i, MsgKey(self.seq)),
            )));
        }
        for r in ready.reports {
            self.reports.push((now, i, r));
        }
        if let Some(at) = ready.wake_at {
            let d = at - self.base;
            if self.wake[i] != Some(d) {
                self.wake[i] = Some(d);
                self.seq += 1;
                self.queue.push(Reverse((d, self.seq, i, Ev::Wake)));
            }
        }
    }

    fn run(&mut self, until: Duration, store: &mut HashMap<u64, MonitorMsg>) {
        while let Some(Reverse((t, _, i, ev))) = self.queue.peek().cloned() {
            if t > until {
                break;
            }
            self.queue.pop();
            if self.crashed[i] {
                continue;
            }
            let now = self.base + t;
            match ev {
                Ev::Wake => {
                    if self.wake[i] != Some(t) {
                        continue;
                    }
                    self.wake[i] = None;
                    self.cores[i].tick(now);
                }
                Ev::Deliver(from, key) => {
                    let msg = store.remove(&key.0).unwrap();
                    if self.crashed[from] || self.deaf[i] {
                        continue;
                    }
                    let from = self.cores[from].me().clone();
                    self.cores[i].on_message(&from, msg, now);
                }
            }
            self.after(i, t, store);
        }
    }
}

#[test]
fn i17_law9_messages_per_node_per_interval_do_not_depend_on_n() {
    let mut per_node = Vec::new();
    for n in [10usize, 100, 1000] {
        let (mut net, mut store) = Net::new(n, 1);
        net.run(2 * I, &mut store);
        let before: u64 = net.sent.iter().sum();
        net.run(12 * I, &mut store);
        let after: u64 = net.sent.iter().sum();
        let rate = (after - before) as f64 / n as f64 / 10.0;
        assert!(
            net.reports.is_empty(),
            "n = {n}: nobody reported without faults"
        );
        per_node.push((n, rate));
    }
    for (n, rate) in &per_node {
        // 2k per interval: k probes sent and k acks to the k monitors.
        assert!(
            (*rate - 10.0).abs() < 0.5,
            "n = {n}: {rate} messages per node per interval"
        );
    }
}

#[test]
fn i17_law6_a_crash_is_reported_by_a_quorum_within_2i_plus_t_min() {
    for n in [10usize, 100] {
        let (mut net, mut store) = Net::new(n, 5);
        net.run(3 * I, &mut store);
        let victim = 3;
        net.crashed[victim] = true;
        let crashed_at = 3 * I;
        net.run(20 * I, &mut store);
        let victim_id = net.cores[victim].me().clone();
        let first_local = net
            .reports
            .iter()
            .find(|(_, _, r)| r.node == victim_id && r.source == ReportSource::Local)
            .expect("the crash is reported");
        let t_min = ring_config().t_min(n);
        let bound = 2 * I + t_min + Duration::from_millis(50);
        assert!(
            first_local.0 - crashed_at <= bound,
            "n = {n}: reported {:?} after the crash (bound {bound:?})",
            first_local.0 - crashed_at
        );
        assert!(first_local.2.voters.len() >= 3, "a quorum of 3 voted");
        // Everybody else learns it (its own quorum or a relayed verdict).
        let mut told: BTreeMap<usize, usize> = BTreeMap::new();
        for (_, i, r) in &net.reports {
            if r.node == victim_id {
                *told.entry(*i).or_default() += 1;
            }
        }
        assert_eq!(told.len(), n - 1, "n = {n}: every live node reports it");
        assert!(
            told.values().all(|c| *c == 1),
            "n = {n}: once each: {told:?}"
        );
        // The helpers' nacks arrive within the requesters' rounds: nobody
        // lowered its own confidence over a dead target.
        for (i, c) in net.cores.iter().enumerate() {
            if i != victim {
                assert_eq!(
                    c.stats().missed_nacks,
                    0,
                    "n = {n}: node {i} counted a missed nack"
                );
            }
        }
        assert!(
            net.reports.iter().all(|(_, _, r)| r.node == victim_id),
            "only the victim"
        );
    }
}

#[test]
fn i17_a_node_that_hears_nothing_quarantines_nobody() {
    // Node 0's inbound traffic is cut: it hears no ack, no vote, nothing.
    let n = 30;
    let (mut net, mut store) = Net::new(n, 9);
    net.run(2 * I, &mut store);
    let deaf = 0;
    net.deaf[deaf] = true;
    net.run(30 * I, &mut store);
    let deaf_id = net.cores[deaf].me().clone();
    let wrong: Vec<&MonitorReport> = net
        .reports
        .iter()
        .filter(|(_, _, r)| r.node != deaf_id)
        .map(|(_, _, r)| r)
        .collect();
    assert!(wrong.is_empty(), "healthy nodes quarantined: {wrong:?}");
    assert!(
        net.cores[deaf].stats().votes_sent <= 5,
        "at most vote_limit − 1 = 1 suspicion's votes (k = 5 messages), sent {}",
        net.cores[deaf].stats().votes_sent
    );
    assert!(net.cores[deaf].health() >= 2);
    // Its monitors hear nothing from it either (it hears no probe to
    // answer): it is the one quarantined, by a quorum.
    assert!(net.reports.iter().any(|(_, _, r)| r.node == deaf_id));
}

#[test]
fn i17_core_a_target_never_heard_is_not_suspected() {
    // A joining node that refuses or ignores its monitors until its own
    // view lists them (design §2.9): its failed rounds suspect nothing.
    let members = ids(30);
    let base = Instant::now();
    let mut core = Monitoring::new(ring_config(), members[0].clone(), 1);
    core.on_view(members.iter().map(|m| (m, 1)), base);
    let mut one = One {
        core,
        base,
        now: base,
        members,
    };
    let x = one.targets()[0].clone();
    let sent = fail_rounds_of(&mut one, &x, |o| o.base + 6 * I);
    assert!(one.core.stats().failed_rounds >= 4);
    assert_eq!(one.core.suspected_since(&x), None);
    assert!(
        !sent
            .iter()
            .any(|(_, m)| matches!(m, MonitorMsg::Vote { .. }))
    );
    // Once heard (an answer, or a refusal the driver reports), it is.
    one.core.on_sign_of_life(&x, one.now);
    fail_until_suspected(&mut one, &x);
}

#[test]
fn i17_a_crash_with_two_of_its_monitors_is_still_reported() {
    // Design §2.9: X and its two nearest monitors crash together; the
    // three live monitors still make q = 3.
    let n = 40;
    let (mut net, mut store) = Net::new(n, 11);
    net.run(3 * I, &mut store);
    let victim = 5;
    let victim_id = net.cores[victim].me().clone();
    let monitors: Vec<usize> = net.cores[0]
        .ring()
        .watchers_of(&victim_id)
        .unwrap()
        .map(|m| net.index[m])
        .collect();
    for i in [victim, monitors[0], monitors[1]] {
        net.crashed[i] = true;
    }
    net.run(20 * I, &mut store);
    for id in [victim, monitors[0], monitors[1]] {
        let who = net.cores[id].me().clone();
        let reporters: BTreeSet<usize> = net
            .reports
            .iter()
            .filter(|(_, _, r)| r.node == who)
            .map(|(_, i, _)| *i)
            .collect();
        assert_eq!(reporters.len(), n - 3, "{who} reported by every live node");
    }
    assert_eq!(net.reports.len(), 3 * (n - 3), "nobody else reported");
}

#[test]
fn i17_core_a_monitor_that_learns_a_verdict_roots_its_own_trees() {
    let mut one = One::new(40);
    let x = one.targets()[0].clone();
    let co: Vec<NodeId> = one.co_monitors(&x).into_iter().collect();
    let verdict = MonitorMsg::Verdict(Verdict {
        target: x.clone(),
        incarnation: 1,
        voters: co[..3].to_vec(),
        span: 1,
        backward: false,
    });
    let from = co[0].clone();
    let out = one.msg(&from, verdict.clone());
    assert_eq!(out.reports.len(), 1);
    let (mut forward, mut backward) = (0, 0);
    for (_, m) in &out.send {
        if let MonitorMsg::Verdict(v) = m {
            if v.backward {
                backward += v.span;
            } else {
                forward += v.span;
            }
        }
    }
    // Its own trees cover every member but itself and x, both ways (the
    // interval it was given, span 1, is itself only).
    assert_eq!((forward, backward), (38, 38));
    // A second copy is relayed (span 1: nothing) and roots nothing more.
    let again = one.msg(&from, verdict);
    assert!(again.reports.is_empty() && again.send.is_empty());
}

#[test]
fn i17_core_a_quarantine_does_not_lower_the_quorum_for_the_next() {
    // Five nodes, one quarantined (blocked in the topology): the view has
    // four members (k_eff = 3), but the quorum stays that of five (3),
    // where a view of four alone would need 2.
    use cluster_core::{BlockedMember, Member, MemberAddress, Topology};
    let members = ids(5);
    let member = |n: &NodeId| Member::new(n.clone(), MemberAddress::new("h", 1).unwrap(), 1);
    let report_with = |blocked: bool| {
        let listed: Vec<Member> = members[..4].iter().map(member).collect();
        let mut topology = Topology::starting();
        topology.members = listed.into();
        if blocked {
            topology.blocked = vec![BlockedMember {
                node_id: members[4].clone(),
                incarnation: 1,
            }]
            .into();
        }
        let base = Instant::now();
        let mut core = Monitoring::new(ring_config(), members[0].clone(), 3);
        core.on_topology(&topology, base);
        for m in &members[..4] {
            core.on_sign_of_life(m, base);
        }
        let mut one = One {
            core,
            base,
            now: base,
            members: members[..4].to_vec(),
        };
        let x = one.targets()[0].clone();
        let co: Vec<NodeId> = one.co_monitors(&x).into_iter().collect();
        assert_eq!(co.len(), 2, "k_eff = 3 in a view of four");
        fail_until_suspected(&mut one, &x);
        // One other monitor votes; T_min passes.
        one.msg(
            &co[0],
            MonitorMsg::Vote {
                target: x.clone(),
                incarnation: 1,
                suspect: true,
            },
        );
        let x2 = x.clone();
        let until = one.now + 3 * I;
        let sent = one.run_answering(until, move |t| *t != x2);
        let _ = sent;
        one.core.stats().reports_local
    };
    assert_eq!(report_with(false), 1, "a view of four: 2 votes report");
    assert_eq!(
        report_with(true),
        0,
        "one of five quarantined: 2 votes do not"
    );
}
