//! `Activation`: whether a provider's failure counts towards R5.2's
//! suppression, as a pure function of what the provider did before. No IO,
//! no clock: the supervisor feeds it one provider's snapshots and failures
//! and acts on the [`Verdict`].
//!
//! # The rule
//!
//! R5.2 is about a provider that cannot be *activated*: a definition that
//! is wrong (bad settings, a token without the permission it needs, an
//! endpoint that speaks something else). Activation is everything up to the
//! provider's first snapshot: the connectivity check at acceptance (which
//! rejects the definition outright, R1.4), the registration of the local
//! member, and the first snapshot itself.
//!
//! ```text
//!                   first snapshot
//!   Activating ──────────────────────► Running
//!   (failures counted;                 (failures never counted: the provider
//!    `threshold` in a row: Suppress)    is Degraded by the failover policy,
//!                                       its last topology kept, R4.3)
//! ```
//!
//! - While **activating**, each activation failure (a registration refused
//!   for a reason other than connectivity, a stream error that is
//!   `provider.auth`, `provider.protocol` or `provider.config`) counts;
//!   `threshold` in a row suppress the provider. A connectivity failure is
//!   not an activation failure (the backend may just be down) and is not
//!   given to this core.
//! - Once the provider has delivered a snapshot it is **running** for the
//!   rest of its definition's life (until it is removed, reloaded with a
//!   change or registered again), across restarts of its actor: a permission
//!   revoked while it runs makes it Degraded through the failover policy's
//!   error threshold, never suppressed, and the local member is never
//!   deregistered because of it. It is Healthy again at its next good
//!   snapshot.

/// What to do with one failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The provider is running: the failure is not an activation failure
    /// (the failover policy still sees it as an error).
    Running,
    /// Counted: `failures` in a row so far, below the threshold.
    Counted {
        /// Consecutive activation failures.
        failures: u32,
    },
    /// The threshold is reached: suppress the provider (R5.2).
    Suppress {
        /// Consecutive activation failures.
        failures: u32,
    },
}

/// One provider's activation state. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Activation {
    /// Whether a snapshot has been delivered.
    running: bool,
    /// Consecutive activation failures while activating.
    failures: u32,
}

impl Activation {
    /// A provider that has not delivered a snapshot yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot arrived: the provider is running from now on.
    pub fn on_snapshot(&mut self) {
        self.running = true;
        self.failures = 0;
    }

    /// An activation failure (see the module docs for which); `threshold`
    /// is `activation_failure_threshold`.
    pub fn on_failure(&mut self, threshold: u32) -> Verdict {
        if self.running {
            return Verdict::Running;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= threshold {
            Verdict::Suppress {
                failures: self.failures,
            }
        } else {
            Verdict::Counted {
                failures: self.failures,
            }
        }
    }

    /// Whether the provider has delivered a snapshot.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Consecutive activation failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// R5.2: `threshold` activation failures before any snapshot suppress.
    #[test]
    fn r5_2_failures_before_the_first_snapshot_suppress_at_the_threshold() {
        let mut a = Activation::new();
        for i in 1..5 {
            assert_eq!(a.on_failure(5), Verdict::Counted { failures: i });
        }
        assert_eq!(a.on_failure(5), Verdict::Suppress { failures: 5 });
    }

    /// R5.2, R4.3: after a snapshot, no number of failures suppresses.
    #[test]
    fn r5_2_failures_after_a_snapshot_never_count() {
        let mut a = Activation::new();
        a.on_failure(5);
        a.on_snapshot();
        assert!(a.is_running());
        for _ in 0..10_000 {
            assert_eq!(a.on_failure(5), Verdict::Running);
        }
        assert_eq!(a.failures(), 0);
    }

    proptest! {
        /// R5.2 law: a provider is suppressed exactly when `threshold`
        /// failures arrived before its first snapshot; once it delivered a
        /// snapshot it is never suppressed.
        #[test]
        fn r5_2_only_activation_failures_suppress(
            ops in proptest::collection::vec(any::<bool>(), 0..60),
            threshold in 1u32..8,
        ) {
            let mut a = Activation::new();
            let mut seen_snapshot = false;
            let mut before = 0u32;
            for snapshot in ops {
                if snapshot {
                    a.on_snapshot();
                    seen_snapshot = true;
                    continue;
                }
                let v = a.on_failure(threshold);
                if seen_snapshot {
                    prop_assert_eq!(v, Verdict::Running);
                } else {
                    before += 1;
                    if before >= threshold {
                        prop_assert_eq!(v, Verdict::Suppress { failures: before });
                    } else {
                        prop_assert_eq!(v, Verdict::Counted { failures: before });
                    }
                }
            }
        }
    }
}
