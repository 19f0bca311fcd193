//! Fused multi-head attention launches (`shaders/attention.wgsl`): one forward kernel
//! (online softmax, scores never in global memory), a forward specialised on head_dim 64
//! (`shaders/attention_d64.wgsl`, CLIP's head size: vec4 rows, one thread per query,
//! 32 keys per tile), and three backward kernels (D = rowsum(dO * O), then dQ per query
//! block and dK/dV per key block, both recomputing P from lse). Where the adapter has
//! subgroups, the tiled kernels sum their dot products by subgroup shuffles
//! ([`subgroup_wgsl`]).
use super::memory::as_f32;
use super::{GpuBackend, MAX_GROUPS};
use crate::backend::checks::attn_numel;
use crate::backend::AttnSpec;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

const WGSL: &str = include_str!("../../../shaders/attention.wgsl");

/// `attention.wgsl` with the dot products summed by subgroup shuffles instead of workgroup
/// memory, for adapters with subgroup operations (see [`uses_subgroups`]). A row's TPR = 4
/// threads become 4 adjacent lanes of one subgroup: the thread index is rebuilt from
/// `subgroup_id * subgroup_size + subgroup_invocation_id` (a permutation of 0..64 when the
/// subgroups are full), so `subgroupShuffleXor` by 1 and 2 adds a row's four partial sums
/// in every lane. That removes a barrier and 2 x ROWS x T x TPR workgroup stores and loads
/// per tile in the forward and both backward kernels. Generated from the one shader file
/// so the two paths cannot drift; `subgroup_wgsl` checks every edit applied.
pub fn subgroup_wgsl() -> &'static str {
    static SRC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SRC.get_or_init(|| {
        let mut s = WGSL.to_string();
        let mut edit = |from: &str, to: &str, times: usize| {
            let n = s.matches(from).count();
            assert_eq!(n, times, "attention.wgsl changed: {from:?} found {n} times, expected {times}");
            s = s.replace(from, to);
        };
        // The entry points of the three tiled kernels take the subgroup builtins.
        edit(
            "(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {\n    let bh = head_of(wg);",
            "(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_id) sg_id: u32, @builtin(subgroup_invocation_id) sg_lane: u32, @builtin(subgroup_size) sg_size: u32) {\n    let li = sg_id * sg_size + sg_lane;\n    let bh = head_of(wg);",
            3,
        );
        // Partial sums: each lane gets its row's total at once.
        edit("part_a[(r * T + j) * TPR + sub] = s;", "ps_a[j] = quad_sum(s);", 2);
        edit("part_b[(r * T + j) * TPR + sub] = dp;", "ps_b[j] = quad_sum(dp);", 1);
        edit("part_a[(r * T + i) * TPR + sub] = s;", "ps_a[i] = quad_sum(s);", 1);
        edit("part_b[(r * T + i) * TPR + sub] = dp;", "ps_b[i] = quad_sum(dp);", 1);
        edit("sc[j] = sum_part_a((r * T + j) * TPR);", "sc[j] = ps_a[j];", 1);
        edit("exp(sum_part_a(o) - lse_i) * (sum_part_b(o) - d_i)", "exp(ps_a[j] - lse_i) * (ps_b[j] - d_i)", 1);
        edit("pij = exp(sum_part_a(o) - row_lse[i]);", "pij = exp(ps_a[i] - row_lse[i]);", 1);
        edit("ds = pij * (sum_part_b(o) - row_d[i]);", "ds = pij * (ps_b[i] - row_d[i]);", 1);
        // The sums stay in registers: per-thread arrays, declared where the tile loop starts.
        edit(
            "        workgroupBarrier();\n        for (var j = 0u; j < T; j++) {\n            var s = 0.0;",
            "        workgroupBarrier();\n        var ps_a: array<f32, 8>;\n        var ps_b: array<f32, 8>;\n        for (var j = 0u; j < T; j++) {\n            var s = 0.0;",
            2,
        );
        edit(
            "        workgroupBarrier();\n        for (var i = 0u; i < T; i++) {\n            var s = 0.0;",
            "        workgroupBarrier();\n        var ps_a: array<f32, 8>;\n        var ps_b: array<f32, 8>;\n        for (var i = 0u; i < T; i++) {\n            var s = 0.0;",
            1,
        );
        // The barrier that published the partial sums is not needed any more (the one
        // after the tile's use, before the next tile load, stays).
        edit(
            "\n        }\n        workgroupBarrier();\n        var sc: array<f32, 8>;",
            "\n        }\n        var sc: array<f32, 8>;",
            1,
        );
        edit(
            "\n        }\n        workgroupBarrier();\n        for (var j = 0u; j < T; j++) {\n            let o = (r * T + j) * TPR;",
            "\n        }\n        for (var j = 0u; j < T; j++) {",
            1,
        );
        edit(
            "\n        }\n        workgroupBarrier();\n        for (var i = 0u; i < T; i++) {\n            let o = (r * T + i) * TPR;",
            "\n        }\n        for (var i = 0u; i < T; i++) {",
            1,
        );
        s.push_str(
            "\n// A row's four lanes are adjacent (see the thread index above): two butterfly steps.\nfn quad_sum(x: f32) -> f32 {\n    let y = x + subgroupShuffleXor(x, 1u);\n    return y + subgroupShuffleXor(y, 2u);\n}\n",
        );
        s
    })
}

/// Whether the tiled attention kernels use [`subgroup_wgsl`] on this device: the adapter
/// offers subgroup operations, its subgroups are 4 to 64 lanes (a row's 4 lanes in one
/// subgroup, the 64-thread workgroup made of full subgroups), and
/// `CLIPTUNE_GPU_SUBGROUPS=0` did not turn them off when the device was made.
pub fn uses_subgroups(g: &GpuBackend) -> bool {
    g.subgroups
}

/// The tiled attention shader this device runs.
fn tiled(g: &GpuBackend) -> &'static str {
    if uses_subgroups(g) {
        subgroup_wgsl()
    } else {
        WGSL
    }
}
const WGSL_D64: &str = include_str!("../../../shaders/attention_d64.wgsl");
/// Query rows per workgroup of the head_dim-64 forward (`QR`), and its workgroup memory
/// (K and V tiles of 32 keys x 64 f32).
const D64_ROWS: usize = 64;
const D64_WORKGROUP_BYTES: u32 = 2 * 32 * 64 * 4;

/// Rows per workgroup (`ROWS` in the shader).
const ROWS: usize = 16;
/// Per-thread register arrays and workgroup tiles are sized for this.
const MAX_HEAD_DIM: usize = 128;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    dh: u32,
    causal: u32,
    scale: f32,
    /// Workgroups along y: (batch, head) pairs are folded as z * ny + y.
    ny: u32,
    pad: u32,
}

struct Plan {
    params: Params,
    /// Grid of the forward, dQ and dK/dV kernels.
    groups: [u32; 3],
    /// Elements of q: batch * seq * heads * head_dim.
    n: usize,
    /// Elements of lse: batch * heads * seq.
    nl: usize,
}

fn plan(op: &str, spec: &AttnSpec) -> Result<Plan> {
    if spec.head_dim == 0 || spec.head_dim > MAX_HEAD_DIM {
        return Err(Error::shape(
            op,
            format!("the wgpu kernel supports head_dim 1..={MAX_HEAD_DIM}, got spec {spec:?}"),
        ));
    }
    let big = || {
        Error::limit(format!(
            "{op}: spec {spec:?} has more elements than 32-bit shader indices allow"
        ))
    };
    let nl = spec
        .batch
        .checked_mul(spec.heads)
        .and_then(|x| x.checked_mul(spec.seq))
        .ok_or_else(big)?;
    let n = nl.checked_mul(spec.head_dim).ok_or_else(big)?;
    if n > u32::MAX as usize {
        return Err(big());
    }
    let bh = spec.batch * spec.heads;
    let max = MAX_GROUPS as usize;
    let ny = bh.clamp(1, max);
    let nz = bh.div_ceil(ny).max(1);
    let nx = spec.seq.div_ceil(ROWS).max(1);
    if nx > max || nz > max {
        return Err(Error::limit(format!(
            "{op}: spec {spec:?} needs more than {max} workgroups along one grid axis"
        )));
    }
    let params = Params {
        batch: spec.batch as u32,
        seq: spec.seq as u32,
        heads: spec.heads as u32,
        dh: spec.head_dim as u32,
        causal: spec.causal as u32,
        scale: spec.scale,
        ny: ny as u32,
        pad: 0,
    };
    Ok(Plan {
        params,
        groups: [nx as u32, ny as u32, nz as u32],
        n,
        nl,
    })
}

pub fn attention(g: &GpuBackend, q: &Tensor, k: &Tensor, v: &Tensor, spec: &AttnSpec) -> Result<(Tensor, Tensor)> {
    const OP: &str = "attention";
    let pl = plan(OP, spec)?;
    attn_numel(OP, spec, pl.n, &[("q", q), ("k", k), ("v", v)])?;
    let out = g.empty(OP, q.shape(), DType::F32)?;
    let lse = g.empty(OP, &[spec.batch, spec.heads, spec.seq], DType::F32)?;
    if pl.n == 0 {
        return Ok((out, lse));
    }
    let (q, k, v) = (as_f32(g, q)?, as_f32(g, k)?, as_f32(g, v)?);
    if spec.head_dim == 64 && g.limits.max_compute_workgroup_storage_size >= D64_WORKGROUP_BYTES {
        let groups = [spec.seq.div_ceil(D64_ROWS) as u32, pl.groups[1], pl.groups[2]];
        if groups[0] <= MAX_GROUPS {
            g.dispatch(
                WGSL_D64,
                "attn_fwd_d64",
                &pl.params,
                &[q.gpu(OP)?, k.gpu(OP)?, v.gpu(OP)?],
                &[out.gpu(OP)?, lse.gpu(OP)?],
                groups,
            )?;
            return Ok((out, lse));
        }
    }
    g.dispatch(
        tiled(g),
        "attn_fwd",
        &pl.params,
        &[q.gpu(OP)?, k.gpu(OP)?, v.gpu(OP)?],
        &[out.gpu(OP)?, lse.gpu(OP)?],
        pl.groups,
    )?;
    Ok((out, lse))
}

#[allow(clippy::too_many_arguments)]
pub fn attention_bwd(
    g: &GpuBackend,
    dout: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    spec: &AttnSpec,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "attention_bwd";
    let pl = plan(OP, spec)?;
    let like_q = [("dout", dout), ("q", q), ("k", k), ("v", v), ("out", out)];
    attn_numel(OP, spec, pl.n, &like_q)?;
    attn_numel(OP, spec, pl.nl, &[("lse", lse)])?;
    let dq = g.empty(OP, q.shape(), DType::F32)?;
    let dk = g.empty(OP, q.shape(), DType::F32)?;
    let dv = g.empty(OP, q.shape(), DType::F32)?;
    if pl.n == 0 {
        return Ok((dq, dk, dv));
    }
    let (dout, q, k, v) = (as_f32(g, dout)?, as_f32(g, q)?, as_f32(g, k)?, as_f32(g, v)?);
    let (out, lse) = (as_f32(g, out)?, as_f32(g, lse)?);
    let d = g.empty(OP, &[spec.batch, spec.heads, spec.seq], DType::F32)?;
    g.dispatch(
        WGSL,
        "attn_bwd_d",
        &pl.params,
        &[dout.gpu(OP)?, out.gpu(OP)?],
        &[d.gpu(OP)?],
        super::grid_1d(pl.nl, 64),
    )?;
    let inputs = [
        q.gpu(OP)?,
        k.gpu(OP)?,
        v.gpu(OP)?,
        dout.gpu(OP)?,
        lse.gpu(OP)?,
        d.gpu(OP)?,
    ];
    g.dispatch(tiled(g), "attn_bwd_dq", &pl.params, &inputs, &[dq.gpu(OP)?], pl.groups)?;
    g.dispatch(
        tiled(g),
        "attn_bwd_dkv",
        &pl.params,
        &inputs,
        &[dk.gpu(OP)?, dv.gpu(OP)?],
        pl.groups,
    )?;
    Ok((dq, dk, dv))
}
