//! A read whose copy starts now and whose wait comes later: how a training step hands
//! its loss to the host without stalling the GPU (see `backend::wgpu::readback`).
use std::sync::Arc;

use super::{DType, Tensor};
use crate::backend::wgpu::{GpuBackend, PendingRead};
use crate::backend::Device;
use crate::error::Result;

/// An f32 tensor's values, on their way to the host.
pub enum LateRead {
    /// Already on the host (a CPU tensor, or a dtype read at once).
    Ready(Vec<f32>),
    /// Copy submitted on this GPU, not yet waited for.
    Gpu(Arc<GpuBackend>, PendingRead),
}

impl Tensor {
    /// Start reading this tensor back; [`LateRead::wait`] finishes. On a GPU the copy is
    /// submitted behind everything recorded so far and the host goes on at once, so the
    /// next step can be recorded while the GPU runs this one.
    pub fn read_later(&self) -> Result<LateRead> {
        match (self.device(), self.dtype()) {
            (Device::Gpu(g), DType::F32) => {
                let pending = g.start_read(self.gpu("read_later")?, self.numel() * 4)?;
                Ok(LateRead::Gpu(g.clone(), pending))
            }
            _ => Ok(LateRead::Ready(self.to_vec()?)),
        }
    }
}

impl LateRead {
    /// Wait for the values (on a GPU: for the submission that held the copy only).
    pub fn wait(self) -> Result<Vec<f32>> {
        match self {
            LateRead::Ready(v) => Ok(v),
            LateRead::Gpu(g, pending) => Ok(bytemuck::pod_collect_to_vec(&g.finish_read(pending)?)),
        }
    }
}
