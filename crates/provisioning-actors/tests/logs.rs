//! N3: the supervisor's log lines an operator acts on, captured at the
//! default level (INFO): one line per health change, failover, status
//! change, quarantine and reactivation, activation suppression and
//! authorisation failure, and nothing at INFO or above in a quiet steady
//! state.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/logs.rs"]
mod logs;

use std::time::Duration;

use cluster_core::{ProviderError, ProviderHealth, ProvisioningStatus};
use harness::*;
use logs::Logs;
use provider_memory::{FaultHandle, MembershipTable};
use tracing::Level;

/// Waits until both providers of [`two_provider_node`] are healthy and the
/// primary is active: the start is over.
async fn started(node: &Node) {
    node.wait_topology("primary active", |t| {
        t.active_provider == Some(pid("primary")) && t.status == ProvisioningStatus::Active
    })
    .await;
    for _ in 0..1_000 {
        let p = node.handle.providers().await.unwrap();
        if p.iter().all(|p| p.health == ProviderHealth::Healthy) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("providers not healthy");
}

/// N3: a failover logs one INFO line naming from, to and the reason.
#[tokio::test(start_paused = true)]
async fn n3_failover_logs_one_info_line_naming_from_and_to() {
    let (logs, _guard) = Logs::capture();
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let node = two_provider_node(&p, &s).await;
    started(&node).await;
    let start = logs.with_message("active provider changed");
    assert_eq!(start.len(), 1, "the start: {}", Logs::dump(&start));
    assert_eq!(start[0].field("from"), Some("none"));
    assert_eq!(start[0].field("to"), Some("primary"));

    let mark = logs.mark();
    node.faults("primary").end_all_streams_forever(true);
    node.faults("primary").end_stream();
    node.wait_topology("standby active", |t| {
        t.active_provider == Some(pid("standby"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = logs.since(mark);
    let changes: Vec<_> = after
        .iter()
        .filter(|l| l.message == "active provider changed")
        .collect();
    assert_eq!(changes.len(), 1, "one line: {}", Logs::dump(&after));
    let c = changes[0];
    assert_eq!(c.level, Level::INFO);
    assert_eq!(c.field("from"), Some("primary"));
    assert_eq!(c.field("to"), Some("standby"));
    assert_eq!(c.field("reason"), Some("stream_ended"));
    // The primary's health change is a WARN naming it.
    let health: Vec<_> = after
        .iter()
        .filter(|l| l.message == "provider health changed")
        .collect();
    assert!(
        health
            .iter()
            .any(|l| l.level == Level::WARN && l.field("provider") == Some("primary")),
        "{}",
        Logs::dump(&after)
    );
    // Nothing else about it at INFO or above (no duplicate from another
    // component), but the actor kernel's own line for a failed actor (the
    // provider actor fails when its stream ends, and is restarted).
    for l in after
        .iter()
        .filter(|l| l.shown() && l.message != "actor failed")
    {
        assert!(
            ["active provider changed", "provider health changed"].contains(&l.message.as_str()),
            "unexpected line: {l}; all: {}",
            Logs::dump(&after)
        );
    }
    node.shutdown().await;
}

/// N3: a quiet steady state (a healthy in-memory provider, nothing
/// changing) logs nothing at INFO or above after the start.
#[tokio::test(start_paused = true)]
async fn n3_quiet_steady_state_logs_nothing_at_info_or_above() {
    let (logs, _guard) = Logs::capture();
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    p.upsert(member("b", 1));
    s.upsert(member("b", 1));
    let node = two_provider_node(&p, &s).await;
    started(&node).await;
    let start = logs.shown();
    assert!(
        start
            .iter()
            .any(|l| l.message == "provisioning status changed" && l.field("to") == Some("active")),
        "{}",
        Logs::dump(&start)
    );
    let mark = logs.mark();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet: Vec<_> = logs.since(mark).into_iter().filter(|l| l.shown()).collect();
    assert!(quiet.is_empty(), "steady state: {}", Logs::dump(&quiet));
    node.shutdown().await;
}

/// N3: a status change logs one line (WARN when placement stops).
#[tokio::test(start_paused = true)]
async fn n3_status_change_logs_one_line() {
    let (logs, _guard) = Logs::capture();
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let node = two_provider_node(&p, &s).await;
    started(&node).await;
    let mark = logs.mark();
    for name in ["primary", "standby"] {
        node.faults(name).end_all_streams_forever(true);
        node.faults(name).end_stream();
    }
    node.wait_topology("unavailable", |t| {
        t.status == ProvisioningStatus::Unavailable
    })
    .await;
    let lines: Vec<_> = logs
        .since(mark)
        .into_iter()
        .filter(|l| l.message == "provisioning status changed")
        .collect();
    assert_eq!(lines.len(), 1, "{}", Logs::dump(&lines));
    assert_eq!(lines[0].level, Level::WARN);
    assert_eq!(lines[0].field("from"), Some("active"));
    assert_eq!(lines[0].field("to"), Some("unavailable"));
    node.shutdown().await;
}

/// N3: a quarantine logs one WARN and its end one INFO, each naming the
/// node.
#[tokio::test(start_paused = true)]
async fn n3_quarantine_and_reactivation_log_one_line_each() {
    let (logs, _guard) = Logs::capture();
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    p.upsert(member("b", 1));
    s.upsert(member("b", 1));
    let node = two_provider_node(&p, &s).await;
    started(&node).await;
    let mark = logs.mark();
    node.handle.quarantine(nid("b"), 1, "heartbeat timeout");
    node.wait_topology("b blocked", |t| t.is_blocked(&nid("b"), 1))
        .await;
    node.handle.clear_quarantine(nid("b"), 1).await.unwrap();
    node.wait_topology("b back", |t| !t.is_blocked(&nid("b"), 1))
        .await;
    let shown: Vec<_> = logs.since(mark).into_iter().filter(|l| l.shown()).collect();
    assert_eq!(shown.len(), 2, "{}", Logs::dump(&shown));
    assert_eq!(shown[0].message, "node quarantined");
    assert_eq!(shown[0].level, Level::WARN);
    assert_eq!(shown[0].field("node"), Some("b"));
    assert_eq!(shown[0].field("reason"), Some("heartbeat timeout"));
    assert_eq!(shown[1].message, "node reactivated: quarantine lifted");
    assert_eq!(shown[1].level, Level::INFO);
    assert_eq!(shown[1].field("node"), Some("b"));
    node.shutdown().await;
}

/// N3: activation suppression (R5.2) logs one WARN naming the provider.
#[tokio::test(start_paused = true)]
async fn n3_activation_suppression_logs_one_warn() {
    let (logs, _guard) = Logs::capture();
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    // At activation: a running provider is never suppressed (issue 19).
    let faults = FaultHandle::new();
    faults.fail_next(5, ProviderError::Protocol("garbage".into()));
    let node = two_provider_node_failing_primary(&p, &s, faults).await;
    node.wait_events("suppressed", |e| !e.suppressed().is_empty())
        .await;
    let lines = logs.with_message("activation suppressed");
    assert_eq!(lines.len(), 1, "{}", Logs::dump(&lines));
    assert_eq!(lines[0].level, Level::WARN);
    assert_eq!(lines[0].field("provider"), Some("primary"));
    node.shutdown().await;
}

/// N3: an authorisation failure of a running provider (a 403) logs a WARN
/// naming the provider.
#[tokio::test(start_paused = true)]
async fn n3_authorisation_failure_logs_a_warn_naming_the_provider() {
    let (logs, _guard) = Logs::capture();
    let (p, s) = (MembershipTable::new(), MembershipTable::new());
    let node = two_provider_node(&p, &s).await;
    started(&node).await;
    node.faults("standby")
        .fail_next(1, ProviderError::Auth("403 Forbidden".into()));
    let mut lines = Vec::new();
    for _ in 0..1_000 {
        lines = logs.with_message("provider authorisation failed");
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lines.len(), 1, "{}", Logs::dump(&logs.all()));
    assert_eq!(lines[0].level, Level::WARN);
    assert_eq!(lines[0].field("provider"), Some("standby"));
    assert_eq!(lines[0].field("code"), Some("provider.auth"));
    node.shutdown().await;
}
