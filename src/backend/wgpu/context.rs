//! The wgpu device: adapter choice, pipeline cache, buffer pool, batched dispatch.
//!
//! Dispatches are recorded into one pending command encoder and submitted together
//! (a submit round trip costs 70-260 us on lavapipe); the only waits are readbacks.
//! Freed buffers go back to a pool keyed by their size class. A pooled buffer may be
//! reused by a later dispatch while earlier, still-queued dispatches read it: that is
//! safe because queue order is execution order. Uploads therefore never use
//! `queue.write_buffer` on pooled buffers (it would jump ahead of queued work); they
//! make a fresh buffer initialised at creation.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};

/// Submit after this many recorded dispatches even without a readback, so the
/// GPU starts working while the host keeps recording.
const MAX_PENDING: usize = 64;

pub struct GpuBackend {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pipelines: Mutex<HashMap<(usize, &'static str), Arc<wgpu::ComputePipeline>>>,
    pool: Pool,
    pending: Mutex<Pending>,
    pub stats: Mutex<GpuStats>,
    me: std::sync::Weak<GpuBackend>,
    errors: Arc<Mutex<Option<String>>>,
}

#[derive(Default)]
struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    count: usize,
}

/// Counters for benchmarks and tests.
#[derive(Default, Clone, Debug)]
pub struct GpuStats {
    pub dispatches: u64,
    pub submits: u64,
    pub bytes_live: u64,
    pub bytes_peak: u64,
    pub pool_hits: u64,
}

/// A device buffer owned by a tensor. Dropping it returns the buffer to the pool.
pub struct GpuStorage {
    buf: Option<wgpu::Buffer>,
    pool: Pool,
}

/// Free buffers by size class; shared with every storage so drops can return them.
type Pool = Arc<Mutex<HashMap<u64, Vec<wgpu::Buffer>>>>;

impl GpuStorage {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("live buffer")
    }
}

impl Drop for GpuStorage {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            let size = b.size();
            if let Ok(mut pool) = self.pool.lock() {
                pool.entry(size).or_default().push(b);
            }
        }
    }
}

/// Adapter facts for `cliptune devices`.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub max_storage_binding: u64,
    pub max_buffer: u64,
    pub max_workgroup_invocations: u32,
    pub max_shared_memory: u32,
    pub software: bool,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::PRIMARY;
    wgpu::Instance::new(desc)
}

fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
        || info.name.to_lowercase().contains("llvmpipe")
        || info.name.to_lowercase().contains("swiftshader")
}

/// Every adapter the instance sees (for `cliptune devices`).
pub fn list_adapters() -> Vec<AdapterReport> {
    let inst = instance();
    let adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::PRIMARY));
    adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            let l = a.limits();
            AdapterReport {
                name: info.name.clone(),
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                driver: format!("{} {}", info.driver, info.driver_info),
                max_storage_binding: l.max_storage_buffer_binding_size as u64,
                max_buffer: l.max_buffer_size,
                max_workgroup_invocations: l.max_compute_invocations_per_workgroup,
                max_shared_memory: l.max_compute_workgroup_storage_size,
                software: is_software(&info),
            }
        })
        .collect()
}

/// Round a byte size up to its pool class: 256 B granularity below 1 MiB, then
/// powers of two up to 2^1/4 steps, so reuse is likely without wasting much.
fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(16);
    if b <= 1 << 20 {
        return b.div_ceil(256) * 256;
    }
    let mut c: u64 = 1 << 20;
    while c < b {
        c += (c / 4).max(256);
    }
    c.div_ceil(256) * 256
}

impl GpuBackend {
    /// `allow_software`: accept lavapipe/WARP (tests and `--device gpu`); `auto` does not.
    pub fn new(allow_software: bool) -> Result<Arc<GpuBackend>> {
        let inst = instance();
        let mut adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::PRIMARY));
        if adapters.is_empty() {
            return Err(Error::device(
                "no GPU adapter found (Vulkan/Metal/DX12); on Debian install mesa-vulkan-drivers libvulkan1 for lavapipe, or use --device cpu",
            ));
        }
        // Prefer discrete, then integrated, then anything else.
        adapters.sort_by_key(|a| match a.get_info().device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        });
        let adapter = adapters.remove(0);
        let info = adapter.get_info();
        if !allow_software && is_software(&info) {
            return Err(Error::device(format!(
                "only a software adapter is available ({}); it is slower than the CPU backend",
                info.name
            )));
        }
        // The adapter's own limits: wgpu's defaults cap a storage binding at 128 MiB.
        let limits = adapter.limits();
        // TIMESTAMP_QUERY: `cliptune bench --kernel` brackets kernels with GPU timestamps.
        let wanted = adapter.features()
            & (wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("cliptune"),
            required_features: wanted,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::device(format!("requesting a device from adapter '{}': {e}", info.name)))?;
        let errors: Arc<Mutex<Option<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap();
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        Ok(Arc::new_cyclic(|me| GpuBackend {
            me: me.clone(),
            errors,
            device,
            queue,
            info,
            limits,
            features: wanted,
            pipelines: Mutex::new(HashMap::new()),
            pool: Pool::default(),
            pending: Mutex::new(Pending::default()),
            stats: Mutex::new(GpuStats::default()),
        }))
    }

    /// This backend as a `Device`, for wrapping kernel outputs into tensors.
    pub fn as_device(&self) -> crate::backend::Device {
        crate::backend::Device::Gpu(self.me.upgrade().expect("GpuBackend is alive while in use"))
    }

    /// A new f32 (or other dtype) output tensor of `shape`, uninitialised.
    pub fn empty(&self, op: &str, shape: &[usize], dtype: crate::tensor::DType) -> Result<crate::tensor::Tensor> {
        let n = crate::tensor::numel(shape);
        let bytes = (n * dtype.size()).div_ceil(4) * 4;
        let st = self.alloc(op, bytes as u64)?;
        Ok(crate::tensor::Tensor::from_storage(
            crate::tensor::Storage::Gpu(st),
            shape.to_vec(),
            dtype,
            self.as_device(),
        ))
    }

    pub fn adapter_name(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// Refuse buffers the adapter cannot bind, naming the op and the size.
    pub fn check_binding(&self, op: &str, bytes: u64) -> Result<()> {
        let max = (self.limits.max_storage_buffer_binding_size as u64).min(self.limits.max_buffer_size);
        if bytes > max {
            return Err(Error::limit(format!(
                "{op}: a buffer of {bytes} bytes exceeds this adapter's max storage binding of {max} bytes ({}); store the tensor as f16, split it, or use --device cpu",
                self.info.name
            )));
        }
        Ok(())
    }

    fn usage() -> wgpu::BufferUsages {
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
    }

    /// An uninitialised (pooled) device buffer of at least `bytes`.
    pub fn alloc(&self, op: &str, bytes: u64) -> Result<GpuStorage> {
        self.check_binding(op, bytes)?;
        let class = size_class(bytes);
        let reused = self.pool.lock().unwrap().get_mut(&class).and_then(|v| v.pop());
        let buf = match reused {
            Some(b) => {
                self.stats.lock().unwrap().pool_hits += 1;
                b
            }
            None => {
                let mut st = self.stats.lock().unwrap();
                st.bytes_live += class;
                st.bytes_peak = st.bytes_peak.max(st.bytes_live);
                drop(st);
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(op),
                    size: class,
                    usage: Self::usage(),
                    mapped_at_creation: false,
                })
            }
        };
        Ok(self.wrap(buf))
    }

    fn wrap(&self, buf: wgpu::Buffer) -> GpuStorage {
        GpuStorage {
            buf: Some(buf),
            pool: self.pool.clone(),
        }
    }

    /// Upload bytes. A pooled buffer of the right class is refilled by a copy recorded
    /// in the pending encoder (so it runs after queued work that still reads the
    /// buffer's old contents; `queue.write_buffer` would jump ahead of it); otherwise a
    /// fresh buffer is created with the contents. Steady-state training loops that
    /// upload a batch each step therefore do not grow device memory.
    pub fn upload(&self, op: &str, bytes: &[u8]) -> Result<GpuStorage> {
        self.check_binding(op, bytes.len() as u64)?;
        let class = size_class(bytes.len() as u64);
        let copy_len = (bytes.len() as u64).div_ceil(4) * 4;
        let mut padded;
        let mut data = bytes;
        if copy_len as usize != bytes.len() {
            padded = vec![0u8; copy_len as usize];
            padded[..bytes.len()].copy_from_slice(bytes);
            data = &padded;
        }
        let reused = self.pool.lock().unwrap().get_mut(&class).and_then(|v| v.pop());
        if let Some(buf) = reused {
            if copy_len > 0 {
                let staging = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(op),
                    contents: data,
                    usage: wgpu::BufferUsages::COPY_SRC,
                });
                let mut pending = self.pending.lock().unwrap();
                let enc = pending.encoder.get_or_insert_with(|| {
                    self.device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
                });
                enc.copy_buffer_to_buffer(&staging, 0, &buf, 0, copy_len);
                pending.count += 1;
            }
            self.stats.lock().unwrap().pool_hits += 1;
            return Ok(self.wrap(buf));
        }
        let mut full = vec![0u8; class as usize];
        full[..data.len()].copy_from_slice(data);
        let buf = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(op),
            contents: &full,
            usage: Self::usage(),
        });
        {
            let mut st = self.stats.lock().unwrap();
            st.bytes_live += class;
            st.bytes_peak = st.bytes_peak.max(st.bytes_live);
        }
        Ok(self.wrap(buf))
    }
}

/// WGSL shared by every kernel file (index helpers, half unpacking); prepended at
/// pipeline creation.
const COMMON_WGSL: &str = include_str!("../../../shaders/common.wgsl");

/// Maximum workgroups along one dispatch dimension (WebGPU's portable limit).
pub const MAX_GROUPS: u32 = 65535;

/// Workgroup grid covering `n` items with `per_group` items per workgroup: spills
/// into y beyond 65535 groups. Shaders recover the flat index with
/// `flat_id(wg, nwg, lid, per_group)` from common.wgsl.
pub fn grid_1d(n: usize, per_group: usize) -> [u32; 3] {
    let groups = n.div_ceil(per_group).max(1) as u32;
    if groups <= MAX_GROUPS {
        [groups, 1, 1]
    } else {
        [MAX_GROUPS, groups.div_ceil(MAX_GROUPS), 1]
    }
}

impl GpuBackend {
    fn pipeline(
        &self,
        src: &'static str,
        entry: &'static str,
        n_in: usize,
        n_out: usize,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let key = (src.as_ptr() as usize, entry);
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        // Shader bugs become errors naming the kernel, not a validation panic.
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(entry),
            source: wgpu::ShaderSource::Wgsl(format!("{COMMON_WGSL}\n{src}").into()),
        });
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
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
        let bgl = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(entry),
            entries: &entries,
        });
        let layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let p = Arc::new(self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&layout),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        }));
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::device(format!("building WGSL kernel '{entry}': {e}")));
        }
        self.pipelines.lock().unwrap().insert(key, p.clone());
        Ok(p)
    }

    /// Fail with the first validation error wgpu reported outside an error scope.
    fn check_errors(&self, what: &str) -> Result<()> {
        if let Some(e) = self.errors.lock().unwrap().take() {
            return Err(Error::device(format!("{what}: GPU validation error: {e}")));
        }
        Ok(())
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
        if groups.iter().any(|&g| g > MAX_GROUPS) {
            return Err(Error::limit(format!(
                "{entry}: workgroup grid {groups:?} exceeds {MAX_GROUPS} per dimension"
            )));
        }
        let pipeline = self.pipeline(src, entry, inputs.len(), outputs.len())?;
        let mut bytes = bytemuck::bytes_of(params).to_vec();
        bytes.resize(bytes.len().div_ceil(16).max(1) * 16, 0);
        let ubuf = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: &bytes,
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
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut pending = self.pending.lock().unwrap();
        let enc = pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(entry),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        pending.count += 1;
        self.stats.lock().unwrap().dispatches += 1;
        if pending.count >= MAX_PENDING {
            self.submit_locked(&mut pending);
        }
        Ok(())
    }

    fn submit_locked(&self, pending: &mut Pending) {
        if let Some(enc) = pending.encoder.take() {
            self.queue.submit([enc.finish()]);
            self.stats.lock().unwrap().submits += 1;
        }
        pending.count = 0;
    }

    /// Submit everything recorded so far.
    pub fn flush(&self) {
        let mut pending = self.pending.lock().unwrap();
        self.submit_locked(&mut pending);
    }

    /// Submit and wait until the GPU is idle.
    pub fn wait(&self) -> Result<()> {
        self.flush();
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| Error::device(format!("waiting for the GPU: {e}")))?;
        self.check_errors("waiting for the GPU")
    }

    /// Copy the first `nbytes` of a buffer back to the host (submits pending work).
    pub fn read_bytes(&self, src: &GpuStorage, nbytes: usize) -> Result<Vec<u8>> {
        let size = (nbytes as u64).div_ceil(4) * 4;
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut pending = self.pending.lock().unwrap();
            let enc = pending.encoder.get_or_insert_with(|| {
                self.device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            enc.copy_buffer_to_buffer(src.buffer(), 0, &staging, 0, size);
            self.submit_locked(&mut pending);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| Error::device(format!("reading back from the GPU: {e}")))?;
        rx.recv()
            .map_err(|e| Error::device(format!("reading back from the GPU: {e}")))?
            .map_err(|e| Error::device(format!("mapping a readback buffer: {e}")))?;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::device(format!("mapping a readback buffer: {e:?}")))?;
            view[..nbytes].to_vec()
        };
        staging.unmap();
        self.check_errors("reading back from the GPU")?;
        Ok(out)
    }

    pub fn stats(&self) -> GpuStats {
        self.stats.lock().unwrap().clone()
    }
}
