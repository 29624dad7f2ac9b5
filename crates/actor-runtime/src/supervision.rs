//! Supervision: what a parent does when a child fails.
//!
//! A failure is a panic in any hook or handler, or an `Err` returned by one
//! (see [`Failure`]). The child stops processing, reports the failure to its
//! parent and waits. The parent asks its [`SupervisorStrategy`] for a
//! [`Directive`]:
//!
//! | directive | effect on the failed child |
//! |---|---|
//! | [`Directive::Resume`] | keeps its state and goes on with the next message |
//! | [`Directive::Restart`] | old instance's `stopped` hook runs, its children stop, then after the backoff delay a new instance is built from the factory; the mailbox and the `ActorRef` are kept |
//! | [`Directive::Stop`] | stops for good; watchers and the parent see [`StopReason::Failed`] |
//! | [`Directive::Escalate`] | the parent fails in turn, with [`FailureCause::Escalated`], and its own parent decides |
//!
//! Restarts are counted in a fixed window ([`RestartLimit`]): the window opens at
//! the first failure, and once more than `max_restarts` failures fall inside it
//! the child is stopped with [`StopReason::RestartLimitExceeded`] and the parent
//! is told through [`Actor::on_terminated`](crate::Actor::on_terminated). The
//! n-th restart inside a window waits [`Backoff::delay`]`(n)`.
//!
//! With [`SupervisorStrategy::all_for_one`] a restart decision restarts every
//! child of the parent, and the limit counts the failures of the group.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::path::ActorPath;

/// What a supervisor decides about a failed child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Directive {
    /// Keep the child's state; it handles its next message. The message that
    /// failed is dropped. A failure in `started` cannot be resumed and is
    /// treated as `Restart`.
    Resume,
    /// Rebuild the child from its factory after the backoff delay.
    Restart,
    /// Stop the child.
    Stop,
    /// Fail the parent itself with the child's failure as the cause.
    Escalate,
}

/// Where in an actor's life a failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// In [`Actor::started`](crate::Actor::started).
    Started,
    /// In [`Actor::handle`](crate::Actor::handle), including timer messages.
    Handle,
    /// In [`Actor::on_terminated`](crate::Actor::on_terminated).
    OnTerminated,
    /// A child escalated its failure to this actor.
    Supervision,
}

/// The cause of a [`Failure`].
#[derive(Clone)]
pub enum FailureCause {
    /// A hook or handler panicked; the panic payload, if it was a string.
    Panic(Arc<str>),
    /// A hook or handler returned `Err`.
    Error(Arc<dyn std::error::Error + Send + Sync>),
    /// A child failed and this actor's strategy escalated it.
    Escalated {
        /// The child that failed first.
        child: ActorPath,
        /// The child's failure.
        cause: Arc<Failure>,
    },
}

/// An actor failure, as reported to its supervisor and carried by
/// [`StopReason::Failed`].
#[derive(Clone)]
pub struct Failure {
    /// Where it happened.
    pub stage: Stage,
    /// What happened.
    pub cause: FailureCause,
}

impl Failure {
    pub(crate) fn panic(stage: Stage, payload: Box<dyn std::any::Any + Send>) -> Self {
        let msg: Arc<str> = if let Some(s) = payload.downcast_ref::<&'static str>() {
            Arc::from(*s)
        } else if let Some(s) = payload.downcast_ref::<String>() {
            Arc::from(s.as_str())
        } else {
            Arc::from("<non-string panic payload>")
        };
        Self {
            stage,
            cause: FailureCause::Panic(msg),
        }
    }

    pub(crate) fn error(stage: Stage, err: crate::BoxError) -> Self {
        Self {
            stage,
            cause: FailureCause::Error(Arc::from(err)),
        }
    }

    /// `true` when the failure was a panic.
    pub fn is_panic(&self) -> bool {
        matches!(self.cause, FailureCause::Panic(_))
    }

    /// The returned error, when the failure was an `Err`.
    pub fn error_ref(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match &self.cause {
            FailureCause::Error(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            FailureCause::Panic(m) => write!(f, "panicked in {:?}: {m}", self.stage),
            FailureCause::Error(e) => write!(f, "error in {:?}: {e}", self.stage),
            FailureCause::Escalated { child, cause } => {
                write!(f, "child {child} escalated: {cause}")
            }
        }
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failure({self})")
    }
}

/// Why an actor stopped, as seen by watchers in [`Terminated`](crate::Terminated).
#[derive(Clone, Debug)]
pub enum StopReason {
    /// Stopped on request: `stop()`, its parent stopping, or system shutdown.
    Stopped,
    /// Its supervisor decided [`Directive::Stop`] after this failure (or it
    /// had no supervisor to ask).
    Failed(Failure),
    /// It failed more often than its supervisor's [`RestartLimit`] allows.
    RestartLimitExceeded {
        /// Failures counted in the window, the last one included.
        failures: u32,
        /// The window's length.
        within: Duration,
        /// The last failure.
        last: Failure,
    },
    /// Its task was aborted when the shutdown deadline passed; its `stopped`
    /// hook did not run.
    Aborted,
}

impl StopReason {
    /// `true` for [`StopReason::Stopped`].
    pub fn is_normal(&self) -> bool {
        matches!(self, StopReason::Stopped)
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Stopped => f.write_str("stopped"),
            StopReason::Failed(e) => write!(f, "stopped after failure: {e}"),
            StopReason::RestartLimitExceeded {
                failures,
                within,
                last,
            } => write!(
                f,
                "restart limit exceeded ({failures} failures within {within:?}); last: {last}"
            ),
            StopReason::Aborted => f.write_str("aborted at the shutdown deadline"),
        }
    }
}

/// Exponential backoff between restarts.
///
/// The delay before the n-th restart within a restart window (n counted from
/// 0) is `min * factor^n`, capped at `max`, then spread by `jitter`: a
/// fraction `j` in `[0, 1]` multiplies the delay by a random factor in
/// `[1 - j, 1 + j]` (still capped at `max`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub min: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Growth per restart; values below 1 are treated as 1.
    pub factor: f64,
    /// Random spread, clamped to `[0, 1]`.
    pub jitter: f64,
}

impl Backoff {
    /// No delay at all: restart at once.
    pub const fn none() -> Self {
        Self {
            min: Duration::ZERO,
            max: Duration::ZERO,
            factor: 1.0,
            jitter: 0.0,
        }
    }

    /// Doubling from `min` up to `max`, without jitter.
    pub const fn exponential(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            factor: 2.0,
            jitter: 0.0,
        }
    }

    /// Sets the growth factor.
    pub const fn with_factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Sets the jitter fraction.
    pub const fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before restart number `attempt` (0-based) in a window, given
    /// a uniform random number `rand01` in `[0, 1)`. Pure: the runtime passes
    /// `fastrand::f64()`, tests pass fixed values.
    pub fn delay(&self, attempt: u32, rand01: f64) -> Duration {
        let max = self.max.as_secs_f64();
        let factor = if self.factor.is_finite() && self.factor > 1.0 {
            self.factor
        } else {
            1.0
        };
        let exp = i32::try_from(attempt).unwrap_or(i32::MAX);
        let base = (self.min.as_secs_f64() * factor.powi(exp)).min(max);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let r = rand01.clamp(0.0, 1.0);
        let spread = base * (1.0 - jitter + 2.0 * jitter * r);
        let secs = spread.clamp(0.0, max);
        Duration::try_from_secs_f64(secs).unwrap_or(self.max)
    }
}

impl Default for Backoff {
    /// 10 ms doubling to 10 s with 20 % jitter.
    fn default() -> Self {
        Self::exponential(Duration::from_millis(10), Duration::from_secs(10)).with_jitter(0.2)
    }
}

/// At most `max_restarts` restarts within `within`; one more failure inside
/// the window stops the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartLimit {
    /// Restarts allowed inside one window.
    pub max_restarts: u32,
    /// The window's length, from its first failure.
    pub within: Duration,
}

impl RestartLimit {
    /// No limit (the window is still used to grow the backoff).
    pub const fn unlimited(within: Duration) -> Self {
        Self {
            max_restarts: u32::MAX,
            within,
        }
    }
}

impl Default for RestartLimit {
    /// 10 restarts within 60 s.
    fn default() -> Self {
        Self {
            max_restarts: 10,
            within: Duration::from_secs(60),
        }
    }
}

/// Whether a strategy's decision applies to the failed child or to all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only the failed child is resumed, restarted or stopped.
    OneForOne,
    /// A restart or stop applies to every child of the parent.
    AllForOne,
}

type Decider = Arc<dyn Fn(&Failure) -> Directive + Send + Sync>;

/// How a parent treats its failing children. Returned by
/// [`Actor::supervisor_strategy`](crate::Actor::supervisor_strategy).
///
/// ```
/// use std::time::Duration;
/// use actor_runtime::{Backoff, Directive, SupervisorStrategy};
///
/// let strategy = SupervisorStrategy::one_for_one()
///     .with_decider(|failure| if failure.is_panic() { Directive::Restart } else { Directive::Resume })
///     .with_backoff(Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)))
///     .with_limit(5, Duration::from_secs(30));
/// # let _ = strategy;
/// ```
#[derive(Clone)]
pub struct SupervisorStrategy {
    scope: Scope,
    decider: Decider,
    backoff: Backoff,
    limit: RestartLimit,
}

impl SupervisorStrategy {
    /// One-for-one, restart on every failure, default backoff and limit.
    pub fn one_for_one() -> Self {
        Self {
            scope: Scope::OneForOne,
            decider: Arc::new(|_| Directive::Restart),
            backoff: Backoff::default(),
            limit: RestartLimit::default(),
        }
    }

    /// All-for-one, restart on every failure, default backoff and limit.
    pub fn all_for_one() -> Self {
        Self {
            scope: Scope::AllForOne,
            ..Self::one_for_one()
        }
    }

    /// One-for-one that stops any failing child.
    pub fn stopping() -> Self {
        Self::one_for_one().with_decider(|_| Directive::Stop)
    }

    /// Sets the function that maps a failure to a directive.
    pub fn with_decider(
        mut self,
        decider: impl Fn(&Failure) -> Directive + Send + Sync + 'static,
    ) -> Self {
        self.decider = Arc::new(decider);
        self
    }

    /// Sets the backoff between restarts.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the restart limit.
    pub fn with_limit(mut self, max_restarts: u32, within: Duration) -> Self {
        self.limit = RestartLimit {
            max_restarts,
            within,
        };
        self
    }

    /// Scope of decisions.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The backoff.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The restart limit.
    pub fn limit(&self) -> RestartLimit {
        self.limit
    }

    /// Decides what to do about `failure`.
    pub fn decide(&self, failure: &Failure) -> Directive {
        (self.decider)(failure)
    }
}

impl Default for SupervisorStrategy {
    fn default() -> Self {
        Self::one_for_one()
    }
}

impl fmt::Debug for SupervisorStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorStrategy")
            .field("scope", &self.scope)
            .field("backoff", &self.backoff)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// What [`RestartWindow::on_failure`] allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RestartDecision {
    /// Restart; `attempt` is the 0-based count of restarts in this window.
    Restart { attempt: u32 },
    /// The limit is exceeded; `failures` were counted in the window.
    LimitExceeded { failures: u32 },
}

/// Pure restart bookkeeping for one child (or one all-for-one group): a fixed
/// window that opens at the first failure after the previous one closed.
#[derive(Clone, Debug, Default)]
pub(crate) struct RestartWindow {
    opened: Option<Instant>,
    failures: u32,
}

impl RestartWindow {
    pub(crate) fn on_failure(&mut self, now: Instant, limit: RestartLimit) -> RestartDecision {
        match self.opened {
            Some(start) if now.saturating_duration_since(start) <= limit.within => {}
            _ => {
                self.opened = Some(now);
                self.failures = 0;
            }
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures > limit.max_restarts {
            RestartDecision::LimitExceeded {
                failures: self.failures,
            }
        } else {
            RestartDecision::Restart {
                attempt: self.failures - 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(100));
        let d: Vec<_> = (0..6).map(|n| b.delay(n, 0.5).as_millis()).collect();
        assert_eq!(d, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(Backoff::none().delay(7, 0.9), Duration::ZERO);
        // Regression: a cap of Duration::MAX used to panic in from_secs_f64.
        let huge = Backoff::exponential(Duration::from_secs(1), Duration::MAX);
        assert!(huge.delay(200, 0.5) > Duration::from_secs(1));
    }

    #[test]
    fn backoff_jitter_spreads_within_bounds() {
        let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10))
            .with_jitter(0.5);
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(b.delay(0, 0.5), Duration::from_millis(100));
        assert_eq!(b.delay(0, 1.0), Duration::from_millis(150));
    }

    #[test]
    fn restart_window_allows_max_then_stops_and_reopens_later() {
        let limit = RestartLimit {
            max_restarts: 3,
            within: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut w = RestartWindow::default();
        for n in 0..3 {
            assert_eq!(
                w.on_failure(t0 + Duration::from_secs(n), limit),
                RestartDecision::Restart {
                    attempt: u32::try_from(n).unwrap_or(0)
                }
            );
        }
        assert_eq!(
            w.on_failure(t0 + Duration::from_secs(4), limit),
            RestartDecision::LimitExceeded { failures: 4 }
        );
        // A new window after the old one closed.
        let mut w = RestartWindow::default();
        w.on_failure(t0, limit);
        assert_eq!(
            w.on_failure(t0 + Duration::from_secs(11), limit),
            RestartDecision::Restart { attempt: 0 }
        );
    }

    proptest! {
        /// A1 (at most N restarts within a window): whatever the failure
        /// times, no window ever grants more than `max` restarts.
        #[test]
        fn never_more_than_max_restarts_in_a_window(
            gaps in proptest::collection::vec(0u64..5_000, 1..60),
            max in 0u32..8,
            within_ms in 1u64..10_000,
        ) {
            let limit = RestartLimit { max_restarts: max, within: Duration::from_millis(within_ms) };
            let t0 = Instant::now();
            let mut now = t0;
            let mut w = RestartWindow::default();
            let mut granted: Vec<Instant> = Vec::new();
            for g in gaps {
                now += Duration::from_millis(g);
                if let RestartDecision::Restart { .. } = w.on_failure(now, limit) {
                    granted.push(now);
                }
            }
            // In any window opened at a granted restart, count grants.
            for (i, start) in granted.iter().enumerate() {
                let in_window = granted[i..]
                    .iter()
                    .take_while(|t| t.duration_since(*start) <= limit.within)
                    .count();
                // Fixed windows: a sliding window can see at most 2*max.
                prop_assert!(in_window as u64 <= 2 * u64::from(max));
            }
        }

        #[test]
        fn backoff_never_exceeds_max(attempt in 0u32..200, r in 0.0f64..1.0, jitter in 0.0f64..1.0) {
            let b = Backoff::exponential(Duration::from_millis(3), Duration::from_secs(2)).with_jitter(jitter);
            prop_assert!(b.delay(attempt, r) <= Duration::from_secs(2));
        }
    }
}
