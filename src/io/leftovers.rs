//! What a killed process leaves: `.NAME.PID.tmp` files of an interrupted atomic write,
//! `.NAME.merge-PID` directories of an interrupted merge, `.NAME.tmp-PID` and
//! `.NAME.old-PID` directories of an interrupted demo report. They are removed by the
//! next run that takes the output's lock, once their process is gone (a live pid may
//! be another writer's, mid-write, in a shared parent directory).
use std::path::Path;

/// The pid in a leftover's name: `.X.PID.tmp`, `.X.merge-PID`, `.X.tmp-PID`, `.X.old-PID`.
pub fn leftover_pid(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    if let Some(stem) = name.strip_suffix(".tmp") {
        let (_, pid) = stem.rsplit_once('.')?;
        return pid.parse().ok();
    }
    ["merge", "tmp", "old"]
        .iter()
        .find_map(|kind| name.rsplit_once(&format!(".{kind}-")))
        .and_then(|(_, pid)| pid.parse().ok())
}

/// Whether a process with this pid exists (ours counts as alive).
pub fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(p, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Remove the leftovers of dead processes directly inside `dir`; returns what was removed.
pub fn clean_dir(dir: &Path) -> Vec<String> {
    clean_matching(dir, |_| true)
}

/// Remove the leftovers of dead processes that belong to `target` (`.NAME.PID.tmp`,
/// `.NAME.merge-PID` beside it).
pub fn clean_beside(target: &Path) -> Vec<String> {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().to_string()) else {
        return vec![];
    };
    let prefix = format!(".{name}.");
    clean_matching(crate::io::atomic::parent_of(target), |n| n.starts_with(&prefix))
}

fn clean_matching(dir: &Path, belongs: impl Fn(&str) -> bool) -> Vec<String> {
    let mut removed = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = leftover_pid(&name) else { continue };
        if !belongs(&name) || alive(pid) {
            continue;
        }
        let p = e.path();
        let gone = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        if gone.is_ok() {
            removed.push(name);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_are_read_from_both_leftover_kinds() {
        assert_eq!(leftover_pid(".adapter_model.safetensors.123.tmp"), Some(123));
        assert_eq!(leftover_pid(".out.merge-77"), Some(77));
        assert_eq!(leftover_pid(".demo-report.old-9"), Some(9));
        assert_eq!(leftover_pid(".demo-report.tmp-12"), Some(12));
        assert_eq!(leftover_pid("adapter_model.safetensors"), None);
        assert_eq!(leftover_pid(".cliptune.lock"), None);
        assert_eq!(leftover_pid(".x.notapid.tmp"), None);
        assert!(alive(std::process::id()));
    }
}
