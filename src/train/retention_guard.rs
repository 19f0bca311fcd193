//! The retention guard: zero-shot top-1 on a general labelled set, measured before
//! training and every `--retention-every` steps; below `--min-retention` of its starting
//! value, LoRA scales its update back and other methods stop.
use std::path::Path;

use super::args::TrainArgs;
use super::method::Method;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::Clip;
use crate::error::Result;
use crate::tensor::Tensor;

/// Zero-shot top-1 of the current model (adapters included) on the retention set.
pub(crate) fn retention_top1(
    model: &Clip,
    tok: &ClipTokenizer,
    dir: &Path,
    set: &crate::eval::suite::LabeledSet,
) -> Result<f32> {
    let t = vec!["a photo of a {}.".to_string()];
    Ok(crate::eval::suite::zero_shot(model, tok, Some(dir), set, &t)?.top1)
}

/// The guard fired: LoRA scales its update back (largest of 3/4, 1/2, 1/4, 0 that meets
/// the floor); other methods stop, keeping the last checkpoint written.
pub(crate) fn guard_act(
    a: &TrainArgs,
    model: &mut Clip,
    tok: &ClipTokenizer,
    set: &crate::eval::suite::LabeledSet,
    before: f32,
    now: f32,
    step: usize,
) -> Result<String> {
    let floor = a.min_retention;
    if a.method != Method::Lora {
        return Ok(format!(
            "step {step}: retention {:.3} fell below --min-retention {floor} (zero-shot top-1 {:.2}% -> {:.2}%): stopped; the adapter saved at the last checkpoint is kept",
            now / before.max(1e-9),
            100.0 * before,
            100.0 * now
        ));
    }
    let originals: Vec<(crate::adapt::lora::Site, Tensor)> = crate::adapt::lora::adapter_sites(model)
        .into_iter()
        .filter_map(|s| {
            crate::adapt::lora::linear(model, &s)
                .and_then(|l| l.lora.as_ref())
                .map(|l| (s, l.b.value.clone()))
        })
        .collect();
    for factor in [0.75f32, 0.5, 0.25, 0.0] {
        for (site, b) in &originals {
            if let Some(l) = crate::adapt::lora::linear_mut(model, site).and_then(|l| l.lora.as_mut()) {
                l.b.value = b.scale(factor)?;
            }
        }
        let r = retention_top1(model, tok, &a.model_dir, set)?;
        if r >= floor * before || factor == 0.0 {
            return Ok(format!(
                "step {step}: retention {:.3} fell below --min-retention {floor}: scaled the LoRA update back by {factor} (zero-shot top-1 {:.2}% -> {:.2}% -> {:.2}%) and stopped",
                now / before.max(1e-9),
                100.0 * before,
                100.0 * now,
                100.0 * r
            ));
        }
    }
    unreachable!("factor 0 restores the base")
}
