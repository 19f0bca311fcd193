//! Memory is estimated before a run allocates it: trainable parameters with their
//! gradients and AdamW moments, and the activations one step keeps for the backward
//! pass, against what the system has available (`MemAvailable`). A run that cannot fit
//! is refused with the numbers and what to lower, instead of aborting halfway through an
//! allocation (`--rank 100000000` asked for 76.8 GB at once).
use crate::adapt::lora::{self, LoraConfig, Tower};
use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::nn::Module;

/// Bytes the kernel reports as available for new allocations without swapping
/// (`MemAvailable` in /proc/meminfo); None where that is unknown.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// What a training step holds, for [`train_parts`].
pub struct StepShape<'a> {
    /// `prompt`, `lora`, `textual-inversion`, `full`.
    pub method: &'a str,
    pub lora: &'a LoraConfig,
    pub batch: usize,
    /// Texts through the text tower per step (class prompts, or captions + negatives).
    pub text_rows: usize,
    /// Trainable values of prompt tuning / textual inversion (context or word rows).
    pub small_trainable: usize,
}

/// Named byte counts of one training step (parameters + gradients + AdamW state, and
/// activations kept for the backward pass), saturating instead of overflowing.
pub fn train_parts(model: &Clip, s: &StepShape) -> Result<Vec<(String, u128)>> {
    let c = &model.config;
    let (vt, tt) = (&c.vision.tower, &c.text.tower);
    let (seq_v, ctx) = (c.vision.seq() as u128, c.text.context as u128);
    let f = 4u128; // f32
                   // Per layer and row: q, k, v, attention output, two norms, residuals (~12 x width),
                   // the MLP's hidden activations twice, and the attention matrix per head.
    let layer = |t: &crate::clip::config::TowerConfig, seq: u128| {
        (12 * t.width as u128 + 2 * t.mlp as u128 + 2 * t.heads as u128 * seq) * seq * t.layers as u128
    };
    let vision_rows = s.batch as u128;
    let text_rows = s.text_rows as u128;
    let mut parts = vec![];
    let (trainable, through_vision) = match s.method {
        "lora" => {
            let mut n = 0u128;
            let mut saved = 0u128;
            for site in lora::selected_sites(model, s.lora)? {
                if let Some(l) = lora::linear(model, &site) {
                    let r = s.lora.rank as u128;
                    n = n.saturating_add(r.saturating_mul((l.d_in() + l.d_out()) as u128));
                    // x A^T of every row is kept for the backward pass, and its gradient.
                    let rows = match site.tower {
                        Tower::Vision => vision_rows * seq_v,
                        Tower::Text => text_rows * ctx,
                    };
                    saved = saved.saturating_add(2 * rows * r * f);
                }
            }
            parts.push((format!("LoRA rank {} activations", s.lora.rank), saved));
            (n, true)
        }
        "full" => (model.params().iter().map(|p| p.value.numel() as u128).sum(), true),
        _ => (s.small_trainable as u128, false),
    };
    parts.insert(
        0,
        (
            format!("{trainable} trainable parameters with gradients and AdamW state"),
            trainable.saturating_mul(4 * f),
        ),
    );
    let mut act = text_rows.saturating_mul(layer(tt, ctx)).saturating_mul(f);
    if through_vision {
        act = act.saturating_add(vision_rows.saturating_mul(layer(vt, seq_v)).saturating_mul(f));
    }
    parts.push((format!("tower activations for --batch {}", s.batch), act));
    Ok(parts)
}

/// [`check`] one step of `cliptune train` on `images` images (`classes` class prompts,
/// or captions with up to `negatives` hard negatives each) before anything is allocated.
pub fn check_train(
    model: &Clip,
    a: &crate::train::run::TrainArgs,
    batch: usize,
    images: usize,
    classes: usize,
    negatives: usize,
) -> Result<()> {
    let method = a.method.name();
    let batch = batch.min(images.max(1));
    let text_rows = if classes > 0 { classes } else { batch * (1 + negatives) };
    let width = model.config.text.tower.width;
    let small = match method {
        "prompt" => a.n_ctx * width * if a.class_specific { classes.max(1) } else { 1 },
        "textual-inversion" => a.new_tokens.len() * width,
        _ => 0,
    };
    let shape = StepShape {
        method,
        lora: &a.lora,
        batch,
        text_rows,
        small_trainable: small,
    };
    let lower = match method {
        "lora" => "--rank, --targets or --batch",
        "prompt" => "--n-ctx or the number of classes",
        _ => "--batch",
    };
    check(
        &format!("--method {method}"),
        &train_parts(model, &shape)?,
        available(),
        lower,
    )
}

fn gb(b: u128) -> String {
    format!("{:.1} GB", b as f64 / 1e9)
}

/// Refuse `parts` when their sum exceeds `available` bytes (None: unknown, allowed).
/// `what` names the run, `lower` the flags that shrink it.
pub fn check(what: &str, parts: &[(String, u128)], available: Option<u64>, lower: &str) -> Result<()> {
    let Some(avail) = available else { return Ok(()) };
    let total: u128 = parts.iter().fold(0u128, |a, (_, b)| a.saturating_add(*b));
    if total <= avail as u128 {
        return Ok(());
    }
    let list: Vec<String> = parts
        .iter()
        .filter(|(_, b)| *b > 0)
        .map(|(n, b)| format!("{n}: {}", gb(*b)))
        .collect();
    Err(Error::limit(format!(
        "{what} needs about {} of memory for one step ({}), but only {} is available (MemAvailable): lower {lower}",
        gb(total),
        list.join("; "),
        gb(avail as u128)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_the_parts_and_what_is_available() {
        let parts = vec![
            ("params".to_string(), 3_000_000_000u128),
            ("acts".to_string(), 1_000_000_000),
        ];
        assert!(check("train", &parts, Some(8_000_000_000), "--batch").is_ok());
        assert!(check("train", &parts, None, "--batch").is_ok());
        let e = check("--method lora", &parts, Some(2_000_000_000), "--rank or --batch").unwrap_err();
        assert!(
            e.msg.contains("4.0 GB") && e.msg.contains("params: 3.0 GB") && e.msg.contains("only 2.0 GB"),
            "{}",
            e.msg
        );
        let huge = vec![("x".to_string(), u128::MAX)];
        assert!(check("t", &huge, Some(u64::MAX), "y").is_err());
        assert!(available().is_some_and(|b| b > 0), "Linux reports MemAvailable");
    }
}
