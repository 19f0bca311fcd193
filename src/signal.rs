//! Ctrl-C and SIGTERM during training: the first signal becomes the loop's stop request
//! ([`crate::cancel::stop_requested`]: finish the step, write a resumable checkpoint,
//! stop); a second one ends the process at once (every write is atomic, so that loses at
//! most the steps since the last checkpoint).
//!
//! Only the binary installs the handlers ([`install`]), for the commands that train: a
//! library user's process keeps its own signal handling (Python's Ctrl-C reaches the loop
//! through [`crate::cancel::scoped`] instead).
use crate::error::{Error, Result};

extern "C" fn on_signal(sig: libc::c_int) {
    if crate::cancel::signal_received(sig) != 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
    let msg: &[u8] =
        b"\n[cliptune] stopping: finishing this step and writing a checkpoint (signal again to stop at once)\n";
    // SAFETY: write(2) is async-signal-safe; the buffer is static.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}

/// Route SIGINT and SIGTERM to the stop-after-this-step handler.
pub fn install() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a plain handler, SA_RESTART so interrupted
        // reads and writes resume instead of failing with EINTR.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(Error::io(
                "signal handler",
                format!("cannot install for {}: {}", name(sig), std::io::Error::last_os_error()),
            ));
        }
    }
    Ok(())
}

/// `SIGINT`, `SIGTERM`, or `signal N`.
pub fn name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT (Ctrl-C)".into(),
        libc::SIGTERM => "SIGTERM".into(),
        s => format!("signal {s}"),
    }
}

/// The shell's exit status for a process stopped by `sig`: 128 + sig (130, 143).
pub fn exit_code(sig: i32) -> i32 {
    128 + sig
}
