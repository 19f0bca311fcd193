//! One error type for everything a user can cause: each message names the op, file,
//! tensor or step involved, so the CLI can print it as-is instead of a backtrace.
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum ErrorKind {
    /// Shapes or dtypes that do not fit the op.
    Shape,
    /// Tensors on different devices, or a device that cannot be used.
    Device,
    /// A buffer larger than the adapter allows.
    Limit,
    /// A loss or value that became NaN/Inf.
    NonFinite,
    /// File system and format problems.
    Io,
    /// An op not available on this backend.
    Unsupported,
    /// Anything else a user can cause (bad arguments).
    Invalid,
    /// Stopped on request (SIGINT/SIGTERM) after writing a resumable checkpoint.
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub msg: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error { kind, msg: msg.into() }
    }
    pub fn shape(op: &str, msg: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Shape, format!("{op}: {msg}"))
    }
    pub fn device(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Device, msg)
    }
    pub fn limit(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limit, msg)
    }
    pub fn non_finite(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::NonFinite, msg)
    }
    pub fn io(path: impl fmt::Display, err: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Io, format!("{path}: {err}"))
    }
    pub fn unsupported(op: &str, backend: &str) -> Self {
        Self::new(
            ErrorKind::Unsupported,
            format!("{op}: not implemented on the {backend} backend"),
        )
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, msg)
    }
    pub fn interrupted(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Interrupted, msg)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// Fail with a shape error unless `cond` holds.
#[macro_export]
macro_rules! ensure_shape {
    ($cond:expr, $op:expr, $($arg:tt)*) => {
        if !$cond {
            return Err($crate::error::Error::shape($op, format!($($arg)*)));
        }
    };
}

/// The one finiteness check of results (embeddings, logits, probabilities, metrics): a NaN
/// or infinity is an error naming the tensor, the first bad index and how many there are,
/// so a diverged or corrupt model never prints "NaN%" and exits 0.
pub fn ensure_finite(what: &str, values: &[f32]) -> Result<()> {
    let Some(first) = values.iter().position(|x| !x.is_finite()) else {
        return Ok(());
    };
    let count = values.iter().filter(|x| !x.is_finite()).count();
    Err(Error::non_finite(format!(
        "{what}: {count} of {} values are not finite (first at index {first}: {}); the model's weights or inputs are broken",
        values.len(),
        values[first]
    )))
}
