//! The handle: requests (local or remote, retried while owners disagree),
//! queries and leaving.

use super::*;

/// A handle to a running [`PlacementSupervisor`].
#[derive(Clone)]
pub struct PlacementHandle {
    pub(super) actor: ActorRef<PlacementMsg>,
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for PlacementHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlacementHandle")
            .field("node", &self.shared.local)
            .finish_non_exhaustive()
    }
}

/// Removes a pending request when its caller stops waiting.
pub(super) struct PendingGuard<'a> {
    pub(super) pending: &'a Pending,
    pub(super) req_id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(&self.req_id);
    }
}

impl PlacementHandle {
    /// The actor.
    pub fn actor(&self) -> &ActorRef<PlacementMsg> {
        &self.actor
    }

    /// Sends `request` to the grain `(kind, id)` of type `G`, wherever it
    /// lives, and waits for its answer (see the [module
    /// documentation](crate::placement#a-request)).
    pub async fn request<G: Grain>(
        &self,
        kind: &str,
        id: &str,
        request: &G::Request,
    ) -> Result<G::Response, PlacementError> {
        let payload = rmp_serde::to_vec(request)
            .map_err(|e| PlacementError::Codec(format!("request: {e}")))?;
        let bytes = self.request_bytes(kind, id, payload).await?;
        rmp_serde::from_slice(&bytes).map_err(|e| PlacementError::Codec(format!("response: {e}")))
    }

    /// [`request`](Self::request) with an encoded request and answer.
    pub async fn request_bytes(
        &self,
        kind: &str,
        id: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, PlacementError> {
        let cfg = &self.shared.config;
        let timeout = cfg.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let attempts = async {
            let mut delay = cfg.retry_delay;
            loop {
                let (kind_s, id_s) = (kind.to_owned(), id.to_owned());
                let target = self
                    .actor
                    .ask(
                        |reply| {
                            PlacementMsg(Msg::Locate {
                                kind: kind_s,
                                id: id_s,
                                reply,
                            })
                        },
                        timeout,
                    )
                    .await
                    .map_err(|e| match e {
                        actor_runtime::AskError::Timeout(t) => PlacementError::Timeout(t),
                        _ => PlacementError::Stopped,
                    })??;
                let outcome = match target {
                    Target::Local(a) => self.call_local(&a, payload.clone()).await,
                    Target::Remote(node) => self.call_remote(node, kind, id, payload.clone()).await,
                };
                match outcome {
                    // Owners disagree while a topology spreads, the
                    // activation was handed off before the request ran, or
                    // the association with a new owner is still coming up:
                    // place again after a pause (the request has not run).
                    Err(
                        e @ (PlacementError::NotOwner(_)
                        | PlacementError::HandedOff
                        | PlacementError::Remote { .. }),
                    ) if self.shared.remoting.is_some()
                        || !matches!(e, PlacementError::Remote { .. }) =>
                    {
                        let now = tokio::time::Instant::now();
                        if now + delay >= deadline {
                            return Err(e);
                        }
                        tokio::time::sleep(delay).await;
                        delay = delay.saturating_mul(2).min(cfg.max_retry_delay);
                    }
                    other => return other,
                }
            }
        };
        tokio::time::timeout_at(deadline, attempts)
            .await
            .map_err(|_| PlacementError::Timeout(timeout))?
    }

    pub(super) async fn call_local(&self, a: &ActorRef<GrainMsg>, payload: Vec<u8>) -> Responder {
        let (tx, rx) = oneshot::channel();
        let env = GrainMsg::Request(Envelope {
            payload,
            reply: Reply::new(ReplyTarget::Local(tx)),
        });
        if let Err(
            TellError::Closed(GrainMsg::Request(env)) | TellError::Full(GrainMsg::Request(env)),
        ) = a.tell(env)
        {
            // Answer through the reply so the error path is the same.
            env.reply.send(Err(PlacementError::HandedOff));
        }
        rx.await.unwrap_or(Err(PlacementError::HandedOff))
    }

    pub(super) async fn call_remote(
        &self,
        node: NodeId,
        kind: &str,
        id: &str,
        payload: Vec<u8>,
    ) -> Responder {
        let Some(remoting) = &self.shared.remoting else {
            return Err(PlacementError::Remote {
                node,
                reason: "this node runs without remoting".into(),
            });
        };
        let req_id = self.shared.next_req.fetch_add(1, Ordering::Relaxed);
        let call = GrainCall {
            req_id,
            from: self.shared.local.clone(),
            kind: kind.to_owned(),
            id: id.to_owned(),
            payload,
        };
        let bytes =
            rmp_serde::to_vec(&call).map_err(|e| PlacementError::Codec(format!("call: {e}")))?;
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(req_id, (node.clone(), tx));
        let _guard = PendingGuard {
            pending: &self.shared.pending,
            req_id,
        };
        remoting
            .tell(&node, PLACEMENT_ACTOR, CALL_TYPE, bytes)
            .map_err(|e: RemotingError| PlacementError::Remote {
                node: node.clone(),
                reason: format!("{} ({})", e, e.code()),
            })?;
        rx.await.unwrap_or(Err(PlacementError::Stopped))
    }

    /// The activations on this node, sorted by `(kind, id)`.
    pub async fn activations(&self) -> Result<Vec<(String, String)>, PlacementError> {
        self.actor
            .ask(
                |r| PlacementMsg(Msg::Activations(r)),
                self.shared.config.request_timeout,
            )
            .await
            .map_err(|_| PlacementError::Stopped)
    }

    /// Deactivates every activation on this node and refuses new ones for
    /// good (the first step of a graceful leave); answers how many were
    /// running, once every `on_deactivate` has finished. Bounded by the
    /// request timeout; see [`hand_off_all_within`](Self::hand_off_all_within).
    pub async fn hand_off_all(&self) -> Result<usize, PlacementError> {
        self.hand_off_all_within(self.shared.config.request_timeout)
            .await
    }

    /// [`hand_off_all`](Self::hand_off_all) bounded by `timeout`: a node
    /// with many grains to save needs longer than one request. Running out
    /// of time is `placement.timeout` (the deactivations go on).
    pub async fn hand_off_all_within(&self, timeout: Duration) -> Result<usize, PlacementError> {
        self.actor
            .ask(|r| PlacementMsg(Msg::HandOffAll(r)), timeout)
            .await
            .map_err(|e| match e {
                actor_runtime::AskError::Timeout(t) => PlacementError::Timeout(t),
                _ => PlacementError::Stopped,
            })
    }

    /// Stops the PlacementSupervisor and its activations.
    pub fn stop(&self) {
        self.actor.stop();
    }

    /// Stops it the way a crash would: activations end without
    /// `on_deactivate` (nothing is saved). For demonstrations and tests.
    pub fn crash(&self) {
        self.shared.crashed.store(true, Ordering::SeqCst);
        self.actor.stop();
    }

    /// Waits until it has stopped.
    pub async fn stopped(&self) {
        self.actor.stopped().await;
    }
}
