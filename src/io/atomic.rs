//! Durable atomic writes: a temporary file in the target's directory, written and
//! fsynced, renamed over the target, then the directory fsynced so the rename itself
//! survives a power cut. A reader sees the old file or the new one, never half of one.
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// The temporary name a write of `name` by this process uses: `.NAME.PID.tmp` (what
/// [`crate::io::leftovers`] recognises and removes once the process is gone).
pub fn temp_name(name: &str) -> String {
    format!(".{name}.{}.tmp", std::process::id())
}

/// Write `bytes` to `path` atomically and durably (creates the parent directory),
/// replacing any existing file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_temp(path, bytes, true)
}

/// As [`write_atomic`], but never replaces an existing file: the temporary file is linked
/// to `path`, which fails if `path` exists (also when another process created it after
/// any check the caller made).
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_temp(path, bytes, false)
}

fn write_via_temp(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    let dir = parent_of(path);
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(temp_name(&name));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if replace {
            std::fs::rename(&tmp, path)
        } else {
            std::fs::hard_link(&tmp, path)?;
            std::fs::remove_file(&tmp)
        }
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        if !replace && e.kind() == std::io::ErrorKind::AlreadyExists {
            return Err(Error::io(path.display(), "already exists; refusing to overwrite it"));
        }
        return Err(Error::io(path.display(), e));
    }
    sync_dir(dir)
}

/// fsync a directory: makes the renames and creations inside it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir.display(), format!("cannot sync the directory: {e}")))
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}
