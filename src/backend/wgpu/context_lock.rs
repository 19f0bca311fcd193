//! One lock per GL device around every call into wgpu.
//!
//! wgpu-hal's GL backend guards its one GL context with a mutex that it waits on for at
//! most 6 s (`CONTEXT_LOCK_TIMEOUT_SECS` in wgpu-hal's `gles/egl.rs`) and then panics
//! ("Could not lock adapter context"). It holds that mutex for a whole call: a pipeline
//! compile (2-6 s per attention kernel on llvmpipe-GL, more on a loaded machine), a
//! submit, a fence wait until the GPU finishes (`device.poll(Wait)`), buffer creation,
//! mapping and destruction. So one thread compiling or waiting while another touches the
//! same device turns a slow call into a crash; several Python threads, Ray actors or a
//! rayon pool driving one GL device hit it. Every entry point of the backend that
//! reaches wgpu takes this lock first, so such contention waits here, without a timeout,
//! and wgpu-hal always finds its context free.
//!
//! Reentrant because entry points call each other (`wait` flushes, `read_bytes` is
//! `start_read` + `finish_read`). Taken before any other lock of the backend and never
//! inside one, so lock order cannot deadlock. Vulkan, Metal and DX12 have no such
//! context: there the lock is absent and [`ContextLock::hold`] is one branch.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{ReentrantMutex, ReentrantMutexGuard};

#[derive(Default)]
pub struct ContextLock {
    lock: Option<ReentrantMutex<()>>,
    /// Time threads spent waiting for the lock, and the longest single hold, in ns:
    /// `CLIPTUNE_GPU_STATS=1` and tests read them through `GpuStats`.
    wait_ns: AtomicU64,
    max_hold_ns: AtomicU64,
}

/// Held while a thread uses the device; released on drop.
pub struct ContextGuard<'a> {
    held: Option<(ReentrantMutexGuard<'a, ()>, Instant)>,
    owner: &'a ContextLock,
}

impl ContextLock {
    /// A real lock only where the API shares one context across threads (GL).
    pub fn new(serialise: bool) -> ContextLock {
        ContextLock {
            lock: serialise.then(|| ReentrantMutex::new(())),
            ..Default::default()
        }
    }

    pub fn hold(&self) -> ContextGuard<'_> {
        let Some(lock) = &self.lock else {
            return ContextGuard {
                held: None,
                owner: self,
            };
        };
        // Only the outermost hold of a thread is timed: nested ones wait for nothing.
        if lock.is_owned_by_current_thread() {
            return ContextGuard {
                held: Some((lock.lock(), Instant::now())),
                owner: self,
            };
        }
        let t0 = Instant::now();
        let g = lock.lock();
        let now = Instant::now();
        self.wait_ns.fetch_add((now - t0).as_nanos() as u64, Ordering::Relaxed);
        ContextGuard {
            held: Some((g, now)),
            owner: self,
        }
    }

    /// (total ns waited, longest hold in ns) so far.
    pub fn times(&self) -> (u64, u64) {
        (
            self.wait_ns.load(Ordering::Relaxed),
            self.max_hold_ns.load(Ordering::Relaxed),
        )
    }
}

impl Drop for ContextGuard<'_> {
    fn drop(&mut self) {
        if let Some((g, since)) = self.held.take() {
            let held = since.elapsed().as_nanos() as u64;
            drop(g);
            self.owner.max_hold_ns.fetch_max(held, Ordering::Relaxed);
        }
    }
}
