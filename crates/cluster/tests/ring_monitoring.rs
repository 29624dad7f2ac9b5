//! Ring monitoring in real nodes (issue 17, C1; `docs/monitoring-design.md`
//! stage 5): five nodes over real TCP on 127.0.0.1, each its own
//! `ActorSystem`, with Remoting in ring mode (k = 5 → k_eff = 4 monitors
//! per node, q_eff = 3 votes) and faults from the shared `NetSim`. The
//! control test runs the same fault in all-to-all mode, where it does
//! quarantine a healthy node: the ring tests could not pass by accident.
//! Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actor_runtime::Subscription;
use cluster::monitoring::{MonitoringConfig, MonitoringMode, Ring};
use cluster::partition::PartitionTable;
use cluster::remoting::AssociationState;
use cluster_core::NodeId;
use cluster_core::events::RemoteNodeQuarantined;
use support::nodes::*;

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

/// Rounds of 250 ms, a direct phase of 80 ms and T_min = 0.75 s: fast
/// enough for tests, slow enough that a busy 2-core machine delaying one
/// node's actor by 100 ms makes no quorum (nor a stall, at one interval).
fn ring() -> MonitoringConfig {
    MonitoringConfig {
        mode: MonitoringMode::Ring,
        probe_interval: Duration::from_millis(250),
        probe_timeout: Duration::from_millis(80),
        suspicion_mult: 3.0,
        vote_ttl: Duration::from_secs(3),
        ..MonitoringConfig::default()
    }
}

type Seen = Arc<Mutex<Vec<RemoteNodeQuarantined>>>;

/// Records, per node, the quarantines it publishes (while the
/// subscriptions live).
fn record_quarantines(nodes: &[TestNode]) -> (Vec<Seen>, Vec<Subscription>) {
    let mut seen = Vec::new();
    let mut subs = Vec::new();
    for n in nodes {
        let s: Seen = Arc::default();
        let q = s.clone();
        subs.push(
            n.system
                .event_stream()
                .subscribe_fn(move |e: &RemoteNodeQuarantined| q.lock().unwrap().push(e.clone())),
        );
        seen.push(s);
    }
    (seen, subs)
}

/// Cuts `target` off from every other node and waits until each of them
/// has quarantined it, and nobody else; returns each other node's
/// quarantines by its index in `nodes`.
async fn isolate_until_quarantined(
    backends: &Backends,
    nodes: &[TestNode],
    seen: &[Seen],
    target: &str,
) -> Vec<(usize, Vec<RemoteNodeQuarantined>)> {
    let others: Vec<NodeId> = nodes
        .iter()
        .filter(|n| n.id.as_str() != target)
        .map(|n| n.id.clone())
        .collect();
    backends.net.partition(&[nid(target)], &others);
    let mut all = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.id.as_str() == target {
            continue;
        }
        let s = seen[i].clone();
        eventually(&format!("{} quarantines {target}", n.id), || async {
            s.lock().unwrap().iter().any(|q| q.node.as_str() == target)
        })
        .await;
        let q = s.lock().unwrap().clone();
        assert!(
            q.iter().all(|q| q.node.as_str() == target),
            "{}: only {target}: {q:?}",
            n.id
        );
        all.push((i, q));
    }
    all
}

/// Heals the network and waits until every node lists `target` again
/// (R4.4: the quarantine is lifted once the node is reached).
async fn heal_until_listed(backends: &Backends, nodes: &[TestNode], target: &str) {
    backends.net.heal();
    for n in nodes {
        eventually(&format!("{} lists {target} again", n.id), || async {
            n.topology().await.member(&nid(target)).is_some()
        })
        .await;
    }
}

/// Five nodes in `mode`, converged, each recording the quarantines it
/// publishes.
async fn five(
    backends: &Backends,
    mode: MonitoringMode,
) -> (Vec<TestNode>, Vec<Seen>, Vec<Subscription>) {
    let mut nodes = Vec::new();
    for name in NAMES {
        let config = remoting(backends.failure_timeout)
            .with_netsim(backends.net.clone())
            .with_monitoring(MonitoringConfig { mode, ..ring() });
        nodes.push(
            backends
                .start_with(name, |b| b.remoting_config(config))
                .await,
        );
    }
    let refs: Vec<&TestNode> = nodes.iter().collect();
    converge(&refs, &NAMES).await;
    let (seen, subs) = record_quarantines(&nodes);
    (nodes, seen, subs)
}

async fn shutdown(nodes: Vec<TestNode>) {
    for n in nodes {
        n.system.shutdown().await;
    }
}

/// C1: one cut link (a → b: everything a sends b is lost) quarantines
/// nobody in ring mode: b's direct probes of a fail, but the helpers reach
/// a and relay its acks, so no quorum of a's monitors ever forms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_ring_mode_a_cut_link_quarantines_nobody() {
    let backends = Backends::fast_detection();
    let (nodes, seen, _subs) = five(&backends, MonitoringMode::Ring).await;
    backends.net.cut(&nid("a"), &nid("b"));
    // 12 probe intervals, five failure timeouts of all-to-all mode.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // In ring mode only the monitoring frames cross between idle nodes:
    // frames were dropped, so the ring probed across the cut link.
    assert!(backends.net.dropped() > 0, "the link was really cut");
    for (n, s) in nodes.iter().zip(&seen) {
        assert!(
            s.lock().unwrap().is_empty(),
            "{} quarantined {:?}",
            n.id,
            s.lock()
                .unwrap()
                .iter()
                .map(|q| q.node.to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            ids(&*n.topology().await).len(),
            5,
            "{} keeps every member",
            n.id
        );
    }
    shutdown(nodes).await;
}

/// Design §2.9: a node that joins a running ring is not quarantined while
/// it answers nobody yet (its view lags, it refuses or ignores its
/// monitors): a target is suspected only once it was heard. (Without that
/// rule its monitors quarantine it here within 2I + T_min.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_ring_mode_a_joining_node_is_not_quarantined() {
    let backends = Backends::fast_detection();
    let mut nodes = Vec::new();
    let config = || {
        remoting(backends.failure_timeout)
            .with_netsim(backends.net.clone())
            .with_monitoring(ring())
    };
    for name in &NAMES[..4] {
        nodes.push(
            backends
                .start_with(name, |b| b.remoting_config(config()))
                .await,
        );
    }
    let refs: Vec<&TestNode> = nodes.iter().collect();
    converge(&refs, &NAMES[..4]).await;
    let (seen, subs) = record_quarantines(&nodes);
    // The joiner answers nobody yet: everything sent to it is lost (its
    // monitors' dials and probes), as for a node whose view lags.
    for x in &NAMES[..4] {
        backends.net.cut(&nid(x), &nid("e"));
    }
    nodes.push(
        backends
            .start_with("e", |b| b.remoting_config(config()))
            .await,
    );
    let want: BTreeSet<String> = NAMES.iter().map(|s| (*s).to_owned()).collect();
    for n in &nodes[..4] {
        let want = want.clone();
        eventually(&format!("{} lists e", n.id), || {
            let want = want.clone();
            async move { ids(&*n.topology().await) == want }
        })
        .await;
    }
    // Ten rounds with the joiner listed and silent: never heard, never
    // suspected.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (n, s) in nodes.iter().zip(&seen) {
        assert!(
            s.lock().unwrap().is_empty(),
            "{} quarantined {:?}",
            n.id,
            s.lock().unwrap()
        );
    }
    backends.net.heal();
    let refs: Vec<&TestNode> = nodes.iter().collect();
    converge(&refs, &NAMES).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for (n, s) in nodes.iter().zip(&seen) {
        assert!(
            s.lock().unwrap().is_empty(),
            "{} quarantined {:?}",
            n.id,
            s.lock().unwrap()
        );
    }
    drop(subs);
    shutdown(nodes).await;
}

/// The control: the same cut in all-to-all mode makes b quarantine a
/// healthy a on its own detector (docs/reliability.md's one-way partition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_control_all_to_all_mode_a_cut_link_quarantines_a_healthy_node() {
    let backends = Backends::fast_detection();
    let (nodes, seen, _subs) = five(&backends, MonitoringMode::AllToAll).await;
    backends.net.cut(&nid("a"), &nid("b"));
    eventually("b quarantines a on one detector", || async {
        seen[1]
            .lock()
            .unwrap()
            .iter()
            .any(|q| q.node.as_str() == "a")
    })
    .await;
    shutdown(nodes).await;
}

/// C1: a node cut off from everyone (c) is quarantined on every other node
/// on a quorum's verdict, naming at least three voters; c, which hears
/// nobody, quarantines nobody (in all-to-all mode it would quarantine all
/// four). Healed, it comes back everywhere (R4.4) and stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_r4_4_ring_mode_an_isolated_node_is_quarantined_by_a_quorum_and_quarantines_nobody() {
    let backends = Backends::fast_detection();
    let (nodes, seen, _subs) = five(&backends, MonitoringMode::Ring).await;
    for (_, q) in isolate_until_quarantined(&backends, &nodes, &seen, "c").await {
        let reason = &q[0].reason;
        assert!(reason.starts_with("monitors' verdict: "), "{reason}");
        let voters = reason
            .trim_start_matches("monitors' verdict: ")
            .split(", ")
            .count();
        assert!(voters >= 3, "a quorum of 3 voted: {reason}");
    }
    // c hears nothing: no vote reaches it and its own suspicions are one
    // witness each (its health score also withholds its votes).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        seen[2].lock().unwrap().is_empty(),
        "c quarantined {:?}",
        seen[2].lock().unwrap()
    );
    // R4.4 in ring mode: healed, c is reached again (the associations'
    // probe), lifted after a healthy refresh, monitored again by the ring,
    // and not quarantined a second time.
    heal_until_listed(&backends, &nodes, "c").await;
    for s in &seen {
        s.lock().unwrap().clear();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (n, s) in nodes.iter().zip(&seen) {
        assert!(
            s.lock().unwrap().is_empty(),
            "{} quarantined again: {:?}",
            n.id,
            s.lock().unwrap()
        );
        assert_eq!(
            ids(&*n.topology().await).len(),
            5,
            "{} keeps every member",
            n.id
        );
    }
    shutdown(nodes).await;
}

// ---- associations on demand (seven nodes, k = 2) ---------------------------

const SEVEN: [&str; 7] = ["a", "b", "c", "d", "e", "f", "g"];

/// k = 2, q = 2: each node keeps at most 4 of its 6 peers associated.
fn small_ring() -> MonitoringConfig {
    MonitoringConfig {
        monitors: 2,
        quorum: 2,
        indirect_fanout: 1,
        idle_timeout: Duration::from_secs(1),
        ..ring()
    }
}

/// The ring's set of `node` among the seven: its targets and watchers.
fn keep_of(node: &str) -> BTreeSet<String> {
    let ids: Vec<NodeId> = SEVEN.iter().map(|s| nid(s)).collect();
    let ring = Ring::new(ids.iter(), 2);
    let me = nid(node);
    ring.watched_by(&me)
        .unwrap()
        .chain(ring.watchers_of(&me).unwrap())
        .map(|n| n.to_string())
        .collect()
}

fn associated(n: &TestNode) -> BTreeSet<String> {
    n.cluster
        .remoting()
        .associations()
        .into_iter()
        .filter(|(_, _, s)| *s == AssociationState::Up)
        .map(|(id, _, _)| id.to_string())
        .collect()
}

async fn seven(backends: &Backends) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for name in SEVEN {
        let config = remoting(backends.failure_timeout)
            .with_netsim(backends.net.clone())
            .with_monitoring(small_ring());
        nodes.push(
            backends
                .start_with(name, |b| b.remoting_config(config))
                .await,
        );
    }
    let want: BTreeSet<String> = SEVEN.iter().map(|s| (*s).to_owned()).collect();
    for n in &nodes {
        let want = want.clone();
        eventually(&format!("{} sees all seven", n.id), || {
            let want = want.clone();
            async move { ids(&*n.topology().await) == want }
        })
        .await;
    }
    for n in &nodes {
        let keep = keep_of(n.id.as_str());
        assert!(keep.len() <= 4);
        eventually(
            &format!("{} associated with its ring set {keep:?}", n.id),
            || async { associated(n) == keep },
        )
        .await;
    }
    nodes
}

/// C1, design §2.10: in ring mode a node associates with its ring set only
/// (2k of N − 1), opens an association on demand for grain traffic to any
/// other member (the request succeeds), and closes it after `idle_timeout`
/// without a frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_ring_mode_associations_open_on_demand_and_close_when_idle() {
    let backends = Backends::fast_detection();
    let nodes = seven(&backends).await;
    let a = &nodes[0];
    let keep = keep_of("a");
    let t = a.topology().await;
    // A grain owned by a member outside a's ring set.
    let (gid, owner) = (0..500)
        .map(|i| format!("g{i}"))
        .find_map(|g| {
            let owner = PartitionTable::from_topology(&t)
                .owner("echo", &g)?
                .node_id
                .to_string();
            (owner != "a" && !keep.contains(&owner)).then_some((g, owner))
        })
        .expect("a grain owned outside the ring set");
    assert!(!associated(a).contains(&owner));
    let reply = a
        .request(&gid)
        .await
        .expect("the request opens an association on demand");
    assert_eq!(reply.node.as_str(), owner);
    assert!(associated(a).contains(&owner), "open while in use");
    eventually(
        &format!("a closes the idle association with {owner}"),
        || async { a.cluster.remoting().association(&nid(&owner)).is_none() },
    )
    .await;
    assert_eq!(associated(a), keep, "back to the ring set");
    // Used again, it opens again.
    assert_eq!(a.request(&gid).await.unwrap().node.as_str(), owner);
    // A frame for a node that is not a member is refused at once, as in
    // all-to-all mode (it would wait for an association that cannot come).
    let refused = a
        .cluster
        .remoting()
        .tell(&nid("stranger"), "x", "y", Vec::new())
        .unwrap_err();
    assert_eq!(refused.code(), "remoting.not_associated");
    shutdown(nodes).await;
}

/// C1, design §2.6: with associations on demand, a quorum's verdict about
/// an isolated node still reaches every other node (relays open
/// associations outside their ring sets), and only that node is
/// quarantined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_r4_4_ring_mode_verdicts_reach_every_node_through_associations_on_demand() {
    let backends = Backends::fast_detection();
    let nodes = seven(&backends).await;
    let (seen, subs) = record_quarantines(&nodes);
    let quarantined = isolate_until_quarantined(&backends, &nodes, &seen, "d").await;
    assert_eq!(quarantined.len(), SEVEN.len() - 1, "every other node");
    assert!(seen[3].lock().unwrap().is_empty(), "d quarantines nobody");
    // R4.4: healed, d comes back on every node, also on those that learned
    // the verdict from a relay and had no association with d (each probes
    // the node it quarantined).
    heal_until_listed(&backends, &nodes, "d").await;
    drop(subs);
    shutdown(nodes).await;
}

/// Design §2.10, the both-dialed race: two members outside each other's
/// ring sets call each other's grains at the same moment, so both dial on
/// demand at once and one connection is dropped; every call is answered
/// (frames the peer queued on the dropped connection are still read, and
/// the fault suite's R-1 saw calls lost here before). The race is not
/// forced: each of the rounds opens both associations at the same instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_ring_mode_calls_both_ways_at_once_are_all_answered() {
    let backends = Backends::fast_detection();
    let nodes = seven(&backends).await;
    let t = nodes[0].topology().await;
    let table = PartitionTable::from_topology(&t);
    // Two nodes outside each other's ring sets, and a grain owned by each.
    let (x, y) = SEVEN
        .iter()
        .flat_map(|x| SEVEN.iter().map(move |y| (*x, *y)))
        .find(|(x, y)| x < y && !keep_of(x).contains(*y))
        .expect("two nodes outside each other's ring sets");
    let owned_by = |who: &str| {
        (0..2000)
            .map(|i| format!("g{i}"))
            .find(|g| {
                table
                    .owner("echo", g)
                    .is_some_and(|m| m.node_id.as_str() == who)
            })
            .unwrap()
    };
    let (gx, gy) = (owned_by(x), owned_by(y));
    let node = |name: &str| nodes.iter().find(|n| n.id.as_str() == name).unwrap();
    let (nx, ny) = (node(x), node(y));
    for round in 0..4 {
        let (a, b) = tokio::join!(nx.request(&gy), ny.request(&gx));
        assert_eq!(
            a.expect("x's call answered").node.as_str(),
            y,
            "round {round}"
        );
        assert_eq!(
            b.expect("y's call answered").node.as_str(),
            x,
            "round {round}"
        );
        eventually(
            &format!("round {round}: the idle association closes"),
            || async {
                nx.cluster.remoting().association(&nid(y)).is_none()
                    && ny.cluster.remoting().association(&nid(x)).is_none()
            },
        )
        .await;
    }
    shutdown(nodes).await;
}
