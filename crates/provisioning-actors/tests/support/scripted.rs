//! A `scripted` provider kind for tests: each provider's backend is a
//! [`Script`] the test drives by hand. It delivers exactly the snapshots the
//! test pushes (an identical member list with a new `observed_at`
//! included), makes the watch stream or `register` panic on demand, and
//! counts every request the provider makes of its backend (opening a watch,
//! register, deregister, connectivity check), so a test can prove that
//! something happened without a backend round trip.
//!
//! Like a real backend, a new watch stream starts with the current member
//! list, and `register` upserts the local member into it (open streams see
//! the change).
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use cluster_core::{
    Capabilities, ClusterProvider, Member, ProviderDescriptor, ProviderError, ProviderId, Snapshot,
};
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use provisioning_actors::ProviderFactory;
use tokio::sync::mpsc;

/// What the open watch stream yields next.
enum Item {
    Snapshot(Snapshot),
    Error(ProviderError),
    End,
    Panic,
}

#[derive(Default)]
struct State {
    /// The backend's member list, sorted by node id.
    members: Vec<Member>,
    /// The sender of the most recently opened watch stream.
    stream: Option<mpsc::UnboundedSender<Item>>,
    /// The `observed_at` of the last snapshot sent.
    last_observed: Option<SystemTime>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    watches: AtomicUsize,
    registers: AtomicUsize,
    deregisters: AtomicUsize,
    connectivity_checks: AtomicUsize,
    /// How many of the next `register` calls panic.
    register_panics: AtomicUsize,
    /// How many of the next `watch` calls panic while opening the stream.
    watch_panics: AtomicUsize,
    /// New watch streams end at once (a backend that refuses watches).
    refuse_watches: AtomicBool,
    /// A stream that yields nothing for this long re-sends the current
    /// list (milliseconds; 0: no keepalive).
    keepalive_ms: AtomicUsize,
}

/// One provider's scripted backend. Clones control the same backend.
#[derive(Clone, Default)]
pub struct Script(Arc<Inner>);

impl Script {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `item` to the open stream; `false` if none is open.
    fn push(&self, item: Item) -> bool {
        self.state()
            .stream
            .as_ref()
            .is_some_and(|tx| tx.send(item).is_ok())
    }

    /// The backend's current member list.
    pub fn members(&self) -> Vec<Member> {
        self.state().members.clone()
    }

    /// Replaces the member list and pushes it to the open stream (observed
    /// now). Returns the snapshot sent.
    pub fn set_members(&self, mut members: Vec<Member>) -> Snapshot {
        members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        self.state().members = members;
        self.resend()
    }

    /// Pushes the current member list again, unchanged, with an
    /// `observed_at` later than the previous snapshot's: a duplicate
    /// snapshot. Returns the snapshot sent.
    pub fn resend(&self) -> Snapshot {
        let snapshot = self.next_snapshot();
        self.push(Item::Snapshot(snapshot.clone()));
        snapshot
    }

    /// A snapshot of the current list, observed strictly after the last one.
    fn next_snapshot(&self) -> Snapshot {
        let mut st = self.state();
        let mut observed_at = SystemTime::now();
        if let Some(last) = st.last_observed
            && observed_at <= last
        {
            observed_at = last + Duration::from_millis(1);
        }
        st.last_observed = Some(observed_at);
        Snapshot {
            members: st.members.clone().into(),
            observed_at,
        }
    }

    /// The open stream yields `error` and goes on.
    pub fn error(&self, error: ProviderError) -> bool {
        self.push(Item::Error(error))
    }

    /// The open stream ends.
    pub fn end_stream(&self) -> bool {
        self.push(Item::End)
    }

    /// The open stream panics when polled for its next item.
    pub fn panic_stream(&self) -> bool {
        self.push(Item::Panic)
    }

    /// The next `n` calls of `register` panic.
    pub fn panic_on_register(&self, n: usize) {
        self.0.register_panics.store(n, Ordering::SeqCst);
    }

    /// The next `n` calls of `watch` panic while opening the stream.
    pub fn panic_on_watch(&self, n: usize) {
        self.0.watch_panics.store(n, Ordering::SeqCst);
    }

    /// While `on`, streams opened from now on end at once.
    pub fn refuse_watches(&self, on: bool) {
        self.0.refuse_watches.store(on, Ordering::SeqCst);
    }

    /// Streams opened from now on re-send the current list after `every`
    /// without an item (`Duration::ZERO`: never).
    pub fn keepalive(&self, every: Duration) {
        let ms = usize::try_from(every.as_millis()).unwrap_or(usize::MAX);
        self.0.keepalive_ms.store(ms, Ordering::SeqCst);
    }

    /// Watch streams opened so far.
    pub fn watches(&self) -> usize {
        self.0.watches.load(Ordering::SeqCst)
    }

    /// `register` calls so far (panicking ones included).
    pub fn registers(&self) -> usize {
        self.0.registers.load(Ordering::SeqCst)
    }

    /// Every request made of this backend so far: watches opened,
    /// registrations, deregistrations and connectivity checks.
    pub fn requests(&self) -> usize {
        self.watches()
            + self.registers()
            + self.0.deregisters.load(Ordering::SeqCst)
            + self.0.connectivity_checks.load(Ordering::SeqCst)
    }
}

/// Takes one from `n` if it is not zero.
fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

struct ScriptedProvider {
    script: Script,
}

impl ClusterProvider for ScriptedProvider {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            watch: true,
            register: true,
            external: false,
        }
    }

    fn check_connectivity(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.script
            .0
            .connectivity_checks
            .fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }

    fn register(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        let local = local.clone();
        Box::pin(async move {
            let s = &self.script;
            s.0.registers.fetch_add(1, Ordering::SeqCst);
            if take_one(&s.0.register_panics) {
                panic!("scripted provider: register panics");
            }
            let mut members = s.members();
            members.retain(|m| m.node_id != local.node_id);
            members.push(local);
            s.set_members(members);
            Ok(())
        })
    }

    fn deregister(&self, local: &Member) -> BoxFuture<'_, Result<(), ProviderError>> {
        let local = local.clone();
        Box::pin(async move {
            let s = &self.script;
            s.0.deregisters.fetch_add(1, Ordering::SeqCst);
            let mut members = s.members();
            members.retain(|m| m != &local);
            s.set_members(members);
            Ok(())
        })
    }

    fn watch(&self) -> BoxStream<'static, Result<Snapshot, ProviderError>> {
        let s = self.script.clone();
        s.0.watches.fetch_add(1, Ordering::SeqCst);
        if take_one(&s.0.watch_panics) {
            panic!("scripted provider: opening the watch stream panics");
        }
        if s.0.refuse_watches.load(Ordering::SeqCst) {
            return stream::empty().boxed();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // The current list first, as a backend answers a new watch.
        let _ = tx.send(Item::Snapshot(s.next_snapshot()));
        s.state().stream = Some(tx);
        let keepalive = s.0.keepalive_ms.load(Ordering::SeqCst) as u64;
        stream::unfold((rx, s), move |(mut rx, s)| async move {
            let item = if keepalive == 0 {
                rx.recv().await?
            } else {
                match tokio::time::timeout(Duration::from_millis(keepalive), rx.recv()).await {
                    Ok(item) => item?,
                    Err(_) => Item::Snapshot(s.next_snapshot()),
                }
            };
            match item {
                Item::Snapshot(snapshot) => Some((Ok(snapshot), (rx, s))),
                Item::Error(e) => Some((Err(e), (rx, s))),
                Item::End => None,
                Item::Panic => panic!("scripted provider: the watch stream panics"),
            }
        })
        .boxed()
    }
}

/// The `scripted` kind: one [`Script`] per descriptor id, made on first
/// use (by the test or by the factory), kept across rebuilds.
#[derive(Clone, Default)]
pub struct ScriptedKind {
    scripts: Arc<Mutex<BTreeMap<String, Script>>>,
}

impl ScriptedKind {
    pub fn new() -> Self {
        Self::default()
    }

    /// The backend of the provider with descriptor id `id`.
    pub fn script(&self, id: &str) -> Script {
        self.scripts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.to_owned())
            .or_default()
            .clone()
    }
}

impl ProviderFactory for ScriptedKind {
    fn kind(&self) -> &str {
        "scripted"
    }

    fn create(&self, d: &ProviderDescriptor) -> Result<Arc<dyn ClusterProvider>, ProviderError> {
        Ok(Arc::new(ScriptedProvider {
            script: self.script(d.id.as_str()),
        }))
    }
}

/// A descriptor of the `scripted` kind.
pub fn scripted(id: &str, priority: u32) -> ProviderDescriptor {
    ProviderDescriptor::new(ProviderId::new(id).unwrap(), "scripted", priority)
}
