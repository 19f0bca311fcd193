//! Kernel benchmarks at CLIP shapes on both backends (criterion).
//!
//! Throughput is reported as "elements/s" = FLOP/s for compute-bound kernels and as
//! bytes/s for memory-bound ones; the `ceiling` group measures the machine's own
//! limits (FMA peak, memory bandwidth) so the figures can be read against them.
//! GPU benches use `--device gpu` semantics (any adapter, lavapipe included) and wait
//! for the queue inside each iteration. Set CLIPTUNE_BENCH_GPU=0 to skip the GPU half.
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use cliptune::backend::{Act, Device, MatmulSpec};
use cliptune::Tensor;

fn devices() -> Vec<(&'static str, Device)> {
    let mut v = vec![("cpu", Device::Cpu)];
    if std::env::var("CLIPTUNE_BENCH_GPU").as_deref() != Ok("0") {
        match Device::gpu_any() {
            Ok(d) => {
                eprintln!("GPU adapter: {}", d.name());
                v.push(("gpu", d));
            }
            Err(e) => eprintln!("no GPU adapter, GPU benches not run: {e}"),
        }
    }
    v
}

fn sync(d: &Device) {
    d.backend().sync().unwrap();
}

fn is_software(d: &Device) -> bool {
    d.name().to_lowercase().contains("llvmpipe")
}

fn matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    // (name, batch, m, n, k, trans_b): ViT-B/32 qkv/out at batch 32 (1600 tokens),
    // MLP fc1 of the text tower (32 x 77 tokens), ViT-B/32's MLP fc1/fc2, and a batched per-sample GEMM.
    let shapes = [
        ("linear_1600x768x768", 1, 1600, 768, 768, true),
        ("fc1_2464x2048x512", 1, 2464, 2048, 512, true),
        ("vit_fc1_1600x3072x768", 1, 1600, 3072, 768, true),
        ("vit_fc2_1600x768x3072", 1, 1600, 768, 3072, true),
        ("batched_32x50x3072x768", 32, 50, 3072, 768, false),
    ];
    for (name, dev) in devices() {
        for &(sname, batch, m, n, k, tb) in &shapes {
            // lavapipe runs ~1-3 GFLOP/s: only the smallest shape there.
            if is_software(&dev) && sname != "linear_1600x768x768" {
                continue;
            }
            let spec = MatmulSpec {
                batch,
                m,
                n,
                k,
                trans_a: false,
                trans_b: tb,
                b_shared: false,
            };
            let a = Tensor::randn(&[batch * m * k], 1.0, 1, &dev).unwrap();
            let b = Tensor::randn(&[batch * n * k], 1.0, 2, &dev).unwrap();
            g.throughput(Throughput::Elements(spec.flops() as u64));
            g.bench_function(BenchmarkId::new(name, sname), |bench| {
                bench.iter(|| {
                    let y = a.matmul_spec(&b, None, Act::None, &spec, false).unwrap();
                    sync(&dev);
                    black_box(y);
                })
            });
        }
    }
    g.finish();
}

fn attention(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (name, dev) in devices() {
        // ViT-B/32 (50 tokens), the text tower (77, causal), ViT-L/14 (257 tokens, 16 heads).
        for (seq, causal, heads, batch) in [(50usize, false, 12, 32), (77, true, 12, 32), (257, false, 16, 8)] {
            if is_software(&dev) && seq > 77 {
                continue;
            }
            let (b, h, dh) = if is_software(&dev) {
                (4, heads, 64)
            } else {
                (batch, heads, 64)
            };
            let shape = [b, seq, h * dh];
            let q = Tensor::randn(&shape, 1.0, 1, &dev).unwrap();
            let k = Tensor::randn(&shape, 1.0, 2, &dev).unwrap();
            let v = Tensor::randn(&shape, 1.0, 3, &dev).unwrap();
            // QK^T and PV: 4 * b * h * seq^2 * dh (causal does about half).
            g.throughput(Throughput::Elements((4 * b * h * seq * seq * dh) as u64));
            g.bench_function(
                BenchmarkId::new(
                    name,
                    format!("fwd_b{b}_h{h}_t{seq}{}", if causal { "_causal" } else { "" }),
                ),
                |bench| {
                    bench.iter(|| {
                        let y = Tensor::attention(&q, &k, &v, h, causal).unwrap();
                        sync(&dev);
                        black_box(y);
                    })
                },
            );
        }
    }
    g.finish();
}

fn layernorm(c: &mut Criterion) {
    let mut g = c.benchmark_group("layernorm");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, dev) in devices() {
        let (rows, cols) = (1600, 768);
        let x = Tensor::randn(&[rows, cols], 1.0, 1, &dev).unwrap();
        let gamma = Tensor::randn(&[cols], 1.0, 2, &dev).unwrap();
        let beta = Tensor::randn(&[cols], 1.0, 3, &dev).unwrap();
        // Read x, write y: the memory-bound floor.
        g.throughput(Throughput::Bytes((2 * rows * cols * 4) as u64));
        g.bench_function(BenchmarkId::new(name, "fwd_1600x768"), |bench| {
            bench.iter(|| {
                let y = x.layernorm(&gamma, &beta, 1e-5).unwrap();
                sync(&dev);
                black_box(y);
            })
        });
    }
    g.finish();
}

fn contrastive(c: &mut Criterion) {
    let mut g = c.benchmark_group("contrastive_loss");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, dev) in devices() {
        let (b, d) = (256, 512);
        let img = Tensor::randn(&[b, d], 1.0, 1, &dev).unwrap().l2norm().unwrap().0;
        let txt = Tensor::randn(&[b, d], 1.0, 2, &dev).unwrap().l2norm().unwrap().0;
        let ls = Tensor::scalar((1.0f32 / 0.07).ln(), &dev).unwrap();
        let one = Tensor::scalar(1.0, &dev).unwrap();
        // Forward computes the b x b logits twice (rows, columns); backward four times.
        g.throughput(Throughput::Elements((2 * 2 * b * b * d) as u64));
        g.bench_function(BenchmarkId::new(name, "fwd_b256_d512"), |bench| {
            bench.iter(|| {
                let y = Tensor::contrastive_loss(&img, &txt, &ls).unwrap();
                sync(&dev);
                black_box(y);
            })
        });
        let (_, li, lt) = Tensor::contrastive_loss(&img, &txt, &ls).unwrap();
        g.throughput(Throughput::Elements((4 * 2 * b * b * d) as u64));
        g.bench_function(BenchmarkId::new(name, "bwd_b256_d512"), |bench| {
            bench.iter(|| {
                let y = dev
                    .backend()
                    .contrastive_loss_bwd(&img, &txt, &ls, &li, &lt, &one)
                    .unwrap();
                sync(&dev);
                black_box(y);
            })
        });
    }
    g.finish();
}

/// The machine's own ceilings, measured the same way.
fn ceiling(c: &mut Criterion) {
    let mut g = c.benchmark_group("ceiling");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    // Memory bandwidth: copy 256 MiB (read + write).
    let n = 64 << 20;
    let src = vec![1.0f32; n];
    let mut dst = vec![0.0f32; n];
    g.throughput(Throughput::Bytes((2 * n * 4) as u64));
    g.bench_function("memcpy_256MiB", |bench| {
        bench.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    // FMA peak on every core: independent accumulator chains, no memory traffic.
    let threads = rayon::current_num_threads();
    let iters = 1 << 22;
    g.throughput(Throughput::Elements((threads * iters * 2 * 8 * 12) as u64));
    g.bench_function(format!("fma_peak_{threads}_threads"), |bench| {
        bench.iter(|| {
            let s: f32 = rayon::broadcast(|_| fma_chain(iters)).into_iter().sum();
            black_box(s);
        })
    });
    g.finish();
}

/// 12 independent 8-wide FMA chains (AVX2+FMA when the CPU has them).
fn fma_chain(iters: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return unsafe { fma_chain_avx2(iters) };
        }
    }
    let mut acc = [[0.0f32; 8]; 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            for x in a.iter_mut() {
                *x = x.mul_add(0.999_999, 1e-7);
            }
        }
    }
    acc.iter().flatten().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chain_avx2(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let m = _mm256_set1_ps(0.999_999);
    let b = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_setzero_ps(); 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, m, b);
        }
    }
    let mut out = [0.0f32; 8];
    let mut s = _mm256_setzero_ps();
    for a in acc {
        s = _mm256_add_ps(s, a);
    }
    _mm256_storeu_ps(out.as_mut_ptr(), s);
    out.iter().sum()
}

criterion_group!(benches, ceiling, matmul, attention, layernorm, contrastive);
criterion_main!(benches);
