//! `cliptune check`: run every kernel family on a device against the CPU oracle, then
//! train a small two-tower contrastive transformer. Users run it to trust a new GPU
//! driver; the end-to-end test trains the same toy model.
use std::time::Instant;

use crate::autograd::{Param, Tape, Var};
use crate::backend::{Act, AdamWSpec, Device, MatmulSpec};
use crate::error::{Error, Result};
use crate::nn::{Block, Linear, Module};
use crate::tensor::{Rng, Tensor};
use crate::train::AdamW;

/// One kernel comparison: max |device - cpu| relative to the output's scale.
pub struct KernelCheck {
    pub kernel: &'static str,
    pub rel_err: f32,
    pub tol: f32,
}

fn rel_err(a: &Tensor, b: &Tensor) -> Result<f32> {
    let (a, b) = (a.to_vec()?, b.to_vec()?);
    let scale = a.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let diff = a.iter().zip(&b).fold(0.0f32, |m, (x, y)| {
        if x.is_finite() && y.is_finite() {
            m.max((x - y).abs())
        } else {
            f32::INFINITY
        }
    });
    Ok(diff / scale)
}

/// Compare each kernel on `dev` with the CPU backend on random inputs.
pub fn check_kernels(dev: &Device) -> Result<Vec<KernelCheck>> {
    let cpu = Device::Cpu;
    let mut out = vec![];
    let mut seed = 0u64;
    let mut both = |shape: &[usize]| -> Result<(Tensor, Tensor)> {
        seed += 1;
        let c = Tensor::randn(shape, 1.0, seed, &cpu)?;
        Ok((c.clone(), c.to_device(dev)?))
    };
    let mut push = |kernel, a: &Tensor, b: &Tensor, tol| -> Result<()> {
        out.push(KernelCheck {
            kernel,
            rel_err: rel_err(a, b)?,
            tol,
        });
        Ok(())
    };
    // Matmul with bias + quick_gelu epilogue, Linear layout, odd sizes.
    let (a, ga) = both(&[37, 70])?;
    let (w, gw) = both(&[45, 70])?;
    let (b, gb) = both(&[45])?;
    let spec = MatmulSpec {
        batch: 1,
        m: 37,
        n: 45,
        k: 70,
        trans_a: false,
        trans_b: true,
        b_shared: false,
    };
    let y = a.matmul_spec(&w, Some(&b), Act::QuickGelu, &spec, false)?.0;
    let gy = ga.matmul_spec(&gw, Some(&gb), Act::QuickGelu, &spec, false)?.0;
    push("matmul+bias+quick_gelu", &y, &gy, 1e-4)?;
    let gy16 = ga
        .matmul_spec(&gw.cast(crate::DType::F16)?, Some(&gb), Act::Gelu, &spec, false)?
        .0;
    let y16 = a
        .matmul_spec(&w.cast(crate::DType::F16)?, Some(&b), Act::Gelu, &spec, false)?
        .0;
    push("matmul f16 weight+gelu", &y16, &gy16, 1e-4)?;
    // Layer norm forward and backward.
    let (x, gx) = both(&[33, 77])?;
    let (g, gg) = both(&[77])?;
    let (bt, gbt) = both(&[77])?;
    let (yl, m, r) = x.layernorm(&g, &bt, 1e-5)?;
    let (gyl, gm, gr) = gx.layernorm(&gg, &gbt, 1e-5)?;
    push("layernorm", &yl, &gyl, 1e-4)?;
    let (dy, gdy) = both(&[33, 77])?;
    let (dx, _) = cpu.backend().layernorm_bwd(&dy, &x, &g, &m, &r, false)?;
    let (gdx, _) = dev.backend().layernorm_bwd(&gdy, &gx, &gg, &gm, &gr, false)?;
    push("layernorm backward", &dx, &gdx, 1e-4)?;
    push("softmax", &x.softmax()?, &gx.softmax()?, 1e-5)?;
    push("l2norm", &x.l2norm()?.0, &gx.l2norm()?.0, 1e-5)?;
    // Causal attention forward and backward at CLIP's text length.
    let (q, gq) = both(&[2, 77, 64])?;
    let (k, gk) = both(&[2, 77, 64])?;
    let (v, gv) = both(&[2, 77, 64])?;
    let (o, lse, spec) = Tensor::attention(&q, &k, &v, 2, true)?;
    let (go, glse, _) = Tensor::attention(&gq, &gk, &gv, 2, true)?;
    push("attention causal", &o, &go, 1e-4)?;
    let (d, gd) = both(&[2, 77, 64])?;
    let (dq, _, dv) = cpu.backend().attention_bwd(&d, &q, &k, &v, &o, &lse, &spec)?;
    let (gdq, _, gdv) = dev.backend().attention_bwd(&gd, &gq, &gk, &gv, &go, &glse, &spec)?;
    push("attention backward dq", &dq, &gdq, 1e-4)?;
    push("attention backward dv", &dv, &gdv, 1e-4)?;
    // Contrastive loss forward and backward.
    let (i, gi) = both(&[24, 32])?;
    let (t, gt) = both(&[24, 32])?;
    let (i, gi, t, gt) = (i.l2norm()?.0, gi.l2norm()?.0, t.l2norm()?.0, gt.l2norm()?.0);
    let s = Tensor::scalar(2.6592, &cpu)?;
    let gs = s.to_device(dev)?;
    let (l, li, lt) = Tensor::contrastive_loss(&i, &t, &s)?;
    let (gl, gli, glt) = Tensor::contrastive_loss(&gi, &gt, &gs)?;
    push("contrastive loss", &l, &gl, 1e-4)?;
    let one = Tensor::scalar(1.0, &cpu)?;
    let (di, _, _) = cpu.backend().contrastive_loss_bwd(&i, &t, &s, &li, &lt, &one)?;
    let (gdi, _, _) = dev
        .backend()
        .contrastive_loss_bwd(&gi, &gt, &gs, &gli, &glt, &one.to_device(dev)?)?;
    push("contrastive loss backward", &di, &gdi, 1e-4)?;
    // Embedding gather + scatter-add, patch embedding.
    let mut rng = Rng::new(5);
    let ids: Vec<u32> = (0..50).map(|_| rng.below(40) as u32).collect();
    let (table, gtable) = both(&[40, 16])?;
    let idc = Tensor::from_u32(ids.clone(), &[50], &cpu)?;
    let idg = Tensor::from_u32(ids, &[50], dev)?;
    push(
        "embedding gather",
        &table.gather_rows(&idc)?,
        &gtable.gather_rows(&idg)?,
        0.0,
    )?;
    let (dyr, gdyr) = both(&[50, 16])?;
    push(
        "embedding scatter-add",
        &cpu.backend().scatter_add_rows(&dyr, &idc, 40)?,
        &dev.backend().scatter_add_rows(&gdyr, &idg, 40)?,
        1e-6,
    )?;
    let (img, gimg) = both(&[2, 3, 12, 12])?;
    push("patchify", &img.patchify(4)?.0, &gimg.patchify(4)?.0, 0.0)?;
    // One AdamW step.
    let (p, gp) = both(&[1000])?;
    let (gr, ggr) = both(&[1000])?;
    let z = Tensor::zeros(&[1000], &cpu)?;
    let gz = Tensor::zeros(&[1000], dev)?;
    let spec = AdamWSpec {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        step: 1,
    };
    push(
        "adamw",
        &p.adamw(&gr, &z, &z, &spec, None)?.0,
        &gp.adamw(&ggr, &gz, &gz, &spec, None)?.0,
        1e-6,
    )?;
    Ok(out)
}

/// A two-tower transformer (2 pre-LN blocks per tower) with a contrastive loss: the
/// smallest model that exercises every kernel and backward rule CLIP training uses.
pub struct ToyTwoTower {
    pub img: Vec<Block>,
    pub img_proj: Linear,
    pub txt: Vec<Block>,
    pub txt_proj: Linear,
    pub log_scale: Param,
    pub width: usize,
}

impl ToyTwoTower {
    pub fn new(width: usize, dev: &Device) -> Result<ToyTwoTower> {
        let tower = |seed: u64, causal: bool| -> Result<Vec<Block>> {
            (0..2)
                .map(|i| {
                    Block::random(
                        &format!("l{i}"),
                        width,
                        2,
                        4,
                        Act::QuickGelu,
                        causal,
                        seed + 100 * i,
                        dev,
                    )
                })
                .collect()
        };
        let mut m = ToyTwoTower {
            img: tower(1, false)?,
            img_proj: Linear::random("img_proj", width, width / 2, false, 7, dev)?,
            txt: tower(2, true)?,
            txt_proj: Linear::random("txt_proj", width, width / 2, false, 8, dev)?,
            log_scale: Param::trainable("logit_scale", Tensor::scalar((1.0f32 / 0.07).ln(), dev)?),
            width,
        };
        m.set_trainable(true);
        Ok(m)
    }

    fn tower(blocks: &[Block], proj: &Linear, tape: &Tape, x: &Var, pool: usize) -> Result<Var> {
        let mut h = x.clone();
        for b in blocks {
            h = b.forward(tape, &h)?;
        }
        let (b, d) = (h.shape()[0], h.shape()[2]);
        let pooled = h.narrow1(pool, 1)?.reshape(&[b, d])?;
        proj.forward(tape, &pooled, Act::None)?.l2norm()
    }

    /// Loss for "images" [b, t_img, width] (pooled at token 0) and causal "texts"
    /// [b, t_txt, width] (pooled at the last token).
    pub fn loss(&self, tape: &Tape, x_img: &Tensor, x_txt: &Tensor) -> Result<Var> {
        let img = Self::tower(&self.img, &self.img_proj, tape, &tape.constant(x_img.clone()), 0)?;
        let last = x_txt.shape()[1] - 1;
        let txt = Self::tower(&self.txt, &self.txt_proj, tape, &tape.constant(x_txt.clone()), last)?;
        Var::contrastive_loss(&img, &txt, &tape.param(&self.log_scale))
    }
}

impl Module for ToyTwoTower {
    fn params(&self) -> Vec<&Param> {
        let mut v: Vec<&Param> = self.img.iter().chain(&self.txt).flat_map(|b| b.params()).collect();
        v.extend(self.img_proj.params());
        v.extend(self.txt_proj.params());
        v.push(&self.log_scale);
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v: Vec<&mut Param> = self
            .img
            .iter_mut()
            .chain(self.txt.iter_mut())
            .flat_map(|b| b.params_mut())
            .collect();
        v.extend(self.img_proj.params_mut());
        v.extend(self.txt_proj.params_mut());
        v.push(&mut self.log_scale);
        v
    }
}

/// Train the toy model for `steps` AdamW steps on a fixed random batch; returns the
/// loss before each step. `progress` is called after each step.
pub fn train_toy(
    dev: &Device,
    width: usize,
    batch: usize,
    steps: usize,
    mut progress: impl FnMut(usize, f32),
) -> Result<Vec<f32>> {
    let mut model = ToyTwoTower::new(width, dev)?;
    let x_img = Tensor::randn(&[batch, 8, width], 1.0, 11, dev)?;
    let x_txt = Tensor::randn(&[batch, 6, width], 1.0, 12, dev)?;
    let mut opt = AdamW::new(3e-3, 0.01);
    opt.max_grad_norm = Some(1.0);
    let mut losses = vec![];
    for step in 0..steps {
        let tape = Tape::new();
        let loss = model.loss(&tape, &x_img, &x_txt)?;
        let l = loss.value.item()?;
        if !l.is_finite() {
            return Err(Error::non_finite(format!("toy training: loss is {l} at step {step}")));
        }
        losses.push(l);
        let grads = tape.backward(&loss)?;
        opt.step(&mut model.params_mut(), &grads)?;
        progress(step, l);
    }
    Ok(losses)
}

/// The whole check, printed; Err when a kernel is out of tolerance or training fails.
pub fn run(dev: &Device) -> Result<()> {
    println!("device: {}", dev.name());
    if dev.is_gpu() {
        let mut bad = vec![];
        for c in check_kernels(dev)? {
            let ok = c.rel_err <= c.tol;
            println!(
                "  {:<28} rel err vs cpu {:.1e} (tol {:.0e}) {}",
                c.kernel,
                c.rel_err,
                c.tol,
                if ok { "ok" } else { "FAIL" }
            );
            if !ok {
                bad.push(c.kernel);
            }
        }
        if !bad.is_empty() {
            return Err(Error::device(format!(
                "kernels out of tolerance on {}: {}",
                dev.name(),
                bad.join(", ")
            )));
        }
    } else {
        println!("  (CPU device: the CPU backend is the oracle; run with --device gpu to compare a GPU against it)");
    }
    let steps = 40;
    let t0 = Instant::now();
    println!("training a 2x2-block two-tower contrastive transformer, {steps} steps:");
    let losses = train_toy(dev, 32, 16, steps, |s, l| {
        if s % 5 == 0 || s + 1 == steps {
            let el = t0.elapsed().as_secs_f32();
            let eta = el / (s + 1) as f32 * (steps - s - 1) as f32;
            println!(
                "  step {:>3}/{steps}  loss {l:.4}  {:.1} steps/s  ETA {eta:.1}s",
                s + 1,
                (s + 1) as f32 / el
            );
        }
    })?;
    let (first, last) = (losses[0], *losses.last().unwrap());
    if last >= first * 0.5 {
        return Err(Error::invalid(format!(
            "toy training did not learn: loss {first:.4} -> {last:.4}"
        )));
    }
    println!("ok: loss {first:.4} -> {last:.4} in {:.1}s", t0.elapsed().as_secs_f32());
    Ok(())
}
