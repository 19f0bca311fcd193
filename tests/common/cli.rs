//! Shared by the tests that run the binary or need scratch space: the repository's paths,
//! the binary, a fresh directory per test, and running a command to the end it must have.
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// tests/fixtures.
pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

/// A file under tests/fixtures, as the string a flag takes.
pub fn fixture(rel: &str) -> String {
    fixtures().join(rel).display().to_string()
}

/// The release binary, with the runtime directory wgpu wants.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cliptune"));
    c.env("XDG_RUNTIME_DIR", "/tmp");
    c
}

/// A new, uniquely named directory of one test (never shared with another test, thread
/// or run), removed when the guard drops.
pub fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("cliptune-{name}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap_or_else(|e| panic!("a scratch directory for {name}: {e}"))
}

/// [`scratch`], kept after the test (its files help read a failure).
pub fn fresh(name: &str) -> PathBuf {
    scratch(name).keep()
}

/// Generous on a loaded 2-core CI machine, and still a failure instead of a stuck job.
const HANG: Duration = Duration::from_secs(300);

/// Run `c` with a watchdog: an input that makes the binary hang fails the test (the
/// process killed) instead of blocking CI.
pub fn output(c: &mut Command) -> Output {
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Drain the pipes while waiting, so a chatty command cannot block on a full pipe.
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut so, &mut v).map(|_| v)
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut se, &mut v).map(|_| v)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap().unwrap_or_default();
            panic!(
                "command hung (killed after {} s): {c:?}\nstderr: {}",
                HANG.as_secs(),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    }
}

/// The command must succeed; returns (stdout, stderr).
pub fn run_ok(c: &mut Command) -> (String, String) {
    let out = output(c);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "command failed ({:?}): {stderr}", out.status);
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// The command must fail with exit code 1 (a user error), not a panic; returns stderr.
pub fn run_err(c: &mut Command) -> String {
    let out = output(c);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a user error, got {:?}: {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "panic instead of an error: {stderr}");
    stderr
}

pub fn assert_contains(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message lacks {p:?}:\n{msg}");
    }
}
