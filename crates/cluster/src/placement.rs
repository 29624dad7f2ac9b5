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
//!
//! # Layout
//!
//! Split by role (issue 13, item 4): `supervisor` (the actor: its state,
//! spawning and subscriptions, following provisioning, recomputing),
//! `ownership` (the one computation of the table, the history of previous
//! owners, the release block), `routing` (the owner of a request, locating
//! an activation, calls from other nodes), `activation` (spawning and
//! ending activations, hand-off and release), `grain_actor` (one
//! activation, its answer, the kinds), `messages` (the mailbox and the wire
//! calls), `handle` ([`PlacementHandle`]: requests, retries, leaving) and
//! `error`.

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

mod activation;
mod error;
mod grain_actor;
mod handle;
mod messages;
mod ownership;
mod routing;
mod supervisor;

pub use self::error::PlacementError;
pub use self::grain_actor::{Envelope, GrainKinds, GrainMsg};
pub use self::handle::PlacementHandle;
pub use self::messages::PlacementMsg;
pub use self::supervisor::PlacementSupervisor;

use self::grain_actor::*;
use self::handle::*;
use self::messages::*;
use self::ownership::*;
use self::supervisor::*;

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
