//! What a run writes into `--out`: the method's files and the adapter manifest.

use super::args::TrainArgs;
use super::method::Method;
use crate::adapt::lora::{export_peft_with_base, save_hf_checkpoint};
use crate::adapt::prompt::model_fingerprint;
use crate::adapt::trainable::Adaptation;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::Clip;
use crate::error::Result;
use crate::nn::Module;
use crate::tensor::io::write_atomic;

/// The adapter manifest (one writer: `adapt::bundle`); a full fine-tune is a model
/// directory, marked with the same file so a rerun may write into it again.
pub(crate) fn write_manifest(a: &TrainArgs, model: &Clip, extra: serde_json::Value) -> Result<()> {
    use crate::adapt::bundle;
    let method = match a.method {
        Method::Lora => Some(bundle::Method::Lora),
        Method::Prompt => Some(bundle::Method::Prompt),
        Method::TextualInversion => Some(bundle::Method::TextualInversion),
        Method::LinearProbe => Some(bundle::Method::LinearProbe),
        Method::Full => None,
    };
    if let Some(method) = method {
        return bundle::write_manifest(&a.out, method, &a.model_dir.display().to_string(), model, extra).map(|_| ());
    }
    let mut m = serde_json::json!({
        "method": a.method.name(),
        "base_model": a.model_dir.display().to_string(),
        "fingerprint": model_fingerprint(model)?,
        "created": crate::adapt::bundle::utc_now(),
        "cliptune_version": env!("CARGO_PKG_VERSION"),
    });
    if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    write_atomic(
        &a.out.join("cliptune_adapter.json"),
        serde_json::to_string_pretty(&m).unwrap_or_default().as_bytes(),
    )
}

/// Write the method's files and the manifest (`last`: the run is complete). Full
/// fine-tuning writes its WiSE-FT model at every checkpoint, so the last good state is
/// always a usable model.
pub(crate) fn save(
    a: &TrainArgs,
    model: &Clip,
    base: &Clip,
    tok: &ClipTokenizer,
    adaptation: &Adaptation,
    last: bool,
) -> Result<()> {
    match adaptation {
        Adaptation::Prompt(p) => p.save(&a.out.join("prompt.safetensors"))?,
        Adaptation::TextualInversion(ti) => {
            ti.save(&a.out.join("textual_inversion.safetensors"))?;
            tok.save(&a.out.join("tokenizer.json"))?;
        }
        Adaptation::Lora => export_peft_with_base(model, &a.lora, &a.out, Some(&a.model_dir.display().to_string()))?,
        Adaptation::Full => {
            {
                // WiSE-FT: theta = (1 - alpha) * theta_0 + alpha * theta_ft.
                let mut merged = model.clone();
                let al = a.wise_alpha;
                for (p, p0) in merged.params_mut().into_iter().zip(base.params()) {
                    p.value = p
                        .value
                        .cast(crate::DType::F32)?
                        .scale(al)?
                        .add(&p0.value.cast(crate::DType::F32)?.scale(1.0 - al)?)?;
                    p.trainable = false;
                }
                save_hf_checkpoint(&merged, &a.model_dir, &a.out)?;
            }
        }
    }
    write_manifest(a, base, serde_json::json!({"final": last, "wise_alpha": a.wise_alpha}))
}

/// Rewrite a finished LoRA adapter whose update `model` now applies at `factor` x the
/// trained scale: PEFT's `lora_alpha` becomes alpha x factor (what PEFT and cliptune load),
/// and the manifest records the choice (`info`).
pub(crate) fn save_lora_scaled(
    a: &TrainArgs,
    model: &Clip,
    base: &Clip,
    factor: f32,
    info: serde_json::Value,
) -> Result<()> {
    let cfg = crate::adapt::lora::LoraConfig {
        alpha: a.lora.alpha * factor,
        ..a.lora.clone()
    };
    export_peft_with_base(model, &cfg, &a.out, Some(&a.model_dir.display().to_string()))?;
    write_manifest(
        a,
        base,
        serde_json::json!({"final": true, "wise_alpha": a.wise_alpha, "lora_scale": info}),
    )
}
