//! Scenario tests of the ProvisioningSupervisor on the in-memory provider,
//! on tokio's paused clock. Each test names the requirement it proves
//! (docs/requirements.md maps them).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/scripted.rs"]
mod scripted;

use std::time::Duration;

use cluster_core::events::ChangeReason;
use cluster_core::{ProviderError, ProviderHealth, ProvisioningStatus};
use harness::*;
use provider_memory::{FaultHandle, MembershipTable};
use provisioning_actors::ProviderKinds;
use scripted::{ScriptedKind, scripted};

/// A3: the supervisor is a system actor with one ProviderActor child per
/// enabled provider; a disabled provider has no child.
#[tokio::test(start_paused = true)]
async fn a3_system_actor_with_one_child_per_enabled_provider() {
    let t = MembershipTable::new();
    let mut off = memory("off", 2, "t");
    off.enabled = false;
    let node = node_with(
        "n",
        &[("t", t.clone())],
        test_config(None),
        vec![memory("a", 0, "t"), memory("b", 1, "t"), off],
    )
    .await
    .unwrap();
    let _ = node.handle.providers().await.unwrap(); // after `started`
    let sup = node.handle.actor().handle().clone();
    assert_eq!(sup.path().as_str(), "/system/provisioning");
    let mut names: Vec<String> = sup
        .children()
        .iter()
        .map(|c| c.path().name().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["provider-a", "provider-b"]);
    let providers = node.handle.providers().await.unwrap();
    let off = providers.iter().find(|p| p.id == pid("off")).unwrap();
    assert_eq!(off.health, ProviderHealth::Disabled);
    assert_eq!(
        off.disabled_reason.as_deref(),
        Some("disabled by configuration")
    );
    node.shutdown().await;
}

/// R2.1, A5: the local member registers itself; joins and leaves stream out
/// as TopologyUpdated with a diff, a monotonic seq_no and the previous hash.
#[tokio::test(start_paused = true)]
async fn r2_1_updates_stream_with_diff_and_monotonic_seq_no() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("local registered", |t| t.members.len() == 1)
        .await;
    p.upsert(member("b", 1));
    let t = node
        .wait_topology("b joined", |t| t.members.len() == 2)
        .await;
    assert_eq!(t.status, ProvisioningStatus::Active);
    assert_eq!(t.active_provider, Some(pid("primary")));
    p.remove(&nid("b"));
    node.wait_topology("b left", |t| t.members.len() == 1).await;
    let ups = node.events.updates();
    let joined = ups
        .iter()
        .find(|u| u.diff.joined.iter().any(|m| m.node_id == nid("b")))
        .unwrap();
    let left = ups
        .iter()
        .find(|u| u.diff.left.iter().any(|m| m.node_id == nid("b")))
        .unwrap();
    assert!(left.topology.seq_no > joined.topology.seq_no);
    assert_eq!(left.previous_hash, joined.topology.hash);
    for w in ups.windows(2) {
        assert!(
            w[1].topology.seq_no > w[0].topology.seq_no,
            "seq_no monotonic"
        );
        assert_eq!(w[1].previous_hash, w[0].topology.hash, "hash chain");
    }
    node.shutdown().await;
}

/// R2.3: a snapshot identical to the last one (the same members, a new
/// `observed_at`) reaches the supervisor (it becomes the provider's last
/// snapshot) but publishes nothing: no TopologyUpdated, the seq_no
/// unchanged. A changed snapshot is published with the next seq_no and its
/// diff. The scripted provider delivers exactly the snapshots pushed, so
/// the duplicates really arrive (the memory provider wakes no watcher for
/// an unchanged table).
#[tokio::test(start_paused = true)]
async fn r2_3_identical_snapshot_publishes_nothing_a_changed_one_does() {
    let kind = ScriptedKind::new();
    let primary = kind.script("primary");
    primary.set_members(vec![member("b", 1)]);
    let node = node_with_kinds(
        "node",
        ProviderKinds::new().with(kind.clone()),
        test_config(Some(member("local", 1))),
        vec![scripted("primary", 0)],
    )
    .await
    .unwrap();
    let t = node
        .wait_topology("local and b", |t| {
            t.members.len() == 2 && t.status == ProvisioningStatus::Active
        })
        .await;
    let first = node
        .handle
        .last_snapshot(&pid("primary"))
        .await
        .unwrap()
        .unwrap();
    let before = node.events.updates().len();
    for _ in 0..3 {
        let duplicate = primary.resend();
        assert_eq!(*duplicate.members, *primary.members());
        assert!(duplicate.observed_at > first.observed_at);
        // Delivered: the supervisor took it in as the last snapshot.
        for _ in 0..1000 {
            let last = node.handle.last_snapshot(&pid("primary")).await.unwrap();
            if last.is_some_and(|l| l.observed_at == duplicate.observed_at) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let last = node
            .handle
            .last_snapshot(&pid("primary"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            last.observed_at, duplicate.observed_at,
            "duplicate delivered"
        );
        assert_eq!(last.members.len(), 2);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        node.events.updates().len(),
        before,
        "an identical snapshot publishes no TopologyUpdated: {:#?}",
        &node.events.updates()[before..]
    );
    assert_eq!(node.topology().await.seq_no, t.seq_no, "seq_no unchanged");
    // A real change does publish, with the next seq_no.
    let mut members = primary.members();
    members.push(member("c", 1));
    primary.set_members(members);
    let changed = node
        .wait_topology("c joined", |t| t.member(&nid("c")).is_some())
        .await;
    assert_eq!(changed.seq_no, t.seq_no + 1);
    let ups = node.events.updates();
    assert_eq!(ups.len(), before + 1, "one TopologyUpdated for one change");
    let last = ups.last().unwrap();
    assert_eq!(last.previous_hash, t.hash);
    assert_eq!(
        last.diff
            .joined
            .iter()
            .map(|m| m.node_id.clone())
            .collect::<Vec<_>>(),
        vec![nid("c")]
    );
    node.shutdown().await;
}

/// R2.4: a provider reporting zero members (with nobody disagreeing) marks
/// the topology Empty; members coming back make it Active again.
#[tokio::test(start_paused = true)]
async fn r2_4_zero_members_is_empty_and_pauses() {
    let t = MembershipTable::new();
    t.upsert(member("b", 1));
    let node = node_with(
        "n",
        &[("t", t.clone())],
        test_config(None),
        vec![memory("only", 0, "t")],
    )
    .await
    .unwrap();
    node.wait_topology("active", |x| x.status == ProvisioningStatus::Active)
        .await;
    t.clear();
    let e = node
        .wait_topology("empty", |x| x.status == ProvisioningStatus::Empty)
        .await;
    assert!(e.members.is_empty());
    assert!(!e.status.allows_placement());
    assert!(node.events.statuses().contains(&ProvisioningStatus::Empty));
    t.upsert(member("c", 1));
    node.wait_topology("active again", |x| x.status == ProvisioningStatus::Active)
        .await;
    node.shutdown().await;
}

/// R2.2, R2.5, A4: when the active provider's stream ends, a termination
/// event carries the hash of its last snapshot, that snapshot stays
/// available, and the standby takes over without a backend round trip.
#[tokio::test(start_paused = true)]
async fn r2_2_r2_5_stream_end_fails_over_and_keeps_last_snapshot() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    p.upsert(member("b", 1));
    s.upsert(member("b", 1));
    s.upsert(member("c", 1));
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("primary active", |t| {
        t.active_provider == Some(pid("primary")) && t.members.len() == 2
    })
    .await;
    let primary_hash = node.handle.providers().await.unwrap()[0].last_hash.unwrap();
    node.faults("primary").end_all_streams_forever(true);
    node.faults("primary").end_stream();
    let t = node
        .wait_topology("standby active", |t| {
            t.active_provider == Some(pid("standby"))
        })
        .await;
    assert_eq!(t.members.len(), 3, "standby's view: local, b, c");
    let term = node.events.terminations();
    let ended = term
        .iter()
        .find(|x| x.provider == pid("primary") && x.reason == "ended")
        .unwrap();
    assert_eq!(
        ended.last_hash,
        Some(primary_hash),
        "R2.2: hash of its last snapshot"
    );
    let last = node.handle.last_snapshot(&pid("primary")).await.unwrap();
    assert_eq!(
        last.map(|s| s.members.len()),
        Some(2),
        "R2.2: last snapshot kept"
    );
    let change = node
        .events
        .changes()
        .into_iter()
        .find(|c| c.to == Some(pid("standby")))
        .unwrap();
    assert_eq!(change.reason, ChangeReason::StreamEnded);
    // Published with the topology of the same logical tick (A5).
    let switched = node
        .events
        .updates()
        .into_iter()
        .find(|u| u.topology.active_provider == Some(pid("standby")))
        .unwrap();
    assert_eq!(change.seq_no, switched.topology.seq_no);
    assert_eq!(change.hash, switched.topology.hash);
    assert_eq!(
        term.iter()
            .filter(|x| x.provider == pid("primary") && x.reason == "ended")
            .count(),
        1,
        "one stream end, one termination event"
    );
    node.shutdown().await;
}

/// A4, R2.5: after the primary recovers, fail-back waits for the stability
/// window (10 s), then the primary is active again.
#[tokio::test(start_paused = true)]
async fn a4_fail_back_waits_for_the_stability_window() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("primary active", |t| {
        t.active_provider == Some(pid("primary"))
    })
    .await;
    node.faults("primary").end_stream(); // restarted by supervision
    node.wait_topology("standby active", |t| {
        t.active_provider == Some(pid("standby"))
    })
    .await;
    let switched_at = tokio::time::Instant::now();
    node.wait_topology("primary back", |t| {
        t.active_provider == Some(pid("primary"))
    })
    .await;
    let waited = switched_at.elapsed();
    assert!(
        waited >= Duration::from_secs(10),
        "fail-back after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(13),
        "fail-back after {waited:?}"
    );
    let back = node.events.changes().into_iter().last().unwrap();
    assert_eq!(back.reason, ChangeReason::FailBack);
    node.shutdown().await;
}

/// A4 (failover by restart): a ProviderActor that crashes 1,000 times is
/// restarted each time with backoff, the standby serves meanwhile, and the
/// primary is active again at the end.
#[tokio::test(start_paused = true)]
async fn a4_provider_actor_crashing_a_thousand_times_is_restarted() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let mut config = test_config(Some(member("local", 1)));
    config.provider_max_restarts = u32::MAX;
    config.provider_backoff =
        actor_runtime::Backoff::exponential(Duration::from_millis(1), Duration::from_millis(5));
    let node = two_provider_node_with(&p, &s, config).await;
    node.wait_topology("primary active", |t| {
        t.active_provider == Some(pid("primary"))
    })
    .await;
    let faults = node.faults("primary");
    for _ in 0..1000 {
        faults.end_stream();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = node
        .wait_topology("primary back", |t| {
            t.active_provider == Some(pid("primary"))
        })
        .await;
    assert_eq!(t.status, ProvisioningStatus::Active);
    let ended = node
        .events
        .terminations()
        .iter()
        .filter(|x| x.provider == pid("primary"))
        .count();
    assert!(ended >= 1000, "every crash reported: {ended}");
    node.shutdown().await;
}

/// A4: a provider that goes silent past the timeout turns Degraded and the
/// standby takes over (reason Silence).
#[tokio::test(start_paused = true)]
async fn a4_silence_degrades_and_fails_over() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("primary active", |t| {
        t.active_provider == Some(pid("primary"))
    })
    .await;
    node.faults("primary").silence(true);
    tokio::time::sleep(Duration::from_secs(14)).await;
    // Keep the standby alive; it is silent too unless its table changes.
    s.upsert(member("x", 1));
    let t = node
        .wait_topology("standby active", |t| {
            t.active_provider == Some(pid("standby"))
        })
        .await;
    assert!(t.status == ProvisioningStatus::Active || t.status == ProvisioningStatus::Degraded);
    let c = node
        .events
        .changes()
        .into_iter()
        .find(|c| c.to == Some(pid("standby")))
        .unwrap();
    assert_eq!(c.reason, ChangeReason::Silence);
    node.shutdown().await;
}

/// Glitch rule: a one-off empty snapshot from the active provider does not
/// tear the cluster down while the healthy standby still lists the members.
#[tokio::test(start_paused = true)]
async fn glitch_one_off_empty_snapshot_is_held_when_standby_disagrees() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    for t in [&p, &s] {
        t.upsert(member("b", 1));
        t.upsert(member("c", 1));
    }
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("three members", |t| t.members.len() == 3)
        .await;
    let before = node.events.topologies().len();
    let faults = node.faults("primary");
    faults.empty_snapshots(true);
    tokio::time::sleep(Duration::from_millis(50)).await;
    faults.empty_snapshots(false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        node.events
            .topologies()
            .iter()
            .skip(before)
            .all(|t| t.members.len() == 3),
        "never published fewer members: {:?}",
        node.events
            .topologies()
            .iter()
            .map(|t| t.members.len())
            .collect::<Vec<_>>()
    );
    assert!(
        node.events
            .statuses()
            .iter()
            .all(|s| *s != ProvisioningStatus::Empty)
    );
    node.shutdown().await;
}

/// R5.3: every provider down → Unavailable (placement stops); one recovers →
/// Active again.
#[tokio::test(start_paused = true)]
async fn r5_3_all_providers_down_is_unavailable_until_recovery() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("active", |t| t.status == ProvisioningStatus::Active)
        .await;
    for name in ["primary", "standby"] {
        node.faults(name).end_all_streams_forever(true);
        node.faults(name).end_stream();
    }
    let t = node
        .wait_topology("unavailable", |t| {
            t.status == ProvisioningStatus::Unavailable
        })
        .await;
    assert!(!t.status.allows_placement());
    assert_eq!(t.members.len(), 1, "last members kept for reference");
    node.faults("standby").end_all_streams_forever(false);
    node.wait_topology("recovered", |t| t.status == ProvisioningStatus::Active)
        .await;
    node.shutdown().await;
}

/// R5.2: activation failures past the threshold stop further attempts and
/// publish a warning. The failures hit the provider's activation (before
/// its first snapshot); a running provider is never suppressed (issue 19,
/// `tests/backend_trouble.rs`), which this test got wrong before: it
/// suppressed a primary that had been active.
#[tokio::test(start_paused = true)]
async fn r5_2_repeated_activation_failures_suppress_the_provider() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let faults = FaultHandle::new();
    faults.fail_next(5, ProviderError::Protocol("garbage".into()));
    let node = two_provider_node_failing_primary(&p, &s, faults).await;
    node.wait_events("suppressed", |e| !e.suppressed().is_empty())
        .await;
    let w = &node.events.suppressed()[0];
    assert_eq!(
        (w.provider.clone(), w.failures, w.last_error),
        (pid("primary"), 5, "provider.protocol")
    );
    let t = node
        .wait_topology("standby active", |t| {
            t.active_provider == Some(pid("standby"))
        })
        .await;
    assert_eq!(t.status, ProvisioningStatus::Active);
    let st = node.handle.providers().await.unwrap();
    let primary = st.iter().find(|x| x.id == pid("primary")).unwrap();
    assert_eq!(primary.health, ProviderHealth::Failed);
    assert!(
        primary
            .disabled_reason
            .as_deref()
            .unwrap_or("")
            .contains("suppressed")
    );
    node.shutdown().await;
}

/// Flapping: the primary's stream ends every second for a minute. Fail-back
/// never happens faster than the stability window, and the topology ends on
/// the primary once it is stable.
#[tokio::test(start_paused = true)]
async fn a4_flapping_every_second_for_a_minute_never_flaps_the_topology() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let mut config = test_config(Some(member("local", 1)));
    config.provider_max_restarts = u32::MAX;
    let node = two_provider_node_with(&p, &s, config).await;
    node.wait_topology("primary active", |t| {
        t.active_provider == Some(pid("primary"))
    })
    .await;
    let faults = node.faults("primary");
    for _ in 0..60 {
        faults.end_stream();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let changes = node.events.changes();
    let fail_backs: Vec<_> = changes
        .iter()
        .filter(|c| c.reason == ChangeReason::FailBack)
        .collect();
    assert!(
        fail_backs.is_empty(),
        "a provider flapping every second never fails back: {changes:?}"
    );
    assert!(
        changes.len() <= 3,
        "initial + one failover, no churn: {changes:?}"
    );
    node.wait_topology("primary back", |t| {
        t.active_provider == Some(pid("primary"))
    })
    .await;
    node.shutdown().await;
}

/// A5, R4.5: provider health changes are published with the last update
/// time and the last error code.
#[tokio::test(start_paused = true)]
async fn a5_provider_health_changes_are_published() {
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let node = two_provider_node(&p, &s).await;
    node.wait_topology("active", |t| t.status == ProvisioningStatus::Active)
        .await;
    node.faults("primary")
        .fail_next(3, ProviderError::Stream("reset by peer".into()));
    node.wait_events("primary degraded", |e| {
        e.all().iter().any(|x| matches!(x, Ev::Health(h) if h.provider == pid("primary") && h.health == ProviderHealth::Degraded))
    })
    .await;
    let h = node
        .events
        .all()
        .into_iter()
        .find_map(|x| match x {
            Ev::Health(h)
                if h.provider == pid("primary") && h.health == ProviderHealth::Degraded =>
            {
                Some(h)
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(h.previous, ProviderHealth::Healthy);
    assert_eq!(h.last_error, Some("provider.stream"));
    assert!(h.last_update.is_some());
    // It recovers with its next snapshot.
    node.wait_events("primary healthy again", |e| {
        e.all().iter().filter(|x| matches!(x, Ev::Health(h) if h.provider == pid("primary") && h.health == ProviderHealth::Healthy)).count() >= 2
    })
    .await;
    node.shutdown().await;
}
