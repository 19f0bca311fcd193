//! Real LoRA training steps on the GPU (lavapipe in CI) reuse their bind groups: the
//! pool hands a repeated step the same buffers (lowest free id, src/backend/wgpu/context.rs)
//! and AdamW keeps the parameters in theirs (in place, optim.rs), so after warm-up a step
//! builds no bind group, no pipeline and no buffer, and the bind-group cache stops
//! growing over a long run. Before (LIFO pool, AdamW into new buffers) ~290 of a step's
//! 333 dispatches built a new bind group (docs/PERFORMANCE.md).
mod common;
use std::collections::BTreeMap;

use cliptune::adapt::lora::{self, LoraConfig, LoraTarget, Tower};
use cliptune::autograd::{Tape, Var};
use cliptune::backend::Device;
use cliptune::clip::{Clip, TextInput, WeightStorage};
use cliptune::nn::Module;
use cliptune::train::AdamW;
use cliptune::Tensor;
use common::cli::fixtures;
use common::*;

/// Pixels and HF token ids of the tiny model's goldens, on the host.
fn inputs() -> (Vec<usize>, Vec<f32>, TextInput) {
    let gold = fixtures().join("tiny-clip/goldens.safetensors");
    let f32s = |name: &str| read_f32(&gold, name);
    let (pshape, pixels) = f32s("pixel_values");
    let (tshape, ids) = f32s("input_ids_hf");
    let (n, len) = (pshape[0], tshape[1]);
    let ids: Vec<u32> = ids[..n * len].iter().map(|&x| x as u32).collect();
    let eot = (0..n)
        .map(|r| ids[r * len..(r + 1) * len].iter().position(|&t| t == 49407).unwrap())
        .collect();
    (pshape, pixels, TextInput { ids, n, len, eot })
}

fn backend(dev: &Device) -> std::sync::Arc<cliptune::backend::wgpu::GpuBackend> {
    match dev {
        Device::Gpu(g) => g.clone(),
        Device::Cpu => panic!("not a GPU device"),
    }
}

#[test]
fn lora_steps_reuse_their_bind_groups_and_the_cache_stays_bounded() {
    let dev = fresh_gpu();
    let g = backend(&dev);
    let mut m = Clip::load(&fixtures().join("tiny-clip/hf"), &dev, WeightStorage::AsStored).unwrap();
    let cfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.1,
        targets: LoraTarget::ALL.to_vec(),
        towers: vec![Tower::Text, Tower::Vision],
        layers: None,
    };
    lora::apply_lora(&mut m, &cfg, 1).unwrap();
    let (pshape, pixels, text) = inputs();
    let mut opt = AdamW::new(1e-3, 0.01);
    opt.max_grad_norm = Some(1.0);
    // What the training loop does per step: upload the batch, a new dropout mask, forward,
    // backward, a clipped AdamW update of the LoRA factors, one readback (the loss).
    let mut step = |i: u64| -> f32 {
        lora::set_dropout_seed(&mut m, Some(100 + i));
        let tape = Tape::new();
        let x = Tensor::from_slice(&pixels, &pshape, &dev).unwrap();
        let img = m.image_features(&tape, &tape.constant(x)).unwrap().l2norm().unwrap();
        let txt = m.text_features(&tape, &text).unwrap().l2norm().unwrap();
        let ls = tape.constant(m.logit_scale.value.clone());
        let loss = Var::contrastive_loss(&img, &txt, &ls).unwrap();
        let grads = tape.backward(&loss).unwrap();
        opt.step(&mut m.params_mut(), &grads).unwrap();
        loss.value.item().unwrap()
    };
    let mut per_step = BTreeMap::new();
    let mut last = g.stats();
    let mut record = |i: u64, s: &cliptune::backend::wgpu::GpuStats| {
        per_step.insert(
            i,
            (
                s.dispatches - last.dispatches,
                s.bind_groups - last.bind_groups,
                s.buffers_created - last.buffers_created,
                s.pipelines - last.pipelines,
                s.bind_groups_cached,
            ),
        );
        last = s.clone();
    };
    for i in 0..6 {
        assert!(step(i).is_finite(), "step {i}: the loss is not finite");
        record(i, &g.stats());
    }
    let warm = g.stats();
    for i in 6..30 {
        assert!(step(i).is_finite(), "step {i}: the loss is not finite");
        record(i, &g.stats());
    }
    let end = g.stats();
    let table = format!("(step: dispatches, new bind groups, new buffers, new pipelines, cached) {per_step:?}");
    let dispatches = end.dispatches - warm.dispatches;
    assert!(
        dispatches >= 24 * 100,
        "a LoRA step should be hundreds of dispatches: {table}"
    );
    assert_eq!(end.pipelines, warm.pipelines, "a warm step built a pipeline: {table}");
    assert_eq!(
        end.buffers_created, warm.buffers_created,
        "a warm step created a buffer: {table}"
    );
    assert_eq!(
        end.bind_groups, warm.bind_groups,
        "warm steps built bind groups: {table}"
    );
    assert_eq!(
        end.bind_groups_cached, warm.bind_groups_cached,
        "the bind-group cache grew over 24 warm steps: {table}"
    );
}
