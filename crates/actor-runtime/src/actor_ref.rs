//! Handles to actors: the typed [`ActorRef`] for sending messages and the
//! untyped [`ActorHandle`] for watching and stopping any actor.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use crate::children::ChildRegistry;
use crate::mailbox::{Envelope, MailboxSender, SendError, SystemMsg};
use crate::path::ActorPath;
use crate::supervision::StopReason;
use crate::sysqueue::SysQueue;
use crate::watch::WatchList;

/// An actor's identity, unique within its [`ActorSystem`](crate::ActorSystem)
/// for the system's life (never reused, unlike paths).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId(pub(crate) u64);

impl ActorId {
    /// The raw number.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Shared state of one actor, reachable from every handle to it.
pub(crate) struct ActorCell {
    pub(crate) id: ActorId,
    /// The name among siblings; shared with the parent's registry.
    pub(crate) name: Arc<str>,
    /// Built from the parent's path and the name on first use: most actors
    /// never need it as a string.
    path: std::sync::OnceLock<ActorPath>,
    /// System messages, taken before user messages.
    pub(crate) sys: SysQueue<SystemMsg>,
    pub(crate) parent: Option<ActorHandle>,
    pub(crate) children: ChildRegistry<ActorHandle>,
    pub(crate) watchers: WatchList<ActorHandle, StopReason>,
    terminated: AtomicBool,
    terminated_notify: Notify,
    /// The task's abort handle while it runs (for a shutdown past its
    /// deadline); cleared at termination so that a kept handle does not
    /// keep the finished task's memory.
    abort: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
}

impl ActorCell {
    pub(crate) fn new(id: ActorId, name: Arc<str>, parent: Option<ActorHandle>) -> Arc<Self> {
        Arc::new(Self {
            id,
            name,
            path: std::sync::OnceLock::new(),
            sys: SysQueue::new(),
            parent,
            children: ChildRegistry::new(),
            watchers: WatchList::new(),
            terminated: AtomicBool::new(false),
            terminated_notify: Notify::new(),
            abort: std::sync::Mutex::new(None),
        })
    }

    /// Keeps the task's abort handle, unless the task already ended.
    pub(crate) fn set_abort_handle(&self, task: tokio::task::AbortHandle) {
        *crate::loom::lock_std(&self.abort) = Some(task);
        // The task may have ended (and cleared the slot) before the set: it
        // marks itself terminated before clearing, so look again.
        if self.is_terminated() {
            self.clear_abort_handle();
        }
    }

    /// Drops the abort handle; called by the task as it ends.
    pub(crate) fn clear_abort_handle(&self) {
        drop(crate::loom::lock_std(&self.abort).take());
    }

    pub(crate) fn abort_handle(&self) -> Option<tokio::task::AbortHandle> {
        crate::loom::lock_std(&self.abort).clone()
    }

    /// The actor's path: `/<name>` for a guardian, else the parent's path
    /// and the name.
    pub(crate) fn path(&self) -> &ActorPath {
        self.path.get_or_init(|| match &self.parent {
            Some(p) => p.path().child(&self.name),
            None => ActorPath::root(&self.name),
        })
    }

    pub(crate) fn mark_terminated(&self) {
        self.terminated.store(true, Ordering::Release);
        self.terminated_notify.notify_waiters();
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::Acquire)
    }
}

/// An untyped handle to any actor: enough to watch it, stop it and learn when
/// it terminated, without knowing its message type.
///
/// Handles compare and hash by actor identity.
#[derive(Clone)]
pub struct ActorHandle(pub(crate) Arc<ActorCell>);

impl ActorHandle {
    /// The actor's identity.
    pub fn id(&self) -> ActorId {
        self.0.id
    }

    /// The actor's path.
    pub fn path(&self) -> &ActorPath {
        self.0.path()
    }

    /// Asks the actor to stop. Stop is a system message: it overtakes queued
    /// user messages, which are then dropped. Children stop first, then the
    /// actor's `stopped` hook runs. Does nothing if it already stopped.
    pub fn stop(&self) {
        self.send_system(SystemMsg::Stop(StopReason::Stopped));
    }

    /// `true` once the actor has terminated.
    pub fn is_terminated(&self) -> bool {
        self.0.is_terminated()
    }

    /// Why the actor terminated, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.0.watchers.reason()
    }

    /// Resolves when the actor has terminated (at once if it already has).
    pub async fn stopped(&self) {
        // Fast path: no waiter registration (a lock) when it already has.
        if self.0.is_terminated() {
            return;
        }
        loop {
            let notified = self.0.terminated_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.0.is_terminated() {
                return;
            }
            notified.await;
        }
    }

    /// The handle of the child called `name`, if it lives.
    pub fn child(&self, name: &str) -> Option<ActorHandle> {
        self.0.children.get(name)
    }

    /// The handles of the live children.
    pub fn children(&self) -> Vec<ActorHandle> {
        self.0
            .children
            .snapshot()
            .into_iter()
            .map(|(_, c)| c)
            .collect()
    }

    pub(crate) fn send_system(&self, msg: SystemMsg) {
        // A closed system queue means the actor is gone; nothing to do.
        let _ = self.0.sys.push(msg);
    }
}

impl PartialEq for ActorHandle {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}
impl Eq for ActorHandle {}
impl Hash for ActorHandle {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}
impl fmt::Debug for ActorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorHandle({}#{})", self.0.path(), self.0.id.0)
    }
}

/// A typed reference to an actor whose messages are `M`.
///
/// Cloning is cheap. References stay valid across restarts: a restarted actor
/// keeps its mailbox. They compare and hash by actor identity.
pub struct ActorRef<M> {
    pub(crate) handle: ActorHandle,
    pub(crate) tx: MailboxSender<M>,
}

impl<M> Clone for ActorRef<M> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            tx: self.tx.clone(),
        }
    }
}

impl<M> PartialEq for ActorRef<M> {
    fn eq(&self, other: &Self) -> bool {
        self.handle == other.handle
    }
}
impl<M> Eq for ActorRef<M> {}
impl<M> Hash for ActorRef<M> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.handle.hash(state);
    }
}
impl<M> fmt::Debug for ActorRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ActorRef({}#{})",
            self.handle.0.path(),
            self.handle.0.id.0
        )
    }
}

/// A `tell` that could not be delivered; the message comes back.
#[derive(PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TellError<M> {
    /// The bounded mailbox is full.
    #[error("mailbox full")]
    Full(M),
    /// The actor has stopped.
    #[error("actor stopped")]
    Closed(M),
}

impl<M> TellError<M> {
    /// The message that was not delivered.
    pub fn into_inner(self) -> M {
        match self {
            TellError::Full(m) | TellError::Closed(m) => m,
        }
    }
}

impl<M> fmt::Debug for TellError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TellError::Full(_) => f.write_str("Full(..)"),
            TellError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// Why an `ask` got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// No reply within the timeout.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The actor's bounded mailbox is full.
    #[error("mailbox full")]
    MailboxFull,
    /// The actor has stopped.
    #[error("actor stopped")]
    ActorStopped,
    /// The actor dropped the reply handle without answering (for example its
    /// handler failed).
    #[error("the actor dropped the request without replying")]
    NoReply,
}

/// The reply half of an [`ActorRef::ask`]; put it in the request message and
/// call [`ReplyTo::send`] once.
pub struct ReplyTo<R>(oneshot::Sender<R>);

impl<R> ReplyTo<R> {
    /// Answers the request. `Err(value)` if the asker has gone (timed out).
    pub fn send(self, value: R) -> Result<(), R> {
        self.0.send(value)
    }

    /// `true` if the asker no longer waits.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

impl<R> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyTo(..)")
    }
}

impl<M: Send + 'static> ActorRef<M> {
    /// Queues `msg` without waiting. Never blocks: a full bounded mailbox
    /// returns [`TellError::Full`] with the message, a stopped actor
    /// [`TellError::Closed`].
    #[inline]
    pub fn tell(&self, msg: M) -> Result<(), TellError<M>> {
        self.tx.try_send(Envelope::Msg(msg)).map_err(|e| match e {
            SendError::Full(m) => TellError::Full(m),
            SendError::Closed(m) => TellError::Closed(m),
        })
    }

    /// Sends a request built by `make` around a [`ReplyTo`] and waits for the
    /// answer at most `timeout`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use actor_runtime::{Actor, ActorSystem, Context, HandlerResult, ReplyTo};
    /// struct Doubler;
    /// enum Msg { Double(u32, ReplyTo<u32>) }
    /// impl Actor for Doubler {
    ///     type Msg = Msg;
    ///     async fn handle(&mut self, msg: Msg, _ctx: &mut Context<Self>) -> HandlerResult {
    ///         let Msg::Double(n, reply) = msg;
    ///         let _ = reply.send(n * 2);
    ///         Ok(())
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let system = ActorSystem::new("doc");
    /// let doubler = system.spawn("doubler", || Doubler).unwrap();
    /// let four = doubler.ask(|r| Msg::Double(2, r), Duration::from_secs(1)).await;
    /// assert_eq!(four, Ok(4));
    /// # system.shutdown().await; }
    /// ```
    pub async fn ask<R: Send + 'static>(
        &self,
        make: impl FnOnce(ReplyTo<R>) -> M,
        timeout: Duration,
    ) -> Result<R, AskError> {
        let (tx, mut rx) = oneshot::channel();
        self.tell(make(ReplyTo(tx))).map_err(|e| match e {
            TellError::Full(_) => AskError::MailboxFull,
            TellError::Closed(_) => AskError::ActorStopped,
        })?;
        // Fast path: a reply that is already there needs no timer.
        match rx.try_recv() {
            Ok(r) => return Ok(r),
            Err(oneshot::error::TryRecvError::Closed) => return Err(AskError::NoReply),
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(AskError::NoReply),
            Err(_) => Err(AskError::Timeout(timeout)),
        }
    }

    /// The untyped handle.
    pub fn handle(&self) -> &ActorHandle {
        &self.handle
    }

    /// The actor's identity.
    pub fn id(&self) -> ActorId {
        self.handle.id()
    }

    /// The actor's path.
    pub fn path(&self) -> &ActorPath {
        self.handle.path()
    }

    /// Asks the actor to stop; see [`ActorHandle::stop`].
    pub fn stop(&self) {
        self.handle.stop();
    }

    /// Resolves when the actor has terminated.
    pub async fn stopped(&self) {
        self.handle.stopped().await;
    }

    /// `true` once the mailbox is closed (the actor terminated).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Whether two references share one mailbox (always true for equal refs).
    pub fn same_mailbox(&self, other: &Self) -> bool {
        self.tx.same_channel(&other.tx)
    }
}

/// Delivered to [`Actor::on_terminated`](crate::Actor::on_terminated) when a
/// watched actor or a child terminates.
#[derive(Clone, Debug)]
pub struct Terminated {
    /// Who terminated.
    pub actor: ActorHandle,
    /// Why.
    pub reason: StopReason,
}
