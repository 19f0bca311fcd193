//! `cliptune bench --kernel K`: one kernel at CLIP's shapes (or `--shape`), on any
//! device, one result per shape. `wall_ms` is the median host time of one call plus the
//! wait for the device; `gpu_ms` the median GPU time between the kernel's first dispatch
//! starting and its last ending (timestamp queries; null on the CPU and on adapters
//! without them). `gflops` and `gbps` divide the kernel's nominal FLOPs and the bytes it
//! must move at least once by `gpu_ms` where there is one, else by `wall_ms`.
use std::time::Instant;

use super::gpu_timer::GpuTimer;
use super::workload::median;
use crate::backend::wgpu::{matmul_variant, MatmulVariant};
use crate::backend::{Act, AdamWSpec, AttnSpec, Device, MatmulSpec};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Valid `--kernel` names.
pub const KERNELS: &[&str] = &["matmul", "attention", "layernorm", "softmax", "contrastive", "adamw"];

/// Shape syntax and CLIP's shapes per kernel.
fn shape_help(kernel: &str) -> (&'static str, &'static [&'static str]) {
    match kernel {
        // ViT-B/32 at batch 32 (1600 tokens): qkv/out projection, MLP fc1, fc2; the
        // text tower's fc1 (32 x 77 tokens); a batched per-sample GEMM.
        "matmul" => (
            "MxNxK (X[M,K] @ W[N,K]^T + bias, a Linear) or BxMxNxK (B batched [M,K] @ [K,N])",
            &[
                "1600x768x768",
                "1600x3072x768",
                "1600x768x3072",
                "2464x2048x512",
                "32x50x3072x768",
            ],
        ),
        // Batch 32 x 12 heads x head_dim 64 at ViT-B/32's 50, text's 77, ViT-B/16's 257 tokens.
        "attention" => (
            "BxHxSxD (batch, heads, tokens, head_dim)",
            &["32x12x50x64", "32x12x77x64", "32x12x257x64"],
        ),
        "layernorm" => ("RxC (rows, features)", &["1600x768", "2464x512"]),
        // The attention probabilities' rows: B*H*S rows of S.
        "softmax" => ("RxC (rows, columns)", &["19200x50", "29568x77", "98688x257"]),
        "contrastive" => ("NxD (pairs, embedding width)", &["32x512", "256x512"]),
        "adamw" => ("N (parameters)", &["1048576", "8388608"]),
        _ => ("", &[]),
    }
}

#[derive(Clone, Debug)]
pub struct KernelBenchSpec {
    pub kernel: String,
    /// Empty: the kernel's CLIP shapes.
    pub shapes: Vec<String>,
    /// Matmul kernel variant (see [`MatmulVariant`]); other kernels only have `auto`.
    pub variant: String,
    pub iters: usize,
    pub warmup: usize,
    pub progress: bool,
}

#[derive(Clone, Debug)]
pub struct KernelResult {
    pub kernel: String,
    pub shape: String,
    pub variant: String,
    pub adapter: String,
    pub backend: String,
    pub gpu_ms: Option<f64>,
    pub wall_ms: f64,
    pub gflops: f64,
    pub gbps: f64,
    pub iters: usize,
}

impl KernelResult {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kernel": self.kernel,
            "shape": self.shape,
            "variant": self.variant,
            "adapter": self.adapter,
            "backend": self.backend,
            "gpu_ms": self.gpu_ms,
            "wall_ms": self.wall_ms,
            "gflops": self.gflops,
            "gbps": self.gbps,
            "iters": self.iters,
        })
    }

    pub fn to_line(&self) -> String {
        let gpu = match self.gpu_ms {
            Some(t) => format!("{t:.3} ms GPU, "),
            None => String::new(),
        };
        format!(
            "{} {} [{}] on {} ({}): {gpu}{:.3} ms wall, {:.2} GFLOP/s, {:.2} GB/s",
            self.kernel, self.shape, self.variant, self.adapter, self.backend, self.wall_ms, self.gflops, self.gbps
        )
    }
}

fn parse_dims(kernel: &str, shape: &str) -> Result<Vec<usize>> {
    let (syntax, _) = shape_help(kernel);
    let bad = |why: &str| {
        Error::invalid(format!(
            "--shape '{shape}' for kernel {kernel}: {why}; expected {syntax}"
        ))
    };
    let dims: Vec<usize> = shape
        .split('x')
        .map(|d| d.trim().parse::<usize>().map_err(|_| bad("not a number")))
        .collect::<Result<_>>()?;
    if dims.contains(&0) {
        return Err(bad("every dimension must be at least 1"));
    }
    let ok = match kernel {
        "matmul" => dims.len() == 3 || dims.len() == 4,
        "attention" => dims.len() == 4,
        "adamw" => dims.len() == 1,
        _ => dims.len() == 2,
    };
    if !ok {
        return Err(bad("wrong number of dimensions"));
    }
    Ok(dims)
}

/// Check the kernel name, shapes, variant and counts (before any device start-up).
pub fn validate(spec: &KernelBenchSpec) -> Result<()> {
    if !KERNELS.contains(&spec.kernel.as_str()) {
        return Err(Error::invalid(format!(
            "unknown kernel '{}': valid kernels are {}",
            spec.kernel,
            KERNELS.join(", ")
        )));
    }
    if spec.iters == 0 {
        return Err(Error::invalid("--iters must be at least 1"));
    }
    for s in &spec.shapes {
        parse_dims(&spec.kernel, s)?;
    }
    if spec.kernel == "matmul" {
        MatmulVariant::parse(&spec.variant)?;
    } else if spec.variant != "auto" {
        return Err(Error::invalid(format!(
            "--variant '{}': only the matmul kernel has variants (kernel {} has only auto)",
            spec.variant, spec.kernel
        )));
    }
    Ok(())
}

/// One prepared kernel call: inputs made, outputs dropped after each call.
struct Case {
    step: Box<dyn FnMut() -> Result<()>>,
    flops: f64,
    bytes: f64,
}

fn randn(shape: &[usize], seed: u64, dev: &Device) -> Result<Tensor> {
    Tensor::randn(shape, 1.0, seed, dev)
}

fn matmul_case(d: &[usize], variant: MatmulVariant, dev: &Device) -> Result<Case> {
    let (s, bias) = if d.len() == 3 {
        let s = MatmulSpec {
            batch: 1,
            m: d[0],
            n: d[1],
            k: d[2],
            trans_a: false,
            trans_b: true,
            b_shared: false,
        };
        (s, Some(randn(&[d[1]], 3, dev)?))
    } else {
        let s = MatmulSpec {
            batch: d[0],
            m: d[1],
            n: d[2],
            k: d[3],
            trans_a: false,
            trans_b: false,
            b_shared: false,
        };
        (s, None)
    };
    let a = randn(&[s.batch, s.m, s.k], 1, dev)?;
    let b = if s.trans_b {
        randn(&[s.n, s.k], 2, dev)?
    } else {
        randn(&[s.batch, s.k, s.n], 2, dev)?
    };
    let bytes = 4.0 * (s.batch * (s.m * s.k + s.m * s.n) + b.numel()) as f64;
    let flops = s.flops();
    let dev = dev.clone();
    let step: Box<dyn FnMut() -> Result<()>> = match (&dev, variant) {
        (Device::Gpu(g), v) => {
            let g = g.clone();
            Box::new(move || matmul_variant(&g, v, &a, &b, bias.as_ref(), Act::None, &s, false).map(|_| ()))
        }
        (Device::Cpu, MatmulVariant::Auto) => Box::new(move || {
            dev.backend()
                .matmul(&a, &b, bias.as_ref(), Act::None, &s, false)
                .map(|_| ())
        }),
        (Device::Cpu, v) => {
            return Err(Error::invalid(format!(
                "--variant {v:?}: matmul variants are GPU kernels; the CPU has only auto"
            )))
        }
    };
    Ok(Case { step, flops, bytes })
}

fn case(kernel: &str, d: &[usize], variant: MatmulVariant, dev: &Device) -> Result<Case> {
    let be = dev.clone();
    Ok(match kernel {
        "matmul" => return matmul_case(d, variant, dev),
        "attention" => {
            let (b, h, s, hd) = (d[0], d[1], d[2], d[3]);
            let spec = AttnSpec {
                batch: b,
                seq: s,
                heads: h,
                head_dim: hd,
                causal: false,
                scale: 1.0 / (hd as f32).sqrt(),
            };
            let shape = [b, s, h * hd];
            let (q, k, v) = (randn(&shape, 1, dev)?, randn(&shape, 2, dev)?, randn(&shape, 3, dev)?);
            Case {
                flops: 4.0 * (b * h * s * s * hd) as f64,
                bytes: 4.0 * 4.0 * (b * s * h * hd) as f64,
                step: Box::new(move || be.backend().attention(&q, &k, &v, &spec).map(|_| ())),
            }
        }
        "layernorm" => {
            let (r, c) = (d[0], d[1]);
            let x = randn(&[r, c], 1, dev)?;
            let (gamma, beta) = (randn(&[c], 2, dev)?, randn(&[c], 3, dev)?);
            Case {
                flops: 8.0 * (r * c) as f64,
                bytes: 4.0 * (2 * r * c) as f64,
                step: Box::new(move || be.backend().layernorm(&x, &gamma, &beta, 1e-5).map(|_| ())),
            }
        }
        "softmax" => {
            let (r, c) = (d[0], d[1]);
            let x = randn(&[r, c], 1, dev)?;
            Case {
                flops: 5.0 * (r * c) as f64,
                bytes: 4.0 * (2 * r * c) as f64,
                step: Box::new(move || be.backend().softmax(&x).map(|_| ())),
            }
        }
        "contrastive" => {
            let (n, w) = (d[0], d[1]);
            let (img, txt) = (randn(&[n, w], 1, dev)?, randn(&[n, w], 2, dev)?);
            let scale = Tensor::from_slice(&[(1.0f32 / 0.07).ln()], &[1], dev)?;
            Case {
                flops: 2.0 * (n * n * w) as f64,
                bytes: 4.0 * (2 * n * w) as f64,
                step: Box::new(move || be.backend().contrastive_loss(&img, &txt, &scale).map(|_| ())),
            }
        }
        "adamw" => {
            let n = d[0];
            let (p, gr) = (randn(&[n], 1, dev)?, randn(&[n], 2, dev)?);
            let (m, v) = (Tensor::zeros(&[n], dev)?, Tensor::zeros(&[n], dev)?);
            let spec = AdamWSpec {
                lr: 1e-4,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
                step: 1,
            };
            Case {
                flops: 12.0 * n as f64,
                // Read param, grad, m, v; write param, m, v.
                bytes: 4.0 * 7.0 * n as f64,
                step: Box::new(move || be.backend().adamw(&p, &gr, &m, &v, &spec, None).map(|_| ())),
            }
        }
        _ => return Err(Error::invalid(format!("unknown kernel '{kernel}'"))),
    })
}

/// Benchmark every shape of `spec` on `device`; `emit` gets each result as it is measured.
pub fn run(spec: &KernelBenchSpec, device: &Device, mut emit: impl FnMut(&KernelResult)) -> Result<Vec<KernelResult>> {
    validate(spec)?;
    let variant = if spec.kernel == "matmul" {
        MatmulVariant::parse(&spec.variant)?
    } else {
        MatmulVariant::Auto
    };
    let shapes: Vec<String> = if spec.shapes.is_empty() {
        shape_help(&spec.kernel).1.iter().map(|s| s.to_string()).collect()
    } else {
        spec.shapes.clone()
    };
    let (adapter, backend, timer) = match device {
        Device::Cpu => ("cpu".to_string(), "cpu".to_string(), None),
        Device::Gpu(g) => (
            g.info.name.clone(),
            format!("{:?}", g.info.backend).to_lowercase(),
            GpuTimer::new(g),
        ),
    };
    let mut out = Vec::new();
    for shape in &shapes {
        let dims = parse_dims(&spec.kernel, shape)?;
        let mut c = case(&spec.kernel, &dims, variant, device).map_err(|e| {
            Error::new(
                e.kind,
                format!("bench --kernel {} --shape {shape}: {}", spec.kernel, e.msg),
            )
        })?;
        device.backend().sync()?;
        let (mut wall, mut gpu) = (Vec::new(), Vec::new());
        for i in 0..spec.warmup + spec.iters {
            let t0 = Instant::now();
            let g_ms = match (device, &timer) {
                (Device::Gpu(g), Some(t)) => Some(t.time(g, &mut c.step)?),
                _ => {
                    (c.step)()?;
                    device.backend().sync()?;
                    None
                }
            };
            let w_ms = t0.elapsed().as_secs_f64() * 1e3;
            if spec.progress {
                let phase = if i < spec.warmup { "warmup" } else { "iter" };
                eprintln!("[bench] {} {shape} {phase}: {w_ms:.3} ms wall", spec.kernel);
            }
            if i >= spec.warmup {
                wall.push(w_ms);
                gpu.extend(g_ms);
            }
        }
        let wall_ms = median(&wall);
        let gpu_ms = (!gpu.is_empty()).then(|| median(&gpu));
        let t_s = gpu_ms.unwrap_or(wall_ms) / 1e3;
        let r = KernelResult {
            kernel: spec.kernel.clone(),
            shape: shape.clone(),
            variant: spec.variant.clone(),
            adapter: adapter.clone(),
            backend: backend.clone(),
            gpu_ms,
            wall_ms,
            gflops: c.flops / t_s / 1e9,
            gbps: c.bytes / t_s / 1e9,
            iters: wall.len(),
        };
        emit(&r);
        out.push(r);
    }
    Ok(out)
}
