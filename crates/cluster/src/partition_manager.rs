//! The `PartitionManager` system actor (A6, R3.2–R3.4): the partition map
//! of this node, as the PlacementSupervisor computed it.
//!
//! # One way (issue 13)
//!
//! Ownership is computed in one place, the PlacementSupervisor, which must
//! recompute it in its own mailbox order before the next placement request
//! (R3.1). It hands every table it computes to the PartitionManager as
//! [`OwnershipChanged`] (the table, the seq_no of the topology it follows,
//! and the moves of its activations). The PartitionManager never builds a
//! table from a topology itself and sends nothing back.
//!
//! - It follows the provisioning events with a
//!   [`TopologyFollower`](crate::follower) (one successful pull at start,
//!   retried while it fails and no view is applied, never again):
//!   `TopologyUpdated`, `RemoteNodeQuarantined` and `ProviderChanged`.
//! - A partition-map request gets the latest table, or a
//!   `provisioning.unavailable` error that says why none is available: no
//!   topology yet, placement paused (Empty, Unavailable, Draining), or the
//!   table has been older than the follower's view for [`STALE_TABLE`]
//!   (no PlacementSupervisor computes tables on this system, or it
//!   stopped: an old table is not served silently) (R3.2).
//! - R3.4: after a `ProviderChanged` of seq_no `s`, no answer comes from a
//!   table older than `s`: partition-map and owner requests wait until the
//!   table of the new provider's topology arrives, for at most
//!   [`WAIT_BOUND`] (shorter than the callers' ask timeout), then they
//!   are answered `provisioning.unavailable` ("the active provider changed
//!   ..."). At most 1024 wait (callers that gave up are not counted);
//!   more are answered `provisioning.unavailable` at once. The
//!   supervisor's `ProviderChanged` and placement's table of the same
//!   seq_no reach this actor in either order (they come from two
//!   publishers): when the change comes first, answers wait briefly;
//!   when the table never comes, they fail within the bound.
//!   [`PartitionHandle::provider_change`] tells the last change,
//!   [`PartitionHandle::waiting`] how many queries wait.
//! - A6: the owner of an identity is never a quarantined incarnation: a
//!   `RemoteNodeQuarantined` takes effect at once, before the
//!   PlacementSupervisor's new table arrives (`provisioning.unavailable`
//!   meanwhile). The *partition map* is the PlacementSupervisor's table as
//!   it was computed: until its new table arrives (normally right after
//!   the quarantine) it still lists the quarantined incarnation; callers
//!   that pick owners from the map themselves check it against the
//!   topology's blocked set.
//! - It records the ownership metadata (the moves), tagged with the seq_no
//!   of the topology they follow; anything older than what was applied is
//!   ignored (R3.3).

use std::sync::Arc;
use std::time::Duration;

use actor_runtime::{Actor, ActorRef, ActorSystem, Context, HandlerResult, ReplyTo, SpawnError};
use cluster_core::events::{ProviderChanged, RemoteNodeQuarantined, TopologyUpdated};
use cluster_core::{Member, ProvisioningError, Result};
use provisioning_actors::ProvisioningHandle;
use tokio::time::Instant;

use crate::follower::{CatchUp, SharedFollower, Step, TopologySource};
use crate::partition::{Lease, LedgerOutcome, Moved, OwnershipLedger, PartitionTable};

/// The ownership of the topology with `seq_no`, computed by the
/// PlacementSupervisor (the one place that computes it) and handed to the
/// PartitionManager in the same logical tick (R3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnershipChanged {
    /// The seq_no of the topology the table and the moves follow.
    pub seq_no: u64,
    /// The table: who owns each identity (the topology's members, without
    /// the incarnations quarantined ahead of it).
    pub table: Arc<PartitionTable>,
    /// The placement's activations that moved.
    pub moves: Arc<[Moved]>,
}

/// Messages of the [`PartitionManager`]; use [`PartitionHandle`].
pub enum PartitionMsg {
    /// A new topology.
    Topology(TopologyUpdated),
    /// A node incarnation was quarantined (A6).
    Quarantined(RemoteNodeQuarantined),
    /// The active provider changed (R3.4).
    ProviderChanged(ProviderChanged),
    /// A new table and ownership metadata.
    Ownership(OwnershipChanged),
    /// The latest table, or why there is none (R3.2).
    Map(ReplyTo<Result<Arc<PartitionTable>>>),
    /// The owner of an identity, or why none can be chosen.
    Owner {
        /// Kind.
        kind: String,
        /// Identity.
        id: String,
        /// Answer.
        reply: ReplyTo<Result<Member>>,
    },
    /// The one catch-up of the follower (sent by
    /// [`PartitionManager::spawn_following`] right after subscribing, and
    /// again after a failed pull).
    CatchUp,
    /// Answers the waiting queries whose time is up (a timer).
    Expire,
    /// How many queries wait (a debugging query).
    Waiting(ReplyTo<usize>),
    /// The recorded lease of an identity, and the ledger's last seq_no.
    Lease {
        /// Kind.
        kind: String,
        /// Identity.
        id: String,
        /// Answer.
        reply: ReplyTo<(Option<Lease>, Option<u64>)>,
    },
    /// The last provider change seen.
    Provider(ReplyTo<Option<ProviderChanged>>),
}

impl From<TopologyUpdated> for PartitionMsg {
    fn from(t: TopologyUpdated) -> Self {
        Self::Topology(t)
    }
}

impl From<RemoteNodeQuarantined> for PartitionMsg {
    fn from(q: RemoteNodeQuarantined) -> Self {
        Self::Quarantined(q)
    }
}

impl From<ProviderChanged> for PartitionMsg {
    fn from(c: ProviderChanged) -> Self {
        Self::ProviderChanged(c)
    }
}

impl From<OwnershipChanged> for PartitionMsg {
    fn from(o: OwnershipChanged) -> Self {
        Self::Ownership(o)
    }
}

/// The actor.
pub struct PartitionManager {
    table: Option<Arc<PartitionTable>>,
    ledger: OwnershipLedger,
    source: Option<TopologySource>,
    /// Kept across restarts of the actor: a restarted instance does not
    /// pull again.
    follower: SharedFollower,
    /// The last table, kept across restarts too (it comes from the
    /// PlacementSupervisor only when ownership is recomputed).
    kept: Arc<std::sync::Mutex<Option<Arc<PartitionTable>>>>,
    /// Queries waiting for the table of the last provider change (R3.4),
    /// each with its deadline.
    waiting: Vec<(Query, Instant)>,
    /// Since when the table is older than the follower's view (`None`
    /// while it is not): see [`STALE_TABLE`].
    table_behind_since: Option<Instant>,
}

/// Queries kept waiting at most (R3.4). Queries whose caller has gone
/// (an ask timed out) are dropped before counting.
const MAX_WAITING: usize = 1024;

/// How long a query waits for the table of a provider change before it is
/// answered `provisioning.unavailable` (R3.2): shorter than the callers'
/// ask timeout ([`PartitionHandle`]'s 5 s), so a table that never comes
/// gives callers the reason, not an ask timeout.
pub const WAIT_BOUND: Duration = Duration::from_secs(2);

/// How long the table may be older than the follower's view before every
/// answer is `provisioning.unavailable`: the PlacementSupervisor's table of
/// a topology normally arrives right after it; one that does not (no
/// PlacementSupervisor on this system, or it stopped) must not be replaced
/// by an old table served silently.
pub const STALE_TABLE: Duration = Duration::from_secs(2);

/// A query that may wait for the table of a provider change.
enum Query {
    Map(ReplyTo<Result<Arc<PartitionTable>>>),
    Owner {
        kind: String,
        id: String,
        reply: ReplyTo<Result<Member>>,
    },
}

impl Query {
    /// Whether the caller no longer waits.
    fn is_closed(&self) -> bool {
        match self {
            Self::Map(reply) => reply.is_closed(),
            Self::Owner { reply, .. } => reply.is_closed(),
        }
    }
}

/// A handle to a running [`PartitionManager`].
#[derive(Clone, Debug)]
pub struct PartitionHandle {
    actor: ActorRef<PartitionMsg>,
    timeout: Duration,
}

impl PartitionManager {
    /// Spawns it as the system actor `name` (e.g. `partitions`), subscribed
    /// to `TopologyUpdated`, `RemoteNodeQuarantined`, `ProviderChanged` and
    /// [`OwnershipChanged`].
    ///
    /// It serves the tables a [`PlacementSupervisor`](crate::placement::PlacementSupervisor)
    /// of the same system computes, and nothing else: without one running
    /// (never spawned, stopped first, crashed for good) it has no table,
    /// or one older than its view, and answers `provisioning.unavailable`
    /// once the table is [`STALE_TABLE`] behind the view. Spawn it before
    /// the PlacementSupervisor (a table published before this actor
    /// subscribed is not re-sent; the next topology brings one).
    pub fn spawn(
        system: &ActorSystem,
        name: &str,
    ) -> std::result::Result<PartitionHandle, SpawnError> {
        Self::spawn_following(system, name, None)
    }

    /// [`spawn`](Self::spawn), catching up once with `provisioning`'s
    /// current topology (one published before the subscription would
    /// otherwise be missed until the next change).
    pub fn spawn_following(
        system: &ActorSystem,
        name: &str,
        provisioning: Option<ProvisioningHandle>,
    ) -> std::result::Result<PartitionHandle, SpawnError> {
        Self::spawn_with_source(system, name, provisioning.map(TopologySource::from))
    }

    /// [`spawn_following`](Self::spawn_following) with any source of the
    /// current topology (a failed pull is retried while no view is applied).
    pub fn spawn_with_source(
        system: &ActorSystem,
        name: &str,
        source: Option<TopologySource>,
    ) -> std::result::Result<PartitionHandle, SpawnError> {
        let follower = SharedFollower::new();
        let kept: Arc<std::sync::Mutex<Option<Arc<PartitionTable>>>> = Arc::default();
        let actor = system.spawn_system(name, move || PartitionManager {
            source: source.clone(),
            follower: follower.clone(),
            table: kept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            kept: kept.clone(),
            ledger: OwnershipLedger::default(),
            waiting: Vec::new(),
            table_behind_since: None,
        })?;
        let es = system.event_stream();
        es.subscribe::<TopologyUpdated, _>(&actor);
        es.subscribe::<RemoteNodeQuarantined, _>(&actor);
        es.subscribe::<ProviderChanged, _>(&actor);
        es.subscribe::<OwnershipChanged, _>(&actor);
        let _ = actor.tell(PartitionMsg::CatchUp);
        Ok(PartitionHandle {
            actor,
            timeout: Duration::from_secs(5),
        })
    }

    /// Whether the table is older than a provider change this node was
    /// told about (R3.4): answers wait for the table of its topology.
    fn behind_change(&self) -> bool {
        let Some(table) = &self.table else {
            return false;
        };
        let f = self.follower.lock();
        let change = f.provider_change().map(|c| c.seq_no);
        f.behind().is_some() || change.is_some_and(|s| s > table.seq_no())
    }

    /// Keeps `table_behind_since` current (after every message).
    fn track_table_age(&mut self) {
        let applied = self.follower.lock().applied();
        let behind = applied.is_some_and(|a| self.table.as_ref().is_none_or(|t| t.seq_no() < a));
        if !behind {
            self.table_behind_since = None;
        } else if self.table_behind_since.is_none() {
            self.table_behind_since = Some(Instant::now());
        }
    }

    /// The table answers come from, or why there is none (R3.2, R3.4).
    fn table(&self) -> Result<&Arc<PartitionTable>> {
        if self
            .table_behind_since
            .is_some_and(|since| since.elapsed() >= STALE_TABLE)
        {
            return Err(ProvisioningError::Unavailable(
                "the ownership of the current topology has not arrived (is the placement supervisor running?)",
            ));
        }
        let table = self.table.as_ref().ok_or(ProvisioningError::Unavailable(
            "no topology has been published yet",
        ))?;
        if self.behind_change() {
            return Err(ProvisioningError::Unavailable(
                "the active provider changed: the ownership of its topology has not arrived yet",
            ));
        }
        Ok(table)
    }

    fn map(&self) -> Result<Arc<PartitionTable>> {
        self.table().and_then(|t| {
            if t.is_paused() {
                // `place` carries the reason for the status.
                t.place("", "", None).map(|_| t.clone())
            } else {
                Ok(t.clone())
            }
        })
    }

    /// Answers `query` now, or keeps it until the table of the last
    /// provider change arrives (R3.4) or [`WAIT_BOUND`] passes (then it is
    /// answered `provisioning.unavailable`). At most [`MAX_WAITING`] wait,
    /// not counting those whose caller has gone; beyond that a query is
    /// answered `provisioning.unavailable` at once.
    fn answer(&mut self, query: Query, ctx: &mut Context<Self>) {
        if self.behind_change() {
            self.waiting.retain(|(q, _)| !q.is_closed());
            if self.waiting.len() < MAX_WAITING {
                self.waiting.push((query, Instant::now() + WAIT_BOUND));
                ctx.schedule_once(WAIT_BOUND, PartitionMsg::Expire);
                return;
            }
        }
        self.respond(query);
    }

    fn respond(&self, query: Query) {
        match query {
            Query::Map(reply) => {
                let _ = reply.send(self.map());
            }
            Query::Owner { kind, id, reply } => {
                let _ = reply.send(self.owner(&kind, &id));
            }
        }
    }

    /// Answers the waiting queries once the table has caught up, and those
    /// whose time is up.
    fn flush(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let now = Instant::now();
        let caught_up = !self.behind_change();
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(_, deadline)| caught_up || *deadline <= now);
        self.waiting = keep;
        for (query, _) in due {
            self.respond(query);
        }
    }

    fn owner(&self, kind: &str, id: &str) -> Result<Member> {
        let member = self.table()?.place(kind, id, None)?.clone();
        if self
            .follower
            .lock()
            .is_excluded(&member.node_id, member.incarnation)
        {
            return Err(ProvisioningError::Unavailable(
                "the owner is quarantined: ownership is being recomputed",
            ));
        }
        Ok(member)
    }
}

impl Actor for PartitionManager {
    type Msg = PartitionMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> HandlerResult {
        // A restarted instance resumes a catch-up whose retry its previous
        // instance had scheduled (the first instance's comes from spawn,
        // after the subscriptions).
        if ctx.restart_count() > 0 && self.follower.lock().needs_catch_up() {
            let _ = ctx.myself().tell(PartitionMsg::CatchUp);
        }
        Ok(())
    }

    async fn handle(&mut self, msg: PartitionMsg, ctx: &mut Context<Self>) -> HandlerResult {
        match msg {
            PartitionMsg::Topology(t) => {
                if let Step::Applied { missed, .. } = self.follower.lock().step(t)
                    && missed > 0
                {
                    tracing::warn!(
                        missed,
                        "partition manager: topologies were not delivered (gap)"
                    );
                }
            }
            PartitionMsg::Quarantined(q) => {
                if let Step::Quarantined(q) = self.follower.lock().step(q) {
                    tracing::debug!(node = %q.node, incarnation = q.incarnation, seq_no = q.seq_no, "partition manager: owner quarantined, not answered any more");
                }
            }
            PartitionMsg::ProviderChanged(c) => {
                if let Step::ProviderChanged { change, ahead } = self.follower.lock().step(c) {
                    tracing::debug!(from = ?change.from, to = ?change.to, seq_no = change.seq_no, ahead, "partition manager: active provider changed");
                }
            }
            PartitionMsg::Ownership(o) => {
                let moves: Vec<Moved> = o.moves.iter().cloned().collect();
                if self.ledger.apply(o.seq_no, moves) == LedgerOutcome::Stale {
                    tracing::debug!(seq_no = o.seq_no, "stale ownership metadata ignored");
                }
                // Per publisher order: a table of the same seq_no is a later
                // computation (e.g. after a quarantine) and replaces it.
                if self
                    .table
                    .as_ref()
                    .is_none_or(|t| o.table.seq_no() >= t.seq_no())
                {
                    *self
                        .kept
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(o.table.clone());
                    self.table = Some(o.table);
                }
            }
            PartitionMsg::CatchUp => {
                if let CatchUp::Retry(delay) =
                    self.follower.catch_up_once(self.source.as_ref()).await
                {
                    ctx.schedule_once(delay, PartitionMsg::CatchUp);
                }
            }
            PartitionMsg::Expire => {}
            PartitionMsg::Waiting(reply) => {
                let _ = reply.send(self.waiting.len());
            }
            PartitionMsg::Map(reply) => {
                self.track_table_age();
                self.answer(Query::Map(reply), ctx);
            }
            PartitionMsg::Owner { kind, id, reply } => {
                self.track_table_age();
                self.answer(Query::Owner { kind, id, reply }, ctx);
            }
            PartitionMsg::Lease { kind, id, reply } => {
                let lease = self.ledger.lease(&kind, &id).cloned();
                let _ = reply.send((lease, self.ledger.last_seq_no()));
            }
            PartitionMsg::Provider(reply) => {
                let _ = reply.send(self.follower.lock().provider_change().cloned());
            }
        }
        self.track_table_age();
        self.flush();
        Ok(())
    }
}

impl PartitionHandle {
    /// The actor.
    pub fn actor(&self) -> &ActorRef<PartitionMsg> {
        &self.actor
    }

    fn err(e: actor_runtime::AskError) -> ProvisioningError {
        ProvisioningError::Supervisor(format!("partition manager: {e}"))
    }

    /// The latest partition table, or why none is available (R3.2).
    pub async fn partition_map(&self) -> Result<Arc<PartitionTable>> {
        self.actor
            .ask(PartitionMsg::Map, self.timeout)
            .await
            .map_err(Self::err)?
    }

    /// The owner of `(kind, id)` in the latest topology.
    pub async fn owner(&self, kind: &str, id: &str) -> Result<Member> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.actor
            .ask(
                |reply| PartitionMsg::Owner { kind, id, reply },
                self.timeout,
            )
            .await
            .map_err(Self::err)?
    }

    /// How many partition-map and owner queries wait for the table of a
    /// provider change (R3.4; a debugging query).
    pub async fn waiting(&self) -> Result<usize> {
        self.actor
            .ask(PartitionMsg::Waiting, self.timeout)
            .await
            .map_err(Self::err)
    }

    /// The last `ProviderChanged` this PartitionManager received (R3.4).
    pub async fn provider_change(&self) -> Result<Option<ProviderChanged>> {
        self.actor
            .ask(PartitionMsg::Provider, self.timeout)
            .await
            .map_err(Self::err)
    }

    /// The recorded lease of `(kind, id)` and the ledger's last seq_no.
    pub async fn lease(&self, kind: &str, id: &str) -> Result<(Option<Lease>, Option<u64>)> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.actor
            .ask(
                |reply| PartitionMsg::Lease { kind, id, reply },
                self.timeout,
            )
            .await
            .map_err(Self::err)
    }
}
