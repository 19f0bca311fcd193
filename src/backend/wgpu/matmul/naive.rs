//! Launch code of the first tiled matmul (`shaders/matmul_naive.wgsl`), kept as
//! `--variant naive`: the baseline the register-tiled kernel (../matmul.rs) is measured
//! against, and a kernel that fits any adapter (8 KiB workgroup memory, 256 threads).
use super::super::memory::as_f32;
use super::super::{GpuBackend, MAX_GROUPS};
use crate::backend::checks::matmul_out_shape;
use crate::backend::cpu::act_code;
use crate::backend::{Act, MatmulSpec};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

pub const WGSL: &str = include_str!("../../../../shaders/matmul_naive.wgsl");
/// Output tile per workgroup (must match TM/TN in the shader).
const TILE: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    tiles_m: u32,
    /// tiles_m * batch: the (row tile, batch) pairs folded into grid y and z.
    total: u32,
    trans_a: u32,
    trans_b: u32,
    b_shared: u32,
    /// 0 f32, 1 f16, 2 bf16.
    b_dtype: u32,
    has_bias: u32,
    act: u32,
    _pad: u32,
}

/// Operands already checked by the caller (`super::check`).
pub fn matmul(
    g: &GpuBackend,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    act: Act,
    spec: &MatmulSpec,
    keep_preact: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let op = "matmul";
    let s = *spec;
    let shape = matmul_out_shape(&s);
    let keep = keep_preact && act != Act::None;
    let out = g.empty(op, &shape, DType::F32)?;
    let pre = if keep {
        Some(g.empty(op, &shape, DType::F32)?)
    } else {
        None
    };
    if out.numel() == 0 {
        return Ok((out, pre));
    }
    let b_dtype = match b.dtype() {
        DType::F16 => 1,
        DType::BF16 => 2,
        _ => 0,
    };
    // A is f32 in practice; anything else gets converted once.
    let a = as_f32(g, a)?;
    let bias = bias.map(|t| as_f32(g, t)).transpose()?;
    let tiles_m = s.m.div_ceil(TILE);
    let tiles_n = s.n.div_ceil(TILE);
    let total = tiles_m * s.batch;
    if tiles_n > MAX_GROUPS as usize {
        return Err(Error::limit(format!(
            "matmul: n = {} needs {tiles_n} workgroups along x (max {MAX_GROUPS})",
            s.n
        )));
    }
    let gy = total.min(MAX_GROUPS as usize);
    let gz = total.div_ceil(gy);
    if gz > MAX_GROUPS as usize {
        return Err(Error::limit(format!(
            "matmul: {s:?} needs more than {MAX_GROUPS}^2 row-tile workgroups"
        )));
    }
    let params = Params {
        m: s.m as u32,
        n: s.n as u32,
        k: s.k as u32,
        tiles_m: tiles_m as u32,
        total: total as u32,
        trans_a: s.trans_a as u32,
        trans_b: s.trans_b as u32,
        b_shared: s.b_shared as u32,
        b_dtype,
        has_bias: bias.is_some() as u32,
        act: act_code(act),
        _pad: 0,
    };
    let a_st = a.gpu(op)?;
    // Without a bias, A stands in for the binding (never read: has_bias = 0).
    let bias_st = match &bias {
        Some(t) => t.gpu(op)?,
        None => a_st,
    };
    let inputs = [a_st, b.gpu(op)?, bias_st];
    let groups = [tiles_n as u32, gy as u32, gz as u32];
    match &pre {
        Some(p) => g.dispatch(
            WGSL,
            "matmul_preact",
            &params,
            &inputs,
            &[out.gpu(op)?, p.gpu(op)?],
            groups,
        )?,
        None => g.dispatch(WGSL, "matmul", &params, &inputs, &[out.gpu(op)?], groups)?,
    }
    Ok((out, pre))
}
