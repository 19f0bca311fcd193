//! `cliptune pretrain`: a CLIP trained from scratch on an image-caption file, both towers,
//! symmetric contrastive loss with in-batch negatives and a learned temperature (CLIP's
//! recipe at toy scale). This is how the embedded cliptune-mini is made (see
//! `tools/pretrain_cliptune_mini.sh`).
//!
//! The output is a Hugging Face `CLIPModel` directory that loads like any other:
//! `config.json`, `model.safetensors` (f16), a pruned `tokenizer.json` (only the CLIP BPE
//! tokens the corpus and `--vocab-texts` use: a ~6k-row embedding table instead of 49,408),
//! `preprocessor_config.json`, `templates.txt` (the zero-shot prompts matching the captions),
//! plus `pretrain_log.jsonl`, `loss_curve.png` and `loss_curve.svg` (the same chart, its text
//! real text), `metrics.json` and `trainer_state.safetensors`
//! (f32 weights + AdamW moments: `--resume` continues bit for bit on the CPU backend).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::late_loss::LateLoss;
use super::run::{batches, read_state, write_state, Progress};
use super::AdamW;
use crate::adapt::lora::write_hf_weights;
use crate::autograd::{Tape, Var};
use crate::clip::config::ClipConfig;
use crate::clip::preprocess::{preprocess_files, PreprocessConfig};
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::zero_shot::tokenize;
use crate::clip::Clip;
use crate::data::captions::load_captions;
use crate::data::report::report_captions;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::io::write_atomic;
use crate::tensor::{Rng, Tensor};
use crate::{DType, Device};

/// Marks a directory as written by `cliptune pretrain` (so a rerun may write into it).
pub const MARKER: &str = "cliptune_pretrain.json";
/// CLIP clamps the learned temperature at 100.
const MAX_LOGIT_SCALE: f32 = 4.605_170_2; // ln(100)

pub struct PretrainArgs {
    /// Caption file (.csv/.tsv/.jsonl), several captions per image allowed.
    pub data: PathBuf,
    /// A named config (`cliptune-mini`, `cliptune-tiny`, `vit-b-32`, ...) or a directory
    /// with an HF `config.json`; the text vocabulary is replaced by the pruned tokenizer's.
    pub config: String,
    /// Text files (one text per line) whose words must stay in the pruned vocabulary:
    /// prompt templates, class names of the domains the model will meet.
    pub vocab_texts: Vec<PathBuf>,
    /// Zero-shot templates written to `templates.txt` and used for the held-out evaluation.
    pub templates: Vec<String>,
    pub out: PathBuf,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub weight_decay: f32,
    pub warmup: usize,
    pub max_grad_norm: f32,
    pub seed: u64,
    pub max_steps: Option<usize>,
    /// Stop after this many steps without changing the schedule (`--resume` continues).
    pub stop_after: Option<usize>,
    pub resume: bool,
    pub ckpt_every: usize,
    /// A labelled sprite sheet / class folder with captions: zero-shot top-1 and retrieval
    /// R@1 every `eval_every` steps and at the end.
    pub heldout: Option<PathBuf>,
    pub eval_every: usize,
    /// Random resized crops and random greyscale.
    pub augment: bool,
    pub device: Device,
    pub progress: bool,
}

pub struct PretrainSummary {
    pub steps: usize,
    pub first_loss: f32,
    pub last_loss: f32,
    pub parameters: usize,
    pub vocab: usize,
    pub seconds: f32,
    /// Final held-out metrics (zero-shot top-1, mean retrieval R@1), when a set was given.
    pub heldout: Option<(f32, f32)>,
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// HF `preprocessor_config.json` for square images of `size`: CLIP's resize/crop/normalise.
fn preprocessor_json(size: usize) -> serde_json::Value {
    serde_json::json!({
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": true, "size": {"shortest_edge": size}, "resample": 3,
        "do_center_crop": true, "crop_size": {"height": size, "width": size},
        "do_rescale": true, "rescale_factor": 1.0 / 255.0,
        "do_normalize": true,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "do_convert_rgb": true
    })
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_string_pretty(v).unwrap_or_default().into_bytes()
}

/// One augmented copy of a planar [3, s, s] image: a random crop (60-100 % of the area,
/// aspect 3/4..4/3) resized back bilinearly, then greyscale with probability 0.25 (the
/// target domains include grey photographs). Works on normalised values.
fn augment(px: &[f32], s: usize, cfg: &PreprocessConfig, rng: &mut Rng) -> Vec<f32> {
    let area = 0.6 + 0.4 * rng.uniform();
    let (lo, hi) = (0.75f32.ln(), (4.0f32 / 3.0).ln());
    let aspect = (lo + (hi - lo) * rng.uniform()).exp();
    let cw = ((area * aspect).sqrt() * s as f32).min(s as f32);
    let ch = ((area / aspect).sqrt() * s as f32).min(s as f32);
    let x0 = (s as f32 - cw) * rng.uniform();
    let y0 = (s as f32 - ch) * rng.uniform();
    let mut out = vec![0f32; 3 * s * s];
    for c in 0..3 {
        let src = &px[c * s * s..(c + 1) * s * s];
        for y in 0..s {
            let fy = (y0 + (y as f32 + 0.5) * ch / s as f32 - 0.5).clamp(0.0, (s - 1) as f32);
            let (y1, wy) = (fy.floor() as usize, fy - fy.floor());
            let y2 = (y1 + 1).min(s - 1);
            for x in 0..s {
                let fx = (x0 + (x as f32 + 0.5) * cw / s as f32 - 0.5).clamp(0.0, (s - 1) as f32);
                let (x1, wx) = (fx.floor() as usize, fx - fx.floor());
                let x2 = (x1 + 1).min(s - 1);
                let top = src[y1 * s + x1] * (1.0 - wx) + src[y1 * s + x2] * wx;
                let bot = src[y2 * s + x1] * (1.0 - wx) + src[y2 * s + x2] * wx;
                out[c * s * s + y * s + x] = top * (1.0 - wy) + bot * wy;
            }
        }
    }
    if rng.uniform() < 0.25 {
        let (m, sd) = (cfg.mean, cfg.std);
        for i in 0..s * s {
            let raw: Vec<f32> = (0..3).map(|c| out[c * s * s + i] * sd[c] + m[c]).collect();
            let l = 0.299 * raw[0] + 0.587 * raw[1] + 0.114 * raw[2];
            for c in 0..3 {
                out[c * s * s + i] = (l - m[c]) / sd[c];
            }
        }
    }
    out
}

/// Zero-shot top-1 and mean retrieval R@1 on the held-out set.
fn heldout_metrics(
    model: &Clip,
    tok: &ClipTokenizer,
    dir: &Path,
    set: &Path,
    templates: &[String],
) -> Result<(f32, f32)> {
    let spec = set.display().to_string();
    let labeled = crate::eval::suite::load_labeled(&spec, None)?;
    let zs = crate::eval::suite::zero_shot(model, tok, Some(dir), &labeled, templates)?;
    let r = crate::eval::suite::retrieval_eval(model, tok, Some(dir), set)?;
    let m = &r.metrics;
    Ok((zs.top1, 0.5 * (m.i2t[0] + m.t2i[0])))
}

/// What a fresh pretrain run clears from a previous one's directory first (the rest is
/// rewritten before the first step).
const OWNED: [&str; 7] = [
    MARKER,
    "trainer_state.safetensors",
    "pretrain_log.jsonl",
    "model.safetensors",
    "metrics.json",
    "loss_curve.png",
    "loss_curve.svg",
];

pub fn pretrain(a: PretrainArgs) -> Result<PretrainSummary> {
    let t0 = Instant::now();
    if a.batch < 2 || a.epochs == 0 {
        return Err(Error::invalid(
            "pretrain: --batch must be at least 2 (in-batch negatives) and --epochs at least 1",
        ));
    }
    if a.templates.iter().any(|t| !t.contains("{}")) || a.templates.is_empty() {
        return Err(Error::invalid("pretrain: every template needs a {} for the class name"));
    }
    let claimed = crate::io::outdir::claim(&crate::io::outdir::OutDir {
        out: &a.out,
        resume: a.resume,
        marker: MARKER,
        not_ours: "was not written by `cliptune pretrain`",
        state_file: "trainer_state.safetensors",
        what: "pretrain",
        method: None,
        owned: &OWNED,
    })?;
    let a = PretrainArgs {
        resume: claimed.resume,
        ..a
    };
    let records = load_captions(&a.data)?;
    if records.len() < a.batch {
        return Err(Error::invalid(format!(
            "{}: {} images, fewer than one batch of {}",
            a.data.display(),
            records.len(),
            a.batch
        )));
    }
    eprint!("{}", report_captions(&records));

    // ---- tokenizer and config ---------------------------------------------------------
    let tok = if a.resume {
        ClipTokenizer::from_file(&a.out.join("tokenizer.json"))?
    } else {
        let mut texts: Vec<String> = records.iter().flat_map(|r| r.captions.iter().cloned()).collect();
        for f in &a.vocab_texts {
            texts.extend(read_lines(f)?);
        }
        texts.extend(a.templates.iter().map(|t| t.replace("{}", "")));
        ClipTokenizer::embedded()?.pruned(&texts)?
    };
    let mut config = match Path::new(&a.config).join("config.json").is_file() {
        true => ClipConfig::from_dir(Path::new(&a.config))?,
        false => ClipConfig::named(&a.config)?,
    };
    config.text.vocab = tok.vocab_size();
    config.text.eot_id = tok.eos_id();
    config.text.pad_id = tok.eos_id();
    let size = config.vision.image_size;
    write_atomic(&a.out.join("config.json"), &json_bytes(&config.to_hf_json()))?;
    write_atomic(
        &a.out.join("preprocessor_config.json"),
        &json_bytes(&preprocessor_json(size)),
    )?;
    write_atomic(&a.out.join("templates.txt"), (a.templates.join("\n") + "\n").as_bytes())?;
    tok.save(&a.out.join("tokenizer.json"))?;
    let mut marker = serde_json::json!({
        "cliptune_version": env!("CARGO_PKG_VERSION"),
        "data": a.data.display().to_string(),
        "config": a.config,
        "epochs": a.epochs, "batch": a.batch, "lr": a.lr, "weight_decay": a.weight_decay,
        "warmup": a.warmup, "seed": a.seed, "augment": a.augment,
        "final": false,
    });
    write_atomic(&a.out.join(MARKER), &json_bytes(&marker))?;

    // ---- model and data -----------------------------------------------------------------
    let mut model = Clip::random(config.clone(), a.seed, &a.device)?;
    model.set_trainable(true);
    let parameters = model.num_trainable();
    let cfg = PreprocessConfig::from_model_dir(&a.out, size)?;
    let paths: Vec<PathBuf> = records.iter().map(|r| r.image.clone()).collect();
    let (px, _, _) = preprocess_files(&paths, &cfg, false)?;
    let texts: Vec<String> = records.iter().flat_map(|r| r.captions.iter().cloned()).collect();
    let per_image: Vec<usize> = records.iter().map(|r| r.captions.len()).collect();
    let record = crate::guard::resume::for_pretrain(
        &a,
        &crate::guard::resume::data_digest(&px, &per_image, &[], &texts, &[]),
    );
    let n = records.len();
    let per = 3 * size * size;
    let steps_per_epoch = n / a.batch; // full batches only: the loss compares like with like
    let mut total = steps_per_epoch * a.epochs;
    if let Some(m) = a.max_steps {
        total = total.min(m);
    }
    let warmup = a.warmup.min(total / 2);
    let mut opt = AdamW::new(a.lr, a.weight_decay);
    opt.max_grad_norm = Some(a.max_grad_norm);
    opt.decay_vectors = false;
    let start = if a.resume {
        record.check_resume(&a.out.join("trainer_state.safetensors"))?;
        let mut params = model.params_mut();
        let s = read_state(&a.out, &mut params, &mut opt)?;
        crate::io::outdir::trim_log(&a.out.join("pretrain_log.jsonl"), s)?;
        eprintln!("[pretrain] resuming from step {s} of {total}");
        s
    } else {
        0
    };
    eprintln!(
        "[pretrain] {} images, {} captions, vocabulary {} tokens, {parameters} parameters, {total} steps of {}",
        n,
        records.iter().map(|r| r.captions.len()).sum::<usize>(),
        tok.vocab_size(),
        a.batch
    );
    let log_path = a.out.join("pretrain_log.jsonl");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(a.resume)
        .write(true)
        .truncate(!a.resume)
        .open(&log_path)
        .map_err(|e| Error::io(log_path.display(), e))?;
    let mut prog = Progress {
        total,
        log,
        show: a.progress,
        label: "pretrain",
        bar: Some(crate::progress::Progress::resuming(
            "pretrain",
            "step",
            total as u64,
            a.progress,
            start as u64,
        )),
    };

    // Held-out metrics at `step`: one line in the log (and on the terminal).
    let evaluate = |model: &Clip, step: usize, prog: &mut Progress| -> Result<Option<(f32, f32)>> {
        let Some(h) = &a.heldout else { return Ok(None) };
        let (top1, r1) = heldout_metrics(model, &tok, &a.out, h, &a.templates)?;
        let line = serde_json::json!({"step": step, "eval_top1": top1, "heldout_r1": r1});
        writeln!(prog.log, "{line}").map_err(|e| Error::io("pretrain_log.jsonl", e))?;
        if a.progress {
            eprintln!(
                "\n[pretrain] step {step}: held-out zero-shot top-1 {:.2}%, retrieval R@1 {:.2}%",
                100.0 * top1,
                100.0 * r1
            );
        }
        Ok(Some((top1, r1)))
    };
    let save = |model: &Clip, opt: &AdamW, step: usize, prog: &mut Progress| -> Result<Option<(f32, f32)>> {
        write_hf_weights(model, &a.out.join("model.safetensors"), &[], Some(DType::F16))?;
        let mut m = model.clone();
        write_state(&a.out, &m.params_mut(), opt, step, &record)?;
        evaluate(model, step, prog)
    };

    // Step s's loss is checked while step s+1 is recorded (see `late_loss`); it is settled
    // before every save, evaluation and the interrupt, so nothing is written or measured
    // after a step whose loss was not finite.
    let mut losses = LateLoss::new();
    let mut step = start;
    let mut seen = 0;
    let mut heldout = None;
    let mut notes = crate::guard::stop::StopNotes::new(&a.out, total, a.resume.then_some(start));
    'outer: for epoch in 0..a.epochs {
        for idx in batches(n, a.batch, epoch, a.seed) {
            if idx.len() < a.batch {
                continue;
            }
            seen += 1;
            if seen <= start {
                continue;
            }
            if step >= total || a.stop_after.is_some_and(|s| step >= s) {
                break 'outer;
            }
            if let Some(why) = crate::cancel::stop_requested() {
                losses.settle(&mut prog, &notes)?;
                save(&model, &opt, step, &mut prog).map_err(|e| notes.non_finite(e, step))?;
                return Err(notes.interrupted(why, step));
            }
            opt.lr = super::run::lr_at(a.lr, step, warmup, total);
            // Everything random in a step is a function of (seed, step): resume is exact.
            let mut rng = Rng::new(a.seed ^ 0x5eed_0000 ^ (step as u64).wrapping_mul(0x9E37_79B9));
            let mut x = Vec::with_capacity(idx.len() * per);
            let mut texts = Vec::with_capacity(idx.len());
            for &i in &idx {
                let img = &px[i * per..(i + 1) * per];
                if a.augment {
                    x.extend(augment(img, size, &cfg, &mut rng));
                } else {
                    x.extend_from_slice(img);
                }
                let caps = &records[i].captions;
                texts.push(caps[rng.below(caps.len())].clone());
            }
            let tape = Tape::new();
            let x = Tensor::from_vec(x, &[idx.len(), 3, size, size], &a.device)?;
            let img = model.image_features(&tape, &tape.constant(x))?.l2norm()?;
            let (input, _) = tokenize(&model, &tok, &texts)?;
            let txt = model.text_features(&tape, &input)?.l2norm()?;
            let loss = Var::contrastive_loss(&img, &txt, &tape.param(&model.logit_scale))?;
            let grads = tape.backward(&loss)?;
            opt.step(&mut model.params_mut(), &grads)?;
            // CLIP's temperature clamp, on the device: reading the scale back would
            // wait for the GPU inside every step.
            model.logit_scale.value.clamp_max_assign(MAX_LOGIT_SCALE)?;
            losses.push((step, epoch, opt.lr), &loss.value, &mut prog, &notes)?;
            step += 1;
            if a.ckpt_every > 0 && step % a.ckpt_every == 0 && step < total {
                losses.settle(&mut prog, &notes)?;
                save(&model, &opt, step, &mut prog).map_err(|e| notes.non_finite(e, step))?;
                notes.checkpointed(step);
            } else if a.eval_every > 0 && step % a.eval_every == 0 && step < total {
                losses.settle(&mut prog, &notes)?;
                evaluate(&model, step, &mut prog)?;
            }
        }
    }
    losses.settle(&mut prog, &notes)?;
    if step > start || !a.out.join("model.safetensors").exists() {
        heldout = save(&model, &opt, step, &mut prog).map_err(|e| notes.non_finite(e, step))?;
    }
    drop(prog);
    // The loss curve (and held-out top-1) next to the model: a PNG, and the same chart as an
    // SVG whose titles and labels are real text (no HTML page: pretrain's other outputs are
    // files for programs, and `cliptune report` makes pages).
    if let Ok(log) = crate::report::read_log(&log_path) {
        let png = a.out.join("loss_curve.png");
        let pic = crate::report::chart::render(&crate::report::curves_chart(&[log]), &png.display().to_string())?;
        write_atomic(&png, &pic.png)?;
        let svg = crate::report::chart::standalone_svg(&pic.svg, "cliptune pretrain: training loss");
        write_atomic(&a.out.join("loss_curve.svg"), svg.as_bytes())?;
    }
    let seconds = t0.elapsed().as_secs_f32();
    let metrics = serde_json::json!({
        "steps": step, "total_steps": total, "first_loss": losses.first, "last_loss": losses.last,
        "parameters": parameters, "vocab": tok.vocab_size(), "images": n,
        "seconds_this_run": seconds,
        "heldout": a.heldout.as_ref().map(|h| h.display().to_string()),
        "heldout_zero_shot_top1": heldout.map(|h| h.0),
        "heldout_retrieval_r1_mean": heldout.map(|h| h.1),
        "device": a.device.name(),
    });
    write_atomic(&a.out.join("metrics.json"), &json_bytes(&metrics))?;
    marker["final"] = serde_json::Value::Bool(step >= total);
    marker["steps_done"] = serde_json::Value::from(step);
    write_atomic(&a.out.join(MARKER), &json_bytes(&marker))?;
    Ok(PretrainSummary {
        steps: step,
        first_loss: losses.first,
        last_loss: losses.last,
        parameters,
        vocab: tok.vocab_size(),
        seconds,
        heldout,
    })
}
