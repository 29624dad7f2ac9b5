//! Provisioning metrics (R4.5, R5.1), through the `metrics` facade; listed
//! with their labels in `docs/metrics.md`.

/// Histogram (seconds): age of a snapshot when the supervisor received it
/// (provider observation → supervisor), by `provider`.
pub const SNAPSHOT_LATENCY: &str = "provisioning_snapshot_latency_seconds";
/// Counter: changes of the active provider, by `reason`
/// (`initial` | `stream_ended` | `errors` | `silence` | `crashed` | `fail_back` | `reload` | `removed`).
pub const FAILOVERS: &str = "provisioning_failovers_total";
/// Counter: stream interruptions (errors and ends), by `provider` and `reason` (error code or `ended`).
pub const STREAM_INTERRUPTIONS: &str = "provisioning_stream_interruptions_total";
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
