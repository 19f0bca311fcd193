//! Recording dispatches: pipelines built once per (shader, entry, override constants)
//! after checking the kernel's needs against the adapter's limits; params in a uniform
//! ring bound with a dynamic offset, written once per batch just before its submit
//! (wgpu orders that write before the batch's commands and after every earlier submit);
//! bind groups cached by (pipeline, buffer ids); every dispatch of a batch in one compute
//! pass. A steady-state dispatch creates no GPU object.
use std::sync::Arc;
use std::time::Instant;

use wgpu::util::DeviceExt;

use super::context::{GpuBackend, GpuStorage, MAX_GROUPS};
use super::requirements::{self, COMMON_WGSL};
use crate::error::{Error, Result};

/// Submit after this many recorded dispatches even without a readback, so the
/// GPU starts working while the host keeps recording. Also the uniform ring's slots.
pub(super) const MAX_PENDING: usize = 64;

/// Bytes reserved per dispatch for its params (every kernel's `Params` is far smaller;
/// a bigger one is refused naming the kernel). Rounded up to the adapter's uniform
/// offset alignment.
pub(super) const PARAMS_SLOT: u64 = 256;

/// Bind groups kept before the cache is emptied: pooled buffers make the same
/// (pipeline, buffers) combinations recur every training step; the bound only
/// matters for workloads that keep allocating new buffers.
const MAX_BIND_GROUPS: usize = 16384;

/// A built pipeline and what it was checked against.
pub(super) struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

pub(super) type KernelKey = (usize, &'static str, Vec<(&'static str, u64)>);

#[derive(Default)]
pub(super) struct Pending {
    pub(super) encoder: Option<wgpu::CommandEncoder>,
    /// The open compute pass of `encoder`; ended before copies and before submit.
    pub(super) pass: Option<wgpu::ComputePass<'static>>,
    /// The pipeline last set on `pass`.
    pub(super) bound: Option<KernelKey>,
    pub(super) count: usize,
    /// This batch's params, slot `i` at `i * slot`; written to the ring at submit.
    pub(super) params: Vec<u8>,
}

impl GpuBackend {
    /// The pipeline of `entry` in WGSL file `src` with override constants `constants`,
    /// built once. Its needs (read from the WGSL) are checked against the adapter's
    /// limits first, so a too-small adapter is an error naming the kernel and the limit.
    fn kernel(
        &self,
        src: &'static str,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        n_in: usize,
        n_out: usize,
    ) -> Result<(KernelKey, Arc<Kernel>)> {
        let key: KernelKey = (
            src.as_ptr() as usize,
            entry,
            constants.iter().map(|&(k, v)| (k, v.to_bits())).collect(),
        );
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok((key, p.clone()));
        }
        let req = requirements::entry_req(src, entry, constants)
            .map_err(|e| Error::device(format!("building WGSL kernel '{entry}': {}", e.msg)))?;
        let bound = requirements::KernelReq {
            storage_buffers: req.storage_buffers.max((n_in + n_out) as u32),
            ..req
        };
        if let Some(why) = requirements::exceeded(&bound, &self.limits) {
            return Err(Error::limit(format!(
                "kernel '{entry}' cannot run on adapter '{}' ({:?}): {why}; pick another adapter with --backend, or use --device cpu",
                self.info.name, self.info.backend
            )));
        }
        // Shader bugs become errors naming the kernel, not a validation panic.
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(entry),
            source: wgpu::ShaderSource::Wgsl(format!("{COMMON_WGSL}\n{src}").into()),
        };
        let module = if self.trusted {
            // SAFETY: the launchers validate every shape on the host (tensor::ops and
            // backend/checks.rs) and size each grid from it; the kernels guard their own
            // tails (`if (i >= n) { return; }`) and every bound buffer is at least as big
            // as the host-computed extent (pool classes round up), so no access leaves
            // its buffer and naga's clamping would only cost time.
            unsafe {
                self.device
                    .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        } else {
            self.device.create_shader_module(desc)
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: None,
            },
            count: None,
        }];
        for i in 0..n_in + n_out {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: 1 + i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: i < n_in },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(entry),
            entries: &entries,
        });
        let pipeline_layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                // Every kernel writes the workgroup memory it reads before its first
                // barrier, so WebGPU's zeroing is dead work; on llvmpipe-GL it also
                // costs a minute and more of compile time per kernel (naga zeroes each
                // array with one huge constant, kept live across the coroutine split
                // of every barrier: docs/PERFORMANCE.md, GL section).
                zero_initialize_workgroup_memory: !self.trusted,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::device(format!(
                "building WGSL kernel '{entry}' on adapter '{}': {e}",
                self.info.name
            )));
        }
        let k = Arc::new(Kernel { pipeline, layout });
        self.pipelines.lock().unwrap().insert(key.clone(), k.clone());
        self.stats.lock().unwrap().pipelines += 1;
        Ok((key, k))
    }

    /// Record one dispatch of `entry` in WGSL file `src`.
    ///
    /// Binding convention (every kernel file follows it): `@binding(0)` is a uniform
    /// holding `params` (a `#[repr(C)]` Pod struct, padded here to 16 bytes);
    /// `@binding(1..)` are the `inputs` (read-only storage) followed by the `outputs`
    /// (read_write storage), in order.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        src: &'static str,
        entry: &'static str,
        params: &P,
        inputs: &[&GpuStorage],
        outputs: &[&GpuStorage],
        groups: [u32; 3],
    ) -> Result<()> {
        self.dispatch_with(src, entry, &[], params, inputs, outputs, groups)
    }

    /// [`GpuBackend::dispatch`] of a pipeline specialised by WGSL `override` constants
    /// (name, value); each distinct set is its own cached pipeline.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch_with<P: bytemuck::Pod>(
        &self,
        src: &'static str,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        params: &P,
        inputs: &[&GpuStorage],
        outputs: &[&GpuStorage],
        groups: [u32; 3],
    ) -> Result<()> {
        let t0 = Instant::now();
        if groups.iter().any(|&g| g > MAX_GROUPS) {
            return Err(Error::limit(format!(
                "{entry}: workgroup grid {groups:?} exceeds {MAX_GROUPS} per dimension"
            )));
        }
        let bytes = bytemuck::bytes_of(params);
        if bytes.len() as u64 > PARAMS_SLOT {
            return Err(Error::limit(format!(
                "{entry}: a params block of {} bytes exceeds the {PARAMS_SLOT}-byte uniform slot",
                bytes.len()
            )));
        }
        // Held across the pipeline lookup, so a second thread asking for a pipeline that
        // is being compiled finds it built instead of compiling it again.
        let _context = self.context.hold();
        let (key, kernel) = self.kernel(src, entry, constants, inputs.len(), outputs.len())?;
        if self.legacy {
            return self.dispatch_legacy(t0, entry, &kernel, bytes, inputs, outputs, groups);
        }
        let bound: Vec<&GpuStorage> = inputs.iter().chain(outputs.iter()).copied().collect();
        let bg_key = (key.clone(), bound.iter().map(|s| s.id()).collect::<Vec<u64>>());
        let bg = {
            let mut cache = self.bind_groups.lock().unwrap();
            match cache.get(&bg_key) {
                Some(bg) => bg.clone(),
                None => {
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &self.uniforms,
                            offset: 0,
                            size: wgpu::BufferSize::new(self.slot),
                        }),
                    }];
                    for (i, s) in bound.iter().enumerate() {
                        entries.push(wgpu::BindGroupEntry {
                            binding: 1 + i as u32,
                            resource: s.buffer().as_entire_binding(),
                        });
                    }
                    let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(entry),
                        layout: &kernel.layout,
                        entries: &entries,
                    });
                    if cache.len() >= MAX_BIND_GROUPS {
                        cache.clear();
                    }
                    let mut seen = self.bound_ids.lock().unwrap();
                    let mut new_buffer = false;
                    for &id in &bg_key.1 {
                        new_buffer |= seen.insert(id);
                    }
                    drop(seen);
                    cache.insert(bg_key, bg.clone());
                    let mut st = self.stats.lock().unwrap();
                    st.bind_groups += 1;
                    st.bind_groups_new_buffer += new_buffer as u64;
                    bg
                }
            }
        };
        let mut pending = self.pending.lock().unwrap();
        if pending.params.len() as u64 >= self.slot * MAX_PENDING as u64 {
            self.submit_locked(&mut pending);
        }
        let offset = pending.params.len() as u64;
        pending.params.extend_from_slice(bytes);
        pending.params.resize((offset + self.slot) as usize, 0);
        self.open_pass(&mut pending);
        let same = pending.bound.as_ref() == Some(&key);
        let pass = pending.pass.as_mut().expect("open pass");
        if !same {
            pass.set_pipeline(&kernel.pipeline);
        }
        pass.set_bind_group(0, &bg, &[offset as u32]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        pending.bound = Some(key);
        pending.count += 1;
        if pending.count >= MAX_PENDING {
            self.submit_locked(&mut pending);
        }
        drop(pending);
        let mut st = self.stats.lock().unwrap();
        st.dispatches += 1;
        st.dispatch_host_ns += t0.elapsed().as_nanos() as u64;
        Ok(())
    }

    /// The old path, for before/after measurements only.
    #[allow(clippy::too_many_arguments)]
    fn dispatch_legacy(
        &self,
        t0: Instant,
        entry: &str,
        kernel: &Kernel,
        bytes: &[u8],
        inputs: &[&GpuStorage],
        outputs: &[&GpuStorage],
        groups: [u32; 3],
    ) -> Result<()> {
        let mut padded = bytes.to_vec();
        padded.resize(self.slot as usize, 0);
        let ubuf = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: &padded,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: ubuf.as_entire_binding(),
        }];
        for (i, s) in inputs.iter().chain(outputs.iter()).enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: 1 + i as u32,
                resource: s.buffer().as_entire_binding(),
            });
        }
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &kernel.layout,
            entries: &entries,
        });
        let mut pending = self.pending.lock().unwrap();
        self.open_pass(&mut pending);
        let pass = pending.pass.as_mut().expect("open pass");
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &bg, &[0]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        pending.pass = None;
        pending.count += 1;
        if pending.count >= MAX_PENDING {
            self.submit_locked(&mut pending);
        }
        drop(pending);
        let mut st = self.stats.lock().unwrap();
        st.bind_groups += 1;
        st.dispatches += 1;
        st.dispatch_host_ns += t0.elapsed().as_nanos() as u64;
        Ok(())
    }

    /// The pending encoder, with no compute pass open (copies cannot be recorded
    /// inside one).
    pub(super) fn encoder<'a>(&self, pending: &'a mut Pending) -> &'a mut wgpu::CommandEncoder {
        pending.pass = None;
        pending.bound = None;
        pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        })
    }

    /// Open the batch's compute pass if none is open.
    fn open_pass(&self, pending: &mut Pending) {
        if pending.pass.is_none() {
            let enc = self.encoder(pending);
            let pass = enc
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("cliptune"),
                    timestamp_writes: None,
                })
                .forget_lifetime();
            pending.pass = Some(pass);
        }
    }

    pub(super) fn submit_locked(&self, pending: &mut Pending) -> Option<wgpu::SubmissionIndex> {
        pending.pass = None;
        pending.bound = None;
        let mut index = None;
        if let Some(enc) = pending.encoder.take() {
            if !pending.params.is_empty() {
                // Ordered before this submit's commands and after every earlier submit.
                self.queue.write_buffer(&self.uniforms, 0, &pending.params);
            }
            index = Some(self.queue.submit([enc.finish()]));
            self.stats.lock().unwrap().submits += 1;
        }
        pending.params.clear();
        pending.count = 0;
        index
    }
}
