//! A switch between `std::sync` and `loom::sync`, in the manner of tokio's
//! `src/loom/mod.rs`: the concurrent pieces that this crate writes itself
//! (subscription registry, watch list, child registry, shutdown latch,
//! system-message queue) import
//! their primitives from here so that `RUSTFLAGS="--cfg loom"` model-checks
//! them.

#[cfg(not(loom))]
pub(crate) use futures::task::AtomicWaker;
#[cfg(loom)]
pub(crate) use loom::future::AtomicWaker;
#[cfg(loom)]
pub(crate) use loom::sync::{
    Arc, Mutex, MutexGuard, RwLock,
    atomic::{AtomicU8, AtomicUsize, Ordering},
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    Arc, Mutex, MutexGuard, RwLock,
    atomic::{AtomicU8, AtomicUsize, Ordering},
};

/// Locks `m`, ignoring poisoning: every critical section in this crate
/// leaves its data consistent before anything that can panic runs, and user
/// code never runs under these locks.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Locks a `std` mutex (used where loom does not model: task bookkeeping).
pub(crate) fn lock_std<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Registers `waker` with `w` (loom's `AtomicWaker` spells it differently).
#[inline]
pub(crate) fn register_waker(w: &AtomicWaker, waker: &std::task::Waker) {
    #[cfg(loom)]
    w.register_by_ref(waker);
    #[cfg(not(loom))]
    w.register(waker);
}
