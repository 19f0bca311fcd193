//! Cooperative cancellation of a training run by a library caller (the Python package turns
//! Ctrl-C into it). The flag is scoped to the calling thread, so concurrent runs on other
//! threads are unaffected and nothing global is shared.
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
