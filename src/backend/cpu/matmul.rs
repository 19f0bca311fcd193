//! CPU GEMM: the `gemm` crate's micro-kernels with transposes as strides (no copies),
//! its own rayon split of C across cores, then the bias + activation epilogue over row
//! blocks in parallel. WGSL twin: shaders/matmul.wgsl.
use rayon::prelude::*;

use super::activation::{act_inplace, act_into};
use super::memory::{f32s, wrap};
use crate::backend::checks::{check_matmul, matmul_out_shape};
use crate::backend::{Act, MatmulSpec};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Below this many multiply-adds one thread beats the cost of waking the others.
const PAR_MIN_MACS: usize = 1 << 18;

/// Row-major `C = alpha * op(A) @ op(B) + beta * C`, C being m x n with row stride n.
/// A is [m, k] (or [k, m] when `trans_a`), B is [k, n] (or [n, k] when `trans_b`, a
/// PyTorch Linear weight); transposes are strides, never copies. With `beta == 0` C's
/// old contents are never read. `parallel` splits C across the rayon pool: use it for
/// one big GEMM, not inside an outer parallel loop.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    trans_a: bool,
    b: &[f32],
    trans_b: bool,
    beta: f32,
    c: &mut [f32],
    parallel: bool,
) -> Result<()> {
    let (a_need, b_need, c_need) = (m.saturating_mul(k), k.saturating_mul(n), m.saturating_mul(n));
    if a.len() < a_need || b.len() < b_need || c.len() < c_need {
        return Err(Error::shape(
            "sgemm",
            format!(
                "m={m} n={n} k={k} needs A >= {a_need}, B >= {b_need}, C >= {c_need} elements; got {}, {}, {}",
                a.len(),
                b.len(),
                c.len()
            ),
        ));
    }
    let g = Gemm {
        m,
        n,
        k,
        alpha,
        beta,
        a,
        trans_a,
        b,
        trans_b,
    };
    if parallel {
        g.run_parallel(&mut c[..m * n], |_, _| {});
    } else {
        g.run_rows(0, m, &mut c[..m * n], 1);
    }
    Ok(())
}

/// One row-major GEMM problem; slices already checked to be large enough.
#[derive(Clone, Copy)]
struct Gemm<'a> {
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
    a: &'a [f32],
    trans_a: bool,
    b: &'a [f32],
    trans_b: bool,
}

/// C's base pointer shared by threads that write disjoint column ranges.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl Gemm<'_> {
    /// (row stride, column stride) of op(A) [m, k] and op(B) [k, n].
    fn strides(&self) -> (isize, isize, isize, isize) {
        let (m, n, k) = (self.m as isize, self.n as isize, self.k as isize);
        let (rsa, csa) = if self.trans_a { (1, m) } else { (k, 1) };
        let (rsb, csb) = if self.trans_b { (1, k) } else { (n, 1) };
        (rsa, csa, rsb, csb)
    }

    /// Rows `r0..r0+rows` of C into `c` (exactly rows x n) with `threads` threads of
    /// the rayon pool (1: this thread only).
    fn run_rows(&self, r0: usize, rows: usize, c: &mut [f32], threads: usize) {
        debug_assert!(c.len() == rows * self.n && r0 + rows <= self.m);
        let (rsa, csa, rsb, csb) = self.strides();
        let a_start = if self.trans_a { r0 } else { r0 * self.k };
        let par = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: the caller checked len(A) >= m*k, len(B) >= k*n; the largest offset
        // touched is (rows-1)*rsa + (k-1)*csa from a_start, inside A for both layouts,
        // likewise for B, and C is exactly rows x n with row stride n. `gemm` computes
        // dst = alpha * dst + beta * lhs @ rhs (its alpha/beta are the other way round
        // from BLAS) and reads dst only when asked.
        unsafe {
            gemm::gemm(
                rows,
                self.n,
                self.k,
                c.as_mut_ptr(),
                1,
                self.n as isize,
                self.beta != 0.0,
                self.a.as_ptr().add(a_start.min(self.a.len())),
                csa,
                rsa,
                self.b.as_ptr(),
                csb,
                rsb,
                self.beta,
                self.alpha,
                false,
                false,
                false,
                par,
            );
        }
    }

    /// The whole of C (m x n) across the rayon pool (the `gemm` crate splits the work
    /// itself), then `epilogue(row0, rows_of_c)` on row blocks in parallel.
    fn run_parallel(&self, c: &mut [f32], epilogue: impl Fn(usize, &mut [f32]) + Sync) {
        let (m, n, k) = (self.m, self.n, self.k);
        let threads = rayon::current_num_threads();
        if threads <= 1 || m.saturating_mul(n).saturating_mul(k) < PAR_MIN_MACS || m * n == 0 {
            self.run_rows(0, m, c, 1);
            epilogue(0, c);
        } else {
            self.run_rows(0, m, c, threads);
            let rows = m.div_ceil(threads * 4).max(1);
            c.par_chunks_mut(rows * n)
                .enumerate()
                .for_each(|(i, blk)| epilogue(i * rows, blk));
        }
    }
}

/// Bias + activation over finished rows of C (`c`, rows x n). With `out`, `c` keeps the
/// pre-activation and `out` gets act(c); otherwise `c` is overwritten with act(c).
fn epilogue(c: &mut [f32], out: Option<&mut [f32]>, n: usize, bias: Option<&[f32]>, act: Act) {
    if let Some(bias) = bias {
        for row in c.chunks_exact_mut(n) {
            row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
        }
    }
    match out {
        Some(out) => act_into(out, c, act),
        None if act != Act::None => act_inplace(c, act),
        None => {}
    }
}

pub fn matmul(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    act: Act,
    spec: &MatmulSpec,
    keep_preact: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (_, _, total) = check_matmul(a, b, bias, spec)?;
    let s = *spec;
    let av = f32s(a, "matmul")?;
    let bv = f32s(b, "matmul")?;
    let biasv = bias.map(|t| f32s(t, "matmul")).transpose()?;
    let bias_s = biasv.as_deref();
    let keep = keep_preact && act != Act::None;
    let mut out = vec![0.0f32; total];
    // With a kept pre-activation the GEMM writes into `pre` and the epilogue fills `out`.
    let mut pre = if keep { vec![0.0f32; total] } else { Vec::new() };
    let (m, n, k) = (s.m, s.n, s.k);
    fn gemm<'a>(a: &'a [f32], b: &'a [f32], m: usize, s: &MatmulSpec) -> Gemm<'a> {
        Gemm {
            m,
            n: s.n,
            k: s.k,
            alpha: 1.0,
            beta: 0.0,
            a,
            trans_a: s.trans_a,
            b,
            trans_b: s.trans_b,
        }
    }

    if total > 0 {
        if s.batch == 1 || (s.b_shared && !s.trans_a) {
            // A shared B with untransposed A is one tall GEMM over all batch rows.
            let g = gemm(&av, &bv, s.batch * m, &s);
            if keep {
                let out_base = SendPtr(out.as_mut_ptr());
                g.run_parallel(&mut pre, |r0, blk| {
                    let base = out_base;
                    // SAFETY: row blocks are disjoint, so each thread's view of `out`
                    // (rows r0.., same length as its block of `pre`) is exclusive.
                    let o = unsafe { std::slice::from_raw_parts_mut(base.0.add(r0 * n), blk.len()) };
                    epilogue(blk, Some(o), n, bias_s, act);
                });
            } else {
                g.run_parallel(&mut out, |_, blk| epilogue(blk, None, n, bias_s, act));
            }
        } else {
            let (a_sz, b_sz, c_sz) = (m * k, if s.b_shared { 0 } else { k * n }, m * n);
            let one = |i: usize, c: &mut [f32], o: Option<&mut [f32]>, parallel: bool| {
                let g = gemm(&av[i * a_sz..(i + 1) * a_sz], &bv[i * b_sz..i * b_sz + k * n], m, &s);
                if parallel {
                    g.run_parallel(c, |_, _| {});
                } else {
                    g.run_rows(0, m, c, 1);
                }
                epilogue(c, o, n, bias_s, act);
            };
            let threads = rayon::current_num_threads();
            // Small per-batch GEMMs (attention heads) go one per thread; a few large ones
            // that would leave cores idle are split internally instead.
            let per_batch = s.batch >= threads
                && (s.batch % threads == 0
                    || s.batch >= 4 * threads
                    || m.saturating_mul(n).saturating_mul(k) < 1 << 21);
            if keep {
                if per_batch {
                    pre.par_chunks_mut(c_sz)
                        .zip(out.par_chunks_mut(c_sz))
                        .enumerate()
                        .for_each(|(i, (c, o))| one(i, c, Some(o), false));
                } else {
                    pre.chunks_mut(c_sz)
                        .zip(out.chunks_mut(c_sz))
                        .enumerate()
                        .for_each(|(i, (c, o))| one(i, c, Some(o), true));
                }
            } else if per_batch {
                out.par_chunks_mut(c_sz)
                    .enumerate()
                    .for_each(|(i, c)| one(i, c, None, false));
            } else {
                out.chunks_mut(c_sz)
                    .enumerate()
                    .for_each(|(i, c)| one(i, c, None, true));
            }
        }
    }
    let shape = matmul_out_shape(&s);
    let pre_t = keep.then(|| wrap(pre, &shape));
    Ok((wrap(out, &shape), pre_t))
}
