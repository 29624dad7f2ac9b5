//! The registration of the local member: a leased key kept alive by a
//! background task that the provider owns.
//!
//! ```text
//!                 grant a lease (TTL), guarded put of the key with it
//!   Registering ───────────────────────────────────────────► Alive
//!     ▲    │ failed                                            │ keep-alive every TTL/3,
//!     │    ▼                                                   │ answered with TTL > 0: stay
//!     └─ Waiting (backoff with jitter) ◄───────────────────────┘
//!          │          lease lost (TTL 0, "lease not found") or keep-alive failed
//!          ▼ the key holds a newer incarnation (first put or re-registration)
//!       Stopped: ProviderError::Superseded (warned, counted)
//! ```
//!
//! A new lease and a new put after any loss: etcd restarted with an empty
//! data dir, the lease expired while etcd was unreachable, or a keep-alive
//! stream broke. Putting the key again with the new lease detaches it from
//! the old one, so a re-registration never deletes the key first: while the
//! old lease still lives, watchers see the same member again and publish
//! nothing new.
//!
//! # Every put is guarded by the incarnation order
//!
//! Incarnations of one node id are ordered, a greater one is a newer
//! process ([`Member::incarnation`]). Every put of the member key, the
//! first of a `register` call and every re-registration, is a
//! compare-and-swap ([`put_guarded`]): read the key, [`decide`], and put in
//! a transaction that holds only if the key did not change since the read
//! (`create_revision == 0` for an absent key, else `mod_revision` equal to
//! the one read). The put happens when the key is
//!
//! - absent;
//! - a member whose incarnation is not newer than ours: an older process of
//!   this node is replaced, our own (equal) entry is refreshed;
//! - not a member at all (not JSON, not a member, or a member of another
//!   node id under our key): overwritten with a warning naming the reason.
//!   No incarnation can be read from such a value, so nothing proves it
//!   newer; every process of this crate writes a decodable member, so it is
//!   corruption or a manual write; watchers already skip it (the node is
//!   invisible while it stays), and refusing would keep the node out of the
//!   cluster until an operator deleted it.
//!
//! When the key holds a newer incarnation, nothing is put: the task warns,
//! counts it ([`EtcdStats::superseded`](crate::EtcdStats::superseded)),
//! reports `ProviderError::Superseded` (to the waiting `register` call, else
//! through the watch streams, see [`Supersession`]) and stops. When the
//! transaction fails (the key changed between the read and the put), the
//! read is repeated, at most [`CAS_ATTEMPTS`] times, then the attempt
//! fails as `provider.registration` and the task retries after its backoff.
//! The lease is granted once per attempt, before the first transaction, and
//! revoked when the attempt does not put.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use cluster_core::backoff::Backoff;
use cluster_core::{Member, ProviderError};
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::connection::{Connection, Op, classify, is_lease_not_found, timed_out};
use crate::layout::KeyLayout;
use crate::stats::Stats;
use crate::supersession::Supersession;

/// How many times one attempt reads the key again after its transaction
/// failed because the key changed in between.
pub(crate) const CAS_ATTEMPTS: usize = 5;

/// What a registration task shares with its provider.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) conn: Arc<Connection>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) layout: Arc<KeyLayout>,
    pub(crate) supersession: Arc<Supersession>,
}

/// A running registration. Dropping it stops the keep-alive (the key then
/// expires with its lease); [`stop`](Self::stop) also waits for the task.
pub(crate) struct Registration {
    task: Option<JoinHandle<()>>,
    lease: Arc<AtomicI64>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Registration {
    /// Starts registering `local`. The receiver gets the result of the
    /// first attempt; the task keeps trying after a failure, and stops when
    /// a newer incarnation holds the key. `previous_lease` (of a
    /// registration this one replaces) is revoked once the key is put with
    /// the new lease, or once the task stops superseded.
    pub(crate) fn start(
        shared: Shared,
        local: Member,
        previous_lease: Option<i64>,
    ) -> (Self, oneshot::Receiver<Result<(), ProviderError>>) {
        let (tx, rx) = oneshot::channel();
        let lease = Arc::new(AtomicI64::new(0));
        let task = tokio::spawn(run(shared, local, lease.clone(), previous_lease, tx));
        (
            Self {
                task: Some(task),
                lease,
            },
            rx,
        )
    }

    /// The current lease id, if a put succeeded.
    pub(crate) fn lease(&self) -> Option<i64> {
        Some(self.lease.load(Ordering::Acquire)).filter(|l| *l != 0)
    }

    /// Stops the keep-alive and waits until the task is gone, so that it
    /// puts nothing after this returns.
    pub(crate) async fn stop(mut self) -> Option<i64> {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.lease()
    }
}

enum KeepAliveEnd {
    /// etcd says the lease is gone.
    Lost,
    /// The keep-alive failed; the lease may or may not live.
    Failed(ProviderError),
}

/// The result of one registration attempt.
#[derive(Debug)]
enum Put {
    /// The key is put with this lease.
    Done(i64),
    /// A newer incarnation of the node holds the key (this one).
    Superseded(u64),
}

/// What the key holds, as read: its mod revision and the incarnation of
/// the member in it, or why it is not a member.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    mod_revision: i64,
    incarnation: Result<u64, String>,
}

/// What to do with the key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Decision {
    /// It is absent: put if it still is.
    Create,
    /// It holds an incarnation not newer than ours, or no member (`why`):
    /// put if it did not change.
    Replace {
        mod_revision: i64,
        malformed: Option<String>,
    },
    /// It holds a newer incarnation: never put.
    Superseded { newer: u64 },
}

/// The rule of the [module documentation](self): absent, not newer, or not
/// a member → put; newer → superseded.
fn decide(stored: Option<Stored>, ours: u64) -> Decision {
    match stored {
        None => Decision::Create,
        Some(Stored {
            incarnation: Ok(theirs),
            ..
        }) if theirs > ours => Decision::Superseded { newer: theirs },
        Some(Stored {
            mod_revision,
            incarnation,
        }) => Decision::Replace {
            mod_revision,
            malformed: incarnation.err(),
        },
    }
}

async fn run(
    shared: Shared,
    local: Member,
    lease_slot: Arc<AtomicI64>,
    mut previous_lease: Option<i64>,
    first: oneshot::Sender<Result<(), ProviderError>>,
) {
    let Shared {
        conn,
        stats,
        layout,
        supersession,
    } = &shared;
    let cfg = conn.config.clone();
    let key = layout.key_of(&local.node_id);
    let value = KeyLayout::encode(&local);
    let incarnation = local.incarnation;
    let mut first = Some(first);
    let mut backoff = Backoff::new(cfg.retry_initial, cfg.retry_max);
    loop {
        match put_guarded(&shared, &key, &value, incarnation).await {
            Ok(Put::Done(lease)) => {
                lease_slot.store(lease, Ordering::Release);
                supersession.registered(&local.node_id, incarnation);
                stats.registered();
                tracing::debug!(provider = %cfg.name, key = %key, lease, incarnation, "registered");
                if let Some(tx) = first.take() {
                    let _ = tx.send(Ok(()));
                }
                if let Some(old) = previous_lease.take().filter(|old| *old != lease) {
                    revoke(conn, old).await;
                }
                match keep_alive(conn, lease, &mut backoff).await {
                    KeepAliveEnd::Lost => {
                        stats.lease_lost();
                        tracing::warn!(provider = %cfg.name, key = %key, lease, "lease lost; registering again");
                    }
                    KeepAliveEnd::Failed(e) => {
                        tracing::warn!(provider = %cfg.name, key = %key, lease, error = %e, "lease keep-alive failed; registering again");
                    }
                }
            }
            Ok(Put::Superseded(newer)) => {
                lease_slot.store(0, Ordering::Release);
                stats.superseded();
                tracing::warn!(
                    provider = %cfg.name,
                    key = %key,
                    incarnation,
                    newer_incarnation = newer,
                    "a newer incarnation of this node holds its key; this process is superseded and no longer registers"
                );
                let e = ProviderError::Superseded {
                    node: local.node_id.clone(),
                    incarnation,
                    newer,
                };
                // The waiting register call, else the watch streams.
                let told = first
                    .take()
                    .is_some_and(|tx| tx.send(Err(e.clone())).is_ok());
                if !told {
                    supersession.report(e);
                }
                if let Some(old) = previous_lease.take() {
                    revoke(conn, old).await;
                }
                return;
            }
            Err(e) => {
                tracing::warn!(provider = %cfg.name, key = %key, error = %e, "registration failed; retrying");
                if let Some(tx) = first.take() {
                    let _ = tx.send(Err(e));
                }
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn revoke(conn: &Connection, lease: i64) {
    let _ = conn
        .call(Op::Deregister, |mut c| async move {
            c.lease_revoke(lease).await
        })
        .await;
}

/// One registration attempt: the compare-and-swap of the [module
/// documentation](self). A granted lease that holds nothing afterwards is
/// revoked.
async fn put_guarded(
    shared: &Shared,
    key: &str,
    value: &[u8],
    incarnation: u64,
) -> Result<Put, ProviderError> {
    let mut lease = None;
    let result = cas(shared, key, value, incarnation, &mut lease).await;
    if let (Some(granted), false) = (lease, matches!(result, Ok(Put::Done(_)))) {
        revoke(&shared.conn, granted).await;
    }
    result
}

async fn cas(
    shared: &Shared,
    key: &str,
    value: &[u8],
    incarnation: u64,
    lease: &mut Option<i64>,
) -> Result<Put, ProviderError> {
    let conn = &shared.conn;
    for _ in 0..CAS_ATTEMPTS {
        let read = conn
            .call(Op::Register, |mut c| {
                let key = key.to_owned();
                async move { c.get(key, None).await }
            })
            .await?;
        let stored = read.kvs().first().map(|kv| Stored {
            mod_revision: kv.mod_revision(),
            incarnation: shared
                .layout
                .decode(kv.key(), kv.value())
                .map(|m| m.incarnation),
        });
        let compare = match decide(stored, incarnation) {
            Decision::Superseded { newer } => return Ok(Put::Superseded(newer)),
            Decision::Create => Compare::create_revision(key, CompareOp::Equal, 0),
            Decision::Replace {
                mod_revision,
                malformed,
            } => {
                if let Some(reason) = malformed {
                    tracing::warn!(
                        provider = %conn.config.name,
                        %reason,
                        "the member key holds no member (no incarnation to respect); overwriting it"
                    );
                }
                Compare::mod_revision(key, CompareOp::Equal, mod_revision)
            }
        };
        let id = match *lease {
            Some(id) => id,
            None => {
                let ttl = i64::try_from(conn.config.lease_ttl.as_secs()).unwrap_or(i64::MAX);
                let id = conn
                    .call(Op::Register, |mut c| async move {
                        c.lease_grant(ttl, None).await
                    })
                    .await?
                    .id();
                *lease = Some(id);
                id
            }
        };
        let txn = Txn::new().when([compare]).and_then([TxnOp::put(
            key,
            value.to_vec(),
            Some(PutOptions::new().with_lease(id)),
        )]);
        let put = conn
            .call(Op::Register, |mut c| async move { c.txn(txn).await })
            .await?;
        if put.succeeded() {
            return Ok(Put::Done(id));
        }
        // The key changed between the read and the put: read it again.
    }
    Err(ProviderError::Registration(format!(
        "{key} changed under every one of {CAS_ATTEMPTS} guarded puts; retrying"
    )))
}

/// Keeps `lease` alive until it is lost or a keep-alive fails.
async fn keep_alive(conn: &Connection, lease: i64, backoff: &mut Backoff) -> KeepAliveEnd {
    let cfg = &conn.config;
    let bound = cfg.request_timeout;
    let opened = conn
        .call(Op::Register, |mut c| async move {
            c.lease_keep_alive(lease).await
        })
        .await;
    let (mut keeper, mut answers) = match opened {
        Ok(pair) => pair,
        Err(e) => return KeepAliveEnd::Failed(e),
    };
    loop {
        tokio::time::sleep(cfg.lease_keepalive_interval()).await;
        match tokio::time::timeout(bound, keeper.keep_alive()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if is_lease_not_found(&e) => return KeepAliveEnd::Lost,
            Ok(Err(e)) => return KeepAliveEnd::Failed(classify(&e, Op::Register)),
            Err(_) => return KeepAliveEnd::Failed(timed_out(cfg, bound)),
        }
        match tokio::time::timeout(bound, answers.message()).await {
            Ok(Ok(Some(answer))) if answer.ttl() > 0 => backoff.reset(),
            Ok(Ok(Some(_))) => return KeepAliveEnd::Lost,
            Ok(Ok(None)) => {
                return KeepAliveEnd::Failed(ProviderError::Registration(
                    "etcd closed the lease keep-alive stream".into(),
                ));
            }
            Ok(Err(e)) if is_lease_not_found(&e) => return KeepAliveEnd::Lost,
            Ok(Err(e)) => return KeepAliveEnd::Failed(classify(&e, Op::Register)),
            Err(_) => return KeepAliveEnd::Failed(timed_out(cfg, bound)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(mod_revision: i64, incarnation: Result<u64, &str>) -> Option<Stored> {
        Some(Stored {
            mod_revision,
            incarnation: incarnation.map_err(str::to_owned),
        })
    }

    #[test]
    fn i13_a_put_is_decided_by_the_incarnation_order() {
        assert_eq!(decide(None, 5), Decision::Create);
        for theirs in [0, 4, 5] {
            assert_eq!(
                decide(stored(12, Ok(theirs)), 5),
                Decision::Replace {
                    mod_revision: 12,
                    malformed: None
                },
                "{theirs}"
            );
        }
        for theirs in [6, u64::MAX] {
            assert_eq!(
                decide(stored(12, Ok(theirs)), 5),
                Decision::Superseded { newer: theirs }
            );
        }
        assert_eq!(
            decide(stored(3, Err("not a member")), u64::MAX),
            Decision::Replace {
                mod_revision: 3,
                malformed: Some("not a member".into())
            }
        );
    }
}
