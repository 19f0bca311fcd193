//! The progress line on stderr and the JSONL training log.
use std::io::Write;
use std::time::Instant;

use crate::error::{Error, Result};

/// Progress line + JSONL log.
pub(crate) struct Progress {
    pub(crate) t0: Instant,
    pub(crate) total: usize,
    pub(crate) log: std::fs::File,
    pub(crate) show: bool,
    /// Progress-line prefix: "train" or "pretrain".
    pub(crate) label: &'static str,
}

impl Progress {
    pub(crate) fn step(&mut self, step: usize, epoch: usize, loss: f32, lr: f32) -> Result<()> {
        let line = serde_json::json!({"step": step + 1, "epoch": epoch, "loss": loss, "lr": lr});
        writeln!(self.log, "{line}").map_err(|e| Error::io("train_log.jsonl", e))?;
        if self.show {
            let el = self.t0.elapsed().as_secs_f32();
            let rate = (step + 1) as f32 / el.max(1e-6);
            let eta = (self.total - step - 1) as f32 / rate.max(1e-6);
            eprint!(
                "\r[{}] step {:>5}/{}  epoch {epoch}  loss {loss:.4}  lr {lr:.2e}  {rate:.2} steps/s  ETA {eta:.0}s   ",
                self.label,
                step + 1,
                self.total
            );
            if step + 1 == self.total {
                eprintln!();
            }
        }
        Ok(())
    }

    /// Any other record (retention measurements) into the log.
    pub(crate) fn record(&mut self, line: serde_json::Value) -> Result<()> {
        writeln!(self.log, "{line}").map_err(|e| Error::io("train_log.jsonl", e))
    }
}
