//! The wgpu device: opening it on the chosen adapter, the buffer pool, uploads,
//! readback and errors. Adapter choice is `adapters.rs`, recording dispatches
//! `dispatch.rs`.
//!
//! Dispatches are recorded into one pending command encoder, inside one open compute
//! pass, and submitted together (a submit round trip costs 70-260 us on lavapipe); the
//! only waits are readbacks.
//! Freed buffers go back to a pool keyed by their size class. A pooled buffer may be
//! reused by a later dispatch while earlier, still-queued dispatches read it: that is
//! safe because queue order is execution order. Uploads therefore never use
//! `queue.write_buffer` on pooled buffers (it would jump ahead of queued work); they
//! refill one with a copy recorded in the pending encoder, or make a fresh buffer
//! initialised at creation.
//!
//! A request takes the free buffer of its class with the lowest id, not the last one
//! freed: which buffer a request gets then depends only on which buffers are free, not
//! on the order they were freed in. Tensors die in hash-map order (gradients, optimizer
//! state), which differs every step; with a LIFO pool each training step got its
//! buffers in a new permutation and the bind-group cache (keyed by buffers) missed on
//! ~290 of 333 dispatches (docs/PERFORMANCE.md). With the lowest id, a step that
//! repeats the previous step's requests from the same free set gets the same buffers;
//! the free set stays the same because the parameters and AdamW moments keep their
//! buffers (optim.rs updates them in place).
//!
//! On GL every entry point that reaches wgpu first holds `context` (context_lock.rs):
//! wgpu-hal's GL backend panics when a thread waits more than 6 s for its context.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

use super::adapters::{all_adapters, compiled_apis, compute_shaders, is_software};
use super::context_lock::ContextLock;
use super::dispatch::{Kernel, KernelKey, Pending, MAX_PENDING, PARAMS_SLOT};
use super::requirements;
use crate::backend::GpuApi;
use crate::error::{Error, Result};

pub struct GpuBackend {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub(super) pipelines: Mutex<HashMap<KernelKey, Arc<Kernel>>>,
    /// Keyed by the buffers' pool ids (`GpuStorage::id`), bounded (dispatch.rs).
    pub(super) bind_groups: Mutex<HashMap<(KernelKey, Vec<u64>), wgpu::BindGroup>>,
    /// Ids of every buffer ever bound: tells a bind-group miss caused by a new buffer
    /// from one caused by known buffers in a new combination (`GpuStats`).
    pub(super) bound_ids: Mutex<HashSet<u64>>,
    pub(super) next_id: AtomicU64,
    pub(super) uniforms: wgpu::Buffer,
    pub(super) slot: u64,
    pub(super) trusted: bool,
    /// The tiled attention kernels sum through subgroup shuffles (attention.rs,
    /// `uses_subgroups`).
    pub(super) subgroups: bool,
    /// `CLIPTUNE_GPU_DISPATCH=legacy`: the old per-dispatch path (a new uniform buffer,
    /// bind group and compute pass per dispatch, bounds-checked shaders), kept to
    /// measure the dispatch path against (docs/PERFORMANCE.md).
    pub(super) legacy: bool,
    pub(super) pool: Pool,
    pub(super) pending: Mutex<Pending>,
    pub stats: Mutex<GpuStats>,
    pub(super) me: std::sync::Weak<GpuBackend>,
    /// Serialises wgpu calls on GL (context_lock.rs); a no-op elsewhere.
    pub(super) context: Arc<ContextLock>,
    pub(super) errors: Arc<Mutex<Option<String>>>,
    /// Stats at the last readback, for `CLIPTUNE_GPU_STATS=1`'s per-readback deltas.
    pub(super) reported: Mutex<Option<GpuStats>>,
}

/// Counters for benchmarks and tests.
#[derive(Default, Clone, Debug)]
pub struct GpuStats {
    pub dispatches: u64,
    pub submits: u64,
    pub bytes_live: u64,
    pub bytes_peak: u64,
    pub pool_hits: u64,
    /// Pipelines and bind groups created (a steady-state step should create none).
    pub pipelines: u64,
    pub bind_groups: u64,
    /// Of `bind_groups`, those that bound a buffer no earlier bind group had bound; the
    /// rest recombined known buffers (a pool handing them out in a new order).
    pub bind_groups_new_buffer: u64,
    /// Bind groups held in the cache now (bounded by dispatch.rs's MAX_BIND_GROUPS).
    pub bind_groups_cached: u64,
    /// Buffers created (not taken from the pool), uploads included.
    pub buffers_created: u64,
    /// Host time spent recording dispatches (lookups, binding, encoding), in ns.
    pub dispatch_host_ns: u64,
    /// GL only (context_lock.rs): total time threads waited for the device's context
    /// lock, and the longest time one call held it, in ns.
    pub context_wait_ns: u64,
    pub context_max_hold_ns: u64,
}

impl GpuStats {
    /// Host microseconds per dispatch.
    pub fn us_per_dispatch(&self) -> f64 {
        self.dispatch_host_ns as f64 / 1e3 / self.dispatches.max(1) as f64
    }
}

/// A device buffer owned by a tensor. Dropping it returns the buffer to the pool.
pub struct GpuStorage {
    buf: Option<wgpu::Buffer>,
    /// Unique per buffer for the device's lifetime; kept across pool reuse.
    id: u64,
    pool: Pool,
}

/// Free buffers by size class, each class by buffer id (lowest handed out first, see
/// the module comment); shared with every storage so drops can return them.
type Pool = Arc<Mutex<HashMap<u64, BTreeMap<u64, wgpu::Buffer>>>>;

impl GpuStorage {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("live buffer")
    }

    pub(super) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for GpuStorage {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            let size = b.size();
            if let Ok(mut pool) = self.pool.lock() {
                pool.entry(size).or_default().insert(self.id, b);
            }
        }
    }
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
    /// `allow_software`: accept lavapipe/llvmpipe/WARP (tests and `--device gpu`); `auto`
    /// does not. `api`: only adapters of that API (`--backend`). Adapters whose limits
    /// cannot run every kernel are passed over, and named when nothing else is left.
    pub fn new(allow_software: bool, api: Option<GpuApi>) -> Result<Arc<GpuBackend>> {
        if let Some(api) = api {
            if !compiled_apis().contains(&api) {
                let have: Vec<&str> = compiled_apis().iter().map(|a| a.name()).collect();
                return Err(Error::device(format!(
                    "--backend {}: this build of cliptune has no {} support on this platform (compiled: {})",
                    api.name(),
                    api.name(),
                    have.join(", ")
                )));
            }
        }
        let mut adapters = all_adapters();
        let seen: Vec<String> = adapters
            .iter()
            .map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend))
            .collect();
        if let Some(api) = api {
            adapters.retain(|a| a.get_info().backend == api.wgpu_backend());
        }
        if adapters.is_empty() {
            let hint = match api {
                Some(GpuApi::Gl) => "on Debian install libegl1 libgl1-mesa-dri libegl-mesa0 for llvmpipe",
                Some(GpuApi::Vulkan) | None => {
                    "on Debian install mesa-vulkan-drivers libvulkan1 for lavapipe, or use --device cpu"
                }
                Some(_) => "pick another --backend, or use --device cpu",
            };
            let what = api.map_or("GPU adapter (Vulkan/Metal/DX12/GL)".to_string(), |a| {
                format!("{} adapter", a.name())
            });
            let others = if seen.is_empty() {
                String::new()
            } else {
                format!(" (adapters of other APIs: {})", seen.join(", "))
            };
            return Err(Error::device(format!("no {what} found{others}; {hint}")));
        }
        // Best-ranked adapter that can run every kernel; the first refusal is reported
        // when none can.
        let mut refusal = None;
        let mut chosen = None;
        for a in adapters {
            let info = a.get_info();
            match requirements::check_adapter(&info.name, &a.limits(), compute_shaders(&a)) {
                Ok(()) => {
                    chosen = Some(a);
                    break;
                }
                Err(e) => {
                    refusal.get_or_insert(e);
                }
            }
        }
        let adapter = match (chosen, refusal) {
            (Some(a), _) => a,
            (None, Some(e)) => return Err(e),
            (None, None) => unreachable!("adapters is not empty"),
        };
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
        let sink = errors.clone();
        let adapter_name = info.name.clone();
        device.set_device_lost_callback(move |reason, msg| {
            // Dropping the device at exit also reports "lost"; only a real loss is an error.
            if reason != wgpu::DeviceLostReason::Destroyed {
                let mut slot = sink.lock().unwrap();
                slot.get_or_insert(format!(
                    "the GPU device '{adapter_name}' was lost ({reason:?}: {msg}); results of this run are incomplete, rerun (or use --device cpu)"
                ));
            }
        });
        let align = limits.min_uniform_buffer_offset_alignment.max(16) as u64;
        let slot = PARAMS_SLOT.div_ceil(align) * align;
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params ring"),
            size: slot * MAX_PENDING as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let legacy = std::env::var("CLIPTUNE_GPU_DISPATCH").as_deref() == Ok("legacy");
        // CLIPTUNE_GPU_CHECKED=1 keeps naga's bounds checks (debugging a kernel).
        let trusted = !legacy && std::env::var("CLIPTUNE_GPU_CHECKED").map_or(true, |v| v != "1");
        // A row's 4 lanes must share a subgroup and the 64-thread workgroup must be whole
        // subgroups; CLIPTUNE_GPU_SUBGROUPS=0 keeps the workgroup-memory kernels.
        let subgroups = wanted.contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size >= 4
            && info.subgroup_max_size <= 64
            && std::env::var("CLIPTUNE_GPU_SUBGROUPS").map_or(true, |v| v != "0");
        let context = Arc::new(ContextLock::new(info.backend == wgpu::Backend::Gl));
        Ok(Arc::new_cyclic(|me| GpuBackend {
            me: me.clone(),
            context,
            errors,
            device,
            queue,
            info,
            limits,
            features: wanted,
            pipelines: Mutex::new(HashMap::new()),
            bind_groups: Mutex::new(HashMap::new()),
            bound_ids: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(0),
            uniforms,
            slot,
            trusted,
            subgroups,
            legacy,
            pool: Pool::default(),
            pending: Mutex::new(Pending::default()),
            stats: Mutex::new(GpuStats::default()),
            reported: Mutex::new((std::env::var("CLIPTUNE_GPU_STATS").as_deref() == Ok("1")).then(GpuStats::default)),
        }))
    }

    /// The native API this device runs on.
    pub fn api(&self) -> Option<GpuApi> {
        GpuApi::from_wgpu(self.info.backend)
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
        let _context = self.context.hold();
        let class = size_class(bytes);
        if let Some((id, b)) = self.take_pooled(class) {
            self.stats.lock().unwrap().pool_hits += 1;
            return Ok(self.wrap(id, b));
        }
        self.count_created(class);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(op),
            size: class,
            usage: Self::usage(),
            mapped_at_creation: false,
        });
        Ok(self.wrap(self.next_id.fetch_add(1, Ordering::Relaxed), buf))
    }

    /// The free buffer of `class` with the lowest id.
    fn take_pooled(&self, class: u64) -> Option<(u64, wgpu::Buffer)> {
        self.pool
            .lock()
            .unwrap()
            .get_mut(&class)
            .and_then(|free| free.pop_first())
    }

    fn count_created(&self, class: u64) {
        let mut st = self.stats.lock().unwrap();
        st.buffers_created += 1;
        st.bytes_live += class;
        st.bytes_peak = st.bytes_peak.max(st.bytes_live);
    }

    fn wrap(&self, id: u64, buf: wgpu::Buffer) -> GpuStorage {
        GpuStorage {
            buf: Some(buf),
            id,
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
        let _context = self.context.hold();
        let class = size_class(bytes.len() as u64);
        let copy_len = (bytes.len() as u64).div_ceil(4) * 4;
        let mut padded;
        let mut data = bytes;
        if copy_len as usize != bytes.len() {
            padded = vec![0u8; copy_len as usize];
            padded[..bytes.len()].copy_from_slice(bytes);
            data = &padded;
        }
        if let Some((id, buf)) = self.take_pooled(class) {
            if copy_len > 0 {
                let staging = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(op),
                    contents: data,
                    usage: wgpu::BufferUsages::COPY_SRC,
                });
                let mut pending = self.pending.lock().unwrap();
                let enc = self.encoder(&mut pending);
                enc.copy_buffer_to_buffer(&staging, 0, &buf, 0, copy_len);
                pending.count += 1;
            }
            self.stats.lock().unwrap().pool_hits += 1;
            return Ok(self.wrap(id, buf));
        }
        let mut full = vec![0u8; class as usize];
        full[..data.len()].copy_from_slice(data);
        let buf = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(op),
            contents: &full,
            usage: Self::usage(),
        });
        self.count_created(class);
        Ok(self.wrap(self.next_id.fetch_add(1, Ordering::Relaxed), buf))
    }
}

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
    /// Fail with the first validation error wgpu reported outside an error scope.
    pub(super) fn check_errors(&self, what: &str) -> Result<()> {
        if let Some(e) = self.errors.lock().unwrap().take() {
            return Err(Error::device(format!("{what}: GPU validation error: {e}")));
        }
        Ok(())
    }

    /// Submit everything recorded so far.
    pub fn flush(&self) {
        let _context = self.context.hold();
        let mut pending = self.pending.lock().unwrap();
        self.submit_locked(&mut pending);
    }

    /// Submit and wait until the GPU is idle.
    pub fn wait(&self) -> Result<()> {
        let _context = self.context.hold();
        self.flush();
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| Error::device(format!("waiting for the GPU: {e}")))?;
        self.check_errors("waiting for the GPU")
    }

    /// With `CLIPTUNE_GPU_STATS=1`, one stderr line per readback with the dispatches,
    /// submits and host time since the previous one (a training step reads its loss
    /// once, so each line is one step's dispatch cost).
    pub(super) fn report_stats(&self) {
        let Some(last) = &mut *self.reported.lock().unwrap() else {
            return;
        };
        let now = self.stats();
        let d = GpuStats {
            dispatches: now.dispatches - last.dispatches,
            submits: now.submits - last.submits,
            pipelines: now.pipelines - last.pipelines,
            bind_groups: now.bind_groups - last.bind_groups,
            bind_groups_new_buffer: now.bind_groups_new_buffer - last.bind_groups_new_buffer,
            buffers_created: now.buffers_created - last.buffers_created,
            dispatch_host_ns: now.dispatch_host_ns - last.dispatch_host_ns,
            ..Default::default()
        };
        eprintln!(
            "gpu stats since last readback: {} dispatches, {} submits, {} new pipelines, {} new bind groups ({} binding a buffer not bound before), {} new buffers, {:.1} us host per dispatch; {} bind groups cached",
            d.dispatches,
            d.submits,
            d.pipelines,
            d.bind_groups,
            d.bind_groups_new_buffer,
            d.buffers_created,
            d.us_per_dispatch(),
            now.bind_groups_cached
        );
        *last = now;
    }

    pub fn stats(&self) -> GpuStats {
        let mut s = self.stats.lock().unwrap().clone();
        s.bind_groups_cached = self.bind_groups.lock().unwrap().len() as u64;
        (s.context_wait_ns, s.context_max_hold_ns) = self.context.times();
        s
    }
}
