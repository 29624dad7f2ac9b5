//! The `PlacementSupervisor` (A6, R3.1, R3.3–R3.5, R2.4, R5.3): virtual
//! actors ("grains") by kind and identity, activated on their owner.
//!
//! # Grains
//!
//! A grain is an actor addressed by `(kind, id)` instead of by reference.
//! It lives on the member that owns the identity in the current topology
//! ([rendezvous hashing](crate::partition)), so while the members agree on
//! the topology there is one activation per identity in the cluster (two
//! members with different views, during a change or a partition, may each
//! host one for a moment: activations are not a distributed lock). It is
//! activated on first use and answers requests one at a time
//! ([`Grain::handle`]). Kinds are registered with [`GrainKinds`], each with
//! a factory that builds a fresh instance for an id.
//!
//! # A request
//!
//! [`PlacementHandle::request`] encodes the request with `rmp-serde` and
//! asks the local PlacementSupervisor where `(kind, id)` lives:
//!
//! - **here**: the supervisor returns the activation (spawning it as its
//!   child on first use) and the request goes to its mailbox;
//! - **another member**: the request travels over Remoting as a
//!   `placement.call` to that member's PlacementSupervisor, which checks
//!   that it owns the identity in *its* topology, activates the grain and
//!   sends the answer back as a `placement.reply`;
//! - **nowhere**: placement is paused (`Starting`, `Empty`, `Unavailable`,
//!   `Draining`), and the request fails at once with the provisioning error
//!   that says why (R2.4, R5.3, R3.5).
//!
//! While a topology change spreads, two members may briefly disagree on the
//! owner. An owner that does not own the identity in its own view, or that
//! cannot place at all (it is draining, leaving, or its own status pauses
//! placement), answers `placement.not_owner`; the caller places again, with
//! a doubling pause ([`PlacementConfig::retry_delay`] up to
//! [`PlacementConfig::max_retry_delay`]), until it succeeds or
//! [`PlacementConfig::request_timeout`] has passed. The same holds when the
//! association with a new owner is not up yet (`placement.remote`) and when
//! an activation was handed off before the request ran
//! (`placement.handed_off`). A request that *ran* is never sent again: a
//! grain that fails while handling it answers
//! `placement.activation_failed`, and a request or answer lost on the wire
//! ends in `placement.timeout` (delivery is at most once). A grain is
//! therefore activated only where its host's view says it belongs.
//!
//! # Topology changes (R3.1, R3.3, R3.4, A6)
//!
//! The supervisor follows provisioning through a
//! [`TopologyFollower`](crate::follower) (one successful pull of the
//! current topology right after subscribing, retried while it fails and no
//! topology arrived; kept across restarts of this actor, never another). `TopologyUpdated` and placement requests share the
//! supervisor's mailbox, in publication order: a request issued after a
//! topology was published is placed under that topology or a newer one
//! (R3.1). Ownership is computed here and only here (`ownership`: the
//! view's members without the incarnations quarantined ahead of it); on
//! each change the supervisor:
//!
//! 1. computes which of its activations now belong to another member
//!    ([`PartitionTable::moved`]) and deactivates them (hand-off: each
//!    runs [`Grain::on_deactivate`], which saves its state; the next request
//!    activates the grain on its new owner, which loads it);
//! 2. publishes [`OwnershipChanged`] with the topology's seq_no, the table
//!    and the moves (even with no moves): the PartitionManager serves that
//!    table and records the moves (R3.3); it computes none itself;
//! 3. while the status pauses placement, stops every activation.
//!
//! A change is a newer topology, or a `RemoteNodeQuarantined` ahead of its
//! topology (A6): the node is not routed to from that moment, and requests
//! in flight to it fail with `placement.owner_left`.
//! `ProviderChanged` (R3.4) arrives after the `TopologyUpdated` of the same
//! seq_no (the ProvisioningSupervisor publishes them in that order); should
//! it ever be ahead, placement pauses (`provisioning.unavailable`) until
//! that topology arrives on the EventStream; nothing is pulled.
//!
//! # Hand-off of state (issue 18)
//!
//! A grain's state survives a move when its kind has a storage
//! ([`GrainOptions::storage`](crate::grain::GrainOptions::storage)) and the
//! grain saves it ([`crate::grain::PersistentState`]). The order is what
//! makes it safe: **the old owner deactivates (and saves) before the new
//! owner activates (and loads)**.
//!
//! - On a leave, the leaving node deactivates every activation and waits for
//!   their `on_deactivate` *before* it deregisters, so no other member owns
//!   its grains until their state is saved.
//! - On a join or any change where the previous owner stays a member, a new
//!   activation first asks the previous owners (the runner-up among the
//!   current members, which with rendezvous hashing is who owned the grain
//!   before this node joined, and the owners under the last few tables) to
//!   release it (`placement.release`): each deactivates the grain if it
//!   runs there and answers once `on_deactivate` has finished, and will not
//!   activate it again while its own view disagrees with the asker's (it
//!   does not list the asker yet, or still names itself the owner), for at
//!   most ten seconds.
//!   Requests that arrive meanwhile wait in the new activation's mailbox.
//!   An unreachable or slow previous owner delays the activation by at
//!   most the kind's deactivation deadline plus one second.
//! - After a crash there is nothing to wait for: the new owner loads the
//!   last saved state.
//!
//! What a partition can do: two sides that each believe they own a grain
//! can each activate it. Versioned writes make the second writer fail with
//! `storage.conflict` instead of overwriting; see `docs/grains.md`.
//!
//! # Failures
//!
//! A grain that panics or fails is restarted by the supervisor (its memory
//! is lost, and with a storage its next activation loads the last saved
//! state; the failed request is answered `placement.activation_failed` and
//! is not retried). Every error has a stable code ([`PlacementError::code`]).
//!
//! # Leaving
//!
//! [`PlacementHandle::hand_off_all`] (the first step of
//! [`Cluster::leave`](crate::Cluster::leave)) stops every activation and
//! makes this node refuse new ones for good: local requests fail with
//! `provisioning.draining`, remote ones are answered `placement.not_owner`
//! so that their callers retry until their views drop this node.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actor_runtime::{
    Actor, ActorId, ActorRef, ActorSystem, Context, HandlerResult, ReplyTo, SpawnError, TellError,
};
use cluster_core::events::{ProviderChanged, RemoteNodeQuarantined, TopologyUpdated};
use cluster_core::{GrainKey, Member, NodeId, ProvisioningError};
use futures::future::BoxFuture;
use provisioning_actors::ProvisioningHandle;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::follower::{CatchUp, SharedFollower, Step, TopologyFollower, TopologySource};
use crate::grain::{DeactivationReason, GrainContext, GrainError, GrainOptions};
use crate::partition::PartitionTable;
use crate::partition_manager::OwnershipChanged;
use crate::remoting::{RemotingError, RemotingHandle};

/// The actor name remote placement messages are addressed to.
pub const PLACEMENT_ACTOR: &str = "placement";
/// Type id of a remote grain request.
pub const CALL_TYPE: &str = "placement.call";
/// Type id of a remote grain answer.
pub const REPLY_TYPE: &str = "placement.reply";
/// Type id of a new owner's request that a previous owner release a grain
/// (deactivate it, and so save it) before the new owner activates it;
/// answered with a `placement.reply`.
pub const RELEASE_TYPE: &str = "placement.release";

pub(crate) const M_REQUESTS: &str = "placement_requests_total";
pub(crate) const M_ACTIVATIONS: &str = "placement_activations";
pub(crate) const M_HANDOFFS: &str = "placement_handoffs_total";
pub(crate) const M_DEACTIVATIONS: &str = "placement_deactivations_total";

pub use crate::grain::Grain;

/// Why a placement request failed. [`code`](Self::code) is stable.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// Placement is paused or stopped (the provisioning status), with the
    /// provisioning error's code (`provisioning.unavailable`,
    /// `provisioning.draining`).
    #[error(transparent)]
    Provisioning(#[from] ProvisioningError),
    /// No grain kind with this name is registered on the owner
    /// (`placement.unknown_kind`).
    #[error("no grain kind {0:?} is registered")]
    UnknownKind(String),
    /// The owner did not own the identity in its view after every attempt
    /// (`placement.not_owner`).
    #[error("{0}")]
    NotOwner(String),
    /// The request could not be sent to the owner (`placement.remote`).
    #[error("could not reach the owner {node}: {reason}")]
    Remote {
        /// The owner.
        node: NodeId,
        /// Remoting's reason (with its code).
        reason: String,
    },
    /// No answer in time (`placement.timeout`).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request or the answer could not be encoded or decoded
    /// (`placement.codec`).
    #[error("codec: {0}")]
    Codec(String),
    /// The activation failed while handling the request
    /// (`placement.activation_failed`); the request is not sent again.
    #[error("the activation failed while handling the request")]
    ActivationFailed,
    /// The activation stopped (handed off) before the request ran
    /// (`placement.handed_off`); placed again while time remains.
    #[error("the activation was handed off before the request ran")]
    HandedOff,
    /// The PlacementSupervisor is not running (`placement.stopped`).
    #[error("the placement supervisor is not running")]
    Stopped,
    /// The owner left the topology while the request was in flight
    /// (`placement.owner_left`): the request may or may not have run there,
    /// so it is not sent again (at most once); the caller decides.
    #[error("the owner {0} left the topology while the request was in flight; it may have run")]
    OwnerLeft(NodeId),
    /// An error reported by the owner, with its code.
    #[error("{code}: {message}")]
    Reported {
        /// The owner's error code.
        code: String,
        /// The owner's message.
        message: String,
    },
}

impl PlacementError {
    /// The stable code.
    pub fn code(&self) -> &str {
        match self {
            Self::Provisioning(e) => e.code(),
            Self::UnknownKind(_) => "placement.unknown_kind",
            Self::NotOwner(_) => "placement.not_owner",
            Self::Remote { .. } => "placement.remote",
            Self::Timeout(_) => "placement.timeout",
            Self::Codec(_) => "placement.codec",
            Self::ActivationFailed => "placement.activation_failed",
            Self::HandedOff => "placement.handed_off",
            Self::Stopped => "placement.stopped",
            Self::OwnerLeft(_) => "placement.owner_left",
            Self::Reported { code, .. } => code,
        }
    }

    fn to_wire(&self) -> WireFailure {
        WireFailure {
            code: self.code().to_owned(),
            message: self.to_string(),
        }
    }

    fn from_wire(f: WireFailure) -> Self {
        match f.code.as_str() {
            "placement.not_owner" => Self::NotOwner(f.message),
            "placement.activation_failed" => Self::ActivationFailed,
            "placement.handed_off" => Self::HandedOff,
            _ => Self::Reported {
                code: f.code,
                message: f.message,
            },
        }
    }
}

/// How placement behaves. [`PlacementConfig::default`] gives the defaults.
#[derive(Clone, Debug)]
pub struct PlacementConfig {
    /// Bound of one request, from locating the owner to the answer,
    /// retries included (default 5 s).
    pub request_timeout: Duration,
    /// First pause before placing a request again when owners disagree
    /// (`placement.not_owner`), the owner is not reachable yet
    /// (`placement.remote`) or an activation was handed off before the
    /// request ran (default 20 ms, doubled each time).
    pub retry_delay: Duration,
    /// Longest pause between two attempts (default 100 ms).
    pub max_retry_delay: Duration,
    /// The cluster's name, part of every grain's storage key (set by the
    /// `Cluster` bootstrap).
    pub cluster: String,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            retry_delay: Duration::from_millis(20),
            max_retry_delay: Duration::from_millis(100),
            cluster: String::new(),
        }
    }
}

type Responder = Result<Vec<u8>, PlacementError>;

/// Where an answer goes.
enum ReplyTarget {
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
struct Reply {
    target: Option<ReplyTarget>,
    started: bool,
}

impl Reply {
    fn new(target: ReplyTarget) -> Self {
        Self {
            target: Some(target),
            started: false,
        }
    }

    fn send(mut self, result: Responder) {
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

fn deliver(target: ReplyTarget, result: Responder) {
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
    payload: Vec<u8>,
    reply: Reply,
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
type Barrier = Arc<Mutex<Option<BoxFuture<'static, ()>>>>;

const REASON_HANDOFF: u8 = 0;
const REASON_IDLE: u8 = 1;
const REASON_LEAVING: u8 = 2;

fn reason_of(code: u8) -> DeactivationReason {
    match code {
        REASON_IDLE => DeactivationReason::Idle,
        REASON_LEAVING => DeactivationReason::Leaving,
        _ => DeactivationReason::HandOff,
    }
}

/// What an activation is spawned with.
struct Setup {
    ctx: GrainContext,
    options: GrainOptions,
    barrier: Barrier,
    reason: Arc<AtomicU8>,
    supervisor: ActorRef<PlacementMsg>,
    node: Arc<str>,
    crashed: Arc<std::sync::atomic::AtomicBool>,
}

/// The actor hosting one grain activation (see [`crate::grain`] for the
/// lifecycle).
struct GrainActor<G> {
    grain: G,
    setup: Arc<Setup>,
    activated: bool,
    /// A request is being handled: if the instance ends now, it failed
    /// mid-request and its state is not saved.
    in_request: bool,
    last_request: tokio::time::Instant,
}

impl<G: Grain> GrainActor<G> {
    /// Runs the barrier and `on_activate`; on failure answers the request
    /// that caused it with the error and stops this activation.
    async fn activate(&mut self, reply: Reply, ctx: &mut Context<Self>) -> Option<Reply> {
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

type Spawner = Arc<
    dyn Fn(&mut Context<PlacementSupervisor>, Setup, &str) -> Result<ActorRef<GrainMsg>, SpawnError>
        + Send
        + Sync,
>;

/// The grain kinds a node hosts, each with its factory and options.
#[derive(Clone, Default)]
pub struct GrainKinds {
    kinds: HashMap<String, (Spawner, GrainOptions)>,
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

/// A remote grain request.
#[derive(Serialize, Deserialize)]
struct GrainCall {
    req_id: u64,
    from: NodeId,
    kind: String,
    id: String,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct WireFailure {
    code: String,
    message: String,
}

/// A new owner asks a previous owner to release a grain.
#[derive(Serialize, Deserialize)]
struct ReleaseCall {
    req_id: u64,
    from: NodeId,
    kind: String,
    id: String,
}

/// A remote grain answer.
#[derive(Serialize, Deserialize)]
struct GrainReply {
    req_id: u64,
    result: Result<serde_bytes::ByteBuf, WireFailure>,
}

/// Where a request goes.
enum Target {
    Local(ActorRef<GrainMsg>),
    Remote(NodeId),
}

/// A message of the [`PlacementSupervisor`] (opaque: use
/// [`PlacementHandle`]; it is public so that the EventStream can deliver
/// `TopologyUpdated` and `ProviderChanged` to it).
pub struct PlacementMsg(Msg);

enum Msg {
    Topology(TopologyUpdated),
    Quarantined(RemoteNodeQuarantined),
    ProviderChanged(ProviderChanged),
    /// Where `(kind, id)` lives (activating it here if it is ours).
    Locate {
        kind: String,
        id: String,
        reply: ReplyTo<Result<Target, PlacementError>>,
    },
    /// A request from another member.
    Call(Box<GrainCall>),
    /// The activations on this node, sorted.
    Activations(ReplyTo<Vec<(String, String)>>),
    /// Stops every activation (graceful leave); answers how many stopped.
    HandOffAll(ReplyTo<usize>),
    /// The follower's one catch-up (sent right after the subscriptions,
    /// so nothing published before them is missed).
    CatchUp,
    /// A new owner asks for a grain (see `RELEASE_TYPE`).
    Release(Box<ReleaseCall>),
    /// An activation was idle for its kind's idle timeout.
    Idle {
        key: Key,
        actor: ActorId,
    },
    /// An activation failed to activate and stopped.
    Ended {
        key: Key,
        actor: ActorId,
    },
    /// A deactivating activation has stopped.
    Deactivated {
        key: Key,
        actor: ActorId,
    },
}

type Key = (String, String);

/// A running activation and the reason it will be given when it ends.
struct Activation {
    actor: ActorRef<GrainMsg>,
    reason: Arc<AtomicU8>,
}

impl fmt::Debug for PlacementMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match &self.0 {
            Msg::Topology(_) => "Topology",
            Msg::Quarantined(_) => "Quarantined",
            Msg::ProviderChanged(_) => "ProviderChanged",
            Msg::Locate { .. } => "Locate",
            Msg::Call(_) => "Call",
            Msg::Activations(_) => "Activations",
            Msg::HandOffAll(_) => "HandOffAll",
            Msg::CatchUp => "CatchUp",
            Msg::Release(_) => "Release",
            Msg::Idle { .. } => "Idle",
            Msg::Ended { .. } => "Ended",
            Msg::Deactivated { .. } => "Deactivated",
        };
        f.write_str(name)
    }
}

impl From<TopologyUpdated> for PlacementMsg {
    fn from(t: TopologyUpdated) -> Self {
        Self(Msg::Topology(t))
    }
}

impl From<RemoteNodeQuarantined> for PlacementMsg {
    fn from(q: RemoteNodeQuarantined) -> Self {
        Self(Msg::Quarantined(q))
    }
}

impl From<ProviderChanged> for PlacementMsg {
    fn from(c: ProviderChanged) -> Self {
        Self(Msg::ProviderChanged(c))
    }
}

/// Requests waiting for a remote answer, by request id, with the node asked.
type Pending = Mutex<HashMap<u64, (NodeId, oneshot::Sender<Responder>)>>;

struct Shared {
    /// Set by [`PlacementHandle::crash`]: activations end without
    /// `on_deactivate`, as in a real crash.
    crashed: Arc<std::sync::atomic::AtomicBool>,
    local: NodeId,
    /// The cluster's name (grain storage keys).
    cluster: Arc<str>,
    /// The `node` label of the metrics: `local` as a string.
    node: Arc<str>,
    config: PlacementConfig,
    remoting: Option<RemotingHandle>,
    pending: Pending,
    next_req: AtomicU64,
}

impl Shared {
    /// Asks `node` to release `(kind, id)` and waits for its answer, at most
    /// `bound`. Any outcome lets the activation go on: an unreachable or
    /// slow previous owner must not block the grain (the store's versions
    /// still refuse a stale writer).
    async fn release_remote(&self, node: NodeId, kind: String, id: String, bound: Duration) {
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
    shared: Arc<Shared>,
    kinds: GrainKinds,
    /// Where the follower's catch-up pulls from.
    source: Option<TopologySource>,
    /// What provisioning published, by seq_no; kept across restarts of the
    /// actor (a restarted instance does not pull again).
    follower: SharedFollower,
    /// The ownership: computed here only ([`ownership`]) and handed to the
    /// PartitionManager with every change.
    table: Option<Arc<PartitionTable>>,
    /// The tables before `table`, newest first (at most `HISTORY`): whose
    /// owners a new activation asks to release the grain.
    history: VecDeque<Arc<PartitionTable>>,
    activations: HashMap<Key, Activation>,
    /// Activations told to stop whose `on_deactivate` may still run: a new
    /// activation of the same grain waits for them.
    deactivating: HashMap<Key, ActorRef<GrainMsg>>,
    /// Grains released to another member, with who asked and when: not
    /// activated here again while this node's view disagrees with the
    /// asker's (it lacks the asker, or still names this node the owner),
    /// for at most [`RELEASE_BLOCK`]. Seq_nos are per node and cannot be
    /// compared across nodes; membership can.
    released: HashMap<Key, (NodeId, tokio::time::Instant)>,
    /// Set by [`PlacementHandle::hand_off_all`]: no new activation.
    leaving: bool,
}

/// Tables kept to find a grain's previous owners.
const HISTORY: usize = 4;

/// How long a released grain stays blocked here while the views disagree.
const RELEASE_BLOCK: Duration = Duration::from_secs(10);

/// Released grains remembered at most (a peer cannot grow the map without
/// bound).
const MAX_RELEASED: usize = 100_000;

/// The ownership under what `follower` knows: the one place it is computed
/// (the PartitionManager receives the result). The view's members, without
/// an incarnation quarantined ahead of the view (A6: not routed to from the
/// moment the quarantine is known, before its topology arrives).
fn ownership(follower: &TopologyFollower) -> PartitionTable {
    let view = follower.view();
    let quarantined = |m: &Member| {
        follower
            .pending_quarantines()
            .iter()
            .any(|q| q.node == m.node_id && q.incarnation == m.incarnation)
    };
    if view.members.iter().any(quarantined) {
        PartitionTable::from_members(
            view.members.iter().filter(|m| !quarantined(m)).cloned(),
            view.seq_no,
            view.status,
        )
    } else {
        PartitionTable::from_topology(view)
    }
}

/// The members a new activation of `(kind, id)` on `local` asks to release
/// the grain: the rendezvous runner-up among the current members (who owned
/// it before `local` joined; a node that just joined has no older table to
/// ask it from), then the owners under the older tables `history` (newest
/// first), each once, never `local`, and only those still members of
/// `table` (a member that left has saved before it deregistered; one that
/// crashed has nothing to release).
fn previous_owners(
    table: &PartitionTable,
    history: &VecDeque<Arc<PartitionTable>>,
    local: &NodeId,
    kind: &str,
    id: &str,
) -> Vec<NodeId> {
    let runner_up = table
        .members()
        .iter()
        .filter(|m| &m.node_id != local)
        .max_by_key(|m| {
            (
                crate::partition::weight(&m.node_id, kind, id),
                m.node_id.clone(),
            )
        })
        .map(|m| m.node_id.clone());
    let older = history
        .iter()
        .filter_map(|old| old.place(kind, id, None).ok().map(|m| m.node_id.clone()));
    let mut asked: Vec<NodeId> = Vec::new();
    for owner in runner_up.into_iter().chain(older) {
        if &owner != local
            && !asked.contains(&owner)
            && table.members().iter().any(|m| m.node_id == owner)
        {
            asked.push(owner);
        }
    }
    asked
}

/// Keeps `prev` (the table `next` replaces) in `history`, newest first, at
/// most [`HISTORY`], unless its membership is `next`'s (a status change, a
/// recompute of the same members): duplicates would push out older owners
/// and shorten [`previous_owners`]' reach.
fn push_history(
    history: &mut VecDeque<Arc<PartitionTable>>,
    prev: Arc<PartitionTable>,
    next: &PartitionTable,
) {
    if prev.hash() == next.hash() && prev.members() == next.members() {
        return;
    }
    history.push_front(prev);
    history.truncate(HISTORY);
}

/// Whether this node's view `table` disagrees with `asker`'s claim to own
/// `(kind, id)`: it does not list the asker, or it names this node the
/// owner.
fn views_disagree(
    table: &PartitionTable,
    local: &NodeId,
    asker: &NodeId,
    kind: &str,
    id: &str,
) -> bool {
    let lists_asker = table.members().iter().any(|m| &m.node_id == asker);
    let we_own = table.owner(kind, id).is_some_and(|m| &m.node_id == local);
    !lists_asker || we_own
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
    fn recompute(&mut self, ctx: &mut Context<Self>) {
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
    fn fail_requests_to_departed(&self, table: &PartitionTable) {
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

    /// Ends the activation of `key`, if any: `on_deactivate` runs with
    /// `reason`, and until the instance has stopped a new activation of the
    /// same grain waits for it. Returns whether there was one.
    fn deactivate(&mut self, key: Key, reason: u8, ctx: &mut Context<Self>) -> bool {
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
    fn stop_all(&mut self, reason: u8, ctx: &mut Context<Self>) -> usize {
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
    fn barrier(
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

    /// The owner of `(kind, id)` under the current table, or why there is
    /// none.
    fn owner(&self, kind: &str, id: &str) -> Result<NodeId, PlacementError> {
        let table = self.table.as_ref().ok_or(ProvisioningError::Unavailable(
            "placement paused: no topology has been published yet",
        ))?;
        if self.follower.lock().behind().is_some() {
            // R3.4: never place on a view older than a change this node
            // has been told about; its topology is on its way.
            return Err(ProvisioningError::Unavailable(
                "placement paused: the active provider changed and its topology has not arrived yet",
            )
            .into());
        }
        Ok(table.place(kind, id, None)?.node_id.clone())
    }

    /// The activation of `(kind, id)`, spawned on first use.
    fn activation(
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

    fn locate(
        &mut self,
        kind: &str,
        id: &str,
        ctx: &mut Context<Self>,
    ) -> Result<Target, PlacementError> {
        if self.leaving {
            return Err(ProvisioningError::Draining.into());
        }
        let owner = self.owner(kind, id)?;
        if owner == self.shared.local {
            self.activation(kind, id, ctx).map(Target::Local)
        } else {
            Ok(Target::Remote(owner))
        }
    }

    fn on_call(&mut self, call: GrainCall, ctx: &mut Context<Self>) {
        let Some(remoting) = self.shared.remoting.clone() else {
            return;
        };
        let reply = Reply::new(ReplyTarget::Remote {
            node: call.from.clone(),
            req_id: call.req_id,
            remoting,
        });
        let target = match self.owner(&call.kind, &call.id) {
            _ if self.leaving => Err(PlacementError::NotOwner(format!(
                "node {} is leaving the cluster",
                self.shared.local
            ))),
            Ok(owner) if owner == self.shared.local => self.activation(&call.kind, &call.id, ctx),
            Ok(owner) => Err(PlacementError::NotOwner(format!(
                "node {} does not own {}/{} in its topology (seq_no {}): {owner} does",
                self.shared.local,
                call.kind,
                call.id,
                self.table.as_ref().map_or(0, |t| t.seq_no())
            ))),
            // This node cannot place (draining, paused): the caller's view
            // is ahead or behind ours; it places again.
            Err(PlacementError::Provisioning(e)) => Err(PlacementError::NotOwner(format!(
                "node {} cannot place {}/{}: {e} ({})",
                self.shared.local,
                call.kind,
                call.id,
                e.code()
            ))),
            Err(e) => Err(e),
        };
        match target {
            Ok(a) => {
                if let Err(
                    TellError::Closed(GrainMsg::Request(env))
                    | TellError::Full(GrainMsg::Request(env)),
                ) = a.tell(GrainMsg::Request(Envelope {
                    payload: call.payload,
                    reply,
                })) {
                    env.reply.send(Err(PlacementError::HandedOff));
                }
            }
            Err(e) => reply.send(Err(e)),
        }
    }
}

impl PlacementSupervisor {
    /// A new owner asks for `(kind, id)`: deactivate it here (if it runs),
    /// answer once its `on_deactivate` has finished, and do not activate it
    /// again while this node's view disagrees with the asker's (see
    /// `released`). A kind this node does not host is answered at once and
    /// remembered nowhere; the map is bounded by [`MAX_RELEASED`].
    fn on_release(&mut self, call: ReleaseCall, ctx: &mut Context<Self>) {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

/// A handle to a running [`PlacementSupervisor`].
#[derive(Clone)]
pub struct PlacementHandle {
    actor: ActorRef<PlacementMsg>,
    shared: Arc<Shared>,
}

impl fmt::Debug for PlacementHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlacementHandle")
            .field("node", &self.shared.local)
            .finish_non_exhaustive()
    }
}

/// Removes a pending request when its caller stops waiting.
struct PendingGuard<'a> {
    pending: &'a Pending,
    req_id: u64,
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
    /// documentation](self#a-request)).
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

    async fn call_local(&self, a: &ActorRef<GrainMsg>, payload: Vec<u8>) -> Responder {
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

    async fn call_remote(&self, node: NodeId, kind: &str, id: &str, payload: Vec<u8>) -> Responder {
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

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_core::{MemberAddress, ProvisioningStatus};

    fn table(names: &[&str], seq_no: u64) -> PartitionTable {
        let members = names.iter().enumerate().map(|(i, n)| {
            Member::new(
                NodeId::new(n).expect("id"),
                MemberAddress::new("127.0.0.1", 4000 + u16::try_from(i).expect("few"))
                    .expect("addr"),
                1,
            )
        });
        PartitionTable::from_members(members, seq_no, ProvisioningStatus::Active)
    }

    fn nid(n: &str) -> NodeId {
        NodeId::new(n).expect("id")
    }

    /// An identity `local` owns in `t`, found by search.
    fn owned_by(t: &PartitionTable, local: &str) -> String {
        (0..10_000)
            .map(|i| format!("g-{i}"))
            .find(|id| {
                t.owner("k", id)
                    .is_some_and(|m| m.node_id.as_str() == local)
            })
            .expect("some identity")
    }

    /// Issue 18: after a join, the joiner asks the member that owned the
    /// grain before it joined (the rendezvous runner-up), though it has no
    /// older table; owners under older tables are asked once each, never
    /// itself, and only while they are members.
    #[test]
    fn g18_previous_owners_are_the_runner_up_and_older_owners_still_listed() {
        let before = table(&["a", "b"], 1);
        let after = table(&["a", "b", "c"], 2);
        let id = owned_by(&after, "c");
        let old_owner = before.owner("k", &id).expect("owner").node_id.clone();
        // A joiner without history asks the previous owner all the same.
        let asked = previous_owners(&after, &VecDeque::new(), &nid("c"), "k", &id);
        assert_eq!(asked, vec![old_owner.clone()]);
        // With history naming the same owner: asked once.
        let history: VecDeque<_> = [Arc::new(before.clone())].into();
        assert_eq!(
            previous_owners(&after, &history, &nid("c"), "k", &id),
            vec![old_owner.clone()]
        );
        // A previous owner that is gone from the current table is not asked.
        let without = table(&["c", if old_owner.as_str() == "a" { "b" } else { "a" }], 3);
        assert!(
            !previous_owners(&without, &history, &nid("c"), "k", &id).contains(&old_owner),
            "a member that left is not asked"
        );
        // Never oneself.
        let id_a = owned_by(&after, "a");
        assert!(!previous_owners(&after, &history, &nid("a"), "k", &id_a).contains(&nid("a")));
    }

    /// Issue 18: recomputes of the same membership (a status change, a
    /// quarantine recompute followed by its topology) keep no duplicate in
    /// the history, so the four entries reach four distinct memberships.
    #[test]
    fn g18_history_keeps_distinct_memberships_only() {
        let mut history = VecDeque::new();
        let ab = Arc::new(table(&["a", "b"], 1));
        let abc = table(&["a", "b", "c"], 2);
        push_history(&mut history, ab.clone(), &abc);
        assert_eq!(history.len(), 1);
        // The same members again (another seq_no, another status): skipped.
        for seq_no in 3..10 {
            let same = Arc::new(table(&["a", "b", "c"], seq_no));
            let next = PartitionTable::from_members(
                same.members().to_vec(),
                seq_no + 1,
                ProvisioningStatus::Degraded,
            );
            push_history(&mut history, same, &next);
        }
        assert_eq!(history.len(), 1, "no duplicates: {history:?}");
        assert!(Arc::ptr_eq(&history[0], &ab));
        // Distinct memberships: kept, newest first, at most HISTORY.
        for (i, names) in [&["a"][..], &["a", "c"], &["b"], &["c"], &["d"]]
            .iter()
            .enumerate()
        {
            let prev = Arc::new(table(names, 20 + i as u64));
            push_history(&mut history, prev, &abc);
        }
        assert_eq!(history.len(), HISTORY);
        assert_eq!(history[0].members()[0].node_id.as_str(), "d");
    }

    /// Issue 18: a released grain stays blocked only while this node's view
    /// disagrees with the asker's (it does not list the asker, or still
    /// names this node the owner); seq_nos are not compared across nodes.
    #[test]
    fn g18_views_disagree_by_membership_and_ownership() {
        let old = table(&["a", "b"], 9);
        let new = table(&["a", "b", "c"], 1);
        let id = owned_by(&new, "c");
        let owner_before = old.owner("k", &id).expect("owner").node_id.clone();
        // The old owner has not seen c join: disagree.
        assert!(views_disagree(&old, &owner_before, &nid("c"), "k", &id));
        // Once it lists c, which owns the grain: agree (whatever the seq_nos).
        assert!(!views_disagree(&new, &owner_before, &nid("c"), "k", &id));
        // If its view still names itself the owner: disagree.
        let id_own = owned_by(&new, owner_before.as_str());
        assert!(views_disagree(&new, &owner_before, &nid("c"), "k", &id_own));
    }
}
