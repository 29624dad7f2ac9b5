//! [`ActorSystem`]: the root of the hierarchy, its two guardians and ordered
//! shutdown.
//!
//! ```text
//! /            (no actor: the system itself)
//! ├── /user    user guardian: parent of actors spawned with `spawn`
//! └── /system  system guardian: parent of `spawn_system` actors
//!              (cluster services such as the ProvisioningSupervisor)
//! ```
//!
//! Shutdown stops `/user` first (each actor's children before the actor
//! itself, every `stopped` hook run), then `/system`. If the deadline passes,
//! the remaining tasks are aborted: their `stopped` hooks do not run, and
//! watchers see [`StopReason::Aborted`](crate::StopReason::Aborted).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::actor::{Actor, HandlerResult, Props};
use crate::actor_ref::{ActorCell, ActorHandle, ActorId, ActorRef};
use crate::children::ReserveError;
use crate::context::Context;
use crate::event_stream::EventStream;
use crate::latch::OnceLatch;
use crate::mailbox;
use crate::path::{ActorPath, validate_name};
use crate::runner::{Seed, SeedParts};
use crate::supervision::{Directive, SupervisorStrategy};

/// Why `spawn` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// A live sibling already has this name.
    #[error("an actor named {name:?} already lives under {parent}")]
    DuplicateName {
        /// The requested name.
        name: String,
        /// The parent's path.
        parent: ActorPath,
    },
    /// The name is not allowed.
    #[error("invalid actor name {name:?}: {reason}")]
    InvalidName {
        /// The requested name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The parent is stopping (or the system is shutting down).
    #[error("{parent} is stopping and accepts no new children")]
    ParentStopping {
        /// The parent's path.
        parent: ActorPath,
    },
    /// Called outside a tokio runtime.
    #[error("spawn must be called from within a tokio runtime")]
    NoRuntime,
}

impl SpawnError {
    /// A stable code for the error, for logs and tests.
    pub fn code(&self) -> &'static str {
        match self {
            SpawnError::DuplicateName { .. } => "actor.duplicate_name",
            SpawnError::InvalidName { .. } => "actor.invalid_name",
            SpawnError::ParentStopping { .. } => "actor.parent_stopping",
            SpawnError::NoRuntime => "actor.no_runtime",
        }
    }
}

/// What [`ActorSystem::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every actor stopped through its hooks before the deadline.
    pub clean: bool,
    /// Actor tasks aborted at the deadline.
    pub aborted: usize,
    /// Time from the first shutdown call to its end.
    pub elapsed: Duration,
}

/// The message type of actors that take no messages.
#[derive(Debug)]
pub enum Never {}

struct Guardian {
    strategy: SupervisorStrategy,
}

impl Actor for Guardian {
    type Msg = Never;

    async fn handle(&mut self, msg: Never, _ctx: &mut Context<Self>) -> HandlerResult {
        match msg {}
    }

    fn supervisor_strategy(&self) -> SupervisorStrategy {
        // A guardian has no parent to escalate to: escalation stops the child.
        let inner = self.strategy.clone();
        self.strategy
            .clone()
            .with_decider(move |f| match inner.decide(f) {
                Directive::Escalate => Directive::Stop,
                d => d,
            })
    }
}

struct SystemInner {
    name: Arc<str>,
    next_id: AtomicU64,
    events: EventStream,
    guardians: std::sync::OnceLock<(ActorHandle, ActorHandle)>,
    shutdown: OnceLatch,
    report: watch::Sender<Option<ShutdownReport>>,
    shutdown_timeout: Duration,
}

/// A tree of actors on the current tokio runtime, with an [`EventStream`].
/// Cheap to clone.
#[derive(Clone)]
pub struct ActorSystem {
    inner: Arc<SystemInner>,
}

impl std::fmt::Debug for ActorSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorSystem")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

/// Configures an [`ActorSystem`].
#[derive(Debug)]
pub struct ActorSystemBuilder {
    name: String,
    user_strategy: SupervisorStrategy,
    system_strategy: SupervisorStrategy,
    shutdown_timeout: Duration,
}

impl ActorSystemBuilder {
    /// Strategy of `/user` for top-level user actors (default: one-for-one
    /// restart with the default backoff and limit).
    pub fn user_guardian_strategy(mut self, s: SupervisorStrategy) -> Self {
        self.user_strategy = s;
        self
    }

    /// Strategy of `/system` for system actors (same default).
    pub fn system_guardian_strategy(mut self, s: SupervisorStrategy) -> Self {
        self.system_strategy = s;
        self
    }

    /// Deadline of [`ActorSystem::shutdown`] (default 10 s).
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }

    /// Starts the system on the current tokio runtime.
    pub fn build(self) -> Result<ActorSystem, SpawnError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SpawnError::NoRuntime);
        }
        let (report, _) = watch::channel(None);
        let name: Arc<str> = Arc::from(self.name.as_str());
        let system = ActorSystem {
            inner: Arc::new(SystemInner {
                events: EventStream::for_node(name.clone()),
                name,
                next_id: AtomicU64::new(1),
                guardians: std::sync::OnceLock::new(),
                shutdown: OnceLatch::new(),
                report,
                shutdown_timeout: self.shutdown_timeout,
            }),
        };
        let user_strategy = self.user_strategy;
        let system_strategy = self.system_strategy;
        let user = spawn_actor(
            &system,
            None,
            "user",
            Props::new(move || Guardian {
                strategy: user_strategy.clone(),
            }),
        )?;
        let sys = spawn_actor(
            &system,
            None,
            "system",
            Props::new(move || Guardian {
                strategy: system_strategy.clone(),
            }),
        )?;
        let _ = system
            .inner
            .guardians
            .set((user.handle.clone(), sys.handle.clone()));
        Ok(system)
    }
}

impl ActorSystem {
    /// Starts a system with default settings on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`. Use
    /// [`ActorSystem::builder`] and `build()` to get an error instead.
    #[allow(clippy::expect_used)]
    pub fn new(name: &str) -> Self {
        Self::builder(name)
            .build()
            .expect("ActorSystem::new must be called within a tokio runtime")
    }

    /// A builder for a system called `name`.
    pub fn builder(name: &str) -> ActorSystemBuilder {
        ActorSystemBuilder {
            name: name.to_owned(),
            user_strategy: SupervisorStrategy::default(),
            system_strategy: SupervisorStrategy::default(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }

    /// The system's name. It is also the `node` label of every metric of
    /// this system (see [`crate::metrics`]): name a system after the node
    /// it runs, so that several nodes in one process keep separate series.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The system's name, shared (the `node` label of its metrics).
    pub(crate) fn metrics_node(&self) -> &Arc<str> {
        &self.inner.name
    }

    /// The system's event stream.
    pub fn event_stream(&self) -> &EventStream {
        &self.inner.events
    }

    fn guardians(&self) -> Option<&(ActorHandle, ActorHandle)> {
        self.inner.guardians.get()
    }

    /// `/user`, or `None` before the system is built.
    pub fn user_guardian(&self) -> Option<&ActorHandle> {
        self.guardians().map(|g| &g.0)
    }

    /// `/system`.
    pub fn system_guardian(&self) -> Option<&ActorHandle> {
        self.guardians().map(|g| &g.1)
    }

    /// Spawns a top-level user actor under `/user`.
    pub fn spawn<A: Actor>(
        &self,
        name: &str,
        factory: impl FnMut() -> A + Send + 'static,
    ) -> Result<ActorRef<A::Msg>, SpawnError> {
        self.spawn_props(name, Props::new(factory))
    }

    /// Spawns a top-level user actor from [`Props`].
    pub fn spawn_props<A: Actor>(
        &self,
        name: &str,
        props: Props<A>,
    ) -> Result<ActorRef<A::Msg>, SpawnError> {
        let parent = self.user_guardian().ok_or(SpawnError::NoRuntime)?;
        self.refuse_after_shutdown(parent)?;
        spawn_child(self, parent, Some(name), props)
    }

    /// Spawns a system actor under `/system`; it outlives every user actor
    /// at shutdown.
    pub fn spawn_system<A: Actor>(
        &self,
        name: &str,
        factory: impl FnMut() -> A + Send + 'static,
    ) -> Result<ActorRef<A::Msg>, SpawnError> {
        self.spawn_system_props(name, Props::new(factory))
    }

    /// Spawns a system actor from [`Props`].
    pub fn spawn_system_props<A: Actor>(
        &self,
        name: &str,
        props: Props<A>,
    ) -> Result<ActorRef<A::Msg>, SpawnError> {
        let parent = self.system_guardian().ok_or(SpawnError::NoRuntime)?;
        self.refuse_after_shutdown(parent)?;
        spawn_child(self, parent, Some(name), props)
    }

    /// Number of actor tasks alive (guardians included).
    ///
    /// Counted by walking the tree (no counter is kept: one shared by every
    /// spawn and every stop would cost each of them a contended atomic), so
    /// this is O(actors): a diagnostic, not for hot paths.
    pub fn live_actors(&self) -> usize {
        self.live_cells().len()
    }

    /// `true` once shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_started()
    }

    /// Stops everything within the configured deadline: user actors, then
    /// system actors. Idempotent: concurrent and later calls wait for the
    /// first and return its report.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.shutdown_within(self.inner.shutdown_timeout).await
    }

    /// [`shutdown`](Self::shutdown) with an explicit deadline (the first
    /// caller's deadline wins).
    ///
    /// The shutdown runs in a task of its own: dropping the future that
    /// started it (a `select!`, a timeout) does not stop it, and an actor may
    /// call this from a handler (it must not await it there, since its own
    /// stop waits for the handler to return).
    pub async fn shutdown_within(&self, timeout: Duration) -> ShutdownReport {
        if self.inner.shutdown.try_begin() {
            let system = self.clone();
            let run = async move {
                let report = system.run_shutdown(timeout).await;
                system.inner.report.send_replace(Some(report));
                system.inner.shutdown.finish();
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(run);
                }
                Err(_) => run.await,
            }
        }
        self.terminated().await
    }

    fn refuse_after_shutdown(&self, parent: &ActorHandle) -> Result<(), SpawnError> {
        if self.is_shutting_down() {
            return Err(SpawnError::ParentStopping {
                parent: parent.path().clone(),
            });
        }
        Ok(())
    }

    /// Waits until a shutdown has completed and returns its report.
    pub async fn terminated(&self) -> ShutdownReport {
        let mut rx = self.inner.report.subscribe();
        loop {
            if let Some(r) = *rx.borrow_and_update() {
                return r;
            }
            if rx.changed().await.is_err() {
                // Unreachable while `self` holds the sender.
                return ShutdownReport {
                    clean: false,
                    aborted: 0,
                    elapsed: Duration::ZERO,
                };
            }
        }
    }

    async fn run_shutdown(&self, timeout: Duration) -> ShutdownReport {
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        tracing::debug!(system = %self.inner.name, ?timeout, "shutdown started");
        let mut clean = true;
        if let Some((user, system)) = self.guardians().cloned() {
            for guardian in [user, system] {
                guardian.stop();
                if tokio::time::timeout_at(deadline, guardian.stopped())
                    .await
                    .is_err()
                {
                    clean = false;
                    break;
                }
            }
        }
        let mut aborted = 0;
        if !clean {
            let tasks = self.live_tasks();
            aborted = tasks.len();
            for t in tasks {
                t.abort();
            }
            tracing::warn!(system = %self.inner.name, aborted, "shutdown deadline passed; tasks aborted");
            // Let the aborted tasks drop (their guards notify watchers).
            tokio::task::yield_now().await;
        }
        ShutdownReport {
            clean,
            aborted,
            elapsed: start.elapsed(),
        }
    }

    fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The abort handles of every live actor task, found by walking the
    /// tree from the guardians. A live actor is always in its parent's
    /// registry (it leaves it only as its task ends, and a parent ends only
    /// after its children), so the walk finds every task but one whose
    /// spawn is still in progress, which a shutdown past its deadline does
    /// not wait for anyway.
    fn live_tasks(&self) -> Vec<AbortHandle> {
        self.live_cells()
            .iter()
            .filter_map(|h| h.0.abort_handle())
            .collect()
    }

    /// The actors not yet terminated, guardians included, found from the
    /// guardians down (see `live_tasks`).
    fn live_cells(&self) -> Vec<ActorHandle> {
        let mut out = Vec::new();
        let mut stack: Vec<ActorHandle> = match self.guardians() {
            Some((user, system)) => vec![user.clone(), system.clone()],
            None => Vec::new(),
        };
        while let Some(h) = stack.pop() {
            stack.extend(h.0.children.snapshot().into_iter().map(|(_, c)| c));
            if !h.is_terminated() {
                out.push(h);
            }
        }
        out
    }
}

pub(crate) fn spawn_child<A: Actor>(
    system: &ActorSystem,
    parent: &ActorHandle,
    name: Option<&str>,
    props: Props<A>,
) -> Result<ActorRef<A::Msg>, SpawnError> {
    if let Some(n) = name {
        validate_name(n).map_err(|reason| SpawnError::InvalidName {
            name: n.to_owned(),
            reason,
        })?;
    }
    spawn_actor(system, Some(parent), name.unwrap_or(""), props)
}

/// Spawns with `parent` (None for the guardians). An empty name means
/// anonymous.
fn spawn_actor<A: Actor>(
    system: &ActorSystem,
    parent: Option<&ActorHandle>,
    name: &str,
    props: Props<A>,
) -> Result<ActorRef<A::Msg>, SpawnError> {
    // Inside a task the runtime is there for sure: `tokio::spawn` then spares
    // cloning the runtime's handle (a reference count every worker touches).
    let rt = match tokio::task::try_id() {
        Some(_) => None,
        None => Some(tokio::runtime::Handle::try_current().map_err(|_| SpawnError::NoRuntime)?),
    };
    let id = system.next_id();
    let name: Arc<str> = if name.is_empty() {
        Arc::from(format!("${id}"))
    } else {
        Arc::from(name)
    };
    let cell = ActorCell::new(ActorId(id), name.clone(), parent.cloned());
    let handle = ActorHandle(cell.clone());
    if let Some(p) = parent {
        p.0.children
            .reserve(&name, id, handle.clone())
            .map_err(|e| match e {
                ReserveError::Duplicate => SpawnError::DuplicateName {
                    name: name.to_string(),
                    parent: p.path().clone(),
                },
                ReserveError::Closed => SpawnError::ParentStopping {
                    parent: p.path().clone(),
                },
            })?;
    }
    let (tx, user_rx) = mailbox::channel::<A::Msg>(props.mailbox);
    let actor_ref = ActorRef {
        handle: handle.clone(),
        tx,
    };
    crate::metrics::spawned(system.metrics_node(), std::any::type_name::<A>());
    let span = tracing::debug_span!("actor", path = %handle.path());
    let cell_for_abort = cell.clone();
    let fut = Seed::new(SeedParts {
        factory: props.factory,
        myself: actor_ref.clone(),
        system: system.clone(),
        cell,
        user_rx,
    })
    .run();
    let fut = fut.instrument(span);
    let task = match rt {
        Some(rt) => rt.spawn(fut),
        None => tokio::spawn(fut),
    };
    cell_for_abort.set_abort_handle(task.abort_handle());
    Ok(actor_ref)
}
