//! The `PartitionManager` system actor (A6, R3.2, R3.3): a thin driver
//! around [`PartitionTable`] and [`OwnershipLedger`].
//!
//! - It follows `TopologyUpdated` from the EventStream, keeping the table of
//!   the newest topology (an update with an older seq_no is ignored).
//! - A partition-map request gets the latest table, or a
//!   `provisioning.unavailable` error that says why none is available: no
//!   topology yet, or placement paused (Empty, Unavailable, Draining) (R3.2).
//! - It takes ownership metadata as [`OwnershipChanged`] events, tagged with
//!   the seq_no of the topology they follow; anything older than what was
//!   applied is ignored (R3.3).

use std::sync::Arc;
use std::time::Duration;

use actor_runtime::{Actor, ActorRef, ActorSystem, Context, HandlerResult, ReplyTo, SpawnError};
use cluster_core::events::TopologyUpdated;
use cluster_core::{Member, ProvisioningError, Result};
use provisioning_actors::ProvisioningHandle;

use crate::partition::{Lease, LedgerOutcome, Moved, OwnershipLedger, PartitionTable};

/// Ownership moved because of the topology with `seq_no` (published by the
/// PlacementSupervisor, applied by the PartitionManager in the same logical
/// tick, R3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnershipChanged {
    /// The seq_no of the topology the moves follow.
    pub seq_no: u64,
    /// The identities that moved.
    pub moves: Arc<[Moved]>,
}

/// Messages of the [`PartitionManager`]; use [`PartitionHandle`].
pub enum PartitionMsg {
    /// A new topology.
    Topology(TopologyUpdated),
    /// New ownership metadata.
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
    /// Re-reads provisioning's current topology (sent by
    /// [`PartitionManager::spawn_following`] right after subscribing, so
    /// that nothing published in between is missed).
    CatchUp,
    /// The recorded lease of an identity, and the ledger's last seq_no.
    Lease {
        /// Kind.
        kind: String,
        /// Identity.
        id: String,
        /// Answer.
        reply: ReplyTo<(Option<Lease>, Option<u64>)>,
    },
}

impl From<TopologyUpdated> for PartitionMsg {
    fn from(t: TopologyUpdated) -> Self {
        Self::Topology(t)
    }
}

impl From<OwnershipChanged> for PartitionMsg {
    fn from(o: OwnershipChanged) -> Self {
        Self::Ownership(o)
    }
}

/// The actor.
#[derive(Default)]
pub struct PartitionManager {
    table: Option<Arc<PartitionTable>>,
    ledger: OwnershipLedger,
    provisioning: Option<ProvisioningHandle>,
}

/// A handle to a running [`PartitionManager`].
#[derive(Clone, Debug)]
pub struct PartitionHandle {
    actor: ActorRef<PartitionMsg>,
    timeout: Duration,
}

impl PartitionManager {
    /// Spawns it as the system actor `name` (e.g. `partitions`), subscribed
    /// to `TopologyUpdated` and [`OwnershipChanged`].
    pub fn spawn(
        system: &ActorSystem,
        name: &str,
    ) -> std::result::Result<PartitionHandle, SpawnError> {
        Self::spawn_following(system, name, None)
    }

    /// [`spawn`](Self::spawn), starting from `provisioning`'s current
    /// topology (one published before the subscription would otherwise be
    /// missed until the next change).
    pub fn spawn_following(
        system: &ActorSystem,
        name: &str,
        provisioning: Option<ProvisioningHandle>,
    ) -> std::result::Result<PartitionHandle, SpawnError> {
        let actor = system.spawn_system(name, move || PartitionManager {
            provisioning: provisioning.clone(),
            ..PartitionManager::default()
        })?;
        system
            .event_stream()
            .subscribe::<TopologyUpdated, _>(&actor);
        system
            .event_stream()
            .subscribe::<OwnershipChanged, _>(&actor);
        let _ = actor.tell(PartitionMsg::CatchUp);
        Ok(PartitionHandle {
            actor,
            timeout: Duration::from_secs(5),
        })
    }

    async fn catch_up(&mut self) {
        if let Some(p) = self.provisioning.clone()
            && let Ok(t) = p.topology().await
            && t.seq_no > 0
            && self
                .table
                .as_ref()
                .is_none_or(|cur| t.seq_no > cur.seq_no())
        {
            self.table = Some(Arc::new(PartitionTable::from_topology(&t)));
        }
    }

    fn table(&self) -> Result<&Arc<PartitionTable>> {
        self.table.as_ref().ok_or(ProvisioningError::Unavailable(
            "no topology has been published yet",
        ))
    }
}

impl Actor for PartitionManager {
    type Msg = PartitionMsg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> HandlerResult {
        // After a restart: the subscriptions survive, the table does not.
        if ctx.restart_count() > 0 {
            self.catch_up().await;
        }
        Ok(())
    }

    async fn handle(&mut self, msg: PartitionMsg, _ctx: &mut Context<Self>) -> HandlerResult {
        match msg {
            PartitionMsg::Topology(t) => {
                let newer = self
                    .table
                    .as_ref()
                    .is_none_or(|cur| t.topology.seq_no > cur.seq_no());
                if newer {
                    self.table = Some(Arc::new(PartitionTable::from_topology(&t.topology)));
                }
            }
            PartitionMsg::Ownership(o) => {
                let moves: Vec<Moved> = o.moves.iter().cloned().collect();
                if self.ledger.apply(o.seq_no, moves) == LedgerOutcome::Stale {
                    tracing::debug!(seq_no = o.seq_no, "stale ownership metadata ignored");
                }
            }
            PartitionMsg::CatchUp => self.catch_up().await,
            PartitionMsg::Map(reply) => {
                let r = self.table().and_then(|t| {
                    if t.is_paused() {
                        // `place` carries the reason for the status.
                        t.place("", "", None).map(|_| t.clone())
                    } else {
                        Ok(t.clone())
                    }
                });
                let _ = reply.send(r);
            }
            PartitionMsg::Owner { kind, id, reply } => {
                let r = self
                    .table()
                    .and_then(|t| t.place(&kind, &id, None).cloned());
                let _ = reply.send(r);
            }
            PartitionMsg::Lease { kind, id, reply } => {
                let lease = self.ledger.lease(&kind, &id).cloned();
                let _ = reply.send((lease, self.ledger.last_seq_no()));
            }
        }
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
