//! Differentiable ops: each op's forward (a `Var` method that records it) sits next
//! to its backward rule (an arm of `Op::backward`). Saved tensors are only those the
//! backward needs for inputs that actually need a gradient.
use std::rc::Rc;

use super::tape::{Grads, LeafKey, Tape, Var};
use crate::backend::{Act, AttnSpec, BinaryOp, MatmulSpec, PatchSpec};
use crate::error::{Error, Result};
use crate::tensor::ops::linear_spec;
use crate::tensor::Tensor;

type BlockFn = Rc<dyn Fn(&Tape, &[Var]) -> Result<Var>>;

pub(crate) enum Op {
    Leaf(LeafKey),
    /// Inputs: a, b, bias. Saves a only if b needs a grad, b only if a does.
    Matmul {
        a: Option<Tensor>,
        b: Option<Tensor>,
        spec: MatmulSpec,
        act: Act,
        preact: Option<Tensor>,
        has_bias: bool,
    },
    /// Inputs: a, b. `b` repeats over a's leading dims.
    Binary {
        op: BinaryOp,
        a: Option<Tensor>,
        b: Option<Tensor>,
        a_numel: usize,
        b_numel: usize,
    },
    Affine {
        alpha: f32,
    },
    Act {
        x: Tensor,
        act: Act,
    },
    Reshape {
        shape: Vec<usize>,
    },
    /// Inputs: x, gamma, beta.
    LayerNorm {
        x: Tensor,
        gamma: Tensor,
        mean: Tensor,
        rstd: Tensor,
    },
    Softmax {
        y: Tensor,
    },
    L2Norm {
        y: Tensor,
        norm: Tensor,
    },
    /// Inputs: q, k, v.
    Attention {
        q: Tensor,
        k: Tensor,
        v: Tensor,
        out: Tensor,
        lse: Tensor,
        spec: AttnSpec,
    },
    /// Input: table. Saves the ids.
    Gather {
        ids: Tensor,
        rows: usize,
        width: usize,
    },
    /// Inputs: a, b; both [outer, ..] joined on dim 1.
    Concat {
        outer: usize,
        a_inner: usize,
        b_inner: usize,
        a_shape: Vec<usize>,
        b_shape: Vec<usize>,
    },
    Narrow {
        shape: Vec<usize>,
        start: usize,
        len: usize,
    },
    Patchify {
        spec: PatchSpec,
    },
    SumAll {
        shape: Vec<usize>,
    },
    /// Inputs: img, txt, log_scale.
    Contrastive {
        img: Tensor,
        txt: Tensor,
        log_scale: Tensor,
        lse_img: Tensor,
        lse_txt: Tensor,
    },
    /// Input: logits.
    CrossEntropy {
        logits: Tensor,
        labels: Tensor,
        lse: Tensor,
    },
    Checkpoint {
        f: BlockFn,
        inputs: Vec<Tensor>,
    },
}

fn keep(cond: bool, t: &Tensor) -> Option<Tensor> {
    cond.then(|| t.clone())
}

fn saved(t: &Option<Tensor>) -> Result<&Tensor> {
    t.as_ref()
        .ok_or_else(|| Error::invalid("autograd: a tensor needed by backward was not saved"))
}

impl Var {
    fn derive(&self, value: Tensor, op: Op, inputs: &[&Var]) -> Var {
        let ids = inputs.iter().map(|v| v.node).collect();
        let shapes = inputs.iter().map(|v| v.shape().to_vec()).collect();
        let node = self.tape.push(op, ids, shapes);
        Var {
            value,
            node,
            tape: self.tape.clone(),
        }
    }

    fn wants(&self) -> bool {
        self.node.is_some()
    }

    /// General matmul with optional bias and fused activation; see [`MatmulSpec`].
    pub fn matmul_spec(&self, b: &Var, bias: Option<&Var>, act: Act, spec: MatmulSpec) -> Result<Var> {
        let train = self.wants() || b.wants() || bias.is_some_and(|x| x.wants());
        let keep_preact = train && act != Act::None;
        let (y, preact) = self
            .value
            .matmul_spec(&b.value, bias.map(|x| &x.value), act, &spec, keep_preact)?;
        if b.wants() && spec.b_shared && spec.trans_a {
            return Err(Error::invalid(
                "autograd: a shared, trainable B with a transposed A is not supported",
            ));
        }
        let op = Op::Matmul {
            a: keep(b.wants(), &self.value),
            b: keep(self.wants(), &b.value),
            spec,
            act,
            preact,
            has_bias: bias.is_some(),
        };
        let mut ins = vec![self, b];
        if let Some(bias) = bias {
            ins.push(bias);
        }
        Ok(self.derive(y, op, &ins))
    }

    /// `self [.., k] @ w^T (+ bias)`, w [n, k] (PyTorch Linear layout), fused activation.
    pub fn linear(&self, w: &Var, bias: Option<&Var>, act: Act) -> Result<Var> {
        let (spec, shape) = linear_spec(&self.value, &w.value)?;
        self.matmul_spec(w, bias, act, spec)?.reshape(&shape)
    }

    fn binary(&self, op: BinaryOp, other: &Var) -> Result<Var> {
        let y = match op {
            BinaryOp::Add => self.value.add(&other.value)?,
            BinaryOp::Sub => self.value.sub(&other.value)?,
            BinaryOp::Mul => self.value.mul(&other.value)?,
        };
        let is_mul = op == BinaryOp::Mul;
        let rec = Op::Binary {
            op,
            a: keep(is_mul && other.wants(), &self.value),
            b: keep(is_mul && self.wants(), &other.value),
            a_numel: self.value.numel(),
            b_numel: other.value.numel(),
        };
        Ok(self.derive(y, rec, &[self, other]))
    }
    pub fn add(&self, other: &Var) -> Result<Var> {
        self.binary(BinaryOp::Add, other)
    }
    pub fn sub(&self, other: &Var) -> Result<Var> {
        self.binary(BinaryOp::Sub, other)
    }
    pub fn mul(&self, other: &Var) -> Result<Var> {
        self.binary(BinaryOp::Mul, other)
    }
    pub fn affine(&self, alpha: f32, beta: f32) -> Result<Var> {
        let y = self.value.affine(alpha, beta)?;
        Ok(self.derive(y, Op::Affine { alpha }, &[self]))
    }
    pub fn scale(&self, alpha: f32) -> Result<Var> {
        self.affine(alpha, 0.0)
    }
    pub fn act(&self, act: Act) -> Result<Var> {
        let y = self.value.act(act)?;
        Ok(self.derive(
            y,
            Op::Act {
                x: self.value.clone(),
                act,
            },
            &[self],
        ))
    }
    pub fn reshape(&self, shape: &[usize]) -> Result<Var> {
        let y = self.value.reshape(shape)?;
        Ok(self.derive(
            y,
            Op::Reshape {
                shape: self.value.shape().to_vec(),
            },
            &[self],
        ))
    }
    pub fn layernorm(&self, gamma: &Var, beta: &Var, eps: f32) -> Result<Var> {
        let (y, mean, rstd) = self.value.layernorm(&gamma.value, &beta.value, eps)?;
        let op = Op::LayerNorm {
            x: self.value.clone(),
            gamma: gamma.value.clone(),
            mean,
            rstd,
        };
        Ok(self.derive(y, op, &[self, gamma, beta]))
    }
    pub fn softmax(&self) -> Result<Var> {
        let y = self.value.softmax()?;
        Ok(self.derive(y.clone(), Op::Softmax { y }, &[self]))
    }
    pub fn l2norm(&self) -> Result<Var> {
        let (y, norm) = self.value.l2norm()?;
        Ok(self.derive(y.clone(), Op::L2Norm { y, norm }, &[self]))
    }
    /// Fused multi-head attention; q, k, v are [batch, seq, heads*head_dim].
    pub fn attention(q: &Var, k: &Var, v: &Var, heads: usize, causal: bool) -> Result<Var> {
        let (out, lse, spec) = Tensor::attention(&q.value, &k.value, &v.value, heads, causal)?;
        let op = Op::Attention {
            q: q.value.clone(),
            k: k.value.clone(),
            v: v.value.clone(),
            out: out.clone(),
            lse,
            spec,
        };
        Ok(q.derive(out, op, &[q, k, v]))
    }
    /// Rows of this table [rows, width] picked by u32 ids.
    pub fn gather_rows(&self, ids: &Tensor) -> Result<Var> {
        let y = self.value.gather_rows(ids)?;
        let op = Op::Gather {
            ids: ids.clone(),
            rows: self.value.dim(0),
            width: self.value.dim(1),
        };
        Ok(self.derive(y, op, &[self]))
    }
    /// Join along dim 1.
    pub fn concat1(&self, other: &Var) -> Result<Var> {
        let y = self.value.concat1(&other.value)?;
        let outer = self.value.dim(0);
        let op = Op::Concat {
            outer,
            a_inner: self.value.numel() / outer,
            b_inner: other.value.numel() / outer,
            a_shape: self.value.shape().to_vec(),
            b_shape: other.value.shape().to_vec(),
        };
        Ok(self.derive(y, op, &[self, other]))
    }
    pub fn narrow1(&self, start: usize, len: usize) -> Result<Var> {
        let y = self.value.narrow1(start, len)?;
        Ok(self.derive(
            y,
            Op::Narrow {
                shape: self.value.shape().to_vec(),
                start,
                len,
            },
            &[self],
        ))
    }
    pub fn patchify(&self, patch: usize) -> Result<Var> {
        let (y, spec) = self.value.patchify(patch)?;
        Ok(self.derive(y, Op::Patchify { spec }, &[self]))
    }
    pub fn sum_all(&self) -> Result<Var> {
        let y = self.value.sum_all()?;
        Ok(self.derive(
            y,
            Op::SumAll {
                shape: self.value.shape().to_vec(),
            },
            &[self],
        ))
    }
    /// Symmetric InfoNCE over L2-normalised img [b, d] and txt [m >= b, d].
    pub fn contrastive_loss(img: &Var, txt: &Var, log_scale: &Var) -> Result<Var> {
        let (loss, lse_img, lse_txt) = Tensor::contrastive_loss(&img.value, &txt.value, &log_scale.value)?;
        let op = Op::Contrastive {
            img: img.value.clone(),
            txt: txt.value.clone(),
            log_scale: log_scale.value.clone(),
            lse_img,
            lse_txt,
        };
        Ok(img.derive(loss, op, &[img, txt, log_scale]))
    }
    /// Mean cross-entropy of logits [rows, classes] against u32 labels.
    pub fn cross_entropy(&self, labels: &Tensor) -> Result<Var> {
        let (loss, lse) = Tensor::cross_entropy(&self.value, labels)?;
        let op = Op::CrossEntropy {
            logits: self.value.clone(),
            labels: labels.clone(),
            lse,
        };
        Ok(self.derive(loss, op, &[self]))
    }
}

/// Gradient of `y = act(matmul)`: dz from dy (through the activation).
fn through_act(dy: &Tensor, act: Act, preact: &Option<Tensor>) -> Result<Tensor> {
    match act {
        Act::None => Ok(dy.clone()),
        _ => dy.device().backend().act_bwd(dy, saved(preact)?, act),
    }
}

fn mm(a: &Tensor, b: &Tensor, spec: MatmulSpec) -> Result<Tensor> {
    Ok(a.matmul_spec(b, None, Act::None, &spec, false)?.0)
}

impl Op {
    /// Gradients for each input (None where not needed), given dL/d(output).
    pub(crate) fn backward(&self, dy: &Tensor, needs: &[bool], grads: &mut Grads) -> Result<Vec<Option<Tensor>>> {
        let be = dy.device().backend();
        Ok(match self {
            Op::Leaf(_) => vec![],
            Op::Matmul {
                a,
                b,
                spec,
                act,
                preact,
                has_bias,
            } => {
                let dz = through_act(dy, *act, preact)?;
                let s = *spec;
                let da = if needs[0] {
                    let b = saved(b)?;
                    let d = if !s.trans_a {
                        // dA [m,k] = dC [m,n] @ op(B)^T
                        let sp = MatmulSpec {
                            m: s.m,
                            n: s.k,
                            k: s.n,
                            trans_a: false,
                            trans_b: !s.trans_b,
                            ..s
                        };
                        mm(&dz, b, sp)?
                    } else {
                        // dA [k,m] = op(B) [k,n] @ dC^T
                        let sp = MatmulSpec {
                            m: s.k,
                            n: s.m,
                            k: s.n,
                            trans_a: s.trans_b,
                            trans_b: true,
                            b_shared: false,
                            ..s
                        };
                        if s.b_shared {
                            return Err(Error::invalid("autograd: transposed A with shared B is not supported"));
                        }
                        mm(b, &dz, sp)?
                    };
                    Some(d)
                } else {
                    None
                };
                let db = if needs[1] {
                    let a = saved(a)?;
                    // A shared B's gradient sums over the batch: fold batch into rows.
                    let (batch, m) = if s.b_shared { (1, s.batch * s.m) } else { (s.batch, s.m) };
                    let d = if !s.trans_b {
                        // dB [k,n] = op(A)^T @ dC
                        let sp = MatmulSpec {
                            batch,
                            m: s.k,
                            n: s.n,
                            k: m,
                            trans_a: !s.trans_a,
                            trans_b: false,
                            b_shared: false,
                        };
                        mm(a, &dz, sp)?
                    } else {
                        // dB [n,k] = dC^T @ op(A)
                        let sp = MatmulSpec {
                            batch,
                            m: s.n,
                            n: s.k,
                            k: m,
                            trans_a: true,
                            trans_b: s.trans_a,
                            b_shared: false,
                        };
                        mm(&dz, a, sp)?
                    };
                    Some(d)
                } else {
                    None
                };
                let mut out = vec![da, db];
                if *has_bias {
                    out.push(if needs[2] {
                        Some(be.sum_rows(&dz, s.batch * s.m, s.n)?)
                    } else {
                        None
                    });
                }
                out
            }
            Op::Binary {
                op,
                a,
                b,
                a_numel,
                b_numel,
            } => {
                let rows = a_numel / b_numel;
                let (da, db) = match op {
                    BinaryOp::Add => (dy.clone(), dy.clone()),
                    BinaryOp::Sub => (dy.clone(), dy.scale(-1.0)?),
                    BinaryOp::Mul => {
                        let da = if needs[0] { dy.mul(saved(b)?)? } else { dy.clone() };
                        let db = if needs[1] { dy.mul(saved(a)?)? } else { dy.clone() };
                        (da, db)
                    }
                };
                let db = if needs[1] && rows > 1 {
                    be.sum_rows(&db, rows, *b_numel)?
                } else {
                    db
                };
                vec![needs[0].then_some(da), needs[1].then_some(db)]
            }
            Op::Affine { alpha } => vec![Some(dy.scale(*alpha)?)],
            Op::Act { x, act } => vec![Some(be.act_bwd(dy, x, *act)?)],
            Op::Reshape { shape } => vec![Some(dy.reshape(shape)?)],
            Op::LayerNorm { x, gamma, mean, rstd } => {
                let (dx, pg) = be.layernorm_bwd(dy, x, gamma, mean, rstd, needs[1] || needs[2])?;
                let (dg, db) = match pg {
                    Some((g, b)) => (needs[1].then_some(g), needs[2].then_some(b)),
                    None => (None, None),
                };
                vec![needs[0].then_some(dx), dg, db]
            }
            Op::Softmax { y } => vec![Some(be.softmax_bwd(dy, y)?)],
            Op::L2Norm { y, norm } => vec![Some(be.l2norm_bwd(dy, y, norm)?)],
            Op::Attention {
                q,
                k,
                v,
                out,
                lse,
                spec,
            } => {
                let (dq, dk, dv) = be.attention_bwd(dy, q, k, v, out, lse, spec)?;
                vec![needs[0].then_some(dq), needs[1].then_some(dk), needs[2].then_some(dv)]
            }
            Op::Gather { ids, rows, width } => {
                let dy2 = dy.reshape(&[ids.numel(), *width])?;
                vec![Some(be.scatter_add_rows(&dy2, ids, *rows)?)]
            }
            Op::Concat {
                outer,
                a_inner,
                b_inner,
                a_shape,
                b_shape,
            } => {
                let da = be.slice_cols(dy, *outer, 0, *a_inner)?.reshape(a_shape)?;
                let db = be.slice_cols(dy, *outer, *a_inner, *b_inner)?.reshape(b_shape)?;
                vec![needs[0].then_some(da), needs[1].then_some(db)]
            }
            Op::Narrow { shape, start, len } => {
                let outer = shape[0];
                let inner: usize = shape[2..].iter().product();
                let (before, after) = (start * inner, (shape[1] - start - len) * inner);
                let mut d = dy.reshape(&[outer, len * inner])?;
                if before > 0 {
                    d = be.concat(&Tensor::zeros(&[outer, before], dy.device())?, &d, outer)?;
                }
                if after > 0 {
                    d = be.concat(&d, &Tensor::zeros(&[outer, after], dy.device())?, outer)?;
                }
                vec![Some(d.reshape(shape)?)]
            }
            Op::Patchify { spec } => vec![Some(be.unpatchify(dy, spec)?)],
            Op::SumAll { shape } => vec![Some(Tensor::full(shape, 1.0, dy.device())?.mul_scalar_tensor(dy)?)],
            Op::Contrastive {
                img,
                txt,
                log_scale,
                lse_img,
                lse_txt,
            } => {
                let (di, dt, ds) = be.contrastive_loss_bwd(img, txt, log_scale, lse_img, lse_txt, dy)?;
                vec![needs[0].then_some(di), needs[1].then_some(dt), needs[2].then_some(ds)]
            }
            Op::CrossEntropy { logits, labels, lse } => vec![Some(be.cross_entropy_bwd(logits, labels, lse, dy)?)],
            Op::Checkpoint { f, inputs } => {
                let sub = Tape::new();
                let xs: Vec<Var> = inputs
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        if needs[k] {
                            sub.leaf(t.clone(), LeafKey::Input(k))
                        } else {
                            sub.constant(t.clone())
                        }
                    })
                    .collect();
                let y = f(&sub, &xs)?;
                let g = sub.backward_from(&y, dy.clone())?;
                let mut out: Vec<Option<Tensor>> = vec![None; inputs.len()];
                for (key, t) in g.map {
                    match key {
                        LeafKey::Input(k) => out[k] = Some(t),
                        LeafKey::Param(_) => grads.accumulate(key, t)?,
                    }
                }
                out
            }
        })
    }
}
