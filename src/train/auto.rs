//! `cliptune train --method auto`: the guide's ladder (prompt tuning, linear probes, LoRA on
//! the text tower, LoRA on both towers, full fine-tuning as the last resort), each trained
//! by [`train`] on a seeded, stratified 80 % of the user's data and measured on the other
//! 20 % (validation top-1) and on a retention set (zero-shot top-1 relative to the base
//! model). It keeps the best validation top-1 whose retention meets `--min-retention`,
//! retrains that rung on all the images (kept if its retention still meets the floor),
//! writes the adapter to `--out`, and writes `auto.json` + `auto.md`: every candidate
//! with its numbers, why the winner won and what the retraining gave.
//!
//! Retention is measured the way `cliptune demo` measures its held-out zero-shot
//! retention: the retention set's class names in the model's own `templates.txt` (else
//! the 80 OpenAI templates); a prompt adapter's learned context is applied to the
//! retention set's class names; a linear probe leaves both towers as they are.
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::linear_probe::ProbeOptions;
use super::linear_probe::PROBE_TEMPLATE;
use super::lora_scale::{retention_spec, templates_of, top1};
use super::objectives::ObjectiveWeights;
use super::run::{train, Method, TrainArgs};
use crate::adapt::bundle::{load_adapters, Adapters};
use crate::adapt::lora::Tower;
use crate::adapt::prompt::PromptLearner;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::{Clip, WeightStorage};
use crate::error::{Error, Result};
use crate::eval::adapted::classify_set;
use crate::eval::linear_probe::split_train_val;
use crate::eval::suite::{image_embeddings, load_labeled, zero_shot, ImageSource, LabeledSet};
use crate::tensor::io::write_atomic;

pub use super::auto_report::{choose, AutoReport, Outcome, Refit, Tried};

/// Fraction of each class held out for validation.
pub const VAL_FRACTION: f32 = 0.2;

/// One rung of the ladder.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Short name (the table's first column).
    pub key: String,
    pub method: Method,
    /// LoRA towers (ignored by other methods).
    pub towers: Vec<Tower>,
    /// The linear probe's fit (None: the shared `--probe-init`/`--probe-weight`).
    pub probe: Option<ProbeOptions>,
}

impl Candidate {
    fn new(key: &str, method: Method, towers: &[Tower]) -> Candidate {
        Candidate {
            key: key.into(),
            method,
            towers: towers.to_vec(),
            probe: None,
        }
    }
}

/// The guide's ladder, cheapest and safest first. The probe runs twice: from the zero-shot
/// classifier (CLAP; never below zero-shot with 1-4 shots) and from scratch (better once
/// the data outweighs a weak zero-shot start, as on a domain the model has never seen).
pub fn default_ladder() -> Vec<Candidate> {
    vec![
        Candidate::new("prompt", Method::Prompt, &[]),
        Candidate::new("linear-probe", Method::LinearProbe, &[]),
        Candidate {
            probe: Some(ProbeOptions::from_scratch()),
            ..Candidate::new("linear-probe-scratch", Method::LinearProbe, &[])
        },
        Candidate::new("lora-text", Method::Lora, &[Tower::Text]),
        Candidate::new("lora-both", Method::Lora, &[Tower::Text, Tower::Vision]),
        Candidate::new("full", Method::Full, &[]),
    ]
}

pub struct AutoArgs {
    /// Everything a candidate shares (model, data, out, schedule, seed, device, LoRA rank
    /// and targets, probe options); `method`, the LoRA towers, `lr`, `data`, `out` and
    /// the retention guard are set per candidate.
    pub train: TrainArgs,
    pub min_retention: f32,
    /// Seconds; candidates not yet started when it is used up are skipped.
    pub time_budget: Option<f32>,
    /// None: the model's own held-out set (`MODEL/heldout.json`), where it ships one.
    pub retention_set: Option<String>,
    pub ladder: Vec<Candidate>,
}

/// A subset of a labelled set, in memory or as file paths.
fn subset(set: &LabeledSet, idx: &[usize], name: String) -> LabeledSet {
    let source = match &set.source {
        ImageSource::Files(p) => ImageSource::Files(idx.iter().map(|&i| p[i].clone()).collect()),
        ImageSource::Memory(m) => ImageSource::Memory(idx.iter().map(|&i| m[i].clone()).collect()),
    };
    LabeledSet {
        name,
        source,
        labels: idx.iter().map(|&i| set.labels[i]).collect(),
        classes: set.classes.clone(),
    }
}

/// Write rows `idx` of `set` as a class-folder tree (folders `0000`, `0001`, ... in class
/// order, names in `classes.txt`) so every method's data loader reads them unchanged.
fn write_split(set: &LabeledSet, idx: &[usize], root: &Path) -> Result<PathBuf> {
    for k in 0..set.classes.len() {
        let d = root.join(format!("{k:04}"));
        std::fs::create_dir_all(&d).map_err(|e| Error::io(d.display(), e))?;
    }
    for (j, &i) in idx.iter().enumerate() {
        let dir = root.join(format!("{:04}", set.labels[i]));
        match &set.source {
            ImageSource::Files(p) => {
                let ext = p[i].extension().and_then(|e| e.to_str()).unwrap_or("png");
                let to = dir.join(format!("{j:06}.{ext}"));
                std::fs::copy(&p[i], &to).map_err(|e| Error::io(p[i].display(), e))?;
            }
            ImageSource::Memory(m) => {
                let to = dir.join(format!("{j:06}.png"));
                m[i].save(&to).map_err(|e| Error::io(to.display(), e))?;
            }
        }
    }
    let classes = root.join("classes.txt");
    let mut text = set.classes.join("\n");
    text.push('\n');
    write_atomic(&classes, text.as_bytes())?;
    Ok(classes)
}

/// Zero-shot top-1 on the retention set of a candidate's result.
fn retention_top1(
    model: &Clip,
    tok: &ClipTokenizer,
    model_dir: &Path,
    set: &LabeledSet,
    templates: &[String],
    ad: &Adapters,
) -> Result<f32> {
    match ad.prompt() {
        Some((_, learner)) => {
            // The learned context on the retention set's class names.
            let mut other = PromptLearner::new(model, tok, &set.classes, learner.n_ctx, None, false, 0)?;
            other.ctx.value = learner.ctx.value.clone();
            let cls = other.class_embeddings(model)?.to_vec()?;
            let img = image_embeddings(model, Some(model_dir), &set.source)?;
            top1(&img, &cls, model.config.projection_dim, &set.labels)
        }
        None => Ok(zero_shot(model, tok, Some(model_dir), set, templates)?.top1),
    }
}

/// The model a candidate produced, its tokenizer and its adapters.
fn load_result(a: &TrainArgs, method: Method, dir: &Path) -> Result<(Clip, ClipTokenizer, Adapters)> {
    if method == Method::Full {
        let model = Clip::load(dir, &a.device, WeightStorage::AsStored)?;
        let tok = ClipTokenizer::for_model_dir(dir)?;
        return Ok((model, tok, Adapters::default()));
    }
    let mut model = Clip::load(&a.model_dir, &a.device, WeightStorage::AsStored)?;
    let mut tok = ClipTokenizer::for_model_dir(&a.model_dir)?;
    let ad = load_adapters(&mut model, &mut tok, &[dir.to_path_buf()])?;
    Ok((model, tok, ad))
}

fn candidate_args(base: &TrainArgs, c: &Candidate, data: &Path, classes: &Path, out: &Path) -> TrainArgs {
    let mut lora = base.lora.clone();
    if !c.towers.is_empty() {
        lora.towers = c.towers.clone();
    }
    TrainArgs {
        method: c.method,
        model_dir: base.model_dir.clone(),
        data: data.display().to_string(),
        classes_file: Some(classes.to_path_buf()),
        out: out.to_path_buf(),
        epochs: base.epochs,
        batch: base.batch,
        lr: None,
        weight_decay: base.weight_decay,
        warmup: base.warmup,
        max_grad_norm: base.max_grad_norm,
        seed: base.seed,
        max_steps: base.max_steps,
        // --min-steps if given, else each method's own floor.
        min_steps: base.min_steps.or(c.method.default_min_steps()),
        ckpt_every: 0,
        lora,
        lora_scale: base.lora_scale,
        n_ctx: base.n_ctx,
        ctx_init: base.ctx_init.clone(),
        // Shared context: the one that can be measured on the retention set's classes.
        class_specific: false,
        new_tokens: vec![],
        init_token: None,
        wise_alpha: base.wise_alpha,
        device: base.device.clone(),
        progress: base.progress,
        // A LoRA rung choosing its own scale measures retention on the same set.
        retention_set: (base.lora_scale == crate::train::lora_scale::LoraScale::Auto)
            .then(|| base.retention_set.clone())
            .flatten(),
        min_retention: base.min_retention,
        retention_every: 0,
        resume: false,
        stop_after: None,
        probe: c.probe.unwrap_or(base.probe),
        objectives: candidate_objectives(&base.objectives, c.method),
    }
}

/// The shared objective weights, less the reference term for the methods other than LoRA
/// and full (the probe and textual inversion have none; prompt tuning's weighs class names,
/// on another scale than one `--reference-weight` shared by the ladder could serve).
fn candidate_objectives(o: &ObjectiveWeights, method: Method) -> ObjectiveWeights {
    if matches!(method, Method::Lora | Method::Full) {
        return o.clone();
    }
    ObjectiveWeights {
        reference: None,
        reference_weight: 0.0,
        ..o.clone()
    }
}

/// The candidates' scratch directory inside --out; removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the ladder. On success `out` holds the chosen adapter, `auto.json` and `auto.md`.
/// When no candidate meets `min_retention` the one with the best retention is written
/// (with the table) and the error says so.
pub fn run_auto(a: AutoArgs) -> Result<AutoReport> {
    let t0 = Instant::now();
    let base = &a.train;
    if !(a.min_retention > 0.0 && a.min_retention <= 1.0) {
        return Err(Error::invalid(format!(
            "--min-retention {} must be within (0, 1]: the fraction of the base model's zero-shot top-1 to keep",
            a.min_retention
        )));
    }
    if let Some(b) = a.time_budget {
        if !(b.is_finite() && b > 0.0) {
            return Err(Error::invalid(format!(
                "--time-budget {b} must be a number of seconds > 0"
            )));
        }
    }
    if a.ladder.is_empty() {
        return Err(Error::invalid("--method auto: the ladder is empty"));
    }
    if base.batch == 0 || base.epochs == 0 {
        return Err(Error::invalid("--batch and --epochs must be at least 1"));
    }
    let ret_spec = retention_spec(a.retention_set.as_deref(), &base.model_dir, "--method auto")?;
    // Held until the chosen adapter and the table are written: one writer per --out. A
    // previous run's files there are cleared first (the chosen method is not known yet).
    let _claimed = crate::io::outdir::claim(&crate::io::outdir::OutDir {
        out: &base.out,
        resume: false,
        marker: "cliptune_adapter.json",
        not_ours: "is not a cliptune adapter",
        state_file: super::state::STATE_FILE,
        what: "train",
        method: None,
        owned: &crate::io::outdir::TRAIN_OUTPUTS,
    })?;
    let ret_set = load_labeled(&ret_spec, None)?;
    if ret_set.is_empty() {
        return Err(Error::invalid(format!("{ret_spec}: the retention set has no images")));
    }
    let lower = base.data.to_lowercase();
    if lower.ends_with(".csv") || lower.ends_with(".tsv") || lower.ends_with(".jsonl") {
        return Err(Error::invalid(format!(
            "{}: --method auto chooses among classifiers and needs labelled images (class folders, a sprite \
             sheet or fashion-mnist:...), not a caption file",
            base.data
        )));
    }
    let set = load_labeled(&base.data, base.classes_file.as_deref())?;
    if set.classes.len() < 2 {
        return Err(Error::invalid(format!(
            "{}: --method auto needs at least 2 classes, found {}",
            base.data,
            set.classes.len()
        )));
    }
    let (tr, va) = split_train_val(set.len(), &set.labels, VAL_FRACTION, base.seed);
    if va.is_empty() {
        return Err(Error::invalid(format!(
            "{}: no class has 2 or more images, so nothing can be held out for validation; --method auto needs \
             at least one class with 2 images (classes with 1 image train only)",
            base.data
        )));
    }
    let val = subset(&set, &va, format!("{} (validation split)", base.data));
    // The candidates' runs live inside the claimed --out (one writer, the same file system
    // as the chosen adapter), named as a leftover (`.NAME.tmp-PID`): removed when this run
    // ends, and by the next run that claims --out if this one is killed.
    let scratch = Scratch(base.out.join(format!(".auto.tmp-{}", std::process::id())));
    if scratch.0.exists() {
        std::fs::remove_dir_all(&scratch.0).map_err(|e| Error::io(scratch.0.display(), e))?;
    }
    let train_dir = scratch.0.join("train");
    let classes_file = write_split(&set, &tr, &train_dir)?;

    let ret_templates = templates_of(&base.model_dir)?;
    let val_templates = vec![PROBE_TEMPLATE.to_string()];
    let (model0, tok0, ad0) = (
        Clip::load(&base.model_dir, &base.device, WeightStorage::AsStored)?,
        ClipTokenizer::for_model_dir(&base.model_dir)?,
        Adapters::default(),
    );
    let base_val = classify_set(&model0, &tok0, Some(&base.model_dir), &val, &val_templates, &ad0)?.top1;
    let base_ret = retention_top1(&model0, &tok0, &base.model_dir, &ret_set, &ret_templates, &ad0)?;
    drop(model0);
    eprintln!(
        "[auto] {} training / {} validation images, {} classes; retention on {ret_spec} ({} images); base \
         zero-shot: validation top-1 {:.2}%, retention-set top-1 {:.2}%; floor {:.2}",
        tr.len(),
        va.len(),
        set.classes.len(),
        ret_set.len(),
        100.0 * base_val,
        100.0 * base_ret,
        a.min_retention
    );

    let mut tried = vec![];
    for cand in &a.ladder {
        let elapsed = t0.elapsed().as_secs_f32();
        if let Some(b) = a.time_budget.filter(|b| elapsed >= *b) {
            eprintln!("[auto] {}: skipped (time budget {b:.0}s used: {elapsed:.0}s)", cand.key);
            tried.push(Tried {
                candidate: cand.clone(),
                outcome: Outcome::Skipped(format!("time budget {b:.0}s used up ({elapsed:.0}s elapsed)")),
            });
            continue;
        }
        eprintln!("[auto] training {} ...", cand.key);
        let dir = scratch.0.join("candidates").join(&cand.key);
        let t1 = Instant::now();
        let outcome = match train(candidate_args(base, cand, &train_dir, &classes_file, &dir)).and_then(|s| {
            let (m, t, ad) = load_result(base, cand.method, &dir)?;
            let v = classify_set(&m, &t, Some(&base.model_dir), &val, &val_templates, &ad)?.top1;
            let r = retention_top1(&m, &t, &base.model_dir, &ret_set, &ret_templates, &ad)?;
            Ok((s.steps, v, r))
        }) {
            Ok((steps, v, r)) => Outcome::Trained {
                val_top1: v,
                retention: if base_ret > 0.0 { r / base_ret } else { 1.0 },
                retention_top1: r,
                steps,
                seconds: t1.elapsed().as_secs_f32(),
            },
            // Ctrl-C / SIGTERM (or the caller's cancel) stops the ladder, not just this rung:
            // the candidates are scratch runs, so there is nothing to --resume.
            Err(e) if e.kind == crate::error::ErrorKind::Interrupted => {
                return Err(Error::interrupted(format!(
                    "--method auto stopped while training {}: the ladder is not resumable and no adapter was \
                     written to {}; run it again (--time-budget bounds its length)",
                    cand.key,
                    base.out.display()
                )))
            }
            Err(e) => Outcome::Failed(e.to_string()),
        };
        match &outcome {
            Outcome::Trained {
                val_top1,
                retention,
                seconds,
                ..
            } => eprintln!(
                "[auto] {}: validation top-1 {:.2}%, retention {retention:.3} ({seconds:.1}s)",
                cand.key,
                100.0 * val_top1
            ),
            Outcome::Failed(m) => eprintln!("[auto] {}: failed: {m}", cand.key),
            Outcome::Skipped(_) => {}
        }
        tried.push(Tried {
            candidate: cand.clone(),
            outcome,
        });
    }

    let (chosen, met, why) = choose(&tried, a.min_retention);
    // The chosen rung retrained on every image: the validation split only chose it, and
    // with a few hundred images a fifth of the data is worth having.
    let mut from = chosen.map(|i| scratch.0.join("candidates").join(&tried[i].candidate.key));
    let refit = match chosen.filter(|_| met) {
        None => None,
        Some(i) => {
            let cand = &tried[i].candidate;
            let elapsed = t0.elapsed().as_secs_f32();
            Some(match a.time_budget.filter(|b| elapsed >= *b) {
                Some(b) => Refit::Skipped(format!("time budget {b:.0}s used up ({elapsed:.0}s elapsed)")),
                None => {
                    eprintln!("[auto] retraining {} on all {} images ...", cand.key, set.len());
                    let all: Vec<usize> = (0..set.len()).collect();
                    let all_dir = scratch.0.join("all");
                    let dir = scratch.0.join("refit");
                    let result = write_split(&set, &all, &all_dir).and_then(|classes| {
                        train(candidate_args(base, cand, &all_dir, &classes, &dir))?;
                        let (m, t, ad) = load_result(base, cand.method, &dir)?;
                        retention_top1(&m, &t, &base.model_dir, &ret_set, &ret_templates, &ad)
                    });
                    match result {
                        Ok(r) => {
                            let retention = if base_ret > 0.0 { r / base_ret } else { 1.0 };
                            eprintln!("[auto] {} on all the images: retention {retention:.3}", cand.key);
                            if retention >= a.min_retention {
                                from = Some(dir);
                                Refit::Kept {
                                    images: set.len(),
                                    retention,
                                }
                            } else {
                                Refit::BelowFloor {
                                    images: set.len(),
                                    retention,
                                }
                            }
                        }
                        Err(e) if e.kind == crate::error::ErrorKind::Interrupted => {
                            return Err(Error::interrupted(format!(
                                "--method auto stopped while retraining {} on all the images: no adapter was written \
                                 to {}; run it again",
                                cand.key,
                                base.out.display()
                            )))
                        }
                        Err(e) => Refit::Failed(e.to_string()),
                    }
                }
            })
        }
    };
    let report = AutoReport {
        min_retention: a.min_retention,
        retention_set: ret_spec,
        train_images: tr.len(),
        val_images: va.len(),
        base_val_top1: base_val,
        base_retention_top1: base_ret,
        tried,
        chosen,
        met,
        why,
        refit,
    };
    if let Some(from) = &from {
        copy_adapter(from, &base.out)?;
    }
    write_atomic(
        &base.out.join("auto.json"),
        serde_json::to_string_pretty(&report.to_json())
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let md = report.to_markdown();
    write_atomic(&base.out.join("auto.md"), md.as_bytes())?;
    eprint!("{md}");
    match (chosen, met) {
        (Some(_), true) => Ok(report),
        (Some(i), false) => Err(Error::invalid(format!(
            "--method auto: no candidate keeps --min-retention {}; wrote the one with the best retention, {} \
             (retention {:.3}), to {} with the table in auto.md",
            a.min_retention,
            report.tried[i].candidate.key,
            report.retention_of(i).unwrap_or(0.0),
            base.out.display()
        ))),
        (None, _) => Err(Error::invalid(format!(
            "--method auto: no candidate was trained ({}); the table is in {}",
            report.why,
            base.out.join("auto.md").display()
        ))),
    }
}

/// Copy the files of `from` (one level, plus nothing else) into `to`, each atomically.
fn copy_adapter(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to.display(), e))?;
    let entries = std::fs::read_dir(from).map_err(|e| Error::io(from.display(), e))?;
    let mut files = vec![];
    for e in entries {
        let e = e.map_err(|e| Error::io(from.display(), e))?;
        if e.path().is_file() {
            files.push(e.path());
        }
    }
    files.sort();
    // The manifest last: until it is written, `to` is not yet a complete new adapter.
    files.sort_by_key(|p| p.file_name().is_some_and(|n| n == "cliptune_adapter.json"));
    for f in files {
        // Not the trainer state (the ladder's runs are not resumable), nor the candidate's
        // lock or other dot-files: replacing `to`'s lock file would detach the lock held on it.
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name == "trainer_state.safetensors" || name.starts_with('.') {
            continue;
        }
        let bytes = std::fs::read(&f).map_err(|e| Error::io(f.display(), e))?;
        write_atomic(&to.join(f.file_name().unwrap_or_default()), &bytes)?;
    }
    Ok(())
}
