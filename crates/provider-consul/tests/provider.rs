//! The Consul provider on its own, over the fake agent (P2).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use cluster_core::ClusterProvider;
use futures::StreamExt;
use harness::*;
use provider_consul::{ConsulConfig, ConsulKind, ConsulProvider, Token};

fn provider(agent: &fake_consul::FakeConsul, wait: Duration) -> ConsulProvider {
    let mut c = ConsulConfig::new(agent.url().parse().unwrap(), "lab");
    c.ttl = Duration::from_secs(1);
    c.wait = wait;
    c.request_timeout = Duration::from_millis(500);
    c.retry_min = Duration::from_millis(20);
    c.retry_max = Duration::from_millis(100);
    ConsulProvider::new(c).unwrap()
}

/// P2: a node whose agent is down when it registers gets a connectivity
/// error (not counted towards R5.2's suppression), and its heartbeat
/// registers it once the agent is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_register_while_agent_down_registers_when_it_is_back() {
    let agent = fake().await;
    agent.stop().await;
    let p = provider(&agent, Duration::from_millis(200));
    let e = p.register(&member("a", 4001)).await.unwrap_err();
    assert_eq!(e.code(), "provider.connectivity", "{e}");
    agent.start_again().await.unwrap();
    wait_until("registered by the heartbeat", || {
        p.stats().reregistrations >= 1
    })
    .await;
    assert_eq!(agent.service_ids(), vec!["a-7".to_owned()]);
}

/// P2 keepalive: every blocking query that returns yields a snapshot, even
/// unchanged, so a quiet cluster still shows signs of life every `wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_watch_re_yields_unchanged_snapshots_every_wait() {
    let agent = fake().await;
    let p = provider(&agent, Duration::from_millis(100));
    p.register(&member("a", 4001)).await.unwrap();
    let mut w = p.watch();
    let mut snapshots = Vec::new();
    tokio::time::timeout(BOUND, async {
        while snapshots.len() < 4 {
            snapshots.push(w.next().await.unwrap().unwrap());
        }
    })
    .await
    .unwrap();
    assert!(snapshots.iter().all(|s| *s.members == [member("a", 4001)]));
    assert!(p.stats().queries >= 4);
    assert_eq!(p.stats().index_resets, 0);
}

/// P2: the token never shows in Debug output of the config, the provider or
/// the kind.
#[test]
fn p2_token_is_redacted_in_debug() {
    let mut c = ConsulConfig::new("http://127.0.0.1:1".parse().unwrap(), "lab");
    c.token = Some(Token::new("very-secret-token"));
    let p = ConsulProvider::new(c.clone()).unwrap();
    for dbg in [
        format!("{c:?}"),
        format!("{p:?}"),
        format!("{:?}", ConsulKind::without_env()),
    ] {
        assert!(!dbg.contains("very-secret-token"), "{dbg}");
    }
}

/// P2: a watch whose health reads are filtered by ACLs (the token may reach
/// the agent but not read the service) yields `provider.auth` errors, never
/// an empty snapshot that would make every node leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_acl_filtered_results_are_auth_errors_not_empty_snapshots() {
    let agent = fake_consul::FakeConsul::builder()
        .token("agent-only", fake_consul::Access::AgentRead)
        .start()
        .await
        .unwrap();
    let mut c = ConsulConfig::new(agent.url().parse().unwrap(), "lab");
    c.token = Some(Token::new("agent-only"));
    c.wait = Duration::from_millis(200);
    c.request_timeout = Duration::from_millis(500);
    c.retry_min = Duration::from_millis(20);
    c.retry_max = Duration::from_millis(50);
    let p = ConsulProvider::new(c).unwrap();
    let mut w = p.watch();
    for _ in 0..3 {
        let item = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
            .unwrap();
        let e = item.expect_err("filtered results must not pass for a snapshot");
        assert_eq!(e.code(), "provider.auth", "{e}");
    }
}

/// P2, R3.5: a deregistration that overtakes a registration still in flight
/// (a slow agent) wins: the late registration is withdrawn and no heartbeat
/// brings the node back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_deregistration_during_a_slow_registration_wins() {
    let agent = fake().await;
    let p = provider(&agent, Duration::from_millis(200));
    let a = member("a", 4001);
    agent.set_delay(Duration::from_millis(300));
    let registering = {
        let (p, a) = (p.clone(), a.clone());
        tokio::spawn(async move { p.register(&a).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    agent.set_delay(Duration::ZERO);
    p.deregister(&a).await.unwrap();
    let late = registering.await.unwrap();
    assert!(
        late.is_err(),
        "the late registration reports its withdrawal"
    );
    // Several TTL periods (1 s TTL, passes every 333 ms): nothing returns.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(agent.service_ids().is_empty(), "{:?}", agent.service_ids());
}
