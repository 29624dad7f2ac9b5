//! The supervisor actor: drives [`ProvisioningCore`] and executes its
//! [`Ready`]. It decides nothing itself; what it does on its own is the
//! async work the core must not do (accepting definitions, persisting them
//! before they apply, deregistering, waiting for children to stop).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actor_runtime::{
    Actor, ActorHandle, ActorRef, ActorSystem, Context, Directive, Failure, HandlerResult,
    StopReason, SupervisorStrategy, Terminated, TimerKey,
};
use cluster_core::{
    ClusterProvider, ProviderDescriptor, ProviderError, ProviderId, ProvisioningError, Result,
    Topology,
};
use metrics::gauge;
use tokio::time::Instant;

use super::provisioning_core::{
    Checkpoint, CoreSettings, Event, Exit, ProviderSpec, ProvisioningCore, Ready,
};
use super::{
    ProvisioningConfig, ProvisioningHandle, SupervisorMsg, log_overridden_by_store,
    log_store_differences,
};
use crate::metrics as m;
use crate::provider_actor::{ProviderActor, ProviderMsg, StreamEnded};
use crate::registry::{Accepted, ProviderKinds, accept};
use crate::store::DefinitionStore;

/// A provider's backend client and its actor (the part of a provider the
/// core does not hold).
struct Hosted {
    provider: Arc<dyn ClusterProvider>,
    actor: Option<ActorRef<ProviderMsg>>,
    /// A background deregistration of a stopped (suppressed) actor: aborted
    /// if the provider starts again first (a lift or a re-probe), so that a
    /// late deregistration cannot take back the new registration.
    deregistering: Option<tokio::task::JoinHandle<()>>,
}

/// An actor stopped by a `Ready` whose provider must deregister the local
/// member once it has stopped.
struct Deregistration {
    id: ProviderId,
    actor: ActorRef<ProviderMsg>,
    provider: Arc<dyn ClusterProvider>,
}

/// The supervisor actor. Spawn it with [`ProvisioningSupervisor::spawn`].
pub struct ProvisioningSupervisor {
    config: ProvisioningConfig,
    /// The `node` label of its metrics: the local member's node id, or the
    /// system's name without a local member.
    node: Arc<str>,
    kinds: ProviderKinds,
    core: ProvisioningCore,
    hosted: BTreeMap<ProviderId, Hosted>,
    /// Installed at `started`.
    initial: Vec<Accepted>,
    store: Option<DefinitionStore>,
    shared: Arc<std::sync::Mutex<Shared>>,
    timer: Option<(TimerKey, Instant)>,
    /// The last topology save in flight.
    saving: Option<tokio::task::JoinHandle<()>>,
}

/// What survives a restart of the supervisor actor itself: its
/// configuration, the accepted definitions (kept current) and the core's
/// checkpoint (published topology and seq_no, quarantines, draining).
struct Shared {
    node: Arc<str>,
    config: ProvisioningConfig,
    kinds: ProviderKinds,
    accepted: Vec<Accepted>,
    store: Option<DefinitionStore>,
    checkpoint: Option<Checkpoint>,
}

fn spec_of(a: &Accepted) -> ProviderSpec {
    ProviderSpec {
        descriptor: a.descriptor.clone(),
        disabled: a.disabled.clone(),
        can_register: a.provider.capabilities().register,
    }
}

impl ProvisioningSupervisor {
    /// Opens the store (failing fast on a corrupt one, R1.5), accepts the
    /// stored and the given definitions, and spawns the supervisor as the
    /// system actor `/system/provisioning` (A3).
    ///
    /// Stored definitions win over given ones with the same id (each one
    /// overridden is logged at WARN with the fields that differ), unless
    /// [`ProvisioningConfig::definitions_from_config`] is set. Two given
    /// definitions with one id are refused (`registry.duplicate`).
    pub async fn spawn(
        system: &ActorSystem,
        config: ProvisioningConfig,
        kinds: ProviderKinds,
        definitions: Vec<ProviderDescriptor>,
    ) -> Result<ProvisioningHandle> {
        Self::spawn_named(system, "provisioning", config, kinds, definitions).await
    }

    /// [`spawn`](Self::spawn) under another name (several supervisors in one
    /// system, as in tests with several nodes).
    pub async fn spawn_named(
        system: &ActorSystem,
        name: &str,
        config: ProvisioningConfig,
        kinds: ProviderKinds,
        definitions: Vec<ProviderDescriptor>,
    ) -> Result<ProvisioningHandle> {
        let mut seen = std::collections::BTreeSet::new();
        for d in &definitions {
            if !seen.insert(d.id.clone()) {
                return Err(ProvisioningError::Duplicate(d.id.clone()));
            }
        }
        let (store, stored) = match &config.store_path {
            Some(path) => {
                let (s, stored) = DefinitionStore::open(path.clone()).await?;
                (Some(s), Some(stored))
            }
            None => (None, None),
        };
        let mut accepted: Vec<Accepted> = Vec::new();
        let mut restored = None;
        if let Some(stored) = stored {
            let stored_defs = if config.definitions_from_config {
                log_store_differences(&stored.definitions, &definitions);
                Vec::new()
            } else {
                log_overridden_by_store(&stored.definitions, &definitions);
                stored.definitions
            };
            for d in stored_defs {
                // Restored: no connectivity check (a backend down at restart
                // gives a Degraded provider, not a lost definition).
                accepted.push(accept(&kinds, d, None).await?);
            }
            restored = stored.last_topology;
        }
        for d in definitions {
            if accepted.iter().any(|a| a.descriptor.id == d.id) {
                continue; // Stored wins; logged above.
            }
            accepted.push(accept(&kinds, d, Some(config.connectivity_timeout)).await?);
        }
        if let Some(store) = &store {
            let defs: Vec<_> = accepted.iter().map(|a| a.descriptor.clone()).collect();
            store.save_definitions(&defs).await?;
        }
        let timeout = config
            .connectivity_timeout
            .saturating_add(config.register_timeout);
        let node: Arc<str> = match &config.local {
            Some(m) => Arc::from(m.node_id.to_string()),
            None => Arc::from(system.name()),
        };
        let shared = Arc::new(std::sync::Mutex::new(Shared {
            node,
            config,
            kinds,
            accepted,
            store,
            // A restored topology is published stale, and continues its
            // seq_no.
            checkpoint: restored.map(Checkpoint::from_topology),
        }));
        let actor = system
            .spawn_system(name, move || {
                ProvisioningSupervisor::from_shared(shared.clone())
            })
            .map_err(|e| ProvisioningError::Supervisor(e.to_string()))?;
        Ok(ProvisioningHandle::new(actor, timeout))
    }

    /// A new actor (first start or restart) from what survives restarts.
    fn from_shared(shared: Arc<std::sync::Mutex<Shared>>) -> Self {
        let (node, config, kinds, initial, store, checkpoint) = {
            let s = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (
                s.node.clone(),
                s.config.clone(),
                s.kinds.clone(),
                s.accepted.clone(),
                s.store.clone(),
                s.checkpoint.clone(),
            )
        };
        let settings = CoreSettings::from(&config);
        let core = match checkpoint {
            Some(c) => ProvisioningCore::restore(settings, node.clone(), c, fastrand::u64(..)),
            None => ProvisioningCore::new(settings, node.clone(), fastrand::u64(..)),
        };
        Self {
            config,
            node,
            kinds,
            core,
            hosted: BTreeMap::new(),
            initial,
            store,
            shared,
            timer: None,
            saving: None,
        }
    }

    /// Keeps what survives a restart current. Returns the checkpoint it
    /// replaced: it may hold the last reference to the previous topology,
    /// whose member list the caller frees after publishing (issue 17).
    fn sync_shared(&self) -> Option<Checkpoint> {
        let mut s = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.accepted = self
            .core
            .specs()
            .into_iter()
            .filter_map(|spec| {
                let h = self.hosted.get(&spec.descriptor.id)?;
                Some(Accepted {
                    descriptor: spec.descriptor,
                    provider: h.provider.clone(),
                    disabled: spec.disabled,
                })
            })
            .collect();
        s.checkpoint.replace(self.core.checkpoint())
    }

    /// Executes what the core decided, in order: stop, (new backend clients
    /// for replaced providers), start, re-register, publish, persist, timer.
    /// The stopped actors whose provider must deregister the local member are
    /// deregistered in the background, or, while draining, returned for
    /// `drain` to wait on.
    fn execute(
        &mut self,
        ready: Ready,
        replaced: Vec<(ProviderId, Arc<dyn ClusterProvider>)>,
        ctx: &mut Context<Self>,
    ) -> Vec<Deregistration> {
        let mut deregistrations = Vec::new();
        let mut spawn_failed = false;
        let actors_changed =
            !ready.stop.is_empty() || !ready.start.is_empty() || !replaced.is_empty();
        for stop in ready.stop {
            let Some(h) = self.hosted.get_mut(&stop.id) else {
                continue;
            };
            if let Some(a) = h.actor.take() {
                ctx.unwatch(a.handle());
                a.stop();
                if stop.deregister {
                    deregistrations.push(Deregistration {
                        id: stop.id,
                        actor: a,
                        provider: h.provider.clone(),
                    });
                }
            }
        }
        for (id, provider) in replaced {
            self.hosted.insert(
                id,
                Hosted {
                    provider,
                    actor: None,
                    deregistering: None,
                },
            );
        }
        self.hosted.retain(|id, _| self.core.contains(id));
        for start in ready.start {
            if let Some(d) = self
                .hosted
                .get_mut(&start.id)
                .and_then(|h| h.deregistering.take())
            {
                d.abort();
            }
            if let Err(e) = self.spawn_provider(&start.id, start.first_instance, ctx) {
                // Only when the supervisor itself is stopping.
                tracing::warn!(provider = %start.id, error = %e, "could not start the provider actor");
                self.core
                    .child_exited(&start.id, Exit::Stopped, Instant::now());
                spawn_failed = true;
            }
        }
        for id in ready.reregister {
            if let Some(a) = self.hosted.get(&id).and_then(|h| h.actor.as_ref()) {
                let _ = a.tell(ProviderMsg::Reregister);
            }
        }
        // What survives a restart changes only with a publication or a
        // change of the running set (not at every snapshot).
        let changed = !ready.events.is_empty() || actors_changed;
        // Checkpoint before publishing: a subscriber callback runs inside
        // `publish`, and if it panics the restarted actor must not reuse a
        // seq_no some consumers already applied.
        // The replaced checkpoint is dropped only after publishing: it holds
        // the previous topology, often its last reference, and freeing a
        // list of n members (n strings) must not delay the new one (issue
        // 17).
        let retired = if changed { self.sync_shared() } else { None };
        let es = ctx.system().event_stream().clone();
        for e in ready.events {
            match e {
                Event::Health(e) => es.publish(e),
                Event::StreamTerminated(e) => es.publish(e),
                Event::Suppressed(e) => es.publish(e),
                Event::Superseded(e) => es.publish(e),
                Event::Quarantined(e) => es.publish(e),
                Event::Topology(e) => es.publish(e),
                Event::Status(e) => es.publish(e),
                Event::Changed(e) => es.publish(e),
            };
        }
        if let Some(t) = ready.persist {
            self.persist_topology(&t);
        }
        drop(retired);
        self.schedule(ready.wake_at, ctx);
        if spawn_failed {
            // The core took the failed starts as stopped actors.
            let ready = self.core.ready();
            let more = self.execute(ready, Vec::new(), ctx);
            deregistrations.extend(more);
        }
        if self.core.is_draining() {
            return deregistrations; // `drain` waits for them itself.
        }
        self.deregister_in_background(deregistrations);
        Vec::new()
    }

    /// Deregisters the local member from providers whose actor the core
    /// stopped for good (a suppression): after the actor stopped, without
    /// holding up the actor.
    fn deregister_in_background(&mut self, deregistrations: Vec<Deregistration>) {
        let timeout = self.config.register_timeout;
        for d in deregistrations {
            let Some(local) = self.config.local.clone() else {
                continue;
            };
            let id = d.id.clone();
            let task = tokio::spawn(async move {
                let _ = tokio::time::timeout(timeout, d.actor.stopped()).await;
                match tokio::time::timeout(timeout, d.provider.deregister(&local)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(provider = %d.id, error = %e, "could not deregister from a suppressed provider")
                    }
                    Err(_) => {
                        tracing::warn!(provider = %d.id, "deregistration from a suppressed provider timed out")
                    }
                }
            });
            if let Some(h) = self.hosted.get_mut(&id) {
                h.deregistering = Some(task);
            }
        }
    }

    /// Takes the core's `Ready` and executes it.
    fn step(&mut self, ctx: &mut Context<Self>) {
        let ready = self.core.ready();
        self.execute(ready, Vec::new(), ctx);
    }

    fn spawn_provider(
        &mut self,
        id: &ProviderId,
        first_instance: u64,
        ctx: &mut Context<Self>,
    ) -> Result<()> {
        let Some(h) = self.hosted.get_mut(id) else {
            return Ok(());
        };
        let mut instance = first_instance.saturating_sub(1);
        let (id2, provider, local, supervisor, timeout) = (
            id.clone(),
            h.provider.clone(),
            self.config.local.clone(),
            ctx.myself().clone(),
            self.config.register_timeout,
        );
        let factory = move || {
            instance += 1;
            ProviderActor {
                id: id2.clone(),
                provider: provider.clone(),
                local: local.clone(),
                supervisor: supervisor.clone(),
                instance,
                register_timeout: timeout,
                pump: None,
                deregistered: false,
            }
        };
        // `provider-<id>`, or a numbered name while a replaced actor of the
        // same provider is still stopping (reload, remove + register).
        let name = if ctx
            .myself()
            .handle()
            .child(&format!("provider-{id}"))
            .is_some()
        {
            format!("provider-{id}-{}", first_instance / 1_000_000)
        } else {
            format!("provider-{id}")
        };
        let actor = ctx
            .spawn(&name, factory)
            .map_err(|e| ProvisioningError::Supervisor(e.to_string()))?;
        h.actor = Some(actor);
        Ok(())
    }

    /// Arms the one timer for the core's next wake-up.
    fn schedule(&mut self, wake_at: Option<Instant>, ctx: &mut Context<Self>) {
        match (wake_at, self.timer) {
            (Some(t), Some((_, at))) if at == t => {}
            (Some(t), old) => {
                if let Some((k, _)) = old {
                    ctx.cancel_timer(k);
                }
                let delay = t.saturating_duration_since(Instant::now());
                let key = ctx.schedule_once(delay, SupervisorMsg::Tick);
                self.timer = Some((key, t));
            }
            (None, Some((k, _))) => {
                ctx.cancel_timer(k);
                self.timer = None;
            }
            (None, None) => {}
        }
    }

    /// Persisting must not delay publication: the save runs in a task, after
    /// the previous one (so the file never goes back in time), and `stopped`
    /// waits for the last one.
    fn persist_topology(&mut self, t: &Arc<Topology>) {
        if !self.config.persist_topology {
            return;
        }
        let Some(store) = self.store.clone() else {
            return;
        };
        let t = (**t).clone();
        let previous = self.saving.take();
        self.saving = Some(tokio::spawn(async move {
            if let Some(p) = previous {
                let _ = p.await;
            }
            if let Err(e) = store.save_topology(&t).await {
                tracing::warn!(error = %e, code = e.code(), "could not persist the topology");
            }
        }));
    }

    /// Persists a definition set before it applies: when this fails the
    /// caller is told and nothing changes.
    async fn persist_definitions(&self, defs: &[ProviderDescriptor]) -> Result<()> {
        match &self.store {
            Some(store) => store.save_definitions(defs).await,
            None => Ok(()),
        }
    }

    async fn register(&mut self, d: ProviderDescriptor, ctx: &mut Context<Self>) -> Result<()> {
        d.validate()?;
        self.core.check_add(&d.id)?; // R1.2: an existing one is kept.
        let a = accept(&self.kinds, d, Some(self.config.connectivity_timeout)).await?;
        let mut defs = self.core.definitions();
        defs.push(a.descriptor.clone());
        self.persist_definitions(&defs).await?;
        self.core.add(spec_of(&a), Instant::now())?;
        let ready = self.core.ready();
        self.execute(ready, vec![(a.descriptor.id.clone(), a.provider)], ctx);
        Ok(())
    }

    async fn remove(&mut self, id: ProviderId, ctx: &mut Context<Self>) -> Result<()> {
        self.core.check_remove(&id)?;
        let defs: Vec<_> = self
            .core
            .definitions()
            .into_iter()
            .filter(|d| d.id != id)
            .collect();
        self.persist_definitions(&defs).await?;
        self.core.remove(&id, Instant::now())?;
        self.step(ctx);
        let _ = self.sync_shared();
        Ok(())
    }

    /// R5.4: every new or changed definition is accepted first and the new
    /// set persisted; if either fails nothing changes. Then the core applies
    /// the set as one change.
    async fn reload(
        &mut self,
        defs: Vec<ProviderDescriptor>,
        ctx: &mut Context<Self>,
    ) -> Result<()> {
        if self.core.is_draining() {
            return Err(ProvisioningError::Draining);
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &defs {
            d.validate()?;
            if !seen.insert(d.id.clone()) {
                return Err(ProvisioningError::Duplicate(d.id.clone()));
            }
        }
        let mut prepared = Vec::new();
        let mut replaced = Vec::new();
        for d in &defs {
            if self.core.must_replace(d) {
                let a = accept(
                    &self.kinds,
                    d.clone(),
                    Some(self.config.connectivity_timeout),
                )
                .await?;
                prepared.push((d.id.clone(), Some(spec_of(&a))));
                replaced.push((d.id.clone(), a.provider));
            } else {
                prepared.push((d.id.clone(), None));
            }
        }
        self.persist_definitions(&defs).await?;
        self.core.reload(prepared, Instant::now())?;
        let ready = self.core.ready();
        self.execute(ready, replaced, ctx);
        let _ = self.sync_shared();
        Ok(())
    }

    async fn drain(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> Vec<(ProviderId, std::result::Result<(), ProviderError>)> {
        let running = self.core.drain();
        let ready = self.core.ready();
        let deregistrations = self.execute(ready, Vec::new(), ctx);
        // Wait for the actors first (a running one could register again,
        // e.g. a pending registration retry), so that no registration lands
        // after the deregistration. A stopping actor may be inside a
        // registration bounded by `register_timeout`: wait a little longer.
        let timeout = self.config.register_timeout;
        let stop_wait = timeout.saturating_add(Duration::from_secs(1));
        for d in &deregistrations {
            let _ = tokio::time::timeout(stop_wait, d.actor.stopped()).await;
        }
        let local = self.config.local.clone();
        let results = futures::future::join_all(deregistrations.into_iter().map(|d| {
            let local = local.clone();
            async move {
                let result = match local {
                    Some(local) => {
                        match tokio::time::timeout(timeout, d.provider.deregister(&local)).await {
                            Ok(r) => r,
                            Err(_) => Err(ProviderError::Registration(format!(
                                "deregistration: no answer within {timeout:?}"
                            ))),
                        }
                    }
                    None => Ok(()),
                };
                (d.id, result)
            }
        }))
        .await;
        // Every provider that was running has a result; one that cannot
        // register had nothing to take back.
        running
            .into_iter()
            .map(|id| match results.iter().find(|(r, _)| *r == id) {
                Some((_, r)) => (id, r.clone()),
                None => (id, Ok(())),
            })
            .collect()
    }

    fn provider_by_actor(&self, h: &ActorHandle) -> Option<ProviderId> {
        self.hosted
            .iter()
            .find(|(_, e)| e.actor.as_ref().is_some_and(|a| a.handle() == h))
            .map(|(id, _)| id.clone())
    }
}

impl Actor for ProvisioningSupervisor {
    type Msg = SupervisorMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> HandlerResult {
        gauge!(m::STATUS, "node" => self.node.clone(), "status" => self.core.status().as_str())
            .set(1.0);
        let now = Instant::now();
        let mut providers = Vec::new();
        for a in std::mem::take(&mut self.initial) {
            let spec = spec_of(&a);
            providers.push((a.descriptor.id.clone(), a.provider));
            self.core.resume_provider(spec, now);
        }
        let ready = self.core.ready();
        self.execute(ready, providers, ctx);
        Ok(())
    }

    async fn handle(&mut self, msg: SupervisorMsg, ctx: &mut Context<Self>) -> HandlerResult {
        let now = Instant::now();
        match msg {
            SupervisorMsg::Provider {
                id,
                instance,
                event,
            } => {
                self.core
                    .provider_event(&id, instance, event, now, SystemTime::now());
                self.step(ctx);
            }
            SupervisorMsg::Tick => {
                self.timer = None;
                self.core.tick(now, SystemTime::now());
                self.step(ctx);
            }
            SupervisorMsg::Register(d, reply) => {
                let r = self.register(d, ctx).await;
                let _ = reply.send(r);
            }
            SupervisorMsg::Remove(id, reply) => {
                let r = self.remove(id, ctx).await;
                let _ = reply.send(r);
            }
            SupervisorMsg::Reload(defs, reply) => {
                let r = self.reload(defs, ctx).await;
                let _ = reply.send(r);
            }
            SupervisorMsg::Quarantine {
                node,
                incarnation,
                reason,
            } => {
                self.core.quarantine(node, incarnation, reason, now);
                self.step(ctx);
            }
            SupervisorMsg::Reachable { node, incarnation } => {
                self.core.reachable(&node, incarnation);
            }
            SupervisorMsg::LiftSuppression(id, reply) => {
                let r = self.core.lift_suppression(&id, now);
                self.step(ctx);
                let _ = reply.send(r);
            }
            SupervisorMsg::ClearQuarantine(node, incarnation, reply) => {
                let r = self.core.clear_quarantine(node, incarnation);
                self.step(ctx);
                let _ = reply.send(r);
            }
            SupervisorMsg::Drain(reply) => {
                let r = self.drain(ctx).await;
                let _ = reply.send(r);
            }
            SupervisorMsg::Topology(reply) => {
                let _ = reply.send(self.core.published().clone());
            }
            SupervisorMsg::Providers(reply) => {
                let _ = reply.send(self.core.statuses());
            }
            SupervisorMsg::Definitions(reply) => {
                let _ = reply.send(self.core.definitions());
            }
            SupervisorMsg::LastSnapshot(id, reply) => {
                let _ = reply.send(self.core.last_snapshot(&id));
            }
        }
        Ok(())
    }

    async fn on_child_failed(
        &mut self,
        child: ActorHandle,
        failure: Failure,
        directive: Directive,
        ctx: &mut Context<Self>,
    ) {
        let Some(id) = self.provider_by_actor(&child) else {
            return;
        };
        // Failure reports overtake the child's last messages (system
        // messages go first), so learn the cause from the failure.
        let stream_ended = failure
            .error_ref()
            .is_some_and(|e| e.downcast_ref::<StreamEnded>().is_some());
        let exit = match directive {
            Directive::Restart => Exit::Restarting { stream_ended },
            Directive::Stop => Exit::Stopped,
            _ => return,
        };
        self.core.child_exited(&id, exit, Instant::now());
        self.step(ctx);
    }

    async fn on_terminated(&mut self, t: Terminated, ctx: &mut Context<Self>) -> HandlerResult {
        let Some(id) = self.provider_by_actor(&t.actor) else {
            return Ok(());
        };
        if let Some(h) = self.hosted.get_mut(&id) {
            h.actor = None;
        }
        let exit = match &t.reason {
            StopReason::RestartLimitExceeded { failures, .. } => Exit::RestartLimit {
                failures: *failures,
            },
            _ => Exit::Stopped,
        };
        self.core.child_exited(&id, exit, Instant::now());
        self.step(ctx);
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(save) = self.saving.take() {
            let _ = save.await;
        }
    }

    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::one_for_one()
            .with_backoff(self.config.provider_backoff)
            .with_limit(
                self.config.provider_max_restarts,
                self.config.provider_restart_window,
            )
    }
}
