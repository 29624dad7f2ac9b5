//! The metrics of Remoting and placement (R4.5), through the [`metrics`]
//! facade; listed with their labels in the module documentation of
//! [`crate::remoting`] and in `docs/metrics.md`.
//!
//! Every metric carries a `node` label (N2): the local member's node id, so
//! that several nodes in one process (tests, the quickstart) keep separate
//! series. The per-peer gauges also carry `peer` (a remote node id): their
//! number is bounded by the members seen, and a peer's are set to 0 when
//! its association is removed (the facade cannot delete a series; a
//! Prometheus exporter's idle timeout for gauges drops them later).

use ::metrics::{Unit, describe_counter, describe_gauge};

use crate::placement::{M_ACTIVATIONS, M_DEACTIVATIONS, M_HANDOFFS, M_REQUESTS};
use crate::remoting::{
    M_ASSOCIATIONS, M_DEGRADED_REFUSALS, M_FRAMES_DROPPED, M_FRAMES_REFUSED, M_FROZEN,
    M_HEARTBEATS_MISSED, M_HEARTBEATS_SENT, M_IDLE_CLOSED, M_LOCAL_HEALTH, M_MON_MISSED_NACKS,
    M_MON_REPORTS, M_MON_ROUNDS, M_MON_STALLS, M_MON_VOTES, M_OPENED, M_PEER_LAST_HEARD, M_PEER_UP,
    M_QUARANTINES, M_REACHABLE,
};

/// Describes every metric of Remoting and placement (description and
/// unit) to the installed recorder. Call it once, after installing the
/// recorder; metrics are recorded whether or not it was called.
pub fn describe() {
    describe_gauge!(
        crate::remoting::tls::M_TLS_EXPIRY,
        Unit::Seconds,
        "Unix time at which this node's Remoting TLS certificate expires (issue 14), by node."
    );
    describe_counter!(
        crate::remoting::tls::M_TLS_RELOADS,
        Unit::Count,
        "Reloads of the Remoting TLS files after a change or a SIGHUP, by node and result (ok, error)."
    );
    describe_gauge!(
        M_ASSOCIATIONS,
        Unit::Count,
        "Remoting associations in each state, by node and state."
    );
    describe_counter!(M_HEARTBEATS_SENT, Unit::Count, "Heartbeats sent, by node.");
    describe_counter!(
        M_HEARTBEATS_MISSED,
        Unit::Count,
        "Heartbeats not acknowledged before the next one was due, by node."
    );
    describe_counter!(
        M_QUARANTINES,
        Unit::Count,
        "Peers reported unreachable to provisioning (R4.2), by node."
    );
    describe_counter!(
        M_REACHABLE,
        Unit::Count,
        "Quarantined peers reported reachable again (R4.4), by node."
    );
    describe_gauge!(
        M_FROZEN,
        "1 while no new association is opened because the provisioning status is not Active (R4.3), by node."
    );
    describe_counter!(
        M_DEGRADED_REFUSALS,
        Unit::Count,
        "Associations not opened, or inbound ones refused, while the status is not Active (R4.3), by node."
    );
    describe_counter!(
        M_FRAMES_REFUSED,
        Unit::Count,
        "Connections closed for a bad or refused frame, by node and code."
    );
    describe_counter!(
        M_FRAMES_DROPPED,
        Unit::Count,
        "Received Tell frames not delivered (and, in ring mode, outgoing frames whose association on demand did not come up), by node and reason."
    );
    describe_counter!(
        M_OPENED,
        Unit::Count,
        "Ring mode: associations created for the ring's set, on demand, or on accept, by node and reason."
    );
    describe_counter!(
        M_MON_ROUNDS,
        Unit::Count,
        "Ring mode: probe rounds of this node's targets, by node and result (ack, indirect_ack, failed)."
    );
    describe_counter!(
        M_MON_MISSED_NACKS,
        Unit::Count,
        "Ring mode: failed rounds in which no helper answered at all, by node."
    );
    describe_counter!(
        M_MON_VOTES,
        Unit::Count,
        "Ring mode: suspicions (suspect=true) and retractions (suspect=false) sent, by node."
    );
    describe_counter!(
        M_MON_REPORTS,
        Unit::Count,
        "Ring mode: quarantines reported on this node's own quorum (local) or a relayed verdict, by node."
    );
    describe_counter!(
        M_MON_STALLS,
        Unit::Count,
        "Ring mode: stalls of this process detected by the monitoring core (FS-1), by node."
    );
    describe_gauge!(
        M_LOCAL_HEALTH,
        "Ring mode: the local health score, 0 (healthy) to health_max, by node."
    );
    describe_counter!(
        M_IDLE_CLOSED,
        Unit::Count,
        "Ring mode: associations outside the ring's set closed after idle_timeout without a frame, by node."
    );
    describe_gauge!(
        M_PEER_UP,
        "1 while the association with a peer is up and its failure detector trusts it, else 0, by node and peer."
    );
    describe_gauge!(
        M_PEER_LAST_HEARD,
        Unit::Seconds,
        "Unix time of the last sign of life from a peer (0 once it left), by node and peer."
    );
    describe_counter!(
        M_REQUESTS,
        Unit::Count,
        "Placement lookups (one per attempt of a grain request), by node."
    );
    describe_counter!(
        M_DEACTIVATIONS,
        Unit::Count,
        "Grain deactivations, by node, reason (hand_off, idle, leaving) and result (ok, error, timeout)."
    );
    describe_gauge!(
        M_ACTIVATIONS,
        Unit::Count,
        "Grain activations on this node, by node."
    );
    describe_counter!(
        M_HANDOFFS,
        Unit::Count,
        "Activations stopped because their identity moved, placement paused, or the node left, by node."
    );
}
