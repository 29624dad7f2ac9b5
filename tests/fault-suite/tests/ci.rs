//! Issue 16, the CI scenario: 3 `cluster-node` processes and a real etcd,
//! each in its own network namespace, every fault once (seeded), checked
//! against the bounds of docs/reliability.md; the report goes to
//! `target/fault-suite/<run-id>/`. Run twice: with today's all-to-all
//! failure detection, and with ring monitoring (issue 17, stage 6), whose
//! bounds are tighter and carry no FS-1 allowance.
//!
//! Needs root: without it (or without `ip`, etcd) it prints one `skipped:`
//! line and passes, unless `CI_REQUIRE_NETNS=1`, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::path::PathBuf;

use fault_suite::history::FaultKind;
use fault_suite::scenario::{self, Monitoring, Options, Provider};
use fault_suite::{hosts, logs, nemesis};

fn skip_or_fail(why: &str) {
    if std::env::var("CI_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("CI_REQUIRE_NETNS=1 but the fault suite cannot run: {why}");
    }
    let _ = writeln!(std::io::stderr(), "skipped: fault suite: {why}");
}

fn every_fault_once(monitoring: Monitoring) {
    if let Err(e) = hosts::check_supported() {
        return skip_or_fail(&e.to_string());
    }
    let Some(etcd_bin) = scenario::etcd_bin() else {
        return skip_or_fail("etcd not installed (apt-get install etcd-server)");
    };
    let node_bin = match scenario::node_bin() {
        Ok(b) => b,
        Err(e) => return skip_or_fail(&format!("no cluster-node program: {e}")),
    };
    let seed = std::env::var("FAULT_SUITE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let names: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
    let fault_ms = 6_000;
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fault-suite");
    let opts = Options {
        nodes: 3,
        monitoring,
        provider: Provider::Etcd,
        seed,
        steps: nemesis::every_fault_once(seed, &names, &FaultKind::ALL, fault_ms),
        grains: 12,
        interval_ms: 100,
        failure_timeout_ms: 1_000,
        lease_ttl_ms: 4_000,
        keepalive_ms: 2_000,
        fault_ms,
        gap_ms: 2_000,
        quiet_ms: 5_000,
        apply_for_ms: None,
        out,
        node_bin,
        agent_bin: PathBuf::from(env!("CARGO_BIN_EXE_fault-suite")),
        etcd_bin,
    };
    let outcome = scenario::run(opts).unwrap();
    let report = outcome.dir.join("report.md");
    assert!(report.is_file());
    assert!(outcome.dir.join("timeline.png").is_file());
    eprintln!("report: {}", report.display());
    let v = &outcome.verdict;
    assert_eq!(v.faults.len(), FaultKind::ALL.len());
    assert!(v.answered > 1_000, "only {} answered requests", v.answered);
    // The nodes ran the mode asked for: their quarantine reasons say which
    // detector reported (a kill makes at least one).
    let reasons: Vec<String> = logs::read(&outcome.dir, &names)
        .into_iter()
        .filter_map(|e| match e.event {
            logs::Event::Quarantined { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    let ring_reason = |r: &String| r.starts_with("monitors' verdict:");
    assert!(!reasons.is_empty(), "no quarantine in the node logs");
    if monitoring == Monitoring::Ring {
        assert!(reasons.iter().all(ring_reason), "{reasons:?}");
    } else {
        assert!(!reasons.iter().any(ring_reason), "{reasons:?}");
    }
    assert!(
        v.pass(),
        "bounds exceeded (see {}):\n{}",
        report.display(),
        v.violations.join("\n")
    );
}

#[test]
fn issue16_every_fault_once_with_3_nodes_and_etcd() {
    every_fault_once(Monitoring::AllToAll);
}

/// Issue 17, stage 6: the same schedule with `[remoting.monitoring] mode
/// = "ring"` (k = 2 monitors and a quorum of 2 at 3 nodes), held to
/// detection within 3·I + T_min + 500 ms and to the pause bound without
/// FS-1's allowance (a resumed node cannot quarantine anyone alone).
///
/// In CI since 2026-12-07: one run takes 90–130 s on the 2-core machine
/// (the all-to-all one 96–150 s), both together under issue 16's five
/// minutes for the CI scenario set.
#[test]
fn i17_every_fault_once_with_3_ring_monitored_nodes_and_etcd() {
    every_fault_once(Monitoring::Ring);
}
