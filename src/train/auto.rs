//! `cliptune train --method auto`: the guide's ladder (prompt tuning, linear probe, LoRA on
//! the text tower, LoRA on both towers, full fine-tuning as the last resort), each trained
//! by [`train`] on a seeded, stratified 80 % of the user's data and measured on the other
//! 20 % (validation top-1) and on a retention set (zero-shot top-1 relative to the base
//! model). It keeps the best validation top-1 whose retention meets `--min-retention`,
//! writes that adapter to `--out`, and writes `auto.json` + `auto.md`: every candidate
//! with its numbers and why the winner won.
//!
//! Retention is measured the way `cliptune demo` measures its held-out zero-shot
//! retention: the retention set's class names in the model's own `templates.txt` (else
//! the 80 OpenAI templates); a prompt adapter's learned context is applied to the
//! retention set's class names; a linear probe leaves both towers as they are.
use std::path::{Path, PathBuf};
use std::time::Instant;

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
}

impl Candidate {
    fn new(key: &str, method: Method, towers: &[Tower]) -> Candidate {
        Candidate {
            key: key.into(),
            method,
            towers: towers.to_vec(),
        }
    }
}

/// The guide's ladder, cheapest and safest first.
pub fn default_ladder() -> Vec<Candidate> {
    vec![
        Candidate::new("prompt", Method::Prompt, &[]),
        Candidate::new("linear-probe", Method::LinearProbe, &[]),
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

/// What happened to one candidate.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Trained {
        val_top1: f32,
        retention: f32,
        retention_top1: f32,
        steps: usize,
        seconds: f32,
    },
    Skipped(String),
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tried {
    pub candidate: Candidate,
    pub outcome: Outcome,
}

/// The ladder's result, also written as `auto.json` and `auto.md`.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoReport {
    pub min_retention: f32,
    pub retention_set: String,
    pub train_images: usize,
    pub val_images: usize,
    /// The base model's zero-shot top-1 on the validation split and the retention set.
    pub base_val_top1: f32,
    pub base_retention_top1: f32,
    pub tried: Vec<Tried>,
    /// Index into `tried` of the adapter written to `--out`.
    pub chosen: Option<usize>,
    /// Whether the chosen candidate meets `min_retention`.
    pub met: bool,
    pub why: String,
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
        probe: base.probe,
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
    };
    if let Some(i) = chosen {
        let from = scratch.0.join("candidates").join(&report.tried[i].candidate.key);
        copy_adapter(&from, &base.out)?;
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

/// Best validation top-1 among those meeting the floor (ties: the earlier, cheaper rung);
/// else the best retention (ties: the better validation top-1).
pub fn choose(tried: &[Tried], floor: f32) -> (Option<usize>, bool, String) {
    let trained: Vec<(usize, f32, f32)> = tried
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t.outcome {
            Outcome::Trained {
                val_top1, retention, ..
            } => Some((i, val_top1, retention)),
            _ => None,
        })
        .collect();
    let meeting: Vec<&(usize, f32, f32)> = trained.iter().filter(|t| t.2 >= floor).collect();
    if let Some(best) = meeting.iter().fold(None::<&&(usize, f32, f32)>, |b, t| match b {
        Some(b) if b.1 >= t.1 => Some(b),
        _ => Some(t),
    }) {
        let key = &tried[best.0].candidate.key;
        let others = meeting.len() - 1;
        let why = format!(
            "{key}: the best validation top-1 ({:.2}%) among the {} candidate{} whose retention meets {floor} \
             (its retention {:.3}){}",
            100.0 * best.1,
            meeting.len(),
            if meeting.len() == 1 { "" } else { "s" },
            best.2,
            if others == 0 && trained.len() > 1 {
                "; no other candidate met the floor".to_string()
            } else {
                String::new()
            }
        );
        return (Some(best.0), true, why);
    }
    match trained.iter().fold(None::<&(usize, f32, f32)>, |b, t| match b {
        Some(b) if b.2 > t.2 || (b.2 == t.2 && b.1 >= t.1) => Some(b),
        _ => Some(t),
    }) {
        Some(best) => (
            Some(best.0),
            false,
            format!(
                "no candidate's retention meets {floor}; kept {}, the best retention ({:.3}, validation top-1 {:.2}%)",
                tried[best.0].candidate.key,
                best.2,
                100.0 * best.1
            ),
        ),
        None => (None, false, "every candidate was skipped or failed".into()),
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

impl AutoReport {
    fn retention_of(&self, i: usize) -> Option<f32> {
        match self.tried.get(i)?.outcome {
            Outcome::Trained { retention, .. } => Some(retention),
            _ => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let rows: Vec<serde_json::Value> = self
            .tried
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut r = json!({"candidate": t.candidate.key, "method": t.candidate.method.name(), "chosen": self.chosen == Some(i)});
                let o = r.as_object_mut().expect("an object");
                match &t.outcome {
                    Outcome::Trained {
                        val_top1,
                        retention,
                        retention_top1,
                        steps,
                        seconds,
                    } => {
                        o.insert("status".into(), json!("trained"));
                        o.insert("val_top1".into(), json!(val_top1));
                        o.insert("retention".into(), json!(retention));
                        o.insert("retention_top1".into(), json!(retention_top1));
                        o.insert("meets_min_retention".into(), json!(*retention >= self.min_retention));
                        o.insert("steps".into(), json!(steps));
                        o.insert("seconds".into(), json!(seconds));
                    }
                    Outcome::Skipped(why) => {
                        o.insert("status".into(), json!("skipped"));
                        o.insert("why".into(), json!(why));
                    }
                    Outcome::Failed(why) => {
                        o.insert("status".into(), json!("failed"));
                        o.insert("why".into(), json!(why));
                    }
                }
                r
            })
            .collect();
        json!({
            "min_retention": self.min_retention,
            "retention_set": self.retention_set,
            "train_images": self.train_images,
            "val_images": self.val_images,
            "base": {"val_top1": self.base_val_top1, "retention_top1": self.base_retention_top1},
            "candidates": rows,
            "chosen": self.chosen.map(|i| self.tried[i].candidate.key.clone()),
            "meets_min_retention": self.met,
            "why": self.why,
        })
    }

    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# cliptune train --method auto\n\n{} training / {} validation images; retention: zero-shot top-1 on \
             {} relative to the base model (base {:.2}%), floor {}.\n\n\
             | candidate | validation top-1 | retention | meets floor | steps | time | note |\n\
             |---|---|---|---|---|---|---|\n\
             | zero-shot (base) | {:.2}% | 1.000 | yes | 0 | - | the starting point |\n",
            self.train_images,
            self.val_images,
            self.retention_set,
            100.0 * self.base_retention_top1,
            self.min_retention,
            100.0 * self.base_val_top1
        );
        for (i, t) in self.tried.iter().enumerate() {
            let mark = if self.chosen == Some(i) { " **chosen**" } else { "" };
            match &t.outcome {
                Outcome::Trained {
                    val_top1,
                    retention,
                    steps,
                    seconds,
                    ..
                } => s.push_str(&format!(
                    "| {}{mark} | {:.2}% | {retention:.3} | {} | {steps} | {seconds:.1}s | |\n",
                    t.candidate.key,
                    100.0 * val_top1,
                    if *retention >= self.min_retention { "yes" } else { "no" }
                )),
                Outcome::Skipped(why) => s.push_str(&format!(
                    "| {} | - | - | - | - | - | skipped: {why} |\n",
                    t.candidate.key
                )),
                Outcome::Failed(why) => s.push_str(&format!(
                    "| {} | - | - | - | - | - | failed: {} |\n",
                    t.candidate.key,
                    why.replace('|', "/").replace('\n', " ")
                )),
            }
        }
        s.push_str(&format!("\nChosen: {}\n", self.why));
        s
    }
}
