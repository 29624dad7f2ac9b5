//! `ProviderActor`: hosts one [`ClusterProvider`] as a supervised child of
//! the ProvisioningSupervisor (A3).
//!
//! On start it registers the local member (when the provider can; a failed
//! registration is retried after 1 s, doubling up to 30 s, until it succeeds
//! or the member is deregistered), then pumps
//! the provider's watch stream into the supervisor as [`ProviderEvent`]s. The
//! stream ending is a failure of this actor: it returns the [`StreamEnded`]
//! error, so supervision restarts it with backoff (A4 "failover by
//! restart"), and the supervisor learns the cause from the failure report
//! (`on_child_failed`), its only channel for it; a panic anywhere in it is
//! handled the same way. Every message carries the provider id and the actor's instance
//! number so the supervisor can ignore reports from an instance that has
//! since been replaced.

use std::sync::Arc;
use std::time::Duration;

use actor_runtime::{Actor, ActorRef, Context, HandlerResult, ReplyTo};
use cluster_core::{ClusterProvider, Member, ProviderError, ProviderId, Snapshot};
use futures::{FutureExt, StreamExt};
use tokio::task::JoinHandle;

use crate::supervisor::SupervisorMsg;

/// What a provider actor reports to its supervisor.
#[derive(Debug)]
pub enum ProviderEvent {
    /// The actor (re)started and is watching.
    Started,
    /// A snapshot.
    Snapshot(Snapshot),
    /// The stream reported an error and goes on.
    Error(ProviderError),
    /// Registering the local member failed (counted towards R5.2).
    RegistrationFailed(ProviderError),
}

/// Messages of a [`ProviderActor`].
pub enum ProviderMsg {
    /// From the pump task: the stream ended.
    Ended,
    /// Deregister the local member (graceful drain); replies with the result.
    Deregister(ReplyTo<Result<(), ProviderError>>),
    /// Try the failed registration again (the attempt number).
    RetryRegister(u32),
    /// Register the local member again now: a snapshot of the provider no
    /// longer lists it (the backend lost it, issue 19). A failure is
    /// retried like any failed registration.
    Reregister,
}

/// First pause before registering again after a failure.
const REGISTER_RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest pause between two registration attempts.
const REGISTER_RETRY_MAX: Duration = Duration::from_secs(30);

/// The stream ended: a failure, so that supervision restarts the actor.
#[derive(Debug, thiserror::Error)]
#[error("provider {0} stream ended")]
pub struct StreamEnded(pub ProviderId);

/// Hosts one provider.
pub struct ProviderActor {
    pub(crate) id: ProviderId,
    pub(crate) provider: Arc<dyn ClusterProvider>,
    pub(crate) local: Option<Member>,
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
    pub(crate) instance: u64,
    pub(crate) register_timeout: Duration,
    pub(crate) pump: Option<JoinHandle<()>>,
    /// Set once deregistered: a pending retry must not register again.
    pub(crate) deregistered: bool,
}

impl ProviderActor {
    fn report(&self, event: ProviderEvent) {
        let _ = self.supervisor.tell(SupervisorMsg::Provider {
            id: self.id.clone(),
            instance: self.instance,
            event,
        });
    }
}

impl ProviderActor {
    /// Registers the local member if the provider can; `false` (reported
    /// to the supervisor) when it failed.
    async fn register(&mut self) -> bool {
        let Some(local) = &self.local else {
            return true;
        };
        if self.deregistered || !self.provider.capabilities().register {
            return true;
        }
        let reg = tokio::time::timeout(self.register_timeout, self.provider.register(local));
        let error = match reg.await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => e,
            // No answer at all: the backend is unreachable or blackholed,
            // which is not a validation failure (R5.2 does not count it).
            Err(_) => ProviderError::Connectivity(format!(
                "registration: no answer within {:?}",
                self.register_timeout
            )),
        };
        tracing::warn!(provider = %self.id, error = %error, code = error.code(), "registration failed; will retry");
        self.report(ProviderEvent::RegistrationFailed(error));
        false
    }
}

impl Actor for ProviderActor {
    type Msg = ProviderMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> HandlerResult {
        self.report(ProviderEvent::Started);
        if !self.register().await {
            ctx.schedule_once(REGISTER_RETRY_MIN, ProviderMsg::RetryRegister(1));
        }
        // Snapshots and errors go straight to the supervisor (one hop less
        // on the propagation path); the end goes through this actor, which
        // fails so that supervision restarts it. The supervisor still sees
        // them in order: the end is reported after the last item was sent.
        let mut stream = self.provider.watch();
        let me = ctx.myself().clone();
        let (supervisor, id, instance) = (self.supervisor.clone(), self.id.clone(), self.instance);
        let pump = async move {
            while let Some(item) = stream.next().await {
                let event = match item {
                    Ok(s) => ProviderEvent::Snapshot(s),
                    Err(e) => ProviderEvent::Error(e),
                };
                let msg = SupervisorMsg::Provider {
                    id: id.clone(),
                    instance,
                    event,
                };
                if supervisor.tell(msg).is_err() {
                    return;
                }
            }
        };
        // A panic in the provider's stream ends the pump like an end of the
        // stream: this actor fails and is restarted either way.
        self.pump = Some(tokio::spawn(async move {
            let _ = std::panic::AssertUnwindSafe(pump).catch_unwind().await;
            let _ = me.tell(ProviderMsg::Ended);
        }));
        Ok(())
    }

    async fn handle(&mut self, msg: ProviderMsg, ctx: &mut Context<Self>) -> HandlerResult {
        match msg {
            ProviderMsg::Ended => return Err(Box::new(StreamEnded(self.id.clone()))),
            ProviderMsg::RetryRegister(attempt) => {
                if !self.register().await {
                    let delay = REGISTER_RETRY_MIN
                        .saturating_mul(1 << attempt.min(5))
                        .min(REGISTER_RETRY_MAX);
                    ctx.schedule_once(delay, ProviderMsg::RetryRegister(attempt + 1));
                }
            }
            ProviderMsg::Reregister => {
                if !self.register().await {
                    ctx.schedule_once(REGISTER_RETRY_MIN, ProviderMsg::RetryRegister(1));
                }
            }
            ProviderMsg::Deregister(reply) => {
                self.deregistered = true;
                let result = match &self.local {
                    Some(local) if self.provider.capabilities().register => {
                        match tokio::time::timeout(
                            self.register_timeout,
                            self.provider.deregister(local),
                        )
                        .await
                        {
                            Ok(r) => r,
                            Err(_) => Err(ProviderError::Registration(
                                "deregistration timed out".into(),
                            )),
                        }
                    }
                    _ => Ok(()),
                };
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
    }
}

impl Drop for ProviderActor {
    fn drop(&mut self) {
        // Also when the instance ends without its `stopped` hook (a failed
        // start, an abort at the shutdown deadline).
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
    }
}
