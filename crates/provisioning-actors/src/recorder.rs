//! [`EventRecorder`]: records every provisioning event an
//! [`ActorSystem`]'s EventStream carries, in publication order. For tests,
//! benchmarks and diagnostic tools that want to look at what the
//! ProvisioningSupervisor published after the fact.
//!
//! ```
//! use actor_runtime::ActorSystem;
//! use provisioning_actors::recorder::EventRecorder;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let system = ActorSystem::new("node");
//! let events = EventRecorder::record(&system);
//! assert!(events.all().is_empty());
//! # }
//! ```

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actor_runtime::ActorSystem;
use cluster_core::events::{
    ActivationSuppressed, LocalMemberSuperseded, ProviderChanged, ProviderHealthChanged,
    ProviderStreamTerminated, ProvisioningStatusChanged, RemoteNodeQuarantined, TopologyUpdated,
};
use cluster_core::{ProvisioningStatus, Topology};

/// One recorded event: the supervisor's own [`Event`](crate::provisioning_core::Event)
/// type, so the record and the core's `Ready` speak one language.
pub use crate::supervisor::provisioning_core::Event as ProvisioningEvent;

/// The events recorded so far (cheap to clone; clones share the record).
#[derive(Clone, Default, Debug)]
pub struct EventRecorder(Arc<Mutex<Vec<ProvisioningEvent>>>);

impl EventRecorder {
    /// Starts recording the provisioning events of `system`.
    pub fn record(system: &ActorSystem) -> Self {
        let rec = Self::default();
        let es = system.event_stream();
        macro_rules! sub {
            ($t:ty, $v:ident) => {{
                let r = rec.clone();
                let _ =
                    es.subscribe_fn(move |x: &$t| r.lock().push(ProvisioningEvent::$v(x.clone())));
            }};
        }
        sub!(TopologyUpdated, Topology);
        sub!(ProviderChanged, Changed);
        sub!(ProviderHealthChanged, Health);
        sub!(ProviderStreamTerminated, StreamTerminated);
        sub!(ProvisioningStatusChanged, Status);
        sub!(RemoteNodeQuarantined, Quarantined);
        sub!(ActivationSuppressed, Suppressed);
        sub!(LocalMemberSuperseded, Superseded);
        rec
    }

    fn lock(&self) -> MutexGuard<'_, Vec<ProvisioningEvent>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every event so far, in publication order.
    pub fn all(&self) -> Vec<ProvisioningEvent> {
        self.lock().clone()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The events `pick` selects, in order.
    pub fn pick<T>(&self, pick: impl Fn(&ProvisioningEvent) -> Option<T>) -> Vec<T> {
        self.lock().iter().filter_map(pick).collect()
    }

    /// Every [`TopologyUpdated`].
    pub fn updates(&self) -> Vec<TopologyUpdated> {
        self.pick(|e| match e {
            ProvisioningEvent::Topology(t) => Some(t.clone()),
            _ => None,
        })
    }

    /// The topologies of every [`TopologyUpdated`].
    pub fn topologies(&self) -> Vec<Arc<Topology>> {
        self.pick(|e| match e {
            ProvisioningEvent::Topology(t) => Some(t.topology.clone()),
            _ => None,
        })
    }

    /// The last topology published, if any.
    pub fn last_topology(&self) -> Option<Arc<Topology>> {
        self.topologies().pop()
    }

    /// Every [`ProviderChanged`].
    pub fn changes(&self) -> Vec<ProviderChanged> {
        self.pick(|e| match e {
            ProvisioningEvent::Changed(c) => Some(c.clone()),
            _ => None,
        })
    }

    /// Every [`ProviderHealthChanged`].
    pub fn health(&self) -> Vec<ProviderHealthChanged> {
        self.pick(|e| match e {
            ProvisioningEvent::Health(h) => Some(h.clone()),
            _ => None,
        })
    }

    /// The status of every [`ProvisioningStatusChanged`].
    pub fn statuses(&self) -> Vec<ProvisioningStatus> {
        self.pick(|e| match e {
            ProvisioningEvent::Status(s) => Some(s.status),
            _ => None,
        })
    }

    /// Every [`ProviderStreamTerminated`].
    pub fn terminations(&self) -> Vec<ProviderStreamTerminated> {
        self.pick(|e| match e {
            ProvisioningEvent::StreamTerminated(t) => Some(t.clone()),
            _ => None,
        })
    }

    /// Every [`RemoteNodeQuarantined`].
    pub fn quarantines(&self) -> Vec<RemoteNodeQuarantined> {
        self.pick(|e| match e {
            ProvisioningEvent::Quarantined(q) => Some(q.clone()),
            _ => None,
        })
    }

    /// Every [`ActivationSuppressed`].
    pub fn suppressed(&self) -> Vec<ActivationSuppressed> {
        self.pick(|e| match e {
            ProvisioningEvent::Suppressed(s) => Some(s.clone()),
            _ => None,
        })
    }

    /// Every [`LocalMemberSuperseded`].
    pub fn superseded(&self) -> Vec<LocalMemberSuperseded> {
        self.pick(|e| match e {
            ProvisioningEvent::Superseded(s) => Some(s.clone()),
            _ => None,
        })
    }
}
