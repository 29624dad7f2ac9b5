//! Activation and hand-off: spawning the activation of a grain, ending one
//! (and waiting for its `on_deactivate`), stopping all, and releasing a
//! grain to its new owner.

use super::*;

impl PlacementSupervisor {
    /// Ends the activation of `key`, if any: `on_deactivate` runs with
    /// `reason`, and until the instance has stopped a new activation of the
    /// same grain waits for it. Returns whether there was one.
    pub(super) fn deactivate(&mut self, key: Key, reason: u8, ctx: &mut Context<Self>) -> bool {
        let Some(a) = self.activations.remove(&key) else {
            return false;
        };
        let live = !a.actor.is_closed();
        a.reason.store(reason, Ordering::Relaxed);
        a.actor.stop();
        if live {
            let me = ctx.myself().clone();
            let actor = a.actor.clone();
            let id = actor.id();
            self.deactivating.insert(key.clone(), actor.clone());
            tokio::spawn(async move {
                actor.stopped().await;
                let _ = me.tell(PlacementMsg(Msg::Deactivated { key, actor: id }));
            });
        }
        metrics::gauge!(M_ACTIVATIONS, "node" => self.shared.node.clone())
            .set(self.activations.len() as f64);
        live
    }

    /// Ends every activation; returns how many were running.
    pub(super) fn stop_all(&mut self, reason: u8, ctx: &mut Context<Self>) -> usize {
        let keys: Vec<Key> = self.activations.keys().cloned().collect();
        let mut n = 0;
        for k in keys {
            if self.deactivate(k, reason, ctx) {
                n += 1;
            }
        }
        metrics::counter!(M_HANDOFFS, "node" => self.shared.node.clone()).increment(n as u64);
        n
    }

    /// What a new activation of `(kind, id)` waits for before it activates:
    /// a local instance still deactivating, and every previous owner (in
    /// the last tables) that is still a member, asked to release it.
    pub(super) fn barrier(
        &self,
        kind: &str,
        id: &str,
        options: &GrainOptions,
    ) -> Option<BoxFuture<'static, ()>> {
        let key = (kind.to_owned(), id.to_owned());
        let bound = options
            .deactivation_deadline
            .saturating_add(Duration::from_secs(1));
        let mut waits: Vec<BoxFuture<'static, ()>> = Vec::new();
        if let Some(prev) = self.deactivating.get(&key) {
            let prev = prev.clone();
            waits.push(Box::pin(async move {
                let _ = tokio::time::timeout(bound, prev.stopped()).await;
            }));
        }
        if let (Some(table), Some(_)) = (&self.table, &self.shared.remoting) {
            for owner in previous_owners(table, &self.history, &self.shared.local, kind, id) {
                let shared = self.shared.clone();
                let (kind, id) = (kind.to_owned(), id.to_owned());
                waits.push(Box::pin(async move {
                    shared.release_remote(owner, kind, id, bound).await;
                }));
            }
        }
        if waits.is_empty() {
            None
        } else {
            Some(Box::pin(async move {
                futures::future::join_all(waits).await;
            }))
        }
    }

    /// The activation of `(kind, id)`, spawned on first use.
    pub(super) fn activation(
        &mut self,
        kind: &str,
        id: &str,
        ctx: &mut Context<Self>,
    ) -> Result<ActorRef<GrainMsg>, PlacementError> {
        let key = (kind.to_owned(), id.to_owned());
        if let Some(a) = self.activations.get(&key)
            && !a.actor.is_closed()
        {
            return Ok(a.actor.clone());
        }
        if let Some((asker, at)) = self.released.get(&key)
            && at.elapsed() < RELEASE_BLOCK
            && self
                .table
                .as_ref()
                .is_some_and(|t| views_disagree(t, &self.shared.local, asker, kind, id))
        {
            return Err(PlacementError::NotOwner(format!(
                "node {} released {kind}/{id} to {asker}, whose view is newer",
                self.shared.local
            )));
        }
        let (spawner, options) = self
            .kinds
            .kinds
            .get(kind)
            .cloned()
            .ok_or_else(|| PlacementError::UnknownKind(kind.to_owned()))?;
        let barrier = self.barrier(kind, id, &options);
        let reason = Arc::new(AtomicU8::new(REASON_HANDOFF));
        let setup = Setup {
            ctx: GrainContext::new(GrainKey::new(&self.shared.cluster, kind, id), &options),
            options,
            barrier: Arc::new(Mutex::new(barrier)),
            reason: reason.clone(),
            supervisor: ctx.myself().clone(),
            node: self.shared.node.clone(),
            crashed: self.shared.crashed.clone(),
        };
        let a = spawner(ctx, setup, id).map_err(|_| PlacementError::Stopped)?;
        self.activations.insert(
            key,
            Activation {
                actor: a.clone(),
                reason,
            },
        );
        metrics::gauge!(M_ACTIVATIONS, "node" => self.shared.node.clone())
            .set(self.activations.len() as f64);
        Ok(a)
    }

    /// A new owner asks for `(kind, id)`: deactivate it here (if it runs),
    /// answer once its `on_deactivate` has finished, and do not activate it
    /// again while this node's view disagrees with the asker's (see
    /// `released`). A kind this node does not host is answered at once and
    /// remembered nowhere; the map is bounded by [`MAX_RELEASED`].
    pub(super) fn on_release(&mut self, call: ReleaseCall, ctx: &mut Context<Self>) {
        let Some(remoting) = self.shared.remoting.clone() else {
            return;
        };
        let key = (call.kind.clone(), call.id.clone());
        // An asker that is the owner in this node's own view does not need
        // this node to stop activating: the views agree.
        let agree = self.table.as_ref().is_some_and(|t| {
            !views_disagree(t, &self.shared.local, &call.from, &call.kind, &call.id)
        });
        if self.kinds.contains(&call.kind) && !agree {
            if self.released.len() >= MAX_RELEASED {
                let now = tokio::time::Instant::now();
                self.released
                    .retain(|_, (_, at)| now.duration_since(*at) < RELEASE_BLOCK);
            }
            if self.released.len() < MAX_RELEASED {
                self.released.insert(
                    key.clone(),
                    (call.from.clone(), tokio::time::Instant::now()),
                );
            }
        }
        if self.deactivate(key.clone(), REASON_HANDOFF, ctx) {
            metrics::counter!(M_HANDOFFS, "node" => self.shared.node.clone()).increment(1);
        }
        let reply = Reply::new(ReplyTarget::Remote {
            node: call.from,
            req_id: call.req_id,
            remoting,
        });
        match self.deactivating.get(&key).cloned() {
            Some(prev) => {
                tokio::spawn(async move {
                    prev.stopped().await;
                    reply.send(Ok(Vec::new()));
                });
            }
            None => reply.send(Ok(Vec::new())),
        }
    }
}
