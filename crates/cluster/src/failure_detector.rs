//! Failure detection as a pure core (R4.2): given when a peer was last heard
//! from, and how regularly, is it still there? No IO, no clock: callers
//! pass `now`.
//!
//! Two detectors, chosen with [`DetectorConfig`]:
//!
//! - **Timeout**: a peer is suspected once nothing has been heard from it for
//!   `timeout`. Simple and predictable; the right choice on a quiet, fast
//!   network.
//! - **Phi accrual** (Hayashibara et al., "The φ Accrual Failure Detector",
//!   2004; the detector Akka and Cassandra use): the detector keeps the
//!   recent intervals between heartbeats and turns the current silence into
//!   a suspicion level φ = −log10(P(a heartbeat arrives later than now)),
//!   under a normal distribution with the observed mean and standard
//!   deviation. φ = 1 means a 10 % chance that the peer is fine, φ = 8 one in
//!   10⁸. The peer is suspected once φ reaches `threshold`. On a network
//!   whose latency wanders, it adapts where a fixed timeout either fires
//!   falsely or waits too long.
//!
//! # Phi accrual, precisely
//!
//! - Each **heartbeat** ([`FailureDetector::heartbeat`]) after the first
//!   records the interval since the previous one; the last `max_samples`
//!   intervals are kept (sum and sum of squares updated incrementally).
//! - Any **other sign of life** ([`FailureDetector::touch`]) resets the
//!   silence without adding an interval: traffic proves the peer alive but
//!   says nothing about the heartbeat rhythm.
//! - The window starts with two intervals of `first_heartbeat_estimate` ±
//!   25 %, so that a peer heard from once is judged against the expected
//!   rhythm rather than not at all.
//! - φ(now) uses mean = observed mean + `acceptable_pause` and standard
//!   deviation = max(observed, `min_std_deviation`), and the logistic
//!   approximation of the normal CDF, 1 / (1 + e^(−y(1.5976 + 0.070566 y²)))
//!   with y = (silence − mean) / std (error below 10⁻⁴), which keeps φ
//!   finite and monotonic far into the tail.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use cluster::failure_detector::{DetectorConfig, FailureDetector, PhiAccrualConfig};
//!
//! let t0 = Instant::now();
//! let ms = |n| t0 + Duration::from_millis(n);
//! let mut d = FailureDetector::new(DetectorConfig::PhiAccrual(PhiAccrualConfig::new(
//!     Duration::from_millis(100),
//! )));
//! for i in 0..20 {
//!     d.heartbeat(ms(i * 100));
//! }
//! assert!(d.is_available(ms(2_000)));   // 100 ms after the last heartbeat
//! assert!(!d.is_available(ms(4_000)));  // 2.1 s of silence: suspected
//! assert!(d.phi(ms(2_000)) < d.phi(ms(2_500)));
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Which detector, and its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DetectorConfig {
    /// Suspect after this long without a sign of life.
    Timeout(Duration),
    /// Suspect when φ reaches the threshold.
    PhiAccrual(PhiAccrualConfig),
}

/// Parameters of the phi-accrual detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhiAccrualConfig {
    /// φ at which a peer is suspected (default 8: one chance in 10⁸ that a
    /// heartbeat is merely late).
    pub threshold: f64,
    /// Intervals kept (default 200).
    pub max_samples: usize,
    /// Floor of the standard deviation, so that a very regular peer is not
    /// suspected at its first small delay (default 100 ms).
    pub min_std_deviation: Duration,
    /// Silence tolerated on top of the usual rhythm, e.g. for garbage
    /// collection or scheduling pauses (default 0).
    pub acceptable_pause: Duration,
    /// The expected interval before any has been observed (usually the
    /// heartbeat interval).
    pub first_heartbeat_estimate: Duration,
}

impl PhiAccrualConfig {
    /// The defaults for peers that heartbeat every `heartbeat_interval`.
    pub fn new(heartbeat_interval: Duration) -> Self {
        Self {
            threshold: 8.0,
            max_samples: 200,
            min_std_deviation: Duration::from_millis(100),
            acceptable_pause: Duration::ZERO,
            first_heartbeat_estimate: heartbeat_interval,
        }
    }
}

/// One peer's detector (see the [module documentation](self)).
#[derive(Clone, Debug)]
pub struct FailureDetector {
    config: DetectorConfig,
    /// Last sign of life (heartbeat or other).
    last_heard: Option<Instant>,
    /// Last heartbeat (the start of the next interval).
    last_heartbeat: Option<Instant>,
    /// Intervals in milliseconds, with their running sums.
    intervals: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
}

impl FailureDetector {
    /// A detector that has heard nothing yet (it suspects nobody until the
    /// first sign of life: there is nothing to measure silence from).
    pub fn new(config: DetectorConfig) -> Self {
        let mut d = Self {
            config,
            last_heard: None,
            last_heartbeat: None,
            intervals: VecDeque::new(),
            sum: 0.0,
            sum_sq: 0.0,
        };
        if let DetectorConfig::PhiAccrual(c) = config {
            let est = ms(c.first_heartbeat_estimate).max(1.0);
            d.push(est * 0.75, c.max_samples);
            d.push(est * 1.25, c.max_samples);
        }
        d
    }

    fn push(&mut self, interval: f64, max: usize) {
        self.intervals.push_back(interval);
        self.sum += interval;
        self.sum_sq += interval * interval;
        while self.intervals.len() > max.max(2) {
            if let Some(old) = self.intervals.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
    }

    /// A heartbeat (or its acknowledgement) arrived at `now`.
    pub fn heartbeat(&mut self, now: Instant) {
        if let (DetectorConfig::PhiAccrual(c), Some(prev)) = (self.config, self.last_heartbeat) {
            let interval = ms(now.saturating_duration_since(prev));
            self.push(interval, c.max_samples);
        }
        self.last_heartbeat = Some(now);
        self.touch(now);
    }

    /// Some other sign of life arrived at `now` (it resets the silence, not
    /// the statistics).
    pub fn touch(&mut self, now: Instant) {
        if self.last_heard.is_none_or(|l| now > l) {
            self.last_heard = Some(now);
        }
    }

    /// Whether a sign of life has arrived yet.
    pub fn has_heard(&self) -> bool {
        self.last_heard.is_some()
    }

    /// How long the peer has been silent at `now` (zero before the first
    /// sign of life).
    pub fn silence(&self, now: Instant) -> Duration {
        self.last_heard
            .map_or(Duration::ZERO, |l| now.saturating_duration_since(l))
    }

    /// The suspicion level at `now`: for phi accrual, φ; for the timeout
    /// detector, 0 before the timeout and +∞ from it on.
    pub fn phi(&self, now: Instant) -> f64 {
        if self.last_heard.is_none() {
            return 0.0;
        }
        let silence = self.silence(now);
        match self.config {
            DetectorConfig::Timeout(t) => {
                if silence >= t {
                    f64::INFINITY
                } else {
                    0.0
                }
            }
            DetectorConfig::PhiAccrual(c) => {
                let n = self.intervals.len() as f64;
                let mean = self.sum / n;
                let variance = (self.sum_sq / n - mean * mean).max(0.0);
                let std = variance.sqrt().max(ms(c.min_std_deviation)).max(1e-3);
                phi(ms(silence), mean + ms(c.acceptable_pause), std)
            }
        }
    }

    /// Whether the peer is still trusted at `now`.
    pub fn is_available(&self, now: Instant) -> bool {
        match self.config {
            DetectorConfig::Timeout(t) => self.last_heard.is_none() || self.silence(now) < t,
            DetectorConfig::PhiAccrual(c) => self.phi(now) < c.threshold,
        }
    }

    /// The configuration.
    pub fn config(&self) -> DetectorConfig {
        self.config
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// φ for a silence of `t` under N(mean, std), with the logistic
/// approximation of the normal CDF.
fn phi(t: f64, mean: f64, std: f64) -> f64 {
    let y = (t - mean) / std;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    // P(later than t) = 1 - CDF(y) = e / (1 + e); computed so that neither
    // branch loses precision to 1 - (almost 1).
    let p_later = if e.is_infinite() { 1.0 } else { e / (1.0 + e) };
    if p_later <= 0.0 {
        // Far in the tail: -log10(e / (1 + e)) ≈ -log10(e).
        let log10_e = -y * (1.5976 + 0.070566 * y * y) / std::f64::consts::LN_10;
        return -log10_e;
    }
    -p_later.log10()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(t0: Instant, millis: u64) -> Instant {
        t0 + Duration::from_millis(millis)
    }

    fn phi_detector(interval_ms: u64) -> FailureDetector {
        FailureDetector::new(DetectorConfig::PhiAccrual(PhiAccrualConfig::new(
            Duration::from_millis(interval_ms),
        )))
    }

    #[test]
    fn nobody_is_suspected_before_the_first_sign_of_life() {
        let t0 = Instant::now();
        for cfg in [
            DetectorConfig::Timeout(Duration::from_millis(10)),
            DetectorConfig::PhiAccrual(PhiAccrualConfig::new(Duration::from_millis(10))),
        ] {
            let d = FailureDetector::new(cfg);
            assert!(d.is_available(at(t0, 1_000_000)));
            assert_eq!(d.phi(at(t0, 1_000_000)), 0.0);
        }
    }

    #[test]
    fn r4_2_timeout_detector_suspects_exactly_at_the_timeout() {
        let t0 = Instant::now();
        let mut d = FailureDetector::new(DetectorConfig::Timeout(Duration::from_millis(500)));
        d.heartbeat(t0);
        assert!(d.is_available(at(t0, 499)));
        assert!(!d.is_available(at(t0, 500)));
        d.touch(at(t0, 400));
        assert!(d.is_available(at(t0, 899)));
        assert!(!d.is_available(at(t0, 900)));
    }

    #[test]
    fn r4_2_phi_accrual_trusts_a_regular_peer_and_suspects_a_silent_one() {
        let t0 = Instant::now();
        let mut d = phi_detector(100);
        for i in 0..50 {
            d.heartbeat(at(t0, i * 100));
        }
        let last = 4_900;
        assert!(d.phi(at(t0, last + 100)) < 1.0, "on time");
        assert!(d.is_available(at(t0, last + 300)), "a little late");
        assert!(!d.is_available(at(t0, last + 1_500)), "1.5 s silent");
    }

    #[test]
    fn phi_accrual_adapts_to_a_jittery_peer() {
        // The same silence is suspicious for a regular peer and acceptable
        // for one whose heartbeats wander between 100 and 900 ms.
        let t0 = Instant::now();
        let mut regular = phi_detector(100);
        let mut jittery = phi_detector(100);
        let mut t = 0;
        for i in 0..60 {
            regular.heartbeat(at(t0, i * 100));
            t += if i % 2 == 0 { 100 } else { 900 };
            jittery.heartbeat(at(t0, t));
        }
        let silence = 1_000;
        let p_regular = regular.phi(at(t0, 5_900 + silence));
        let p_jittery = jittery.phi(at(t0, t + silence));
        assert!(p_regular > 8.0, "{p_regular}");
        assert!(p_jittery < 8.0, "{p_jittery}");
    }

    #[test]
    fn touch_resets_silence_but_not_the_rhythm() {
        let t0 = Instant::now();
        let mut d = phi_detector(100);
        for i in 0..20 {
            d.heartbeat(at(t0, i * 100));
        }
        let before = d.clone();
        d.touch(at(t0, 2_500));
        assert_eq!(d.intervals, before.intervals);
        assert!(d.phi(at(t0, 2_600)) < before.phi(at(t0, 2_600)));
    }

    #[test]
    fn the_window_is_bounded() {
        let t0 = Instant::now();
        let mut d = FailureDetector::new(DetectorConfig::PhiAccrual(PhiAccrualConfig {
            max_samples: 10,
            ..PhiAccrualConfig::new(Duration::from_millis(100))
        }));
        for i in 0..1_000 {
            d.heartbeat(at(t0, i * 100));
        }
        assert_eq!(d.intervals.len(), 10);
        assert!((d.sum - 1_000.0).abs() < 1e-6);
    }

    proptest! {
        /// φ never decreases while the silence grows, and is finite.
        #[test]
        fn phi_is_monotonic_in_silence(
            intervals in proptest::collection::vec(1u64..2_000, 1..50),
            a in 0u64..20_000,
            b in 0u64..20_000,
        ) {
            let t0 = Instant::now();
            let mut d = phi_detector(100);
            let mut t = 0;
            for i in &intervals {
                t += i;
                d.heartbeat(at(t0, t));
            }
            let (lo, hi) = (a.min(b), a.max(b));
            let p_lo = d.phi(at(t0, t + lo));
            let p_hi = d.phi(at(t0, t + hi));
            prop_assert!(p_lo.is_finite() && p_hi.is_finite());
            prop_assert!(p_lo <= p_hi + 1e-9, "{} > {}", p_lo, p_hi);
        }
    }
}
