//! CLIP towers against goldens produced by transformers and open_clip
//! (tools/make_clip_goldens.py) on a tiny random model, both layouts, both backends,
//! f16/bf16/f32 storage, sharded checkpoints, GELU + legacy EOS pooling.
mod common;
use std::path::{Path, PathBuf};

use cliptune::backend::Device;
use cliptune::clip::{Clip, TextInput, WeightStorage};
use cliptune::tensor::io::write_safetensors;
use cliptune::Tensor;
use safetensors::SafeTensors;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip")
}

struct Goldens {
    map: std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Goldens {
    fn load() -> Goldens {
        let bytes = std::fs::read(fixtures().join("goldens.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut map = std::collections::HashMap::new();
        for (name, view) in st.tensors() {
            let vals: Vec<f32> = match view.dtype() {
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
                d => panic!("unexpected dtype {d:?}"),
            };
            map.insert(name, (view.shape().to_vec(), vals));
        }
        Goldens { map }
    }
    fn get(&self, k: &str) -> &(Vec<usize>, Vec<f32>) {
        &self.map[k]
    }
    fn text_input(&self, key: &str) -> TextInput {
        let (shape, v) = self.get(key);
        let ids: Vec<u32> = v.iter().map(|&x| x as u32).collect();
        let eot = (0..shape[0])
            .map(|r| {
                ids[r * shape[1]..(r + 1) * shape[1]]
                    .iter()
                    .position(|&t| t == 49407)
                    .unwrap()
            })
            .collect();
        TextInput {
            ids,
            n: shape[0],
            len: shape[1],
            eot,
        }
    }
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn check(what: &str, model: &Clip, g: &Goldens, ids_key: &str, img_key: &str, txt_key: &str, tol: f32) {
    let (ps, pv) = g.get("pixel_values");
    let dev = model.device();
    let pixels = Tensor::from_slice(pv, ps, dev).unwrap();
    let img = model.encode_image(&pixels, 2).unwrap();
    let txt = model.encode_text(&g.text_input(ids_key), 3).unwrap();
    let ei = max_abs(&img.to_vec().unwrap(), &g.get(img_key).1);
    let et = max_abs(&txt.to_vec().unwrap(), &g.get(txt_key).1);
    eprintln!("{what}: image embeds max abs err {ei:.2e}, text embeds {et:.2e} (tol {tol:.0e})");
    assert!(ei <= tol && et <= tol, "{what}: image {ei}, text {et} > {tol}");
    if img_key == "image_embeds" {
        let logits = model.logits(&img, &txt).unwrap();
        let el = max_abs(&logits.to_vec().unwrap(), &g.get("logits_per_image").1);
        // Logits are embeds x exp(logit_scale) = 14.3.
        assert!(el <= tol * 15.0, "{what}: logits err {el}");
    }
}

#[test]
fn hf_layout_matches_transformers_on_cpu_and_gpu() {
    let g = Goldens::load();
    let dir = fixtures().join("hf");
    let m = Clip::load(&dir, &Device::Cpu, WeightStorage::AsStored).unwrap();
    check(
        "hf f16 storage, cpu",
        &m,
        &g,
        "input_ids_hf",
        "image_embeds",
        "text_embeds",
        1e-4,
    );
    let m = Clip::load(&dir, &Device::Cpu, WeightStorage::F32).unwrap();
    check(
        "hf f32 storage, cpu",
        &m,
        &g,
        "input_ids_hf",
        "image_embeds",
        "text_embeds",
        1e-4,
    );
    let m = Clip::load(&dir, &common::gpu(), WeightStorage::AsStored).unwrap();
    check(
        "hf f16 storage, wgpu",
        &m,
        &g,
        "input_ids_hf",
        "image_embeds",
        "text_embeds",
        1e-3,
    );
}

#[test]
fn open_clip_layout_matches_open_clip_and_hf() {
    let g = Goldens::load();
    let dir = fixtures().join("open_clip");
    let m = Clip::load(&dir, &Device::Cpu, WeightStorage::AsStored).unwrap();
    // open_clip pads with 0, HF with EOT: same embeddings either way (causal + EOT pooling).
    check(
        "open_clip bf16, cpu, open_clip ids",
        &m,
        &g,
        "input_ids_oc",
        "image_embeds",
        "text_embeds",
        1e-4,
    );
    check(
        "open_clip bf16, cpu, hf ids",
        &m,
        &g,
        "input_ids_hf",
        "image_embeds",
        "text_embeds",
        1e-4,
    );
    let m = Clip::load(&dir, &common::gpu(), WeightStorage::AsStored).unwrap();
    check(
        "open_clip bf16, wgpu",
        &m,
        &g,
        "input_ids_oc",
        "image_embeds",
        "text_embeds",
        1e-3,
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn tmpdir(name: &str) -> PathBuf {
    // A fresh directory per call, never one shared by the tests of this process.
    tempfile::Builder::new()
        .prefix(&format!("cliptune-test-{name}-"))
        .tempdir()
        .unwrap()
        .keep()
}

#[test]
fn gelu_and_legacy_eos_config() {
    let g = Goldens::load();
    let dir = tmpdir("gelu");
    copy_dir(&fixtures().join("hf"), &dir);
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    v["text_config"]["hidden_act"] = "gelu".into();
    v["vision_config"]["hidden_act"] = "gelu".into();
    v["text_config"]["eos_token_id"] = 2.into();
    std::fs::write(dir.join("config.json"), v.to_string()).unwrap();
    let m = Clip::load(&dir, &Device::Cpu, WeightStorage::AsStored).unwrap();
    check(
        "gelu + eos 2, cpu",
        &m,
        &g,
        "input_ids_hf",
        "gelu_image_embeds",
        "gelu_text_embeds",
        1e-4,
    );
}

/// Rewrite the fixture as f32 (and bf16) safetensors, and as a two-shard HF checkpoint.
#[test]
fn f32_bf16_and_sharded_checkpoints_load() {
    let g = Goldens::load();
    let src = Clip::load(&fixtures().join("hf"), &Device::Cpu, WeightStorage::F32).unwrap();
    use cliptune::nn::Module;
    let params = src.params();
    for dtype in [cliptune::DType::F32, cliptune::DType::BF16] {
        let dir = tmpdir(&format!("{dtype:?}"));
        std::fs::copy(fixtures().join("hf/config.json"), dir.join("config.json")).unwrap();
        let ts: Vec<(String, Tensor)> = params
            .iter()
            .map(|p| {
                let t = if p.name.ends_with("patch_embedding.weight") {
                    let w = p.value.dim(0);
                    p.value.reshape(&[w, 3, 8, 8]).unwrap()
                } else {
                    p.value.clone()
                };
                (p.name.clone(), t.cast(dtype).unwrap())
            })
            .collect();
        let refs: Vec<(&str, &Tensor)> = ts.iter().map(|(n, t)| (n.as_str(), t)).collect();
        if dtype == cliptune::DType::F32 {
            // Two shards + index, as transformers writes large models.
            let (a, b) = refs.split_at(refs.len() / 2);
            write_safetensors(&dir.join("model-00001-of-00002.safetensors"), a).unwrap();
            write_safetensors(&dir.join("model-00002-of-00002.safetensors"), b).unwrap();
            let map: serde_json::Map<String, serde_json::Value> = a
                .iter()
                .map(|(n, _)| (n.to_string(), "model-00001-of-00002.safetensors".into()))
                .chain(
                    b.iter()
                        .map(|(n, _)| (n.to_string(), "model-00002-of-00002.safetensors".into())),
                )
                .collect();
            std::fs::write(
                dir.join("model.safetensors.index.json"),
                serde_json::json!({ "weight_map": map }).to_string(),
            )
            .unwrap();
        } else {
            write_safetensors(&dir.join("model.safetensors"), &refs).unwrap();
        }
        let m = Clip::load(&dir, &Device::Cpu, WeightStorage::AsStored).unwrap();
        check(
            &format!("{dtype:?} checkpoint"),
            &m,
            &g,
            "input_ids_hf",
            "image_embeds",
            "text_embeds",
            1e-4,
        );
    }
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    // Missing dir, missing weights, truncated file, lying header, unknown layout, wrong shape.
    let err = Clip::load(Path::new("/nonexistent/model"), &Device::Cpu, WeightStorage::AsStored)
        .err()
        .unwrap();
    assert!(err.msg.contains("/nonexistent/model"), "{}", err.msg);

    let dir = tmpdir("bad");
    std::fs::copy(fixtures().join("hf/config.json"), dir.join("config.json")).unwrap();
    let err = Clip::load(&dir, &Device::Cpu, WeightStorage::AsStored).err().unwrap();
    assert!(
        err.msg.contains("model.safetensors") && err.msg.contains("not found"),
        "{}",
        err.msg
    );

    let full = std::fs::read(fixtures().join("hf/model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &full[..full.len() / 2]).unwrap();
    let err = Clip::load(&dir, &Device::Cpu, WeightStorage::AsStored).err().unwrap();
    assert!(err.msg.contains("model.safetensors"), "{}", err.msg);

    // A header claiming more data than the file holds.
    let mut lying = full.clone();
    let n = u64::from_le_bytes(lying[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(lying[8..8 + n].to_vec()).unwrap();
    let bumped = header.replacen("\"data_offsets\":[0,", "\"data_offsets\":[0,9", 1);
    if bumped.len() == header.len() + 1 {
        lying.splice(8..8 + n, bumped.bytes());
        lying[..8].copy_from_slice(&((n + 1) as u64).to_le_bytes());
    } else {
        lying[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    }
    std::fs::write(dir.join("model.safetensors"), &lying).unwrap();
    let err = Clip::load(&dir, &Device::Cpu, WeightStorage::AsStored).err().unwrap();
    assert!(err.msg.contains("model.safetensors"), "{}", err.msg);

    // Unknown layout: a safetensors file with other keys.
    let t = Tensor::zeros(&[2, 2], &Device::Cpu).unwrap();
    write_safetensors(&dir.join("model.safetensors"), &[("encoder.weight", &t)]).unwrap();
    let err = Clip::load(&dir, &Device::Cpu, WeightStorage::AsStored).err().unwrap();
    assert!(
        err.msg.contains("unknown key layout") && err.msg.contains("encoder.weight"),
        "{}",
        err.msg
    );

    // Wrong shape: the fixture with a config that disagrees.
    std::fs::copy(fixtures().join("hf/model.safetensors"), dir.join("model.safetensors")).unwrap();
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    v["projection_dim"] = 30.into();
    std::fs::write(dir.join("config.json"), v.to_string()).unwrap();
    let err = Clip::load(&dir, &Device::Cpu, WeightStorage::AsStored).err().unwrap();
    assert!(
        err.msg.contains("visual_projection.weight") && err.msg.contains("[24, 32]") && err.msg.contains("[30, 32]"),
        "{}",
        err.msg
    );
}

#[test]
fn vit_b32_random_embeds_a_batch_of_32() {
    // Shapes only (random weights): builds, embeds 32 images and 32 texts on CPU.
    let cfg = cliptune::clip::ClipConfig::named("vit-b-32").unwrap();
    let m = Clip::random(cfg, 1, &Device::Cpu).unwrap();
    let pixels = Tensor::randn(&[32, 3, 224, 224], 1.0, 2, &Device::Cpu).unwrap();
    let img = m.encode_image(&pixels, 32).unwrap();
    assert_eq!(img.shape(), &[32, 512]);
    let mut ids = vec![0u32; 32 * 77];
    let mut eot = vec![];
    for r in 0..32 {
        ids[r * 77] = 49406;
        let e = 5 + r % 20;
        for (j, id) in ids[r * 77 + 1..r * 77 + e].iter_mut().enumerate() {
            *id = (100 + r * 7 + j) as u32;
        }
        ids[r * 77 + e] = 49407;
        eot.push(e);
    }
    let txt = m
        .encode_text(
            &TextInput {
                ids,
                n: 32,
                len: 77,
                eot,
            },
            32,
        )
        .unwrap();
    assert_eq!(txt.shape(), &[32, 512]);
    let norms: Vec<f32> = img
        .to_vec()
        .unwrap()
        .chunks(512)
        .map(|r| r.iter().map(|x| x * x).sum::<f32>().sqrt())
        .collect();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4));
    eprintln!(
        "peak RSS after ViT-B/32 batch-32 embed: {:.0} MiB",
        cliptune::util::peak_rss_mib()
    );
}
