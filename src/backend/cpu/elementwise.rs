//! Element-wise maps, repeating binary ops, reductions and data movement (concat,
//! slice, gather/scatter of rows, patchify) on the CPU. GPU twin:
//! `backend/wgpu/elementwise.rs` + `shaders/elementwise.wgsl`.
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use super::activation::{act_apply, act_grad};
use super::memory::{f32s, u32s, wrap};
use crate::backend::checks::{
    check_act_bwd, check_mul_scalar, check_patch, check_repeat, check_sum_rows, concat_widths, prod, scatter_width,
    slice_cols_inner, table_dims,
};
use crate::backend::{Act, BinaryOp, PatchSpec};
use crate::error::{Error, Result};
use crate::tensor::{CpuStorage, Tensor};

/// Elements per rayon task: big enough to amortise scheduling, small enough to
/// balance across cores and stay in L2.
const CHUNK: usize = 1 << 14;

/// Rows per rayon task for kernels that work row by row.
fn rows_per_task(row_len: usize) -> usize {
    (CHUNK / row_len.max(1)).max(1)
}

fn map1(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(o, x)| {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = f(v);
        }
    });
    out
}

fn map2(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
        .for_each(|(o, (x, y))| {
            for ((o, &a), &b) in o.iter_mut().zip(x).zip(y) {
                *o = f(a, b);
            }
        });
    out
}

pub fn act(x: &Tensor, act: Act) -> Result<Tensor> {
    let xv = f32s(x, "act")?;
    let out = match act {
        Act::None => xv.into_owned(),
        _ => map1(&xv, |v| act_apply(v, act)),
    };
    Ok(wrap(out, x.shape()))
}

pub fn act_bwd(dy: &Tensor, x: &Tensor, act: Act) -> Result<Tensor> {
    check_act_bwd(dy, x)?;
    let dv = f32s(dy, "act_bwd")?;
    let xv = f32s(x, "act_bwd")?;
    let out = match act {
        Act::None => dv.into_owned(),
        _ => map2(&dv, &xv, |d, v| d * act_grad(v, act)),
    };
    Ok(wrap(out, x.shape()))
}

/// out[i] = f(a[i], b[i % b.len()]).
fn repeat2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let bn = b.len();
    if bn == a.len() {
        return map2(a, b, f);
    }
    if bn == 1 {
        let s = b[0];
        return map1(a, |x| f(x, s));
    }
    // Each task covers whole repeats of b so its rows line up with b[0].
    let per = bn * rows_per_task(bn);
    let mut out = vec![0.0f32; a.len()];
    out.par_chunks_mut(per).zip(a.par_chunks(per)).for_each(|(o, a)| {
        for (o, a) in o.chunks_mut(bn).zip(a.chunks(bn)) {
            for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        }
    });
    out
}

pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_repeat(a, b)?;
    let av = f32s(a, "binary")?;
    let bv = f32s(b, "binary")?;
    if av.is_empty() {
        return Ok(wrap(Vec::new(), a.shape()));
    }
    let out = match op {
        BinaryOp::Add => repeat2(&av, &bv, |x, y| x + y),
        BinaryOp::Sub => repeat2(&av, &bv, |x, y| x - y),
        BinaryOp::Mul => repeat2(&av, &bv, |x, y| x * y),
    };
    Ok(wrap(out, a.shape()))
}

pub fn affine(x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    let xv = f32s(x, "affine")?;
    Ok(wrap(map1(&xv, |v| alpha * v + beta), x.shape()))
}

pub fn clamp_max(x: &Tensor, hi: f32) -> Result<Tensor> {
    let xv = f32s(x, "clamp_max")?;
    // `>`, not f32::min: NaN stays NaN, as in the WGSL twin.
    Ok(wrap(map1(&xv, |v| if v > hi { hi } else { v }), x.shape()))
}

pub fn mul_scalar_tensor(x: &Tensor, s: &Tensor) -> Result<Tensor> {
    check_mul_scalar(s)?;
    let sv = f32s(s, "mul_scalar_tensor")?[0];
    let xv = f32s(x, "mul_scalar_tensor")?;
    Ok(wrap(map1(&xv, |v| v * sv), x.shape()))
}

/// f64 sum of f(x) over a slice; eight independent lanes so LLVM vectorises it.
fn lanes_f64(x: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v as f64);
        }
    }
    for (j, &v) in it.remainder().iter().enumerate() {
        acc[j] += f(v as f64);
    }
    acc.iter().sum()
}

/// f64 accumulation (the result feeds gradient norms); partials are summed in a fixed
/// order so the result does not depend on rayon's splits.
fn reduce_f64(x: &[f32], square: bool) -> f64 {
    let parts: Vec<f64> = x
        .par_chunks(CHUNK)
        .map(|c| {
            if square {
                lanes_f64(c, |v| v * v)
            } else {
                lanes_f64(c, |v| v)
            }
        })
        .collect();
    parts.iter().sum()
}

pub fn sum_rows(x: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
    check_sum_rows(x, rows, cols)?;
    let xv = f32s(x, "sum_rows")?;
    if rows == 0 || cols == 0 {
        return Ok(wrap(vec![0.0; cols], &[cols]));
    }
    if cols == 1 {
        return Ok(wrap(vec![reduce_f64(&xv, false) as f32], &[1]));
    }
    // Blocks of rows summed in f64 in parallel (at most ~64 partial rows), then the
    // partials in order: deterministic for a given shape.
    let block = rows.div_ceil(64).max(2 * CHUNK / cols).max(1);
    let parts: Vec<Vec<f64>> = xv
        .par_chunks(block * cols)
        .map(|blk| {
            let mut acc = vec![0.0f64; cols];
            for row in blk.chunks_exact(cols) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v as f64;
                }
            }
            acc
        })
        .collect();
    let mut total = vec![0.0f64; cols];
    for p in &parts {
        for (t, &v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    Ok(wrap(total.iter().map(|&v| v as f32).collect(), &[cols]))
}

pub fn sum_all(x: &Tensor) -> Result<Tensor> {
    let xv = f32s(x, "sum_all")?;
    Ok(wrap(vec![reduce_f64(&xv, false) as f32], &[1]))
}

pub fn sumsq(x: &Tensor) -> Result<Tensor> {
    let xv = f32s(x, "sumsq")?;
    Ok(wrap(vec![reduce_f64(&xv, true) as f32], &[1]))
}

pub fn concat(a: &Tensor, b: &Tensor, outer: usize) -> Result<Tensor> {
    let (ia, ib) = concat_widths(a, b, outer)?;
    let av = f32s(a, "concat")?;
    let bv = f32s(b, "concat")?;
    let w = ia + ib;
    let mut out = vec![0.0f32; outer * w];
    if w > 0 {
        let per = rows_per_task(w);
        out.par_chunks_mut(per * w).enumerate().for_each(|(t, o)| {
            for (k, row) in o.chunks_mut(w).enumerate() {
                let r = t * per + k;
                row[..ia].copy_from_slice(&av[r * ia..(r + 1) * ia]);
                row[ia..].copy_from_slice(&bv[r * ib..(r + 1) * ib]);
            }
        });
    }
    Ok(wrap(out, &[outer, w]))
}

pub fn slice_cols(x: &Tensor, outer: usize, start: usize, len: usize) -> Result<Tensor> {
    let inner = slice_cols_inner(x, outer, start, len)?;
    let xv = f32s(x, "slice_cols")?;
    let mut out = vec![0.0f32; outer * len];
    if len > 0 {
        let per = rows_per_task(len);
        out.par_chunks_mut(per * len).enumerate().for_each(|(t, o)| {
            for (k, row) in o.chunks_mut(len).enumerate() {
                let s = (t * per + k) * inner + start;
                row.copy_from_slice(&xv[s..s + len]);
            }
        });
    }
    Ok(wrap(out, &[outer, len]))
}

fn check_ids(op: &str, ids: &[u32], rows: usize) -> Result<()> {
    match ids.iter().find(|&&id| id as usize >= rows) {
        Some(id) => Err(Error::shape(
            op,
            format!("id {id} is out of range for a table of {rows} rows"),
        )),
        None => Ok(()),
    }
}

pub fn gather_rows(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (rows, width) = table_dims(table)?;
    let idv = u32s(ids, "gather_rows")?;
    check_ids("gather_rows", idv, rows)?;
    let mut shape = ids.shape().to_vec();
    shape.push(width);
    let mut out = vec![0.0f32; idv.len() * width];
    if width == 0 {
        return Ok(wrap(out, &shape));
    }
    // Half-precision tables convert only the picked rows, never the whole table.
    let st = table.cpu("gather_rows")?;
    if let CpuStorage::U32(_) = st {
        return Err(Error::shape(
            "gather_rows",
            format!("expected a float table, got {table:?}"),
        ));
    }
    let per = rows_per_task(width);
    out.par_chunks_mut(per * width)
        .zip(idv.par_chunks(per))
        .for_each(|(o, ids)| {
            for (row, &id) in o.chunks_mut(width).zip(ids) {
                let s = id as usize * width..(id as usize + 1) * width;
                match st {
                    CpuStorage::F32(v) => row.copy_from_slice(&v[s]),
                    CpuStorage::F16(v) => v[s].convert_to_f32_slice(row),
                    CpuStorage::BF16(v) => v[s].convert_to_f32_slice(row),
                    CpuStorage::U32(_) => {}
                }
            }
        });
    Ok(wrap(out, &shape))
}

pub fn scatter_add_rows(dy: &Tensor, ids: &Tensor, rows: usize) -> Result<Tensor> {
    let idv = u32s(ids, "scatter_add_rows")?;
    let n = idv.len();
    let width = scatter_width(dy, n)?;
    check_ids("scatter_add_rows", idv, rows)?;
    let dv = f32s(dy, "scatter_add_rows")?;
    let mut out = vec![0.0f32; prod("scatter_add_rows", &[rows, width])?];
    if width == 0 || n == 0 {
        return Ok(wrap(out, &[rows, width]));
    }
    // Bucket the dy rows by target row (counting sort, stable), so each output row
    // is owned by one task and sums its sources in id order: deterministic, and the
    // same order as the GPU kernel.
    let mut start = vec![0usize; rows + 1];
    for &id in idv {
        start[id as usize + 1] += 1;
    }
    for r in 0..rows {
        start[r + 1] += start[r];
    }
    let mut next = start.clone();
    let mut order = vec![0usize; n];
    for (i, &id) in idv.iter().enumerate() {
        order[next[id as usize]] = i;
        next[id as usize] += 1;
    }
    let per = rows_per_task(width);
    out.par_chunks_mut(per * width).enumerate().for_each(|(t, o)| {
        for (k, row) in o.chunks_mut(width).enumerate() {
            let r = t * per + k;
            for &i in &order[start[r]..start[r + 1]] {
                for (o, &v) in row.iter_mut().zip(&dv[i * width..(i + 1) * width]) {
                    *o += v;
                }
            }
        }
    });
    Ok(wrap(out, &[rows, width]))
}

pub fn patchify(img: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
    let (gw, np, plen) = check_patch("patchify", spec, img, false)?;
    let PatchSpec {
        batch,
        channels,
        height: h,
        width: w,
        patch: p,
    } = *spec;
    let x = f32s(img, "patchify")?;
    let mut out = vec![0.0f32; batch * np * plen];
    if !out.is_empty() {
        let per = rows_per_task(plen);
        out.par_chunks_mut(per * plen).enumerate().for_each(|(t, o)| {
            for (k, row) in o.chunks_mut(plen).enumerate() {
                let r = t * per + k;
                let (b, pi) = (r / np, r % np);
                let (py, px) = (pi / gw, pi % gw);
                for c in 0..channels {
                    for ky in 0..p {
                        let src = ((b * channels + c) * h + py * p + ky) * w + px * p;
                        let dst = (c * p + ky) * p;
                        row[dst..dst + p].copy_from_slice(&x[src..src + p]);
                    }
                }
            }
        });
    }
    Ok(wrap(out, &[batch, np, plen]))
}

pub fn unpatchify(patches: &Tensor, spec: &PatchSpec) -> Result<Tensor> {
    let (gw, np, plen) = check_patch("unpatchify", spec, patches, true)?;
    let PatchSpec {
        batch,
        channels,
        height: h,
        width: w,
        patch: p,
    } = *spec;
    let pv = f32s(patches, "unpatchify")?;
    let mut out = vec![0.0f32; batch * channels * h * w];
    if !out.is_empty() {
        // One image row at a time: it takes p contiguous values from each patch of a grid row.
        let per = rows_per_task(w);
        out.par_chunks_mut(per * w).enumerate().for_each(|(t, o)| {
            for (k, row) in o.chunks_mut(w).enumerate() {
                let r = t * per + k;
                let (y, c, b) = (r % h, (r / h) % channels, r / (h * channels));
                let (py, ky) = (y / p, y % p);
                for (px, seg) in row.chunks_mut(p).enumerate() {
                    let src = (b * np + py * gw + px) * plen + (c * p + ky) * p;
                    seg.copy_from_slice(&pv[src..src + p]);
                }
            }
        });
    }
    Ok(wrap(out, &[batch, channels, h, w]))
}
