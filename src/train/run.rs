//! The training loop behind `cliptune train`: every method on a frozen base (except
//! `full`), AdamW with linear warmup + cosine decay, gradient clipping, progress with
//! ETA, a JSONL log, atomic checkpoints every N steps and at the end.
//!
//! Output directory (an adapter `--adapter DIR` loads): `cliptune_adapter.json` (method,
//! base model, fingerprint) plus the method's files: PEFT `adapter_config.json` +
//! `adapter_model.safetensors` (lora), `prompt.safetensors` (prompt),
//! `textual_inversion.safetensors` + `tokenizer.json` (textual-inversion),
//! `linear_probe.json` (linear-probe), or a full HF checkpoint (full, after WiSE-FT).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::AdamW;
use crate::adapt::lora::{apply_lora, export_peft_with_base, save_hf_checkpoint, set_dropout_seed, LoraConfig};
use crate::adapt::prompt::{model_fingerprint, PromptLearner};
use crate::adapt::textual_inversion::TextualInversion;
use crate::autograd::{Param, Tape, Var};
use crate::clip::preprocess::{preprocess_files, PreprocessConfig};
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::zero_shot::tokenize;
use crate::clip::{Clip, WeightStorage};
use crate::data::captions::load_captions;
use crate::data::report::{report_captions, report_classes};
use crate::error::{Error, Result};
use crate::eval::linear_probe::{split_train_val, sweep};
use crate::eval::suite::{image_embeddings, load_labeled, pixels, ImageSource};
use crate::nn::Module;
use crate::tensor::io::write_atomic;
use crate::tensor::{Rng, Tensor};
use crate::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Prompt,
    LinearProbe,
    Lora,
    TextualInversion,
    Full,
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Method> {
        Ok(match s {
            "prompt" => Method::Prompt,
            "linear-probe" => Method::LinearProbe,
            "lora" => Method::Lora,
            "textual-inversion" => Method::TextualInversion,
            "full" => Method::Full,
            _ => {
                return Err(Error::invalid(format!(
                    "--method '{s}': expected prompt, linear-probe, lora, textual-inversion or full"
                )))
            }
        })
    }
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Prompt => "prompt",
            Method::LinearProbe => "linear-probe",
            Method::Lora => "lora",
            Method::TextualInversion => "textual-inversion",
            Method::Full => "full",
        }
    }
    /// Defaults from practice: LoRA 1e-4, CoOp 2e-3, textual inversion 5e-3, full 1e-5.
    pub fn default_lr(self) -> f32 {
        match self {
            Method::Lora => 1e-4,
            Method::Prompt => 2e-3,
            Method::TextualInversion => 5e-3,
            Method::Full => 1e-5,
            Method::LinearProbe => 0.0,
        }
    }
}

pub struct TrainArgs {
    pub method: Method,
    pub model_dir: PathBuf,
    /// Class folders / `fashion-mnist:train[:N]`, or a caption file (.csv/.tsv/.jsonl).
    pub data: String,
    pub classes_file: Option<PathBuf>,
    pub out: PathBuf,
    pub epochs: usize,
    pub batch: usize,
    pub lr: Option<f32>,
    pub weight_decay: f32,
    pub warmup: Option<usize>,
    pub max_grad_norm: f32,
    pub seed: u64,
    pub max_steps: Option<usize>,
    pub ckpt_every: usize,
    pub lora: LoraConfig,
    pub n_ctx: usize,
    pub ctx_init: Option<String>,
    pub class_specific: bool,
    pub new_tokens: Vec<String>,
    pub init_token: Option<String>,
    pub wise_alpha: f32,
    pub device: Device,
    /// Print progress to stderr.
    pub progress: bool,
    /// Retention guard: a general labelled set whose zero-shot top-1 must stay above
    /// `min_retention` x its value before training (checked every `retention_every` steps).
    pub retention_set: Option<String>,
    pub min_retention: f32,
    pub retention_every: usize,
    /// Continue from `out/trainer_state.safetensors` (bit-for-bit on the CPU backend).
    pub resume: bool,
    /// Stop after this many steps without changing the schedule (a time-boxed run that
    /// `resume` continues exactly).
    pub stop_after: Option<usize>,
}

/// What a run produced.
pub struct TrainSummary {
    /// What the retention guard did, if it acted.
    pub guard: Option<String>,
    pub steps: usize,
    pub first_loss: f32,
    pub last_loss: f32,
    pub trainable: usize,
    pub seconds: f32,
    pub out: PathBuf,
}

fn is_caption_file(data: &str) -> bool {
    let l = data.to_lowercase();
    l.ends_with(".csv") || l.ends_with(".tsv") || l.ends_with(".jsonl")
}

/// lr at `step` (0-based): linear warmup to `base`, then cosine decay to 0.
pub fn lr_at(base: f32, step: usize, warmup: usize, total: usize) -> f32 {
    if step < warmup {
        return base * (step + 1) as f32 / warmup as f32;
    }
    let progress = (step - warmup) as f32 / (total - warmup).max(1) as f32;
    base * 0.5 * (1.0 + (std::f32::consts::PI * progress.min(1.0)).cos())
}

/// The output directory may be new, empty, or one this tool wrote before (it holds
/// `marker`): never a directory holding someone else's files. `not_ours` finishes the
/// refusal ("is not a cliptune adapter").
pub(crate) fn prepare_out(out: &Path, resume: bool, marker: &str, not_ours: &str) -> Result<()> {
    if resume && !out.join(STATE_FILE).exists() {
        return Err(Error::invalid(format!(
            "--resume: {} holds no {STATE_FILE} to resume from",
            out.display()
        )));
    }
    if out.exists() {
        let non_empty = std::fs::read_dir(out)
            .map_err(|e| Error::io(out.display(), e))?
            .next()
            .is_some();
        if non_empty && !out.join(marker).exists() {
            return Err(Error::invalid(format!(
                "{}: exists, is not empty and {not_ours}; choose another --out",
                out.display()
            )));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out.display(), e))
}

/// The adapter manifest (one writer: `adapt::bundle`); a full fine-tune is a model
/// directory, marked with the same file so a rerun may write into it again.
fn write_manifest(a: &TrainArgs, model: &Clip, extra: serde_json::Value) -> Result<()> {
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
        "created": format!("{:?}", std::time::SystemTime::now()),
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

/// Progress line + JSONL log.
pub(crate) struct Progress {
    pub(crate) t0: Instant,
    pub(crate) total: usize,
    pub(crate) log: std::fs::File,
    pub(crate) show: bool,
    /// Progress-line prefix: "train" or "pretrain".
    pub(crate) label: &'static str,
}

impl Progress {
    pub(crate) fn step(&mut self, step: usize, epoch: usize, loss: f32, lr: f32) -> Result<()> {
        let line = serde_json::json!({"step": step + 1, "epoch": epoch, "loss": loss, "lr": lr});
        writeln!(self.log, "{line}").map_err(|e| Error::io("train_log.jsonl", e))?;
        if self.show {
            let el = self.t0.elapsed().as_secs_f32();
            let rate = (step + 1) as f32 / el.max(1e-6);
            let eta = (self.total - step - 1) as f32 / rate.max(1e-6);
            eprint!(
                "\r[{}] step {:>5}/{}  epoch {epoch}  loss {loss:.4}  lr {lr:.2e}  {rate:.2} steps/s  ETA {eta:.0}s   ",
                self.label,
                step + 1,
                self.total
            );
            if step + 1 == self.total {
                eprintln!();
            }
        }
        Ok(())
    }
}

/// Batches of indices for each epoch, shuffled with the seed.
pub(crate) fn batches(n: usize, batch: usize, epoch: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed ^ (epoch as u64).wrapping_mul(0x9E37));
    for i in (1..n).rev() {
        idx.swap(i, rng.below(i + 1));
    }
    idx.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
}

fn rows(t: &[f32], idx: &[usize], width: usize) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| t[i * width..(i + 1) * width].iter().copied())
        .collect()
}

pub fn train(a: TrainArgs) -> Result<TrainSummary> {
    let t0 = Instant::now();
    if a.batch == 0 || a.epochs == 0 {
        return Err(Error::invalid("--batch and --epochs must be at least 1"));
    }
    // Full fine-tuning updates every weight: those need f32 storage (AdamW keeps f32 state).
    let storage = if a.method == Method::Full {
        WeightStorage::F32
    } else {
        WeightStorage::AsStored
    };
    let mut model = Clip::load(&a.model_dir, &a.device, storage)?;
    let mut tok = ClipTokenizer::for_model_dir(&a.model_dir)?;
    let captions = is_caption_file(&a.data);
    prepare_out(&a.out, a.resume, "cliptune_adapter.json", "is not a cliptune adapter")?;
    let lr = a.lr.unwrap_or(a.method.default_lr());
    if a.method == Method::Lora && !(1e-5..=1e-4).contains(&lr) {
        eprintln!("warning: --lr {lr:e} is outside the usual LoRA range 1e-5..1e-4");
    }
    let dir = Some(a.model_dir.as_path());

    if a.method == Method::LinearProbe {
        return train_linear_probe(&a, &model, t0);
    }

    // ---- data -------------------------------------------------------------------
    // Either labelled images (CE against class prompts / prompt learner) or captions
    // (contrastive, in-batch negatives + hard negatives).
    let (px, labels, classes, texts, negatives): (Tensor, Vec<usize>, Vec<String>, Vec<String>, Vec<Vec<String>>) =
        if captions {
            let records = load_captions(Path::new(&a.data))?;
            eprint!("{}", report_captions(&records));
            let cfg = PreprocessConfig::from_model_dir(&a.model_dir, model.config.vision.image_size)?;
            let paths: Vec<PathBuf> = records.iter().map(|r| r.image.clone()).collect();
            let (data, kept, _) = preprocess_files(&paths, &cfg, false)?;
            let (h, w) = cfg.crop;
            let px = Tensor::from_vec(data, &[kept.len(), 3, h, w], &Device::Cpu)?;
            let texts = records.iter().map(|r| r.captions[0].clone()).collect();
            let negs = records.iter().map(|r| r.negatives.clone()).collect();
            (px, vec![], vec![], texts, negs)
        } else {
            let set = load_labeled(&a.data, a.classes_file.as_deref())?;
            if let ImageSource::Files(paths) = &set.source {
                let li = crate::data::class_folders::LabeledImages {
                    images: paths.clone(),
                    labels: set.labels.clone(),
                    classes: set.classes.clone(),
                };
                eprint!("{}", report_classes(&li));
            }
            let px = pixels(&model, dir, &set.source)?.to_device(&Device::Cpu)?;
            (px, set.labels.clone(), set.classes.clone(), vec![], vec![])
        };
    let n = px.dim(0);
    if n == 0 {
        return Err(Error::invalid(format!("{}: no training images", a.data)));
    }
    let per_img = px.numel() / n;
    let px_host = px.to_vec()?;
    let img_shape = px.shape()[1..].to_vec();

    // ---- method set-up ----------------------------------------------------------------
    let base = model.clone(); // immutable tensors: no copy until a parameter changes
    let mut prompt: Option<PromptLearner> = None;
    let mut ti: Option<TextualInversion> = None;
    let trainable = match a.method {
        Method::Prompt => {
            if captions {
                return Err(Error::invalid(
                    "--method prompt trains on labelled images (class folders), not a caption file",
                ));
            }
            let p = PromptLearner::new(
                &model,
                &tok,
                &classes,
                a.n_ctx,
                a.ctx_init.as_deref(),
                a.class_specific,
                a.seed,
            )?;
            let n = p.ctx.value.numel();
            prompt = Some(p);
            n
        }
        Method::TextualInversion => {
            if !captions || a.new_tokens.is_empty() {
                return Err(Error::invalid(
                    "--method textual-inversion needs --new-token WORD and a caption file whose captions use it",
                ));
            }
            let words: Vec<&str> = a.new_tokens.iter().map(|s| s.as_str()).collect();
            let lower: Vec<String> = texts.iter().map(|t| t.to_lowercase()).collect();
            for w in &words {
                if !lower.iter().any(|t| t.contains(&w.to_lowercase())) {
                    return Err(Error::invalid(format!(
                        "{}: no caption uses the new word '{w}': write captions like \"a photo of {w} on a table\"",
                        a.data
                    )));
                }
            }
            let t = TextualInversion::new(&model, &mut tok, &words, a.init_token.as_deref(), a.seed)?;
            let n = t.embeddings.value.numel();
            ti = Some(t);
            n
        }
        Method::Lora => apply_lora(&mut model, &a.lora, a.seed)?,
        Method::Full => {
            eprintln!("warning: --method full trains every weight: the last resort. Retention is measured by `cliptune eval`; use --wise-alpha < 1 to walk back toward the original.");
            model.set_trainable(true);
            model.num_trainable()
        }
        Method::LinearProbe => unreachable!(),
    };
    eprintln!(
        "[train] {} on {} ({} images), {trainable} trainable parameters, lr {lr:e}",
        a.method.name(),
        a.data,
        n
    );

    // Frozen image tower: cache features once (prompt tuning, textual inversion).
    let cached: Option<Vec<f32>> = match a.method {
        Method::Prompt | Method::TextualInversion => {
            let t = Tensor::from_vec(px_host.clone(), px.shape(), &a.device)?;
            Some(model.encode_image(&t, 64)?.to_vec()?)
        }
        _ => None,
    };
    let p_dim = model.config.projection_dim;
    // Class prompts for CE objectives of lora/full on labelled data.
    let class_prompts = if !captions && matches!(a.method, Method::Lora | Method::Full) {
        let t: Vec<String> = classes.iter().map(|c| format!("a photo of a {c}.")).collect();
        Some(tokenize(&model, &tok, &t)?.0)
    } else {
        None
    };

    let scale = model.logit_scale.value.item()?.exp();
    let steps_per_epoch = n.div_ceil(a.batch);
    let mut total = steps_per_epoch * a.epochs;
    if let Some(m) = a.max_steps {
        total = total.min(m);
    }
    let warmup = a.warmup.unwrap_or((total / 10).min(100));
    let mut opt = AdamW::new(lr, a.weight_decay);
    opt.max_grad_norm = Some(a.max_grad_norm);
    // Resuming restores the trainable values, AdamW moments and the step; the batch
    // order, dropout masks and lr schedule are functions of (seed, step), so the
    // continuation is the uninterrupted run (bit for bit on the CPU backend).
    let start = if a.resume {
        let mut params = trainable_params(a.method, &mut model, prompt.as_mut(), ti.as_mut());
        let s = read_state(&a.out, &mut params, &mut opt)?;
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
        t0: Instant::now(),
        total,
        log,
        show: a.progress,
        label: "train",
    };
    let retention = match &a.retention_set {
        Some(spec) => {
            let set = load_labeled(spec, None)?;
            let before = retention_top1(&model, &tok, &a.model_dir, &set)?;
            eprintln!(
                "[guard] zero-shot top-1 on {spec} before training: {:.2}% (floor {:.2}%)",
                100.0 * before,
                100.0 * before * a.min_retention
            );
            Some((set, before))
        }
        None => None,
    };
    let mut guard: Option<String> = None;
    let (mut first, mut last) = (f32::NAN, f32::NAN);
    let mut step = start;
    let mut seen = 0;
    'outer: for epoch in 0..a.epochs {
        for idx in batches(n, a.batch, epoch, a.seed) {
            seen += 1;
            if seen <= start {
                continue;
            }
            if step >= total || a.stop_after.is_some_and(|s| step >= s) {
                break 'outer;
            }
            opt.lr = lr_at(lr, step, warmup, total);
            if a.method == Method::Lora {
                set_dropout_seed(&mut model, Some(a.seed ^ (step as u64) << 8));
            }
            let tape = Tape::new();
            let loss = match a.method {
                Method::Prompt => {
                    let f = Tensor::from_vec(
                        rows(cached.as_ref().unwrap(), &idx, p_dim),
                        &[idx.len(), p_dim],
                        &a.device,
                    )?;
                    let y = Tensor::from_u32(idx.iter().map(|&i| labels[i] as u32).collect(), &[idx.len()], &a.device)?;
                    prompt.as_ref().unwrap().loss(&model, &tape, &f, &y)?
                }
                Method::TextualInversion => {
                    let f = Tensor::from_vec(
                        rows(cached.as_ref().unwrap(), &idx, p_dim),
                        &[idx.len(), p_dim],
                        &a.device,
                    )?;
                    let mut t: Vec<String> = idx.iter().map(|&i| texts[i].clone()).collect();
                    t.extend(idx.iter().flat_map(|&i| negatives[i].iter().cloned()));
                    let (input, _) = tokenize(&model, &tok, &t)?;
                    ti.as_ref().unwrap().loss_contrastive(&model, &tape, &f, &input)?
                }
                Method::Lora | Method::Full => {
                    let mut shape = vec![idx.len()];
                    shape.extend(&img_shape);
                    let x = Tensor::from_vec(rows(&px_host, &idx, per_img), &shape, &a.device)?;
                    let img = model.image_features(&tape, &tape.constant(x))?.l2norm()?;
                    if let Some(cp) = &class_prompts {
                        let txt = model.text_features(&tape, cp)?.l2norm()?;
                        let logits = class_logits(&img, &txt, scale)?;
                        let y =
                            Tensor::from_u32(idx.iter().map(|&i| labels[i] as u32).collect(), &[idx.len()], &a.device)?;
                        logits.cross_entropy(&y)?
                    } else {
                        let mut t: Vec<String> = idx.iter().map(|&i| texts[i].clone()).collect();
                        t.extend(idx.iter().flat_map(|&i| negatives[i].iter().cloned()));
                        let (input, _) = tokenize(&model, &tok, &t)?;
                        let txt = model.text_features(&tape, &input)?.l2norm()?;
                        Var::contrastive_loss(&img, &txt, &tape.param(&model.logit_scale))?
                    }
                }
                Method::LinearProbe => unreachable!(),
            };
            let l = match super::check_loss(&loss.value, step + 1) {
                Ok(l) => l,
                Err(e) => {
                    return Err(Error::non_finite(format!(
                        "{e}; stopped. {}",
                        if step >= a.ckpt_every {
                            format!("The last good checkpoint is in {}", a.out.display())
                        } else {
                            "No checkpoint was written yet.".into()
                        }
                    )));
                }
            };
            if first.is_nan() {
                first = l;
            }
            last = l;
            let grads = tape.backward(&loss)?;
            {
                let mut params = trainable_params(a.method, &mut model, prompt.as_mut(), ti.as_mut());
                opt.step(&mut params, &grads)?;
            }
            prog.step(step, epoch, l, opt.lr)?;
            step += 1;
            if a.ckpt_every > 0 && step % a.ckpt_every == 0 && step < total {
                save(&a, &model, &base, &tok, prompt.as_ref(), ti.as_ref(), false)?;
                write_state(
                    &a.out,
                    &trainable_params(a.method, &mut model, prompt.as_mut(), ti.as_mut()),
                    &opt,
                    step,
                )?;
            }
            if let Some((set, before)) = &retention {
                if a.retention_every > 0 && (step % a.retention_every == 0 || step == total) {
                    set_dropout_seed(&mut model, None);
                    let now = retention_top1(&model, &tok, &a.model_dir, set)?;
                    let ratio = if *before > 0.0 { now / before } else { 1.0 };
                    let line = serde_json::json!({"step": step, "retention": ratio, "retention_top1": now});
                    writeln!(prog.log, "{line}").map_err(|e| Error::io("train_log.jsonl", e))?;
                    if ratio < a.min_retention {
                        let msg = guard_act(&a, &mut model, &tok, set, *before, now, step)?;
                        eprintln!("\n[guard] {msg}");
                        guard = Some(msg);
                        break 'outer;
                    }
                }
            }
        }
    }
    if a.method == Method::Lora {
        set_dropout_seed(&mut model, None);
    }
    // A guard stop (other than LoRA's scale-back) keeps the last checkpoint as it is.
    if guard.is_none() || a.method == Method::Lora {
        save(&a, &model, &base, &tok, prompt.as_ref(), ti.as_ref(), true)?;
        write_state(
            &a.out,
            &trainable_params(a.method, &mut model, prompt.as_mut(), ti.as_mut()),
            &opt,
            step,
        )?;
    }
    Ok(TrainSummary {
        guard,
        steps: step,
        first_loss: first,
        last_loss: last,
        trainable,
        seconds: t0.elapsed().as_secs_f32(),
        out: a.out.clone(),
    })
}

/// The parameters a method trains (prompt context, new word rows, or the model's
/// trainable ones), in a fixed order.
fn trainable_params<'a>(
    method: Method,
    model: &'a mut Clip,
    prompt: Option<&'a mut PromptLearner>,
    ti: Option<&'a mut TextualInversion>,
) -> Vec<&'a mut Param> {
    match method {
        Method::Prompt => prompt.map(|p| p.params_mut()).unwrap_or_default(),
        Method::TextualInversion => ti.map(|t| t.params_mut()).unwrap_or_default(),
        _ => model.params_mut().into_iter().filter(|p| p.trainable).collect(),
    }
}

const STATE_FILE: &str = "trainer_state.safetensors";

/// Trainable values + AdamW moments + the step, keyed by parameter name.
pub(crate) fn write_state(out: &Path, params: &[&mut Param], opt: &AdamW, step: usize) -> Result<()> {
    let mut ts: Vec<(String, Tensor)> = vec![];
    for p in params {
        ts.push((format!("param/{}", p.name), p.value.clone()));
        if let Some((m, v)) = opt.moments(p.id) {
            ts.push((format!("m/{}", p.name), m.clone()));
            ts.push((format!("v/{}", p.name), v.clone()));
        }
    }
    let dev = params.first().map(|p| p.value.device().clone()).unwrap_or(Device::Cpu);
    ts.push((
        "step".into(),
        Tensor::from_u32(vec![step as u32, opt.step], &[2], &dev)?,
    ));
    let refs: Vec<(&str, &Tensor)> = ts.iter().map(|(n, t)| (n.as_str(), t)).collect();
    crate::tensor::io::write_safetensors(&out.join(STATE_FILE), &refs)
}

/// Load what `write_state` wrote into `params` and `opt`; returns the step to continue from.
pub(crate) fn read_state(out: &Path, params: &mut [&mut Param], opt: &mut AdamW) -> Result<usize> {
    let path = out.join(STATE_FILE);
    let bytes =
        std::fs::read(&path).map_err(|e| Error::io(path.display(), format!("{e} (nothing to --resume from)")))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::io(path.display(), format!("not a valid trainer state: {e}")))?;
    let get = |name: &str, want: &[usize], dev: &Device| -> Result<Option<Tensor>> {
        let Ok(v) = st.tensor(name) else { return Ok(None) };
        if v.shape().iter().product::<usize>() != want.iter().product::<usize>() {
            return Err(Error::shape(
                "resume",
                format!(
                    "{}: '{name}' has shape {:?}, the run needs {want:?}",
                    path.display(),
                    v.shape()
                ),
            ));
        }
        let data: Vec<f32> = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Some(Tensor::from_vec(data, want, dev)?))
    };
    for p in params.iter_mut() {
        let (shape, dev) = (p.value.shape().to_vec(), p.value.device().clone());
        p.value = get(&format!("param/{}", p.name), &shape, &dev)?.ok_or_else(|| {
            Error::invalid(format!(
                "{}: no saved value for '{}' (a state from another method or model?)",
                path.display(),
                p.name
            ))
        })?;
        if let (Some(m), Some(v)) = (
            get(&format!("m/{}", p.name), &shape, &dev)?,
            get(&format!("v/{}", p.name), &shape, &dev)?,
        ) {
            opt.set_moments(p.id, m, v);
        }
    }
    let s = st
        .tensor("step")
        .map_err(|_| Error::invalid(format!("{}: no 'step'", path.display())))?;
    let w: Vec<u32> = s
        .data()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    opt.step = w[1];
    Ok(w[0] as usize)
}

/// Zero-shot top-1 of the current model (adapters included) on the retention set.
fn retention_top1(model: &Clip, tok: &ClipTokenizer, dir: &Path, set: &crate::eval::suite::LabeledSet) -> Result<f32> {
    let t = vec!["a photo of a {}.".to_string()];
    Ok(crate::eval::suite::zero_shot(model, tok, Some(dir), set, &t)?.top1)
}

/// The guard fired: LoRA scales its update back (largest of 3/4, 1/2, 1/4, 0 that meets
/// the floor); other methods stop, keeping the last checkpoint written.
fn guard_act(
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

/// logits = exp(logit_scale) * img @ txt^T for normalised features; the scale stays
/// fixed for the class-prompt objective (read once before the loop).
fn class_logits(img: &Var, txt: &Var, scale: f32) -> Result<Var> {
    let (b, p) = (img.shape()[0], img.shape()[1]);
    let c = txt.shape()[0];
    let spec = crate::backend::MatmulSpec {
        batch: 1,
        m: b,
        n: c,
        k: p,
        trans_a: false,
        trans_b: true,
        b_shared: false,
    };
    img.matmul_spec(txt, None, crate::backend::Act::None, spec)?
        .scale(scale)
}

#[allow(clippy::too_many_arguments)]
fn save(
    a: &TrainArgs,
    model: &Clip,
    base: &Clip,
    tok: &ClipTokenizer,
    prompt: Option<&PromptLearner>,
    ti: Option<&TextualInversion>,
    last: bool,
) -> Result<()> {
    match a.method {
        Method::Prompt => prompt.unwrap().save(&a.out.join("prompt.safetensors"))?,
        Method::TextualInversion => {
            ti.unwrap().save(&a.out.join("textual_inversion.safetensors"))?;
            tok.save(&a.out.join("tokenizer.json"))?;
        }
        Method::Lora => export_peft_with_base(model, &a.lora, &a.out, Some(&a.model_dir.display().to_string()))?,
        Method::Full => {
            if last {
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
        Method::LinearProbe => {}
    }
    write_manifest(a, base, serde_json::json!({"final": last, "wise_alpha": a.wise_alpha}))
}

fn train_linear_probe(a: &TrainArgs, model: &Clip, t0: Instant) -> Result<TrainSummary> {
    let set = load_labeled(&a.data, a.classes_file.as_deref())?;
    let d = model.config.projection_dim;
    let x = image_embeddings(model, Some(&a.model_dir), &set.source)?;
    let (tr, va) = split_train_val(set.len(), &set.labels, 0.2, a.seed);
    let pick = |idx: &[usize]| (rows(&x, idx, d), idx.iter().map(|&i| set.labels[i]).collect::<Vec<_>>());
    let (xa, ya) = pick(&tr);
    let (xv, yv) = pick(&va);
    let (probe, tried) = sweep(&xa, &ya, &xv, &yv, tr.len(), va.len(), d, set.classes.len())?;
    for (l2, acc) in &tried {
        eprintln!("[linear-probe] l2 {l2:.1e}: validation top-1 {:.2}%", acc * 100.0);
    }
    let json = serde_json::json!({"classes": set.classes, "l2": probe.l2, "d": probe.d, "c": probe.c, "weight": probe.weight, "bias": probe.bias});
    write_atomic(&a.out.join("linear_probe.json"), json.to_string().as_bytes())?;
    write_manifest(a, model, serde_json::json!({"final": true, "classes": set.classes}))?;
    let acc = probe.accuracy(&x, &set.labels, set.len())?;
    Ok(TrainSummary {
        guard: None,
        steps: tried.len(),
        first_loss: 0.0,
        last_loss: 1.0 - acc,
        trainable: probe.weight.len() + probe.bias.len(),
        seconds: t0.elapsed().as_secs_f32(),
        out: a.out.clone(),
    })
}
