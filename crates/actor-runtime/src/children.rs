//! The children of one actor, by name. Names are unique among siblings while
//! the sibling lives; a closed registry (the parent is stopping) admits no new
//! child. Model-checked under loom: two racing spawns of one name admit one;
//! a spawn racing `close` either lands before it (and is stopped with the
//! others) or fails.

use std::collections::HashMap;
use std::sync::Arc;

use crate::loom::{Mutex, lock};

/// Why a name could not be reserved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReserveError {
    Duplicate,
    Closed,
}

struct Inner<C> {
    /// Keyed by the child's name, shared with the child's cell.
    by_name: HashMap<Arc<str>, (u64, C)>,
    closed: bool,
}

pub(crate) struct ChildRegistry<C> {
    inner: Mutex<Inner<C>>,
}

impl<C: Clone> ChildRegistry<C> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                by_name: HashMap::new(),
                closed: false,
            }),
        }
    }

    pub(crate) fn reserve(&self, name: &Arc<str>, id: u64, child: C) -> Result<(), ReserveError> {
        let mut g = lock(&self.inner);
        if g.closed {
            return Err(ReserveError::Closed);
        }
        match g.by_name.entry(name.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => Err(ReserveError::Duplicate),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((id, child));
                Ok(())
            }
        }
    }

    /// Releases `name` if it still belongs to child `id`.
    pub(crate) fn release(&self, name: &str, id: u64) {
        let mut g = lock(&self.inner);
        if g.by_name.get(name).is_some_and(|(i, _)| *i == id) {
            g.by_name.remove(name);
        }
    }

    pub(crate) fn contains_id(&self, id: u64) -> bool {
        lock(&self.inner).by_name.values().any(|(i, _)| *i == id)
    }

    pub(crate) fn snapshot(&self) -> Vec<(u64, C)> {
        lock(&self.inner).by_name.values().cloned().collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<C> {
        lock(&self.inner).by_name.get(name).map(|(_, c)| c.clone())
    }

    /// Refuses further children and returns the current ones.
    pub(crate) fn close(&self) -> Vec<(u64, C)> {
        let mut g = lock(&self.inner);
        g.closed = true;
        g.by_name.values().cloned().collect()
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.inner).closed
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_until_released_and_closed_refuses() {
        let r = ChildRegistry::new();
        r.reserve(&"a".into(), 1, ()).unwrap();
        assert_eq!(r.reserve(&"a".into(), 2, ()), Err(ReserveError::Duplicate));
        r.release("a", 2); // not the owner: no effect
        assert!(r.contains_id(1));
        r.release("a", 1);
        r.reserve(&"a".into(), 3, ()).unwrap();
        assert_eq!(r.close().len(), 1);
        assert_eq!(r.reserve(&"b".into(), 4, ()), Err(ReserveError::Closed));
        assert!(r.is_closed());
        assert!(r.get("a").is_some());
    }
}

#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use super::*;
    use crate::loom::Arc;
    use loom::thread;

    #[test]
    fn loom_racing_spawns_of_one_name_admit_one() {
        loom::model(|| {
            let r = Arc::new(ChildRegistry::new());
            let r1 = r.clone();
            let t = thread::spawn(move || r1.reserve(&"x".into(), 1, ()).is_ok());
            let mine = r.reserve(&"x".into(), 2, ()).is_ok();
            assert!(mine ^ t.join().unwrap());
        });
    }

    #[test]
    fn loom_spawn_racing_close_is_stopped_or_refused() {
        loom::model(|| {
            let r = Arc::new(ChildRegistry::new());
            let r1 = r.clone();
            let t = thread::spawn(move || r1.reserve(&"late".into(), 1, ()).is_ok());
            let seen_at_close = r.close().iter().any(|(id, _)| *id == 1);
            let admitted = t.join().unwrap();
            // Admitted children are exactly those the closing parent saw.
            assert_eq!(admitted, seen_at_close);
        });
    }
}
