//! Failure paths of the ProvisioningSupervisor that the other scenario
//! tests do not reach (issue 13, item 5): a provider actor that panics
//! (in its watch stream, and in `register` while handling a message), the
//! restart limit reached (the provider ends Failed), and failover without a
//! backend round trip (the standby's backend receives no request between
//! the primary's failure and the switch).
//!
//! The providers are `scripted` (`support/scripted.rs`): the test pushes
//! their snapshots, makes them panic, and counts their backend requests.
//! Tokio's paused clock throughout.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/scripted.rs"]
mod scripted;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_core::events::{ChangeReason, ProviderChanged};
use cluster_core::{Member, ProviderHealth, ProvisioningStatus};
use harness::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use provisioning_actors::{ProviderKinds, ProvisioningConfig};
use scripted::{Script, ScriptedKind, scripted};

/// A node with two scripted providers, primary (priority 0) and standby
/// (priority 1), both watching; the primary lists `local` and `b`, the
/// standby `local`, `b` and `s-only`, so the two views differ. Both
/// backends re-send their list every 5 s (below the 15 s silence timeout).
struct Pair {
    node: Node,
    primary: Script,
    standby: Script,
}

async fn pair(config: ProvisioningConfig) -> Pair {
    let kind = ScriptedKind::new();
    let (primary, standby) = (kind.script("primary"), kind.script("standby"));
    primary.set_members(vec![member("b", 1)]);
    standby.set_members(vec![member("b", 1), member("s-only", 1)]);
    for s in [&primary, &standby] {
        s.keepalive(Duration::from_secs(5));
    }
    let node = node_with_kinds(
        "node",
        ProviderKinds::new().with(kind),
        config,
        vec![scripted("primary", 0), scripted("standby", 1)],
    )
    .await
    .unwrap();
    node.wait_topology("primary active, both healthy", |t| {
        t.active_provider == Some(pid("primary")) && t.members.len() == 2
    })
    .await;
    node.wait_events("standby healthy", |e| {
        e.health()
            .iter()
            .any(|h| h.provider == pid("standby") && h.health == ProviderHealth::Healthy)
    })
    .await;
    Pair {
        node,
        primary,
        standby,
    }
}

fn ids(members: &[Member]) -> Vec<(String, u64)> {
    let mut v: Vec<_> = members
        .iter()
        .map(|m| (m.node_id.to_string(), m.incarnation))
        .collect();
    v.sort();
    v
}

/// The health changes of `provider`, in order.
fn health_of(node: &Node, provider: &str) -> Vec<(ProviderHealth, ProviderHealth)> {
    node.events
        .health()
        .into_iter()
        .filter(|h| h.provider == pid(provider))
        .map(|h| (h.previous, h.health))
        .collect()
}

/// `actor_restarts_total` of the provider actors of node `node` since the
/// previous call (a debugging recorder's snapshot drains its counters).
fn provider_actor_restarts(snap: &Snapshotter, node: &str) -> f64 {
    snap.snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| {
            let k = key.key();
            k.name() == actor_runtime::metrics::RESTARTS
                && k.labels().any(|l| l.key() == "node" && l.value() == node)
                && k.labels()
                    .any(|l| l.key() == "actor_type" && l.value().contains("ProviderActor"))
        })
        .map(|(_, _, _, v)| match v {
            DebugValue::Counter(c) => c as f64,
            _ => 0.0,
        })
        .sum()
}

/// A4 (failover by restart): a provider whose watch stream panics is a
/// crashed ProviderActor, not a crashed supervisor. The supervisor stays
/// up, the primary goes Down (the standby serves at once) and is restarted
/// (a new watch and a new registration, `actor_restarts_total` counts it),
/// then Healthy and active again after the stability window. The standby
/// is left alone (no restart, no health change), and the topology keeps
/// publishing throughout.
#[tokio::test(start_paused = true)]
async fn a4_a_provider_whose_watch_stream_panics_is_restarted_and_the_rest_goes_on() {
    let recorder = DebuggingRecorder::new();
    let metrics = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let Pair {
        node,
        primary,
        standby,
    } = pair(test_config(Some(member("local", 1)))).await;
    let standby_health = health_of(&node, "standby");
    assert_eq!((primary.watches(), primary.registers()), (1, 1));
    let (standby_watches, standby_registers) = (standby.watches(), standby.registers());
    let _ = provider_actor_restarts(&metrics, "node"); // from here on
    let seq_before = node.topology().await.seq_no;

    assert!(primary.panic_stream(), "the primary's stream is open");
    let t = node
        .wait_topology("standby active", |t| {
            t.active_provider == Some(pid("standby"))
        })
        .await;
    assert_eq!(t.status, ProvisioningStatus::Active);
    assert!(t.seq_no > seq_before);
    assert_eq!(
        ids(&t.members),
        ids(&standby.members()),
        "the standby's view"
    );
    node.wait_events("primary down then healthy", |_| {
        let h = health_of(&node, "primary");
        let down = h.iter().position(|x| x.1 == ProviderHealth::Down);
        down.is_some_and(|i| h[i + 1..].iter().any(|x| x.1 == ProviderHealth::Healthy))
    })
    .await;
    // Restarted: the new instance registered and watches again.
    assert_eq!((primary.watches(), primary.registers()), (2, 2));
    assert!(
        provider_actor_restarts(&metrics, "node") >= 1.0,
        "the restart is counted"
    );
    // A panic of the stream is reported like its end.
    let change = node
        .events
        .changes()
        .into_iter()
        .find(|c| c.to == Some(pid("standby")))
        .unwrap();
    assert_eq!(change.reason, ChangeReason::StreamEnded);
    assert!(
        node.events
            .terminations()
            .iter()
            .any(|x| x.provider == pid("primary") && x.reason == "ended")
    );

    // The topology keeps publishing while the standby serves...
    let mut members = standby.members();
    members.push(member("x", 1));
    standby.set_members(members);
    node.wait_topology("x joined on the standby", |t| t.member(&nid("x")).is_some())
        .await;
    // ...and after fail-back to the restarted primary.
    node.wait_topology("primary back", |t| {
        t.active_provider == Some(pid("primary"))
    })
    .await;
    let mut members = primary.members();
    members.push(member("y", 1));
    primary.set_members(members);
    let t = node
        .wait_topology("y joined on the primary", |t| t.member(&nid("y")).is_some())
        .await;
    assert_eq!(t.status, ProvisioningStatus::Active);

    // The supervisor is the same actor, alive; the standby was untouched.
    assert!(!node.handle.actor().handle().is_terminated());
    assert_eq!(
        (standby.watches(), standby.registers()),
        (standby_watches, standby_registers),
        "the standby was not restarted"
    );
    assert_eq!(
        health_of(&node, "standby"),
        standby_health,
        "the standby's health never changed"
    );
    node.shutdown().await;
}

/// A4: a ProviderActor that panics while handling a message (here
/// `register`, called again because the backend lost this node) is
/// reported as crashed, not as a stream end: the standby takes over with
/// reason `Crashed`, no stream termination is published, and the restarted
/// instance registers again and serves after the stability window.
#[tokio::test(start_paused = true)]
async fn a4_a_provider_actor_panicking_in_register_is_restarted_as_crashed() {
    let Pair {
        node,
        primary,
        standby,
    } = pair(test_config(Some(member("local", 1)))).await;
    let standby_watches = standby.watches();
    primary.panic_on_register(1);
    // The backend loses this node: the supervisor holds the snapshot and
    // tells the provider to register again, which panics.
    primary.set_members(vec![member("b", 1)]);
    node.wait_topology("standby active", |t| {
        t.active_provider == Some(pid("standby"))
    })
    .await;
    let change = node
        .events
        .changes()
        .into_iter()
        .find(|c| c.to == Some(pid("standby")))
        .unwrap();
    assert_eq!(change.reason, ChangeReason::Crashed);
    assert!(
        node.events
            .terminations()
            .iter()
            .all(|x| x.provider != pid("primary")),
        "a crash is not a stream end: {:?}",
        node.events.terminations()
    );
    let back = node
        .wait_topology("primary back", |t| {
            t.active_provider == Some(pid("primary"))
        })
        .await;
    // Registered again by the restarted instance (1 at start, 1 that
    // panicked, 1 after the restart), so this node is listed again.
    assert_eq!((primary.registers(), primary.watches()), (3, 2));
    assert!(back.member(&nid("local")).is_some());
    assert_eq!(
        health_of(&node, "primary")
            .into_iter()
            .filter(|x| x.1 == ProviderHealth::Down)
            .count(),
        1
    );
    assert_eq!(standby.watches(), standby_watches);
    assert!(!node.handle.actor().handle().is_terminated());
    node.shutdown().await;
}

/// A4: a provider that keeps crashing past `provider_max_restarts` (3)
/// within `provider_restart_window` ends Failed: `ProviderHealthChanged` to
/// Failed, its status says why (`restart limit`), no further restart, and
/// the standby serves for good (no fail-back to a Failed provider).
#[tokio::test(start_paused = true)]
async fn a4_restart_limit_reached_fails_the_provider_and_the_standby_serves() {
    let mut config = test_config(Some(member("local", 1)));
    config.provider_max_restarts = 3;
    config.provider_restart_window = Duration::from_secs(60);
    config.suppression_reprobe =
        actor_runtime::Backoff::exponential(Duration::from_secs(300), Duration::from_secs(600));
    let Pair {
        node,
        primary,
        standby: _standby,
    } = pair(config).await;
    // Every new instance crashes opening its stream; the first failure is
    // the end of the running one.
    primary.panic_on_watch(usize::MAX);
    assert!(primary.end_stream());
    node.wait_events("primary failed", |_| {
        health_of(&node, "primary")
            .iter()
            .any(|x| x.1 == ProviderHealth::Failed)
    })
    .await;
    let failed_at = primary.watches();
    assert_eq!(
        failed_at, 4,
        "the first instance and 3 restarts opened a stream"
    );
    let statuses = node.handle.providers().await.unwrap();
    let p = statuses.iter().find(|x| x.id == pid("primary")).unwrap();
    assert_eq!(p.health, ProviderHealth::Failed);
    assert!(!p.active);
    let reason = p.disabled_reason.clone().unwrap_or_default();
    assert!(reason.contains("restart limit"), "{reason:?}");
    let t = node.topology().await;
    assert_eq!(t.active_provider, Some(pid("standby")));
    assert_eq!(t.status, ProvisioningStatus::Active);

    // Well past the window and the stability window, before the re-probe
    // delay (300 s): no more restarts, the primary stays Failed and the
    // standby active.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(primary.watches(), failed_at, "no restart after the limit");
    let h = health_of(&node, "primary");
    assert_eq!(h.last().unwrap().1, ProviderHealth::Failed, "{h:?}");
    let t = node.topology().await;
    assert_eq!(t.active_provider, Some(pid("standby")));
    assert_eq!(t.status, ProvisioningStatus::Active);
    assert!(
        node.events
            .changes()
            .iter()
            .all(|c| c.reason != ChangeReason::FailBack),
        "never fails back to a Failed provider"
    );

    // Issue 13: probed again after the delay (half-open): still broken, the
    // restart limit fails it again; once the backend is fixed, the operator
    // lifts it and it serves again.
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert!(primary.watches() > failed_at, "probed again after 300 s");
    node.wait_events("failed again", |_| {
        let h = health_of(&node, "primary");
        h.iter().filter(|x| x.1 == ProviderHealth::Failed).count() >= 2
    })
    .await;
    primary.panic_on_watch(0);
    node.handle.lift_suppression(&pid("primary")).await.unwrap();
    node.wait_topology("primary active again", |t| {
        t.active_provider == Some(pid("primary"))
    })
    .await;
    node.shutdown().await;
}

/// A4: the restart limit counts failures within the window only: a
/// provider crashing 6 times, each 6 s after the last (the window is 5 s,
/// the limit 2), is restarted every time and never Failed.
#[tokio::test(start_paused = true)]
async fn a4_crashes_spread_wider_than_the_restart_window_never_fail_the_provider() {
    let mut config = test_config(Some(member("local", 1)));
    config.provider_max_restarts = 2;
    config.provider_restart_window = Duration::from_secs(5);
    let Pair { node, primary, .. } = pair(config).await;
    for _ in 0..6 {
        assert!(primary.end_stream(), "a restarted stream is open");
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    assert_eq!(primary.watches(), 7, "restarted after each of 6 crashes");
    assert!(
        health_of(&node, "primary")
            .iter()
            .all(|x| x.1 != ProviderHealth::Failed)
    );
    node.wait_topology("primary back", |t| {
        t.active_provider == Some(pid("primary"))
    })
    .await;
    node.shutdown().await;
}

/// A4, R2.5: failover needs no backend round trip. Both providers watch
/// all the time (hot standby), so when the primary fails the supervisor
/// switches to the standby's last snapshot: the standby's backend receives
/// no request (no watch opened, no registration) between the primary's
/// failure and the ProviderChanged to the standby, and the topology
/// published with that change is exactly the standby's last snapshot. The
/// counter does see a round trip: ending the standby's stream afterwards
/// makes it watch and register again.
#[tokio::test(start_paused = true)]
async fn a4_r2_5_failover_needs_no_backend_round_trip() {
    let Pair {
        node,
        primary,
        standby,
    } = pair(test_config(Some(member("local", 1)))).await;
    // The standby's latest list, taken in before the failure.
    let mut members = standby.members();
    members.push(member("late", 1));
    let last = standby.set_members(members);
    for _ in 0..1000 {
        let got = node.handle.last_snapshot(&pid("standby")).await.unwrap();
        if got.is_some_and(|s| s.observed_at == last.observed_at) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let requests_before = standby.requests();
    // The standby's request count when the switch is published.
    let at_switch = Arc::new(Mutex::new(None::<usize>));
    {
        let (at_switch, standby) = (at_switch.clone(), standby.clone());
        let _ = node
            .system
            .event_stream()
            .subscribe_fn(move |c: &ProviderChanged| {
                if c.to == Some(pid("standby")) {
                    at_switch.lock().unwrap().get_or_insert(standby.requests());
                }
            });
    }

    primary.refuse_watches(true); // stays down after its restart
    assert!(primary.end_stream());
    let t = node
        .wait_topology("standby active", |t| {
            t.active_provider == Some(pid("standby"))
        })
        .await;
    assert_eq!(
        *at_switch.lock().unwrap(),
        Some(requests_before),
        "no request to the standby's backend before the switch"
    );
    assert_eq!(standby.requests(), requests_before, "nor after it");
    let change = node
        .events
        .changes()
        .into_iter()
        .find(|c| c.to == Some(pid("standby")))
        .unwrap();
    let switched = node
        .events
        .updates()
        .into_iter()
        .find(|u| u.topology.seq_no == change.seq_no)
        .unwrap();
    assert_eq!(switched.topology.active_provider, Some(pid("standby")));
    assert_eq!(
        ids(&switched.topology.members),
        ids(&last.members),
        "the standby's last snapshot"
    );
    assert_eq!(t.hash, switched.topology.hash);

    // The counter sees a round trip when there is one.
    assert!(standby.end_stream());
    node.wait_events("standby watching again", |_| standby.watches() == 2)
        .await;
    assert!(standby.requests() > requests_before);
    node.shutdown().await;
}
