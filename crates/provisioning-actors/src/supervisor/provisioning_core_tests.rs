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
    settings: CoreSettings,
    now: Instant,
    instance: BTreeMap<ProviderId, u64>,
    /// Instances of actors that were stopped or replaced.
    retired: Vec<u64>,
    events: Vec<Event>,
    last: Ready,
}

impl Harness {
    fn new(core: ProvisioningCore) -> Self {
        Self {
            core,
            settings: settings(),
            now: Instant::now(),
            instance: BTreeMap::new(),
            retired: Vec::new(),
            events: Vec::new(),
            last: Ready::default(),
        }
    }

    /// Takes the Ready and records it as a driver would execute it.
    fn step(&mut self) -> &Ready {
        let r = self.core.ready();
        // As a driver executes it: stops first, then starts.
        for s in &r.stop {
            if let Some(i) = self.instance.remove(&s.id) {
                self.retired.push(i);
            }
        }
        for s in &r.start {
            if let Some(i) = self.instance.insert(s.id.clone(), s.first_instance) {
                self.retired.push(i);
            }
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
                members: members.into(),
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
fn i13_r2_2_a_stream_error_is_not_a_termination_an_end_is() {
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into(), 0));
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
    assert_eq!(h.core.statuses()[0].stream_errors, 3, "counted");
    let r = h.restarting("p", true);
    assert_eq!(terminations(&r.events), 1, "the stream ended");
    let r = h.restarting("p", false);
    assert_eq!(terminations(&r.events), 0, "a crash is not a stream end");
}

/// Issue 13: the interruption counter counted every error item too; errors
/// have their own counter, interruptions are ends and crashes only.
#[test]
fn i13_r2_2_stream_errors_and_interruptions_are_counted_apart() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into(), 0));
        h.running("p", 0, vec![member(1, 1)]);
        for _ in 0..3 {
            h.event(
                "p",
                ProviderEvent::Error(ProviderError::Stream("reset".into())),
            );
        }
        h.restarting("p", true);
    });
    let mut errors = BTreeMap::new();
    let mut interruptions = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let DebugValue::Counter(n) = value else {
            continue;
        };
        let reason = key
            .key()
            .labels()
            .find(|l| l.key() == "reason")
            .map(|l| l.value().to_owned())
            .unwrap_or_default();
        match key.key().name() {
            m::STREAM_ERRORS => errors.insert(reason, n),
            m::STREAM_INTERRUPTIONS => interruptions.insert(reason, n),
            _ => None,
        };
    }
    assert_eq!(errors, BTreeMap::from([("provider.stream".to_owned(), 3)]));
    assert_eq!(interruptions, BTreeMap::from([("ended".to_owned(), 1)]));
}

/// Review of issue 13: a suppression (and its re-probe) survives a restart
/// of the supervisor actor; so does the instance numbering.
#[test]
fn i13_r5_2_a_suppression_survives_a_restart_of_the_core() {
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into(), 1));
    h.add("p", 0);
    h.event("p", ProviderEvent::Started);
    for _ in 0..3 {
        h.event("p", ProviderEvent::Error(ProviderError::Auth("403".into())));
    }
    assert!(h.events.iter().any(|e| matches!(e, Event::Suppressed(_))));
    let old_instance = h.retired.last().copied().expect("stopped");
    let restart = |h: &Harness| {
        let mut again = Harness::new(ProvisioningCore::restore(
            settings(),
            "t".into(),
            h.core.checkpoint(),
            1,
        ));
        for spec in h.core.specs() {
            again.core.resume_provider(spec, again.now);
        }
        again
    };
    let mut again = restart(&h);
    let r = again.step();
    assert!(r.start.is_empty(), "still suppressed: not started");
    // The old actor's queued events stay stale.
    again.core.provider_event(
        &pid("p"),
        old_instance,
        ProviderEvent::Started,
        again.now,
        SystemTime::now(),
    );
    assert!(again.step().is_idle());
    // The re-probe is scheduled again, and the operator can lift it.
    let r = again.advance(Duration::from_secs(31));
    assert_eq!(r.start.len(), 1, "probed again after the restart");
    assert!(
        r.start[0].first_instance > old_instance,
        "instance numbers go on"
    );
    let mut lifted = restart(&h);
    lifted.step();
    lifted
        .core
        .lift_suppression(&pid("p"), lifted.now)
        .expect("still suppressed after the restart");
    assert_eq!(lifted.step().start.len(), 1);
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
    let core = ProvisioningCore::restore(
        settings(),
        "t".into(),
        Checkpoint::from_topology(restored),
        0,
    );
    let mut h = Harness::new(core);
    h.add("p", 0);
    assert!(h.topologies().is_empty(), "the gap: nothing published yet");
    h.core.quarantine(node(1), 1, "unreachable".into(), h.now);
    let r = h.step();
    let [Event::Quarantined(q), Event::Topology(t), ..] = r.events.as_slice() else {
        panic!("quarantine then topology: {:?}", r.events);
    };
    assert_eq!(q.seq_no, t.topology.seq_no);
    assert!(t.topology.seq_no > 7);
    assert!(t.topology.members.iter().all(|m| m.node_id != node(1)));
    assert!(t.topology.blocked.iter().any(|b| b.node_id == node(1)));
    assert_eq!(
        t.topology.status,
        ProvisioningStatus::Active,
        "a restored core keeps the status consumers last saw (rule 10)"
    );

    // A fresh core, Starting: the incarnation is blocked before any
    // provider lists it.
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into(), 0));
    h.add("p", 0);
    h.core.quarantine(node(3), 1, "unreachable".into(), h.now);
    let r = h.step();
    let t = topologies(&r.events).pop().expect("a topology");
    assert_eq!(t.status, ProvisioningStatus::Starting);
    assert!(t.blocked.iter().any(|b| b.node_id == node(3)));
    h.event("p", ProviderEvent::Started);
    h.snapshot("p", vec![member(1, 1), member(3, 1)]);
    let t = h.core.published().clone();
    assert_eq!(t.status, ProvisioningStatus::Active);
    assert!(
        t.members.iter().all(|m| m.node_id != node(3)),
        "still blocked"
    );

    // Unavailable: the only provider failed after it was active.
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into(), 0));
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
    let core = ProvisioningCore::restore(
        settings(),
        "t".into(),
        Checkpoint::from_topology(restored),
        0,
    );
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
fn i13_r4_2_r3_5_a_restored_core_keeps_its_quarantines_and_its_draining_state() {
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into(), 0));
    h.running("p", 0, vec![member(1, 1), member(2, 1)]);
    h.core.quarantine(node(2), 1, "unreachable".into(), h.now);
    h.step();
    let seq = h.core.published().seq_no;
    let checkpoint = h.core.checkpoint();

    let mut again = Harness::new(ProvisioningCore::restore(
        settings(),
        "t".into(),
        checkpoint,
        0,
    ));
    assert_eq!(again.core.published().seq_no, seq);
    assert_eq!(again.core.status(), ProvisioningStatus::Active);
    again.running("p", 0, vec![member(1, 1), member(2, 1)]);
    assert!(
        again.topologies().is_empty(),
        "the same topology as before the restart: nothing to publish, no Starting in between"
    );
    again.snapshot("p", vec![member(1, 1), member(2, 1), member(3, 1)]);
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
        0,
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
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into(), 1));
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
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into(), 0));
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
    let mut fresh = Harness::new(ProvisioningCore::new(settings(), "t".into(), 0));
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
    assert!(
        !fresh
            .events
            .iter()
            .any(|e| matches!(e, Event::Suppressed(_)))
    );
}

/// Rule 5: an event of a replaced instance changes nothing.
#[test]
fn i13_a4_an_event_of_a_stale_instance_changes_nothing() {
    let mut h = Harness::new(ProvisioningCore::new(settings(), "t".into(), 0));
    h.running("p", 0, vec![member(1, 1)]);
    let old = h.instance[&pid("p")];
    h.restarting("p", true);
    h.core.provider_event(
        &pid("p"),
        old,
        ProviderEvent::Snapshot(Snapshot {
            members: Vec::new().into(),
            observed_at: SystemTime::now(),
        }),
        h.now,
        SystemTime::now(),
    );
    let r = h.step();
    assert!(r.is_idle(), "{r:?}");
    assert_eq!(h.core.published().members.len(), 1);
}

/// Issue 17, R2.3: a provider's list is published as it is (the topology's
/// members are the snapshot's `Arc`), and a keepalive re-sending the same
/// `Arc` publishes nothing and leaves the published topology the same
/// object, with a local member (the self-presence rule reading it) or
/// without.
#[test]
fn i17_r2_3_a_shared_snapshot_is_published_without_a_copy_and_its_keepalive_publishes_nothing() {
    for local in [false, true] {
        let mut settings = settings();
        if local {
            settings.local = Some(member(1, 1));
        }
        let mut h = Harness::new(ProvisioningCore::new(settings, "t".into(), 0));
        h.add("p", 0);
        h.event("p", ProviderEvent::Started);
        let list: Arc<[Member]> = Arc::from((1..=5).map(|i| member(i, 1)).collect::<Vec<_>>());
        let shared = |list: &Arc<[Member]>| {
            ProviderEvent::Snapshot(Snapshot {
                members: list.clone(),
                observed_at: SystemTime::now(),
            })
        };
        h.event("p", shared(&list));
        let published = h.core.published().clone();
        assert!(Arc::ptr_eq(&published.members, &list), "no copy");
        let before = h.events.len();
        for _ in 0..3 {
            let r = h.event("p", shared(&list));
            assert!(r.events.is_empty() && r.persist.is_none(), "{r:?}");
        }
        assert_eq!(h.events.len(), before);
        assert!(Arc::ptr_eq(h.core.published(), &published));
    }
}

// ----- the laws -----

/// One input of the property tests.
#[derive(Clone, Debug)]
enum Op {
    Started(usize),
    /// A snapshot of the members whose bit is set; `newer` bumps their
    /// incarnation to 2.
    Snapshot {
        p: usize,
        mask: u8,
        newer: u8,
    },
    /// Any event from a replaced actor instance (or one of a core before a
    /// restart): it must change nothing.
    StaleEvent {
        p: usize,
        kind: u8,
    },
    Error(usize, u8),
    RegistrationFailed(usize, u8),
    /// `activation_failure_threshold` permission errors in a row: reaches
    /// R5.2's suppression when the provider never delivered a snapshot.
    AuthBurst(usize),
    Exit(usize, u8),
    Quarantine(usize, u64),
    Reachable(usize, u64),
    Clear(usize, u64),
    Tick(u16),
    /// Long enough for re-probes (30 s, doubling) and quarantine expiry.
    LongTick(u16),
    Lift(usize),
    Remove(usize),
    Add(usize),
    /// The new set: providers whose `keep` bit is set; a `change` bit gives
    /// that provider a changed definition (it is replaced).
    Reload {
        keep: u8,
        change: u8,
    },
    /// The supervisor actor restarts: a new core from the checkpoint.
    Restart,
    Drain,
}

const PROVIDERS: [&str; 3] = ["a", "b", "c"];
const NODES: usize = 4;

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PROVIDERS.len();
    let n = 0..NODES;
    prop_oneof![
        3 => p.clone().prop_map(Op::Started),
        8 => (p.clone(), any::<u8>(), any::<u8>())
            .prop_map(|(p, mask, newer)| Op::Snapshot { p, mask, newer }),
        2 => (p.clone(), 0u8..6).prop_map(|(p, kind)| Op::StaleEvent { p, kind }),
        2 => (p.clone(), 0u8..5).prop_map(|(p, k)| Op::Error(p, k)),
        1 => (p.clone(), 0u8..5).prop_map(|(p, k)| Op::RegistrationFailed(p, k)),
        2 => p.clone().prop_map(Op::AuthBurst),
        2 => (p.clone(), 0u8..4).prop_map(|(p, k)| Op::Exit(p, k)),
        2 => (n.clone(), 1u64..3).prop_map(|(n, i)| Op::Quarantine(n, i)),
        1 => (n.clone(), 1u64..3).prop_map(|(n, i)| Op::Reachable(n, i)),
        1 => (n, 1u64..3).prop_map(|(n, i)| Op::Clear(n, i)),
        3 => (0u16..20_000).prop_map(Op::Tick),
        1 => (30u16..700).prop_map(Op::LongTick),
        1 => p.clone().prop_map(Op::Lift),
        1 => p.clone().prop_map(Op::Remove),
        1 => p.prop_map(Op::Add),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(keep, change)| Op::Reload { keep, change }),
        1 => Just(Op::Restart),
    ]
}

/// A sequence of inputs, sometimes ending with a drain followed by more
/// inputs (which must publish nothing).
fn ops() -> impl Strategy<Value = Vec<Op>> {
    (
        prop::collection::vec(op(), 1..60),
        prop::option::weighted(0.2, prop::collection::vec(op(), 0..10)),
    )
        .prop_map(|(mut ops, after)| {
            if let Some(after) = after {
                ops.push(Op::Drain);
                ops.extend(after);
            }
            ops
        })
}

fn error(k: u8) -> ProviderError {
    match k {
        0 => ProviderError::Auth("403".into()),
        1 => ProviderError::Protocol("bad json".into()),
        2 => ProviderError::Connectivity("refused".into()),
        3 => ProviderError::Superseded {
            node: node(0),
            incarnation: 1,
            newer: 2,
        },
        _ => ProviderError::Stream("reset".into()),
    }
}

fn any_event(kind: u8) -> ProviderEvent {
    match kind {
        0 => ProviderEvent::Started,
        1 => ProviderEvent::Snapshot(Snapshot {
            members: Vec::new().into(),
            observed_at: SystemTime::now(),
        }),
        2 => ProviderEvent::Snapshot(Snapshot {
            members: (0..NODES).map(|i| member(i, 9)).collect::<Vec<_>>().into(),
            observed_at: SystemTime::now(),
        }),
        3 => ProviderEvent::Error(error(0)),
        4 => ProviderEvent::RegistrationFailed(error(1)),
        _ => ProviderEvent::Error(error(4)),
    }
}

fn prio(p: usize, changed: bool) -> u32 {
    p as u32 + if changed { 10 } else { 0 }
}

fn run(h: &mut Harness, op: &Op) -> Result<(), TestCaseError> {
    let before = h.core.published().clone();
    let draining = h.core.is_draining();
    let now = h.now;
    match op {
        Op::Started(p) => {
            h.event(PROVIDERS[*p], ProviderEvent::Started);
        }
        Op::Snapshot { p, mask, newer } => {
            let members: Vec<Member> = (0..NODES)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| member(i, if newer & (1 << i) != 0 { 2 } else { 1 }))
                .collect();
            let snapshot = ProviderEvent::Snapshot(Snapshot {
                members: members.into(),
                observed_at: SystemTime::now(),
            });
            h.event(PROVIDERS[*p], snapshot);
        }
        Op::StaleEvent { p, kind } => {
            let id = pid(PROVIDERS[*p]);
            // An instance older than the current one (a replaced actor), or
            // any instance when the provider runs no actor.
            let stale = match h.instance.get(&id) {
                Some(i) => i.saturating_sub(1),
                None => h.retired.last().copied().unwrap_or(1),
            };
            h.core
                .provider_event(&id, stale, any_event(*kind), now, SystemTime::now());
            let r = h.step();
            prop_assert!(r.is_idle(), "a stale instance changed something: {r:?}");
            prop_assert!(Arc::ptr_eq(&before, h.core.published()));
        }
        Op::Error(p, k) => {
            h.event(PROVIDERS[*p], ProviderEvent::Error(error(*k)));
        }
        Op::RegistrationFailed(p, k) => {
            h.event(PROVIDERS[*p], ProviderEvent::RegistrationFailed(error(*k)));
        }
        Op::AuthBurst(p) => {
            for _ in 0..settings().activation_failure_threshold {
                h.event(PROVIDERS[*p], ProviderEvent::Error(error(0)));
            }
        }
        Op::Exit(p, k) => match k {
            0 => {
                h.restarting(PROVIDERS[*p], true);
            }
            1 => {
                h.restarting(PROVIDERS[*p], false);
            }
            2 => {
                h.core.child_exited(&pid(PROVIDERS[*p]), Exit::Stopped, now);
                h.step();
            }
            _ => {
                let exit = Exit::RestartLimit { failures: 10 };
                h.core.child_exited(&pid(PROVIDERS[*p]), exit, now);
                h.step();
            }
        },
        Op::Quarantine(n, i) => {
            h.core.quarantine(node(*n), *i, "test".into(), now);
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
        Op::LongTick(s) => {
            h.advance(Duration::from_secs(u64::from(*s)));
        }
        Op::Lift(p) => {
            let _ = h.core.lift_suppression(&pid(PROVIDERS[*p]), now);
            h.step();
        }
        Op::Remove(p) => {
            let _ = h.core.remove(&pid(PROVIDERS[*p]), now);
            h.step();
        }
        Op::Add(p) => {
            let _ = h.core.add(spec(PROVIDERS[*p], prio(*p, false)), now);
            h.step();
        }
        Op::Reload { keep, change } => {
            let set: Vec<(ProviderId, Option<ProviderSpec>)> = (0..PROVIDERS.len())
                .filter(|p| keep & (1 << p) != 0)
                .map(|p| {
                    let changed = change & (1 << p) != 0;
                    let s = spec(PROVIDERS[p], prio(p, changed));
                    let id = s.descriptor.id.clone();
                    if h.core.must_replace(&s.descriptor) {
                        (id, Some(s))
                    } else {
                        (id, None)
                    }
                })
                .collect();
            let _ = h.core.reload(set, now);
            h.step();
        }
        Op::Restart => {
            let checkpoint = h.core.checkpoint();
            let specs = h.core.specs();
            h.retired.extend(h.instance.values().copied());
            h.instance.clear();
            h.core = ProvisioningCore::restore(h.settings.clone(), "t".into(), checkpoint, 3);
            for s in specs {
                h.core.resume_provider(s, now);
            }
            h.step();
        }
        Op::Drain => {
            h.core.drain();
            h.step();
        }
    }
    if draining {
        // Law: a drained core starts nothing, persists nothing, arms no timer.
        let r = &h.last;
        prop_assert!(
            r.is_idle() && r.wake_at.is_none(),
            "a drained core acted: {op:?} -> {r:?}"
        );
    }
    Ok(())
}

/// The laws over everything published (module docs, rules 1 to 3, 7, 10).
fn check_laws(initial: Arc<Topology>, events: &[Event]) -> Result<(), TestCaseError> {
    let mut last = initial;
    let mut status_before = last.status;
    let mut active_before = last.active_provider.clone();
    let mut status_announced = true;
    let mut pending_quarantines: Vec<&RemoteNodeQuarantined> = Vec::new();
    let mut drained = false;
    for e in events {
        let drain_status =
            matches!(e, Event::Status(s) if s.status == ProvisioningStatus::Draining);
        prop_assert!(!drained || drain_status, "published while draining: {e:?}");
        match e {
            Event::Topology(u) => {
                let t = &u.topology;
                // Every change of status is announced with its topology.
                prop_assert!(
                    status_announced,
                    "status {:?} without its event",
                    last.status
                );
                // seq_no strictly increases.
                prop_assert!(
                    t.seq_no > last.seq_no,
                    "seq_no {} after {}",
                    t.seq_no,
                    last.seq_no
                );
                // Never the same topology twice (R2.3).
                let same = t.hash == last.hash
                    && t.blocked == last.blocked
                    && t.status == last.status
                    && t.active_provider == last.active_provider
                    && t.stale == last.stale;
                prop_assert!(!same, "published twice: {t:?}");
                prop_assert_eq!(u.previous_hash, last.hash);
                // A quarantine is always visible in the next topology.
                for q in pending_quarantines.drain(..) {
                    prop_assert_eq!(q.seq_no, t.seq_no);
                    let listed = t
                        .members
                        .iter()
                        .any(|m| m.node_id == q.node && m.incarnation == q.incarnation);
                    prop_assert!(!listed, "{q:?} listed in {t:?}");
                }
                status_before = last.status;
                active_before = last.active_provider.clone();
                status_announced = t.status == last.status;
                drained = t.status == ProvisioningStatus::Draining;
                last = t.clone();
            }
            Event::Quarantined(q) => pending_quarantines.push(q),
            Event::Status(s) => {
                prop_assert_eq!(s.seq_no, last.seq_no);
                prop_assert_eq!(s.status, last.status);
                prop_assert_eq!(s.previous, status_before);
                status_announced = true;
            }
            Event::Changed(c) => {
                prop_assert_eq!(c.seq_no, last.seq_no);
                prop_assert_eq!(&c.to, &last.active_provider);
                prop_assert_eq!(&c.from, &active_before);
                prop_assert!(c.from != c.to);
            }
            _ => {}
        }
    }
    prop_assert!(
        status_announced,
        "status {:?} without its event",
        last.status
    );
    prop_assert!(
        pending_quarantines.is_empty(),
        "a quarantine without a topology"
    );
    Ok(())
}

fn law_case(ops: &[Op], local: bool, restored: bool) -> Result<(), TestCaseError> {
    let mut s = settings();
    if local {
        s.local = Some(member(0, 1));
    }
    let core = if restored {
        let mut t = Topology::starting();
        t.members = Arc::from(vec![member(1, 1), member(2, 1)]);
        t.hash = TopologyHash::of_sorted(&t.members);
        t.status = ProvisioningStatus::Active;
        t.seq_no = 40;
        t.stale = true;
        ProvisioningCore::restore(s.clone(), "t".into(), Checkpoint::from_topology(t), 7)
    } else {
        ProvisioningCore::new(s.clone(), "t".into(), 7)
    };
    let initial = core.published().clone();
    let mut h = Harness::new(core);
    h.settings = s;
    h.add("a", 0);
    h.add("b", 1);
    for op in ops {
        run(&mut h, op)?;
        // The published topology lives in one place: the last event's.
        if let Some(t) = h.topologies().last() {
            prop_assert!(Arc::ptr_eq(t, h.core.published()));
        }
    }
    check_laws(initial, &h.events)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The laws of issue 13 over arbitrary input sequences: seq_no strictly
    /// increases; no two consecutive `TopologyUpdated` carry the same
    /// topology; a `RemoteNodeQuarantined` is followed by a topology in
    /// which the incarnation is absent, whatever the status; status and
    /// provider changes name what consumers saw before; nothing after the
    /// drain's own publication; a stale instance changes nothing; across
    /// reloads, suppressions, re-probes and restarts of the core.
    #[test]
    fn i13_a5_laws_hold_for_any_input_sequence(ops in ops()) {
        law_case(&ops, false, false)?;
    }

    /// The same with a local member (the self-presence rule holds
    /// snapshots that do not list it).
    #[test]
    fn i13_a5_laws_hold_with_a_local_member(ops in ops()) {
        law_case(&ops, true, false)?;
    }

    /// The same from a topology restored from the store (stale, Active).
    #[test]
    fn i13_a5_laws_hold_from_a_restored_topology(ops in ops()) {
        law_case(&ops, true, true)?;
    }
}
