//! What a stopped run tells the user: where the last good state is and how to go on.
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind};

/// The loop's record of its own checkpoints.
pub struct StopNotes {
    out: PathBuf,
    total: usize,
    /// The step of the last checkpoint written (or resumed from) in this directory.
    last: Option<usize>,
}

impl StopNotes {
    /// `resumed_from`: the step a `--resume` started at (that checkpoint is on disk).
    pub fn new(out: &Path, total: usize, resumed_from: Option<usize>) -> StopNotes {
        StopNotes {
            out: out.to_path_buf(),
            total,
            last: resumed_from,
        }
    }

    /// A checkpoint of `step` was written completely.
    pub fn checkpointed(&mut self, step: usize) {
        self.last = Some(step);
    }

    /// The step of the last whole checkpoint, if any.
    pub fn last(&self) -> Option<usize> {
        self.last
    }

    /// A non-finite error at `step` (1-based: the loss of that step, or its checkpoint
    /// refused by [`super::finite`]) with where the last finite state is; other errors
    /// pass unchanged.
    pub fn non_finite(&self, e: Error, step: usize) -> Error {
        if e.kind != ErrorKind::NonFinite {
            return e;
        }
        let where_ = match self.last {
            Some(s) => format!(
                "the last finite state is the checkpoint of step {s} in {} (`--resume` continues from it; \
                 with the same arguments it diverges again, so lower --lr or --weight-decay and start a fresh run \
                 in another --out to change them)",
                self.out.display()
            ),
            None => "no checkpoint was written before it (nothing to resume): lower --lr or --weight-decay and \
                     start again"
                .to_string(),
        };
        Error::non_finite(format!("{}; stopped at step {step}: {where_}", e.msg))
    }

    /// The error that ends a run stopped on request after its checkpoint of `step`.
    pub fn interrupted(&self, why: crate::cancel::Stop, step: usize) -> Error {
        let out = self.out.display();
        Error::interrupted(match why {
            crate::cancel::Stop::Signal(sig) => format!(
                "stopped by {} at step {step} of {}: a resumable checkpoint is in {out}; continue with the same \
                 command plus --resume",
                crate::signal::name(sig),
                self.total,
            ),
            crate::cancel::Stop::Caller => format!(
                "training interrupted after step {step}; {out} holds a resumable checkpoint (train again with the \
                 same arguments and resume to continue)"
            ),
        })
    }
}
