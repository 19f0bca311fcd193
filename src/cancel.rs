//! The one stop condition a training loop polls between steps ([`stop_requested`]): the
//! binary's first SIGINT/SIGTERM ([`crate::signal`] routes it here) or a library caller's
//! cancellation (the Python package turns Ctrl-C into it). Either way the loop finishes its
//! step, writes a resumable checkpoint and ends with an `Interrupted` error.
//!
//! A caller's flag is scoped to the calling thread, so concurrent runs on other threads are
//! unaffected; a signal is to the whole process, so it stops every run in it.
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

/// The first stop signal the process received (0: none).
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

/// Why a run was asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A signal to the process (its number).
    Signal(i32),
    /// The library caller's flag (see [`scoped`]).
    Caller,
}

/// Whether a run in this thread should stop after its current step, and why.
pub fn stop_requested() -> Option<Stop> {
    match SIGNALLED.load(Ordering::SeqCst) {
        0 => requested().then_some(Stop::Caller),
        sig => Some(Stop::Signal(sig)),
    }
}

/// Record a stop signal; returns the one recorded before (0: none). Async-signal-safe (one
/// atomic swap): the signal handler calls it.
pub(crate) fn signal_received(sig: i32) -> i32 {
    SIGNALLED.swap(sig, Ordering::SeqCst)
}

/// The first stop signal the process received, if any.
pub fn signalled() -> Option<i32> {
    match SIGNALLED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

thread_local! {
    static FLAG: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Run `f` on this thread with `flag` as its cancellation flag: a training loop inside `f`
/// stops after the step in progress once the flag is set (from any thread), saving a
/// resumable checkpoint. The previous flag is restored afterwards.
///
/// ```
/// use std::sync::{atomic::{AtomicBool, Ordering}, Arc};
/// let flag = Arc::new(AtomicBool::new(false));
/// assert!(!cliptune::cancel::requested());
/// cliptune::cancel::scoped(flag.clone(), || {
///     assert!(!cliptune::cancel::requested());
///     flag.store(true, Ordering::SeqCst);
///     assert!(cliptune::cancel::requested());
/// });
/// assert!(!cliptune::cancel::requested()); // only inside the scope
/// ```
pub fn scoped<R>(flag: Arc<AtomicBool>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<AtomicBool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            FLAG.with(|c| *c.borrow_mut() = prev);
        }
    }
    let _restore = Restore(FLAG.with(|c| c.borrow_mut().replace(flag)));
    f()
}

/// Whether the caller of the current [`scoped`] run asked it to stop.
pub fn requested() -> bool {
    FLAG.with(|c| c.borrow().as_ref().is_some_and(|f| f.load(Ordering::SeqCst)))
}
