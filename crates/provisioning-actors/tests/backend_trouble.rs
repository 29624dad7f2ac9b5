//! Issue 19: backend trouble must never shrink a healthy cluster. A
//! provider that loses its permission while running stays Degraded with its
//! last topology (R4.3) and is never suppressed (R5.2 counts activation
//! failures only); a backend that lost its data is not "everyone left" (the
//! self-presence rule). On the memory provider and tokio's paused clock;
//! each test failed before the fix.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/logs.rs"]
mod logs;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_core::{ProviderError, ProviderHealth, ProvisioningStatus, Topology};
use harness::*;
use logs::Logs;
use provider_memory::MemoryKind;
use provider_memory::{FaultHandle, MembershipTable};
use tokio::time::Instant;
use tracing::Level;

fn names(t: &Topology) -> BTreeSet<String> {
    t.members.iter().map(|m| m.node_id.to_string()).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn denied() -> ProviderError {
    ProviderError::Auth("403 Forbidden: the token's policy no longer allows it".into())
}

/// A node `name` whose single memory provider `only` runs over `table`.
async fn single(name: &str, table: &MembershipTable) -> Node {
    node_with(
        name,
        &[("t", table.clone())],
        test_config(Some(member(name, 1))),
        vec![memory("only", 0, "t")],
    )
    .await
    .unwrap()
}

async fn health(node: &Node) -> ProviderHealth {
    node.handle
        .providers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.id == pid("only"))
        .unwrap()
        .health
}

/// R5.2, R4.3: a running provider whose permission is revoked answers only
/// `provider.auth` errors for five minutes of simulated time: it stays
/// Degraded (never suppressed or Failed), the last topology is served with
/// this node in it, the node stays registered; once the permission is back
/// it is Healthy and the status Active again within one refresh.
#[tokio::test(start_paused = true)]
async fn r5_2_r4_3_permission_lost_while_running_stays_degraded_with_its_last_topology() {
    let table = MembershipTable::new();
    table.upsert(member("b", 1));
    let node = single("local", &table).await;
    node.wait_topology("local and b", |t| {
        names(t) == set(&["b", "local"]) && t.status == ProvisioningStatus::Active
    })
    .await;
    let faults = node.faults("only");
    faults.fail_always(Some(denied()));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t = node.topology().await;
        assert_eq!(names(&t), set(&["b", "local"]), "last topology kept");
        assert_ne!(t.status, ProvisioningStatus::Unavailable);
        assert!(
            matches!(
                health(&node).await,
                ProviderHealth::Healthy | ProviderHealth::Degraded
            ),
            "never Down, Failed or suppressed"
        );
        assert!(table.get(&nid("local")).is_some(), "never deregistered");
    }
    assert!(node.events.suppressed().is_empty(), "R5.2: not suppressed");
    assert_eq!(health(&node).await, ProviderHealth::Degraded);
    let t = node.topology().await;
    assert_eq!(t.status, ProvisioningStatus::Degraded, "R4.3");
    assert!(
        node.events
            .topologies()
            .iter()
            .all(|t| t.members.is_empty() || names(t).contains("local")),
        "this node was never dropped from a published topology"
    );
    // The permission is back: Healthy within one refresh (the memory
    // provider's keepalive, 5 s; it re-sends at once).
    faults.fail_always(None);
    let back = Instant::now();
    node.wait_topology("active again", |t| {
        t.status == ProvisioningStatus::Active && names(t) == set(&["b", "local"])
    })
    .await;
    assert!(
        back.elapsed() <= Duration::from_secs(5),
        "{:?}",
        back.elapsed()
    );
    assert_eq!(health(&node).await, ProviderHealth::Healthy);
    node.shutdown().await;
}

/// R5.2: the same permission error from the provider's very first
/// activation (registration and first snapshot refused) is still
/// suppressed.
#[tokio::test(start_paused = true)]
async fn r5_2_permission_missing_at_first_activation_is_still_suppressed() {
    let table = MembershipTable::new();
    let faults = FaultHandle::new();
    faults.fail_always(Some(denied()));
    let kind = MemoryKind::new()
        .with_table("t", table.clone())
        .with_faults("only", faults);
    let node = node_with_kind(
        "n",
        kind,
        test_config(Some(member("local", 1))),
        vec![memory("only", 0, "t")],
    )
    .await
    .unwrap();
    node.wait_events("suppressed", |e| !e.suppressed().is_empty())
        .await;
    let w = &node.events.suppressed()[0];
    assert_eq!(
        (w.provider.clone(), w.failures, w.last_error),
        (pid("only"), 5, "provider.auth")
    );
    assert_eq!(health(&node).await, ProviderHealth::Failed);
    node.wait_topology("unavailable", |t| {
        t.status == ProvisioningStatus::Unavailable
    })
    .await;
    node.shutdown().await;
}

/// R4.3 (self-presence rule): the backend loses all its data under three
/// running nodes. No node ever publishes a topology without itself or with
/// fewer members than were alive; every node registers again at once, and
/// then every topology is complete (and was never anything else).
#[tokio::test(start_paused = true)]
async fn r4_3_backend_lost_all_data_no_node_publishes_an_empty_or_partial_topology() {
    let table = MembershipTable::new();
    let all = ["a", "b", "c"];
    let mut nodes = Vec::new();
    for n in all {
        nodes.push(single(n, &table).await);
    }
    for n in &nodes {
        n.wait_topology("all three", |t| {
            names(t) == set(&all) && t.status == ProvisioningStatus::Active
        })
        .await;
    }
    let before: Vec<usize> = nodes.iter().map(|n| n.events.topologies().len()).collect();
    table.lose_all_data();
    for _ in 0..1_000 {
        if table.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(table.len(), 3, "every node registered again at once");
    // Let every provider report the full table, and a keepalive pass.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for (node, (name, skip)) in nodes.iter().zip(all.iter().zip(&before)) {
        let published: Vec<_> = node.events.topologies().into_iter().skip(*skip).collect();
        for t in &published {
            assert!(
                names(t).contains(*name),
                "{name} published itself missing: {t:?}"
            );
            assert_eq!(
                names(t),
                set(&all),
                "{name} published a partial topology: {t:?}"
            );
            assert_eq!(t.status, ProvisioningStatus::Active);
        }
        let t = node.topology().await;
        assert_eq!(names(&t), set(&all));
        assert_eq!(t.status, ProvisioningStatus::Active);
        assert_eq!(health(node).await, ProviderHealth::Healthy);
    }
    for n in nodes {
        n.shutdown().await;
    }
}

/// Self-presence rule: a graceful leave and a crash of other nodes are not
/// delayed (they do not remove this node, nor more than half the members).
#[tokio::test(start_paused = true)]
async fn r4_3_departures_of_other_nodes_are_not_delayed_by_the_self_presence_rule() {
    let table = MembershipTable::new();
    let all = ["a", "b", "c", "d"];
    let mut nodes = Vec::new();
    for n in all {
        nodes.push(single(n, &table).await);
    }
    for n in &nodes {
        n.wait_topology("all four", |t| names(t) == set(&all)).await;
    }
    let d = nodes.pop().unwrap();
    let start = Instant::now();
    d.handle.drain().await.unwrap();
    for n in &nodes {
        n.wait_topology("d left", |t| names(t) == set(&["a", "b", "c"]))
            .await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // A crash: c's process is gone, its entry expires without a drain.
    let c = nodes.pop().unwrap();
    c.shutdown().await;
    let start = Instant::now();
    table.remove(&nid("c"));
    for n in &nodes {
        n.wait_topology("c gone", |t| names(t) == set(&["a", "b"]))
            .await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    for n in nodes {
        n.shutdown().await;
    }
    d.shutdown().await;
}

/// Self-presence rule: when this node cannot register again, the suspect
/// snapshot is held for the bound (15 s by default), counted and warned
/// about, then applied with a WARN.
#[tokio::test(start_paused = true)]
async fn r4_3_a_suspect_snapshot_is_applied_after_the_bound_with_a_warning() {
    let (logs, _guard) = Logs::capture();
    let table = MembershipTable::new();
    table.upsert(member("b", 1));
    let node = single("local", &table).await;
    node.wait_topology("local and b", |t| names(t) == set(&["b", "local"]))
        .await;
    let faults = node.faults("only");
    faults.fail_registration(true);
    table.remove(&nid("local"));
    let start = Instant::now();
    node.wait_topology("applied at the bound", |t| names(t) == set(&["b"]))
        .await;
    let held_for = start.elapsed();
    assert!(
        held_for >= Duration::from_secs(15) && held_for < Duration::from_secs(16),
        "{held_for:?}"
    );
    let held = logs.with_message(
        "suspect snapshot held: it does not list this node or lost more than half of the members",
    );
    assert_eq!(held.len(), 1, "{}", Logs::dump(&logs.all()));
    assert_eq!(held[0].level, Level::WARN);
    assert_eq!(held[0].field("reason"), Some("self_missing"));
    let applied = logs.with_message("suspect snapshot applied: the hold reached its bound");
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].level, Level::WARN);
    assert_eq!(applied[0].field("provider"), Some("only"));
    // Registration works again: this node is listed, and nothing is held.
    faults.fail_registration(false);
    node.wait_topology("back", |t| names(t) == set(&["b", "local"]))
        .await;
    node.shutdown().await;
}
