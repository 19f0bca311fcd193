//! The loss of step s is looked at while step s+1 is being recorded, not before step s's
//! backward pass: on a GPU, waiting for the loss inside the step would leave the GPU idle
//! while the host records the next step. Nothing is lost by the delay: a non-finite loss
//! still stops the run before anything is saved or measured (the loop settles the pending
//! loss before every checkpoint, retention check and the final save), so no checkpoint
//! can hold the weights of a step whose loss was not finite.
use super::progress::Progress;
use crate::error::Result;
use crate::guard::stop::StopNotes;
use crate::tensor::{LateRead, Tensor};

struct Pending {
    step: usize,
    epoch: usize,
    lr: f32,
    read: LateRead,
}

/// The loss of the last recorded step, on its way to the host; the first and last losses
/// seen so far.
pub(crate) struct LateLoss {
    pending: Option<Pending>,
    pub(crate) first: f32,
    pub(crate) last: f32,
}

impl LateLoss {
    pub(crate) fn new() -> LateLoss {
        LateLoss {
            pending: None,
            first: f32::NAN,
            last: f32::NAN,
        }
    }

    /// Start reading step `step`'s loss, then check and log the step before it.
    pub(crate) fn push(
        &mut self,
        (step, epoch, lr): (usize, usize, f32),
        loss: &Tensor,
        prog: &mut Progress,
        notes: &StopNotes,
    ) -> Result<()> {
        let read = loss.read_later()?;
        match self.pending.replace(Pending { step, epoch, lr, read }) {
            Some(previous) => self.check(previous, prog, notes),
            None => Ok(()),
        }
    }

    /// Check and log the step still pending (before anything is saved or measured).
    pub(crate) fn settle(&mut self, prog: &mut Progress, notes: &StopNotes) -> Result<()> {
        match self.pending.take() {
            Some(p) => self.check(p, prog, notes),
            None => Ok(()),
        }
    }

    fn check(&mut self, p: Pending, prog: &mut Progress, notes: &StopNotes) -> Result<()> {
        let values = p.read.wait()?;
        let l = super::check_loss_value(values.first().copied().unwrap_or(f32::NAN), p.step + 1)
            .map_err(|e| notes.non_finite(e, p.step + 1))?;
        if self.first.is_nan() {
            self.first = l;
        }
        self.last = l;
        prog.step(p.step, p.epoch, l, p.lr)
    }
}
