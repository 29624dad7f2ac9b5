//! R5.1, R4.5: snapshot latency, failovers by reason, stream interruptions by
//! provider, provider health and last-update time, member count. One global
//! recorder per process, so this file holds one test with a global
//! recorder; the N2 test uses a thread-local one on its current-thread
//! runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/harness.rs"]
mod harness;

use cluster_core::ProviderHealth;
use harness::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use provider_memory::MembershipTable;
use provisioning_actors::metrics as m;

type Snap = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// Reads one value from a snapshot (taking a snapshot drains histograms, so
/// the test takes one and reads everything from it).
fn value(s: &Snap, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    s.iter().find_map(|(key, _, _, v)| {
        let k = key.key();
        let labels_ok =
            label.is_none_or(|(lk, lv)| k.labels().any(|l| l.key() == lk && l.value() == lv));
        if k.name() != name || !labels_ok {
            return None;
        }
        match v {
            DebugValue::Counter(c) => Some(*c as f64),
            DebugValue::Gauge(g) => Some(g.into_inner()),
            DebugValue::Histogram(h) => Some(h.len() as f64),
        }
    })
}

#[tokio::test(start_paused = true)]
async fn r5_1_r4_5_provisioning_metrics_are_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    p.upsert(member("b", 1));
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("two members", |t| t.members.len() == 2)
        .await;
    node.faults("primary").end_all_streams_forever(true);
    node.faults("primary").end_stream();
    node.wait_topology("standby", |t| t.active_provider == Some(pid("standby")))
        .await;

    let snap: Snap = snapshotter.snapshot().into_vec();
    assert!(value(&snap, m::SNAPSHOT_LATENCY, Some(("provider", "primary"))).unwrap() >= 1.0);
    assert_eq!(
        value(&snap, m::FAILOVERS, Some(("reason", "initial"))),
        Some(1.0)
    );
    assert_eq!(
        value(&snap, m::FAILOVERS, Some(("reason", "stream_ended"))),
        Some(1.0)
    );
    assert!(
        value(
            &snap,
            m::STREAM_INTERRUPTIONS,
            Some(("provider", "primary"))
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        value(&snap, m::PROVIDER_HEALTH, Some(("provider", "standby"))),
        Some(ProviderHealth::Healthy.gauge())
    );
    assert!(value(&snap, m::PROVIDER_HEALTH, Some(("provider", "primary"))).unwrap() < 2.0);
    assert!(
        value(
            &snap,
            m::PROVIDER_LAST_UPDATE,
            Some(("provider", "standby"))
        )
        .unwrap()
            > 1.0e9
    );
    assert_eq!(
        value(&snap, m::MEMBERS, None),
        Some(1.0),
        "standby lists only local"
    );
    assert_eq!(
        value(&snap, m::STATUS, Some(("status", "active"))),
        Some(1.0)
    );
    assert!(value(&snap, m::TOPOLOGY_UPDATES, None).unwrap() >= 2.0);
    node.shutdown().await;
}

/// The value of the series `name` whose labels include all of `labels`.
fn labelled(s: &Snap, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.iter().find_map(|(key, _, _, v)| {
        let k = key.key();
        let all = labels
            .iter()
            .all(|(lk, lv)| k.labels().any(|l| l.key() == *lk && l.value() == *lv));
        if k.name() != name || !all {
            return None;
        }
        match v {
            DebugValue::Counter(c) => Some(*c as f64),
            DebugValue::Gauge(g) => Some(g.into_inner()),
            DebugValue::Histogram(h) => Some(h.len() as f64),
        }
    })
}

/// N2, R4.5, R3.5: two nodes in one process keep their own gauges under
/// their `node` label (the local member's id), and a drain shows as
/// `provisioning_status{status="draining"}` on the drained node only.
#[tokio::test(start_paused = true)]
async fn n2_r4_5_two_nodes_keep_separate_gauges_and_drain_shows_in_status() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    m::describe();

    let (ta, tb) = (MembershipTable::new(), MembershipTable::new());
    ta.upsert(member("x", 1));
    let defs = || vec![memory("primary", 0, "t")];
    let a = node_with(
        "sys-a",
        &[("t", ta.clone())],
        test_config(Some(member("a", 1))),
        defs(),
    )
    .await
    .unwrap();
    let b = node_with(
        "sys-b",
        &[("t", tb.clone())],
        test_config(Some(member("b", 1))),
        defs(),
    )
    .await
    .unwrap();
    a.wait_topology("a and x", |t| t.members.len() == 2).await;
    b.wait_topology("b alone", |t| t.members.len() == 1).await;
    b.handle.drain().await.unwrap();

    // One snapshot: taking one resets the debugging recorder's values.
    let snap: Snap = snapshotter.snapshot().into_vec();
    assert_eq!(labelled(&snap, m::MEMBERS, &[("node", "a")]), Some(2.0));
    assert_eq!(labelled(&snap, m::MEMBERS, &[("node", "b")]), Some(1.0));
    for node in ["a", "b"] {
        assert_eq!(
            labelled(
                &snap,
                m::PROVIDER_HEALTH,
                &[("node", node), ("provider", "primary")]
            ),
            Some(ProviderHealth::Healthy.gauge())
        );
    }
    // The drain shows on b only.
    let status = |node, status| labelled(&snap, m::STATUS, &[("node", node), ("status", status)]);
    assert_eq!(status("b", "draining"), Some(1.0));
    assert_eq!(status("b", "active"), Some(0.0));
    assert_eq!(status("a", "active"), Some(1.0));
    assert_eq!(status("a", "draining"), None);
    // Every series carries the node label; `describe` gave the units.
    assert!(
        snap.iter()
            .all(|(key, _, _, _)| key.key().labels().any(|l| l.key() == "node"))
    );
    let unit = snap
        .iter()
        .find(|(key, _, _, _)| key.key().name() == m::SNAPSHOT_LATENCY)
        .and_then(|(_, unit, _, _)| *unit);
    assert_eq!(unit, Some(metrics::Unit::Seconds));
    a.shutdown().await;
    b.shutdown().await;
}

/// Issue 19, N2: a snapshot held by the self-presence rule is counted in
/// `provisioning_suspect_snapshots_held_total`, with the `node`, `provider`
/// and `reason` labels; a graceful leave of another node counts nothing.
#[tokio::test(start_paused = true)]
async fn n2_held_suspect_snapshots_are_counted_by_node_provider_and_reason() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    m::describe();

    let t = MembershipTable::new();
    t.upsert(member("x", 1));
    t.upsert(member("y", 1));
    let a = node_with(
        "sys-a",
        &[("t", t.clone())],
        test_config(Some(member("a", 1))),
        vec![memory("primary", 0, "t")],
    )
    .await
    .unwrap();
    a.wait_topology("a, x, y", |t| t.members.len() == 3).await;
    t.remove(&nid("y")); // another node leaves: not suspect
    a.wait_topology("y left", |t| t.members.len() == 2).await;
    t.lose_all_data(); // suspect: held, `a` registers again at once
    a.wait_topology("a back in the table", |_| t.get(&nid("a")).is_some())
        .await;

    let snap: Snap = snapshotter.snapshot().into_vec();
    let held = labelled(
        &snap,
        m::SUSPECT_SNAPSHOTS_HELD,
        &[
            ("node", "a"),
            ("provider", "primary"),
            ("reason", "self_missing"),
        ],
    );
    assert!(held.is_some_and(|n| n >= 1.0), "{held:?}");
    assert_eq!(
        labelled(
            &snap,
            m::SUSPECT_SNAPSHOTS_HELD,
            &[("reason", "mass_removal")]
        ),
        None
    );
    let described = snap
        .iter()
        .find(|(key, _, _, _)| key.key().name() == m::SUSPECT_SNAPSHOTS_HELD)
        .and_then(|(_, unit, _, _)| *unit);
    assert_eq!(described, Some(metrics::Unit::Count));
    a.shutdown().await;
}
