//! One writer per output: an exclusive `flock(2)` held for the whole run. The kernel
//! releases it when the process ends however it ends (exit, crash, SIGKILL), so a lock
//! can never go stale; the holder's pid is written into the lock file only so that a
//! refused second writer can name it.
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file inside an output directory this tool owns (train, pretrain, demo). It
/// stays after the run (removing it would race with a waiting writer) and also marks
/// the directory as ours, so a run killed before its first checkpoint does not block the
/// next one.
pub const DIR_LOCK: &str = ".cliptune.lock";

/// Held while alive; dropping it (or the process ending) releases the lock.
#[derive(Debug)]
pub struct OutputLock {
    _file: std::fs::File,
    pub path: PathBuf,
}

/// Lock the output directory `dir` (created if missing) for a `what` run.
pub fn lock_dir(dir: &Path, what: &str) -> Result<OutputLock> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let l = acquire(&dir.join(DIR_LOCK), dir, what)?;
    crate::io::leftovers::clean_dir(dir);
    Ok(l)
}

/// Lock an output that is not a directory of ours (merge's `--out` before it exists,
/// embed's file): the lock file is `.NAME.lock` beside it.
pub fn lock_beside(target: &Path, what: &str) -> Result<OutputLock> {
    let parent = crate::io::atomic::parent_of(target);
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| {
            Error::invalid(format!(
                "{}: the output needs a file or directory name",
                target.display()
            ))
        })?;
    let l = acquire(&parent.join(format!(".{name}.lock")), target, what)?;
    crate::io::leftovers::clean_beside(target);
    Ok(l)
}

fn acquire(lock_path: &Path, target: &Path, what: &str) -> Result<OutputLock> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .map_err(|e| Error::io(lock_path.display(), format!("cannot create the lock file: {e}")))?;
    // SAFETY: flock on a file descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let who = match holder.trim().parse::<u32>() {
                Ok(pid) => format!("another cliptune process (pid {pid})"),
                Err(_) => "another cliptune process".to_string(),
            };
            return Err(Error::invalid(format!(
                "{}: {who} is writing this {what} output (it holds the lock {}); two writers would tear \
                 its files: wait for that run to end or choose another output",
                target.display(),
                lock_path.display()
            )));
        }
        return Err(Error::io(lock_path.display(), format!("cannot lock: {err}")));
    }
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = writeln!(f, "{}", std::process::id());
    Ok(OutputLock {
        _file: f,
        path: lock_path.to_path_buf(),
    })
}
