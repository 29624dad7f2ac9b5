//! The PlacementSupervisor actor: its state, spawning it (subscriptions and
//! remote handlers), following provisioning and recomputing the ownership.

use super::*;

/// Requests waiting for a remote answer, by request id, with the node asked.
pub(super) type Pending = Mutex<HashMap<u64, (NodeId, oneshot::Sender<Responder>)>>;

pub(super) struct Shared {
    /// Set by [`PlacementHandle::crash`]: activations end without
    /// `on_deactivate`, as in a real crash.
    pub(super) crashed: Arc<std::sync::atomic::AtomicBool>,
    pub(super) local: NodeId,
    /// The cluster's name (grain storage keys).
    pub(super) cluster: Arc<str>,
    /// The `node` label of the metrics: `local` as a string.
    pub(super) node: Arc<str>,
    pub(super) config: PlacementConfig,
    pub(super) remoting: Option<RemotingHandle>,
    pub(super) pending: Pending,
    pub(super) next_req: AtomicU64,
}

impl Shared {
    /// Asks `node` to release `(kind, id)` and waits for its answer, at most
    /// `bound`. Any outcome lets the activation go on: an unreachable or
    /// slow previous owner must not block the grain (the store's versions
    /// still refuse a stale writer).
    pub(super) async fn release_remote(
        &self,
        node: NodeId,
        kind: String,
        id: String,
        bound: Duration,
    ) {
        let Some(remoting) = &self.remoting else {
            return;
        };
        let req_id = self.next_req.fetch_add(1, Ordering::Relaxed);
        let call = ReleaseCall {
            req_id,
            from: self.local.clone(),
            kind,
            id,
        };
        let Ok(bytes) = rmp_serde::to_vec(&call) else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(req_id, (node.clone(), tx));
        let _guard = PendingGuard {
            pending: &self.pending,
            req_id,
        };
        if let Err(e) = remoting.tell(&node, PLACEMENT_ACTOR, RELEASE_TYPE, bytes) {
            tracing::debug!(%node, error = %e, "release not sent; activating without waiting");
            return;
        }
        if tokio::time::timeout(bound, rx).await.is_err() {
            tracing::debug!(%node, kind = %call.kind, id = %call.id, "no release answer in time; activating");
        }
    }
}

/// The PlacementSupervisor system actor (`/system/placement`).
pub struct PlacementSupervisor {
    pub(super) shared: Arc<Shared>,
    pub(super) kinds: GrainKinds,
    /// Where the follower's catch-up pulls from.
    pub(super) source: Option<TopologySource>,
    /// What provisioning published, by seq_no; kept across restarts of the
    /// actor (a restarted instance does not pull again).
    pub(super) follower: SharedFollower,
    /// The ownership: computed here only ([`ownership()`]) and handed to the
    /// PartitionManager with every change.
    pub(super) table: Option<Arc<PartitionTable>>,
    /// The tables before `table`, newest first (at most `HISTORY`): whose
    /// owners a new activation asks to release the grain.
    pub(super) history: VecDeque<Arc<PartitionTable>>,
    pub(super) activations: HashMap<Key, Activation>,
    /// Activations told to stop whose `on_deactivate` may still run: a new
    /// activation of the same grain waits for them.
    pub(super) deactivating: HashMap<Key, ActorRef<GrainMsg>>,
    /// Grains released to another member, with who asked and when: not
    /// activated here again while this node's view disagrees with the
    /// asker's (it lacks the asker, or still names this node the owner),
    /// for at most [`RELEASE_BLOCK`]. Seq_nos are per node and cannot be
    /// compared across nodes; membership can.
    pub(super) released: HashMap<Key, (NodeId, tokio::time::Instant)>,
    /// Set by [`PlacementHandle::hand_off_all`]: no new activation.
    pub(super) leaving: bool,
}

impl PlacementSupervisor {
    /// Spawns the PlacementSupervisor for the member `local` as the system
    /// actor `/system/placement`, subscribed to `TopologyUpdated`,
    /// `RemoteNodeQuarantined` and `ProviderChanged`. Without `remoting` it
    /// places on this node only (requests owned elsewhere fail with
    /// `placement.remote`). `provisioning` is read once, right after the
    /// subscriptions (the follower's catch-up; a failed read is retried
    /// until one succeeds or a topology arrives), never again.
    pub fn spawn(
        system: &ActorSystem,
        local: &Member,
        kinds: GrainKinds,
        config: PlacementConfig,
        remoting: Option<RemotingHandle>,
        provisioning: Option<ProvisioningHandle>,
    ) -> Result<PlacementHandle, SpawnError> {
        let shared = Arc::new(Shared {
            crashed: Arc::default(),
            local: local.node_id.clone(),
            cluster: Arc::from(config.cluster.as_str()),
            node: Arc::from(local.node_id.to_string()),
            config,
            remoting,
            pending: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(1),
        });
        let for_actor = shared.clone();
        let follower = SharedFollower::new();
        let source = provisioning.map(TopologySource::from);
        let actor = system.spawn_system(PLACEMENT_ACTOR, move || PlacementSupervisor {
            shared: for_actor.clone(),
            kinds: kinds.clone(),
            source: source.clone(),
            follower: follower.clone(),
            table: None,
            history: VecDeque::new(),
            activations: HashMap::new(),
            deactivating: HashMap::new(),
            released: HashMap::new(),
            leaving: false,
        })?;
        let es = system.event_stream();
        es.subscribe::<TopologyUpdated, _>(&actor);
        es.subscribe::<RemoteNodeQuarantined, _>(&actor);
        es.subscribe::<ProviderChanged, _>(&actor);
        let _ = actor.tell(PlacementMsg(Msg::CatchUp));
        if let Some(remoting) = &shared.remoting {
            let calls = actor.clone();
            remoting.register_fn(PLACEMENT_ACTOR, CALL_TYPE, move |from, call: GrainCall| {
                // Answers go to the node that sent the call, whatever it
                // claims.
                if &call.from != from {
                    return Err("spoofed_sender");
                }
                calls
                    .tell(PlacementMsg(Msg::Call(Box::new(call))))
                    .map_err(|_| "undeliverable")
            });
            let releases = actor.clone();
            remoting.register_fn(
                PLACEMENT_ACTOR,
                RELEASE_TYPE,
                move |from, call: ReleaseCall| {
                    if &call.from != from {
                        return Err("spoofed_sender");
                    }
                    releases
                        .tell(PlacementMsg(Msg::Release(Box::new(call))))
                        .map_err(|_| "undeliverable")
                },
            );
            // Weak: Remoting's registry must not keep this node's placement
            // state (which holds a RemotingHandle) alive in a cycle.
            let replies = Arc::downgrade(&shared);
            remoting.register_fn(
                PLACEMENT_ACTOR,
                REPLY_TYPE,
                move |from, reply: GrainReply| {
                    let replies = replies.upgrade().ok_or("undeliverable")?;
                    let mut pending = lock(&replies.pending);
                    // Only the node that was asked may answer.
                    match pending.get(&reply.req_id) {
                        None => return Err("late_reply"),
                        Some((asked, _)) if asked != from => return Err("spoofed_sender"),
                        Some(_) => {}
                    }
                    let (_, waiter) = pending.remove(&reply.req_id).ok_or("late_reply")?;
                    drop(pending);
                    let result = reply
                        .result
                        .map(serde_bytes::ByteBuf::into_vec)
                        .map_err(PlacementError::from_wire);
                    let _ = waiter.send(result);
                    Ok(())
                },
            );
        }
        Ok(PlacementHandle { actor, shared })
    }

    /// Recomputes the ownership from the follower's view (after a new
    /// topology, a quarantine ahead of its topology, or a restart): hands
    /// off the activations that moved, stops everything while paused, fails
    /// the requests in flight to members that are gone, and hands the table
    /// and the moves to the PartitionManager ([`OwnershipChanged`], R3.3).
    pub(super) fn recompute(&mut self, ctx: &mut Context<Self>) {
        let next = Arc::new(ownership(&self.follower.lock()));
        let moves = match &self.table {
            Some(prev) => {
                let ids: Vec<(&str, &str)> = self
                    .activations
                    .keys()
                    .map(|(k, i)| (k.as_str(), i.as_str()))
                    .collect();
                prev.moved(&next, ids)
            }
            None => Vec::new(),
        };
        for m in &moves {
            if m.to.as_ref() != Some(&self.shared.local)
                && self.deactivate((m.kind.clone(), m.id.clone()), REASON_HANDOFF, ctx)
            {
                metrics::counter!(M_HANDOFFS, "node" => self.shared.node.clone()).increment(1);
            }
        }
        if next.is_paused() && !self.activations.is_empty() {
            // The status change is logged by the supervisor (N3: one line).
            tracing::debug!(
                status = next.status().as_str(),
                activations = self.activations.len(),
                "placement paused: stopping every activation"
            );
            self.stop_all(REASON_LEAVING, ctx);
        }
        let local = self.shared.local.clone();
        let now = tokio::time::Instant::now();
        self.released.retain(|(kind, id), (asker, at)| {
            now.duration_since(*at) < RELEASE_BLOCK
                && views_disagree(&next, &local, asker, kind, id)
        });
        self.fail_requests_to_departed(&next);
        if let Some(prev) = self.table.take() {
            push_history(&mut self.history, prev, &next);
        }
        if !moves.is_empty() {
            tracing::debug!(
                seq_no = next.seq_no(),
                moved = moves.len(),
                "activations handed off"
            );
        }
        self.table = Some(next.clone());
        metrics::gauge!(M_ACTIVATIONS, "node" => self.shared.node.clone())
            .set(self.activations.len() as f64);
        ctx.system().event_stream().publish(OwnershipChanged {
            seq_no: next.seq_no(),
            table: next,
            moves: Arc::from(moves),
        });
    }

    /// Requests waiting for an answer from a member that is no longer in
    /// the topology (it left or crashed) will not get one: they fail now
    /// with `placement.owner_left` instead of waiting out the request
    /// timeout. Not retried: the request may have run there.
    pub(super) fn fail_requests_to_departed(&self, table: &PartitionTable) {
        // A paused table (Starting, Empty, Unavailable, Draining) says
        // nothing about who left.
        if table.is_paused() {
            return;
        }
        let mut pending = lock(&self.shared.pending);
        let gone: Vec<u64> = pending
            .iter()
            .filter(|(_, (node, _))| !table.members().iter().any(|m| &m.node_id == node))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some((node, waiter)) = pending.remove(&id) {
                let _ = waiter.send(Err(PlacementError::OwnerLeft(node)));
            }
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Actor for PlacementSupervisor {
    type Msg = PlacementMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> HandlerResult {
        // After a restart: the subscriptions and the follower survive, the
        // table does not: recompute it from the follower's view (no pull).
        if ctx.restart_count() > 0 {
            let (applied, needs_catch_up) = {
                let f = self.follower.lock();
                (f.applied().is_some(), f.needs_catch_up())
            };
            if applied {
                self.recompute(ctx);
            }
            // A retry its previous instance had scheduled.
            if needs_catch_up {
                let _ = ctx.myself().tell(PlacementMsg(Msg::CatchUp));
            }
        }
        Ok(())
    }

    async fn handle(&mut self, msg: PlacementMsg, ctx: &mut Context<Self>) -> HandlerResult {
        match msg.0 {
            Msg::Topology(t) => {
                let step = self.follower.lock().step(t);
                if let Step::Applied { missed, .. } = step {
                    if missed > 0 {
                        tracing::warn!(
                            missed,
                            "placement: topologies were not delivered (gap); the newest carries them"
                        );
                    }
                    self.recompute(ctx);
                }
            }
            Msg::Quarantined(q) => {
                let (step, applied) = {
                    let mut f = self.follower.lock();
                    (f.step(q), f.applied().is_some())
                };
                if let Step::Quarantined(q) = step {
                    // A6: stop routing to it now, before its topology.
                    tracing::debug!(node = %q.node, incarnation = q.incarnation, seq_no = q.seq_no, "placement: node quarantined, no longer routed to");
                    // Before the first topology there is no table to take
                    // it out of (and none of seq_no 0 to publish): the
                    // follower keeps it pending for the first one.
                    if applied {
                        self.recompute(ctx);
                    }
                }
            }
            Msg::ProviderChanged(c) => {
                // The supervisor logs the change itself (N3: one line). One
                // ahead of the view makes the follower behind: placement
                // pauses until its topology arrives (see `owner`).
                let step = self.follower.lock().step(c);
                if let Step::ProviderChanged { change, ahead } = step {
                    tracing::debug!(from = ?change.from, to = ?change.to, reason = ?change.reason, seq_no = change.seq_no, ahead, "placement: active provider changed");
                }
            }
            Msg::Locate { kind, id, reply } => {
                metrics::counter!(M_REQUESTS, "node" => self.shared.node.clone()).increment(1);
                let _ = reply.send(self.locate(&kind, &id, ctx));
            }
            Msg::Call(call) => self.on_call(*call, ctx),
            Msg::Activations(reply) => {
                let mut v: Vec<_> = self
                    .activations
                    .iter()
                    .filter(|(_, a)| !a.actor.is_closed())
                    .map(|(k, _)| k.clone())
                    .collect();
                v.sort();
                let _ = reply.send(v);
            }
            Msg::HandOffAll(reply) => {
                self.leaving = true;
                let n = self.stop_all(REASON_LEAVING, ctx);
                // Answer once every `on_deactivate` has finished (their
                // saves are done before the node deregisters).
                let waiting: Vec<_> = self.deactivating.values().cloned().collect();
                tokio::spawn(async move {
                    futures::future::join_all(waiting.iter().map(|a| a.stopped())).await;
                    let _ = reply.send(n);
                });
            }
            Msg::CatchUp => match self.follower.catch_up_once(self.source.as_ref()).await {
                CatchUp::Pulled(Step::Applied { .. }) => self.recompute(ctx),
                CatchUp::Retry(delay) => {
                    ctx.schedule_once(delay, PlacementMsg(Msg::CatchUp));
                }
                CatchUp::Pulled(_) | CatchUp::Skipped => {}
            },
            Msg::Release(call) => self.on_release(*call, ctx),
            Msg::Idle { key, actor } => {
                if self
                    .activations
                    .get(&key)
                    .is_some_and(|a| a.actor.id() == actor)
                {
                    self.deactivate(key, REASON_IDLE, ctx);
                }
            }
            Msg::Ended { key, actor } => {
                if self
                    .activations
                    .get(&key)
                    .is_some_and(|a| a.actor.id() == actor)
                {
                    self.activations.remove(&key);
                    metrics::gauge!(M_ACTIVATIONS, "node" => self.shared.node.clone())
                        .set(self.activations.len() as f64);
                }
            }
            Msg::Deactivated { key, actor } => {
                if self.deactivating.get(&key).is_some_and(|a| a.id() == actor) {
                    self.deactivating.remove(&key);
                }
            }
        }
        Ok(())
    }
}
