//! Design stage 4 (issue 17, item 2; requirement C1): the real
//! `ProvisioningCore` on every simulated node (`SimConfig::provisioning`,
//! `--provisioning`). The provider's table reaches each node's core as
//! snapshots, the monitoring core's reports go through
//! `ProvisioningCore::quarantine`, and a node's view is the topology its
//! core published, fed back to the monitoring core as Remoting does.

use std::time::Duration;

use cluster_core::ProvisioningStatus;
use cluster_sim::scenario::{RunParams, Scenario, run};
use cluster_sim::sim::{MS, Mode, SEC, Sim, SimConfig};

fn sim(nodes: usize, seed: u64) -> Sim {
    let mut config = SimConfig::new(nodes, seed, Mode::Ring);
    config.lease_ttl = None;
    config.provisioning = true;
    Sim::new(config)
}

fn params(nodes: usize, secs: u64) -> RunParams {
    RunParams {
        nodes,
        seed: 1,
        mode: Mode::Ring,
        duration: Duration::from_secs(secs),
        loss: 0.05,
        loss_as_delay: false,
        provisioning: true,
    }
}

/// Every node's core publishes an Active topology of all members from the
/// provider's snapshot; a crash is published by every live node's core as
/// a quarantine (the incarnation blocked, out of the members) within 3
/// probe intervals; the restarted node's new incarnation is listed by
/// every core again, and the old one's block goes with it (the provider
/// replaced it).
#[test]
fn c1_sim_every_nodes_provisioning_core_publishes_a_crash_and_the_restart() {
    let n = 30;
    let mut sim = sim(n, 4);
    sim.run_until(10 * SEC);
    for i in 0..n as u32 {
        let t = sim.topology(i).expect("a provisioning core on every node");
        assert_eq!(t.status, ProvisioningStatus::Active, "node {i}");
        assert_eq!(t.members.len(), n, "node {i} lists every member");
        assert_eq!(sim.view(i).len(), n);
    }
    let old = sim.incarnation(5);
    sim.crash(5);
    sim.run_until(13 * SEC);
    let id = sim.id(5).clone();
    for i in (0..n as u32).filter(|i| *i != 5) {
        let t = sim.topology(i).expect("a core");
        assert!(t.member(&id).is_none(), "node {i} still lists the crash");
        assert!(
            t.is_blocked(&id, old),
            "node {i} published the quarantine: {:?}",
            t.blocked
        );
        assert!(!sim.view(i).contains(&(5, old)));
        // The publication came back to the monitoring core: its ring no
        // longer holds the quarantined node.
        assert!(
            !sim.core(i).expect("a core").ring().contains(&id),
            "node {i}'s ring still holds the quarantined node"
        );
    }
    assert!(sim.still_listing(5, old).is_empty());
    assert_eq!(
        sim.reports().iter().filter(|r| r.node == 5).count(),
        n - 1,
        "one report per live node, each through its own core"
    );
    sim.restart(5);
    let new = sim.incarnation(5);
    sim.run_until(13 * SEC + 100 * MS);
    assert_eq!(sim.still_listing(5, new).len(), n - 1);
    for i in (0..n as u32).filter(|i| *i != 5) {
        let t = sim.topology(i).expect("a core");
        assert_eq!(t.member(&id).map(|m| m.incarnation), Some(new));
        assert!(
            !t.is_blocked(&id, old),
            "node {i}: the replaced incarnation's block is dropped with it"
        );
    }
    assert_eq!(
        sim.topology(5).map(|t| t.members.len()),
        Some(n),
        "the restarted node's fresh core lists everyone"
    );
}

/// The provider's keepalives (the last snapshot again every 5 s) keep
/// every core Active in a quiet cluster, past the failover's 15 s silence
/// timeout; without them (a keepalive slower than the timeout) the cores
/// turn Degraded, and the monitoring core, as Remoting's, then only drops
/// departed ring members.
#[test]
fn c1_sim_keepalives_keep_every_provisioning_core_active_in_a_quiet_cluster() {
    let n = 20;
    let mut quiet = sim(n, 6);
    quiet.run_until(60 * SEC);
    for i in 0..n as u32 {
        let t = quiet.topology(i).expect("a core");
        assert_eq!(t.status, ProvisioningStatus::Active, "node {i} at 60 s");
    }
    let mut config = SimConfig::new(n, 6, Mode::Ring);
    config.lease_ttl = None;
    config.provisioning = true;
    config.keepalive = std::time::Duration::from_secs(40);
    let mut silent = Sim::new(config);
    silent.run_until(30 * SEC);
    for i in 0..n as u32 {
        let t = silent.topology(i).expect("a core");
        assert_eq!(
            t.status,
            ProvisioningStatus::Degraded,
            "node {i}: silent for 30 s"
        );
    }
    // Degraded: a crashed member is still quarantined by its monitors
    // and leaves the rings (R4.3 keeps departures, adds nobody).
    let id = silent.id(3).clone();
    silent.crash(3);
    silent.run_until(34 * SEC);
    for i in (0..n as u32).filter(|i| *i != 3) {
        assert!(
            !silent.core(i).expect("a core").ring().contains(&id),
            "node {i}"
        );
    }
}

/// Issue 17's figures with the provisioning core on every node: zero
/// false quarantines over 10 simulated minutes at 5 % loss.
#[test]
fn c1_sim_100_nodes_with_provisioning_cores_no_false_quarantine_under_5pct_loss() {
    let o = run(Scenario::S1SteadyLoss, &params(100, 600));
    assert_eq!(o.false_reports, 0, "{:?}", o.false_examples);
    assert_eq!(o.reports, 0, "nobody is quarantined without a fault");
}

/// Crash detection with the provisioning core: every crash reported, the
/// first report p99 within 3 probe intervals, and the last live node's
/// published topology without the crashed incarnation (its
/// `TopologyUpdated`) within 3 intervals plus the verdict's spread.
#[test]
fn c1_sim_100_nodes_with_provisioning_cores_crash_reaches_every_topology() {
    let o = run(Scenario::S2Crashes, &params(100, 300));
    assert_eq!(o.false_reports, 0, "{:?}", o.false_examples);
    let d = o.detection.expect("S2 measures detection");
    assert!(d.crashes >= 25, "crashes measured: {}", d.crashes);
    assert_eq!(d.reported, d.crashes, "every crash is reported");
    assert_eq!(
        d.removed_everywhere, d.crashes,
        "every live node's topology drops every crash"
    );
    assert_eq!(d.missed, 0, "no node waited for anything but a verdict");
    assert!(d.first_report.p99 <= 3_000.0, "{:?}", d.first_report);
    assert!(d.last_view.p99 <= 3_500.0, "{:?}", d.last_view);
}

/// A node with its outbound link cut is quarantined by every other node's
/// core, and nobody else is, with the cores in the loop (design S3a).
#[test]
fn c1_sim_broken_outbound_with_provisioning_cores_quarantines_only_that_node() {
    let o = run(Scenario::S3BrokenOutbound, &params(100, 120));
    assert_eq!(o.false_reports, 0, "{:?}", o.false_examples);
    assert!((90..=99).contains(&o.reports), "reports: {}", o.reports);
}
