//! Fault injection for one [`MemoryProvider`](crate::MemoryProvider).

use std::sync::Arc;
use std::time::Duration;

use cluster_core::ProviderError;
use tokio::sync::watch;

/// The faults currently set on one provider. Streams watch it, so a change
/// takes effect on streams that are already open.
#[derive(Clone, Debug, Default)]
pub(crate) struct FaultState {
    /// Streams yield nothing while set.
    pub(crate) silenced: bool,
    /// How many more stream items are `failure`.
    pub(crate) fail_remaining: usize,
    /// The error those items carry.
    pub(crate) failure: Option<ProviderError>,
    /// Bumped by `end_stream`: a stream opened under an older epoch ends.
    pub(crate) end_epoch: u64,
    /// Every stream, open or new, ends at once while set.
    pub(crate) end_forever: bool,
    /// Delay before each snapshot.
    pub(crate) slow: Duration,
    /// Snapshots report no member while set.
    pub(crate) empty: bool,
    /// Snapshots report only the first k members.
    pub(crate) truncate: Option<usize>,
    /// `register` and `deregister` fail while set.
    pub(crate) fail_registration: bool,
    /// `check_connectivity` returns this error.
    pub(crate) connectivity: Option<ProviderError>,
    /// While set, every stream item that would be a snapshot is this error
    /// instead, and `register` / `deregister` return it (a lost permission).
    pub(crate) always: Option<ProviderError>,
}

impl FaultState {
    /// Applies the snapshot glitches (`empty`, `truncate`) to `members`:
    /// without one, the same `Arc` (no copy).
    pub(crate) fn shape<T: Clone>(&self, members: &Arc<[T]>) -> Arc<[T]> {
        let keep = if self.empty {
            0
        } else {
            self.truncate.unwrap_or(usize::MAX)
        };
        if keep >= members.len() {
            return members.clone();
        }
        members.iter().take(keep).cloned().collect()
    }
}

/// Sets and clears the faults of one [`MemoryProvider`](crate::MemoryProvider).
///
/// Obtained from [`MemoryProvider::faults`](crate::MemoryProvider::faults).
/// Clones control the same provider; two providers over the same table have
/// independent faults. Every setter takes effect at once, including on watch
/// streams that are already open.
#[derive(Clone, Debug)]
pub struct FaultHandle {
    tx: Arc<watch::Sender<FaultState>>,
}

impl Default for FaultHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultHandle {
    /// A handle with no fault set. Give it to
    /// [`MemoryProvider::with_faults`](crate::MemoryProvider::with_faults) to
    /// set faults before the provider exists (a provider that fails from
    /// its very first call).
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(FaultState::default());
        Self { tx: Arc::new(tx) }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<FaultState> {
        self.tx.subscribe()
    }

    pub(crate) fn current(&self) -> FaultState {
        self.tx.borrow().clone()
    }

    /// Takes one pending stream failure, if `fail_next` left any.
    pub(crate) fn take_failure(&self) -> Option<ProviderError> {
        let mut taken = None;
        self.tx.send_if_modified(|f| {
            if f.fail_remaining == 0 {
                return false;
            }
            f.fail_remaining -= 1;
            taken = f.failure.clone();
            if f.fail_remaining == 0 {
                f.failure = None;
            }
            true
        });
        taken
    }

    /// While `on`, watch streams yield nothing (a hung backend). When cleared,
    /// every open stream yields the latest snapshot at once.
    pub fn silence(&self, on: bool) {
        self.tx.send_modify(|f| f.silenced = on);
    }

    /// The next `n` items of this provider's watch streams are `error`; then
    /// a fresh snapshot follows (the stream "recovered"). Open streams yield
    /// the errors at once. The count is shared by the provider's streams, and
    /// `n = 0` cancels pending errors.
    pub fn fail_next(&self, n: usize, error: ProviderError) {
        self.tx.send_modify(|f| {
            f.fail_remaining = n;
            f.failure = (n > 0).then_some(error);
        });
    }

    /// Ends every open watch stream (it yields `None`: the provider gave
    /// up). Streams opened afterwards work, unless
    /// [`end_all_streams_forever`](Self::end_all_streams_forever) is set.
    pub fn end_stream(&self) {
        self.tx.send_modify(|f| f.end_epoch += 1);
    }

    /// While `on`, every stream ends at once: open ones and those opened
    /// later, so a restarted provider keeps failing.
    pub fn end_all_streams_forever(&self, on: bool) {
        self.tx.send_modify(|f| f.end_forever = on);
    }

    /// Delays each snapshot by `delay` (a slow backend); `Duration::ZERO`
    /// turns it off. Uses `tokio::time`, so tests with a paused clock work.
    pub fn slow(&self, delay: Duration) {
        self.tx.send_modify(|f| f.slow = delay);
    }

    /// While `on`, snapshots report zero members. Open streams yield such a
    /// snapshot at once when this changes.
    pub fn empty_snapshots(&self, on: bool) {
        self.tx.send_modify(|f| f.empty = on);
    }

    /// With `Some(k)`, snapshots report only the first `k` members (by node
    /// id): a truncated snapshot. `None` turns it off. Open streams yield a
    /// snapshot at once when this changes.
    pub fn truncate_to(&self, k: Option<usize>) {
        self.tx.send_modify(|f| f.truncate = k);
    }

    /// While `on`, `register` and `deregister` return
    /// [`ProviderError::Registration`] and leave the table unchanged.
    pub fn fail_registration(&self, on: bool) {
        self.tx.send_modify(|f| f.fail_registration = on);
    }

    /// With `Some(e)`, `check_connectivity` returns `e`; `None` makes it
    /// succeed again.
    pub fn fail_connectivity(&self, error: Option<ProviderError>) {
        self.tx.send_modify(|f| f.connectivity = error);
    }

    /// While `Some(e)`, every item the provider's streams would yield as a
    /// snapshot (keepalives included) is `e` instead, and `register` and
    /// `deregister` return `e` and leave the table unchanged: a backend that
    /// answers everything with the same error, as after a permission was
    /// revoked. `None` clears it, and open streams yield the latest snapshot
    /// at once.
    pub fn fail_always(&self, error: Option<ProviderError>) {
        self.tx.send_modify(|f| f.always = error);
    }

    /// Clears every fault. Streams already ended stay ended; open silenced
    /// streams resume with the latest snapshot.
    pub fn reset(&self) {
        self.tx.send_modify(|f| {
            *f = FaultState {
                end_epoch: f.end_epoch,
                ..FaultState::default()
            };
        });
    }
}
