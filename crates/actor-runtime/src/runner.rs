//! The task that runs one actor: its life cycle as an explicit state machine.
//!
//! ```text
//!            +-----------+   started Ok    +---------+
//!  spawn --> | Starting  | --------------> | Running | <-----------+
//!            +-----------+                 +---------+             |
//!                 | failure                  |  |  | failure       | Resume
//!                 v                          |  |  v               |
//!            +-----------------------------------------------+     |
//!            | Failed: report to parent, wait for directive  | ----+
//!            |  (other system messages are kept for later)   |
//!            +-----------------------------------------------+
//!              | Restart{delay}              | Stop(reason)   ^ Stop / Restart
//!              v                             v                |  (system msgs)
//!     +--------------------+        +-------------------+     |
//!     | Ending instance:   |        | Ending instance   | <---+
//!     | timers cancelled,  |        | (same steps), then|
//!     | children stopped,  |        | Terminated: tell  |
//!     | `stopped` hook,    |        | parent + watchers |
//!     | sleep(delay)       |        +-------------------+
//!     +--------------------+
//!              | new instance from the factory, same mailbox
//!              +--> Starting
//! ```
//!
//! System messages (stop, restart, resume, child failures, terminations) are
//! taken before user messages. The message whose handler failed is dropped;
//! everything queued behind it stays in the mailbox for the next instance.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;

use crate::actor::{Actor, HandlerResult};
use crate::actor_ref::{ActorCell, ActorHandle, ActorRef, Terminated};
use crate::context::Context;
use crate::mailbox::{Envelope, MailboxReceiver, SystemMsg};
use crate::metrics::ActorMetrics;
use crate::supervision::{Failure, FailureCause, RestartDecision, Scope, Stage, StopReason};
use crate::system::ActorSystem;

enum Item<M> {
    Sys(SystemMsg),
    User(Envelope<M>),
}

/// How an instance ends.
enum Next {
    Restart { delay: Duration },
    Stop(StopReason),
}

enum AfterFailure {
    Resume,
    Next(Next),
}

pub(crate) struct Runner<A: Actor> {
    /// Builds each instance; `None` once the runner is being dropped.
    pub(crate) factory: Option<Box<dyn FnMut() -> A + Send>>,
    pub(crate) ctx: Context<A>,
    pub(crate) cell: Arc<ActorCell>,
    pub(crate) user_rx: MailboxReceiver<A::Msg>,
    pub(crate) metrics: ActorMetrics,
    /// Why the actor ended, set by `finish`; `None` when the task is
    /// dropped without finishing (aborted at the shutdown deadline).
    pub(crate) end_reason: Option<StopReason>,
    pub(crate) pending_stop: Option<StopReason>,
    pub(crate) processed: u64,
    pub(crate) last_directive: Option<crate::Directive>,
}

/// Tells everyone the actor is gone when the task ends, also when it is
/// aborted at the shutdown deadline (the future is dropped, this runs).
/// The runner itself does it, rather than a guard of its own holding
/// second references to the cell and the system.
impl<A: Actor> Drop for Runner<A> {
    fn drop(&mut self) {
        // First what the task owned, as before the notices: the factory, the
        // timers and the mailbox (already closed and drained by `finish`;
        // on abort, what is left is dropped uncounted).
        drop(self.factory.take());
        self.ctx.timers.cancel_all();
        self.user_rx.close_and_drain();
        let reason = self.end_reason.take().unwrap_or(StopReason::Aborted);
        announce_end(
            &self.cell,
            &self.ctx.system,
            self.metrics.actor_type,
            reason,
        );
    }
}

/// The end of an actor, told to everyone: its system queue closes, it leaves
/// the event stream and its parent's registry, its parent and watchers get
/// `Terminated`, and whoever awaits `stopped()` is released.
fn announce_end(
    cell: &Arc<ActorCell>,
    system: &ActorSystem,
    actor_type: &'static str,
    reason: StopReason,
) {
    // From here on system messages are refused; those still queued are
    // dropped (their senders treat a gone actor the same way).
    drop(cell.sys.close());
    let me = ActorHandle(cell.clone());
    let id = cell.id;
    system.event_stream().unsubscribe_actor(id);
    let watchers = cell.watchers.terminate(reason.clone());
    let parent_id = cell.parent.as_ref().map(ActorHandle::id);
    if let Some(parent) = &cell.parent {
        parent.0.children.release(&cell.name, id.0);
        parent.send_system(SystemMsg::Terminated {
            actor: me.clone(),
            reason: reason.clone(),
        });
    }
    for (wid, w) in watchers {
        if Some(crate::ActorId(wid)) != parent_id {
            w.send_system(SystemMsg::Terminated {
                actor: me.clone(),
                reason: reason.clone(),
            });
        }
    }
    crate::metrics::terminated(system.metrics_node(), actor_type, &reason);
    tracing::debug!(path = %cell.path(), %reason, "actor terminated");
    cell.mark_terminated();
    cell.clear_abort_handle();
}

/// What the spawner hands to the new task. The runner (the actor's whole
/// state) is built by the task itself at its first poll, on the worker that
/// runs it, and kept on the heap: the spawner then allocates and copies a
/// task of a hundred bytes instead of more than a kilobyte, and the work
/// moves off the spawning task.
pub(crate) struct Seed<A: Actor> {
    parts: Option<SeedParts<A>>,
}

pub(crate) struct SeedParts<A: Actor> {
    pub(crate) factory: Box<dyn FnMut() -> A + Send>,
    pub(crate) myself: ActorRef<A::Msg>,
    pub(crate) system: ActorSystem,
    pub(crate) cell: Arc<ActorCell>,
    pub(crate) user_rx: MailboxReceiver<A::Msg>,
}

impl<A: Actor> Seed<A> {
    pub(crate) fn new(parts: SeedParts<A>) -> Self {
        Self { parts: Some(parts) }
    }

    /// The task's future.
    #[allow(clippy::manual_async_fn)] // captured once, see `Seed`
    pub(crate) fn run(mut self) -> impl Future<Output = ()> + Send + 'static {
        async move {
            let Some(p) = self.parts.take() else {
                return;
            };
            let mut runner = Box::new(Runner {
                factory: Some(p.factory),
                ctx: Context::new(p.myself, p.system),
                cell: p.cell,
                user_rx: p.user_rx,
                metrics: ActorMetrics::new(std::any::type_name::<A>()),
                end_reason: None,
                pending_stop: None,
                processed: 0,
                last_directive: None,
            });
            let reason = Box::pin(runner.instances()).await;
            runner.finish(reason);
            // Dropping the runner notifies parent and watchers.
        }
    }
}

/// A task dropped before its first poll (aborted at the shutdown deadline,
/// or its runtime shut down) still ends its actor.
impl<A: Actor> Drop for Seed<A> {
    fn drop(&mut self) {
        if let Some(p) = self.parts.take() {
            let SeedParts {
                factory,
                myself,
                system,
                cell,
                mut user_rx,
            } = p;
            drop(factory);
            user_rx.close_and_drain();
            drop(myself);
            announce_end(
                &cell,
                &system,
                std::any::type_name::<A>(),
                StopReason::Aborted,
            );
        }
    }
}

async fn guarded(stage: Stage, fut: impl Future<Output = HandlerResult>) -> Result<(), Failure> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::error(stage, e)),
        Err(payload) => Err(Failure::panic(stage, payload)),
    }
}

impl<A: Actor> Runner<A> {
    /// Instance after instance until one stops for good.
    async fn instances(&mut self) -> StopReason {
        loop {
            let (next, actor, started) = self.life().await;
            match next {
                Next::Restart { delay } => {
                    self.end_instance(actor, started, false).await;
                    if let Some(r) = self.pending_stop.take() {
                        self.close_children_and_wait().await;
                        break r;
                    }
                    self.metrics.restart(self.ctx.system.metrics_node());
                    if !delay.is_zero()
                        && let Some(r) = Box::pin(self.sleep_unless_stopped(delay)).await
                    {
                        self.close_children_and_wait().await;
                        break r;
                    }
                    self.ctx.restarts = self.ctx.restarts.saturating_add(1);
                    tracing::debug!(path = %self.cell.path(), restarts = self.ctx.restarts, "actor restarted");
                }
                Next::Stop(r) => {
                    self.end_instance(actor, started, true).await;
                    break r;
                }
            }
        }
    }

    /// One instance, from the factory to the decision that ends it.
    async fn life(&mut self) -> (Next, Option<A>, bool) {
        self.ctx.stop_requested = false;
        let Some(factory) = self.factory.as_mut() else {
            // Unreachable: the factory is taken only when the runner drops.
            return (Next::Stop(StopReason::Stopped), None, false);
        };
        let built = std::panic::catch_unwind(AssertUnwindSafe(factory));
        let mut actor = match built {
            Ok(a) => a,
            Err(p) => {
                let next = self.start_failed(Failure::panic(Stage::Started, p)).await;
                return (next, None, false);
            }
        };
        if let Err(f) = guarded(Stage::Started, async { actor.started(&mut self.ctx).await }).await
        {
            let next = self.start_failed(f).await;
            return (next, Some(actor), false);
        }
        let next = self.running(&mut actor).await;
        (next, Some(actor), true)
    }

    async fn start_failed(&mut self, f: Failure) -> Next {
        match Box::pin(self.fail(f)).await {
            // A failed start has no state to resume; parents turn Resume into
            // Restart for Stage::Started, this is only a fallback.
            AfterFailure::Resume => Next::Restart {
                delay: Duration::ZERO,
            },
            AfterFailure::Next(n) => n,
        }
    }

    async fn running(&mut self, actor: &mut A) -> Next {
        loop {
            if std::mem::take(&mut self.ctx.stop_requested) {
                return Next::Stop(StopReason::Stopped);
            }
            match self.next().await {
                // Handled here rather than in a helper `async fn`, whose
                // arguments and awaited futures would all enlarge the task.
                Item::Sys(msg) => match msg {
                    SystemMsg::Stop(r) => return Next::Stop(r),
                    SystemMsg::Restart { delay } => return Next::Restart { delay },
                    SystemMsg::Resume => {}
                    SystemMsg::Failed { child, failure } => {
                        if let Some(n) =
                            Box::pin(self.on_child_failure(actor, child, failure)).await
                        {
                            return n;
                        }
                    }
                    SystemMsg::Terminated { actor: who, reason } => {
                        if let Some(t) = self.terminated_notice(who, reason)
                            && let Err(f) = guarded(Stage::OnTerminated, async {
                                actor.on_terminated(t, &mut self.ctx).await
                            })
                            .await
                            && let AfterFailure::Next(n) = Box::pin(self.fail(f)).await
                        {
                            return n;
                        }
                    }
                },
                Item::User(env) => {
                    let msg = match env {
                        Envelope::Msg(m) => m,
                        Envelope::Timer { key, msg } => {
                            if !self.ctx.timers.accept(key) {
                                continue;
                            }
                            msg
                        }
                    };
                    let m = self.metrics.per_message(self.ctx.system.metrics_node());
                    m.processed.increment(1);
                    self.processed = self.processed.wrapping_add(1);
                    if self.processed & 127 == 0 {
                        m.depth.record(self.user_rx.len() as f64);
                    }
                    if let Err(f) = guarded(Stage::Handle, async {
                        actor.handle(msg, &mut self.ctx).await
                    })
                    .await
                        && let AfterFailure::Next(n) = Box::pin(self.fail(f)).await
                    {
                        return n;
                    }
                }
            }
        }
    }

    /// The bookkeeping of a termination notice; the notice to hand to
    /// `on_terminated`, if this actor asked for it (a child, or watched).
    fn terminated_notice(&mut self, who: ActorHandle, reason: StopReason) -> Option<Terminated> {
        let is_child = who
            .0
            .parent
            .as_ref()
            .is_some_and(|p| p.id() == self.cell.id);
        let watched = self.ctx.watching.remove(&who.id()).is_some();
        if is_child {
            self.ctx.restart_windows.remove(&who.id().0);
            if self.ctx.pending_escalation.as_ref() == Some(&who) {
                self.ctx.pending_escalation = None;
            }
        }
        (is_child || watched).then_some(Terminated { actor: who, reason })
    }

    /// A child failed and waits for a directive: ask this actor's strategy,
    /// tell the child, then run `on_child_failed`. Boxed by the caller:
    /// rare, and it would otherwise make every actor's task larger.
    async fn on_child_failure(
        &mut self,
        actor: &mut A,
        child: ActorHandle,
        failure: Failure,
    ) -> Option<Next> {
        // User code: a panic here must not kill this task.
        let strategy =
                std::panic::catch_unwind(AssertUnwindSafe(|| actor.supervisor_strategy()))
                    .unwrap_or_else(|_| {
                        tracing::error!(path = %self.cell.path(), "supervisor_strategy() panicked; stopping the child");
                        crate::SupervisorStrategy::stopping()
                    });
        let report = (child.clone(), failure.clone());
        let next = self.supervise(strategy, child, failure).await;
        if let Some(directive) = self.last_directive.take() {
            let (child, failure) = report;
            let hook = AssertUnwindSafe(async {
                actor
                    .on_child_failed(child, failure, directive, &mut self.ctx)
                    .await;
            });
            if hook.catch_unwind().await.is_err() {
                tracing::warn!(path = %self.cell.path(), "`on_child_failed` hook panicked");
            }
        }
        next
    }

    /// A child failed: ask this actor's strategy and tell the child.
    async fn supervise(
        &mut self,
        strategy: crate::SupervisorStrategy,
        child: ActorHandle,
        failure: Failure,
    ) -> Option<Next> {
        if !self.cell.children.contains_id(child.id().0) {
            // Not (or no longer) our child: a stale report. It waits for a
            // directive, so release it.
            child.send_system(SystemMsg::Stop(StopReason::Failed(failure)));
            return None;
        }
        let mut directive = std::panic::catch_unwind(AssertUnwindSafe(|| strategy.decide(&failure)))
            .unwrap_or_else(|_| {
                tracing::error!(path = %self.cell.path(), "supervisor decider panicked; stopping the child");
                crate::Directive::Stop
            });
        if directive == crate::Directive::Resume && failure.stage == Stage::Started {
            directive = crate::Directive::Restart;
        }
        let group = |this: &Self| -> Vec<ActorHandle> {
            match strategy.scope() {
                Scope::OneForOne => vec![child.clone()],
                Scope::AllForOne => {
                    let mut all: Vec<ActorHandle> = this
                        .cell
                        .children
                        .snapshot()
                        .into_iter()
                        .map(|(_, c)| c)
                        .collect();
                    if !all.contains(&child) {
                        all.push(child.clone());
                    }
                    all
                }
            }
        };
        if directive != crate::Directive::Escalate {
            self.last_directive = Some(directive);
        }
        match directive {
            crate::Directive::Resume => child.send_system(SystemMsg::Resume),
            crate::Directive::Stop => {
                for c in group(self) {
                    let reason = if c == child {
                        StopReason::Failed(failure.clone())
                    } else {
                        StopReason::Stopped
                    };
                    c.send_system(SystemMsg::Stop(reason));
                }
            }
            crate::Directive::Restart => {
                let key = match strategy.scope() {
                    Scope::OneForOne => child.id().0,
                    Scope::AllForOne => 0,
                };
                let now = tokio::time::Instant::now();
                let decision = self
                    .ctx
                    .restart_windows
                    .entry(key)
                    .or_default()
                    .on_failure(now, strategy.limit());
                match decision {
                    RestartDecision::Restart { attempt } => {
                        let delay = strategy.backoff().delay(attempt, fastrand::f64());
                        for c in group(self) {
                            c.send_system(SystemMsg::Restart { delay });
                        }
                    }
                    RestartDecision::LimitExceeded { failures } => {
                        // The group (or child) is stopped: a new one starts
                        // with a fresh window.
                        self.ctx.restart_windows.remove(&key);
                        tracing::warn!(child = %child.path(), failures, "restart limit exceeded; stopping");
                        let reason = StopReason::RestartLimitExceeded {
                            failures,
                            within: strategy.limit().within,
                            last: failure.clone(),
                        };
                        for c in group(self) {
                            c.send_system(SystemMsg::Stop(reason.clone()));
                        }
                    }
                }
            }
            crate::Directive::Escalate => {
                self.ctx.pending_escalation = Some(child.clone());
                let escalated = Failure {
                    stage: Stage::Supervision,
                    cause: FailureCause::Escalated {
                        child: child.path().clone(),
                        cause: Arc::new(failure),
                    },
                };
                return match Box::pin(self.fail(escalated)).await {
                    AfterFailure::Resume => {
                        if let Some(c) = self.ctx.pending_escalation.take() {
                            c.send_system(SystemMsg::Resume);
                        }
                        None
                    }
                    AfterFailure::Next(n) => Some(n),
                };
            }
        }
        None
    }

    /// Reports `f` to the parent and waits for its directive. System messages
    /// that arrive meanwhile are kept, in order, for later.
    async fn fail(&mut self, f: Failure) -> AfterFailure {
        self.metrics
            .failure(self.ctx.system.metrics_node(), f.is_panic());
        tracing::warn!(path = %self.cell.path(), failure = %f, "actor failed");
        let Some(parent) = self.cell.parent.clone() else {
            return AfterFailure::Next(Next::Stop(StopReason::Failed(f)));
        };
        parent.send_system(SystemMsg::Failed {
            child: ActorHandle(self.cell.clone()),
            failure: f.clone(),
        });
        loop {
            match self.cell.sys.pop().await {
                SystemMsg::Resume => return AfterFailure::Resume,
                SystemMsg::Restart { delay } => {
                    return AfterFailure::Next(Next::Restart { delay });
                }
                SystemMsg::Stop(r) => return AfterFailure::Next(Next::Stop(r)),
                other => self.ctx.backlog.push_back(other),
            }
        }
    }

    /// The next item, system messages first. Polls the channels directly
    /// (no `try_recv`: tokio's `try_recv` parks the thread while a sender is
    /// mid-write, which costs a lot under a concurrent producer). Each user
    /// message consumes tokio's cooperative budget, so a busy actor still
    /// lets its worker run other tasks.
    #[inline]
    async fn next(&mut self) -> Item<A::Msg> {
        if let Some(m) = self.ctx.backlog.pop_front() {
            return Item::Sys(m);
        }
        let sys = &self.cell.sys;
        let user_rx = &mut self.user_rx;
        std::future::poll_fn(|cx| {
            // `try_pop` is one atomic load when the queue is empty.
            if let Some(m) = sys.try_pop() {
                return Poll::Ready(Item::Sys(m));
            }
            match user_rx.poll_recv(cx) {
                Poll::Ready(Some(e)) => return Poll::Ready(Item::User(e)),
                // Unreachable: this task holds a sender of both channels.
                Poll::Ready(None) => {
                    return Poll::Ready(Item::Sys(SystemMsg::Stop(StopReason::Stopped)));
                }
                Poll::Pending => {}
            }
            // Idle: make sure a system message wakes us too.
            sys.poll_pop(cx).map(Item::Sys)
        })
        .await
    }

    /// Ends the current instance: timers, children (closing the registry for
    /// good when `last`), then the `stopped` hook if `started` succeeded.
    async fn end_instance(&mut self, actor: Option<A>, started: bool, last: bool) {
        self.ctx.timers.cancel_all();
        if last {
            self.close_children_and_wait().await;
        } else {
            let children = self.cell.children.snapshot();
            self.stop_children_and_wait(children).await;
        }
        if started && let Some(mut actor) = actor {
            let hook =
                AssertUnwindSafe(async { actor.stopped(&mut self.ctx).await }).catch_unwind();
            if hook.await.is_err() {
                tracing::warn!(path = %self.cell.path(), "`stopped` hook panicked");
            }
        }
    }

    async fn close_children_and_wait(&mut self) {
        let children = self.cell.children.close();
        self.stop_children_and_wait(children).await;
    }

    /// Stops `children` and waits for their termination notices. Without
    /// children (most actors) there is nothing to wait for; with children
    /// the wait is boxed, so that it does not enlarge every actor's task.
    async fn stop_children_and_wait(&mut self, children: Vec<(u64, ActorHandle)>) {
        if children.is_empty() {
            self.ctx.pending_escalation = None;
            return;
        }
        Box::pin(self.wait_for_children(children)).await;
    }

    async fn wait_for_children(&mut self, children: Vec<(u64, ActorHandle)>) {
        let mut pending: HashSet<u64> = HashSet::with_capacity(children.len());
        // A child in the registry has not released its name yet, so its
        // Terminated notification (sent after the release) is still to come.
        for (id, c) in children {
            pending.insert(id);
            c.send_system(SystemMsg::Stop(StopReason::Stopped));
        }
        let mut kept = Vec::new();
        while !pending.is_empty() {
            let msg = match self.ctx.backlog.pop_front() {
                Some(m) => m,
                None => self.cell.sys.pop().await,
            };
            match msg {
                SystemMsg::Terminated { actor, reason } => {
                    let id = actor.id().0;
                    if pending.remove(&id) {
                        self.ctx.restart_windows.remove(&id);
                        self.ctx.watching.remove(&actor.id());
                    } else {
                        kept.push(SystemMsg::Terminated { actor, reason });
                    }
                }
                SystemMsg::Failed { child, .. } => {
                    child.send_system(SystemMsg::Stop(StopReason::Stopped));
                }
                SystemMsg::Stop(r) => {
                    self.pending_stop.get_or_insert(r);
                }
                SystemMsg::Restart { .. } | SystemMsg::Resume => {}
            }
        }
        self.ctx.pending_escalation = None;
        // Keep watch notifications for the next instance, in order.
        for m in kept.into_iter().rev() {
            self.ctx.backlog.push_front(m);
        }
    }

    /// Sleeps the restart backoff; a stop request cuts it short.
    async fn sleep_unless_stopped(&mut self, delay: Duration) -> Option<StopReason> {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return None,
                msg = self.cell.sys.pop() => match msg {
                    SystemMsg::Stop(r) => return Some(r),
                    SystemMsg::Failed { child, .. } => {
                        child.send_system(SystemMsg::Stop(StopReason::Stopped));
                    }
                    m @ SystemMsg::Terminated { .. } => self.ctx.backlog.push_back(m),
                    SystemMsg::Restart { .. } | SystemMsg::Resume => {}
                },
            }
        }
    }

    fn finish(&mut self, reason: StopReason) {
        let dropped = self.user_rx.close_and_drain();
        self.metrics
            .dead_letters(self.ctx.system.metrics_node(), dropped);
        let me = self.cell.id.0;
        for (_, target) in self.ctx.watching.drain() {
            target.0.watchers.remove(me);
        }
        self.end_reason = Some(reason);
    }
}
