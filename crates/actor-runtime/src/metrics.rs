//! Metric names, through the [`metrics`] facade. Install any recorder
//! (Prometheus exporter, `metrics-util`'s debugging recorder...) to collect
//! them; without one they cost a branch. `docs/metrics.md` lists them.
//!
//! Per-actor metrics are labelled by `actor_type` (the Rust type name), not by
//! path, so that the number of series stays bounded however many actors run.

use metrics::{Counter, Histogram, counter, histogram};

/// Counter: messages handled (timer messages included), by `actor_type`.
pub const MESSAGES_PROCESSED: &str = "actor_messages_processed_total";
/// Counter: failures (panics and `Err`s), by `actor_type` and `kind` (`panic` | `error`).
pub const FAILURES: &str = "actor_failures_total";
/// Counter: restarts, by `actor_type`.
pub const RESTARTS: &str = "actor_restarts_total";
/// Histogram: user-mailbox depth, sampled every 128 messages, by `actor_type`.
pub const MAILBOX_DEPTH: &str = "actor_mailbox_depth";
/// Counter: user messages dropped because their actor stopped, by `actor_type`.
pub const DEAD_LETTERS: &str = "actor_dead_letters_total";
/// Counter: actors spawned, by `actor_type`.
pub const SPAWNED: &str = "actor_spawned_total";
/// Counter: actors terminated, by `actor_type` and `reason`
/// (`stopped` | `failed` | `restart_limit` | `aborted`).
pub const TERMINATED: &str = "actor_terminated_total";
/// Counter: events published, by `event` (type name).
pub const EVENTS_PUBLISHED: &str = "event_stream_published_total";
/// Counter: event deliveries dropped because a subscriber's bounded mailbox
/// was full, by `event`. Always 0 for subscribers with unbounded mailboxes.
pub const EVENTS_DROPPED: &str = "event_stream_dropped_total";

pub(crate) struct ActorMetrics {
    pub(crate) actor_type: &'static str,
    pub(crate) processed: Counter,
    pub(crate) depth: Histogram,
}

impl ActorMetrics {
    pub(crate) fn new(actor_type: &'static str) -> Self {
        counter!(SPAWNED, "actor_type" => actor_type).increment(1);
        Self {
            actor_type,
            processed: counter!(MESSAGES_PROCESSED, "actor_type" => actor_type),
            depth: histogram!(MAILBOX_DEPTH, "actor_type" => actor_type),
        }
    }

    pub(crate) fn failure(&self, panic: bool) {
        let kind = if panic { "panic" } else { "error" };
        counter!(FAILURES, "actor_type" => self.actor_type, "kind" => kind).increment(1);
    }

    pub(crate) fn restart(&self) {
        counter!(RESTARTS, "actor_type" => self.actor_type).increment(1);
    }

    pub(crate) fn dead_letters(&self, n: usize) {
        if n > 0 {
            counter!(DEAD_LETTERS, "actor_type" => self.actor_type).increment(n as u64);
        }
    }
}

pub(crate) fn terminated(actor_type: &'static str, reason: &crate::StopReason) {
    {
        let r = match reason {
            crate::StopReason::Stopped => "stopped",
            crate::StopReason::Failed(_) => "failed",
            crate::StopReason::RestartLimitExceeded { .. } => "restart_limit",
            crate::StopReason::Aborted => "aborted",
        };
        counter!(TERMINATED, "actor_type" => actor_type, "reason" => r).increment(1);
    }
}
