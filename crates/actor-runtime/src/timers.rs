//! Timers to self. Each timer is a small tokio task that sends into the
//! actor's own mailbox; the actor drops a timer message whose timer is no
//! longer scheduled, so a cancelled timer never delivers, even if its message
//! was already queued. All timers are cancelled when the instance ends (stop
//! or restart).

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::mailbox::{Envelope, MailboxSender};

/// Identifies a scheduled timer, for [`Context::cancel_timer`](crate::Context::cancel_timer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey(pub(crate) u64);

pub(crate) struct Timers {
    next: u64,
    active: HashMap<u64, (AbortHandle, bool)>,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Self {
            next: 0,
            active: HashMap::new(),
        }
    }

    pub(crate) fn once<M: Send + 'static>(
        &mut self,
        tx: MailboxSender<M>,
        delay: Duration,
        msg: M,
    ) -> TimerKey {
        let key = self.next_key();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Envelope::Timer { key, msg }).await;
        });
        self.active.insert(key, (task.abort_handle(), false));
        TimerKey(key)
    }

    pub(crate) fn repeat<M: Clone + Send + 'static>(
        &mut self,
        tx: MailboxSender<M>,
        interval: Duration,
        msg: M,
    ) -> TimerKey {
        let key = self.next_key();
        let period = interval.max(Duration::from_millis(1));
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if tx
                    .send(Envelope::Timer {
                        key,
                        msg: msg.clone(),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        self.active.insert(key, (task.abort_handle(), true));
        TimerKey(key)
    }

    fn next_key(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Whether a timer message with `key` is still wanted. A one-shot timer
    /// is used up by it.
    pub(crate) fn accept(&mut self, key: u64) -> bool {
        match self.active.get(&key) {
            Some((_, true)) => true,
            Some((_, false)) => {
                self.active.remove(&key);
                true
            }
            None => false,
        }
    }

    pub(crate) fn cancel(&mut self, key: TimerKey) -> bool {
        match self.active.remove(&key.0) {
            Some((task, _)) => {
                task.abort();
                true
            }
            None => false,
        }
    }

    pub(crate) fn cancel_all(&mut self) {
        for (_, (task, _)) in self.active.drain() {
            task.abort();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.active.len()
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        self.cancel_all();
    }
}
