//! Launch code for `shaders/elementwise.wgsl`: element-wise maps, repeating binary
//! ops, reductions, concat/slice, gather/scatter of rows and patchify. CPU twin (and
//! the oracle of the tests): `backend/cpu/elementwise.rs`. Shape checks mirror it.
use super::memory::{as_f32, fill};
use super::{grid_1d, GpuBackend, GpuStorage};
use crate::backend::checks::{
    check_act_bwd, check_mul_scalar, check_patch, check_repeat, check_sum_rows, concat_widths, prod, scatter_width,
    slice_cols_inner, table_dims,
};
use crate::backend::cpu::act_code;
use crate::backend::{Act, BinaryOp, PatchSpec};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

const WGSL: &str = include_str!("../../../shaders/elementwise.wgsl");
const WG: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MapP {
    n: u32,
    code: u32,
    bn: u32,
    _pad: u32,
    alpha: f32,
    beta: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RedP {
    n: u32,
    square: u32,
    groups: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RowsP {
    rows: u32,
    cols: u32,
    chunk: u32,
    total: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CatP {
    total: u32,
    ia: u32,
    ib: u32,
    start: u32,
    inner: u32,
    len: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GatherP {
    total: u32,
    width: u32,
    rows: u32,
    dtype: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScatP {
    n: u32,
    width: u32,
    rows: u32,
    total: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PatchP {
    total: u32,
    c: u32,
    h: u32,
    w: u32,
    p: u32,
    gw: u32,
    np: u32,
    _pad: u32,
}

/// The kernels index with u32; below 2^31 a grid-stride loop cannot wrap either.
fn n32(op: &str, n: usize) -> Result<u32> {
    if n >= 1 << 31 {
        return Err(Error::limit(format!(
            "{op}: {n} elements exceed the 2^31 the WGSL kernels can index"
        )));
    }
    Ok(n as u32)
}

/// One input -> one output of x's shape, or two inputs (second one `y`).
fn map(g: &GpuBackend, op: &str, entry: &'static str, x: &Tensor, y: Option<&Tensor>, p: MapP) -> Result<Tensor> {
    let x = as_f32(g, x)?;
    let out = g.empty(op, x.shape(), DType::F32)?;
    if p.n == 0 {
        return Ok(out);
    }
    let y = y.map(|y| as_f32(g, y)).transpose()?;
    let mut inputs: Vec<&GpuStorage> = vec![x.gpu(op)?];
    if let Some(y) = &y {
        inputs.push(y.gpu(op)?);
    }
    g.dispatch(WGSL, entry, &p, &inputs, &[out.gpu(op)?], grid_1d(p.n as usize, WG))?;
    Ok(out)
}

fn map_p(n: u32, code: u32) -> MapP {
    MapP {
        n,
        code,
        bn: 1,
        _pad: 0,
        alpha: 1.0,
        beta: 0.0,
    }
}

pub fn act(g: &GpuBackend, x: &Tensor, act: Act) -> Result<Tensor> {
    if act == Act::None {
        return as_f32(g, x);
    }
    let n = n32("act", x.numel())?;
    map(g, "act", "act", x, None, map_p(n, act_code(act)))
}

pub fn act_bwd(g: &GpuBackend, dy: &Tensor, x: &Tensor, act: Act) -> Result<Tensor> {
    check_act_bwd(dy, x)?;
    if act == Act::None {
        return as_f32(g, &dy.reshape(x.shape())?);
    }
    let n = n32("act_bwd", x.numel())?;
    // The output takes x's shape: map() shapes it after its first input, dy.
    map(
        g,
        "act_bwd",
        "act_bwd",
        &dy.reshape(x.shape())?,
        Some(x),
        map_p(n, act_code(act)),
    )
}

pub fn binary(g: &GpuBackend, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_repeat(a, b)?;
    let (an, bn) = (a.numel(), b.numel());
    let code = match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
    };
    let p = MapP {
        bn: n32("binary", bn)?,
        ..map_p(n32("binary", an)?, code)
    };
    map(g, "binary", "binary", a, Some(b), p)
}

pub fn affine(g: &GpuBackend, x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    let p = MapP {
        alpha,
        beta,
        ..map_p(n32("affine", x.numel())?, 0)
    };
    map(g, "affine", "affine", x, None, p)
}

pub fn clamp_max(g: &GpuBackend, x: &Tensor, hi: f32) -> Result<Tensor> {
    let p = MapP {
        alpha: hi,
        ..map_p(n32("clamp_max", x.numel())?, 0)
    };
    map(g, "clamp_max", "clamp_max", x, None, p)
}

impl GpuBackend {
    /// [`clamp_max`] written over `x`'s own buffer. Only for a tensor nothing else holds
    /// (`Tensor::clamp_max_assign` checks): anyone else would see its values change.
    pub fn clamp_max_in_place(&self, x: &Tensor, hi: f32) -> Result<()> {
        let op = "clamp_max_inplace";
        if x.dtype() != DType::F32 || !x.storage_is_unique() {
            return Err(Error::invalid(format!(
                "{op}: needs an f32 tensor nothing else holds, got {x:?}"
            )));
        }
        let p = MapP {
            alpha: hi,
            ..map_p(n32(op, x.numel())?, 0)
        };
        if p.n == 0 {
            return Ok(());
        }
        self.dispatch(WGSL, op, &p, &[], &[x.gpu(op)?], grid_1d(p.n as usize, WG))
    }
}

pub fn mul_scalar_tensor(g: &GpuBackend, x: &Tensor, s: &Tensor) -> Result<Tensor> {
    check_mul_scalar(s)?;
    let n = n32("mul_scalar_tensor", x.numel())?;
    map(g, "mul_scalar_tensor", "mul_scalar", x, Some(s), map_p(n, 0))
}

/// Rows up to which one invocation per column sums the whole column.
const DIRECT_ROWS: usize = 256;
/// Enough (chunk, column) invocations to fill a GPU.
const TARGET_THREADS: usize = 1 << 16;
/// Fewest rows per chunk, so each pass shrinks the rows at least 16-fold.
const MIN_CHUNK: usize = 16;

pub fn sum_rows(g: &GpuBackend, x: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
    let op = "sum_rows";
    check_sum_rows(x, rows, cols)?;
    if rows == 0 || cols == 0 {
        return fill(g, &[cols], 0.0);
    }
    n32(op, x.numel())?;
    let x = as_f32(g, x)?;
    let out = g.empty(op, &[cols], DType::F32)?;
    // Tall matrices: sum chunks of rows into [chunks, cols] partials, repeat on the
    // partials until few rows are left, then one invocation per column.
    let mut part: Option<GpuStorage> = None;
    let mut rows = rows;
    loop {
        let chunks = if rows <= DIRECT_ROWS {
            1
        } else {
            (TARGET_THREADS / cols).clamp(1, rows.div_ceil(MIN_CHUNK))
        };
        let chunk = rows.div_ceil(chunks);
        let chunks = rows.div_ceil(chunk);
        let total = chunks * cols;
        let p = RowsP {
            rows: rows as u32,
            cols: cols as u32,
            chunk: chunk as u32,
            total: total as u32,
        };
        let src = match &part {
            Some(s) => s,
            None => x.gpu(op)?,
        };
        if chunks == 1 {
            g.dispatch(WGSL, "sum_rows", &p, &[src], &[out.gpu(op)?], grid_1d(total, WG))?;
            return Ok(out);
        }
        let next = g.alloc(op, (total * 4) as u64)?;
        g.dispatch(WGSL, "sum_rows", &p, &[src], &[&next], grid_1d(total, WG))?;
        // Dropping the previous partials is safe: queued work runs in order.
        part = Some(next);
        rows = chunks;
    }
}

/// Stage-1 workgroups of the two-stage reduction (stage 2 is one workgroup).
const REDUCE_GROUPS: usize = 1024;

fn reduce(g: &GpuBackend, op: &str, x: &Tensor, square: bool) -> Result<Tensor> {
    let n = n32(op, x.numel())?;
    if n == 0 {
        return fill(g, &[1], 0.0);
    }
    let x = as_f32(g, x)?;
    let out = g.empty(op, &[1], DType::F32)?;
    // About 8 values per invocation before the tree, for small inputs fewer groups.
    let groups = x.numel().div_ceil(WG * 8).clamp(1, REDUCE_GROUPS);
    let partials = g.alloc(op, (groups * 4) as u64)?;
    let p1 = RedP {
        n,
        square: square as u32,
        groups: groups as u32,
        _pad: 0,
    };
    g.dispatch(
        WGSL,
        "reduce_sum",
        &p1,
        &[x.gpu(op)?],
        &[&partials],
        [groups as u32, 1, 1],
    )?;
    let p2 = RedP {
        n: groups as u32,
        square: 0,
        groups: 1,
        _pad: 0,
    };
    g.dispatch(WGSL, "reduce_sum", &p2, &[&partials], &[out.gpu(op)?], [1, 1, 1])?;
    Ok(out)
}

pub fn sum_all(g: &GpuBackend, x: &Tensor) -> Result<Tensor> {
    reduce(g, "sum_all", x, false)
}

pub fn sumsq(g: &GpuBackend, x: &Tensor) -> Result<Tensor> {
    reduce(g, "sumsq", x, true)
}

pub fn concat(g: &GpuBackend, a: &Tensor, b: &Tensor, outer: usize) -> Result<Tensor> {
    let op = "concat";
    let (ia, ib) = concat_widths(a, b, outer)?;
    let total = n32(op, outer * (ia + ib))?;
    let out = g.empty(op, &[outer, ia + ib], DType::F32)?;
    if total == 0 {
        return Ok(out);
    }
    let (a, b) = (as_f32(g, a)?, as_f32(g, b)?);
    let p = CatP {
        total,
        ia: ia as u32,
        ib: ib as u32,
        start: 0,
        inner: 0,
        len: 0,
    };
    g.dispatch(
        WGSL,
        "concat",
        &p,
        &[a.gpu(op)?, b.gpu(op)?],
        &[out.gpu(op)?],
        grid_1d(total as usize, WG),
    )?;
    Ok(out)
}

pub fn slice_cols(g: &GpuBackend, x: &Tensor, outer: usize, start: usize, len: usize) -> Result<Tensor> {
    let op = "slice_cols";
    let inner = slice_cols_inner(x, outer, start, len)?;
    n32(op, x.numel())?;
    let total = (outer * len) as u32;
    let out = g.empty(op, &[outer, len], DType::F32)?;
    if total == 0 {
        return Ok(out);
    }
    let x = as_f32(g, x)?;
    let p = CatP {
        total,
        ia: 0,
        ib: 0,
        start: start as u32,
        inner: inner as u32,
        len: len as u32,
    };
    g.dispatch(
        WGSL,
        "slice_cols",
        &p,
        &[x.gpu(op)?],
        &[out.gpu(op)?],
        grid_1d(total as usize, WG),
    )?;
    Ok(out)
}

fn check_u32_ids(op: &str, ids: &Tensor) -> Result<()> {
    if ids.dtype() != DType::U32 {
        return Err(Error::shape(op, format!("expected a u32 index tensor, got {ids:?}")));
    }
    Ok(())
}

/// Out-of-range ids give zero rows here (see the WGSL); the CPU backend rejects them.
pub fn gather_rows(g: &GpuBackend, table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let op = "gather_rows";
    check_u32_ids(op, ids)?;
    let (rows, width) = table_dims(table)?;
    let dtype = match table.dtype() {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        DType::U32 => return Err(Error::shape(op, format!("expected a float table, got {table:?}"))),
    };
    n32(op, table.numel())?;
    let total = n32(op, prod(op, &[ids.numel(), width])?)?;
    let mut shape = ids.shape().to_vec();
    shape.push(width);
    let out = g.empty(op, &shape, DType::F32)?;
    if total == 0 {
        return Ok(out);
    }
    let p = GatherP {
        total,
        width: width as u32,
        rows: rows as u32,
        dtype,
    };
    g.dispatch(
        WGSL,
        "gather_rows",
        &p,
        &[table.gpu(op)?, ids.gpu(op)?],
        &[out.gpu(op)?],
        grid_1d(total as usize, WG),
    )?;
    Ok(out)
}

/// Ids >= rows are skipped here; the CPU backend rejects them.
pub fn scatter_add_rows(g: &GpuBackend, dy: &Tensor, ids: &Tensor, rows: usize) -> Result<Tensor> {
    let op = "scatter_add_rows";
    check_u32_ids(op, ids)?;
    let n = ids.numel();
    let width = scatter_width(dy, n)?;
    n32(op, prod(op, &[rows, width])?)?;
    let total = n32(op, dy.numel())?;
    let out = fill(g, &[rows, width], 0.0)?;
    if total == 0 || rows == 0 {
        return Ok(out);
    }
    let dy = as_f32(g, dy)?;
    let next = g.alloc(op, (n * 4) as u64)?;
    let lead = g.alloc(op, (n * 4) as u64)?;
    let p = ScatP {
        n: n as u32,
        width: width as u32,
        rows: n32(op, rows)?,
        total,
    };
    g.dispatch(
        WGSL,
        "scatter_links",
        &p,
        &[ids.gpu(op)?],
        &[&next, &lead],
        grid_1d(n, WG),
    )?;
    g.dispatch(
        WGSL,
        "scatter_sum",
        &p,
        &[dy.gpu(op)?, ids.gpu(op)?, &next, &lead],
        &[out.gpu(op)?],
        grid_1d(total as usize, WG),
    )?;
    Ok(out)
}

/// Checks the spec against `t` (the image, or the patches when `patches`) and
/// returns the kernel parameters with `total` = its element count.
fn patch_params(op: &str, spec: &PatchSpec, t: &Tensor, patches: bool) -> Result<PatchP> {
    let (gw, np, _) = check_patch(op, spec, t, patches)?;
    Ok(PatchP {
        // The check made t's element count the spec's.
        total: n32(op, t.numel())?,
        c: spec.channels as u32,
        h: spec.height as u32,
        w: spec.width as u32,
        p: spec.patch as u32,
        gw: gw as u32,
        np: np as u32,
        _pad: 0,
    })
}

fn permute(g: &GpuBackend, op: &str, entry: &'static str, x: &Tensor, p: &PatchP, shape: &[usize]) -> Result<Tensor> {
    let out = g.empty(op, shape, DType::F32)?;
    if p.total == 0 {
        return Ok(out);
    }
    let x = as_f32(g, x)?;
    g.dispatch(
        WGSL,
        entry,
        p,
        &[x.gpu(op)?],
        &[out.gpu(op)?],
        grid_1d(p.total as usize, WG),
    )?;
    Ok(out)
}

pub fn patchify(g: &GpuBackend, img: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
    let p = patch_params("patchify", spec, img, false)?;
    permute(
        g,
        "patchify",
        "patchify",
        img,
        &p,
        &[spec.batch, spec.num_patches(), spec.patch_len()],
    )
}

pub fn unpatchify(g: &GpuBackend, patches: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
    let p = patch_params("unpatchify", spec, patches, true)?;
    permute(
        g,
        "unpatchify",
        "unpatchify",
        patches,
        &p,
        &[spec.batch, spec.channels, spec.height, spec.width],
    )
}
