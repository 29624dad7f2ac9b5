//! The monitoring parameters (`docs/monitoring-design.md` §2.8 and §2.9).
//!
//! [`MonitoringConfig::default`] holds the design's defaults;
//! [`MonitoringConfig::validate`] refuses a value outside its range with
//! an error that names the field and carries the stable code
//! `remoting.monitoring_config` (`docs/error-codes.md`). Nothing reads the
//! config yet (stage 5 puts it in `RemotingConfig` and the node program's
//! `[remoting.monitoring]`).

use std::time::Duration;

/// Which failure detection Remoting runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MonitoringMode {
    /// Today's behaviour: every node heartbeats every other member and
    /// reports a quarantine on its own detector's suspicion. The default
    /// until the ring has shown its figures (design stage 6).
    #[default]
    AllToAll,
    /// The ring of k monitors per node with votes and a quorum.
    Ring,
}

/// How the direct phase of a probe round ends (design §2.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MonitoringDetector {
    /// `probe_timeout` after the probe without an ack.
    #[default]
    Timeout,
    /// Once `probe_timeout` has passed and the phi-accrual detector of
    /// the target reaches its threshold.
    PhiAccrual,
}

/// The parameters of ring monitoring, with the design's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitoringConfig {
    /// Which detection runs. Default [`MonitoringMode::AllToAll`].
    pub mode: MonitoringMode,
    /// k: monitors per node, 1..=16. Default 5 (Akka's
    /// `monitored-by-nr-of-members`). Fewer in small clusters: [`k_eff`].
    pub monitors: usize,
    /// q: votes needed to report a node, 2..=`monitors`. Default 3 (a
    /// majority of 5). Fewer in small clusters: [`q_eff`].
    pub quorum: usize,
    /// I: one direct probe per target per interval, at least 10 ms.
    /// Default 1 s.
    pub probe_interval: Duration,
    /// How long the direct phase waits for an ack: more than zero and
    /// less than `probe_interval`. Default 500 ms.
    pub probe_timeout: Duration,
    /// r: helpers asked for an indirect probe, 0..=`monitors − 1`
    /// (0 disables indirect probes). Default 3 (memberlist's
    /// `IndirectChecks`).
    pub indirect_fanout: usize,
    /// α in `T_min(N) = max(I/3, α · log10(max(N, 10)) · I)`, finite and
    /// more than 0. Default 0.33.
    pub suspicion_mult: f64,
    /// How long a vote counts: more than `probe_interval`. Default 10 s.
    pub vote_ttl: Duration,
    /// S: the local health ceiling, 1..=16 (1 disables it). Default 8.
    pub health_max: u32,
    /// From this health score on the node sends no votes, 1..=`health_max`.
    /// Default 2.
    pub vote_limit: u32,
    /// An association outside the ring's set idle this long closes, at
    /// least 1 s. Default 60 s.
    pub idle_timeout: Duration,
    /// How the direct phase ends. Default [`MonitoringDetector::Timeout`].
    pub detector: MonitoringDetector,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            mode: MonitoringMode::AllToAll,
            monitors: 5,
            quorum: 3,
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_fanout: 3,
            suspicion_mult: 0.33,
            vote_ttl: Duration::from_secs(10),
            health_max: 8,
            vote_limit: 2,
            idle_timeout: Duration::from_secs(60),
            detector: MonitoringDetector::Timeout,
        }
    }
}

/// A [`MonitoringConfig`] value out of its range (`remoting.monitoring_config`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("remoting.monitoring.{field}: {reason}")]
pub struct MonitoringConfigError {
    /// The field, as named in `[remoting.monitoring]`.
    pub field: &'static str,
    /// What is wrong, with the value and the valid range.
    pub reason: String,
}

impl MonitoringConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The stable code: `remoting.monitoring_config`.
    pub fn code(&self) -> &'static str {
        "remoting.monitoring_config"
    }
}

/// The highest accepted `monitors` (k).
pub const MAX_MONITORS: usize = 16;
/// The highest accepted `health_max` (S).
pub const MAX_HEALTH: u32 = 16;
/// The smallest accepted `probe_interval`.
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// The smallest accepted `idle_timeout`.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

impl MonitoringConfig {
    /// Checks every field against its range (design §2.8); the first
    /// field out of range is named in the error.
    pub fn validate(&self) -> Result<(), MonitoringConfigError> {
        let k = self.monitors;
        if !(1..=MAX_MONITORS).contains(&k) {
            return Err(MonitoringConfigError::new(
                "monitors",
                format!("{k} is out of range: must be 1 to {MAX_MONITORS}"),
            ));
        }
        if k < 2 {
            return Err(MonitoringConfigError::new(
                "quorum",
                format!(
                    "a quorum needs at least 2 votes, and monitors is {k}: \
                     set monitors to 2 or more"
                ),
            ));
        }
        if !(2..=k).contains(&self.quorum) {
            return Err(MonitoringConfigError::new(
                "quorum",
                format!(
                    "{} is out of range: must be 2 to monitors ({k})",
                    self.quorum
                ),
            ));
        }
        if self.probe_interval < MIN_PROBE_INTERVAL {
            return Err(MonitoringConfigError::new(
                "probe_interval",
                format!(
                    "{:?} is too short: must be at least {MIN_PROBE_INTERVAL:?}",
                    self.probe_interval
                ),
            ));
        }
        if self.probe_timeout.is_zero() || self.probe_timeout >= self.probe_interval {
            return Err(MonitoringConfigError::new(
                "probe_timeout",
                format!(
                    "{:?} is out of range: must be more than zero and less than \
                     probe_interval ({:?})",
                    self.probe_timeout, self.probe_interval
                ),
            ));
        }
        if self.indirect_fanout > k - 1 {
            return Err(MonitoringConfigError::new(
                "indirect_fanout",
                format!(
                    "{} is out of range: must be 0 to monitors - 1 ({})",
                    self.indirect_fanout,
                    k - 1
                ),
            ));
        }
        if !(self.suspicion_mult.is_finite() && self.suspicion_mult > 0.0) {
            return Err(MonitoringConfigError::new(
                "suspicion_mult",
                format!(
                    "{} is out of range: must be a finite number more than 0",
                    self.suspicion_mult
                ),
            ));
        }
        if self.vote_ttl <= self.probe_interval {
            return Err(MonitoringConfigError::new(
                "vote_ttl",
                format!(
                    "{:?} is too short: must be more than probe_interval ({:?})",
                    self.vote_ttl, self.probe_interval
                ),
            ));
        }
        if !(1..=MAX_HEALTH).contains(&self.health_max) {
            return Err(MonitoringConfigError::new(
                "health_max",
                format!(
                    "{} is out of range: must be 1 to {MAX_HEALTH}",
                    self.health_max
                ),
            ));
        }
        if !(1..=self.health_max).contains(&self.vote_limit) {
            return Err(MonitoringConfigError::new(
                "vote_limit",
                format!(
                    "{} is out of range: must be 1 to health_max ({})",
                    self.vote_limit, self.health_max
                ),
            ));
        }
        if self.idle_timeout < MIN_IDLE_TIMEOUT {
            return Err(MonitoringConfigError::new(
                "idle_timeout",
                format!(
                    "{:?} is too short: must be at least {MIN_IDLE_TIMEOUT:?}",
                    self.idle_timeout
                ),
            ));
        }
        Ok(())
    }

    /// The shortest suspicion before a report, for a cluster of `members`:
    /// `T_min(N) = max(I/3, α · log10(max(N, 10)) · I)` (design §2.8,
    /// Lifeguard's log N scaling). Before the local health multiplier.
    pub fn t_min(&self, members: usize) -> Duration {
        let n = members.max(10) as f64;
        let scaled = self.probe_interval.mul_f64(self.suspicion_mult * n.log10());
        scaled.max(self.probe_interval / 3)
    }
}

/// The monitors per node in a cluster of `members`:
/// `k_eff = min(k, N − 1)` (0 for a cluster of one).
pub fn k_eff(monitors: usize, members: usize) -> usize {
    monitors.min(members.saturating_sub(1))
}

/// The votes needed with `k_eff` monitors per node:
/// `q_eff = min(q, ⌊k_eff / 2⌋ + 1)`, a majority of the monitors at most
/// (design §2.9): N = 2 → 1 (one witness, unavoidable), N = 3 → 2 of 2,
/// N = 4 → 2 of 3, N = 5 → 3 of 4, N ≥ 6 → 3 of 5 with the defaults.
/// With `k_eff` = 0 (a cluster of one) nobody monitors anyone, and the
/// value (1) is never reached.
pub fn q_eff(quorum: usize, k_eff: usize) -> usize {
    quorum.min(k_eff / 2 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i17_defaults_are_the_designs_and_valid() {
        let c = MonitoringConfig::default();
        assert_eq!(c.mode, MonitoringMode::AllToAll);
        assert_eq!(c.monitors, 5);
        assert_eq!(c.quorum, 3);
        assert_eq!(c.probe_interval, Duration::from_secs(1));
        assert_eq!(c.probe_timeout, Duration::from_millis(500));
        assert_eq!(c.indirect_fanout, 3);
        assert_eq!(c.suspicion_mult, 0.33);
        assert_eq!(c.vote_ttl, Duration::from_secs(10));
        assert_eq!(c.health_max, 8);
        assert_eq!(c.vote_limit, 2);
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.detector, MonitoringDetector::Timeout);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn i17_every_field_out_of_range_is_refused_with_its_name_and_code() {
        type Edit = fn(&mut MonitoringConfig);
        let cases: &[(&str, Edit)] = &[
            ("monitors", |c| c.monitors = 0),
            ("monitors", |c| c.monitors = 17),
            ("quorum", |c| {
                c.monitors = 1;
                c.indirect_fanout = 0;
            }),
            ("quorum", |c| c.quorum = 1),
            ("quorum", |c| c.quorum = 6),
            ("quorum", |c| c.quorum = 0),
            ("probe_interval", |c| {
                c.probe_interval = Duration::from_millis(9);
            }),
            ("probe_timeout", |c| c.probe_timeout = Duration::ZERO),
            ("probe_timeout", |c| {
                c.probe_timeout = Duration::from_secs(1)
            }),
            ("indirect_fanout", |c| c.indirect_fanout = 5),
            ("suspicion_mult", |c| c.suspicion_mult = 0.0),
            ("suspicion_mult", |c| c.suspicion_mult = -1.0),
            ("suspicion_mult", |c| c.suspicion_mult = f64::NAN),
            ("suspicion_mult", |c| c.suspicion_mult = f64::INFINITY),
            ("vote_ttl", |c| c.vote_ttl = Duration::from_secs(1)),
            ("health_max", |c| c.health_max = 0),
            ("health_max", |c| c.health_max = 17),
            ("vote_limit", |c| c.vote_limit = 0),
            ("vote_limit", |c| c.vote_limit = 9),
            ("idle_timeout", |c| {
                c.idle_timeout = Duration::from_millis(999);
            }),
        ];
        for (field, edit) in cases {
            let mut c = MonitoringConfig::default();
            edit(&mut c);
            let err = c.validate().expect_err(field);
            assert_eq!(err.field, *field, "{err}");
            assert_eq!(err.code(), "remoting.monitoring_config");
            assert!(
                err.to_string()
                    .starts_with(&format!("remoting.monitoring.{field}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn i17_the_bounds_themselves_are_accepted() {
        let mut c = MonitoringConfig {
            monitors: 16,
            quorum: 16,
            indirect_fanout: 15,
            probe_interval: MIN_PROBE_INTERVAL,
            probe_timeout: Duration::from_millis(9),
            vote_ttl: Duration::from_millis(11),
            health_max: 16,
            vote_limit: 16,
            idle_timeout: MIN_IDLE_TIMEOUT,
            ..MonitoringConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
        c.monitors = 2;
        c.quorum = 2;
        c.indirect_fanout = 0;
        c.health_max = 1;
        c.vote_limit = 1;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn i17_small_clusters_have_fewer_monitors_and_votes() {
        // (N, k_eff, q_eff) with the defaults k = 5, q = 3 (design §2.9).
        let expected = [
            (0, 0, 1),
            (1, 0, 1),
            (2, 1, 1),
            (3, 2, 2),
            (4, 3, 2),
            (5, 4, 3),
            (6, 5, 3),
            (1000, 5, 3),
        ];
        for (n, k, q) in expected {
            assert_eq!(k_eff(5, n), k, "k_eff at N = {n}");
            assert_eq!(q_eff(3, k_eff(5, n)), q, "q_eff at N = {n}");
        }
        // A smaller configured quorum is kept.
        assert_eq!(q_eff(2, 5), 2);
    }

    #[test]
    fn i17_t_min_grows_with_log_n_and_never_below_a_third_of_i() {
        let c = MonitoringConfig::default();
        let third = Duration::from_secs(1) / 3;
        assert_eq!(c.t_min(1), third);
        assert_eq!(c.t_min(10), third);
        // Within a microsecond: log10 and the product are floating point.
        let close = |got: Duration, ms: u64| {
            let want = Duration::from_millis(ms);
            assert!(got.abs_diff(want) < Duration::from_micros(1), "{got:?}");
        };
        close(c.t_min(100), 660);
        close(c.t_min(1000), 990);
        close(c.t_min(10_000), 1320);
        let slow = MonitoringConfig {
            probe_interval: Duration::from_secs(2),
            ..c
        };
        close(slow.t_min(1000), 1980);
    }
}
