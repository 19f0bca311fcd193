//! LoRA against PEFT goldens (tools/make_lora_goldens.py) on the tiny random CLIP:
//! step 0 equals the base, PEFT's own adapters load and give PEFT's embeddings and
//! gradients, export/import round trips in PEFT's layout, merging, frozen base under
//! AdamW, and refusals of bad input.
mod common;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use cliptune::adapt::lora::{self, LoraConfig, LoraTarget, Site, Tower};
use cliptune::autograd::{Tape, Var};
use cliptune::backend::Device;
use cliptune::clip::{Clip, TextInput, WeightStorage};
use cliptune::nn::Module;
use cliptune::train::AdamW;
use cliptune::Tensor;
use safetensors::SafeTensors;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
fn hf_dir() -> PathBuf {
    fixtures().join("tiny-clip/hf")
}
fn qv_dir() -> PathBuf {
    fixtures().join("lora/peft_adapter")
}
fn fc1_dir() -> PathBuf {
    fixtures().join("lora/peft_adapter_fc1")
}

type Host = (Vec<usize>, Vec<f32>);

fn read_st(path: &Path) -> BTreeMap<String, Host> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let vals = match view.dtype() {
                safetensors::Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                safetensors::Dtype::I32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                safetensors::Dtype::F16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                d => panic!("unexpected dtype {d:?}"),
            };
            (name, (view.shape().to_vec(), vals))
        })
        .collect()
}

struct Fx {
    clip: BTreeMap<String, Host>,
    lora: BTreeMap<String, Host>,
}

impl Fx {
    fn load() -> Fx {
        Fx {
            clip: read_st(&fixtures().join("tiny-clip/goldens.safetensors")),
            lora: read_st(&fixtures().join("lora/goldens.safetensors")),
        }
    }
    fn pixels(&self, dev: &Device) -> Tensor {
        let (s, v) = &self.clip["pixel_values"];
        Tensor::from_slice(v, s, dev).unwrap()
    }
    /// The first `n` texts (HF ids, EOT-padded).
    fn text(&self, n: usize) -> TextInput {
        let (shape, v) = &self.clip["input_ids_hf"];
        let len = shape[1];
        let ids: Vec<u32> = v[..n * len].iter().map(|&x| x as u32).collect();
        let eot = (0..n)
            .map(|r| ids[r * len..(r + 1) * len].iter().position(|&t| t == 49407).unwrap())
            .collect();
        TextInput { ids, n, len, eot }
    }
    fn g(&self, k: &str) -> &Host {
        self.lora.get(k).unwrap_or_else(|| panic!("golden '{k}' missing"))
    }
}

fn tiny(dev: &Device) -> Clip {
    Clip::load(&hf_dir(), dev, WeightStorage::AsStored).unwrap()
}

fn embeds(m: &Clip, fx: &Fx) -> (Vec<f32>, Vec<f32>) {
    let img = m.encode_image(&fx.pixels(m.device()), 8).unwrap().to_vec().unwrap();
    let txt = m.encode_text(&fx.text(8), 8).unwrap().to_vec().unwrap();
    (img, txt)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn tmpdir(name: &str) -> PathBuf {
    // A fresh directory per call, never one shared by the tests of this process.
    tempfile::Builder::new()
        .prefix(&format!("cliptune-lora-{name}-"))
        .tempdir()
        .unwrap()
        .keep()
}

/// CLIP's symmetric contrastive loss on the 3 images and the first 3 texts.
fn loss(m: &Clip, fx: &Fx, tape: &Tape) -> Var {
    let img = m
        .image_features(tape, &tape.constant(fx.pixels(m.device())))
        .unwrap()
        .l2norm()
        .unwrap();
    let txt = m.text_features(tape, &fx.text(3)).unwrap().l2norm().unwrap();
    let ls = tape.constant(m.logit_scale.value.clone());
    Var::contrastive_loss(&img, &txt, &ls).unwrap()
}

fn all_cfg() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.1,
        targets: LoraTarget::ALL.to_vec(),
        towers: vec![Tower::Text, Tower::Vision],
        layers: None,
    }
}

#[test]
fn step0_equals_base_bit_for_bit() {
    let fx = Fx::load();
    let base = tiny(&Device::Cpu);
    let mut m = tiny(&Device::Cpu);
    let n = lora::apply_lora(&mut m, &all_cfg(), 7).unwrap();
    // r * (in + out) per adapter: q,k,v,o are W x W, fc1 W -> mlp, fc2 mlp -> W.
    let per_tower = |w: usize, mlp: usize| 2 * (4 * 4 * (w + w) + 4 * (w + mlp) + 4 * (mlp + w));
    assert_eq!(n, per_tower(16, 64) + per_tower(32, 64));
    assert_eq!(m.num_trainable(), n);
    assert!(m
        .params()
        .iter()
        .filter(|p| p.trainable)
        .all(|p| p.name.contains(".lora_")));
    assert_eq!(lora::adapter_sites(&m).len(), 2 * 2 * 6);

    let (bi, bt) = embeds(&base, &fx);
    let (li, lt) = embeds(&m, &fx);
    assert_eq!(bits(&bi), bits(&li), "image embeds differ at step 0");
    assert_eq!(bits(&bt), bits(&lt), "text embeds differ at step 0");

    // Training mode (recording tape, dropout on): still exactly the base.
    lora::set_dropout_seed(&mut m, Some(3));
    let l0 = loss(&base, &fx, &Tape::new()).value.to_vec().unwrap();
    let tape = Tape::new();
    let l1 = loss(&m, &fx, &tape);
    assert_eq!(bits(&l0), bits(&l1.value.to_vec().unwrap()));
    let grads = tape.backward(&l1).unwrap();
    // Gradients for every adapter tensor and nothing else (dL/dA is 0 at step 0: B = 0).
    assert_eq!(grads.len(), 2 * 2 * 2 * 6);
}

fn check_forward(what: &str, m: &Clip, fx: &Fx, prefix: &str, tol: f32) {
    let (i, t) = embeds(m, fx);
    let ei = max_abs(&i, &fx.g(&format!("{prefix}.image_embeds")).1);
    let et = max_abs(&t, &fx.g(&format!("{prefix}.text_embeds")).1);
    eprintln!("{what}: vs PEFT image embeds max abs err {ei:.2e}, text {et:.2e} (tol {tol:.0e})");
    assert!(ei <= tol && et <= tol, "{what}: {ei} / {et} > {tol}");
}

#[test]
fn peft_adapter_forward_matches_peft_cpu_and_gpu() {
    let fx = Fx::load();
    let mut m = tiny(&Device::Cpu);
    let cfg = lora::load_peft(&mut m, &qv_dir()).unwrap();
    assert_eq!(cfg.rank, 4);
    assert_eq!(cfg.alpha, 8.0);
    assert!((cfg.dropout - 0.1).abs() < 1e-7);
    assert_eq!(cfg.targets, vec![LoraTarget::Q, LoraTarget::V]);
    assert_eq!(cfg.towers, vec![Tower::Text, Tower::Vision]);
    assert_eq!(cfg.layers, None);
    assert_eq!(lora::adapter_sites(&m).len(), 8);
    check_forward("qv adapter, cpu", &m, &fx, "qv", 1e-4);
    // The adapter really changes the output (the goldens are not the base).
    let base = embeds(&tiny(&Device::Cpu), &fx);
    assert!(max_abs(&base.0, &fx.g("qv.image_embeds").1) > 1e-2);

    let mut m = tiny(&Device::Cpu);
    let cfg = lora::load_peft(&mut m, &fc1_dir()).unwrap();
    assert_eq!((cfg.rank, cfg.alpha), (2, 3.0));
    assert_eq!(cfg.targets, vec![LoraTarget::Fc1]);
    assert_eq!(cfg.towers, vec![Tower::Text]);
    check_forward("text fc1 adapter, cpu", &m, &fx, "fc1", 1e-4);

    // Two adapters on different layers combine (as PEFT would with both loaded).
    let mut both = tiny(&Device::Cpu);
    lora::load_peft(&mut both, &qv_dir()).unwrap();
    lora::load_peft(&mut both, &fc1_dir()).unwrap();
    assert_eq!(lora::adapter_sites(&both).len(), 10);
    // ... but the same adapter twice conflicts, and nothing is attached by the refusal.
    let e = lora::load_peft(&mut both, &fc1_dir()).unwrap_err();
    assert!(e.msg.contains("already has a LoRA adapter"), "{}", e.msg);
    assert_eq!(lora::adapter_sites(&both).len(), 10);

    let gpu = common::gpu();
    let mut m = tiny(&gpu);
    lora::load_peft(&mut m, &qv_dir()).unwrap();
    check_forward("qv adapter, wgpu", &m, &fx, "qv", 1e-3);
    let mut m = tiny(&gpu);
    lora::load_peft(&mut m, &fc1_dir()).unwrap();
    check_forward("text fc1 adapter, wgpu", &m, &fx, "fc1", 1e-3);
}

fn check_grads(what: &str, m: &Clip, fx: &Fx, prefix: &str, tol: f32) {
    let tape = Tape::new();
    let l = loss(m, fx, &tape);
    let lv = l.value.item().unwrap();
    let lg = fx.g(&format!("{prefix}.loss")).1[0];
    eprintln!("{what}: loss {lv} vs PEFT {lg}");
    assert!((lv - lg).abs() <= tol * lg.abs().max(1.0));
    let grads = tape.backward(&l).unwrap();
    let sites = lora::adapter_sites(m);
    assert_eq!(grads.len(), 2 * sites.len(), "only LoRA params get gradients");
    let mut worst = 0.0f32;
    for s in sites {
        let ad = lora::linear(m, &s).unwrap().lora.as_ref().unwrap();
        for (p, which) in [(&ad.a, "lora_A"), (&ad.b, "lora_B")] {
            let key = format!("{prefix}.grad.{}.{which}.weight", s.module());
            let (shape, want) = fx.g(&key);
            let got = grads.get(p.id).unwrap();
            assert_eq!(got.numel(), shape.iter().product::<usize>(), "{key}");
            let got = got.to_vec().unwrap();
            let scale = want.iter().fold(0.0f32, |a, x| a.max(x.abs()));
            assert!(scale > 0.0, "{key}: golden gradient is zero");
            let e = max_abs(&got, want) / scale;
            assert!(e <= tol, "{what}: {key}: relative error {e} > {tol}");
            worst = worst.max(e);
        }
    }
    eprintln!("{what}: lora_A/lora_B gradients vs PEFT: worst relative error {worst:.2e} (tol {tol:.0e})");
}

#[test]
fn gradients_match_peft() {
    let fx = Fx::load();
    let mut m = tiny(&Device::Cpu);
    lora::load_peft(&mut m, &qv_dir()).unwrap();
    check_grads("qv adapter, cpu", &m, &fx, "qv", 1e-4);
    let mut m = tiny(&Device::Cpu);
    lora::load_peft(&mut m, &fc1_dir()).unwrap();
    check_grads("text fc1 adapter, cpu", &m, &fx, "fc1", 1e-4);
    let mut m = tiny(&common::gpu());
    lora::load_peft(&mut m, &qv_dir()).unwrap();
    check_grads("qv adapter, wgpu", &m, &fx, "qv", 1e-3);
}

/// With CLIPTUNE_KEEP_LORA_EXPORTS=DIR, keep an exported adapter (plus our embeddings
/// in `cliptune_embeds.safetensors`) in DIR/<name> so that
/// `tools/make_lora_goldens.py --check DIR/<name>` can load it in PEFT and compare.
fn keep_for_peft_check(out: &Path, name: &str, emb: &(Vec<f32>, Vec<f32>)) {
    let Ok(keep) = std::env::var("CLIPTUNE_KEEP_LORA_EXPORTS") else {
        return;
    };
    let dst = Path::new(&keep).join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["adapter_model.safetensors", "adapter_config.json"] {
        std::fs::copy(out.join(f), dst.join(f)).unwrap();
    }
    let p = emb.0.len() / 3;
    let img = Tensor::from_slice(&emb.0, &[3, p], &Device::Cpu).unwrap();
    let txt = Tensor::from_slice(&emb.1, &[emb.1.len() / p, p], &Device::Cpu).unwrap();
    cliptune::tensor::io::write_safetensors(
        &dst.join("cliptune_embeds.safetensors"),
        &[("image_embeds", &img), ("text_embeds", &txt)],
    )
    .unwrap();
}

fn key_shapes(path: &Path) -> BTreeMap<String, Vec<usize>> {
    read_st(path).into_iter().map(|(k, (s, _))| (k, s)).collect()
}

#[test]
fn export_load_round_trip_in_peft_layout() {
    let fx = Fx::load();
    for (src, prefix) in [(qv_dir(), "qv"), (fc1_dir(), "fc1")] {
        let mut m = tiny(&Device::Cpu);
        let cfg = lora::load_peft(&mut m, &src).unwrap();
        let out = tmpdir(&format!("export-{prefix}"));
        lora::export_peft(&m, &cfg, &out).unwrap();
        // Same key names and shapes as PEFT's own save_pretrained.
        assert_eq!(
            key_shapes(&out.join("adapter_model.safetensors")),
            key_shapes(&src.join("adapter_model.safetensors")),
            "{prefix}: exported keys differ from PEFT's"
        );
        // Same values, too.
        assert_eq!(
            read_st(&out.join("adapter_model.safetensors")),
            read_st(&src.join("adapter_model.safetensors"))
        );
        let conf: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap()).unwrap();
        assert_eq!(conf["peft_type"], "LORA");
        assert_eq!(conf["r"].as_u64().unwrap() as usize, cfg.rank);
        assert_eq!(conf["lora_alpha"].as_f64().unwrap() as f32, cfg.alpha);
        assert_eq!(conf["bias"], "none");
        assert!(conf["task_type"].is_null());
        let targets: Vec<String> = conf["target_modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let mods: Vec<String> = lora::adapter_sites(&m).iter().map(Site::module).collect();
        assert_eq!(targets, mods);

        let mut back = tiny(&Device::Cpu);
        let cfg2 = lora::load_peft(&mut back, &out).unwrap();
        assert_eq!(cfg, cfg2);
        let (a, b) = (embeds(&m, &fx), embeds(&back, &fx));
        assert_eq!(bits(&a.0), bits(&b.0));
        assert_eq!(bits(&a.1), bits(&b.1));
        check_forward(&format!("{prefix} exported + reloaded"), &back, &fx, prefix, 1e-4);
        keep_for_peft_check(&out, prefix, &a);
        let _ = std::fs::remove_dir_all(&out);
    }

    // A fresh adapter from apply_lora (vision only, layer 1, k + fc2) round trips too.
    let mut m = tiny(&Device::Cpu);
    let cfg = LoraConfig::parse(3, 6.0, 0.0, "k,fc2", "vision", Some("1-1")).unwrap();
    lora::apply_lora(&mut m, &cfg, 5).unwrap();
    // Train one AdamW step so B is non-zero.
    let tape = Tape::new();
    let l = loss(&m, &fx, &tape);
    let grads = tape.backward(&l).unwrap();
    let mut opt = AdamW::new(1e-2, 0.0);
    opt.step(&mut m.params_mut(), &grads).unwrap();
    let out = tmpdir("export-fresh");
    lora::export_peft(&m, &cfg, &out).unwrap();
    let keys: Vec<String> = key_shapes(&out.join("adapter_model.safetensors")).into_keys().collect();
    assert_eq!(
        keys,
        [
            "base_model.model.vision_model.encoder.layers.1.mlp.fc2.lora_A.weight",
            "base_model.model.vision_model.encoder.layers.1.mlp.fc2.lora_B.weight",
            "base_model.model.vision_model.encoder.layers.1.self_attn.k_proj.lora_A.weight",
            "base_model.model.vision_model.encoder.layers.1.self_attn.k_proj.lora_B.weight",
        ]
    );
    let mut back = tiny(&Device::Cpu);
    assert_eq!(lora::load_peft(&mut back, &out).unwrap(), cfg);
    let (a, b) = (embeds(&m, &fx), embeds(&back, &fx));
    assert_eq!(bits(&a.0), bits(&b.0));
    assert_eq!(bits(&a.1), bits(&b.1));
    assert!(max_abs(&a.0, &embeds(&tiny(&Device::Cpu), &fx).0) > 0.0);
    keep_for_peft_check(&out, "fresh", &a);
    // The config must agree with the adapters it describes.
    let wrong = LoraConfig { rank: 8, ..cfg.clone() };
    assert!(lora::export_peft(&m, &wrong, &out).unwrap_err().msg.contains("rank"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn merge_equals_unmerged_and_hf_checkpoint_reloads() {
    let fx = Fx::load();
    for (src, prefix) in [(qv_dir(), "qv"), (fc1_dir(), "fc1")] {
        let mut m = tiny(&Device::Cpu);
        lora::load_peft(&mut m, &src).unwrap();
        let (ui, ut) = embeds(&m, &fx);
        lora::merge(&mut m).unwrap();
        assert!(lora::adapter_sites(&m).is_empty());
        assert_eq!(m.num_params(), tiny(&Device::Cpu).num_params());
        let (mi, mt) = embeds(&m, &fx);
        let e = max_abs(&ui, &mi).max(max_abs(&ut, &mt));
        let ep = max_abs(&mi, &fx.g(&format!("{prefix}.merged_image_embeds")).1)
            .max(max_abs(&mt, &fx.g(&format!("{prefix}.merged_text_embeds")).1));
        eprintln!("{prefix}: merged vs unmerged max abs diff {e:.2e}; merged vs PEFT merge_and_unload {ep:.2e}");
        assert!(e <= 1e-5, "{prefix}: merged vs unmerged {e}");
        assert!(ep <= 1e-4, "{prefix}: merged vs PEFT merged {ep}");

        let out = tmpdir(&format!("merged-{prefix}"));
        lora::save_hf_checkpoint(&m, &hf_dir(), &out).unwrap();
        assert!(out.join("config.json").exists());
        let shapes = key_shapes(&out.join("model.safetensors"));
        let src_shapes = key_shapes(&hf_dir().join("model.safetensors"));
        assert_eq!(shapes, src_shapes, "merged checkpoint: HF names and shapes");
        assert_eq!(shapes["logit_scale"], Vec::<usize>::new());
        assert_eq!(
            shapes["vision_model.embeddings.patch_embedding.weight"],
            vec![32, 3, 8, 8]
        );
        let re = Clip::load(&out, &Device::Cpu, WeightStorage::AsStored).unwrap();
        let (ri, rt) = embeds(&re, &fx);
        assert_eq!(bits(&ri), bits(&mi));
        assert_eq!(bits(&rt), bits(&mt));
        if let Ok(keep) = std::env::var("CLIPTUNE_KEEP_LORA_EXPORTS") {
            let dst = Path::new(&keep).join(format!("merged-{prefix}"));
            std::fs::create_dir_all(&dst).unwrap();
            for f in ["model.safetensors", "config.json"] {
                std::fs::copy(out.join(f), dst.join(f)).unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(&out);
    }
    // Merging on the GPU backend (f16 base weights cast to f32 there).
    let mut g = tiny(&common::gpu());
    lora::load_peft(&mut g, &qv_dir()).unwrap();
    lora::merge(&mut g).unwrap();
    let (gi, gt) = embeds(&g, &fx);
    let e = max_abs(&gi, &fx.g("qv.merged_image_embeds").1).max(max_abs(&gt, &fx.g("qv.merged_text_embeds").1));
    eprintln!("qv merged on wgpu vs PEFT merge_and_unload: {e:.2e}");
    assert!(e <= 1e-3);
    // Saving with unmerged adapters is refused (they would be silently dropped).
    let mut m = tiny(&Device::Cpu);
    lora::load_peft(&mut m, &qv_dir()).unwrap();
    let out = tmpdir("unmerged");
    let e = lora::save_hf_checkpoint(&m, &hf_dir(), &out).unwrap_err();
    assert!(e.msg.contains("merge"), "{}", e.msg);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn adamw_changes_only_lora_params() {
    let fx = Fx::load();
    let mut m = tiny(&Device::Cpu);
    let cfg = LoraConfig::parse(4, 8.0, 0.1, "q,k,v,o,fc1,fc2", "text,vision", None).unwrap();
    lora::apply_lora(&mut m, &cfg, 1).unwrap();
    let before: HashMap<String, Vec<u32>> = m
        .params()
        .iter()
        .map(|p| (p.name.clone(), bits(&p.value.to_vec().unwrap())))
        .collect();
    let mut opt = AdamW::new(1e-3, 0.01);
    let mut losses = vec![];
    for step in 0..4u64 {
        lora::set_dropout_seed(&mut m, Some(100 + step));
        let tape = Tape::new();
        let l = loss(&m, &fx, &tape);
        losses.push(l.value.item().unwrap());
        let grads = tape.backward(&l).unwrap();
        assert_eq!(grads.len(), 2 * lora::adapter_sites(&m).len());
        opt.step(&mut m.params_mut(), &grads).unwrap();
    }
    lora::set_dropout_seed(&mut m, None);
    eprintln!("losses {losses:?}");
    let mut changed = 0;
    for p in m.params() {
        let now = bits(&p.value.to_vec().unwrap());
        if p.name.contains(".lora_") {
            assert_ne!(now, before[&p.name], "{} did not train", p.name);
            changed += 1;
        } else {
            assert_eq!(now, before[&p.name], "frozen {} changed", p.name);
            assert!(!p.trainable);
        }
    }
    assert_eq!(changed, 2 * 24);
    // Dropout is off in eval: two inference passes agree.
    let (a, b) = (embeds(&m, &fx), embeds(&m, &fx));
    assert_eq!(bits(&a.0), bits(&b.0));
}

#[test]
fn dropout_masks_training_only_and_recompute_safe() {
    let fx = Fx::load();
    let mut m = tiny(&Device::Cpu);
    lora::load_peft(&mut m, &qv_dir()).unwrap(); // B non-zero, dropout 0.1
    let eval = loss(&m, &fx, &Tape::new()).value.item().unwrap();
    lora::set_dropout_seed(&mut m, Some(9));
    let t1 = loss(&m, &fx, &Tape::new()).value.item().unwrap();
    let t2 = loss(&m, &fx, &Tape::new()).value.item().unwrap();
    assert_eq!(t1.to_bits(), t2.to_bits(), "same seed, same masks");
    assert_ne!(t1, eval, "dropout had no effect in training");
    // Another step, another mask.
    lora::set_dropout_seed(&mut m, Some(10));
    let t3 = loss(&m, &fx, &Tape::new()).value.item().unwrap();
    assert_ne!(t1, t3);
    lora::set_dropout_seed(&mut m, Some(9));
    // Recomputed blocks (activation checkpointing) see the same masks: same gradients.
    let grads_of = |m: &Clip| {
        let tape = Tape::new();
        let l = loss(m, &fx, &tape);
        let g = tape.backward(&l).unwrap();
        lora::adapter_sites(m)
            .iter()
            .flat_map(|s| {
                let ad = lora::linear(m, s).unwrap().lora.as_ref().unwrap();
                [
                    g.get(ad.a.id).unwrap().to_vec().unwrap(),
                    g.get(ad.b.id).unwrap().to_vec().unwrap(),
                ]
            })
            .collect::<Vec<_>>()
    };
    let plain = grads_of(&m);
    for b in m.text.blocks.iter_mut().chain(m.vision.blocks.iter_mut()) {
        b.recompute = true;
    }
    let recomputed = grads_of(&m);
    for (a, b) in plain.iter().zip(&recomputed) {
        assert!(max_abs(a, b) <= 1e-6 * a.iter().fold(1.0f32, |x, y| x.max(y.abs())));
    }
    // Back to eval: no dropout, the eval loss again.
    lora::set_dropout_seed(&mut m, None);
    let again = loss(&m, &fx, &Tape::new()).value.item().unwrap();
    assert_eq!(again.to_bits(), eval.to_bits());
}

fn write_fake_adapter(dir: &Path, module: &str, a: [usize; 2], b: [usize; 2]) {
    std::fs::create_dir_all(dir).unwrap();
    let ta = Tensor::zeros(&a, &Device::Cpu).unwrap();
    let tb = Tensor::zeros(&b, &Device::Cpu).unwrap();
    let ka = format!("base_model.model.{module}.lora_A.weight");
    let kb = format!("base_model.model.{module}.lora_B.weight");
    cliptune::tensor::io::write_safetensors(&dir.join("adapter_model.safetensors"), &[(&ka, &ta), (&kb, &tb)]).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        format!(
            r#"{{"peft_type": "LORA", "r": {}, "lora_alpha": 8, "lora_dropout": 0.0, "bias": "none",
               "target_modules": ["q_proj"], "task_type": null}}"#,
            a[0]
        ),
    )
    .unwrap();
}

#[test]
fn bad_input_is_refused_clearly() {
    let mut m = tiny(&Device::Cpu);
    // An adapter made for ViT-B/32's text tower (width 512).
    let d = tmpdir("other-model");
    write_fake_adapter(&d, "text_model.encoder.layers.0.self_attn.q_proj", [4, 512], [512, 4]);
    let e = lora::load_peft(&mut m, &d).unwrap_err();
    eprintln!("{}", e.msg);
    assert!(
        e.msg.contains("text width 512") && e.msg.contains("model has 16"),
        "{}",
        e.msg
    );
    // B from another model.
    write_fake_adapter(&d, "vision_model.encoder.layers.1.mlp.fc1", [4, 32], [3072, 4]);
    let e = lora::load_peft(&mut m, &d).unwrap_err();
    eprintln!("{}", e.msg);
    assert!(e.msg.contains("3072") && e.msg.contains("64"), "{}", e.msg);
    // A layer the model does not have.
    write_fake_adapter(&d, "text_model.encoder.layers.11.self_attn.q_proj", [4, 16], [16, 4]);
    let e = lora::load_peft(&mut m, &d).unwrap_err();
    eprintln!("{}", e.msg);
    assert!(
        e.msg.contains("layer 11") && e.msg.contains("2 text layers"),
        "{}",
        e.msg
    );
    // A module LoRA cannot target here.
    write_fake_adapter(&d, "visual_projection", [4, 32], [24, 4]);
    let e = lora::load_peft(&mut m, &d).unwrap_err();
    eprintln!("{}", e.msg);
    assert!(e.msg.contains("visual_projection"), "{}", e.msg);
    // Not a directory with an adapter.
    let e = lora::load_peft(&mut m, &d.join("nope")).unwrap_err();
    assert!(e.msg.contains("adapter_config.json"), "{}", e.msg);
    assert!(
        lora::adapter_sites(&m).is_empty(),
        "a refused adapter attached something"
    );
    let _ = std::fs::remove_dir_all(&d);

    // CLI strings.
    let e = LoraTarget::parse_list("q,x").unwrap_err();
    assert!(
        e.msg.contains("'x'") && e.msg.contains("q, k, v, o, fc1, fc2"),
        "{}",
        e.msg
    );
    let e = Tower::parse_list("text,audio").unwrap_err();
    assert!(e.msg.contains("'audio'") && e.msg.contains("text, vision"), "{}", e.msg);
    assert!(LoraTarget::parse_list("").is_err());
    assert!(lora::parse_layers("3-1").is_err());
    assert!(lora::parse_layers("a-b").unwrap_err().msg.contains("0-11"));
    assert_eq!(lora::parse_layers("0-11").unwrap(), Some((0, 11)));
    assert_eq!(lora::parse_layers("4").unwrap(), Some((4, 4)));
    assert_eq!(lora::parse_layers("all").unwrap(), None);
    assert_eq!(
        LoraTarget::parse_list("v, q_proj,q").unwrap(),
        vec![LoraTarget::Q, LoraTarget::V]
    );
    assert!(LoraConfig::parse(0, 8.0, 0.0, "q", "text", None).is_err());
    assert!(LoraConfig::parse(4, 8.0, 1.0, "q", "text", None).is_err());
    // A layer range the tower does not have.
    let cfg = LoraConfig::parse(4, 8.0, 0.0, "q", "text", Some("0-11")).unwrap();
    let e = lora::apply_lora(&mut m, &cfg, 0).unwrap_err();
    assert!(e.msg.contains("2 layers"), "{}", e.msg);
    // Adapters twice.
    let cfg = LoraConfig::parse(4, 8.0, 0.0, "q", "text", None).unwrap();
    lora::apply_lora(&mut m, &cfg, 0).unwrap();
    assert!(lora::apply_lora(&mut m, &cfg, 0).is_err());
}
