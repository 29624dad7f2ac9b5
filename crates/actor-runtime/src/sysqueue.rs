//! The system-message queue of one actor: many senders, one receiver (the
//! actor's task), FIFO, unbounded, closed for good when the actor ends.
//!
//! It replaces a second tokio channel per actor. A tokio channel allocates
//! its shared state and a first block of 32 slots when it is created; this
//! queue lives inside the actor's cell and keeps its oldest message in an
//! inline slot, so it allocates only when two messages wait at once (most
//! actors receive one system message in their life: the stop). The receiver's waker sits in an [`AtomicWaker`]; the actor's loop
//! registers the same waker here and with its user mailbox, so either wakes
//! it.
//!
//! States: `Open(queue)` until [`SysQueue::close`], then `Closed` for good:
//! a push is refused (the message comes back) and what was queued is handed
//! to the closer, to be dropped outside the lock.
//!
//! Guarantees (model-checked under loom, see the tests at the end):
//! - a message pushed while the receiver is parked wakes it (no lost
//!   wakeup): after `poll_pop` returned `Pending`, a later push wakes the
//!   registered waker;
//! - a push racing `close` is either in the closer's drained list or
//!   refused, never lost silently and never left in a closed queue;
//! - messages from one sender come out in the order they were pushed.

use std::collections::VecDeque;
use std::task::{Context, Poll};

use crate::loom::{AtomicUsize, AtomicWaker, Mutex, Ordering, lock, register_waker};

struct State<T> {
    /// The oldest message, when `rest` is empty or holds younger ones.
    first: Option<T>,
    rest: VecDeque<T>,
    closed: bool,
}

impl<T> State<T> {
    fn push(&mut self, msg: T) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(msg);
        } else {
            self.rest.push_back(msg);
        }
    }

    fn pop(&mut self) -> Option<T> {
        self.first.take().or_else(|| self.rest.pop_front())
    }
}

pub(crate) struct SysQueue<T> {
    state: Mutex<State<T>>,
    /// Messages queued; read without the lock by the receiver's fast path.
    len: AtomicUsize,
    waker: AtomicWaker,
}

impl<T> SysQueue<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                first: None,
                rest: VecDeque::new(),
                closed: false,
            }),
            len: AtomicUsize::new(0),
            waker: AtomicWaker::new(),
        }
    }

    /// Queues `msg` and wakes the receiver; `Err(msg)` once closed.
    pub(crate) fn push(&self, msg: T) -> Result<(), T> {
        {
            let mut s = lock(&self.state);
            if s.closed {
                return Err(msg);
            }
            s.push(msg);
            self.len.fetch_add(1, Ordering::SeqCst);
        }
        self.waker.wake();
        Ok(())
    }

    /// `true` when nothing is queued (one atomic load).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::SeqCst) == 0
    }

    /// The first message, if any, without waiting.
    pub(crate) fn try_pop(&self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        let mut s = lock(&self.state);
        let m = s.pop();
        if m.is_some() {
            self.len.fetch_sub(1, Ordering::SeqCst);
        }
        m
    }

    /// The first message, or `Pending` with `cx`'s waker registered so that
    /// the next push wakes it. Only the receiver calls this.
    pub(crate) fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(m) = self.try_pop() {
            return Poll::Ready(m);
        }
        register_waker(&self.waker, cx.waker());
        // A push between the first check and the registration found no
        // waker to wake: look again.
        match self.try_pop() {
            Some(m) => Poll::Ready(m),
            None => Poll::Pending,
        }
    }

    /// Waits for the next message.
    pub(crate) async fn pop(&self) -> T {
        std::future::poll_fn(|cx| self.poll_pop(cx)).await
    }

    /// Refuses every later push and hands back what was queued (drop it
    /// outside any lock: messages hold actor handles).
    pub(crate) fn close(&self) -> VecDeque<T> {
        let mut s = lock(&self.state);
        s.closed = true;
        self.len.store(0, Ordering::SeqCst);
        let mut all = std::mem::take(&mut s.rest);
        if let Some(m) = s.first.take() {
            all.push_front(m);
        }
        all
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::task::{Wake, Waker};

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn fifo_then_pending_then_woken_by_a_push_and_closed_refuses() {
        let q = SysQueue::new();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        q.push(1).unwrap();
        q.push(2).unwrap();
        assert!(!q.is_empty());
        assert_eq!(q.poll_pop(&mut cx), Poll::Ready(1));
        assert_eq!(q.try_pop(), Some(2));
        assert!(q.is_empty());
        assert_eq!(q.poll_pop(&mut cx), Poll::Pending);
        assert!(!flag.0.load(std::sync::atomic::Ordering::SeqCst));
        q.push(3).unwrap();
        assert!(
            flag.0.load(std::sync::atomic::Ordering::SeqCst),
            "a push wakes"
        );
        q.push(4).unwrap();
        q.push(5).unwrap();
        assert_eq!(q.try_pop(), Some(3), "the inline slot holds the oldest");
        q.push(6).unwrap();
        assert_eq!(q.close(), VecDeque::from([4, 5, 6]));
        assert!(q.is_empty());
        assert_eq!(q.push(7), Err(7));
        assert_eq!(q.try_pop(), None);
    }
}

#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use super::*;
    use crate::loom::Arc;
    use loom::thread;

    /// A1 (system messages are never lost): a push racing the receiver's
    /// `poll_pop` is either popped or wakes the receiver, which then pops it.
    #[test]
    fn loom_push_racing_poll_pop_is_never_lost() {
        loom::model(|| {
            let q = Arc::new(SysQueue::new());
            let q1 = q.clone();
            let sender = thread::spawn(move || q1.push(7u8).unwrap());
            let got = loom::future::block_on(q.pop());
            assert_eq!(got, 7);
            sender.join().unwrap();
            assert!(q.is_empty());
        });
    }

    /// A push racing `close` is either drained by the closer or refused.
    #[test]
    fn loom_push_racing_close_is_drained_or_refused() {
        loom::model(|| {
            let q = Arc::new(SysQueue::new());
            let q1 = q.clone();
            let sender = thread::spawn(move || q1.push(1u8).is_ok());
            let drained = q.close();
            let accepted = sender.join().unwrap();
            assert_eq!(accepted, drained.contains(&1));
            assert!(q.is_empty());
        });
    }

    /// Two senders: both messages arrive, each sender's in its order.
    #[test]
    fn loom_two_senders_both_arrive_in_per_sender_order() {
        loom::model(|| {
            let q = Arc::new(SysQueue::new());
            let q1 = q.clone();
            let a = thread::spawn(move || {
                q1.push(1u8).unwrap();
                q1.push(2u8).unwrap();
            });
            q.push(10).unwrap();
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(loom::future::block_on(q.pop()));
            }
            a.join().unwrap();
            let ones: Vec<u8> = got.iter().copied().filter(|m| *m < 10).collect();
            assert_eq!(ones, vec![1, 2]);
            assert!(got.contains(&10));
        });
    }
}
