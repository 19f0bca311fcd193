//! `merge` of a half-precision base writes a checkpoint whose stored dtypes and config.json
//! `dtype` / `torch_dtype` agree (every tensor f32, "float32"), and that reloads as exactly the
//! merged model.
mod common;
use std::collections::BTreeMap;
use std::path::Path;

use cliptune::adapt::lora::{self, write_hf_weights};
use cliptune::backend::Device;
use cliptune::clip::{Clip, WeightStorage};
use cliptune::nn::Module;
use cliptune::DType;
use common::cli::{bin, fixtures, fresh as tmp, run_ok};
use serde_json::Value;

fn header(path: &Path) -> BTreeMap<String, String> {
    let b = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let h: Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    h.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| (k.clone(), v["dtype"].as_str().unwrap().to_string()))
        .collect()
}

/// The tiny HF fixture re-stored in `dtype` with config.json saying so.
fn half_base(dir: &Path, dtype: DType, name: &str) {
    let src = fixtures().join("tiny-clip/hf");
    let m = Clip::load(&src, &Device::Cpu, WeightStorage::AsStored).unwrap();
    write_hf_weights(&m, &dir.join("model.safetensors"), &[], Some(dtype)).unwrap();
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    cfg["torch_dtype"] = Value::from(name);
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
}

#[test]
fn merged_half_base_stores_what_its_config_says() {
    for (dtype, name, st) in [(DType::BF16, "bfloat16", "BF16"), (DType::F16, "float16", "F16")] {
        let d = tmp(name);
        let base = d.join("base");
        std::fs::create_dir_all(&base).unwrap();
        half_base(&base, dtype, name);
        assert!(header(&base.join("model.safetensors")).values().all(|t| t == st));
        let out = d.join("merged");
        run_ok(
            bin()
                .args(["merge", "--device", "cpu", "--model"])
                .arg(&base)
                .arg("--adapter")
                .arg(fixtures().join("lora/peft_adapter"))
                .arg("--out")
                .arg(&out),
        );
        let dtypes = header(&out.join("model.safetensors"));
        assert!(dtypes.len() > 50);
        assert!(
            dtypes.values().all(|t| t == "F32"),
            "{name}: mixed dtypes {:?}",
            dtypes.values().collect::<std::collections::BTreeSet<_>>()
        );
        let cfg: Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["torch_dtype"], "float32", "{name}");
        assert_eq!(cfg["dtype"], "float32", "{name}");

        // The file is the merged model exactly: same weights as merging in memory.
        let mut m = Clip::load(&base, &Device::Cpu, WeightStorage::AsStored).unwrap();
        lora::load_peft(&mut m, &fixtures().join("lora/peft_adapter")).unwrap();
        lora::merge(&mut m).unwrap();
        let re = Clip::load(&out, &Device::Cpu, WeightStorage::AsStored).unwrap();
        let want: BTreeMap<String, Vec<f32>> = m
            .params()
            .iter()
            .map(|p| (p.name.clone(), p.value.to_vec().unwrap()))
            .collect();
        let mut changed = 0;
        for p in re.params() {
            let w = &want[&p.name];
            let got = p.value.to_vec().unwrap();
            assert_eq!(got.len(), w.len(), "{}", p.name);
            assert!(
                got.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name}: {} differs from the merged model",
                p.name
            );
            let stored = p.value.dtype();
            assert_eq!(stored, DType::F32, "{}", p.name);
            changed += 1;
        }
        assert!(changed > 50);
        let _ = std::fs::remove_dir_all(&d);
    }
}
