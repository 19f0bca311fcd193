//! Adapter enumeration and choice: every API wgpu was compiled with, ranked discrete >
//! integrated > other real GPUs > software (lavapipe, llvmpipe, WARP), native APIs before
//! GL within a kind; the facts `cliptune devices` prints.
use super::requirements;
use crate::backend::GpuApi;

/// Adapter facts for `cliptune devices`.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub max_storage_binding: u64,
    pub max_buffer: u64,
    pub max_storage_buffers_per_stage: u32,
    pub max_workgroup_size: [u32; 3],
    pub max_workgroup_invocations: u32,
    pub max_shared_memory: u32,
    pub compute_shaders: bool,
    pub software: bool,
    /// Per kernel family: runs here, or why not (kernel and limit).
    pub families: Vec<(&'static str, std::result::Result<(), String>)>,
    /// Per fast variant: used here, or why not (the family's plain kernel runs instead).
    pub fast_variants: Vec<(&'static str, std::result::Result<(), String>)>,
    /// The optional wgpu features our device asks for, as offered here: f16 in shaders,
    /// subgroup operations, timestamp queries (`bench`'s `gpu_ms`).
    pub shader_f16: bool,
    pub subgroups: bool,
    pub timestamps: bool,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::all();
    wgpu::Instance::new(desc)
}

pub(super) fn is_software(info: &wgpu::AdapterInfo) -> bool {
    let name = info.name.to_lowercase();
    info.device_type == wgpu::DeviceType::Cpu
        || name.contains("llvmpipe")
        || name.contains("lavapipe")
        || name.contains("swiftshader")
        || name.contains("softpipe")
        || name.contains("microsoft basic render")
}

pub(super) fn compute_shaders(a: &wgpu::Adapter) -> bool {
    a.get_downlevel_capabilities()
        .flags
        .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
}

/// Lower is better: discrete, integrated, other real GPUs, then software; within a
/// kind, the native APIs before GL (fewer limits, no EGL translation layer).
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = if is_software(info) {
        3
    } else {
        match info.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            _ => 2,
        }
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal => 0,
        wgpu::Backend::Dx12 => 1,
        _ => 2,
    };
    (kind, api)
}

pub(super) fn all_adapters() -> Vec<wgpu::Adapter> {
    let inst = instance();
    let mut adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| rank(&a.get_info()));
    adapters
}

/// Every adapter the instance sees, best first (for `cliptune devices`).
pub fn list_adapters() -> Vec<AdapterReport> {
    all_adapters()
        .iter()
        .map(|a| {
            let info = a.get_info();
            let l = a.limits();
            let compute = compute_shaders(a);
            AdapterReport {
                name: info.name.clone(),
                backend: GpuApi::from_wgpu(info.backend)
                    .map_or(format!("{:?}", info.backend), |x| x.name().to_string()),
                device_type: format!("{:?}", info.device_type),
                driver: format!("{} {}", info.driver, info.driver_info),
                max_storage_binding: l.max_storage_buffer_binding_size as u64,
                max_buffer: l.max_buffer_size,
                max_storage_buffers_per_stage: l.max_storage_buffers_per_shader_stage,
                max_workgroup_size: [
                    l.max_compute_workgroup_size_x,
                    l.max_compute_workgroup_size_y,
                    l.max_compute_workgroup_size_z,
                ],
                max_workgroup_invocations: l.max_compute_invocations_per_workgroup,
                max_shared_memory: l.max_compute_workgroup_storage_size,
                compute_shaders: compute,
                software: is_software(&info),
                families: requirements::family_support(&l, compute),
                fast_variants: requirements::fast_variant_support(&l, compute),
                shader_f16: a.features().contains(wgpu::Features::SHADER_F16),
                subgroups: a.features().contains(wgpu::Features::SUBGROUP),
                timestamps: a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
            }
        })
        .collect()
}

/// The APIs this build of wgpu was compiled with (wgpu gates them by platform).
pub fn compiled_apis() -> Vec<GpuApi> {
    let on = wgpu::Instance::enabled_backend_features();
    GpuApi::ALL
        .into_iter()
        .filter(|a| on.contains(wgpu::Backends::from(a.wgpu_backend())))
        .collect()
}
