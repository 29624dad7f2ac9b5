//! [`MemoryProvider`]: a [`ClusterProvider`] over a [`MembershipTable`].

use std::pin::pin;

use cluster_core::{Capabilities, ClusterProvider, Member, ProviderError, Snapshot};
use futures::future::{BoxFuture, Either, select};
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::watch;

use crate::faults::{FaultHandle, FaultState};
use crate::table::{MembershipTable, TableState};

/// A membership provider backed by a [`MembershipTable`] shared in-process.
///
/// Create one per simulated node over the same table; each has its own
/// [`FaultHandle`]. `register` upserts the local member, `deregister` removes
/// it if the table still holds that incarnation, and `watch` streams the
/// table: the current snapshot at once, then one per change (changes that
/// happen while the consumer is busy are coalesced into the latest state).
#[derive(Debug)]
pub struct MemoryProvider {
    table: MembershipTable,
    faults: FaultHandle,
    keepalive: Option<std::time::Duration>,
}

impl MemoryProvider {
    /// A provider over `table`, with no fault set.
    pub fn new(table: MembershipTable) -> Self {
        Self {
            table,
            faults: FaultHandle::new(),
            keepalive: None,
        }
    }

    /// Re-sends the current snapshot when nothing changed for `every`, so a
    /// consumer's silence detection can tell a quiet table from a dead
    /// stream (a silenced stream sends no keepalive either).
    pub fn with_keepalive(mut self, every: std::time::Duration) -> Self {
        self.keepalive = Some(every);
        self
    }

    /// Uses `faults` as this provider's fault controls, so that faults can
    /// be set before the provider is built (the first call already fails).
    pub fn with_faults(mut self, faults: FaultHandle) -> Self {
        self.faults = faults;
        self
    }

    /// The table this provider reads and writes.
    pub fn table(&self) -> &MembershipTable {
        &self.table
    }

    /// The fault controls of this provider (not of others on the same
    /// table).
    pub fn faults(&self) -> FaultHandle {
        self.faults.clone()
    }

    fn registration_guard(&self, what: &str) -> Result<(), ProviderError> {
        let faults = self.faults.current();
        if let Some(e) = faults.always {
            return Err(e);
        }
        if faults.fail_registration {
            Err(ProviderError::Registration(format!(
                "{what} refused by injected fault"
            )))
        } else {
            Ok(())
        }
    }
}

impl ClusterProvider for MemoryProvider {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            watch: true,
            register: true,
            external: false,
        }
    }

    fn check_connectivity(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            match self.faults.current().connectivity {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
    }

    fn register(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        let local = local.clone();
        Box::pin(async move {
            self.registration_guard("register")?;
            self.table.upsert(local);
            Ok(())
        })
    }

    fn deregister(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        let (id, incarnation) = (local.node_id.clone(), local.incarnation);
        Box::pin(async move {
            self.registration_guard("deregister")?;
            self.table.remove_incarnation(&id, incarnation);
            Ok(())
        })
    }

    fn watch(&self) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
        let mut watcher = Watcher::new(self.table.clone(), self.faults.clone());
        watcher.keepalive = self.keepalive;
        stream::unfold(watcher, |mut w| async move {
            let item = w.next_item().await?;
            Some((item, w))
        })
        .fuse()
        .boxed()
    }
}

/// The fault settings that change what a snapshot shows, or whether one is
/// shown: a change of these makes an open stream emit again.
#[derive(Clone, Copy, PartialEq, Eq)]
struct View {
    silenced: bool,
    empty: bool,
    truncate: Option<usize>,
    failing: bool,
}

impl View {
    fn of(f: &FaultState) -> Self {
        Self {
            silenced: f.silenced,
            empty: f.empty,
            truncate: f.truncate,
            failing: f.always.is_some(),
        }
    }
}

/// The state of one watch stream.
struct Watcher {
    /// Keeps the table's sender alive as long as the stream.
    _table: MembershipTable,
    table_rx: watch::Receiver<TableState>,
    faults: FaultHandle,
    fault_rx: watch::Receiver<FaultState>,
    /// The `end_stream` epoch this stream was opened under.
    epoch: u64,
    /// The view last acted on.
    view: View,
    /// A snapshot is owed to the consumer.
    pending: bool,
    /// The `slow` delay for the owed snapshot has been served.
    delayed: bool,
    /// Re-send the current snapshot after this long without one.
    keepalive: Option<std::time::Duration>,
}

impl Watcher {
    fn new(table: MembershipTable, faults: FaultHandle) -> Self {
        let table_rx = table.subscribe();
        let mut fault_rx = faults.subscribe();
        let current = fault_rx.borrow_and_update().clone();
        Self {
            _table: table,
            table_rx,
            faults,
            fault_rx,
            epoch: current.end_epoch,
            view: View::of(&current),
            pending: true,
            delayed: false,
            keepalive: None,
        }
    }

    /// The next item, or `None` when a fault ends the stream.
    async fn next_item(&mut self) -> Option<Result<Snapshot, ProviderError>> {
        loop {
            let faults = self.fault_rx.borrow_and_update().clone();
            if faults.end_forever || faults.end_epoch != self.epoch {
                return None;
            }
            let view = View::of(&faults);
            if view != self.view {
                let unsilenced = self.view.silenced && !view.silenced;
                let reshaped = self.view.empty != view.empty
                    || self.view.truncate != view.truncate
                    || self.view.failing != view.failing;
                self.pending |= unsilenced || reshaped;
                self.view = view;
            }
            if self.table_rx.has_changed().ok()? {
                // Mark the change as seen; the snapshot reads the latest
                // state when it is emitted.
                self.table_rx.borrow_and_update();
                self.pending = true;
            }

            if faults.silenced {
                self.delayed = false;
            } else {
                if let Some(error) = self.faults.take_failure() {
                    // After the errors, a fresh snapshot (recovery).
                    self.pending = true;
                    return Some(Err(error));
                }
                if self.pending {
                    if !faults.slow.is_zero() && !self.delayed {
                        let sleep = pin!(tokio::time::sleep(faults.slow));
                        let fault_change = pin!(self.fault_rx.changed());
                        match select(sleep, fault_change).await {
                            Either::Left(_) => self.delayed = true,
                            Either::Right((changed, _)) => changed.ok()?,
                        }
                        // Look at the faults again before emitting.
                        continue;
                    }
                    self.pending = false;
                    self.delayed = false;
                    if let Some(error) = faults.always {
                        return Some(Err(error));
                    }
                    let members = self.table_rx.borrow_and_update().members.clone();
                    return Some(Ok(Snapshot::now(faults.shape(&members))));
                }
            }

            let table_change = pin!(self.table_rx.changed());
            let fault_change = pin!(self.fault_rx.changed());
            let keepalive = pin!(async {
                match self.keepalive {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
            });
            match select(select(table_change, fault_change), keepalive).await {
                Either::Left((Either::Left((changed, _)), _)) => {
                    // `changed` marked the new state as seen: remember it.
                    changed.ok()?;
                    self.pending = true;
                }
                Either::Left((Either::Right((changed, _)), _)) => changed.ok()?,
                // Nothing happened for a while: say so with a snapshot.
                Either::Right(((), _)) => self.pending = true,
            }
        }
    }
}
