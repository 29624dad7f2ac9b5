//! The death-watch list of one actor: who is told when it terminates.
//!
//! States: `Alive(watchers)` until the actor terminates, then `Dead(reason)`
//! for good. `add` on a dead actor returns the reason so the watcher can be
//! told at once. Guarantee (model-checked under loom): a watcher added
//! concurrently with termination is told exactly once, either through the list
//! that `terminate` returns or through `add`'s `Err`.

use crate::loom::{Mutex, lock};

enum State<W, R> {
    Alive(Vec<(u64, W)>),
    Dead(R),
}

pub(crate) struct WatchList<W, R> {
    state: Mutex<State<W, R>>,
}

impl<W, R: Clone> WatchList<W, R> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::Alive(Vec::new())),
        }
    }

    /// Registers `watcher` under `id`. `Err(reason)` if already terminated.
    /// Adding the same id twice keeps one entry.
    pub(crate) fn add(&self, id: u64, watcher: W) -> Result<(), R> {
        match &mut *lock(&self.state) {
            State::Alive(list) => {
                if !list.iter().any(|(i, _)| *i == id) {
                    list.push((id, watcher));
                }
                Ok(())
            }
            State::Dead(reason) => Err(reason.clone()),
        }
    }

    /// Removes the watcher `id`, if present.
    pub(crate) fn remove(&self, id: u64) {
        if let State::Alive(list) = &mut *lock(&self.state) {
            list.retain(|(i, _)| *i != id);
        }
    }

    /// Marks the actor dead and hands back the watchers to tell. A second call
    /// returns nothing and keeps the first reason.
    pub(crate) fn terminate(&self, reason: R) -> Vec<(u64, W)> {
        let mut guard = lock(&self.state);
        match std::mem::replace(&mut *guard, State::Dead(reason)) {
            State::Alive(list) => list,
            State::Dead(first) => {
                *guard = State::Dead(first);
                Vec::new()
            }
        }
    }

    /// The reason, once dead.
    pub(crate) fn reason(&self) -> Option<R> {
        match &*lock(&self.state) {
            State::Alive(_) => None,
            State::Dead(r) => Some(r.clone()),
        }
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn terminate_hands_back_watchers_once_and_late_add_gets_reason() {
        let w: WatchList<&str, &str> = WatchList::new();
        w.add(1, "a").unwrap();
        w.add(1, "a-again").unwrap();
        w.add(2, "b").unwrap();
        w.remove(2);
        assert_eq!(w.terminate("gone"), vec![(1, "a")]);
        assert!(w.terminate("again").is_empty());
        assert_eq!(w.add(3, "c"), Err("gone"));
        assert_eq!(w.reason(), Some("gone"));
    }
}

#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use super::*;
    use crate::loom::Arc;
    use loom::thread;

    /// A1 death watch: racing watch and termination notify exactly once.
    #[test]
    fn loom_watch_racing_termination_notifies_exactly_once() {
        loom::model(|| {
            let w: Arc<WatchList<(), u8>> = Arc::new(WatchList::new());
            let w1 = w.clone();
            let watcher = thread::spawn(move || w1.add(9, ()).is_err());
            let told_by_terminate = w.terminate(1).iter().filter(|(id, _)| *id == 9).count();
            let told_by_add = usize::from(watcher.join().unwrap());
            assert_eq!(told_by_terminate + told_by_add, 1);
        });
    }
}
