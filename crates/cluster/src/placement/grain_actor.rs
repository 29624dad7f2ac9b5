//! The grain actor: one activation of a grain, its messages, the answer that
//! goes back exactly once, and the registry of kinds (`GrainKinds`).

use super::*;

pub(super) type Responder = Result<Vec<u8>, PlacementError>;

/// Where an answer goes.
pub(super) enum ReplyTarget {
    Local(oneshot::Sender<Responder>),
    Remote {
        node: NodeId,
        req_id: u64,
        remoting: RemotingHandle,
    },
}

/// Answers exactly once. Dropped unanswered, it answers
/// `placement.activation_failed` if the grain had started on the request
/// (it failed), `placement.handed_off` if it never ran (the activation
/// stopped first).
pub(super) struct Reply {
    pub(super) target: Option<ReplyTarget>,
    pub(super) started: bool,
}

impl Reply {
    pub(super) fn new(target: ReplyTarget) -> Self {
        Self {
            target: Some(target),
            started: false,
        }
    }

    pub(super) fn send(mut self, result: Responder) {
        if let Some(target) = self.target.take() {
            deliver(target, result);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(target) = self.target.take() {
            let e = if self.started {
                PlacementError::ActivationFailed
            } else {
                PlacementError::HandedOff
            };
            deliver(target, Err(e));
        }
    }
}

pub(super) fn deliver(target: ReplyTarget, result: Responder) {
    match target {
        ReplyTarget::Local(tx) => {
            let _ = tx.send(result);
        }
        ReplyTarget::Remote {
            node,
            req_id,
            remoting,
        } => {
            let reply = GrainReply {
                req_id,
                result: result
                    .map(serde_bytes::ByteBuf::from)
                    .map_err(|e| e.to_wire()),
            };
            match rmp_serde::to_vec(&reply) {
                Ok(bytes) => {
                    if let Err(e) = remoting.tell(&node, PLACEMENT_ACTOR, REPLY_TYPE, bytes) {
                        tracing::debug!(%node, req_id, error = %e, "grain answer not sent");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "grain answer not encodable"),
            }
        }
    }
}

/// A request for an activation.
pub struct Envelope {
    pub(super) payload: Vec<u8>,
    pub(super) reply: Reply,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("bytes", &self.payload.len())
            .finish()
    }
}

/// What a grain activation's mailbox receives.
pub enum GrainMsg {
    /// A request.
    Request(Envelope),
    /// Time to check for idleness (with an idle timeout).
    IdleCheck,
}

impl fmt::Debug for GrainMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request(e) => e.fmt(f),
            Self::IdleCheck => f.write_str("IdleCheck"),
        }
    }
}

/// Waits, once, before the first activation of an instance: for the
/// previous owners to release the grain (see [`PlacementSupervisor`]'s
/// hand-off).
pub(super) type Barrier = Arc<Mutex<Option<BoxFuture<'static, ()>>>>;

pub(super) const REASON_HANDOFF: u8 = 0;
pub(super) const REASON_IDLE: u8 = 1;
pub(super) const REASON_LEAVING: u8 = 2;

pub(super) fn reason_of(code: u8) -> DeactivationReason {
    match code {
        REASON_IDLE => DeactivationReason::Idle,
        REASON_LEAVING => DeactivationReason::Leaving,
        _ => DeactivationReason::HandOff,
    }
}

/// What an activation is spawned with.
pub(super) struct Setup {
    pub(super) ctx: GrainContext,
    pub(super) options: GrainOptions,
    pub(super) barrier: Barrier,
    pub(super) reason: Arc<AtomicU8>,
    pub(super) supervisor: ActorRef<PlacementMsg>,
    pub(super) node: Arc<str>,
    pub(super) crashed: Arc<std::sync::atomic::AtomicBool>,
}

/// The actor hosting one grain activation (see [`crate::grain`] for the
/// lifecycle).
pub(super) struct GrainActor<G> {
    pub(super) grain: G,
    pub(super) setup: Arc<Setup>,
    pub(super) activated: bool,
    /// A request is being handled: if the instance ends now, it failed
    /// mid-request and its state is not saved.
    pub(super) in_request: bool,
    pub(super) last_request: tokio::time::Instant,
}

impl<G: Grain> GrainActor<G> {
    /// Runs the barrier and `on_activate`; on failure answers the request
    /// that caused it with the error and stops this activation.
    pub(super) async fn activate(
        &mut self,
        reply: Reply,
        ctx: &mut Context<Self>,
    ) -> Option<Reply> {
        let barrier = lock(&self.setup.barrier).take();
        if let Some(b) = barrier {
            b.await;
        }
        let deadline = self.setup.options.deactivation_deadline;
        let outcome = tokio::time::timeout(deadline, self.grain.on_activate(&self.setup.ctx))
            .await
            .unwrap_or(Err(GrainError::ActivationTimeout(deadline)));
        match outcome {
            Ok(()) => {
                self.activated = true;
                if let Some(idle) = self.setup.options.idle_timeout {
                    ctx.schedule_once(idle / 2, GrainMsg::IdleCheck);
                }
                Some(reply)
            }
            Err(e) => {
                tracing::warn!(grain = %self.setup.ctx.key(), code = e.code(), error = %e, "grain activation failed");
                reply.send(Err(PlacementError::Reported {
                    code: e.code().to_owned(),
                    message: format!("activating {}: {e}", self.setup.ctx.key()),
                }));
                let _ = self.setup.supervisor.tell(PlacementMsg(Msg::Ended {
                    key: (
                        self.setup.ctx.key().kind.to_string(),
                        self.setup.ctx.key().id.to_string(),
                    ),
                    actor: ctx.myself().id(),
                }));
                ctx.stop();
                None
            }
        }
    }
}

impl<G: Grain> Actor for GrainActor<G> {
    type Msg = GrainMsg;

    async fn handle(&mut self, msg: GrainMsg, ctx: &mut Context<Self>) -> HandlerResult {
        let Envelope { payload, reply } = match msg {
            GrainMsg::Request(env) => env,
            GrainMsg::IdleCheck => {
                if let Some(idle) = self.setup.options.idle_timeout {
                    let quiet = self.last_request.elapsed();
                    if quiet >= idle {
                        // The supervisor decides (a request may be on its
                        // way here): it ends this activation if it is still
                        // the current one.
                        let _ = self.setup.supervisor.tell(PlacementMsg(Msg::Idle {
                            key: (
                                self.setup.ctx.key().kind.to_string(),
                                self.setup.ctx.key().id.to_string(),
                            ),
                            actor: ctx.myself().id(),
                        }));
                        ctx.schedule_once(idle, GrainMsg::IdleCheck);
                    } else {
                        ctx.schedule_once(idle - quiet, GrainMsg::IdleCheck);
                    }
                }
                return Ok(());
            }
        };
        let mut reply = reply;
        if !self.activated {
            match self.activate(reply, ctx).await {
                Some(r) => reply = r,
                None => return Ok(()),
            }
        }
        reply.started = true;
        self.last_request = tokio::time::Instant::now();
        let request: G::Request = match rmp_serde::from_slice(&payload) {
            Ok(r) => r,
            Err(e) => {
                reply.send(Err(PlacementError::Codec(format!("request: {e}"))));
                return Ok(());
            }
        };
        self.in_request = true;
        let response = self.grain.handle(request).await;
        self.in_request = false;
        let encoded = rmp_serde::to_vec(&response)
            .map_err(|e| PlacementError::Codec(format!("response: {e}")));
        reply.send(encoded);
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if !self.activated || self.in_request || self.setup.crashed.load(Ordering::Relaxed) {
            return;
        }
        let reason = reason_of(self.setup.reason.load(Ordering::Relaxed));
        let deadline = self.setup.options.deactivation_deadline;
        let key = self.setup.ctx.key().clone();
        let outcome = tokio::time::timeout(deadline, self.grain.on_deactivate(reason)).await;
        let result = match outcome {
            Ok(Ok(())) => "ok",
            Ok(Err(e)) => {
                tracing::warn!(grain = %key, reason = reason.as_str(), code = e.code(), error = %e, "grain deactivation failed; the next activation loads the last saved state");
                "error"
            }
            Err(_) => {
                tracing::warn!(grain = %key, reason = reason.as_str(), deadline = ?deadline, code = "grain.deactivation_timeout", "grain deactivation exceeded its deadline; the next activation loads the last saved state");
                "timeout"
            }
        };
        metrics::counter!(M_DEACTIVATIONS, "node" => self.setup.node.clone(), "reason" => reason.as_str(), "result" => result).increment(1);
    }
}

pub(super) type Spawner = Arc<
    dyn Fn(&mut Context<PlacementSupervisor>, Setup, &str) -> Result<ActorRef<GrainMsg>, SpawnError>
        + Send
        + Sync,
>;

/// The grain kinds a node hosts, each with its factory and options.
#[derive(Clone, Default)]
pub struct GrainKinds {
    pub(super) kinds: HashMap<String, (Spawner, GrainOptions)>,
}

impl fmt::Debug for GrainKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.kinds.keys().collect();
        names.sort();
        f.debug_list().entries(names).finish()
    }
}

impl GrainKinds {
    /// No kinds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `kind` with the default [`GrainOptions`] (no storage):
    /// `factory(id)` builds a fresh grain for `id`, at activation and again
    /// at each restart after a failure.
    pub fn with<G: Grain>(
        self,
        kind: &str,
        factory: impl Fn(&str) -> G + Send + Sync + 'static,
    ) -> Self {
        self.with_options(kind, GrainOptions::default(), factory)
    }

    /// Registers `kind` with its options (storage, schema, idle timeout,
    /// deactivation deadline).
    pub fn with_options<G: Grain>(
        mut self,
        kind: &str,
        options: GrainOptions,
        factory: impl Fn(&str) -> G + Send + Sync + 'static,
    ) -> Self {
        let factory = Arc::new(factory);
        let spawner: Spawner = Arc::new(move |ctx, setup, id| {
            let factory = factory.clone();
            let id = id.to_owned();
            let setup = Arc::new(setup);
            ctx.spawn_anonymous(move || GrainActor {
                grain: factory(&id),
                setup: setup.clone(),
                activated: false,
                in_request: false,
                last_request: tokio::time::Instant::now(),
            })
        });
        self.kinds.insert(kind.to_owned(), (spawner, options));
        self
    }

    /// Whether `kind` is registered.
    pub fn contains(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }
}
