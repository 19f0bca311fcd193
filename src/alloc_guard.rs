//! A global allocator that counts live heap bytes and, under an optional byte budget, stops
//! the process with a report instead of aborting (or being SIGKILLed by the kernel OOM
//! killer) when memory runs out.
//!
//! The `cliptune` binary installs it:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: cliptune::alloc_guard::GuardedAlloc = cliptune::alloc_guard::GuardedAlloc;
//! ```
//!
//! Where it is not installed (a library user's own binary), [`installed`] is false and
//! [`set_budget`] and [`set_report`] are no-ops: nothing is counted or limited.
//!
//! The count is only what goes through the Rust global allocator, an approximation of RSS:
//! memory-mapped files (checkpoints), GPU memory, C libraries' own `malloc` (e.g. Vulkan
//! drivers), thread stacks and allocator overhead are not counted.
//!
//! On failure (an allocation that would take the live count over the budget, or the system
//! allocator returning null while a report is set) nothing is allocated: the report given
//! to [`set_report`] is written to stdout and stderr with its placeholders filled in, and
//! the process ends at once through `_exit` with [`OOM_EXIT_CODE`] (no destructors, no
//! atexit handlers). A budget overrun is fatal even for a fallible allocation
//! (`try_reserve`): the allocator cannot tell them apart.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Exit status of a process stopped by the guard (1 is an ordinary error, 2 a usage
/// error from clap, 101 a panic, 134 an abort).
pub const OOM_EXIT_CODE: i32 = 3;

/// Placeholder in a report: "allocation of N bytes would exceed the host budget of B MiB
/// (L MiB live)", or the system-allocator variant.
pub const FAILURE: &str = "@@FAILURE@@";
/// Placeholder in a report: peak RSS in MiB at the failure (Linux `VmHWM`, one decimal; 0.0
/// elsewhere), a bare number.
pub const PEAK_RSS_MIB: &str = "@@PEAK_RSS_MIB@@";

/// Bytes available to the stdout and stderr reports together (placeholders count 2 each).
pub const REPORT_CAPACITY: usize = 64 * 1024;

/// The allocator: [`System`] plus accounting. Install with `#[global_allocator]`.
pub struct GuardedAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// 0: no budget.
static BUDGET: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Set by the first failing thread; any other thread that fails waits for the exit.
static FAILED: AtomicBool = AtomicBool::new(false);
/// Spin lock over REPORT; its holders never allocate, so the failure path cannot deadlock.
static LOCK: AtomicBool = AtomicBool::new(false);
static REPORT: ReportCell = ReportCell(UnsafeCell::new(Report {
    buf: [0; REPORT_CAPACITY],
    out_len: 0,
    err_len: 0,
}));

/// Encoded as: bytes, with each placeholder as NUL + one tag byte.
struct Report {
    buf: [u8; REPORT_CAPACITY],
    out_len: usize,
    err_len: usize,
}
struct ReportCell(UnsafeCell<Report>);
// SAFETY: only touched while holding LOCK.
unsafe impl Sync for ReportCell {}

const TAG_FAILURE: u8 = b'F';
const TAG_RSS: u8 = b'R';

#[derive(Clone, Copy)]
enum Cause {
    Budget,
    System,
}

/// Whether this process allocates through [`GuardedAlloc`].
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Heap bytes currently allocated through [`GuardedAlloc`] (0 if it is not installed).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Limit the live heap to `bytes` (None: no limit). A no-op returning false where the
/// guard is not installed.
pub fn set_budget(bytes: Option<usize>) -> bool {
    if !installed() {
        return false;
    }
    BUDGET.store(bytes.unwrap_or(0), Ordering::Relaxed);
    true
}

/// The budget in force, if any.
pub fn budget() -> Option<usize> {
    match BUDGET.load(Ordering::Relaxed) {
        0 => None,
        b => Some(b),
    }
}

/// The texts written to stdout and stderr on failure, with [`FAILURE`] and
/// [`PEAK_RSS_MIB`] filled in there. Returns false (and keeps the previous report) when
/// they do not fit in [`REPORT_CAPACITY`], or where the guard is not installed.
pub fn set_report(stdout: &str, stderr: &str) -> bool {
    if !installed() || encoded_len(stdout.as_bytes()) + encoded_len(stderr.as_bytes()) > REPORT_CAPACITY {
        return false;
    }
    lock();
    // SAFETY: LOCK is held.
    let r = unsafe { &mut *REPORT.0.get() };
    r.out_len = encode(stdout.as_bytes(), &mut r.buf);
    r.err_len = encode(stderr.as_bytes(), &mut r.buf[r.out_len..]);
    unlock();
    true
}

/// Remove the budget and the report.
pub fn clear() {
    BUDGET.store(0, Ordering::Relaxed);
    lock();
    // SAFETY: LOCK is held.
    let r = unsafe { &mut *REPORT.0.get() };
    r.out_len = 0;
    r.err_len = 0;
    unlock();
}

fn lock() {
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
}

fn unlock() {
    LOCK.store(false, Ordering::Release);
}

fn placeholder_at(s: &[u8]) -> Option<(u8, usize)> {
    [(FAILURE, TAG_FAILURE), (PEAK_RSS_MIB, TAG_RSS)]
        .into_iter()
        .find(|(p, _)| s.starts_with(p.as_bytes()))
        .map(|(p, tag)| (tag, p.len()))
}

/// Walks `s` once; calls `emit` with each encoded piece. NUL bytes in the input are dropped
/// (NUL marks placeholders).
fn walk(s: &[u8], mut emit: impl FnMut(&[u8])) {
    let mut i = 0;
    while i < s.len() {
        if let Some((tag, n)) = placeholder_at(&s[i..]) {
            emit(&[0, tag]);
            i += n;
        } else {
            if s[i] != 0 {
                emit(&s[i..i + 1]);
            }
            i += 1;
        }
    }
}

fn encoded_len(s: &[u8]) -> usize {
    let mut n = 0;
    walk(s, |p| n += p.len());
    n
}

fn encode(s: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    walk(s, |p| {
        out[n..n + p.len()].copy_from_slice(p);
        n += p.len();
    });
    n
}

#[inline]
fn reserve(size: usize) {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    let live = LIVE.fetch_add(size, Ordering::Relaxed).saturating_add(size);
    let budget = BUDGET.load(Ordering::Relaxed);
    if budget != 0 && live > budget {
        LIVE.fetch_sub(size, Ordering::Relaxed);
        fail(Cause::Budget, size);
    }
}

/// The system allocator returned null for `size` bytes after `reserved` were counted.
#[cold]
fn refused(size: usize, reserved: usize) -> *mut u8 {
    LIVE.fetch_sub(reserved, Ordering::Relaxed);
    lock();
    // SAFETY: LOCK is held.
    let armed = unsafe { (*REPORT.0.get()).out_len + (*REPORT.0.get()).err_len } > 0;
    unlock();
    if armed {
        fail(Cause::System, size);
    }
    std::ptr::null_mut()
}

unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        reserve(layout.size());
        let p = System.alloc(layout);
        if p.is_null() {
            return refused(layout.size(), layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        reserve(layout.size());
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            return refused(layout.size(), layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        let grow = new_size.saturating_sub(old);
        if grow > 0 {
            reserve(grow);
        }
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            return refused(new_size, grow);
        }
        if old > new_size {
            LIVE.fetch_sub(old - new_size, Ordering::Relaxed);
        }
        p
    }
}

#[cold]
#[inline(never)]
fn fail(cause: Cause, size: usize) -> ! {
    if FAILED.swap(true, Ordering::AcqRel) {
        // Another thread is writing the report and will end the process.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    let facts = Facts {
        cause,
        size,
        budget: BUDGET.load(Ordering::Relaxed),
        live: LIVE.load(Ordering::Relaxed),
        rss_kib: peak_rss_kib(),
    };
    lock();
    // SAFETY: LOCK is held (and never released: the process ends here).
    let r = unsafe { &*REPORT.0.get() };
    if r.out_len + r.err_len == 0 {
        let mut e = RawOut::new(2);
        e.put(b"error: out of memory (host): ");
        facts.failure(&mut e);
        e.put(b"\n");
        e.flush();
    } else {
        expand(1, &r.buf[..r.out_len], &facts);
        expand(2, &r.buf[r.out_len..r.out_len + r.err_len], &facts);
    }
    // SAFETY: ends the process; nothing after this runs.
    unsafe { libc::_exit(OOM_EXIT_CODE) }
}

struct Facts {
    cause: Cause,
    size: usize,
    budget: usize,
    live: usize,
    rss_kib: u64,
}

impl Facts {
    fn failure(&self, o: &mut RawOut) {
        o.put(b"allocation of ");
        o.num(self.size as u64);
        match self.cause {
            Cause::Budget => {
                o.put(b" bytes would exceed the host budget of ");
                o.mib(self.budget as u128);
                o.put(b" MiB (");
                o.mib(self.live as u128);
                o.put(b" MiB live)");
            }
            Cause::System => {
                o.put(b" bytes failed in the system allocator (");
                o.mib(self.live as u128);
                o.put(b" MiB live; host budget ");
                if self.budget == 0 {
                    o.put(b"none)");
                } else {
                    o.mib(self.budget as u128);
                    o.put(b" MiB)");
                }
            }
        }
    }
}

fn expand(fd: i32, enc: &[u8], f: &Facts) {
    let mut o = RawOut::new(fd);
    let mut i = 0;
    while i < enc.len() {
        if enc[i] == 0 && i + 1 < enc.len() {
            match enc[i + 1] {
                TAG_FAILURE => f.failure(&mut o),
                _ => o.mib(f.rss_kib as u128 * 1024),
            }
            i += 2;
        } else {
            o.put(&enc[i..i + 1]);
            i += 1;
        }
    }
    o.flush();
}

/// A stack buffer over a file descriptor (no allocation).
struct RawOut {
    fd: i32,
    buf: [u8; 1024],
    n: usize,
}

impl RawOut {
    fn new(fd: i32) -> Self {
        RawOut {
            fd,
            buf: [0; 1024],
            n: 0,
        }
    }

    fn put(&mut self, s: &[u8]) {
        for &b in s {
            if self.n == self.buf.len() {
                self.flush();
            }
            self.buf[self.n] = b;
            self.n += 1;
        }
    }

    fn num(&mut self, mut x: u64) {
        let mut d = [0u8; 20];
        let mut k = d.len();
        loop {
            k -= 1;
            d[k] = b'0' + (x % 10) as u8;
            x /= 10;
            if x == 0 {
                break;
            }
        }
        self.put(&d[k..]);
    }

    /// Bytes as MiB with one decimal.
    fn mib(&mut self, bytes: u128) {
        let tenths = (bytes * 10 + (1 << 19)) >> 20;
        self.num((tenths / 10) as u64);
        self.put(&[b'.', b'0' + (tenths % 10) as u8]);
    }

    fn flush(&mut self) {
        let mut s = &self.buf[..self.n];
        while !s.is_empty() {
            // SAFETY: writes initialised bytes from our own buffer.
            let w = unsafe { libc::write(self.fd, s.as_ptr().cast(), s.len() as _) };
            if w > 0 {
                s = &s[w as usize..];
            } else if w < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            } else {
                break;
            }
        }
        self.n = 0;
    }
}

/// `VmHWM` of /proc/self/status in KiB, read without allocating (0 elsewhere).
#[cfg(target_os = "linux")]
fn peak_rss_kib() -> u64 {
    let mut buf = [0u8; 4096];
    let mut n = 0;
    // SAFETY: a NUL-terminated path; reads into our own buffer within its length.
    unsafe {
        let fd = libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return 0;
        }
        while n < buf.len() {
            let r = libc::read(fd, buf[n..].as_mut_ptr().cast(), buf.len() - n);
            if r <= 0 {
                break;
            }
            n += r as usize;
        }
        libc::close(fd);
    }
    let s = &buf[..n];
    let key = b"VmHWM:";
    let Some(at) = s.windows(key.len()).position(|w| w == key) else {
        return 0;
    };
    s[at + key.len()..]
        .iter()
        .skip_while(|b| **b == b' ' || **b == b'\t')
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |acc, b| acc * 10 + (b - b'0') as u64)
}

#[cfg(not(target_os = "linux"))]
fn peak_rss_kib() -> u64 {
    0
}
