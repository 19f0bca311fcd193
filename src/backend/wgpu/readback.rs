//! Copies from GPU buffers back to the host, in two halves: [`GpuBackend::start_read`]
//! queues the copy behind everything recorded so far, submits and returns at once;
//! [`GpuBackend::finish_read`] waits for that submission only. A training loop starts the
//! read of step s's loss, records step s+1 while the GPU still runs step s, and only then
//! looks at the loss: the host never waits for an idle GPU inside a step.
use std::sync::mpsc::{channel, Receiver};

use std::sync::Arc;

use super::context::{GpuBackend, GpuStorage};
use super::context_lock::ContextLock;
use crate::error::{Error, Result};

/// A submitted copy into a mappable buffer, not yet waited for.
pub struct PendingRead {
    staging: Option<wgpu::Buffer>,
    nbytes: usize,
    submission: Option<wgpu::SubmissionIndex>,
    mapped: Option<Receiver<std::result::Result<(), wgpu::BufferAsyncError>>>,
    /// Destroying `staging` takes the GL context: a read dropped unfinished (an error
    /// path) must hold the device's lock like every other wgpu call.
    context: Arc<ContextLock>,
}

impl Drop for PendingRead {
    fn drop(&mut self) {
        if self.staging.is_some() {
            let _context = self.context.hold();
            self.staging = None;
        }
    }
}

impl GpuBackend {
    /// Copy the first `nbytes` of a buffer back to the host (submits pending work).
    pub fn read_bytes(&self, src: &GpuStorage, nbytes: usize) -> Result<Vec<u8>> {
        let _context = self.context.hold();
        let pending = self.start_read(src, nbytes)?;
        self.finish_read(pending)
    }

    /// Queue a copy of the first `nbytes` of `src` behind all recorded work, submit, and
    /// ask for the mapping; returns without waiting.
    pub fn start_read(&self, src: &GpuStorage, nbytes: usize) -> Result<PendingRead> {
        let size = (nbytes as u64).div_ceil(4) * 4;
        if size == 0 {
            return Ok(PendingRead {
                staging: None,
                nbytes,
                submission: None,
                mapped: None,
                context: self.context.clone(),
            });
        }
        let _context = self.context.hold();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let submission = {
            let mut pending = self.pending.lock().unwrap();
            let enc = self.encoder(&mut pending);
            enc.copy_buffer_to_buffer(src.buffer(), 0, &staging, 0, size);
            self.submit_locked(&mut pending)
        };
        let (tx, rx) = channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.report_stats();
        Ok(PendingRead {
            staging: Some(staging),
            nbytes,
            submission,
            mapped: Some(rx),
            context: self.context.clone(),
        })
    }

    /// Wait for a read started by [`Self::start_read`] (only its own submission, not
    /// work recorded after it) and return the bytes.
    pub fn finish_read(&self, mut read: PendingRead) -> Result<Vec<u8>> {
        // Before `staging` below, so it is destroyed (at return) while still held.
        let _context = self.context.hold();
        let (Some(staging), Some(rx)) = (read.staging.take(), read.mapped.take()) else {
            return Ok(Vec::new());
        };
        let wait = |submission_index| {
            self.device
                .poll(wgpu::PollType::Wait {
                    submission_index,
                    timeout: None,
                })
                .map_err(|e| Error::device(format!("reading back from the GPU: {e}")))
        };
        wait(read.submission.take())?;
        // The map callback runs inside a poll; one that completed the submission before
        // the callback was registered may not have run it yet.
        let mapped = match rx.try_recv() {
            Ok(r) => r,
            Err(_) => {
                wait(None)?;
                rx.recv()
                    .map_err(|e| Error::device(format!("reading back from the GPU: {e}")))?
            }
        };
        mapped.map_err(|e| Error::device(format!("mapping a readback buffer: {e}")))?;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::device(format!("mapping a readback buffer: {e:?}")))?;
            view[..read.nbytes].to_vec()
        };
        staging.unmap();
        self.check_errors("reading back from the GPU")?;
        Ok(out)
    }
}
