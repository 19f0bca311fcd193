//! Input validation shared by both backends' kernels, so the CPU twin and the GPU launch code refuse exactly the same inputs.
use crate::backend::{AdamWSpec, AttnSpec, MatmulSpec, PatchSpec};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

// ---- shared ----------------------------------------------------------------------

/// Product of `dims`, or a shape error if it overflows.
pub(crate) fn prod(op: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::shape(op, format!("size {dims:?} overflows")))
}

/// Err unless `t` has exactly one element.
pub(crate) fn one_element(op: &str, what: &str, t: &Tensor) -> Result<()> {
    if t.numel() != 1 {
        return Err(Error::shape(
            op,
            format!("{what} must have one element, got {:?}", t.shape()),
        ));
    }
    Ok(())
}

/// Err unless `t` has exactly `n` elements.
pub(crate) fn check_len(op: &str, what: &str, t: &Tensor, n: usize) -> Result<()> {
    if t.numel() != n {
        return Err(Error::shape(
            op,
            format!("{what} must have {n} elements, got {:?}", t.shape()),
        ));
    }
    Ok(())
}

// ---- norms -----------------------------------------------------------------------

/// (rows, cols) of `x` viewed as rows of its last dimension.
pub(crate) fn rows_of_last_dim(op: &str, x: &Tensor) -> Result<(usize, usize)> {
    let cols = match x.shape().last() {
        Some(&c) if c > 0 => c,
        _ => {
            return Err(Error::shape(
                op,
                format!("expected a tensor with a non-empty last dimension, got {x:?}"),
            ))
        }
    };
    Ok((x.numel() / cols, cols))
}

fn same_shape(op: &str, a: &Tensor, b: &Tensor, an: &str, bn: &str) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape(
            op,
            format!("{an} {:?} and {bn} {:?} must have the same shape", a.shape(), b.shape()),
        ));
    }
    Ok(())
}

/// (rows, cols) of the output `y` of a row kernel whose gradient `dy` has y's shape.
pub(crate) fn row_grad_rows(op: &str, dy: &Tensor, y: &Tensor) -> Result<(usize, usize)> {
    let rows_cols = rows_of_last_dim(op, y)?;
    same_shape(op, dy, y, "dy", "y")?;
    Ok(rows_cols)
}

/// (rows, cols) for a layer norm whose last dim is gamma's length.
fn ln_rows(op: &str, x: &Tensor, gamma: &Tensor) -> Result<(usize, usize)> {
    let cols = gamma.numel();
    if cols == 0 || !x.numel().is_multiple_of(cols) {
        return Err(Error::shape(
            op,
            format!(
                "gamma {:?} ({cols} elements) does not divide x {:?} into rows",
                gamma.shape(),
                x.shape()
            ),
        ));
    }
    Ok((x.numel() / cols, cols))
}

/// (rows, cols) of a layer norm forward; beta must match gamma.
pub(crate) fn layernorm_rows(op: &str, x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<(usize, usize)> {
    let (rows, cols) = ln_rows(op, x, gamma)?;
    if beta.numel() != cols {
        return Err(Error::shape(
            op,
            format!(
                "beta {:?} must have as many elements as gamma {:?}",
                beta.shape(),
                gamma.shape()
            ),
        ));
    }
    Ok((rows, cols))
}

/// (rows, cols) of a layer norm backward: dy like x, one mean and rstd per row.
pub(crate) fn layernorm_bwd_rows(
    op: &str,
    dy: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
) -> Result<(usize, usize)> {
    let (rows, cols) = ln_rows(op, x, gamma)?;
    same_shape(op, dy, x, "dy", "x")?;
    if mean.numel() != rows || rstd.numel() != rows {
        return Err(Error::shape(
            op,
            format!(
                "mean {:?} and rstd {:?} must have {rows} elements (rows of x {:?})",
                mean.shape(),
                rstd.shape(),
                x.shape()
            ),
        ));
    }
    Ok((rows, cols))
}

/// (rows, cols) of an L2-norm backward: dy like y, one norm per row.
pub(crate) fn l2norm_bwd_rows(op: &str, dy: &Tensor, y: &Tensor, norm: &Tensor) -> Result<(usize, usize)> {
    let (rows, cols) = row_grad_rows(op, dy, y)?;
    if norm.numel() != rows {
        return Err(Error::shape(
            op,
            format!(
                "norm {:?} must have {rows} elements (rows of y {:?})",
                norm.shape(),
                y.shape()
            ),
        ));
    }
    Ok((rows, cols))
}

// ---- optim -----------------------------------------------------------------------

/// Per-step scalars of PyTorch's AdamW, computed once in f64 like PyTorch's Python
/// floats: the update is `p = p * decay - step_size * m / (sqrt(v) / bc2_sqrt + eps)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamWConsts {
    pub(crate) decay: f32,
    pub(crate) step_size: f32,
    pub(crate) bc2_sqrt: f32,
}

/// Validates the spec and the operands, then computes the per-step scalars.
pub(crate) fn adamw_consts(
    op: &str,
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    spec: &AdamWSpec,
    grad_scale: Option<&Tensor>,
) -> Result<AdamWConsts> {
    if param.dtype() != DType::F32 {
        return Err(Error::shape(
            op,
            format!("the parameter must be stored as f32 (got {param:?}); half-precision weights are frozen"),
        ));
    }
    let n = param.numel();
    if grad.numel() != n || m.numel() != n || v.numel() != n {
        return Err(Error::shape(
            op,
            format!(
                "param {:?}, grad {:?}, m {:?} and v {:?} must have the same size",
                param.shape(),
                grad.shape(),
                m.shape(),
                v.shape()
            ),
        ));
    }
    if let Some(s) = grad_scale {
        one_element(op, "grad_scale", s)?;
    }
    if spec.step == 0 || !(0.0..1.0).contains(&spec.beta1) || !(0.0..1.0).contains(&spec.beta2) {
        return Err(Error::invalid(format!(
            "{op}: need step >= 1 and betas in [0, 1), got {spec:?}"
        )));
    }
    let (lr, step) = (spec.lr as f64, spec.step.min(i32::MAX as u32) as i32);
    let bc1 = 1.0 - (spec.beta1 as f64).powi(step);
    let bc2 = 1.0 - (spec.beta2 as f64).powi(step);
    Ok(AdamWConsts {
        decay: (1.0 - lr * spec.weight_decay as f64) as f32,
        step_size: (lr / bc1) as f32,
        bc2_sqrt: bc2.sqrt() as f32,
    })
}

pub(crate) fn check_clip(op: &str, sumsq: &Tensor, max_norm: f32) -> Result<()> {
    one_element(op, "sumsq", sumsq)?;
    if !(max_norm > 0.0 && max_norm.is_finite()) {
        return Err(Error::invalid(format!(
            "{op}: max_norm must be a positive number, got {max_norm}"
        )));
    }
    Ok(())
}

// ---- matmul ----------------------------------------------------------------------

/// Numel checks of every operand against `MatmulSpec`; returns the element counts
/// (A, B, C) the spec needs.
pub(crate) fn check_matmul(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    s: &MatmulSpec,
) -> Result<(usize, usize, usize)> {
    let op = "matmul";
    // Checked: a spec from user input must not overflow (a panic in debug builds).
    let prod = |xs: [usize; 3]| xs.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x));
    let sizes = (
        prod([s.batch, s.m, s.k]),
        prod([if s.b_shared { 1 } else { s.batch }, s.k, s.n]),
        prod([s.batch, s.m, s.n]),
    );
    let (Some(a_need), Some(b_need), Some(c_need)) = sizes else {
        return Err(Error::shape(op, format!("{s:?} overflows the address space")));
    };
    if a.numel() != a_need {
        return Err(Error::shape(
            op,
            format!(
                "A has shape {:?} ({} elements) but {s:?} needs {a_need}",
                a.shape(),
                a.numel()
            ),
        ));
    }
    if b.numel() != b_need {
        return Err(Error::shape(
            op,
            format!(
                "B has shape {:?} ({} elements) but {s:?} needs {b_need}",
                b.shape(),
                b.numel()
            ),
        ));
    }
    if let Some(bias) = bias {
        if bias.numel() != s.n {
            return Err(Error::shape(
                op,
                format!("bias has shape {:?} but n = {}", bias.shape(), s.n),
            ));
        }
    }
    Ok((a_need, b_need, c_need))
}

/// Output shape: [m, n] for a single GEMM, else [batch, m, n].
pub(crate) fn matmul_out_shape(s: &MatmulSpec) -> Vec<usize> {
    if s.batch == 1 {
        vec![s.m, s.n]
    } else {
        vec![s.batch, s.m, s.n]
    }
}

// ---- elementwise -----------------------------------------------------------------

pub(crate) fn check_act_bwd(dy: &Tensor, x: &Tensor) -> Result<()> {
    if dy.numel() != x.numel() {
        return Err(Error::shape(
            "act_bwd",
            format!("dy {:?} and x {:?} differ in size", dy.shape(), x.shape()),
        ));
    }
    Ok(())
}

/// b must repeat a whole number of times in a.
pub(crate) fn check_repeat(a: &Tensor, b: &Tensor) -> Result<()> {
    let (an, bn) = (a.numel(), b.numel());
    if (bn == 0 && an != 0) || (bn != 0 && an % bn != 0) {
        return Err(Error::shape(
            "binary",
            format!(
                "b {:?} ({bn} elements) does not repeat evenly over a {:?} ({an} elements)",
                b.shape(),
                a.shape()
            ),
        ));
    }
    Ok(())
}

/// The scalar of `mul_scalar_tensor` must hold one value.
pub(crate) fn check_mul_scalar(s: &Tensor) -> Result<()> {
    if s.numel() != 1 {
        return Err(Error::shape(
            "mul_scalar_tensor",
            format!("s must hold one value, got shape {:?}", s.shape()),
        ));
    }
    Ok(())
}

/// x must be [rows, cols] for `sum_rows`.
pub(crate) fn check_sum_rows(x: &Tensor, rows: usize, cols: usize) -> Result<()> {
    let op = "sum_rows";
    if prod(op, &[rows, cols])? != x.numel() {
        return Err(Error::shape(op, format!("x {:?} is not [{rows}, {cols}]", x.shape())));
    }
    Ok(())
}

/// Row width of t viewed as [outer, width].
pub(crate) fn width_of(op: &str, what: &str, t: &Tensor, outer: usize) -> Result<usize> {
    if outer == 0 {
        if t.numel() == 0 {
            return Ok(0);
        }
        return Err(Error::shape(op, format!("{what} {:?} cannot have 0 rows", t.shape())));
    }
    if t.numel() % outer != 0 {
        return Err(Error::shape(
            op,
            format!("{what} {:?} does not split into {outer} rows", t.shape()),
        ));
    }
    Ok(t.numel() / outer)
}

/// Row widths (ia, ib) of a [outer, ia] and b [outer, ib] for `concat`.
pub(crate) fn concat_widths(a: &Tensor, b: &Tensor, outer: usize) -> Result<(usize, usize)> {
    Ok((width_of("concat", "a", a, outer)?, width_of("concat", "b", b, outer)?))
}

/// Row width `inner` of x [outer, inner], which must hold columns start..start+len.
pub(crate) fn slice_cols_inner(x: &Tensor, outer: usize, start: usize, len: usize) -> Result<usize> {
    let op = "slice_cols";
    let inner = width_of(op, "x", x, outer)?;
    if start.checked_add(len).is_none_or(|end| end > inner) {
        return Err(Error::shape(
            op,
            format!(
                "columns {start}..{start}+{len} out of range for x {:?} viewed as [{outer}, {inner}]",
                x.shape()
            ),
        ));
    }
    Ok(inner)
}

/// (rows, width) of a table [rows, ...] viewed as [rows, width].
pub(crate) fn table_dims(table: &Tensor) -> Result<(usize, usize)> {
    match table.shape().first() {
        Some(&rows) if rows > 0 => Ok((rows, table.numel() / rows)),
        _ => Err(Error::shape(
            "gather_rows",
            format!("table {:?} has no rows", table.shape()),
        )),
    }
}

/// Row width of dy [n, width] for `scatter_add_rows` over `n` ids.
pub(crate) fn scatter_width(dy: &Tensor, n: usize) -> Result<usize> {
    let op = "scatter_add_rows";
    let width = if n > 0 {
        dy.numel() / n
    } else {
        dy.shape().last().copied().unwrap_or(0)
    };
    if prod(op, &[n, width])? != dy.numel() {
        return Err(Error::shape(op, format!("dy {:?} is not [{n} ids, width]", dy.shape())));
    }
    Ok(width)
}

/// Checks the spec against `t` (the image, or the patches when `patches`); returns
/// (grid width, patches per image, patch length).
pub(crate) fn check_patch(op: &str, spec: &PatchSpec, t: &Tensor, patches: bool) -> Result<(usize, usize, usize)> {
    let PatchSpec {
        batch,
        channels,
        height,
        width,
        patch,
    } = *spec;
    if patch == 0 || height % patch != 0 || width % patch != 0 {
        return Err(Error::shape(
            op,
            format!("image {height}x{width} is not divisible into {patch}x{patch} patches (center-crop first)"),
        ));
    }
    let want = prod(op, &[batch, channels, height, width])?;
    if t.numel() != want {
        let layout = if patches {
            "patches [batch, num_patches, channels*p*p]"
        } else {
            "image [batch, channels, h, w]"
        };
        return Err(Error::shape(
            op,
            format!("{layout} for {spec:?} needs {want} elements, got {:?}", t.shape()),
        ));
    }
    Ok((width / patch, spec.num_patches(), spec.patch_len()))
}

// ---- contrastive_loss ------------------------------------------------------------

/// (b, m, d) of img [b, d] and txt [m, d >= 1], m >= b >= 1, plus a 1-element log scale.
pub(crate) fn contrastive_dims(
    op: &str,
    img: &Tensor,
    txt: &Tensor,
    log_scale: &Tensor,
) -> Result<(usize, usize, usize)> {
    let (i, t) = (img.shape(), txt.shape());
    if i.len() != 2 || t.len() != 2 || i[1] != t[1] || i[0] == 0 || i[1] == 0 || t[0] < i[0] {
        return Err(Error::shape(
            op,
            format!("need img [b, d] and txt [m >= b, d] with b, d >= 1, got img {i:?} and txt {t:?}"),
        ));
    }
    one_element(op, "log_scale", log_scale)?;
    Ok((i[0], t[0], i[1]))
}

// ---- attention -------------------------------------------------------------------

/// Err unless every named tensor has exactly `want` elements.
pub(crate) fn attn_numel(op: &str, spec: &AttnSpec, want: usize, ts: &[(&str, &Tensor)]) -> Result<()> {
    for &(name, t) in ts {
        if t.numel() != want {
            return Err(Error::shape(
                op,
                format!(
                    "{name} has shape {:?} ({} elements) but spec {spec:?} needs {want}",
                    t.shape(),
                    t.numel()
                ),
            ));
        }
    }
    Ok(())
}
