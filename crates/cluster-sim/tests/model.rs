//! The simulation's model (crate doc, "The model"): the provider table
//! with leases and watch delays, views minus quarantines, restarts as new
//! incarnations, and pauses that hold a node's events.

use cluster_sim::sim::{MS, Mode, NodeState, SEC, Sim, SimConfig};

/// A crashed node leaves every view when its lease expires (4 s, plus the
/// watch delay of at most 50 ms), without any report when the detector is
/// slower than the lease (all-to-all's 5 s timeout).
#[test]
fn c1_sim_a_crashed_nodes_lease_expires_from_every_view() {
    let mut sim = Sim::new(SimConfig::new(20, 3, Mode::AllToAll));
    sim.run_until(5 * SEC);
    let inc = sim.incarnation(7);
    sim.crash(7);
    sim.run_until(5 * SEC + 4 * SEC - MS);
    assert_eq!(sim.still_listing(7, inc).len(), 19, "the lease still holds");
    sim.run_until(5 * SEC + 4 * SEC + 50 * MS);
    assert!(sim.still_listing(7, inc).is_empty());
    assert!(sim.reports().is_empty(), "the lease was faster than 5 s");
}

/// A quarantined incarnation stays out of the view; the restarted node is
/// a new incarnation, back in every view after the watch delay.
#[test]
fn c1_sim_a_restart_is_a_new_incarnation_in_every_view() {
    let mut config = SimConfig::new(30, 4, Mode::Ring);
    config.lease_ttl = None;
    let mut sim = Sim::new(config);
    sim.run_until(10 * SEC);
    let old = sim.incarnation(5);
    sim.crash(5);
    sim.run_until(20 * SEC);
    assert!(sim.still_listing(5, old).is_empty(), "reported everywhere");
    assert_eq!(
        sim.reports().iter().filter(|r| r.node == 5).count(),
        29,
        "one report per live node"
    );
    sim.restart(5);
    let new = sim.incarnation(5);
    assert_ne!(old, new);
    sim.run_until(20 * SEC + 50 * MS);
    assert_eq!(sim.still_listing(5, new).len(), 29);
    for i in (0..30).filter(|i| *i != 5) {
        assert!(!sim.view(i).contains(&(5, old)));
    }
    // The restarted node reads the whole table, itself included.
    assert_eq!(sim.view(5).len(), 30);
}

/// A paused node handles nothing while paused (its core's counters stand
/// still) and sees the gap when resumed (the core's stall rule).
#[test]
fn c1_sim_a_paused_node_holds_its_events_until_resumed() {
    let mut sim = Sim::new(SimConfig::new(20, 5, Mode::Ring));
    sim.run_until(10 * SEC);
    sim.pause(3);
    assert_eq!(sim.state(3), NodeState::Paused);
    let stats = sim.core(3).expect("a core").stats().clone();
    sim.run_until(13 * SEC);
    assert_eq!(sim.core(3).expect("a core").stats(), &stats);
    sim.resume(3);
    sim.run_until(13 * SEC + 10 * MS);
    let core = sim.core(3).expect("a core");
    assert_eq!(core.stats().stalls, 1, "the gap is seen as a stall");
}
