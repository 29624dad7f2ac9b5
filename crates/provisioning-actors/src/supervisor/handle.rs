//! [`ProvisioningHandle`]: the API of a running supervisor.

use std::sync::Arc;
use std::time::Duration;

use actor_runtime::{ActorRef, ReplyTo};
use cluster_core::{
    NodeId, ProviderDescriptor, ProviderError, ProviderId, ProvisioningError, Result, Snapshot,
    Topology,
};

use super::{ProviderStatus, SupervisorMsg};

/// A handle to a running supervisor: the API that Remoting, placement and
/// operators use.
#[derive(Clone, Debug)]
pub struct ProvisioningHandle {
    actor: ActorRef<SupervisorMsg>,
    timeout: Duration,
}

impl ProvisioningHandle {
    pub(super) fn new(actor: ActorRef<SupervisorMsg>, timeout: Duration) -> Self {
        Self { actor, timeout }
    }

    /// The supervisor actor.
    pub fn actor(&self) -> &ActorRef<SupervisorMsg> {
        &self.actor
    }

    async fn ask<R: Send + 'static>(
        &self,
        make: impl FnOnce(ReplyTo<R>) -> SupervisorMsg,
        timeout: Duration,
    ) -> Result<R> {
        self.actor
            .ask(make, timeout)
            .await
            .map_err(|e| ProvisioningError::Supervisor(e.to_string()))
    }

    /// The published topology (R3.2: check its `status`).
    pub async fn topology(&self) -> Result<Arc<Topology>> {
        self.ask(SupervisorMsg::Topology, self.timeout).await
    }

    /// Every provider's state (health, last update, last error code).
    pub async fn providers(&self) -> Result<Vec<ProviderStatus>> {
        self.ask(SupervisorMsg::Providers, self.timeout).await
    }

    /// The registry listing.
    pub async fn definitions(&self) -> Result<Vec<ProviderDescriptor>> {
        self.ask(SupervisorMsg::Definitions, self.timeout).await
    }

    /// The last snapshot of one provider, kept after its stream ended (R2.2).
    pub async fn last_snapshot(&self, id: &ProviderId) -> Result<Option<Snapshot>> {
        let id = id.clone();
        self.ask(|r| SupervisorMsg::LastSnapshot(id, r), self.timeout)
            .await
    }

    /// Registers one more provider (R1.1–R1.5).
    pub async fn register(&self, d: ProviderDescriptor) -> Result<()> {
        self.ask(|r| SupervisorMsg::Register(d, r), self.timeout * 2)
            .await?
    }

    /// Removes a provider.
    pub async fn remove(&self, id: &ProviderId) -> Result<()> {
        let id = id.clone();
        self.ask(|r| SupervisorMsg::Remove(id, r), self.timeout)
            .await?
    }

    /// Replaces the provider set atomically (R5.4).
    pub async fn reload(&self, defs: Vec<ProviderDescriptor>) -> Result<()> {
        let n = u32::try_from(defs.len()).unwrap_or(u32::MAX).max(1);
        self.ask(|r| SupervisorMsg::Reload(defs, r), self.timeout * n * 2)
            .await?
    }

    /// Remoting reports an unreachable node incarnation (R4.2).
    pub fn quarantine(&self, node: NodeId, incarnation: u64, reason: impl Into<String>) {
        let _ = self.actor.tell(SupervisorMsg::Quarantine {
            node,
            incarnation,
            reason: reason.into(),
        });
    }

    /// Remoting reached a quarantined node again (R4.4).
    pub fn reachable(&self, node: NodeId, incarnation: u64) {
        let _ = self
            .actor
            .tell(SupervisorMsg::Reachable { node, incarnation });
    }

    /// Lifts an activation suppression (R5.2, operator): the provider is
    /// started again at once, with the full failure threshold. Errors:
    /// `registry.not_found`, `registry.not_suppressed`,
    /// `provisioning.draining`.
    pub async fn lift_suppression(&self, id: &ProviderId) -> Result<()> {
        let id = id.clone();
        self.ask(|r| SupervisorMsg::LiftSuppression(id, r), self.timeout)
            .await?
    }

    /// Lifts a quarantine (operator).
    pub async fn clear_quarantine(&self, node: NodeId, incarnation: u64) -> Result<()> {
        self.ask(
            |r| SupervisorMsg::ClearQuarantine(node, incarnation, r),
            self.timeout,
        )
        .await?
    }

    /// Graceful drain (R3.5): status Draining, new snapshots refused, the
    /// local member deregistered from every provider.
    pub async fn drain(&self) -> Result<Vec<(ProviderId, std::result::Result<(), ProviderError>)>> {
        let n = u32::try_from(self.timeout.as_secs()).unwrap_or(5).max(1);
        self.ask(SupervisorMsg::Drain, self.timeout * n).await
    }
}
