//! What each WGSL kernel asks of an adapter: storage buffers per stage, workgroup size
//! and invocations, workgroup memory. Read from the shaders themselves with naga (the
//! parser wgpu uses), so the table can never drift from the WGSL; checked against an
//! adapter's limits before a device is accepted and again before each pipeline is built,
//! so a too-small adapter is refused with a message naming the kernel and the limit
//! instead of failing wgpu's validation.
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

/// WGSL shared by every kernel file (index helpers, half unpacking); prepended at
/// pipeline creation.
pub const COMMON_WGSL: &str = include_str!("../../../shaders/common.wgsl");

/// Every kernel family and its WGSL, in the order `cliptune devices` prints them.
pub const FAMILIES: &[(&str, &str)] = &[
    ("memory", include_str!("../../../shaders/memory.wgsl")),
    ("elementwise", include_str!("../../../shaders/elementwise.wgsl")),
    ("norms", include_str!("../../../shaders/norms.wgsl")),
    // The floor: the tiled variants below are used only where they fit.
    ("matmul", include_str!("../../../shaders/matmul_naive.wgsl")),
    ("attention", include_str!("../../../shaders/attention.wgsl")),
    (
        "contrastive_loss",
        include_str!("../../../shaders/contrastive_loss.wgsl"),
    ),
    ("optim", include_str!("../../../shaders/optim.wgsl")),
];

/// Faster variants used where the adapter's limits allow them and skipped (falling back
/// to the family's kernel above) where not: an adapter is never refused for these.
pub const FAST_VARIANTS: &[(&str, &str)] = &[
    (
        "matmul tiled (128x128 default)",
        include_str!("../../../shaders/matmul.wgsl"),
    ),
    (
        "matmul split-K reduce",
        include_str!("../../../shaders/matmul_splitk.wgsl"),
    ),
    (
        "attention head_dim 64",
        include_str!("../../../shaders/attention_d64.wgsl"),
    ),
];

/// One compute entry point's needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelReq {
    pub entry: String,
    /// Storage buffers the entry point binds (all in group 0).
    pub storage_buffers: u32,
    /// Uniform buffers it binds (the params block).
    pub uniform_buffers: u32,
    pub workgroup_size: [u32; 3],
    /// Bytes of `var<workgroup>` memory the entry point uses.
    pub workgroup_bytes: u32,
}

impl KernelReq {
    pub fn invocations(&self) -> u32 {
        self.workgroup_size.iter().product()
    }
}

/// Every compute entry point of `COMMON_WGSL + src`, with pipeline-overridable constants
/// resolved from `constants` (name, value) where the shader has any.
pub fn analyze(src: &str, constants: &[(&str, f64)]) -> Result<Vec<KernelReq>> {
    let full = format!("{COMMON_WGSL}\n{src}");
    let module = naga::front::wgsl::parse_str(&full)
        .map_err(|e| Error::device(format!("parsing WGSL: {}", e.emit_to_string(&full))))?;
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .map_err(|e| Error::device(format!("validating WGSL: {}", e.emit_to_string(&full))))?;
    let (module, info) = if module.overrides.is_empty() {
        (module, info)
    } else {
        let map: naga::back::PipelineConstants = constants.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let (m, i) = naga::back::pipeline_constants::process_overrides(&module, &info, None, &map)
            .map_err(|e| Error::device(format!("resolving override constants {constants:?}: {e}")))?;
        (m.into_owned(), i.into_owned())
    };
    let gctx = module.to_ctx();
    let mut out = vec![];
    for (i, ep) in module.entry_points.iter().enumerate() {
        if ep.stage != naga::ShaderStage::Compute {
            continue;
        }
        let uses = info.get_entry_point(i);
        let (mut storage, mut uniform, mut wg_bytes) = (0u32, 0u32, 0u32);
        for (h, var) in module.global_variables.iter() {
            if uses[h].is_empty() {
                continue;
            }
            match var.space {
                naga::AddressSpace::Storage { .. } => storage += 1,
                naga::AddressSpace::Uniform => uniform += 1,
                naga::AddressSpace::WorkGroup => {
                    wg_bytes += module.types[var.ty].inner.size(gctx);
                }
                _ => {}
            }
        }
        out.push(KernelReq {
            entry: ep.name.clone(),
            storage_buffers: storage,
            uniform_buffers: uniform,
            workgroup_size: ep.workgroup_size,
            workgroup_bytes: wg_bytes,
        });
    }
    Ok(out)
}

/// [`analyze`] once per (source, constants), for pipeline creation.
pub fn entry_req(src: &'static str, entry: &str, constants: &[(&str, f64)]) -> Result<KernelReq> {
    type Cache = Mutex<HashMap<(usize, String), Vec<KernelReq>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (src.as_ptr() as usize, format!("{constants:?}"));
    let cache = CACHE.get_or_init(Cache::default);
    let known = cache.lock().unwrap().get(&key).cloned();
    let reqs = match known {
        Some(r) => r,
        None => {
            let r = analyze(src, constants)?;
            cache.lock().unwrap().insert(key, r.clone());
            r
        }
    };
    reqs.into_iter().find(|r| r.entry == entry).ok_or_else(|| {
        Error::device(format!(
            "WGSL kernel '{entry}' is not an entry point of its shader file"
        ))
    })
}

/// The first limit of `limits` that `req` exceeds, as "limit name: needs X, adapter has Y".
pub fn exceeded(req: &KernelReq, limits: &wgpu::Limits) -> Option<String> {
    let wg = req.workgroup_size;
    let checks: [(&str, u64, u64); 7] = [
        (
            "max_storage_buffers_per_shader_stage",
            req.storage_buffers as u64,
            limits.max_storage_buffers_per_shader_stage as u64,
        ),
        (
            "max_uniform_buffers_per_shader_stage",
            req.uniform_buffers as u64,
            limits.max_uniform_buffers_per_shader_stage as u64,
        ),
        (
            "max_compute_invocations_per_workgroup",
            req.invocations() as u64,
            limits.max_compute_invocations_per_workgroup as u64,
        ),
        (
            "max_compute_workgroup_size_x",
            wg[0] as u64,
            limits.max_compute_workgroup_size_x as u64,
        ),
        (
            "max_compute_workgroup_size_y",
            wg[1] as u64,
            limits.max_compute_workgroup_size_y as u64,
        ),
        (
            "max_compute_workgroup_size_z",
            wg[2] as u64,
            limits.max_compute_workgroup_size_z as u64,
        ),
        (
            "max_compute_workgroup_storage_size",
            req.workgroup_bytes as u64,
            limits.max_compute_workgroup_storage_size as u64,
        ),
    ];
    checks
        .iter()
        .find(|(_, need, have)| need > have)
        .map(|(name, need, have)| format!("{name}: needs {need}, adapter has {have}"))
}

/// Per family: `Ok(())` when every entry point fits `limits`, else the first kernel
/// that does not, with the limit.
pub fn family_support(
    limits: &wgpu::Limits,
    compute_shaders: bool,
) -> Vec<(&'static str, std::result::Result<(), String>)> {
    support(FAMILIES, limits, compute_shaders)
}

/// [`family_support`] for [`FAST_VARIANTS`].
pub fn fast_variant_support(
    limits: &wgpu::Limits,
    compute_shaders: bool,
) -> Vec<(&'static str, std::result::Result<(), String>)> {
    support(FAST_VARIANTS, limits, compute_shaders)
}

fn support(
    table: &[(&'static str, &'static str)],
    limits: &wgpu::Limits,
    compute_shaders: bool,
) -> Vec<(&'static str, std::result::Result<(), String>)> {
    table
        .iter()
        .map(|&(family, src)| {
            if !compute_shaders {
                return (family, Err("the adapter has no compute shaders".to_string()));
            }
            let verdict = match analyze(src, &[]) {
                Err(e) => Err(e.msg),
                Ok(reqs) => reqs
                    .iter()
                    .find_map(|r| exceeded(r, limits).map(|why| format!("kernel '{}': {why}", r.entry)))
                    .map_or(Ok(()), Err),
            };
            (family, verdict)
        })
        .collect()
}

/// `Err` naming the adapter, the first kernel that cannot run there and the limit.
pub fn check_adapter(adapter: &str, limits: &wgpu::Limits, compute_shaders: bool) -> Result<()> {
    for (family, verdict) in family_support(limits, compute_shaders) {
        if let Err(why) = verdict {
            return Err(Error::limit(format!(
                "adapter '{adapter}' cannot run the {family} kernels ({why}); pick another adapter with --backend, or use --device cpu"
            )));
        }
    }
    Ok(())
}
