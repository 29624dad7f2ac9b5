//! Tests of [`ProvisioningCore`]: the defects of issue 13, each as a test
//! that failed with the previous supervisor, and the laws of the module
//! docs as property tests over arbitrary input sequences (no tokio).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use cluster_core::{MemberAddress, ProviderDescriptor, ProviderId};
use proptest::prelude::*;

use super::*;

fn pid(s: &str) -> ProviderId {
    ProviderId::new(s).expect("id")
}

fn node(i: usize) -> NodeId {
    NodeId::new(format!("n{i}")).expect("node id")
}

fn member(i: usize, incarnation: u64) -> Member {
    Member::new(
        node(i),
        MemberAddress::new("127.0.0.1", 4000 + i as u16).expect("address"),
        incarnation,
    )
}

fn settings() -> CoreSettings {
    CoreSettings {
        local: None,
        failover: FailoverConfig::default(),
        merge: MergeConfig::default(),
        suspect_hold: Duration::from_secs(15),
        activation_failure_threshold: 3,
        quarantine_ttl: None,
        reprobe: Backoff::exponential(Duration::from_secs(30), Duration::from_secs(600)),
    }
}

fn spec(id: &str, priority: u32) -> ProviderSpec {
    ProviderSpec {
        descriptor: ProviderDescriptor::new(pid(id), "memory", priority),
        disabled: None,
        can_register: true,
    }
}

/// A core and the bookkeeping a driver would do: the current instance of
/// each provider's actor, and every event published so far.
struct Harness {
    core: ProvisioningCore,
    now: Instant,
    instance: BTreeMap<ProviderId, u64>,
    events: Vec<Event>,
    last: Ready,
}

impl Harness {
    fn new(core: ProvisioningCore) -> Self {
        Self {
            core,
            now: Instant::now(),
            instance: BTreeMap::new(),
            events: Vec::new(),
            last: Ready::default(),
        }
    }

    /// Takes the Ready and records it as a driver would execute it.
    fn step(&mut self) -> &Ready {
        let r = self.core.ready();
        for s in &r.start {
            self.instance.insert(s.id.clone(), s.first_instance);
        }
        for s in &r.stop {
            self.instance.remove(&s.id);
        }
        self.events.extend(r.events.iter().cloned());
        self.last = r;
        &self.last
    }

    fn add(&mut self, id: &str, priority: u32) {
        self.core.add(spec(id, priority), self.now).expect("add");
        self.step();
    }

    fn event(&mut self, id: &str, event: ProviderEvent) -> &Ready {
        let i = self.instance.get(&pid(id)).copied().unwrap_or(0);
        self.core
            .provider_event(&pid(id), i, event, self.now, SystemTime::now());
        self.step()
    }

    fn snapshot(&mut self, id: &str, members: Vec<Member>) -> &Ready {
        self.event(
            id,
            ProviderEvent::Snapshot(Snapshot {
                members,
                observed_at: SystemTime::now(),
            }),
        )
    }

    /// A provider that started and delivered `members`: Healthy and active.
    fn running(&mut self, id: &str, priority: u32, members: Vec<Member>) {
        self.add(id, priority);
        self.event(id, ProviderEvent::Started);
        self.snapshot(id, members);
    }

    fn restarting(&mut self, id: &str, stream_ended: bool) -> &Ready {
        self.core
            .child_exited(&pid(id), Exit::Restarting { stream_ended }, self.now);
        if let Some(i) = self.instance.get_mut(&pid(id)) {
            *i += 1;
        }
        self.step()
    }

    fn advance(&mut self, d: Duration) -> &Ready {
        self.now += d;
        self.core.tick(self.now, SystemTime::now());
        self.step()
    }

    fn topologies(&self) -> Vec<Arc<Topology>> {
        topologies(&self.events)
    }
}

fn topologies(events: &[Event]) -> Vec<Arc<Topology>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Topology(t) => Some(t.topology.clone()),
            _ => None,
        })
        .collect()
}

fn terminations(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::StreamTerminated(_)))
        .count()
}

/// Issue 13: `ProviderStreamTerminated` fired on every error item of a
/// stream that goes on; it fires only when the stream ends.
#[test]
fn i13_a_stream_error_is_not_a_termination_an_end_is() {
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into()));
    h.running("p", 0, vec![member(1, 1)]);
    for _ in 0..3 {
        h.event(
            "p",
            ProviderEvent::Error(ProviderError::Stream("reset".into())),
        );
    }
    assert_eq!(
        terminations(&h.events),
        0,
        "errors of a stream that goes on"
    );
    let r = h.restarting("p", true);
    assert_eq!(terminations(&r.events), 1, "the stream ended");
    let r = h.restarting("p", false);
    assert_eq!(terminations(&r.events), 0, "a crash is not a stream end");
}

/// Issue 13 (A6, R4.2): a quarantine reported while the status is
/// Starting or Unavailable published a topology that still listed the node
/// unblocked.
#[test]
fn i13_a6_a_quarantine_while_starting_or_unavailable_blocks_the_node() {
    // Starting, from a restored topology that lists n1.
    let mut restored = Topology::starting();
    restored.members = Arc::from(vec![member(1, 1), member(2, 1)]);
    restored.hash = TopologyHash::of_sorted(&restored.members);
    restored.status = ProvisioningStatus::Active;
    restored.seq_no = 7;
    restored.stale = true;
    let core =
        ProvisioningCore::restore(settings(), "t".into(), Checkpoint::from_topology(restored));
    let mut h = Harness::new(core);
    h.add("p", 0);
    assert_eq!(h.core.status(), ProvisioningStatus::Starting);
    h.core.quarantine(node(1), 1, "unreachable".into(), h.now);
    let r = h.step();
    let [Event::Quarantined(q), Event::Topology(t), ..] = r.events.as_slice() else {
        panic!("quarantine then topology: {:?}", r.events);
    };
    assert_eq!(q.seq_no, t.topology.seq_no);
    assert!(t.topology.seq_no > 7);
    assert!(t.topology.members.iter().all(|m| m.node_id != node(1)));
    assert!(t.topology.blocked.iter().any(|b| b.node_id == node(1)));
    assert_eq!(t.topology.status, ProvisioningStatus::Starting);

    // Unavailable: the only provider failed after it was active.
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into()));
    h.running("p", 0, vec![member(1, 1), member(2, 1)]);
    h.core.child_exited(&pid("p"), Exit::Stopped, h.now);
    h.step();
    assert_eq!(h.core.status(), ProvisioningStatus::Unavailable);
    h.core.quarantine(node(2), 1, "unreachable".into(), h.now);
    let r = h.step();
    let t = topologies(&r.events).pop().expect("a topology");
    assert_eq!(t.status, ProvisioningStatus::Unavailable);
    assert!(t.members.iter().all(|m| m.node_id != node(2)));
    assert!(
        t.members.iter().any(|m| m.node_id == node(1)),
        "the last members stay"
    );
}

/// Issue 13: a published topology was always `stale: false`, even the
/// restored, unconfirmed one.
#[test]
fn i13_r1_5_a_restored_topology_stays_stale_until_a_provider_confirms_it() {
    let mut restored = Topology::starting();
    restored.members = Arc::from(vec![member(1, 1)]);
    restored.hash = TopologyHash::of_sorted(&restored.members);
    restored.status = ProvisioningStatus::Active;
    restored.seq_no = 3;
    restored.stale = true;
    let core =
        ProvisioningCore::restore(settings(), "t".into(), Checkpoint::from_topology(restored));
    let mut h = Harness::new(core);
    h.add("p", 0);
    h.event("p", ProviderEvent::Started);
    assert!(h.core.published().stale, "restored, nothing confirmed");
    assert!(h.topologies().iter().all(|t| t.stale));
    h.snapshot("p", vec![member(1, 1)]);
    let last = h.topologies().pop().expect("published");
    assert!(!last.stale, "confirmed by a snapshot");
    assert!(!h.core.published().stale);
}

/// Issue 13: a restarted supervisor forgot that it was draining (a drained
/// node could register again) and its quarantines.
#[test]
fn i13_a_restored_core_keeps_its_quarantines_and_its_draining_state() {
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into()));
    h.running("p", 0, vec![member(1, 1), member(2, 1)]);
    h.core.quarantine(node(2), 1, "unreachable".into(), h.now);
    h.step();
    let seq = h.core.published().seq_no;
    let checkpoint = h.core.checkpoint();

    let mut again = Harness::new(ProvisioningCore::restore(
        settings(),
        "t".into(),
        checkpoint,
    ));
    assert_eq!(again.core.published().seq_no, seq);
    again.running("p", 0, vec![member(1, 1), member(2, 1)]);
    let t = again.core.published().clone();
    assert!(t.seq_no > seq, "seq_no continues");
    assert!(
        t.members.iter().all(|m| m.node_id != node(2)),
        "still quarantined"
    );

    h.core.drain();
    h.step();
    let mut drained = Harness::new(ProvisioningCore::restore(
        settings(),
        "t".into(),
        h.core.checkpoint(),
    ));
    assert!(drained.core.is_draining());
    assert_eq!(drained.core.status(), ProvisioningStatus::Draining);
    drained.core.resume_provider(spec("p", 0), drained.now);
    let r = drained.step();
    assert!(r.start.is_empty(), "a drained node starts no provider");
    assert!(matches!(
        drained.core.add(spec("q", 1), drained.now),
        Err(ProvisioningError::Draining)
    ));
    assert_eq!(drained.core.definitions().len(), 1, "still listed");
}

/// Issue 13 (R5.2): a suppressed provider had no way back but a reload. It
/// is probed again after a backoff, half-open; a snapshot ends the
/// suppression.
#[test]
fn i13_r5_2_a_suppressed_provider_is_probed_again_half_open() {
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into()).with_seed(1));
    h.add("p", 0);
    h.event("p", ProviderEvent::Started);
    let unauthorized = || ProviderEvent::Error(ProviderError::Auth("403".into()));
    h.event("p", unauthorized());
    h.event("p", unauthorized());
    let r = h.event("p", unauthorized());
    assert!(r.events.iter().any(|e| matches!(e, Event::Suppressed(_))));
    assert_eq!(
        r.stop,
        [Stop {
            id: pid("p"),
            deregister: false
        }],
        "no local member: nothing to deregister"
    );
    assert!(r.wake_at.is_some(), "a timer is armed");
    let status = |h: &Harness| h.core.statuses().remove(0);
    assert_eq!(status(&h).health, ProviderHealth::Failed);

    // Not yet.
    let r = h.advance(Duration::from_secs(29));
    assert!(r.start.is_empty());
    // Half-open: started again; one more failure suppresses it again, for
    // twice as long.
    let r = h.advance(Duration::from_secs(1));
    assert_eq!(r.start.len(), 1, "probed again");
    assert!(status(&h).disabled_reason.is_none());
    h.event("p", ProviderEvent::Started);
    let r = h.event("p", unauthorized());
    assert!(r.events.iter().any(|e| matches!(e, Event::Suppressed(_))));
    let r = h.advance(Duration::from_secs(59));
    assert!(r.start.is_empty(), "the second delay is twice the first");
    let r = h.advance(Duration::from_secs(1));
    assert_eq!(r.start.len(), 1, "probed again");
    h.event("p", ProviderEvent::Started);
    h.event("p", unauthorized());

    // The operator fixed the permission and lifts it at once.
    h.core.lift_suppression(&pid("p"), h.now).expect("lifted");
    let r = h.step();
    assert_eq!(r.start.len(), 1);
    h.event("p", ProviderEvent::Started);
    h.snapshot("p", vec![member(1, 1)]);
    assert_eq!(status(&h).health, ProviderHealth::Healthy);
    assert!(matches!(
        h.core.lift_suppression(&pid("p"), h.now),
        Err(ProvisioningError::NotSuppressed(_))
    ));
    assert!(matches!(
        h.core.lift_suppression(&pid("nope"), h.now),
        Err(ProvisioningError::NotFound(_))
    ));
}

/// Issue 13 (etcd incarnations): a provider that finds a newer incarnation
/// of this node publishes `LocalMemberSuperseded`.
#[test]
fn i13_a_superseded_registration_is_published() {
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into()));
    h.running("p", 0, vec![member(1, 1)]);
    let r = h.event(
        "p",
        ProviderEvent::RegistrationFailed(ProviderError::Superseded {
            node: node(0),
            incarnation: 1,
            newer: 2,
        }),
    );
    let [Event::Superseded(s)] = r.events.as_slice() else {
        panic!("{:?}", r.events);
    };
    assert_eq!((s.incarnation, s.newer), (1, 2));
    // Not an activation failure: never suppressed (suppressing would
    // deregister; stopping this process is the application's call).
    let mut fresh = Harness::new(ProvisioningCore::new(settings(), "t".into()));
    fresh.add("q", 0);
    for _ in 0..10 {
        fresh.event(
            "q",
            ProviderEvent::RegistrationFailed(ProviderError::Superseded {
                node: node(0),
                incarnation: 1,
                newer: 2,
            }),
        );
    }
    assert!(!fresh.events.iter().any(|e| matches!(e, Event::Suppressed(_))));
}

/// Rule 5: an event of a replaced instance changes nothing.
#[test]
fn i13_an_event_of_a_stale_instance_changes_nothing() {
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into()));
    h.running("p", 0, vec![member(1, 1)]);
    let old = h.instance[&pid("p")];
    h.restarting("p", true);
    h.core.provider_event(
        &pid("p"),
        old,
        ProviderEvent::Snapshot(Snapshot {
            members: vec![],
            observed_at: SystemTime::now(),
        }),
        h.now,
        SystemTime::now(),
    );
    let r = h.step();
    assert!(r.is_idle(), "{r:?}");
    assert_eq!(h.core.published().members.len(), 1);
}

// ----- the laws -----

/// One input of the property tests.
#[derive(Clone, Debug)]
enum Op {
    Started(usize),
    /// A snapshot of the members whose bit is set; `old` bumps their
    /// incarnation to 2 when set; `stale` sends it from a replaced instance.
    Snapshot {
        p: usize,
        mask: u8,
        newer: u8,
        stale: bool,
    },
    Error(usize, u8),
    RegistrationFailed(usize, u8),
    Exit(usize, u8),
    Quarantine(usize, u64),
    Reachable(usize, u64),
    Clear(usize, u64),
    Tick(u16),
    Lift(usize),
    Remove(usize),
    Add(usize),
    Drain,
}

const PROVIDERS: [&str; 3] = ["a", "b", "c"];
const NODES: usize = 4;

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PROVIDERS.len();
    let n = 0..NODES;
    prop_oneof![
        2 => p.clone().prop_map(Op::Started),
        6 => (p.clone(), any::<u8>(), any::<u8>(), prop::bool::weighted(0.15))
            .prop_map(|(p, mask, newer, stale)| Op::Snapshot { p, mask, newer, stale }),
        2 => (p.clone(), 0u8..4).prop_map(|(p, k)| Op::Error(p, k)),
        1 => (p.clone(), 0u8..3).prop_map(|(p, k)| Op::RegistrationFailed(p, k)),
        2 => (p.clone(), 0u8..4).prop_map(|(p, k)| Op::Exit(p, k)),
        2 => (n.clone(), 1u64..3).prop_map(|(n, i)| Op::Quarantine(n, i)),
        1 => (n.clone(), 1u64..3).prop_map(|(n, i)| Op::Reachable(n, i)),
        1 => (n, 1u64..3).prop_map(|(n, i)| Op::Clear(n, i)),
        3 => (0u16..40_000).prop_map(Op::Tick),
        1 => p.clone().prop_map(Op::Lift),
        1 => p.clone().prop_map(Op::Remove),
        1 => p.prop_map(Op::Add),
        1 => Just(Op::Drain),
    ]
}

fn error(k: u8) -> ProviderError {
    match k {
        0 => ProviderError::Auth("403".into()),
        1 => ProviderError::Protocol("bad json".into()),
        2 => ProviderError::Connectivity("refused".into()),
        _ => ProviderError::Stream("reset".into()),
    }
}

fn run(h: &mut Harness, op: &Op) -> Result<(), TestCaseError> {
    let before = h.core.published().clone();
    match op {
        Op::Started(p) => {
            h.event(PROVIDERS[*p], ProviderEvent::Started);
        }
        Op::Snapshot {
            p,
            mask,
            newer,
            stale,
        } => {
            let members: Vec<Member> = (0..NODES)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| member(i, if newer & (1 << i) != 0 { 2 } else { 1 }))
                .collect();
            let snapshot = ProviderEvent::Snapshot(Snapshot {
                members,
                observed_at: SystemTime::now(),
            });
            let id = pid(PROVIDERS[*p]);
            match h.instance.get(&id).copied() {
                Some(i) if *stale && i > 1 => {
                    h.core
                        .provider_event(&id, i - 1, snapshot, h.now, SystemTime::now());
                    let r = h.step();
                    prop_assert!(r.is_idle(), "a stale instance changed something: {r:?}");
                    prop_assert!(Arc::ptr_eq(&before, h.core.published()));
                }
                _ => {
                    h.event(PROVIDERS[*p], snapshot);
                }
            }
        }
        Op::Error(p, k) => {
            h.event(PROVIDERS[*p], ProviderEvent::Error(error(*k)));
        }
        Op::RegistrationFailed(p, k) => {
            h.event(PROVIDERS[*p], ProviderEvent::RegistrationFailed(error(*k)));
        }
        Op::Exit(p, k) => match k {
            0 => {
                h.restarting(PROVIDERS[*p], true);
            }
            1 => {
                h.restarting(PROVIDERS[*p], false);
            }
            2 => {
                h.core
                    .child_exited(&pid(PROVIDERS[*p]), Exit::Stopped, h.now);
                h.step();
            }
            _ => {
                let exit = Exit::RestartLimit { failures: 10 };
                h.core.child_exited(&pid(PROVIDERS[*p]), exit, h.now);
                h.step();
            }
        },
        Op::Quarantine(n, i) => {
            h.core.quarantine(node(*n), *i, "test".into(), h.now);
            h.step();
        }
        Op::Reachable(n, i) => {
            h.core.reachable(&node(*n), *i);
            h.step();
        }
        Op::Clear(n, i) => {
            let _ = h.core.clear_quarantine(node(*n), *i);
            h.step();
        }
        Op::Tick(ms) => {
            h.advance(Duration::from_millis(u64::from(*ms)));
        }
        Op::Lift(p) => {
            let _ = h.core.lift_suppression(&pid(PROVIDERS[*p]), h.now);
            h.step();
        }
        Op::Remove(p) => {
            let _ = h.core.remove(&pid(PROVIDERS[*p]), h.now);
            h.step();
        }
        Op::Add(p) => {
            let _ = h.core.add(spec(PROVIDERS[*p], *p as u32), h.now);
            h.step();
        }
        Op::Drain => {
            h.core.drain();
            h.step();
        }
    }
    Ok(())
}

/// The laws over everything published (module docs, rules 1 to 3 and 7).
fn check_laws(events: &[Event]) -> Result<(), TestCaseError> {
    let mut last: Option<Arc<Topology>> = None;
    let mut pending_quarantines: Vec<&RemoteNodeQuarantined> = Vec::new();
    let mut drained = false;
    for e in events {
        let drain_status =
            matches!(e, Event::Status(s) if s.status == ProvisioningStatus::Draining);
        prop_assert!(!drained || drain_status, "published while draining: {e:?}");
        match e {
            Event::Topology(u) => {
                let t = &u.topology;
                if let Some(p) = &last {
                    // seq_no strictly increases.
                    prop_assert!(
                        t.seq_no > p.seq_no,
                        "seq_no {} after {}",
                        t.seq_no,
                        p.seq_no
                    );
                    // Never the same topology twice (R2.3).
                    let same = t.hash == p.hash
                        && t.blocked == p.blocked
                        && t.status == p.status
                        && t.active_provider == p.active_provider
                        && t.stale == p.stale;
                    prop_assert!(!same, "published twice: {t:?}");
                    prop_assert_eq!(u.previous_hash, p.hash);
                }
                // A quarantine is always visible in the next topology.
                for q in pending_quarantines.drain(..) {
                    prop_assert_eq!(q.seq_no, t.seq_no);
                    let listed = t
                        .members
                        .iter()
                        .any(|m| m.node_id == q.node && m.incarnation == q.incarnation);
                    let blocked = t
                        .blocked
                        .iter()
                        .any(|b| b.node_id == q.node && b.incarnation == q.incarnation);
                    prop_assert!(!listed || blocked, "{q:?} still listed in {t:?}");
                    prop_assert!(!listed, "{q:?} listed");
                }
                drained = t.status == ProvisioningStatus::Draining;
                last = Some(t.clone());
            }
            Event::Quarantined(q) => pending_quarantines.push(q),
            Event::Status(s) => {
                let t = last.as_ref().expect("a status after a topology");
                prop_assert_eq!(s.seq_no, t.seq_no);
                prop_assert_eq!(s.status, t.status);
            }
            Event::ProviderChanged(c) => {
                let t = last.as_ref().expect("a change after a topology");
                prop_assert_eq!(c.seq_no, t.seq_no);
                prop_assert_eq!(&c.to, &t.active_provider);
            }
            _ => {}
        }
    }
    prop_assert!(
        pending_quarantines.is_empty(),
        "a quarantine without a topology"
    );
    Ok(())
}

fn law_case(ops: &[Op], local: bool) -> Result<(), TestCaseError> {
    let mut s = settings();
    if local {
        s.local = Some(member(0, 1));
    }
    let mut h = Harness::new(ProvisioningCore::new(s, "t".into()).with_seed(7));
    h.add("a", 0);
    h.add("b", 1);
    for op in ops {
        run(&mut h, op)?;
        // The published topology lives in one place: the last event's.
        if let Some(t) = h.topologies().last() {
            prop_assert!(Arc::ptr_eq(t, h.core.published()));
        }
    }
    check_laws(&h.events)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The laws of issue 13 over arbitrary input sequences: seq_no strictly
    /// increases; no two consecutive `TopologyUpdated` carry the same
    /// topology; a `RemoteNodeQuarantined` is followed by a topology in
    /// which the incarnation is absent, whatever the status; nothing after
    /// the drain's own publication; a stale instance changes nothing.
    #[test]
    fn i13_laws_hold_for_any_input_sequence(ops in prop::collection::vec(op(), 1..60)) {
        law_case(&ops, false)?;
    }

    /// The same with a local member (the self-presence rule holds
    /// snapshots that do not list it).
    #[test]
    fn i13_laws_hold_with_a_local_member(ops in prop::collection::vec(op(), 1..60)) {
        law_case(&ops, true)?;
    }
}
