//! Reading files a user names on the command line or in a data file. Only regular files are
//! read: a FIFO would block forever, `/dev/zero` never ends and a directory is no input. Every
//! read has a size cap, checked before the bytes are read, so a wrong path fails at once with
//! a message instead of hanging or exhausting memory.
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// An image file (PNG/JPEG): far above any photo, far below what would exhaust memory.
pub const IMAGE_MAX_BYTES: u64 = 256 << 20;
/// A caption file, a class list or a texts file.
pub const TEXT_MAX_BYTES: u64 = 2 << 30;
/// A JSON config, index or sprite-sheet description.
pub const JSON_MAX_BYTES: u64 = 64 << 20;

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// Open `path` for reading if it is a regular file (symlinks followed). `what` names the
/// input in the message ("image", "caption file", ...).
pub fn open_regular(path: &Path, what: &str) -> Result<File> {
    let shown = path.display();
    // Checked before opening: opening a FIFO for reading blocks until a writer appears.
    let meta = std::fs::metadata(path).map_err(|e| Error::io(&shown, format!("cannot read {what}: {e}")))?;
    check_kind(path, what, &meta)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The path may have been swapped for a FIFO since the check: never block on open.
        opts.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let f = opts
        .open(path)
        .map_err(|e| Error::io(&shown, format!("cannot read {what}: {e}")))?;
    let meta = f
        .metadata()
        .map_err(|e| Error::io(&shown, format!("cannot read {what}: {e}")))?;
    check_kind(path, what, &meta)?;
    Ok(f)
}

fn check_kind(path: &Path, what: &str, meta: &std::fs::Metadata) -> Result<()> {
    if meta.is_dir() {
        return Err(Error::io(
            path.display(),
            format!("cannot read {what}: is a directory, not a file"),
        ));
    }
    if !meta.is_file() {
        return Err(Error::io(
            path.display(),
            format!("cannot read {what}: not a regular file (a device, FIFO or socket cannot be an input)"),
        ));
    }
    Ok(())
}

/// All bytes of the regular file `path`, refused when larger than `cap` bytes.
pub fn read_capped(path: &Path, what: &str, cap: u64) -> Result<Vec<u8>> {
    let f = open_regular(path, what)?;
    let too_big = || {
        Error::limit(format!(
            "{}: refusing to read this {what}: it is larger than the {} limit",
            path.display(),
            mib(cap)
        ))
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > cap {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take` guards against a file that grows while it is read.
    f.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path.display(), format!("cannot read {what}: {e}")))?;
    if bytes.len() as u64 > cap {
        return Err(too_big());
    }
    Ok(bytes)
}

/// The regular file `path` as UTF-8 text (a leading byte-order mark dropped); a non-UTF-8
/// file is an error naming the line of the first bad byte.
pub fn read_text_capped(path: &Path, what: &str, cap: u64) -> Result<String> {
    let bytes = read_capped(path, what, cap)?;
    match String::from_utf8(bytes) {
        Ok(t) => Ok(match t.strip_prefix('\u{feff}') {
            Some(s) => s.to_string(),
            None => t,
        }),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
            Err(Error::io(
                format!("{}:{line}", path.display()),
                format!("{what} is not valid UTF-8 text"),
            ))
        }
    }
}
