//! A copy-on-write subscription list: the concurrent core of the
//! [`EventStream`](crate::EventStream).
//!
//! Publishing takes a read lock just long enough to clone an `Arc` of the
//! current list, then delivers without any lock held, so subscribers that
//! subscribe or leave during a publish never block it and never see a torn
//! list. Subscribing or leaving copies the list (subscriptions change rarely,
//! publishes are the hot path).
//!
//! Guarantees (model-checked under loom, see the tests at the end):
//! - a subscription whose `add` returned before a `snapshot` began is in it;
//! - a subscription whose `remove` returned before a `snapshot` began is not;
//! - a key is present at most once.

use crate::loom::{Arc, RwLock};

pub(crate) struct SubscriptionRegistry<K, T> {
    list: RwLock<Arc<Vec<(K, T)>>>,
}

impl<K: PartialEq + Clone, T: Clone> SubscriptionRegistry<K, T> {
    pub(crate) fn new() -> Self {
        Self {
            list: RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// Adds `value` under `key`; `false` (and no change) when the key is present.
    pub(crate) fn add(&self, key: K, value: T) -> bool {
        let mut guard = self
            .list
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.iter().any(|(k, _)| *k == key) {
            return false;
        }
        let mut next = Vec::with_capacity(guard.len() + 1);
        next.extend(guard.iter().cloned());
        next.push((key, value));
        *guard = Arc::new(next);
        true
    }

    /// Removes `key`; `true` if it was present.
    pub(crate) fn remove(&self, key: &K) -> bool {
        // Most removals find nothing (an ending actor is removed from every
        // topic): look under the read lock first, so that publishers are
        // not held up.
        if !self.snapshot().iter().any(|(k, _)| k == key) {
            return false;
        }
        let mut guard = self
            .list
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !guard.iter().any(|(k, _)| k == key) {
            return false;
        }
        let next: Vec<(K, T)> = guard.iter().filter(|(k, _)| k != key).cloned().collect();
        *guard = Arc::new(next);
        true
    }

    /// The current list; cheap (one reference count).
    pub(crate) fn snapshot(&self) -> Arc<Vec<(K, T)>> {
        self.list
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.snapshot().len()
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn add_is_idempotent_per_key_and_remove_reports_presence() {
        let r = SubscriptionRegistry::new();
        assert!(r.add(1, "a"));
        assert!(!r.add(1, "b"));
        assert!(r.add(2, "c"));
        let snap = r.snapshot();
        assert_eq!(snap.as_slice(), &[(1, "a"), (2, "c")]);
        assert!(r.remove(&1));
        assert!(!r.remove(&1));
        // An earlier snapshot is not affected by later changes.
        assert_eq!(snap.len(), 2);
        assert_eq!(r.len(), 1);
    }
}

#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use super::*;
    use loom::thread;

    /// A2: a subscriber added before a publish starts sees the event; one
    /// removed before it starts does not; concurrent changes never lose an
    /// unrelated subscriber.
    #[test]
    fn loom_concurrent_add_remove_snapshot() {
        loom::model(|| {
            let r = Arc::new(SubscriptionRegistry::new());
            assert!(r.add(0u8, ()));
            let r1 = r.clone();
            let adder = thread::spawn(move || {
                assert!(r1.add(1, ()));
                // After add returned, every new snapshot holds it.
                assert!(r1.snapshot().iter().any(|(k, _)| *k == 1));
            });
            let r2 = r.clone();
            let remover = thread::spawn(move || {
                assert!(r2.remove(&0));
                assert!(!r2.snapshot().iter().any(|(k, _)| *k == 0));
            });
            let snap = r.snapshot();
            // Never a duplicate, never a key that was not added.
            assert!(snap.len() <= 2);
            adder.join().unwrap();
            remover.join().unwrap();
            let end = r.snapshot();
            assert_eq!(end.as_slice(), &[(1, ())]);
        });
    }

    #[test]
    fn loom_racing_adds_of_one_key_admit_exactly_one() {
        loom::model(|| {
            let r = Arc::new(SubscriptionRegistry::new());
            let r1 = r.clone();
            let t = thread::spawn(move || r1.add(7u8, 1u8));
            let mine = r.add(7, 2);
            let theirs = t.join().unwrap();
            assert!(mine ^ theirs, "exactly one add wins");
            assert_eq!(r.len(), 1);
        });
    }
}
