//! [`Backoff`]: the one retry delay of the providers (etcd's reconnection,
//! Consul's watch retries, the Kubernetes watcher's retries, the seed
//! providers' bootstrap rounds).
//!
//! # Rule
//!
//! The delay of attempt `n` (0-based, counted since the last
//! [`reset`](Backoff::reset)) is
//!
//! ```text
//! base(n)  = min(initial · 2^n, cap)            cap = max(max, initial)
//! delay(n) = min(base(n) · f, cap)              f uniform in [jitter.low, jitter.high]
//! ```
//!
//! so `max` is a true bound (the settings documents call it "the largest
//! delay"), and the jitter spreads nodes that failed together so that they
//! do not retry in lockstep. The default jitter is ±20 %
//! ([`Jitter::spread`]`(0.2)`).
//!
//! # Pure core
//!
//! [`Backoff::delay`] is a pure function of the attempt and the random
//! fraction; [`Backoff::next_delay_with`] advances the attempt with a given
//! fraction (tests), [`Backoff::next_delay`] with a random one. No clock, no
//! sleeping: the caller sleeps.
//!
//! ```
//! use std::time::Duration;
//! use cluster_core::backoff::{Backoff, Jitter};
//!
//! let ms = Duration::from_millis;
//! let mut b = Backoff::new(ms(100), ms(350)).with_jitter(Jitter::NONE);
//! let delays: Vec<_> = (0..4).map(|_| b.next_delay_with(0.5)).collect();
//! assert_eq!(delays, [ms(100), ms(200), ms(350), ms(350)]);
//! b.reset();
//! assert_eq!(b.next_delay_with(0.5), ms(100));
//! // With the default ±20 % jitter, the fraction picks the factor.
//! let b = Backoff::new(ms(100), ms(1000));
//! assert_eq!((b.delay(0, 0.0), b.delay(0, 1.0)), (ms(80), ms(120)));
//! ```

use std::time::Duration;

/// The spread of a delay: it is multiplied by a factor drawn uniformly in
/// `[low, high]` (then capped at the backoff's maximum).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    low: f64,
    high: f64,
}

impl Jitter {
    /// No spread: the factor is always 1.
    pub const NONE: Jitter = Jitter {
        low: 1.0,
        high: 1.0,
    };

    /// "Equal jitter": a uniform draw in the upper half of the delay,
    /// `[0.5, 1]`; never longer than the delay itself.
    pub const EQUAL: Jitter = Jitter {
        low: 0.5,
        high: 1.0,
    };

    /// `±fraction`: a factor in `[1 - fraction, 1 + fraction]`; the
    /// fraction is clamped to `[0, 1]` (NaN counts as 0).
    pub fn spread(fraction: f64) -> Self {
        let f = unit(fraction);
        Self::range(1.0 - f, 1.0 + f)
    }

    /// Up to `+fraction`: a factor in `[1, 1 + fraction]`; the fraction is
    /// clamped to `[0, 1]` (NaN counts as 0).
    pub fn up_to(fraction: f64) -> Self {
        Self::range(1.0, 1.0 + unit(fraction))
    }

    /// A factor in `[low, high]`. Negative or non-finite bounds count as 0
    /// (a NaN) or are clamped to `[0, 2]`; swapped bounds are put in order.
    pub fn range(low: f64, high: f64) -> Self {
        let fix = |v: f64| if v.is_nan() { 0.0 } else { v.clamp(0.0, 2.0) };
        let (a, b) = (fix(low), fix(high));
        Self {
            low: a.min(b),
            high: a.max(b),
        }
    }

    /// The lower bound of the factor.
    pub fn low(self) -> f64 {
        self.low
    }

    /// The upper bound of the factor.
    pub fn high(self) -> f64 {
        self.high
    }

    /// The factor for a uniform fraction `rand01` in `[0, 1]` (clamped;
    /// NaN counts as 0): `low` at 0, `high` at 1.
    pub fn factor(self, rand01: f64) -> f64 {
        self.low + (self.high - self.low) * unit(rand01)
    }
}

impl Default for Jitter {
    /// ±20 %.
    fn default() -> Self {
        Self::spread(0.2)
    }
}

fn unit(v: f64) -> f64 {
    if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) }
}

/// Exponential backoff: doubling from `initial`, capped at `max`, with
/// [`Jitter`] (see the [module docs](self) for the rule).
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    jitter: Jitter,
    attempt: u32,
}

impl Backoff {
    /// Doubling from `initial` up to `max` (a `max` below `initial` counts
    /// as `initial`), with the default ±20 % jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            cap: max.max(initial),
            jitter: Jitter::default(),
            attempt: 0,
        }
    }

    /// Sets the jitter.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The first delay, before jitter.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The largest delay.
    pub fn max(&self) -> Duration {
        self.cap
    }

    /// The jitter.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// How many delays [`next_delay`](Self::next_delay) handed out since
    /// the last reset: the attempt the next one is for.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay of attempt `attempt` before jitter: `initial · 2^attempt`,
    /// capped.
    pub fn base(&self, attempt: u32) -> Duration {
        // 2^31 still fits a u32; beyond it the product only grows (or
        // saturates), and the cap applies anyway.
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.cap)
    }

    /// The delay of attempt `attempt` for the uniform fraction `rand01`
    /// (pure: the same inputs give the same delay).
    pub fn delay(&self, attempt: u32, rand01: f64) -> Duration {
        let base = self.base(attempt);
        let scaled = base.as_secs_f64() * self.jitter.factor(rand01);
        Duration::try_from_secs_f64(scaled)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// [`delay`](Self::delay) of `attempt` with a random fraction.
    pub fn random_delay(&self, attempt: u32) -> Duration {
        self.delay(attempt, fastrand::f64())
    }

    /// The delay to wait now, for the fraction `rand01`; the following one
    /// doubles (up to the max).
    pub fn next_delay_with(&mut self, rand01: f64) -> Duration {
        let d = self.delay(self.attempt, rand01);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// The delay to wait now, with a random fraction; the following one
    /// doubles (up to the max).
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(fastrand::f64())
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn delays_double_from_the_initial_up_to_the_max_and_reset() {
        let mut b = Backoff::new(ms(100), ms(350)).with_jitter(Jitter::NONE);
        let d: Vec<_> = (0..5).map(|_| b.next_delay_with(0.3)).collect();
        assert_eq!(d, [ms(100), ms(200), ms(350), ms(350), ms(350)]);
        assert_eq!(b.attempt(), 5);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay_with(0.9), ms(100));
        assert_eq!(b.next_delay_with(0.9), ms(200));
    }

    #[test]
    fn the_injected_fraction_picks_the_jitter_factor() {
        let b = Backoff::new(ms(1000), ms(60_000));
        // Default: ±20 %.
        assert_eq!(b.delay(0, 0.0), ms(800));
        assert_eq!(b.delay(0, 0.5), ms(1000));
        assert_eq!(b.delay(0, 1.0), ms(1200));
        assert_eq!(b.delay(2, 0.0), ms(3200));
        let equal = b.clone().with_jitter(Jitter::EQUAL);
        assert_eq!(
            (equal.delay(1, 0.0), equal.delay(1, 1.0)),
            (ms(1000), ms(2000))
        );
        let up = b.with_jitter(Jitter::up_to(0.25));
        assert_eq!((up.delay(0, 0.0), up.delay(0, 1.0)), (ms(1000), ms(1250)));
        // Out-of-range fractions are clamped, NaN counts as 0.
        assert_eq!(up.delay(0, 7.0), ms(1250));
        assert_eq!(up.delay(0, f64::NAN), ms(1000));
    }

    #[test]
    fn the_max_bounds_the_jittered_delay_too() {
        let b = Backoff::new(ms(100), ms(350));
        assert_eq!(b.delay(2, 1.0), ms(350), "350 × 1.2 is capped");
        assert_eq!(b.delay(2, 0.0), ms(280));
        // A max below the initial counts as the initial.
        let b = Backoff::new(ms(500), ms(10));
        assert_eq!(b.max(), ms(500));
        assert_eq!(b.delay(3, 1.0), ms(500));
    }

    #[test]
    fn huge_attempts_and_durations_neither_panic_nor_overflow() {
        let b = Backoff::new(Duration::from_secs(1), Duration::MAX);
        assert!(b.delay(200, 1.0) >= Duration::from_secs(1 << 20));
        assert!(b.delay(u32::MAX, 1.0) >= Duration::from_secs(u64::from(u32::MAX)));
        let b = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(b.delay(3, 1.0), Duration::MAX);
        let mut b = Backoff::new(ms(1), ms(5));
        for _ in 0..100 {
            b.next_delay();
        }
        assert!(b.next_delay() <= ms(5));
        let zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(zero.delay(9, 0.5), Duration::ZERO);
    }

    #[test]
    fn jitter_bounds_are_sanitized() {
        assert_eq!(Jitter::spread(2.0), Jitter::range(0.0, 2.0));
        assert_eq!(Jitter::spread(f64::NAN), Jitter::NONE);
        let j = Jitter::range(1.5, 0.5);
        assert_eq!((j.low(), j.high()), (0.5, 1.5));
        let j = Jitter::range(-3.0, f64::INFINITY);
        assert_eq!((j.low(), j.high()), (0.0, 2.0));
    }

    #[test]
    fn random_delays_are_spread() {
        let b = Backoff::new(ms(1000), ms(60_000));
        let seen: std::collections::BTreeSet<_> = (0..200).map(|_| b.random_delay(0)).collect();
        assert!(seen.len() > 50, "{} distinct delays", seen.len());
        assert!(seen.iter().all(|d| *d >= ms(800) && *d <= ms(1200)));
    }

    proptest! {
        /// Every delay lies in [low · base, min(high · base, max)], and the
        /// base never decreases with the attempt.
        #[test]
        fn delays_stay_within_the_jitter_band_and_the_max(
            initial in 0u64..10_000,
            max in 0u64..1_000_000,
            attempt in 0u32..100,
            r in 0.0f64..=1.0,
            low in 0.0f64..=2.0,
            high in 0.0f64..=2.0,
        ) {
            let b = Backoff::new(ms(initial), ms(max)).with_jitter(Jitter::range(low, high));
            let base = b.base(attempt);
            prop_assert!(b.base(attempt + 1) >= base);
            let d = b.delay(attempt, r);
            let j = b.jitter();
            prop_assert!(d <= b.max());
            let slack = Duration::from_micros(1);
            prop_assert!(d + slack >= base.mul_f64(j.low()).min(b.max()), "{d:?} {base:?}");
            prop_assert!(d <= base.mul_f64(j.high()) + slack, "{d:?} {base:?}");
        }
    }
}
