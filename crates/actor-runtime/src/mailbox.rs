//! Mailboxes: one tokio channel for user messages (bounded or unbounded) and
//! the actor's system-message queue (`sysqueue`, in the actor's cell), whose
//! messages always go first.

use std::num::NonZeroUsize;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::actor_ref::ActorHandle;
use crate::supervision::{Failure, StopReason};

/// The capacity of an actor's user mailbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mailbox {
    /// No bound: `tell` always succeeds while the actor lives; memory grows
    /// with the backlog. The default.
    #[default]
    Unbounded,
    /// At most this many queued messages; `tell` on a full mailbox returns
    /// [`TellError::Full`](crate::TellError::Full) with the message.
    Bounded(NonZeroUsize),
}

/// What travels in the user mailbox.
pub(crate) enum Envelope<M> {
    Msg(M),
    /// A timer's message, delivered only if the timer is still scheduled.
    Timer {
        key: u64,
        msg: M,
    },
}

/// System messages; they are handled before any queued user message.
pub(crate) enum SystemMsg {
    /// Stop (from `stop()`, the parent, or a supervisor decision).
    Stop(StopReason),
    /// Restart after `delay` (a supervisor decision, also for all-for-one
    /// siblings).
    Restart { delay: Duration },
    /// Go on after a failure.
    Resume,
    /// A child failed and waits for a directive.
    Failed {
        child: ActorHandle,
        failure: Failure,
    },
    /// A watched actor or a child terminated.
    Terminated {
        actor: ActorHandle,
        reason: StopReason,
    },
}

pub(crate) enum MailboxSender<M> {
    Bounded(mpsc::Sender<Envelope<M>>),
    Unbounded(mpsc::UnboundedSender<Envelope<M>>),
}

impl<M> Clone for MailboxSender<M> {
    fn clone(&self) -> Self {
        match self {
            Self::Bounded(s) => Self::Bounded(s.clone()),
            Self::Unbounded(s) => Self::Unbounded(s.clone()),
        }
    }
}

pub(crate) enum SendError<M> {
    Full(M),
    Closed(M),
}

fn unwrap_env<M>(e: Envelope<M>) -> M {
    match e {
        Envelope::Msg(m) | Envelope::Timer { msg: m, .. } => m,
    }
}

impl<M> MailboxSender<M> {
    #[inline]
    pub(crate) fn try_send(&self, env: Envelope<M>) -> Result<(), SendError<M>> {
        match self {
            Self::Unbounded(s) => s.send(env).map_err(|e| SendError::Closed(unwrap_env(e.0))),
            Self::Bounded(s) => s.try_send(env).map_err(|e| match e {
                mpsc::error::TrySendError::Full(e) => SendError::Full(unwrap_env(e)),
                mpsc::error::TrySendError::Closed(e) => SendError::Closed(unwrap_env(e)),
            }),
        }
    }

    /// Waits for room in a bounded mailbox (used by timers).
    pub(crate) async fn send(&self, env: Envelope<M>) -> Result<(), M> {
        match self {
            Self::Unbounded(s) => s.send(env).map_err(|e| unwrap_env(e.0)),
            Self::Bounded(s) => s.send(env).await.map_err(|e| unwrap_env(e.0)),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Self::Bounded(s) => s.is_closed(),
            Self::Unbounded(s) => s.is_closed(),
        }
    }

    pub(crate) fn same_channel(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Bounded(a), Self::Bounded(b)) => a.same_channel(b),
            (Self::Unbounded(a), Self::Unbounded(b)) => a.same_channel(b),
            _ => false,
        }
    }
}

pub(crate) enum MailboxReceiver<M> {
    Bounded(mpsc::Receiver<Envelope<M>>),
    Unbounded(mpsc::UnboundedReceiver<Envelope<M>>),
}

impl<M> MailboxReceiver<M> {
    #[inline]
    pub(crate) fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Envelope<M>>> {
        match self {
            Self::Bounded(r) => r.poll_recv(cx),
            Self::Unbounded(r) => r.poll_recv(cx),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Bounded(r) => r.len(),
            Self::Unbounded(r) => r.len(),
        }
    }

    /// Closes the channel and drops what is left; returns how many.
    pub(crate) fn close_and_drain(&mut self) -> usize {
        let mut n = 0;
        match self {
            Self::Bounded(r) => {
                r.close();
                while r.try_recv().is_ok() {
                    n += 1;
                }
            }
            Self::Unbounded(r) => {
                r.close();
                while r.try_recv().is_ok() {
                    n += 1;
                }
            }
        }
        n
    }
}

pub(crate) fn channel<M>(mailbox: Mailbox) -> (MailboxSender<M>, MailboxReceiver<M>) {
    match mailbox {
        Mailbox::Unbounded => {
            let (tx, rx) = mpsc::unbounded_channel();
            (MailboxSender::Unbounded(tx), MailboxReceiver::Unbounded(rx))
        }
        Mailbox::Bounded(n) => {
            let (tx, rx) = mpsc::channel(n.get());
            (MailboxSender::Bounded(tx), MailboxReceiver::Bounded(rx))
        }
    }
}
