//! The optimisation loop every gradient-trained method shares: the schedule (warmup +
//! cosine), AdamW with gradient clipping, the NaN stop, progress and the JSONL log,
//! checkpoints (adapter + trainer state) every N steps and at the end, `--resume`,
//! `--stop-after`, and the retention guard.

use super::args::TrainArgs;
use super::late_loss::LateLoss;
use super::method::Method;
use super::objectives::{Objectives, Step};
use super::output::save;
use super::progress::Progress;
use super::retention_guard::{guard_act, retention_top1};
use super::schedule::{batches, lr_at, Schedule};
use super::state::{read_state, write_state};
use super::AdamW;
use crate::adapt::lora::set_dropout_seed;
use crate::adapt::trainable::Adaptation;
use crate::autograd::Tape;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::Clip;
use crate::data::training::TrainingData;
use crate::error::{Error, Result};
use crate::eval::suite::load_labeled;

/// Everything fixed for the run.
pub(crate) struct Run<'a> {
    pub(crate) args: &'a TrainArgs,
    /// The model before training (WiSE-FT's anchor, the manifest's fingerprint).
    pub(crate) base: &'a Clip,
    pub(crate) tok: &'a ClipTokenizer,
    pub(crate) data: &'a TrainingData,
    pub(crate) objectives: &'a Objectives,
    pub(crate) schedule: Schedule,
    pub(crate) lr: f32,
    /// The result-changing arguments, stored in every trainer state (`--resume` checks).
    pub(crate) record: &'a crate::guard::resume::RunRecord,
}

/// Train `model` (with `adaptation`) and save; returns (steps, first loss, last loss,
/// what the retention guard did).
pub(crate) fn run_loop(
    r: &Run,
    model: &mut Clip,
    mut adaptation: Adaptation,
) -> Result<(usize, f32, f32, Option<String>)> {
    let a = r.args;
    let Schedule {
        batch,
        epochs,
        total,
        warmup,
        ..
    } = r.schedule;
    let mut opt = AdamW::new(r.lr, a.weight_decay);
    opt.max_grad_norm = Some(a.max_grad_norm);
    // Resuming restores the trainable values, AdamW moments and the step; the batch
    // order, dropout masks and lr schedule are functions of (seed, step), so the
    // continuation is the uninterrupted run (bit for bit on the CPU backend).
    let start = if a.resume {
        r.record.check_resume(&a.out.join(super::state::STATE_FILE))?;
        let mut params = adaptation.params_mut(model);
        let s = read_state(&a.out, &mut params, &mut opt)?;
        crate::io::outdir::trim_log(&a.out.join("train_log.jsonl"), s)?;
        eprintln!("[train] resuming from step {s} of {total}");
        s
    } else {
        0
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(a.resume)
        .write(true)
        .truncate(!a.resume)
        .open(a.out.join("train_log.jsonl"))
        .map_err(|e| Error::io(a.out.join("train_log.jsonl").display(), e))?;
    let mut prog = Progress {
        total,
        log,
        show: a.progress,
        label: "train",
        // Started here, not at the first step, so the first rate and ETA are real.
        bar: Some(crate::progress::Progress::resuming(
            "train",
            "step",
            total as u64,
            a.progress,
            start as u64,
        )),
    };
    let retention = match &a.retention_set {
        Some(spec) => {
            let set = load_labeled(spec, None)?;
            let before = retention_top1(model, r.tok, &a.model_dir, &set)?;
            eprintln!(
                "[guard] zero-shot top-1 on {spec} before training: {:.2}% (floor {:.2}%)",
                100.0 * before,
                100.0 * before * a.min_retention
            );
            Some((set, before))
        }
        None => None,
    };
    let lora = a.method == Method::Lora;
    let mut guard: Option<String> = None;
    let mut losses = LateLoss::new();
    let mut step = start;
    let mut seen = 0;
    let mut notes = crate::guard::stop::StopNotes::new(&a.out, total, a.resume.then_some(start));
    // The method's files, the manifest ("final" once complete), then the trainer state;
    // each write atomic and finite, so a refused or interrupted checkpoint leaves the
    // previous one whole.
    let checkpoint = |model: &mut Clip, adaptation: &mut Adaptation, opt: &AdamW, step: usize, done: bool| {
        save(a, model, r.base, r.tok, adaptation, done)?;
        write_state(&a.out, &adaptation.params_mut(model), opt, step, r.record)
    };
    'outer: for epoch in 0..epochs {
        for idx in batches(r.data.len(), batch, epoch, a.seed) {
            seen += 1;
            if seen <= start {
                continue;
            }
            if step >= total || a.stop_after.is_some_and(|s| step >= s) {
                break 'outer;
            }
            if let Some(why) = crate::cancel::stop_requested() {
                losses.settle(&mut prog, &notes)?;
                checkpoint(model, &mut adaptation, &opt, step, false).map_err(|e| notes.non_finite(e, step))?;
                return Err(notes.interrupted(why, step));
            }
            opt.lr = lr_at(r.lr, step, warmup, total);
            if lora {
                set_dropout_seed(model, Some(a.seed ^ (step as u64) << 8));
            }
            let tape = Tape::new();
            let loss = r.objectives.loss(&Step {
                model,
                base: r.base,
                tok: r.tok,
                adaptation: &adaptation,
                data: r.data,
                tape: &tape,
                idx: &idx,
                step,
                device: &a.device,
            })?;
            let grads = tape.backward(&loss)?;
            opt.step(&mut adaptation.params_mut(model), &grads)?;
            losses.push((step, epoch, opt.lr), &loss.value, &mut prog, &notes)?;
            step += 1;
            if a.ckpt_every > 0 && step % a.ckpt_every == 0 && step < total {
                losses.settle(&mut prog, &notes)?;
                checkpoint(model, &mut adaptation, &opt, step, false).map_err(|e| notes.non_finite(e, step))?;
                notes.checkpointed(step);
            }
            if let Some((set, before)) = &retention {
                if a.retention_every > 0 && (step % a.retention_every == 0 || step == total) {
                    losses.settle(&mut prog, &notes)?;
                    set_dropout_seed(model, None);
                    let now = retention_top1(model, r.tok, &a.model_dir, set)?;
                    let ratio = if *before > 0.0 { now / before } else { 1.0 };
                    prog.record(serde_json::json!({"step": step, "retention": ratio, "retention_top1": now}))?;
                    if ratio < a.min_retention {
                        let msg = guard_act(a, model, r.tok, set, *before, now, step)?;
                        eprintln!("\n[guard] {msg}");
                        guard = Some(msg);
                        break 'outer;
                    }
                }
            }
        }
    }
    losses.settle(&mut prog, &notes)?;
    if lora {
        set_dropout_seed(model, None);
    }
    // A guard stop (other than LoRA's scale-back) keeps the last checkpoint as it is.
    // A run cut short by --stop-after is marked partial ("final": false) until resumed.
    if guard.is_none() || lora {
        let done = step >= total || guard.is_some();
        checkpoint(model, &mut adaptation, &opt, step, done).map_err(|e| notes.non_finite(e, step))?;
    }
    Ok((step, losses.first, losses.last, guard))
}
