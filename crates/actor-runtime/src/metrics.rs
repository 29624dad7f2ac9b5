//! Metric names, through the [`metrics`] facade. Install any recorder
//! (Prometheus exporter, `metrics-util`'s debugging recorder...) to collect
//! them; without one they cost a branch. `docs/metrics.md` lists them.
//!
//! Per-actor metrics are labelled by `actor_type` (the Rust type name), not by
//! path, so that the number of series stays bounded however many actors run.
//!
//! Every metric also carries a `node` label: the name of the
//! [`ActorSystem`](crate::ActorSystem) (see [`ActorSystem::name`](crate::ActorSystem::name)),
//! so that several systems in one process keep separate series. Name a
//! system after the node it runs (the node id, as the `Cluster` bootstrap's
//! users and the node program do); a standalone
//! [`EventStream`](crate::EventStream) labels its series `node=""`.
//! [`describe`] registers each metric's description and unit.

use std::sync::Arc;

use metrics::{Counter, Histogram, Unit, counter, describe_counter, describe_histogram, histogram};

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

/// Describes every metric of this crate (description and unit) to the
/// installed recorder. Call it once, after installing the recorder (a
/// Prometheus exporter uses it for `# HELP` lines); metrics are recorded
/// whether or not it was called.
pub fn describe() {
    describe_counter!(
        MESSAGES_PROCESSED,
        Unit::Count,
        "Messages handled (timer messages included), by node and actor_type."
    );
    describe_counter!(
        FAILURES,
        Unit::Count,
        "Actor failures (panics and errors) reported to the supervisor, by node, actor_type and kind."
    );
    describe_counter!(
        RESTARTS,
        Unit::Count,
        "Actor restarts, by node and actor_type."
    );
    describe_histogram!(
        MAILBOX_DEPTH,
        Unit::Count,
        "User-mailbox depth, sampled every 128 messages, by node and actor_type."
    );
    describe_counter!(
        DEAD_LETTERS,
        Unit::Count,
        "Messages left in a mailbox when its actor ended, by node and actor_type."
    );
    describe_counter!(
        SPAWNED,
        Unit::Count,
        "Actors spawned (guardians included), by node and actor_type."
    );
    describe_counter!(
        TERMINATED,
        Unit::Count,
        "Actors ended, by node, actor_type and reason."
    );
    describe_counter!(
        EVENTS_PUBLISHED,
        Unit::Count,
        "Events published on the EventStream, by node and event type."
    );
    describe_counter!(
        EVENTS_DROPPED,
        Unit::Count,
        "Event deliveries dropped because a bounded subscriber mailbox was full, by node and event type."
    );
}

/// Per-actor metric state. The `node` label (the system's name) is passed
/// to each call rather than kept here: cloning the name's `Arc` for every
/// actor would touch one reference count from every worker.
pub(crate) struct ActorMetrics {
    pub(crate) actor_type: &'static str,
    /// Registered at the first message: building a metric key costs a label
    /// vector even without a recorder, and many actors (one per request,
    /// per connection...) stop before or without handling any.
    per_message: Option<PerMessage>,
}

pub(crate) struct PerMessage {
    pub(crate) processed: Counter,
    pub(crate) depth: Histogram,
}

impl ActorMetrics {
    pub(crate) fn new(actor_type: &'static str) -> Self {
        Self {
            actor_type,
            per_message: None,
        }
    }

    /// The handles of the per-message metrics.
    #[inline]
    pub(crate) fn per_message(&mut self, node: &Arc<str>) -> &PerMessage {
        let actor_type = self.actor_type;
        self.per_message.get_or_insert_with(|| PerMessage {
            processed: counter!(MESSAGES_PROCESSED, "node" => node.clone(), "actor_type" => actor_type),
            depth: histogram!(MAILBOX_DEPTH, "node" => node.clone(), "actor_type" => actor_type),
        })
    }

    pub(crate) fn failure(&self, node: &Arc<str>, panic: bool) {
        let kind = if panic { "panic" } else { "error" };
        counter!(FAILURES, "node" => node.clone(), "actor_type" => self.actor_type, "kind" => kind)
            .increment(1);
    }

    pub(crate) fn restart(&self, node: &Arc<str>) {
        counter!(RESTARTS, "node" => node.clone(), "actor_type" => self.actor_type).increment(1);
    }

    pub(crate) fn dead_letters(&self, node: &Arc<str>, n: usize) {
        if n > 0 {
            counter!(DEAD_LETTERS, "node" => node.clone(), "actor_type" => self.actor_type)
                .increment(n as u64);
        }
    }
}

/// Counts a spawn (at the spawn itself, so that every terminated actor was
/// counted as spawned, even one whose task never ran).
pub(crate) fn spawned(node: &Arc<str>, actor_type: &'static str) {
    counter!(SPAWNED, "node" => node.clone(), "actor_type" => actor_type).increment(1);
}

pub(crate) fn terminated(node: &Arc<str>, actor_type: &'static str, reason: &crate::StopReason) {
    let r = match reason {
        crate::StopReason::Stopped => "stopped",
        crate::StopReason::Failed(_) => "failed",
        crate::StopReason::RestartLimitExceeded { .. } => "restart_limit",
        crate::StopReason::Aborted => "aborted",
    };
    counter!(TERMINATED, "node" => node.clone(), "actor_type" => actor_type, "reason" => r)
        .increment(1);
}
