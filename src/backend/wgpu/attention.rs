//! Fused multi-head attention launches (`shaders/attention.wgsl`): one forward kernel
//! (online softmax, scores never in global memory), a forward specialised on head_dim 64
//! (`shaders/attention_d64.wgsl`, CLIP's head size: vec4 rows, one thread per query,
//! 32 keys per tile), and three backward kernels
//! (D = rowsum(dO * O), then dQ per query block and dK/dV per key block, both
//! recomputing P from lse).
use super::memory::as_f32;
use super::{GpuBackend, MAX_GROUPS};
use crate::backend::checks::attn_numel;
use crate::backend::AttnSpec;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

const WGSL: &str = include_str!("../../../shaders/attention.wgsl");
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
        WGSL,
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
    g.dispatch(WGSL, "attn_bwd_dq", &pl.params, &inputs, &[dq.gpu(OP)?], pl.groups)?;
    g.dispatch(
        WGSL,
        "attn_bwd_dkv",
        &pl.params,
        &inputs,
        &[dk.gpu(OP)?, dv.gpu(OP)?],
        pl.groups,
    )?;
    Ok((dq, dk, dv))
}
