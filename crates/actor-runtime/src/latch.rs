//! A once-only transition used by shutdown: the first caller runs it, every
//! other caller waits for its end. Model-checked under loom.

use crate::loom::{AtomicU8, Ordering};

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

pub(crate) struct OnceLatch(AtomicU8);

impl OnceLatch {
    pub(crate) fn new() -> Self {
        Self(AtomicU8::new(IDLE))
    }

    /// `true` for exactly one caller over the latch's life.
    pub(crate) fn try_begin(&self) -> bool {
        self.0
            .compare_exchange(IDLE, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn finish(&self) {
        self.0.store(DONE, Ordering::Release);
    }

    pub(crate) fn is_started(&self) -> bool {
        self.0.load(Ordering::Acquire) != IDLE
    }

    #[cfg(all(test, loom))]
    pub(crate) fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire) == DONE
    }
}

#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use super::*;
    use crate::loom::Arc;
    use loom::thread;

    /// A1 shutdown is idempotent: of racing callers exactly one runs it.
    #[test]
    fn loom_exactly_one_caller_begins() {
        loom::model(|| {
            let l = Arc::new(OnceLatch::new());
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let l = l.clone();
                    thread::spawn(move || l.try_begin())
                })
                .collect();
            let mine = l.try_begin();
            let n = ts
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|b| *b)
                .count()
                + usize::from(mine);
            assert_eq!(n, 1);
            l.finish();
            assert!(l.is_done() && l.is_started());
        });
    }
}
