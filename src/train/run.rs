//! `cliptune train`: every method on a frozen base (except `full`), composed from
//!
//! - the data ([`crate::data::training`]),
//! - what the method trains ([`crate::adapt::trainable`]),
//! - the objectives ([`super::objectives`]),
//! - the loop ([`super::train_loop`]: AdamW with linear warmup + cosine decay, gradient
//!   clipping, the NaN stop, progress with ETA, a JSONL log, atomic checkpoints every N
//!   steps and at the end, the retention guard).
//!
//! Output directory (an adapter `--adapter DIR` loads): `cliptune_adapter.json` (method,
//! base model, fingerprint) plus the method's files: PEFT `adapter_config.json` +
//! `adapter_model.safetensors` (lora), `prompt.safetensors` (prompt),
//! `textual_inversion.safetensors` + `tokenizer.json` (textual-inversion),
//! `linear_probe.json` (linear-probe), or a full HF checkpoint (full, after WiSE-FT).
use std::time::Instant;

use super::linear_probe::train_linear_probe;
use super::lora_scale::{self, LoraScale};
use super::objectives::kgcoop::HandTemplate;
use super::objectives::Objectives;
use super::output::save_lora_scaled;
use super::schedule::Schedule;
use super::train_loop::{run_loop, Run};
use crate::adapt::trainable::{Adaptation, MethodOptions};
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::{Clip, WeightStorage};
use crate::data::training::{load_reference, load_training_data};
use crate::error::{Error, Result};

pub use super::args::{TrainArgs, TrainSummary};
pub use super::method::Method;
pub(crate) use super::progress::Progress;
pub(crate) use super::schedule::batches;
pub use super::schedule::lr_at;
pub(crate) use super::state::{read_state, write_state};

pub fn train(a: TrainArgs) -> Result<TrainSummary> {
    let t0 = Instant::now();
    if a.batch == 0 || a.epochs == 0 {
        return Err(Error::invalid("--batch and --epochs must be at least 1"));
    }
    // CoOp starts from, and KgCoOp anchors to, the model's own template where it ships one.
    let hand = match a.method {
        Method::Prompt => Some(HandTemplate::of_model(&a.model_dir)?),
        _ => None,
    };
    // Full fine-tuning updates every weight: those need f32 storage (AdamW keeps f32 state).
    let storage = if a.method == Method::Full {
        WeightStorage::F32
    } else {
        WeightStorage::AsStored
    };
    let mut model = Clip::load(&a.model_dir, &a.device, storage)?;
    let mut tok = ClipTokenizer::for_model_dir(&a.model_dir)?;
    // Held for the whole run: one writer per output directory.
    let claimed = crate::io::outdir::claim(&crate::io::outdir::OutDir {
        out: &a.out,
        resume: a.resume,
        marker: "cliptune_adapter.json",
        not_ours: "is not a cliptune adapter",
        state_file: super::state::STATE_FILE,
        what: "train",
        method: Some(a.method.name()),
        owned: &crate::io::outdir::TRAIN_OUTPUTS,
    })?;
    let a = TrainArgs {
        resume: claimed.resume,
        ctx_init: a
            .ctx_init
            .or_else(|| hand.as_ref().and_then(HandTemplate::default_ctx_init)),
        ..a
    };
    let lr = a.lr.unwrap_or(a.method.default_lr());
    if a.method == Method::Lora && !(1e-5..=1e-4).contains(&lr) {
        eprintln!("warning: --lr {lr:e} is outside the usual LoRA range 1e-5..1e-4");
    }
    if a.method == Method::LinearProbe {
        if let Some(spec) = &a.objectives.reference {
            return Err(Error::invalid(format!(
                "--reference {spec}: the linear probe leaves both towers unchanged, so there is nothing for a \
                 reference term to keep; it applies to --method lora, full and prompt"
            )));
        }
        return train_linear_probe(&a, &model, &tok, t0);
    }

    let data = load_training_data(&a.data, a.classes_file.as_deref(), &model, &a.model_dir)?;
    // `--lora-scale auto` trains on a stratified 80 % and keeps the rest to choose the scale.
    let (data, scale_sweep) = match (a.method, a.lora_scale) {
        (Method::Lora, LoraScale::Auto) => {
            let (sweep, train_idx) = lora_scale::prepare(&a, &data)?;
            let base_ret = lora_scale::base_retention(&a, &sweep, &model, &tok)?;
            eprintln!(
                "[lora-scale] auto: training on {} images, choosing the scale on {} held out and on {} ({} images, \
                 base zero-shot top-1 {:.2}%), floor {}",
                train_idx.len(),
                sweep.val_idx.len(),
                sweep.retention_spec,
                sweep.retention.len(),
                100.0 * base_ret,
                a.min_retention
            );
            (lora_scale::select(&data, &train_idx), Some((sweep, data, base_ret)))
        }
        _ => (data, None),
    };
    // The batch the run will really use (the small-data floor may cap --batch) is what the
    // learnability and memory checks judge.
    let schedule = Schedule::new(data.len(), a.batch, a.epochs, a.max_steps, a.warmup, a.min_steps);
    let max_negatives = data.negatives.iter().map(Vec::len).max().unwrap_or(0);
    if data.captions {
        let (px, per) = (&data.pixels, data.per_image());
        crate::guard::learnable::check_pairs(&a.data, px, per, &data.texts, schedule.batch, max_negatives > 0)?;
    } else {
        crate::guard::learnable::check_classes(&a.data, &data.labels, &data.classes, a.method.name())?;
    }
    let (images, classes) = (data.len(), data.classes.len());
    crate::guard::memory::check_train(&model, &a, schedule.batch, images, classes, max_negatives)?;
    let base = model.clone(); // immutable tensors: no copy until a parameter changes
    let opts = MethodOptions {
        lora: &a.lora,
        n_ctx: a.n_ctx,
        ctx_init: a.ctx_init.as_deref(),
        class_specific: a.class_specific,
        new_tokens: &a.new_tokens,
        init_token: a.init_token.as_deref(),
        seed: a.seed,
    };
    let mut adaptation = match a.method {
        Method::Prompt => Adaptation::prompt(&model, &tok, &data, &opts)?,
        Method::TextualInversion => {
            crate::guard::new_words::check_new_words(&tok, &a.new_tokens)?;
            Adaptation::textual_inversion(&model, &mut tok, &data, &a.data, &opts)?
        }
        Method::Lora => Adaptation::lora(&mut model, &opts)?,
        Method::Full => {
            eprintln!("warning: --method full trains every weight: the last resort. Retention is measured by `cliptune eval`; use --wise-alpha < 1 to walk back toward the original.");
            Adaptation::full(&mut model)
        }
        Method::LinearProbe => unreachable!("handled above"),
    };
    let trainable = adaptation.count(&model);
    eprintln!(
        "[train] {} on {} ({} images), {trainable} trainable parameters, lr {lr:e}",
        a.method.name(),
        a.data,
        data.len()
    );
    if let (Some(h), Adaptation::Prompt(p)) = (&hand, &mut adaptation) {
        p.template = Some(h.template.clone());
        let init = match &a.ctx_init {
            Some(i) => format!("{i:?}"),
            None => format!("{} random vectors", p.n_ctx),
        };
        let anchor = match a.objectives.kgcoop {
            w if w > 0.0 => format!("KgCoOp weight {w} anchors to it"),
            _ => "KgCoOp off".into(),
        };
        eprintln!(
            "[train] template {:?} ({}); context init {init}; {anchor}",
            h.template,
            h.source()
        );
    }
    a.objectives.check(&adaptation)?;
    let reference = match &a.objectives.reference {
        Some(spec) => Some(load_reference(spec, &model, &a.model_dir)?),
        None => None,
    };
    let reference_digest = reference
        .as_ref()
        .map(|r| crate::guard::resume::data_digest(&r.pixels, &[], &[], &r.captions, &[]));
    let objectives = Objectives::new(
        &model,
        &base,
        &tok,
        &adaptation,
        &data,
        &a.objectives,
        hand.as_ref()
            .map_or(super::objectives::CLASS_TEMPLATE, |h| h.template.as_str()),
        reference,
        schedule.batch,
        &a.device,
    )?;
    let digest =
        crate::guard::resume::data_digest(&data.pixels, &data.labels, &data.classes, &data.texts, &data.negatives);
    let weights = crate::io::fingerprint::weights_fingerprint(&base)?;
    let record = crate::guard::resume::for_train(&a, lr, &schedule, &digest, reference_digest.as_deref(), &weights);
    let total = schedule.total;
    let run = Run {
        args: &a,
        base: &base,
        tok: &tok,
        data: &data,
        objectives: &objectives,
        schedule,
        lr,
        record: &record,
    };
    let (steps, first_loss, last_loss, guard) = run_loop(&run, &mut model, adaptation)?;
    let mut scale_error = None;
    if a.method == Method::Lora && steps >= total {
        match (&scale_sweep, a.lora_scale, &guard) {
            (_, _, Some(_)) if a.lora_scale != LoraScale::Fixed(1.0) => {
                eprintln!("[lora-scale] not applied: the retention guard already scaled the update back")
            }
            (Some((sweep, all, base_ret)), _, None) => {
                let (factor, met, tried, why) = lora_scale::sweep(&a, sweep, &mut model, &tok, all, *base_ret)?;
                eprintln!("[lora-scale] chose {why}");
                let info = lora_scale::to_json(factor, &tried, &why, sweep, a.min_retention);
                save_lora_scaled(&a, &model, &base, factor, info)?;
                if !met {
                    scale_error = Some(Error::invalid(format!(
                        "--lora-scale auto: no scale keeps --min-retention {}: wrote the adapter at x{factor} \
                         (the best retention) to {}; lower --min-retention or train less",
                        a.min_retention,
                        a.out.display()
                    )));
                }
            }
            (None, LoraScale::Fixed(f), None) if f != 1.0 => {
                lora_scale::set_factor(&mut model, a.lora.alpha, f);
                save_lora_scaled(
                    &a,
                    &model,
                    &base,
                    f,
                    serde_json::json!({"factor": f, "chosen_by": "--lora-scale"}),
                )?;
                eprintln!(
                    "[lora-scale] the update is kept at x{f} (lora_alpha {})",
                    a.lora.alpha * f
                );
            }
            _ => {}
        }
    }
    if let Some(e) = scale_error {
        return Err(e);
    }
    Ok(TrainSummary {
        guard,
        steps,
        first_loss,
        last_loss,
        trainable,
        seconds: t0.elapsed().as_secs_f32(),
        out: a.out.clone(),
    })
}
