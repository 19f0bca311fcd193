//! The progress of training on stderr (through [`crate::progress`]: a bar on a terminal,
//! plain lines otherwise) and the JSONL training log.
use std::io::Write;

use crate::error::{Error, Result};

/// Progress line + JSONL log.
pub(crate) struct Progress {
    pub(crate) total: usize,
    pub(crate) log: std::fs::File,
    pub(crate) show: bool,
    /// Progress-line prefix: "train" or "pretrain".
    pub(crate) label: &'static str,
    /// The loop makes it when it starts (None: made at the first step).
    pub(crate) bar: Option<crate::progress::Progress>,
}

impl Progress {
    pub(crate) fn step(&mut self, step: usize, epoch: usize, loss: f32, lr: f32) -> Result<()> {
        let line = serde_json::json!({"step": step + 1, "epoch": epoch, "loss": loss, "lr": lr});
        writeln!(self.log, "{line}").map_err(|e| Error::io("train_log.jsonl", e))?;
        let (label, total, show) = (self.label, self.total as u64, self.show);
        let bar = self
            .bar
            .get_or_insert_with(|| crate::progress::Progress::new(label, "step", total, show));
        bar.update(
            (step + 1) as u64,
            &format!("epoch {epoch}  loss {loss:.4}  lr {lr:.2e}"),
        );
        if step + 1 == self.total {
            bar.finish();
        }
        Ok(())
    }

    /// Any other record (retention measurements) into the log.
    pub(crate) fn record(&mut self, line: serde_json::Value) -> Result<()> {
        writeln!(self.log, "{line}").map_err(|e| Error::io("train_log.jsonl", e))
    }
}
