//! Tensor ops: the shape and device checks both backends share, then one backend
//! call. No autograd here (see `autograd`), so these are also the inference path.
use crate::backend::{Act, AdamWSpec, AttnSpec, BinaryOp, MatmulSpec, PatchSpec};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// Every input on the same device, or an error naming the op and both devices.
pub(crate) fn same_device(op: &str, ts: &[&Tensor]) -> Result<()> {
    if let Some((first, rest)) = ts.split_first() {
        for t in rest {
            if !first.device().same(t.device()) {
                return Err(Error::device(format!(
                    "{op}: tensors on different devices: {first:?} on {} and {t:?} on {}",
                    first.device().name(),
                    t.device().name()
                )));
            }
        }
    }
    Ok(())
}

fn float(op: &str, t: &Tensor) -> Result<()> {
    if t.dtype() == DType::U32 {
        return Err(Error::shape(op, format!("expected a float tensor, got {t:?}")));
    }
    Ok(())
}

fn f32_only(op: &str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(Error::shape(op, format!("expected an f32 tensor, got {t:?}")));
    }
    Ok(())
}

fn last_dim(op: &str, t: &Tensor) -> Result<usize> {
    t.shape()
        .last()
        .copied()
        .ok_or_else(|| Error::shape(op, "expected at least one dimension, got a scalar shape []"))
}

impl Tensor {
    /// General (batched, transposed, fused-epilogue) matmul; see [`MatmulSpec`].
    pub fn matmul_spec(
        &self,
        b: &Tensor,
        bias: Option<&Tensor>,
        act: Act,
        spec: &MatmulSpec,
        keep_preact: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let op = "matmul";
        let mut devs = vec![self, b];
        if let Some(bias) = bias {
            devs.push(bias);
        }
        same_device(op, &devs)?;
        f32_only(op, self)?;
        float(op, b)?;
        let a_len = spec.batch * spec.m * spec.k;
        let b_len = if spec.b_shared { 1 } else { spec.batch } * spec.k * spec.n;
        if self.numel() != a_len || b.numel() != b_len {
            return Err(Error::shape(
                op,
                format!(
                    "{spec:?} needs A with {a_len} and B with {b_len} elements, got A {:?} and B {:?}",
                    self.shape(),
                    b.shape()
                ),
            ));
        }
        if let Some(bias) = bias {
            if bias.numel() != spec.n {
                return Err(Error::shape(
                    op,
                    format!("bias {:?} does not match n = {}", bias.shape(), spec.n),
                ));
            }
        }
        self.device().backend().matmul(self, b, bias, act, spec, keep_preact)
    }

    /// `self [.., k] @ w^T + bias` with w in PyTorch Linear layout [n, k].
    pub fn linear(&self, w: &Tensor, bias: Option<&Tensor>, act: Act) -> Result<Tensor> {
        let (spec, out_shape) = linear_spec(self, w)?;
        let (y, _) = self.matmul_spec(w, bias, act, &spec, false)?;
        y.reshape(&out_shape)
    }

    /// Plain 2-D `self [m, k] @ b [k, n]`.
    pub fn matmul(&self, b: &Tensor) -> Result<Tensor> {
        if self.dims() != 2 || b.dims() != 2 || self.dim(1) != b.dim(0) {
            return Err(Error::shape(
                "matmul",
                format!("cannot multiply {:?} by {:?}", self.shape(), b.shape()),
            ));
        }
        let spec = MatmulSpec {
            batch: 1,
            m: self.dim(0),
            n: b.dim(1),
            k: self.dim(1),
            trans_a: false,
            trans_b: false,
            b_shared: false,
        };
        Ok(self.matmul_spec(b, None, Act::None, &spec, false)?.0)
    }

    pub fn act(&self, act: Act) -> Result<Tensor> {
        f32_only("activation", self)?;
        self.device().backend().act(self, act)
    }

    fn binary(&self, op: BinaryOp, other: &Tensor) -> Result<Tensor> {
        let name = match op {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
        };
        same_device(name, &[self, other])?;
        f32_only(name, self)?;
        f32_only(name, other)?;
        if other.numel() == 0 || self.numel() % other.numel() != 0 || !broadcasts(self.shape(), other.shape()) {
            return Err(Error::shape(
                name,
                format!("cannot broadcast {:?} onto {:?}", other.shape(), self.shape()),
            ));
        }
        self.device().backend().binary(op, self, other)
    }
    /// `self + other`, other broadcast over self's leading dims (trailing shapes match).
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, other)
    }
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, other)
    }
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, other)
    }
    /// `alpha * self + beta`.
    pub fn affine(&self, alpha: f32, beta: f32) -> Result<Tensor> {
        f32_only("affine", self)?;
        self.device().backend().affine(self, alpha, beta)
    }
    /// min(self, hi) element-wise; NaN stays NaN.
    pub fn clamp_max(&self, hi: f32) -> Result<Tensor> {
        f32_only("clamp_max", self)?;
        self.device().backend().clamp_max(self, hi)
    }
    /// `*self = self.clamp_max(hi)`, the same bits; on a GPU written over its own buffer
    /// when nothing else holds it (a parameter clamped after each update keeps its buffer,
    /// so the bind groups that read it repeat instead of growing with new buffers).
    pub fn clamp_max_assign(&mut self, hi: f32) -> Result<()> {
        f32_only("clamp_max", self)?;
        if let crate::Device::Gpu(g) = self.device() {
            if self.dtype() == DType::F32 && self.storage_is_unique() {
                return g.clamp_max_in_place(self, hi);
            }
        }
        *self = self.clamp_max(hi)?;
        Ok(())
    }
    pub fn scale(&self, alpha: f32) -> Result<Tensor> {
        self.affine(alpha, 0.0)
    }
    /// Multiply by the single value of a device tensor (no readback).
    pub fn mul_scalar_tensor(&self, s: &Tensor) -> Result<Tensor> {
        same_device("mul_scalar_tensor", &[self, s])?;
        if s.numel() != 1 {
            return Err(Error::shape(
                "mul_scalar_tensor",
                format!("scale must have one element, got {:?}", s.shape()),
            ));
        }
        self.device().backend().mul_scalar_tensor(self, s)
    }
    /// Column sums over all leading dims: [.., cols] -> [cols].
    pub fn sum_rows(&self, cols: usize) -> Result<Tensor> {
        if cols == 0 || self.numel() % cols != 0 {
            return Err(Error::shape(
                "sum_rows",
                format!("{:?} is not a multiple of {cols} columns", self.shape()),
            ));
        }
        self.device().backend().sum_rows(self, self.numel() / cols, cols)
    }
    pub fn sum_all(&self) -> Result<Tensor> {
        float("sum_all", self)?;
        self.device().backend().sum_all(self)
    }
    pub fn sumsq(&self) -> Result<Tensor> {
        float("sumsq", self)?;
        self.device().backend().sumsq(self)
    }

    /// Concatenate along dim 1 of [outer, ia, ..] and [outer, ib, ..] (same trailing dims).
    pub fn concat1(&self, other: &Tensor) -> Result<Tensor> {
        same_device("concat", &[self, other])?;
        let (a, b) = (self.shape(), other.shape());
        if a.len() < 2 || a.len() != b.len() || a[0] != b[0] || a[2..] != b[2..] {
            return Err(Error::shape(
                "concat",
                format!("cannot concatenate {a:?} and {b:?} along dim 1"),
            ));
        }
        let outer = a[0];
        let y = self.device().backend().concat(self, other, outer)?;
        let mut shape = a.to_vec();
        shape[1] += b[1];
        y.reshape(&shape)
    }

    /// Rows `start..start+len` of dim 1 of [outer, n, ..].
    pub fn narrow1(&self, start: usize, len: usize) -> Result<Tensor> {
        let s = self.shape();
        if s.len() < 2 || start + len > s[1] {
            return Err(Error::shape(
                "narrow",
                format!("rows {start}..{} out of range for {s:?}", start + len),
            ));
        }
        let inner: usize = s[2..].iter().product();
        let y = self
            .device()
            .backend()
            .slice_cols(self, s[0], start * inner, len * inner)?;
        let mut shape = s.to_vec();
        shape[1] = len;
        y.reshape(&shape)
    }

    /// Rows of `self` [rows, width] picked by u32 `ids` -> [ids.shape.., width].
    pub fn gather_rows(&self, ids: &Tensor) -> Result<Tensor> {
        same_device("gather_rows", &[self, ids])?;
        if ids.dtype() != DType::U32 || self.dims() != 2 {
            return Err(Error::shape(
                "gather_rows",
                format!("need table [rows, width] and u32 ids, got {self:?} and {ids:?}"),
            ));
        }
        let mut shape = ids.shape().to_vec();
        shape.push(self.dim(1));
        self.device().backend().gather_rows(self, ids)?.reshape(&shape)
    }

    pub fn patchify(&self, patch: usize) -> Result<(Tensor, PatchSpec)> {
        let s = self.shape();
        if s.len() != 4 || patch == 0 || s[2] % patch != 0 || s[3] % patch != 0 {
            return Err(Error::shape(
                "patchify",
                format!(
                    "images {s:?} must be [batch, channels, h, w] with h and w divisible by the patch size {patch}"
                ),
            ));
        }
        let spec = PatchSpec {
            batch: s[0],
            channels: s[1],
            height: s[2],
            width: s[3],
            patch,
        };
        Ok((self.device().backend().patchify(self, &spec)?, spec))
    }

    pub fn layernorm(&self, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
        same_device("layernorm", &[self, gamma, beta])?;
        let d = last_dim("layernorm", self)?;
        if gamma.numel() != d || beta.numel() != d {
            return Err(Error::shape(
                "layernorm",
                format!(
                    "x {:?} needs gamma/beta of {d}, got {:?} and {:?}",
                    self.shape(),
                    gamma.shape(),
                    beta.shape()
                ),
            ));
        }
        self.device().backend().layernorm(self, gamma, beta, eps)
    }
    pub fn softmax(&self) -> Result<Tensor> {
        last_dim("softmax", self)?;
        self.device().backend().softmax(self)
    }
    /// Row-wise L2 normalisation over the last dim: (y, norms).
    pub fn l2norm(&self) -> Result<(Tensor, Tensor)> {
        last_dim("l2norm", self)?;
        self.device().backend().l2norm(self)
    }

    /// Fused multi-head attention on [batch, seq, heads*head_dim] q/k/v.
    pub fn attention(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
        causal: bool,
    ) -> Result<(Tensor, Tensor, AttnSpec)> {
        same_device("attention", &[q, k, v])?;
        let s = q.shape();
        if s.len() != 3 || k.shape() != s || v.shape() != s || heads == 0 || s[2] % heads != 0 {
            return Err(Error::shape(
                "attention",
                format!(
                    "q {:?}, k {:?}, v {:?} must all be [batch, seq, heads*head_dim] with {heads} heads",
                    s,
                    k.shape(),
                    v.shape()
                ),
            ));
        }
        let head_dim = s[2] / heads;
        let spec = AttnSpec {
            batch: s[0],
            seq: s[1],
            heads,
            head_dim,
            causal,
            scale: (head_dim as f32).powf(-0.5),
        };
        let (o, lse) = q.device().backend().attention(q, k, v, &spec)?;
        Ok((o, lse, spec))
    }

    /// Symmetric InfoNCE on L2-normalised img [b, d] and txt [m >= b, d].
    pub fn contrastive_loss(img: &Tensor, txt: &Tensor, log_scale: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        same_device("contrastive_loss", &[img, txt, log_scale])?;
        let (i, t) = (img.shape(), txt.shape());
        if i.len() != 2 || t.len() != 2 || i[1] != t[1] || t[0] < i[0] || i[0] == 0 || log_scale.numel() != 1 {
            return Err(Error::shape(
                "contrastive_loss",
                format!(
                    "need img [b, d], txt [m >= b, d] and a 1-element log scale, got {i:?}, {t:?}, {:?}",
                    log_scale.shape()
                ),
            ));
        }
        img.device().backend().contrastive_loss(img, txt, log_scale)
    }

    pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
        same_device("cross_entropy", &[logits, labels])?;
        if logits.dims() != 2 || labels.dtype() != DType::U32 || labels.numel() != logits.dim(0) {
            return Err(Error::shape(
                "cross_entropy",
                format!("need logits [rows, classes] and u32 labels [rows], got {logits:?} and {labels:?}"),
            ));
        }
        logits.device().backend().cross_entropy(logits, labels)
    }

    /// One AdamW update of `self` (the parameter); returns (param, m, v).
    pub fn adamw(
        &self,
        grad: &Tensor,
        m: &Tensor,
        v: &Tensor,
        spec: &AdamWSpec,
        grad_scale: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        same_device("adamw", &[self, grad, m, v])?;
        if grad.numel() != self.numel() || m.numel() != self.numel() || v.numel() != self.numel() {
            return Err(Error::shape(
                "adamw",
                format!(
                    "param {:?}, grad {:?}, m {:?}, v {:?} differ",
                    self.shape(),
                    grad.shape(),
                    m.shape(),
                    v.shape()
                ),
            ));
        }
        self.device().backend().adamw(self, grad, m, v, spec, grad_scale)
    }

    /// True when every value is finite (reads back).
    pub fn all_finite(&self) -> Result<bool> {
        Ok(self.to_vec()?.iter().all(|x| x.is_finite()))
    }
}

/// `b` broadcasts onto `a` when b's shape is a suffix of a's (after dropping b's
/// leading 1s), or when b has a single element.
fn broadcasts(a: &[usize], b: &[usize]) -> bool {
    let b: Vec<usize> = b.iter().copied().skip_while(|&d| d == 1).collect();
    b.is_empty() || (b.len() <= a.len() && a[a.len() - b.len()..] == b[..])
}

/// MatmulSpec for `x [.., k] @ w^T` with w [n, k]; also the output shape.
pub fn linear_spec(x: &Tensor, w: &Tensor) -> Result<(MatmulSpec, Vec<usize>)> {
    let k = last_dim("linear", x)?;
    if w.dims() != 2 || w.dim(1) != k {
        return Err(Error::shape(
            "linear",
            format!(
                "input {:?} does not match weight {:?} (expected [out, {k}])",
                x.shape(),
                w.shape()
            ),
        ));
    }
    let n = w.dim(0);
    let m = x.numel() / k;
    let mut out = x.shape().to_vec();
    *out.last_mut().unwrap() = n;
    Ok((
        MatmulSpec {
            batch: 1,
            m,
            n,
            k,
            trans_a: false,
            trans_b: true,
            b_shared: false,
        },
        out,
    ))
}
