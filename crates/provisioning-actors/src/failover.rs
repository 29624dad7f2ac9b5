//! `FailoverPolicy`: which provider is active, as a pure function of health
//! inputs and the time (A4, R2.5, R5.3). No clock reads, no IO: the
//! supervisor feeds it [`Input`]s with `now` and schedules a
//! [`tick`](FailoverPolicy::tick) at [`Decision::next_deadline`].
//!
//! # Health of one provider
//!
//! ```text
//!              Snapshot (lag ok)                Error x threshold / silence / lag
//!  Starting ───────────────────────► Healthy ─────────────────────────────────► Degraded
//!     │  ▲                              ▲                                          │
//!     │  │ Started (actor (re)started)  └────────────── Snapshot (lag ok) ─────────┘
//!     │  │
//!     ▼  │   StreamEnded / Crashed (actor restarting)
//!    Down ◄──────────────── any state but Failed/Disabled
//!     │
//!     ▼  Failed (restart limit exceeded, activation suppressed)
//!   Failed          Disabled: configured off or missing a capability (R1.3)
//! ```
//!
//! - `Starting` also turns `Degraded` if no snapshot arrives within the
//!   silence timeout.
//! - Errors count while consecutive; a snapshot resets the count.
//!
//! # The active provider
//!
//! - **Failover** (immediate): when the active provider is not `Healthy`, the
//!   best healthy provider (lowest priority value, ties by id) becomes active
//!   at once. Every enabled provider watches all the time (hot standby), so
//!   this needs no backend round trip.
//! - **Fail-back** (with hysteresis): a healthy provider better than the
//!   healthy active one takes over only once it has been `Healthy`
//!   continuously for the stability window. So the active provider never
//!   changes to a better one faster than the window, and after the window the
//!   best healthy provider is active.
//! - **No healthy provider**: a `Degraded` one stays (or becomes) active, its
//!   last snapshot kept, and the availability is `Degraded` (R4.3). With none
//!   `Healthy` or `Degraded` the availability is `Unavailable` and placement
//!   must stop (R5.3).

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_core::events::ChangeReason;
use cluster_core::{ProviderHealth, ProviderId, ProvisioningStatus};
use tokio::time::Instant;

/// Tunables; the defaults come from the mission's starting points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailoverConfig {
    /// No snapshot for this long makes a provider `Degraded` (default 15 s).
    pub silence_timeout: Duration,
    /// This many consecutive errors make a provider `Degraded` (default 3).
    pub error_threshold: u32,
    /// A better provider must be healthy this long before fail-back
    /// (default 10 s).
    pub stability_window: Duration,
    /// A snapshot observed longer ago than this counts as an error-free but
    /// lagging update and makes the provider `Degraded` (default 30 s).
    pub max_snapshot_lag: Duration,
    /// At start, how long a healthy provider waits for a better one that is
    /// still starting before it becomes the first active provider, so a node
    /// does not start on its standby and fail back a window later (default
    /// 2 s).
    pub startup_grace: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self {
            silence_timeout: Duration::from_secs(15),
            error_threshold: 3,
            stability_window: Duration::from_secs(10),
            max_snapshot_lag: Duration::from_secs(30),
            startup_grace: Duration::from_secs(2),
        }
    }
}

/// Whether the cluster can be served, from the providers' health alone (the
/// supervisor adds Empty and Draining).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Availability {
    /// No provider has become healthy yet, and none has failed.
    Starting,
    /// The active provider is healthy.
    Active,
    /// The active provider is degraded; its last snapshot is served.
    Degraded,
    /// No provider is healthy or degraded.
    Unavailable,
}

impl Availability {
    /// The published status, given the status of the merged member set
    /// (`Active` or `Empty`): an empty set stays `Empty` (R2.4) whether the
    /// active provider is healthy or degraded; otherwise the providers'
    /// health decides (R4.3, R5.3).
    pub fn status(self, merged: ProvisioningStatus) -> ProvisioningStatus {
        match self {
            Self::Starting => ProvisioningStatus::Starting,
            Self::Unavailable => ProvisioningStatus::Unavailable,
            Self::Degraded if merged == ProvisioningStatus::Empty => ProvisioningStatus::Empty,
            Self::Degraded => ProvisioningStatus::Degraded,
            Self::Active => merged,
        }
    }
}

/// What happened to a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Its actor started (or restarted) and is watching.
    Started,
    /// A snapshot arrived; `lag` is how old it was when observed.
    Snapshot {
        /// Age of the snapshot.
        lag: Duration,
    },
    /// Its stream yielded an error (stable code).
    Error(&'static str),
    /// Its stream ended.
    StreamEnded,
    /// Its actor failed and is being restarted.
    Crashed,
    /// It stopped for good.
    Failed,
}

/// A provider's health changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthChange {
    /// The provider.
    pub provider: ProviderId,
    /// Before.
    pub previous: ProviderHealth,
    /// Now.
    pub health: ProviderHealth,
}

/// The active provider changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveChange {
    /// Before.
    pub from: Option<ProviderId>,
    /// Now.
    pub to: Option<ProviderId>,
    /// Why.
    pub reason: ChangeReason,
}

/// The result of one step.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Decision {
    /// Health transitions, in the order they happened.
    pub health: Vec<HealthChange>,
    /// A change of the active provider, if any.
    pub active: Option<ActiveChange>,
    /// When to call [`FailoverPolicy::tick`] next (silence or fail-back).
    pub next_deadline: Option<Instant>,
}

#[derive(Clone, Debug)]
struct Tracked {
    priority: u32,
    health: ProviderHealth,
    errors: u32,
    last_snapshot: Option<Instant>,
    watching_since: Option<Instant>,
    healthy_since: Option<Instant>,
    last_error: Option<&'static str>,
    /// Why it left Healthy last (for the change reason).
    cause: ChangeReason,
}

/// Per-provider view for queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderView {
    /// The provider.
    pub id: ProviderId,
    /// Its priority.
    pub priority: u32,
    /// Its health.
    pub health: ProviderHealth,
    /// When its last snapshot arrived.
    pub last_snapshot: Option<Instant>,
    /// Code of its last error.
    pub last_error: Option<&'static str>,
    /// Consecutive errors.
    pub consecutive_errors: u32,
}

/// The failover decision core. See the module docs for the rules.
#[derive(Clone, Debug)]
pub struct FailoverPolicy {
    config: FailoverConfig,
    providers: BTreeMap<ProviderId, Tracked>,
    active: Option<ProviderId>,
    /// When the first provider was added (start of the startup grace).
    started: Option<Instant>,
    /// Whether any provider has been active yet.
    ever_active: bool,
}

impl FailoverPolicy {
    /// An empty policy.
    pub fn new(config: FailoverConfig) -> Self {
        Self {
            config,
            providers: BTreeMap::new(),
            active: None,
            started: None,
            ever_active: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> FailoverConfig {
        self.config
    }

    /// Adds a provider (`Starting`, or `Disabled` when `enabled` is false).
    pub fn add(&mut self, id: ProviderId, priority: u32, enabled: bool, now: Instant) -> Decision {
        self.started.get_or_insert(now);
        self.providers.insert(
            id,
            Tracked {
                priority,
                health: if enabled {
                    ProviderHealth::Starting
                } else {
                    ProviderHealth::Disabled
                },
                errors: 0,
                last_snapshot: None,
                watching_since: enabled.then_some(now),
                healthy_since: None,
                last_error: None,
                cause: ChangeReason::Initial,
            },
        );
        self.decide(now, Vec::new())
    }

    /// Removes a provider; if it was active, fails over.
    pub fn remove(&mut self, id: &ProviderId, now: Instant) -> Decision {
        if self.providers.remove(id).is_some() && self.active.as_ref() == Some(id) {
            let d = self.select(now, ChangeReason::Removed, true);
            return Decision {
                health: Vec::new(),
                active: d,
                next_deadline: self.next_deadline(now),
            };
        }
        self.decide(now, Vec::new())
    }

    /// Feeds one input for `id` at `now`. Unknown providers are ignored.
    pub fn on_input(&mut self, id: &ProviderId, input: Input, now: Instant) -> Decision {
        let cfg = self.config;
        let Some(p) = self.providers.get_mut(id) else {
            return Decision::default();
        };
        if matches!(p.health, ProviderHealth::Disabled | ProviderHealth::Failed)
            && input != Input::Started
        {
            return Decision::default();
        }
        let before = p.health;
        match input {
            Input::Started => {
                if p.health != ProviderHealth::Disabled {
                    p.health = ProviderHealth::Starting;
                    p.errors = 0;
                    p.watching_since = Some(now);
                    p.healthy_since = None;
                }
            }
            Input::Snapshot { lag } => {
                p.errors = 0;
                p.last_snapshot = Some(now);
                if lag > cfg.max_snapshot_lag {
                    p.health = ProviderHealth::Degraded;
                    p.last_error = Some("provider.lag");
                    p.cause = ChangeReason::Silence;
                } else {
                    p.health = ProviderHealth::Healthy;
                }
            }
            Input::Error(code) => {
                p.errors = p.errors.saturating_add(1);
                p.last_error = Some(code);
                if p.errors >= cfg.error_threshold {
                    p.health = ProviderHealth::Degraded;
                    p.cause = ChangeReason::Errors;
                }
            }
            Input::StreamEnded => {
                p.health = ProviderHealth::Down;
                p.cause = ChangeReason::StreamEnded;
            }
            Input::Crashed => {
                p.health = ProviderHealth::Down;
                p.cause = ChangeReason::Crashed;
            }
            Input::Failed => {
                p.health = ProviderHealth::Failed;
                p.cause = ChangeReason::Crashed;
            }
        }
        let mut changes = Vec::new();
        if p.health != before {
            if p.health == ProviderHealth::Healthy {
                p.healthy_since = Some(now);
            } else {
                p.healthy_since = None;
            }
            changes.push(HealthChange {
                provider: id.clone(),
                previous: before,
                health: p.health,
            });
        }
        self.decide(now, changes)
    }

    /// Applies the passage of time: silence timeouts and fail-back.
    pub fn tick(&mut self, now: Instant) -> Decision {
        let cfg = self.config;
        let mut changes = Vec::new();
        for (id, p) in &mut self.providers {
            if !matches!(p.health, ProviderHealth::Healthy | ProviderHealth::Starting) {
                continue;
            }
            let since = p.last_snapshot.or(p.watching_since);
            if since.is_some_and(|t| now.saturating_duration_since(t) >= cfg.silence_timeout) {
                let before = p.health;
                p.health = ProviderHealth::Degraded;
                p.healthy_since = None;
                p.last_error = Some("provider.silence");
                p.cause = ChangeReason::Silence;
                changes.push(HealthChange {
                    provider: id.clone(),
                    previous: before,
                    health: p.health,
                });
            }
        }
        self.decide(now, changes)
    }

    fn decide(&mut self, now: Instant, health: Vec<HealthChange>) -> Decision {
        let reason = self
            .active
            .as_ref()
            .and_then(|a| self.providers.get(a))
            .map_or(ChangeReason::Initial, |p| p.cause);
        let active = self.select(now, reason, false);
        Decision {
            health,
            active,
            next_deadline: self.next_deadline(now),
        }
    }

    fn rank(&self, id: &ProviderId) -> (u32, ProviderId) {
        let prio = self.providers.get(id).map_or(u32::MAX, |p| p.priority);
        (prio, id.clone())
    }

    fn best_with(&self, health: ProviderHealth) -> Option<ProviderId> {
        self.providers
            .iter()
            .filter(|(_, p)| p.health == health)
            .min_by_key(|(id, p)| (p.priority, (*id).clone()))
            .map(|(id, _)| id.clone())
    }

    /// Chooses the active provider. `forced` when the active one vanished.
    fn select(&mut self, now: Instant, reason: ChangeReason, forced: bool) -> Option<ActiveChange> {
        let current = if forced { None } else { self.active.clone() };
        let current_health = current
            .as_ref()
            .and_then(|c| self.providers.get(c))
            .map(|p| p.health);
        let best_healthy = self.best_with(ProviderHealth::Healthy);
        let next = match (current.clone(), current_health) {
            (Some(cur), Some(ProviderHealth::Healthy)) => {
                // Fail-back only after the better one was stable long enough.
                match &best_healthy {
                    Some(b) if self.rank(b) < self.rank(&cur) => {
                        let since = self.providers.get(b).and_then(|p| p.healthy_since);
                        if since.is_some_and(|s| {
                            now.saturating_duration_since(s) >= self.config.stability_window
                        }) {
                            Some(b.clone())
                        } else {
                            Some(cur)
                        }
                    }
                    _ => Some(cur),
                }
            }
            _ => match best_healthy {
                Some(b) if self.in_startup_grace(&b, now) => None,
                Some(b) => Some(b),
                // Nobody healthy: keep a degraded active, or take the best
                // degraded one.
                None => match (current, current_health) {
                    (Some(cur), Some(ProviderHealth::Degraded)) => Some(cur),
                    _ => self.best_with(ProviderHealth::Degraded),
                },
            },
        };
        let prev = if forced {
            // The removed provider was active.
            self.active.take()
        } else {
            self.active.clone()
        };
        if next == prev && !forced {
            return None;
        }
        let why = match (&prev, &next) {
            (None, _) if !forced => ChangeReason::Initial,
            (Some(p), Some(n))
                if current_health == Some(ProviderHealth::Healthy)
                    && self.rank(n) < self.rank(p) =>
            {
                ChangeReason::FailBack
            }
            _ if forced => ChangeReason::Removed,
            _ => reason,
        };
        self.active = next.clone();
        if prev == next {
            return None;
        }
        if next.is_some() {
            self.ever_active = true;
        }
        Some(ActiveChange {
            from: prev,
            to: next,
            reason: why,
        })
    }

    /// Before any provider was active: `candidate` must wait while a better
    /// provider is still starting and the grace has not passed.
    fn in_startup_grace(&self, candidate: &ProviderId, now: Instant) -> bool {
        if self.ever_active {
            return false;
        }
        let Some(started) = self.started else {
            return false;
        };
        if now.saturating_duration_since(started) >= self.config.startup_grace {
            return false;
        }
        let rank = self.rank(candidate);
        self.providers
            .iter()
            .any(|(id, p)| p.health == ProviderHealth::Starting && (p.priority, id.clone()) < rank)
    }

    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut deadline: Option<Instant> = None;
        let mut consider = |t: Instant| {
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        };
        for p in self.providers.values() {
            if matches!(p.health, ProviderHealth::Healthy | ProviderHealth::Starting)
                && let Some(since) = p.last_snapshot.or(p.watching_since)
                && let Some(t) = since.checked_add(self.config.silence_timeout)
            {
                consider(t);
            }
        }
        // The end of the startup grace, while it is ahead (once passed it
        // is no deadline: a tick at a past instant would be armed again at
        // once, forever, while no provider ever became active).
        if !self.ever_active
            && let Some(started) = self.started
            && let Some(t) = started.checked_add(self.config.startup_grace)
            && t > now
        {
            consider(t);
        }
        // A pending fail-back.
        if let Some(cur) = &self.active {
            let cur_rank = self.rank(cur);
            for (id, p) in &self.providers {
                if p.health == ProviderHealth::Healthy
                    && (p.priority, id.clone()) < cur_rank
                    && let Some(s) = p.healthy_since
                    && let Some(t) = s.checked_add(self.config.stability_window)
                {
                    consider(t);
                }
            }
        }
        deadline
    }

    /// The active provider.
    pub fn active(&self) -> Option<&ProviderId> {
        self.active.as_ref()
    }

    /// The availability implied by the active provider's health.
    pub fn availability(&self) -> Availability {
        let health = self
            .active
            .as_ref()
            .and_then(|a| self.providers.get(a))
            .map(|p| p.health);
        match health {
            Some(ProviderHealth::Healthy) => Availability::Active,
            Some(ProviderHealth::Degraded) => Availability::Degraded,
            _ => {
                // Nobody to serve from. Still starting while no provider has
                // gone down yet; otherwise unavailable (R5.3).
                let any_down = self
                    .providers
                    .values()
                    .any(|p| matches!(p.health, ProviderHealth::Down | ProviderHealth::Failed));
                let any_starting = self
                    .providers
                    .values()
                    .any(|p| p.health == ProviderHealth::Starting);
                if any_starting && !any_down {
                    Availability::Starting
                } else {
                    Availability::Unavailable
                }
            }
        }
    }

    /// Health of one provider.
    pub fn health(&self, id: &ProviderId) -> Option<ProviderHealth> {
        self.providers.get(id).map(|p| p.health)
    }

    /// Every provider, best priority first.
    pub fn views(&self) -> Vec<ProviderView> {
        let mut v: Vec<ProviderView> = self
            .providers
            .iter()
            .map(|(id, p)| ProviderView {
                id: id.clone(),
                priority: p.priority,
                health: p.health,
                last_snapshot: p.last_snapshot,
                last_error: p.last_error,
                consecutive_errors: p.errors,
            })
            .collect();
        v.sort_by_key(|p| (p.priority, p.id.clone()));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> ProviderId {
        ProviderId::new(s).unwrap()
    }

    const OK: Input = Input::Snapshot {
        lag: Duration::ZERO,
    };

    fn policy(now: Instant) -> FailoverPolicy {
        let mut p = FailoverPolicy::new(FailoverConfig::default());
        p.add(id("primary"), 0, true, now);
        p.add(id("standby"), 1, true, now);
        p
    }

    /// R2.5: the highest-priority healthy provider is chosen.
    #[test]
    fn r2_5_best_healthy_provider_becomes_active() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        assert_eq!(p.availability(), Availability::Starting);
        let d = p.on_input(&id("standby"), OK, t0);
        assert!(
            d.active.is_none(),
            "startup grace: primary is still starting"
        );
        let d = p.tick(t0 + Duration::from_secs(2));
        assert_eq!(
            d.active.unwrap().to,
            Some(id("standby")),
            "after the grace, the healthy one"
        );
        let t1 = t0 + Duration::from_secs(3);
        let d = p.on_input(&id("primary"), OK, t1);
        assert!(
            d.active.is_none(),
            "a better one waits for the stability window"
        );
        let d = p.tick(t1 + Duration::from_secs(10));
        let change = d.active.unwrap();
        assert_eq!(change.to, Some(id("primary")));
        assert_eq!(change.reason, ChangeReason::FailBack);
    }

    /// At start, a better provider that reports within the grace is the
    /// first active one: no start on the standby and fail-back later.
    #[test]
    fn startup_grace_prefers_the_best_provider_reporting_soon() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        assert!(p.on_input(&id("standby"), OK, t0).active.is_none());
        let d = p.on_input(&id("primary"), OK, t0 + Duration::from_millis(300));
        let c = d.active.unwrap();
        assert_eq!(
            (c.to, c.reason),
            (Some(id("primary")), ChangeReason::Initial)
        );
    }

    /// A4/R2.5: when the active provider's stream ends, the standby takes
    /// over at once, with the reason.
    #[test]
    fn a4_stream_end_fails_over_immediately() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        p.on_input(&id("primary"), OK, t0);
        p.on_input(&id("standby"), OK, t0);
        assert_eq!(p.active(), Some(&id("primary")));
        let d = p.on_input(&id("primary"), Input::StreamEnded, t0);
        let c = d.active.unwrap();
        assert_eq!(
            (c.from, c.to, c.reason),
            (
                Some(id("primary")),
                Some(id("standby")),
                ChangeReason::StreamEnded
            )
        );
        assert_eq!(d.health[0].health, ProviderHealth::Down);
        assert_eq!(p.availability(), Availability::Active);
    }

    /// A4: errors past the threshold and silence past the timeout degrade a
    /// provider and fail over.
    #[test]
    fn a4_errors_and_silence_degrade_and_fail_over() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        p.on_input(&id("primary"), OK, t0);
        p.on_input(&id("standby"), OK, t0);
        for i in 0..2 {
            let d = p.on_input(&id("primary"), Input::Error("provider.stream"), t0);
            assert!(d.active.is_none(), "error {i} is below the threshold");
        }
        let d = p.on_input(&id("primary"), Input::Error("provider.stream"), t0);
        assert_eq!(d.active.unwrap().reason, ChangeReason::Errors);
        // Standby goes silent too: nobody healthy, degraded standby stays.
        let d = p.tick(t0 + Duration::from_secs(15));
        assert!(
            d.health
                .iter()
                .any(|h| h.provider == id("standby") && h.health == ProviderHealth::Degraded)
        );
        assert_eq!(p.availability(), Availability::Degraded);
    }

    /// R5.3: every provider down → Unavailable, and back when one recovers.
    #[test]
    fn r5_3_all_down_is_unavailable_until_one_recovers() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        p.on_input(&id("primary"), OK, t0);
        p.on_input(&id("primary"), Input::StreamEnded, t0);
        p.on_input(&id("standby"), Input::Crashed, t0);
        assert_eq!(p.active(), None);
        assert_eq!(p.availability(), Availability::Unavailable);
        p.on_input(&id("standby"), Input::Started, t0);
        let d = p.on_input(&id("standby"), OK, t0);
        assert_eq!(d.active.unwrap().to, Some(id("standby")));
        assert_eq!(p.availability(), Availability::Active);
    }

    /// A lagging snapshot degrades; disabled and failed providers ignore input.
    #[test]
    fn lag_degrades_and_disabled_never_activates() {
        let t0 = Instant::now();
        let mut p = FailoverPolicy::new(FailoverConfig::default());
        p.add(id("off"), 0, false, t0);
        p.add(id("on"), 1, true, t0);
        p.on_input(&id("off"), OK, t0);
        p.on_input(
            &id("on"),
            Input::Snapshot {
                lag: Duration::from_secs(60),
            },
            t0,
        );
        assert_eq!(p.health(&id("off")), Some(ProviderHealth::Disabled));
        assert_eq!(p.health(&id("on")), Some(ProviderHealth::Degraded));
        assert_eq!(p.active(), Some(&id("on")));
        p.on_input(&id("on"), Input::Failed, t0);
        p.on_input(&id("on"), OK, t0);
        assert_eq!(p.health(&id("on")), Some(ProviderHealth::Failed));
        assert_eq!(p.availability(), Availability::Unavailable);
    }

    /// R2.4, R4.3, R5.3: how availability and the merged set make the
    /// published status.
    #[test]
    fn published_status_combines_availability_and_merge() {
        use ProvisioningStatus::{Active, Degraded, Empty, Starting, Unavailable};
        assert_eq!(Availability::Active.status(Active), Active);
        assert_eq!(Availability::Active.status(Empty), Empty);
        assert_eq!(Availability::Degraded.status(Active), Degraded);
        assert_eq!(Availability::Degraded.status(Empty), Empty);
        assert_eq!(Availability::Unavailable.status(Active), Unavailable);
        assert_eq!(Availability::Starting.status(Active), Starting);
    }

    /// Removing the active provider fails over with reason Removed.
    #[test]
    fn removing_active_fails_over() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        p.on_input(&id("primary"), OK, t0);
        p.on_input(&id("standby"), OK, t0);
        let d = p.remove(&id("primary"), t0);
        let c = d.active.unwrap();
        assert_eq!(
            (c.to, c.reason),
            (Some(id("standby")), ChangeReason::Removed)
        );
    }

    /// The next deadline is the earliest silence or fail-back instant.
    #[test]
    fn next_deadline_covers_silence_and_fail_back() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        let d = p.on_input(&id("standby"), OK, t0);
        assert_eq!(
            d.next_deadline,
            Some(t0 + Duration::from_secs(2)),
            "end of the startup grace"
        );
        p.tick(t0 + Duration::from_secs(2));
        let d = p.on_input(&id("primary"), OK, t0 + Duration::from_secs(3));
        assert_eq!(
            d.next_deadline,
            Some(t0 + Duration::from_secs(13)),
            "fail-back"
        );
    }

    /// Regression (issue 19): with no provider ever active, the end of the
    /// startup grace is a deadline only while it is ahead; a past one made
    /// the supervisor tick at once, forever (a busy loop).
    #[test]
    fn a_passed_startup_grace_is_no_deadline() {
        let t0 = Instant::now();
        let mut p = FailoverPolicy::new(FailoverConfig::default());
        let d = p.add(id("only"), 0, true, t0);
        assert_eq!(d.next_deadline, Some(t0 + Duration::from_secs(2)));
        let d = p.on_input(&id("only"), Input::Failed, t0 + Duration::from_secs(1));
        assert_eq!(d.next_deadline, Some(t0 + Duration::from_secs(2)));
        let later = t0 + Duration::from_secs(3);
        assert_eq!(p.tick(later).next_deadline, None);
        assert_eq!(p.availability(), Availability::Unavailable);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Snap(u8),
        Err(u8),
        End(u8),
        Start(u8),
        Wait(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..3).prop_map(Op::Snap),
            (0u8..3).prop_map(Op::Err),
            (0u8..3).prop_map(Op::End),
            (0u8..3).prop_map(Op::Start),
            (0u16..20_000).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// A4 laws, over any sequence of inputs and waits:
        /// 1. a fail-back to P happens only if P was healthy for the whole
        ///    stability window before it (never flaps faster than the window);
        /// 2. if any provider is healthy, the active one is healthy;
        /// 3. once the best healthy provider has been healthy for the window
        ///    (and a tick ran), it is active.
        #[test]
        fn a4_failover_laws(ops in proptest::collection::vec(op(), 1..80)) {
            let names = ["a", "b", "c"];
            let t0 = Instant::now();
            let mut now = t0;
            let cfg = FailoverConfig::default();
            let mut p = FailoverPolicy::new(cfg);
            for (i, n) in names.iter().enumerate() {
                p.add(id(n), i as u32, true, now);
            }
            let mut healthy_since: BTreeMap<ProviderId, Instant> = BTreeMap::new();
            for o in ops {
                let d = match o {
                    Op::Snap(i) => p.on_input(&id(names[i as usize]), OK, now),
                    Op::Err(i) => p.on_input(&id(names[i as usize]), Input::Error("x"), now),
                    Op::End(i) => p.on_input(&id(names[i as usize]), Input::StreamEnded, now),
                    Op::Start(i) => p.on_input(&id(names[i as usize]), Input::Started, now),
                    Op::Wait(ms) => { now += Duration::from_millis(u64::from(ms)); p.tick(now) }
                };
                for v in p.views() {
                    if v.health == ProviderHealth::Healthy {
                        healthy_since.entry(v.id.clone()).or_insert(now);
                    } else {
                        healthy_since.remove(&v.id);
                    }
                }
                if let Some(c) = &d.active && c.reason == ChangeReason::FailBack {
                    let to = c.to.clone().unwrap();
                    let since = healthy_since.get(&to).copied().unwrap();
                    prop_assert!(now.duration_since(since) >= cfg.stability_window,
                        "fail-back to {} after {:?}", to, now.duration_since(since));
                }
                let any_healthy = p.views().iter().any(|v| v.health == ProviderHealth::Healthy);
                if any_healthy {
                    match p.active().cloned() {
                        Some(a) => prop_assert_eq!(p.health(&a), Some(ProviderHealth::Healthy)),
                        // Only while a better provider may still report.
                        None => prop_assert!(now.duration_since(t0) < cfg.startup_grace),
                    }
                }
                let best = p.views().into_iter().find(|v| v.health == ProviderHealth::Healthy);
                if let (Some(b), Op::Wait(_)) = (best, &o) {
                    let since = healthy_since.get(&b.id).copied().unwrap();
                    if now.duration_since(since) >= cfg.stability_window {
                        prop_assert_eq!(p.active(), Some(&b.id));
                    }
                }
            }
        }
    }
}
