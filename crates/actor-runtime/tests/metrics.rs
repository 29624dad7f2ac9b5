//! A1 metrics: messages, failures, restarts, spawns and terminations reach
//! the `metrics` facade with the documented names and labels. One global
//! recorder per process, so this file holds one test with a global
//! recorder; the N2 test uses a thread-local one.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use actor_runtime::{Actor, ActorSystem, Backoff, Context, HandlerResult, SupervisorStrategy};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

struct Flaky;
impl Actor for Flaky {
    type Msg = bool;
    async fn handle(&mut self, fail: bool, _: &mut Context<Self>) -> HandlerResult {
        if fail {
            return Err("flaky".into());
        }
        Ok(())
    }
}

/// (name, labels, value) of one counter.
type Row = (String, Vec<(String, String)>, u64);

fn counter(snapshot: &[Row], name: &str, label: (&str, &str)) -> u64 {
    snapshot
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && labels
                    .iter()
                    .any(|(k, v)| k == label.0 && v.ends_with(label.1))
        })
        .map(|(_, _, v)| *v)
        .sum()
}

#[tokio::test]
async fn a1_actor_metrics_are_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let system = ActorSystem::builder("m")
        .user_guardian_strategy(SupervisorStrategy::one_for_one().with_backoff(Backoff::none()))
        .build()
        .unwrap();
    let a = system.spawn("flaky", || Flaky).unwrap();
    for i in 0..10 {
        a.tell(i % 5 == 4).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    system.shutdown().await;

    let snap: Vec<Row> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(v) => Some((
                key.key().name().to_owned(),
                key.key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect(),
                v,
            )),
            _ => None,
        })
        .collect();
    let flaky = ("actor_type", "Flaky");
    assert_eq!(
        counter(&snap, actor_runtime::metrics::MESSAGES_PROCESSED, flaky),
        10
    );
    assert_eq!(
        counter(&snap, actor_runtime::metrics::FAILURES, ("kind", "error")),
        2
    );
    assert_eq!(counter(&snap, actor_runtime::metrics::RESTARTS, flaky), 2);
    assert_eq!(counter(&snap, actor_runtime::metrics::SPAWNED, flaky), 1);
    assert_eq!(
        counter(
            &snap,
            actor_runtime::metrics::TERMINATED,
            ("reason", "stopped")
        ),
        3
    );
}

/// N2: two systems in one process (two nodes, as in the tests and the
/// quickstart) keep separate series under their `node` label (the system's
/// name), and `describe` gives each metric its unit. A thread-local
/// recorder on this current-thread runtime keeps it apart from the test
/// above.
#[tokio::test]
async fn n2_two_systems_in_one_process_keep_separate_series_by_node() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    actor_runtime::metrics::describe();

    let a = ActorSystem::new("node-a");
    let b = ActorSystem::new("node-b");
    let fa = a.spawn("flaky", || Flaky).unwrap();
    let fb = b.spawn("flaky", || Flaky).unwrap();
    for _ in 0..3 {
        fa.tell(false).unwrap();
    }
    for _ in 0..5 {
        fb.tell(false).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.shutdown().await;
    b.shutdown().await;

    let snap = snapshotter.snapshot().into_vec();
    let processed = |node: &str| {
        snap.iter()
            .find_map(|(key, unit, _, v)| {
                let k = key.key();
                let matches = k.name() == actor_runtime::metrics::MESSAGES_PROCESSED
                    && k.labels().any(|l| l.key() == "node" && l.value() == node)
                    && k.labels()
                        .any(|l| l.key() == "actor_type" && l.value().ends_with("Flaky"));
                match v {
                    DebugValue::Counter(c) if matches => Some((*c, *unit)),
                    _ => None,
                }
            })
            .unwrap()
    };
    assert_eq!(processed("node-a"), (3, Some(metrics::Unit::Count)));
    assert_eq!(processed("node-b"), (5, Some(metrics::Unit::Count)));
    // Every series of the runtime carries the label.
    assert!(
        snap.iter()
            .all(|(key, _, _, _)| key.key().labels().any(|l| l.key() == "node"))
    );
}
