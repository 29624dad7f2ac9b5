//! The registration of the local member: a leased key kept alive by a
//! background task that the provider owns.
//!
//! ```text
//!                 grant a lease (TTL), put the key with it
//!   Registering ───────────────────────────────────────────► Alive
//!     ▲    │ failed                                            │ keep-alive every TTL/3,
//!     │    ▼                                                   │ answered with TTL > 0: stay
//!     └─ Waiting (backoff with jitter) ◄───────────────────────┘
//!          │          lease lost (TTL 0, "lease not found") or keep-alive failed
//!          ▼ re-registering, the key holds another incarnation
//!       Stopped (warned, counted)
//! ```
//!
//! A new lease and a new put after any loss: etcd restarted with an empty
//! data dir, the lease expired while etcd was unreachable, or a keep-alive
//! stream broke. Putting the key again with the new lease detaches it from
//! the old one, so a re-registration never deletes the key first: while the
//! old lease still lives, watchers see the same member again and publish
//! nothing new.
//!
//! The first put of a registration is unconditional: a starting process is
//! the node's newest incarnation and takes the key over. A re-registration
//! is a transaction that puts only if the key is absent or still ours (our
//! incarnation, or the lease we lost); when another incarnation holds it (a
//! newer process of the same node id registered while this one was
//! partitioned or being replaced), the task warns, counts it
//! ([`EtcdStats::superseded`](crate::EtcdStats::superseded)) and stops:
//! watchers keep the newer incarnation.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use cluster_core::{Member, ProviderError};
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::connection::{Connection, Op, classify, is_lease_not_found, timed_out};
use crate::stats::Stats;

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
    /// Starts registering `value` under `key`. The receiver gets the result
    /// of the first attempt; the task keeps trying after a failure.
    /// `previous_lease` (of a registration this one replaces) is revoked
    /// once the key is put with the new lease.
    pub(crate) fn start(
        conn: Arc<Connection>,
        stats: Arc<Stats>,
        key: String,
        value: Vec<u8>,
        previous_lease: Option<i64>,
    ) -> (Self, oneshot::Receiver<Result<(), ProviderError>>) {
        let (tx, rx) = oneshot::channel();
        let lease = Arc::new(AtomicI64::new(0));
        let task = tokio::spawn(run(
            conn,
            stats,
            key,
            value,
            lease.clone(),
            previous_lease,
            tx,
        ));
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

/// What a re-registration may overwrite: the key holding this incarnation,
/// or still attached to the lease this registration last had.
#[derive(Clone, Copy, Debug)]
struct Ours {
    incarnation: u64,
    lease: i64,
}

/// The result of one registration attempt.
enum Put {
    /// The key is put with this lease.
    Done(i64),
    /// Another incarnation of the node owns the key (re-registration only).
    Superseded(u64),
}

async fn run(
    conn: Arc<Connection>,
    stats: Arc<Stats>,
    key: String,
    value: Vec<u8>,
    lease_slot: Arc<AtomicI64>,
    mut previous_lease: Option<i64>,
    first: oneshot::Sender<Result<(), ProviderError>>,
) {
    let cfg = conn.config.clone();
    let mut first = Some(first);
    let mut backoff = Backoff::new(cfg.retry_initial, cfg.retry_max);
    // The member's incarnation: a value we put always decodes (it is our
    // own encoding), so 0 only if it does not, and then no key is ours.
    let incarnation = serde_json::from_slice::<Member>(&value).map_or(0, |m| m.incarnation);
    // `None` until the first put succeeded: that one overwrites whatever
    // the key holds (a starting process is the node's newest incarnation).
    let mut ours: Option<Ours> = None;
    loop {
        match grant_and_put(&conn, &key, &value, ours).await {
            Ok(Put::Done(lease)) => {
                lease_slot.store(lease, Ordering::Release);
                ours = Some(Ours { incarnation, lease });
                stats.registered();
                tracing::debug!(provider = %cfg.name, key = %key, lease, "registered");
                if let Some(tx) = first.take() {
                    let _ = tx.send(Ok(()));
                }
                if let Some(old) = previous_lease.take().filter(|old| *old != lease) {
                    let _ = conn
                        .call(
                            Op::Deregister,
                            |mut c| async move { c.lease_revoke(old).await },
                        )
                        .await;
                }
                match keep_alive(&conn, lease, &mut backoff).await {
                    KeepAliveEnd::Lost => {
                        stats.lease_lost();
                        tracing::warn!(provider = %cfg.name, key = %key, lease, "lease lost; registering again");
                    }
                    KeepAliveEnd::Failed(e) => {
                        tracing::warn!(provider = %cfg.name, key = %key, lease, error = %e, "lease keep-alive failed; registering again");
                    }
                }
            }
            Ok(Put::Superseded(theirs)) => {
                // Only a re-registration gets here, so the first result was
                // sent already.
                lease_slot.store(0, Ordering::Release);
                stats.superseded();
                tracing::warn!(
                    provider = %cfg.name,
                    key = %key,
                    incarnation,
                    owner_incarnation = theirs,
                    "a newer incarnation of this node owns its key; no longer registering this one"
                );
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

/// Grants a lease and puts the key with it. The first registration
/// (`ours` is `None`) puts unconditionally; a re-registration puts only if
/// the key is absent or still ours (its incarnation, or our last lease),
/// in a transaction on the revision it read, so that a newer incarnation
/// registered meanwhile is never overwritten.
async fn grant_and_put(
    conn: &Connection,
    key: &str,
    value: &[u8],
    ours: Option<Ours>,
) -> Result<Put, ProviderError> {
    // The condition of the put: `None` for an unconditional one, else the
    // key's mod revision that must still hold (0: the key must be absent).
    let condition = match ours {
        None => None,
        Some(ours) => {
            let current = conn
                .call(Op::Register, |mut c| {
                    let key = key.to_owned();
                    async move { c.get(key, None).await }
                })
                .await?;
            match current.kvs().first() {
                None => Some(0),
                Some(kv) => match owner(kv.value()) {
                    Some(theirs) if theirs != ours.incarnation && kv.lease() != ours.lease => {
                        return Ok(Put::Superseded(theirs));
                    }
                    // Ours, or not a member at all: nobody else owns it.
                    _ => Some(kv.mod_revision()),
                },
            }
        }
    };
    let ttl = i64::try_from(conn.config.lease_ttl.as_secs()).unwrap_or(i64::MAX);
    let lease = conn
        .call(Op::Register, |mut c| async move {
            c.lease_grant(ttl, None).await
        })
        .await?
        .id();
    let put = conn
        .call(Op::Register, |mut c| {
            let (key, value) = (key.to_owned(), value.to_vec());
            let put = TxnOp::put(
                key.clone(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            );
            let txn = match condition {
                None => Txn::new().and_then([put]),
                Some(0) => Txn::new()
                    .when([Compare::create_revision(key, CompareOp::Equal, 0)])
                    .and_then([put]),
                Some(revision) => Txn::new()
                    .when([Compare::mod_revision(key, CompareOp::Equal, revision)])
                    .and_then([put]),
            };
            async move { c.txn(txn).await }
        })
        .await;
    let failure = match put {
        Ok(r) if r.succeeded() => return Ok(Put::Done(lease)),
        // The key changed between the read and the put: read it again
        // (after the backoff) to learn who owns it now.
        Ok(_) => {
            ProviderError::Registration(format!("{key} changed while registering again; retrying"))
        }
        Err(e) => e,
    };
    let _ = conn
        .call(Op::Deregister, |mut c| async move {
            c.lease_revoke(lease).await
        })
        .await;
    Err(failure)
}

/// The incarnation of the member a value holds; `None` if it is not a
/// member.
fn owner(value: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Member>(value)
        .ok()
        .map(|m| m.incarnation)
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
