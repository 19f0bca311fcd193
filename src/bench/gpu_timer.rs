//! GPU time of a span of recorded work, from timestamp queries (adapters with
//! TIMESTAMP_QUERY). Two empty compute passes write the timestamps in command buffers
//! of their own, submitted before and after the span's: queue order is execution order,
//! so they bracket every dispatch in between without touching the dispatch path.
use crate::backend::wgpu::GpuBackend;
use crate::error::{Error, Result};

pub struct GpuTimer {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
}

impl GpuTimer {
    /// None where the device has no timestamp queries.
    pub fn new(g: &GpuBackend) -> Option<GpuTimer> {
        if !g.device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let set = g.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("bench timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = g.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bench timestamps"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = g.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bench timestamps readback"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Some(GpuTimer { set, resolve, readback })
    }

    fn mark(&self, g: &GpuBackend, index: u32, finish: bool) {
        let mut enc = g.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("bench timestamp"),
        });
        enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("bench timestamp"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &self.set,
                beginning_of_pass_write_index: Some(index),
                end_of_pass_write_index: None,
            }),
        });
        if finish {
            enc.resolve_query_set(&self.set, 0..2, &self.resolve, 0);
            enc.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, 16);
        }
        g.queue.submit([enc.finish()]);
    }

    /// Run `f` (which records GPU work) and return the GPU milliseconds between the
    /// start of the first and the end of the last of its dispatches.
    pub fn time(&self, g: &GpuBackend, f: impl FnOnce() -> Result<()>) -> Result<f64> {
        g.flush();
        self.mark(g, 0, false);
        f()?;
        g.flush();
        self.mark(g, 1, true);
        let (tx, rx) = std::sync::mpsc::channel();
        self.readback.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        g.wait()?;
        rx.recv()
            .map_err(|e| Error::device(format!("reading GPU timestamps: {e}")))?
            .map_err(|e| Error::device(format!("mapping GPU timestamps: {e}")))?;
        let ticks: [u64; 2] = {
            let view = self
                .readback
                .get_mapped_range(..)
                .map_err(|e| Error::device(format!("mapping GPU timestamps: {e:?}")))?;
            bytemuck::pod_read_unaligned(&view[..16])
        };
        self.readback.unmap();
        let ns = ticks[1].saturating_sub(ticks[0]) as f64 * g.queue.get_timestamp_period() as f64;
        Ok(ns / 1e6)
    }
}
