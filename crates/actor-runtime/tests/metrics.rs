//! A1 metrics: messages, failures, restarts, spawns and terminations reach
//! the `metrics` facade with the documented names and labels. One global
//! recorder per process, so this file holds one test.
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
