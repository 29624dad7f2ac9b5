//! [`Backoff`]: delays between reconnection attempts, doubling from an
//! initial value to a maximum, with ±20 % jitter so that nodes that lost
//! etcd together do not come back in lockstep.

use std::time::Duration;

/// Exponential backoff with jitter.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay to wait now; the following one doubles (up to the max).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(0.8 + 0.4 * fastrand::f64())
    }

    /// Back to the initial delay (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_max_with_bounded_jitter_and_reset() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(350));
        let within = |d: Duration, base: u64| d >= ms(base * 8 / 10) && d <= ms(base * 12 / 10);
        for base in [100, 200, 350, 350] {
            let d = b.next_delay();
            assert!(within(d, base), "{d:?} vs {base}");
        }
        b.reset();
        assert!(within(b.next_delay(), 100));
    }
}
