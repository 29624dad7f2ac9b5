//! The Consul provider through the ProvisioningSupervisor, over fake Consul
//! agents on loopback (P2, with R1.4, R2.5, A4). Real time, short timings;
//! every wait is bounded (harness `BOUND`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use cluster_core::events::ChangeReason;
use cluster_core::{ProviderHealth, ProvisioningStatus};
use fake_consul::{Access, FakeConsul};
use harness::*;
use provider_memory::MembershipTable;

/// P2, R2.1: each node registers through its own agent; every node's
/// topology lists all three, with address, roles and labels intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_registration_appears_in_every_nodes_topology() {
    let a_agent = fake().await;
    let b_agent = a_agent.join("node-b").await.unwrap();
    let c_agent = a_agent.join("node-c").await.unwrap();
    let a = consul_node("a", 4001, &a_agent).await;
    let b = consul_node("b", 4002, &b_agent).await;
    let c = consul_node("c", 4003, &c_agent).await;
    for n in [&a, &b, &c] {
        let t = n
            .wait_topology("three members", |t| t.members.len() == 3)
            .await;
        assert_eq!(t.status, ProvisioningStatus::Active);
        assert_eq!(t.active_provider, Some(pid("consul")));
        let b_seen = t.member(&nid("b")).unwrap();
        assert_eq!(
            b_seen,
            &member("b", 4002),
            "address, incarnation, roles, labels"
        );
    }
    assert_eq!(
        b_agent.service_ids(),
        vec!["b-7".to_owned()],
        "service ID <node>-<incarnation>"
    );
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

/// P2: a node whose TTL passes stop reaching the agent leaves every
/// topology once the TTL lapses; when its passes get through again it
/// rejoins (DeregisterCriticalServiceAfter is 60 s: not reaped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_missed_ttl_leaves_and_resumed_heartbeats_rejoin() {
    let a_agent = fake().await;
    let b_agent = a_agent.join("node-b").await.unwrap();
    let a = consul_node("a", 4001, &a_agent).await;
    let b = consul_node("b", 4002, &b_agent).await;
    a.wait_topology("b joined", |t| Node::has(t, "b")).await;
    b_agent.refuse_check_updates(true);
    a.wait_topology("b left after its TTL lapsed", |t| {
        !Node::has(t, "b") && Node::has(t, "a")
    })
    .await;
    assert!(b.provider("consul").stats().ttl_failures >= 1);
    b_agent.refuse_check_updates(false);
    a.wait_topology("b rejoined", |t| Node::has(t, "b")).await;
    assert_eq!(
        b.provider("consul").stats().reregistrations,
        0,
        "still registered: a pass was enough"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// P2: critical for longer than DeregisterCriticalServiceAfter, the service
/// is reaped; when its heartbeat reaches the agent again it learns the
/// check is unknown, registers again and rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_reaped_after_critical_timeout_then_registers_again() {
    let a_agent = fake().await;
    let b_agent = a_agent.join("node-b").await.unwrap();
    let a = consul_node("a", 4001, &a_agent).await;
    let b = node_with(
        member("b", 4002),
        vec![consul("consul", 0, &b_agent).with_setting("deregister_after_s", "1")],
        &[],
    )
    .await
    .unwrap();
    a.wait_topology("b joined", |t| Node::has(t, "b")).await;
    b_agent.refuse_check_updates(true);
    wait_until("b reaped", || b_agent.service_ids().is_empty()).await;
    a.wait_topology("b gone", |t| !Node::has(t, "b")).await;
    b_agent.refuse_check_updates(false);
    a.wait_topology("b back", |t| Node::has(t, "b")).await;
    let p = b.provider("consul");
    wait_until("counted as a re-registration", || {
        p.stats().reregistrations >= 1
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

/// P2, R3.5: a graceful drain deregisters at once; the others see the node
/// leave without waiting for a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_drain_deregisters_and_others_see_the_leave() {
    let a_agent = fake().await;
    let b_agent = a_agent.join("node-b").await.unwrap();
    let a = consul_node("a", 4001, &a_agent).await;
    let b = node_with(
        member("b", 4002),
        // A long TTL: only the deregistration can make b leave in time.
        vec![consul("consul", 0, &b_agent).with_setting("ttl_s", "600")],
        &[],
    )
    .await
    .unwrap();
    a.wait_topology("b joined", |t| Node::has(t, "b")).await;
    let results = b.handle.drain().await.unwrap();
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    assert!(
        b_agent.service_ids().is_empty(),
        "deregistered before drain returned"
    );
    a.wait_topology("b left", |t| !Node::has(t, "b")).await;
    b.shutdown().await;
    a.shutdown().await;
}

/// P2: a node shut down without a drain stops passing its TTL (the provider
/// and its heartbeat task are dropped with the supervisor), so it leaves
/// the others' topology when the TTL lapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_shutdown_without_drain_stops_the_heartbeat() {
    let a_agent = fake().await;
    let b_agent = a_agent.join("node-b").await.unwrap();
    let a = consul_node("a", 4001, &a_agent).await;
    let b = consul_node("b", 4002, &b_agent).await;
    a.wait_topology("b joined", |t| Node::has(t, "b")).await;
    let consul_kind = b.consul.clone();
    b.shutdown().await;
    a.wait_topology("b left after its TTL", |t| !Node::has(t, "b"))
        .await;
    assert!(
        consul_kind.provider("consul").is_none(),
        "provider dropped with its node"
    );
    a.shutdown().await;
}

/// P2: an agent restart forgets the node's service and it registers again:
/// the supervisor does it at once, as its snapshot no longer lists it (the
/// self-presence rule, issue 19), before the heartbeat notices the unknown
/// check (which `p2_reaped_after_critical_timeout_then_registers_again`
/// shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_agent_restart_registers_again() {
    let a_agent = fake().await;
    let b_agent = a_agent.join("node-b").await.unwrap();
    let a = consul_node("a", 4001, &a_agent).await;
    let b = consul_node("b", 4002, &b_agent).await;
    a.wait_topology("b joined", |t| Node::has(t, "b")).await;
    b_agent.restart();
    assert!(b_agent.service_ids().is_empty());
    wait_until("b registered again", || {
        b_agent.service_ids() == vec!["b-7".to_owned()]
    })
    .await;
    b.wait_topology("b still lists itself", |t| Node::has(t, "b"))
        .await;
    a.wait_topology("b listed", |t| Node::has(t, "b")).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// A4, R2.5, P2: the agent goes down → the Consul provider turns Degraded
/// (connection errors) → the memory provider (priority 1) takes over → the
/// agent comes back → Consul is active again after the stability window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a4_agent_down_degrades_fails_over_and_fails_back() {
    let agent = fake().await;
    let standby = MembershipTable::new();
    standby.upsert(member("m1", 5000));
    let a = node_with(
        member("a", 4001),
        vec![consul("consul", 0, &agent), memory("standby", 1, "standby")],
        &[("standby", standby.clone())],
    )
    .await
    .unwrap();
    a.wait_topology("consul active", |t| {
        t.active_provider == Some(pid("consul")) && Node::has(t, "a")
    })
    .await;
    agent.stop().await;
    let t = a
        .wait_topology("standby active", |t| {
            t.active_provider == Some(pid("standby"))
        })
        .await;
    assert!(Node::has(&t, "m1"), "the standby's view");
    let degraded = a
        .events
        .health()
        .into_iter()
        .find(|h| h.provider == pid("consul") && h.health == ProviderHealth::Degraded)
        .expect("consul turned Degraded");
    assert_eq!(degraded.last_error, Some("provider.connectivity"));
    agent.start_again().await.unwrap();
    a.wait_topology("consul back", |t| t.active_provider == Some(pid("consul")))
        .await;
    let changes = a.events.changes();
    let reasons: Vec<_> = changes.iter().map(|c| (c.to.clone(), c.reason)).collect();
    assert!(
        reasons.contains(&(Some(pid("standby")), ChangeReason::Errors)),
        "{reasons:?}"
    );
    assert_eq!(
        changes.last().map(|c| (c.to.clone(), c.reason)),
        Some((Some(pid("consul")), ChangeReason::FailBack))
    );
    a.shutdown().await;
}

/// P2: the index goes backwards (cluster restored); the watch resets to 0
/// and goes on: a node that joins afterwards is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_index_rollback_resets_the_watch_which_continues() {
    let a_agent = fake().await;
    let b_agent = a_agent.join("node-b").await.unwrap();
    let a = consul_node("a", 4001, &a_agent).await;
    a.wait_topology("a listed", |t| Node::has(t, "a")).await;
    let before = a_agent.health_index("lab");
    a_agent.reset_index(1);
    assert!(a_agent.health_index("lab") < before);
    let b = consul_node("b", 4002, &b_agent).await;
    a.wait_topology("b seen after the rollback", |t| Node::has(t, "b"))
        .await;
    assert!(a.provider("consul").stats().index_resets >= 1);
    a.shutdown().await;
    b.shutdown().await;
}

/// The error and its sources, as a caller prints them (a Display does not
/// repeat its source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        next = cause.source();
    }
    s
}

/// R1.4, P2: at acceptance, an unknown token is `provider.auth` naming the
/// ACL needed, no token is `provider.auth` too, a token whose health reads
/// are filtered by ACLs is `provider.auth`, an agent that is down is
/// `provider.connectivity`, and a good token is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_4_bad_token_is_provider_auth_at_acceptance() {
    let agent = FakeConsul::builder()
        .token("good-secret", Access::Write)
        .token("agent-only", Access::AgentRead)
        .start()
        .await
        .unwrap();
    let a = node_with(member("a", 4001), vec![], &[]).await.unwrap();
    // A token that reaches the agent but may not read the service: Consul
    // answers the health read with an empty list filtered by ACLs, which
    // must not pass for "no members".
    let e = a
        .handle
        .register(consul("filtered", 0, &agent).with_setting("token", "agent-only"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "provider.auth", "{e}");
    assert!(chain(&e).contains("filtered by ACLs"), "{e}");
    let e = a
        .handle
        .register(consul("bad", 0, &agent).with_setting("token", "wrong-secret"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "provider.auth", "{e}");
    assert!(chain(&e).contains("agent:read"), "names the ACL: {e}");
    assert!(
        !chain(&e).contains("wrong-secret"),
        "no secret in errors: {e}"
    );
    let e = a
        .handle
        .register(consul("anon", 0, &agent))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "provider.auth", "{e}");
    let down = FakeConsul::start().await.unwrap();
    down.stop().await;
    let e = a
        .handle
        .register(consul("down", 0, &down))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "provider.connectivity", "{e}");
    a.handle
        .register(consul("good", 0, &agent).with_setting("token", "good-secret"))
        .await
        .unwrap();
    a.wait_topology("registered with the good token", |t| Node::has(t, "a"))
        .await;
    let dbg = format!("{:?}", a.provider("good"));
    assert!(
        !dbg.contains("good-secret") && dbg.contains("redacted"),
        "{dbg}"
    );
    a.shutdown().await;
}

/// P2, A5: 500s from the agent are counted as errors (Degraded with
/// provider.stream at the threshold), then the provider recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_server_errors_are_counted_then_recovered() {
    let agent = fake().await;
    let a = node_with(
        member("a", 4001),
        // A long TTL: every injected 500 meets the watch.
        vec![consul("consul", 0, &agent).with_setting("ttl_s", "600")],
        &[],
    )
    .await
    .unwrap();
    a.wait_topology("active", |t| {
        t.status == ProvisioningStatus::Active && Node::has(t, "a")
    })
    .await;
    agent.fail_next(3);
    a.wait_events("degraded by 500s, then healthy", |e| {
        let h = e.health();
        let d = h.iter().position(|h| {
            h.health == ProviderHealth::Degraded && h.last_error == Some("provider.stream")
        });
        d.is_some_and(|d| h[d..].iter().any(|h| h.health == ProviderHealth::Healthy))
    })
    .await;
    assert_eq!(a.provider("consul").stats().errors, 3);
    a.wait_topology("active again", |t| t.status == ProvisioningStatus::Active)
        .await;
    a.shutdown().await;
}

/// P2: connections closed by the agent without an answer are
/// `provider.stream` errors; the provider degrades, then recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_dropped_connections_are_stream_errors_then_recovered() {
    let agent = fake().await;
    let a = node_with(
        member("a", 4001),
        vec![consul("consul", 0, &agent).with_setting("ttl_s", "600")],
        &[],
    )
    .await
    .unwrap();
    a.wait_topology("active", |t| Node::has(t, "a")).await;
    agent.drop_next(3);
    a.wait_events("degraded by dropped connections, then healthy", |e| {
        let h = e.health();
        let d = h.iter().position(|h| {
            h.health == ProviderHealth::Degraded && h.last_error == Some("provider.stream")
        });
        d.is_some_and(|d| h[d..].iter().any(|h| h.health == ProviderHealth::Healthy))
    })
    .await;
    a.shutdown().await;
}

/// P2: an agent slower than the request bound is `provider.connectivity`
/// (timeouts, not a hang); once fast again the provider recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_slow_agent_times_out_as_connectivity_then_recovers() {
    let agent = fake().await;
    let a = node_with(
        member("a", 4001),
        vec![
            consul("consul", 0, &agent)
                .with_setting("ttl_s", "600")
                .with_setting("wait_ms", "100")
                .with_setting("request_timeout_ms", "200"),
        ],
        &[],
    )
    .await
    .unwrap();
    a.wait_topology("active", |t| Node::has(t, "a")).await;
    // Each blocking query is bounded by 100 + 6 + 200 ms.
    agent.set_delay(Duration::from_secs(1));
    a.wait_events("degraded by timeouts", |e| {
        e.health().iter().any(|h| {
            h.health == ProviderHealth::Degraded && h.last_error == Some("provider.connectivity")
        })
    })
    .await;
    agent.set_delay(Duration::ZERO);
    a.wait_events("healthy again", |e| {
        e.health()
            .last()
            .is_some_and(|h| h.health == ProviderHealth::Healthy)
    })
    .await;
    a.shutdown().await;
}

/// P2, R5.5: malformed JSON from the agent is `provider.protocol`, never a
/// panic: the stream goes on and recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_malformed_json_is_provider_protocol_without_panic() {
    let agent = fake().await;
    let a = node_with(
        member("a", 4001),
        vec![consul("consul", 0, &agent).with_setting("ttl_s", "600")],
        &[],
    )
    .await
    .unwrap();
    a.wait_topology("active", |t| Node::has(t, "a")).await;
    agent.malformed_next(3);
    a.wait_events("degraded by protocol errors, then healthy", |e| {
        let h = e.health();
        let d = h.iter().position(|h| {
            h.health == ProviderHealth::Degraded && h.last_error == Some("provider.protocol")
        });
        d.is_some_and(|d| h[d..].iter().any(|h| h.health == ProviderHealth::Healthy))
    })
    .await;
    // Three errors counted; the stream itself never ended (no restart, no
    // termination announced: issue 13).
    assert!(a.events.terminations().is_empty());
    let status = a.handle.providers().await.unwrap().remove(0);
    assert_eq!(status.stream_errors, 3);
    a.shutdown().await;
}

/// P2: in steady state a node sends one blocking query per `wait` (one in
/// flight at a time) plus its TTL passes, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_steady_state_is_one_blocking_query_plus_ttl_passes() {
    let agent = fake().await;
    let a = node_with(
        member("a", 4001),
        vec![consul("consul", 0, &agent).with_setting("ttl_s", "3")],
        &[],
    )
    .await
    .unwrap();
    a.wait_topology("active", |t| Node::has(t, "a")).await;
    agent.reset_counters();
    let window = Duration::from_secs(3);
    let mut max_in_flight = 0;
    let end = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < end {
        max_in_flight = max_in_flight.max(agent.blocking_in_flight());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = agent.requests();
    let queries = counts.get("GET /v1/health/service").copied().unwrap_or(0);
    let passes = counts.get("PUT /v1/agent/check/pass").copied().unwrap_or(0);
    // wait 500 ms → at most 3 s / 500 ms + 1 queries; TTL 3 s → a pass per second.
    assert!((1..=7).contains(&queries), "{counts:?}");
    assert!((1..=4).contains(&passes), "{counts:?}");
    assert_eq!(
        queries + passes,
        counts.values().sum::<u64>(),
        "nothing else: {counts:?}"
    );
    assert_eq!(max_in_flight, 1, "one blocking query in flight");
    a.shutdown().await;
}
