//! The [`Actor`] trait and [`Props`], the recipe an actor is built from.

use std::future::Future;

use crate::actor_ref::{ActorHandle, Terminated};
use crate::context::Context;
use crate::mailbox::Mailbox;
use crate::supervision::{Directive, Failure, SupervisorStrategy};

/// The error type handlers return: any error converts with `?`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What every hook and handler returns. `Err` is a failure, reported to the
/// supervisor exactly like a panic.
pub type HandlerResult = Result<(), BoxError>;

/// An actor: state plus a handler for its messages.
///
/// The runtime calls the hooks in this order, always from the actor's own
/// task, one at a time:
///
/// 1. [`started`](Actor::started) once per instance, before any message;
/// 2. [`handle`](Actor::handle) for each message, in mailbox order, and
///    [`on_terminated`](Actor::on_terminated) for each watched actor or child
///    that stops;
/// 3. [`stopped`](Actor::stopped) when the instance ends (stop or restart),
///    after its children have stopped, if `started` succeeded.
///
/// A panic or an `Err` in 1 or 2 is a [`Failure`](crate::Failure) handled by
/// the parent's [`SupervisorStrategy`]; a failure in `stopped` is logged.
///
/// ```
/// use actor_runtime::{Actor, Context, HandlerResult};
///
/// #[derive(Default)]
/// struct Counter { n: u64 }
///
/// impl Actor for Counter {
///     type Msg = u64;
///     async fn handle(&mut self, add: u64, _ctx: &mut Context<Self>) -> HandlerResult {
///         self.n = self.n.checked_add(add).ok_or("overflow")?;
///         Ok(())
///     }
/// }
/// ```
pub trait Actor: Send + Sized + 'static {
    /// The messages this actor handles.
    type Msg: Send + 'static;

    /// Runs once per instance before the first message. Messages sent in the
    /// meantime wait in the mailbox.
    fn started(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = HandlerResult> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one message.
    fn handle(
        &mut self,
        msg: Self::Msg,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = HandlerResult> + Send;

    /// A watched actor or a child terminated. Children are watched without
    /// asking, so a parent learns here that a child stopped, for instance
    /// because it exceeded its restart limit.
    fn on_terminated(
        &mut self,
        terminated: Terminated,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = HandlerResult> + Send {
        let _ = (terminated, ctx);
        async { Ok(()) }
    }

    /// A child failed and this actor's strategy decided `directive` (already
    /// sent to the child). For bookkeeping: a supervisor that tracks its
    /// children's health learns here that one is restarting or stopping.
    /// Not called for `Escalate` (this actor fails instead).
    fn on_child_failed(
        &mut self,
        child: ActorHandle,
        failure: Failure,
        directive: Directive,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (child, failure, directive, ctx);
        async {}
    }

    /// Runs when this instance ends, after its children stopped.
    fn stopped(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// How this actor supervises its children. Asked at each failure.
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::default()
    }
}

/// How to build an actor: a factory that is called at start and again at
/// every restart, and the mailbox to give it.
pub struct Props<A> {
    pub(crate) factory: Box<dyn FnMut() -> A + Send>,
    pub(crate) mailbox: Mailbox,
}

impl<A: Actor> Props<A> {
    /// Props from a factory, with an unbounded mailbox.
    pub fn new(factory: impl FnMut() -> A + Send + 'static) -> Self {
        Self {
            factory: Box::new(factory),
            mailbox: Mailbox::Unbounded,
        }
    }

    /// Sets the mailbox.
    pub fn with_mailbox(mut self, mailbox: Mailbox) -> Self {
        self.mailbox = mailbox;
        self
    }
}

impl<A> std::fmt::Debug for Props<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Props")
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}
