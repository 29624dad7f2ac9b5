//! Issue 19 with the Consul provider, over fake agents on loopback (real
//! time, short timings): a token whose policy changes under a running node
//! leaves the provider Degraded with its last topology, never suppressed
//! (R5.2, R4.3); an agent restarted without its services is not "everyone
//! left" (the self-presence rule).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_core::{ProviderHealth, ProvisioningStatus, Topology};
use fake_consul::{Access, FakeConsul};
use harness::*;

fn ids(t: &Topology) -> BTreeSet<String> {
    t.members.iter().map(|m| m.node_id.to_string()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// R5.2, R4.3: the node's token is downgraded to `agent:read` while the
/// provider runs (its health reads are filtered by ACLs, its TTL passes
/// refused): `provider.auth` errors for seconds, far past R5.2's threshold,
/// yet the provider is Degraded, not suppressed, and the last topology
/// (this node in it) is served; the policy restored, it is Active again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_2_r4_3_token_policy_changed_while_running_stays_degraded() {
    let agent = FakeConsul::builder()
        .token("node-token", Access::Write)
        .min_deregister_after(Duration::ZERO)
        .reap_interval(Duration::from_millis(100))
        .tick(Duration::from_millis(10))
        .start()
        .await
        .unwrap();
    let a = node_with(
        member("a", 4001),
        vec![consul("consul", 0, &agent).with_setting("token", "node-token")],
        &[],
    )
    .await
    .unwrap();
    a.wait_topology("a, Active", |t| {
        ids(t) == set(&["a"]) && t.status == ProvisioningStatus::Active
    })
    .await;
    agent.set_token("node-token", Some(Access::AgentRead));
    a.wait_topology("Degraded", |t| t.status == ProvisioningStatus::Degraded)
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The errors are counted, not announced as stream ends (issue 13).
    let status = a.handle.providers().await.unwrap().remove(0);
    assert_eq!(status.last_error, Some("provider.auth"));
    let auth_errors = status.stream_errors;
    assert!(auth_errors > 5, "past R5.2's threshold: {auth_errors}");
    assert!(a.events.suppressed().is_empty(), "R5.2: never suppressed");
    let t = a.topology().await;
    assert_eq!(ids(&t), set(&["a"]), "R4.3: last topology kept");
    assert_eq!(t.status, ProvisioningStatus::Degraded);
    let p = a.handle.providers().await.unwrap();
    assert_eq!(p[0].health, ProviderHealth::Degraded);
    assert!(
        a.events.topologies().iter().all(|t| Node::has(t, "a")),
        "never published without itself"
    );
    agent.set_token("node-token", Some(Access::Write));
    a.wait_topology("Active again", |t| {
        ids(t) == set(&["a"]) && t.status == ProvisioningStatus::Active
    })
    .await;
    a.shutdown().await;
}

/// R4.3, self-presence rule: three nodes register through one agent, which
/// restarts without its services (a dev agent, or an agent whose data dir
/// was lost). Every node's next snapshot lists nobody: it is held while the
/// node registers again at once, and no node publishes a topology without
/// itself or an empty one; once all are back every topology is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_3_agent_restarted_without_services_no_node_publishes_a_topology_without_itself() {
    let agent = fake().await;
    let all = ["a", "b", "c"];
    let mut nodes = Vec::new();
    for (i, n) in all.iter().enumerate() {
        let port = 4001 + u16::try_from(i).unwrap();
        nodes.push(consul_node(n, port, &agent).await);
    }
    for n in &nodes {
        n.wait_topology("all three", |t| ids(t) == set(&all)).await;
    }
    let before: Vec<usize> = nodes.iter().map(|n| n.events.updates().len()).collect();
    agent.restart();
    wait_until("every node registered again", || {
        agent.service_ids().len() == 3
    })
    .await;
    for n in &nodes {
        n.wait_topology("all three, Active", |t| {
            ids(t) == set(&all) && t.status == ProvisioningStatus::Active
        })
        .await;
    }
    for (n, skip) in nodes.iter().zip(before) {
        let me = n.local.node_id.to_string();
        for u in n.events.updates().iter().skip(skip) {
            let t = &u.topology;
            assert!(ids(t).contains(&me), "{me} published itself missing: {t:?}");
            assert!(t.members.len() >= 2, "{me}: {t:?}");
            assert_ne!(t.status, ProvisioningStatus::Empty, "{me}: {t:?}");
        }
    }
    for n in nodes {
        n.shutdown().await;
    }
}
