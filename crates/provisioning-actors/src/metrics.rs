//! Provisioning metrics (R4.5, R5.1), through the `metrics` facade; listed
//! with their labels in `docs/metrics.md`.
//!
//! Every metric also carries a `node` label (N2): the local member's node
//! id ([`ProvisioningConfig::local`](crate::ProvisioningConfig::local)), or
//! the [`ActorSystem`](actor_runtime::ActorSystem)'s name when there is no
//! local member. [`describe`] registers descriptions and units.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Histogram (seconds): age of a snapshot when the supervisor received it
/// (provider observation → supervisor), by `provider`.
pub const SNAPSHOT_LATENCY: &str = "provisioning_snapshot_latency_seconds";
/// Counter: changes of the active provider, by `reason`
/// (`initial` | `stream_ended` | `errors` | `silence` | `crashed` | `fail_back` | `reload` | `removed`).
pub const FAILOVERS: &str = "provisioning_failovers_total";
/// Counter: stream interruptions, a provider actor's stream ending or its
/// actor failing, by `provider` and `reason` (`ended` | `crashed`).
pub const STREAM_INTERRUPTIONS: &str = "provisioning_stream_interruptions_total";
/// Counter: error items of a provider's stream that goes on, by `provider`
/// and `reason` (error code).
pub const STREAM_ERRORS: &str = "provisioning_stream_errors_total";
/// Gauge: provider health, by `provider`: 2 healthy, 1 degraded or starting, 0 down/failed/disabled.
pub const PROVIDER_HEALTH: &str = "provisioning_provider_health";
/// Gauge: Unix time (seconds) of a provider's last snapshot, by `provider`.
pub const PROVIDER_LAST_UPDATE: &str = "provisioning_provider_last_update_timestamp_seconds";
/// Gauge: members in the published topology.
pub const MEMBERS: &str = "provisioning_members";
/// Gauge: the published status, one series per `status`, 1 for the current one.
pub const STATUS: &str = "provisioning_status";
/// Counter: topologies published.
pub const TOPOLOGY_UPDATES: &str = "provisioning_topology_updates_total";
/// Counter: quarantines applied.
pub const QUARANTINES: &str = "provisioning_quarantines_total";
/// Counter: providers whose activation was suppressed (R5.2), by `provider`.
pub const ACTIVATION_SUPPRESSED: &str = "provisioning_activation_suppressed_total";
/// Counter, labels `provider`, `reason` (error code): registrations of the
/// local member that failed (each is retried with backoff).
pub const REGISTRATION_FAILURES: &str = "provisioning_registration_failures_total";

/// Counter, labels `provider`, `reason` (`self_missing` | `mass_removal`):
/// snapshots held as suspect by the self-presence rule (issue 19, see
/// [`presence`](crate::presence)).
pub const SUSPECT_SNAPSHOTS_HELD: &str = "provisioning_suspect_snapshots_held_total";

/// Describes every provisioning metric (description and unit) to the
/// installed recorder. Call it once, after installing the recorder;
/// metrics are recorded whether or not it was called.
pub fn describe() {
    describe_histogram!(
        SNAPSHOT_LATENCY,
        Unit::Seconds,
        "Age of a snapshot when the supervisor received it, by node and provider."
    );
    describe_counter!(
        FAILOVERS,
        Unit::Count,
        "Changes of the active provider, by node and reason."
    );
    describe_counter!(
        STREAM_INTERRUPTIONS,
        Unit::Count,
        "Provider streams that ended or whose actor failed, by node, provider and reason."
    );
    describe_counter!(
        STREAM_ERRORS,
        Unit::Count,
        "Error items of provider streams that go on, by node, provider and error code."
    );
    describe_gauge!(
        PROVIDER_HEALTH,
        "Provider health, by node and provider: 2 healthy, 1 degraded or starting, 0 down, failed or disabled."
    );
    describe_gauge!(
        PROVIDER_LAST_UPDATE,
        Unit::Seconds,
        "Unix time of a provider's last snapshot, by node and provider."
    );
    describe_gauge!(
        MEMBERS,
        Unit::Count,
        "Members in the published topology, by node."
    );
    describe_gauge!(
        STATUS,
        "Published provisioning status, by node: 1 for the current status label, 0 for the others."
    );
    describe_counter!(
        TOPOLOGY_UPDATES,
        Unit::Count,
        "Topologies published, by node."
    );
    describe_counter!(QUARANTINES, Unit::Count, "Quarantines applied, by node.");
    describe_counter!(
        ACTIVATION_SUPPRESSED,
        Unit::Count,
        "Providers whose activation was suppressed (R5.2), by node and provider."
    );
    describe_counter!(
        SUSPECT_SNAPSHOTS_HELD,
        Unit::Count,
        "Snapshots held as suspect (this node missing, or more than half of the members gone), by node, provider and reason."
    );
    describe_counter!(
        REGISTRATION_FAILURES,
        Unit::Count,
        "Failed registrations of the local member, by node, provider and reason."
    );
}
