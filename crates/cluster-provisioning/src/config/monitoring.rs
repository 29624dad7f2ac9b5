//! `[remoting.monitoring]`: how Remoting detects failed members (issue
//! 17). Every key is optional; an absent one takes
//! [`MonitoringConfig::default`]'s value, so a file without the table runs
//! today's all-to-all heartbeats.
//!
//! ```toml
//! [remoting.monitoring]
//! mode = "ring"              # all_to_all (default) | ring
//! monitors = 5               # k: monitors per node, 1..=16
//! quorum = 3                 # q: votes to report a node, 2..=monitors
//! probe_interval = "1s"      # I: at least 10ms
//! probe_timeout = "500ms"    # more than 0, less than probe_interval
//! indirect_fanout = 3        # r: 0..=monitors - 1 (0: no indirect probes)
//! suspicion_mult = 0.33      # α: more than 0
//! vote_ttl = "10s"           # more than probe_interval
//! health_max = 8             # S: 1..=16 (1: no local health)
//! vote_limit = 2             # 1..=health_max
//! idle_timeout = "60s"       # at least 1s
//! detector = "timeout"       # timeout (default) | phi_accrual
//! ```
//!
//! The table is read straight into Remoting's own
//! [`MonitoringConfig`] (a serde remote definition: a field added there
//! and missing here does not compile), and
//! [`MonitoringConfig::validate`] runs when the file is loaded, so a value
//! out of range is a `config.invalid` naming the file and
//! `remoting.monitoring.<field>`. In code, set
//! [`RemotingSection::monitoring`](super::RemotingSection::monitoring) of a
//! [`NodeConfig`](super::NodeConfig), or give
//! `RemotingConfig::with_monitoring` to a bare `Cluster::builder`.

use std::time::Duration;

pub use cluster::monitoring::{MonitoringConfig, MonitoringDetector, MonitoringMode};
use serde::{Deserialize, Serialize};

use super::duration;

/// The serde shape of [`MonitoringMode`]: `"all_to_all"` or `"ring"`.
#[derive(Serialize, Deserialize)]
#[serde(remote = "MonitoringMode", rename_all = "snake_case")]
enum ModeDef {
    AllToAll,
    Ring,
}

/// The serde shape of [`MonitoringDetector`]: `"timeout"` or
/// `"phi_accrual"`.
#[derive(Serialize, Deserialize)]
#[serde(remote = "MonitoringDetector", rename_all = "snake_case")]
enum DetectorDef {
    Timeout,
    PhiAccrual,
}

/// The serde shape of [`MonitoringConfig`]: `#[serde(with =
/// "monitoring::Section")]` on a `MonitoringConfig` field. Absent keys
/// take the default's values; unknown keys are refused.
#[derive(Serialize, Deserialize)]
#[serde(remote = "MonitoringConfig", default, deny_unknown_fields)]
pub(crate) struct Section {
    #[serde(with = "ModeDef")]
    mode: MonitoringMode,
    monitors: usize,
    quorum: usize,
    #[serde(with = "duration")]
    probe_interval: Duration,
    #[serde(with = "duration")]
    probe_timeout: Duration,
    indirect_fanout: usize,
    suspicion_mult: f64,
    #[serde(with = "duration")]
    vote_ttl: Duration,
    health_max: u32,
    vote_limit: u32,
    #[serde(with = "duration")]
    idle_timeout: Duration,
    #[serde(with = "DetectorDef")]
    detector: MonitoringDetector,
}

// Absent keys: serde's `default` on a remote definition fills them from
// this type's `Default`, which is the library's.
impl Default for Section {
    fn default() -> Self {
        let d = MonitoringConfig::default();
        Self {
            mode: d.mode,
            monitors: d.monitors,
            quorum: d.quorum,
            probe_interval: d.probe_interval,
            probe_timeout: d.probe_timeout,
            indirect_fanout: d.indirect_fanout,
            suspicion_mult: d.suspicion_mult,
            vote_ttl: d.vote_ttl,
            health_max: d.health_max,
            vote_limit: d.vote_limit,
            idle_timeout: d.idle_timeout,
            detector: d.detector,
        }
    }
}

/// The numeric keys of the table, for the environment overrides (their
/// values arrive as strings): `(key, is_float)`.
pub(crate) const NUMERIC_KEYS: &[(&str, bool)] = &[
    ("monitors", false),
    ("quorum", false),
    ("indirect_fanout", false),
    ("health_max", false),
    ("vote_limit", false),
    ("suspicion_mult", true),
];
