//! `cliptune train`: argument parsing for the training loop in `train::run`.
use std::path::PathBuf;

use clap::Args;
use cliptune::adapt::lora::LoraConfig;
use cliptune::train::auto::{default_ladder, run_auto, AutoArgs, Outcome};
use cliptune::train::lora_scale::LoraScale;
use cliptune::train::objectives::ObjectiveWeights;
use cliptune::train::run::{train, Method, TrainArgs, TrainSummary};
use cliptune::{Device, Result};

#[derive(Args)]
pub struct TrainCli {
    /// prompt (CoOp), linear-probe, lora, textual-inversion, full (last resort), or auto: try
    /// the ladder prompt, linear-probe, lora-text, lora-both, full on an 80/20 split of
    /// --data and keep the best validation top-1 whose retention meets --min-retention.
    #[arg(long)]
    method: String,
    #[arg(long)]
    model: PathBuf,
    /// Class folders (root/<class>/*.png), fashion-mnist:train[:N per class], a sprite
    /// sheet (NAME.json + NAME.png), or a caption file (.csv/.tsv/.jsonl: image,caption[,negatives]).
    #[arg(long)]
    data: String,
    #[arg(long)]
    classes_file: Option<PathBuf>,
    /// Adapter directory to write (new, empty, or a previous cliptune adapter).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 10, value_parser = super::args::positive_count)]
    epochs: usize,
    #[arg(long, default_value_t = 64, value_parser = super::args::positive_count)]
    batch: usize,
    /// Default per method: lora 1e-4, prompt 2e-3, textual-inversion 5e-3, full 1e-5.
    #[arg(long, value_parser = super::args::positive)]
    lr: Option<f32>,
    #[arg(long, default_value_t = 0.0, value_parser = super::args::non_negative)]
    weight_decay: f32,
    /// Warmup steps (default: 10 % of the steps, at most 100).
    #[arg(long)]
    warmup: Option<usize>,
    #[arg(long, default_value_t = 1.0, value_parser = super::args::positive)]
    max_grad_norm: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_parser = super::args::positive_count)]
    max_steps: Option<usize>,
    /// Floor on the optimizer steps for small data: the batch is capped at a quarter of
    /// the data and the epochs extended until the run has this many steps (default: lora
    /// and full 300, prompt and textual-inversion 200; 0 = exactly --epochs).
    #[arg(long)]
    min_steps: Option<usize>,
    /// Write the adapter every N steps (and always at the end).
    #[arg(long, default_value_t = 100)]
    checkpoint_every: usize,
    #[arg(long, default_value_t = 8, value_parser = super::args::positive_count)]
    rank: usize,
    #[arg(long, default_value_t = 16.0, value_parser = super::args::positive)]
    alpha: f32,
    #[arg(long, default_value_t = 0.0, value_parser = super::args::dropout)]
    lora_dropout: f32,
    /// LoRA targets: q,k,v,o,fc1,fc2.
    #[arg(long, default_value = "q,v")]
    targets: String,
    /// LoRA towers: text,vision.
    #[arg(long, default_value = "text,vision")]
    towers: String,
    /// LoRA layer range, e.g. 0-11.
    #[arg(long)]
    layers: Option<String>,
    /// LoRA: the factor on the trained update, saved as lora_alpha x factor (PEFT reads
    /// it): a number in (0, 4], or auto: train on a stratified 80 % of --data, then keep
    /// the factor (1, 0.8, ..., 0.1) with the best top-1 on the other 20 % whose retention
    /// on --retention-set (default: the model's heldout.json) meets --min-retention.
    #[arg(long, default_value = "1", value_name = "auto|F", allow_hyphen_values = true, value_parser = |s: &str| s.parse::<LoraScale>().map_err(|e| e.to_string()))]
    lora_scale: LoraScale,
    /// CoOp context vectors.
    #[arg(long, default_value_t = 16, value_parser = super::args::positive_count)]
    n_ctx: usize,
    /// CoOp: initialise the context from a phrase (sets the count), e.g. "a photo of a".
    /// Default: the words of the model's own template (first line of MODEL/templates.txt)
    /// when it reads "<words> {}.", else --n-ctx random vectors.
    #[arg(long)]
    ctx_init: Option<String>,
    #[arg(long)]
    class_specific: bool,
    /// Textual inversion: a new word, e.g. "<my-mug>" (repeatable).
    #[arg(long = "new-token")]
    new_tokens: Vec<String>,
    /// Textual inversion: initialise from this existing single-token word.
    #[arg(long)]
    init_token: Option<String>,
    /// Full fine-tuning: WiSE-FT weight toward the fine-tuned weights (1 = no ensembling).
    #[arg(long, default_value_t = 1.0, value_parser = super::args::fraction)]
    wise_alpha: f32,
    /// Retention guard: a general labelled set (class folders or fashion-mnist:test[:N])
    /// whose zero-shot top-1 is measured before training and every --retention-every steps.
    /// With --method auto: the set each candidate's retention is measured on (default: the
    /// model's own heldout.json where it ships one).
    #[arg(long)]
    retention_set: Option<String>,
    /// Stop (LoRA: scale the update back) when retention falls below this fraction. With
    /// --method auto: the floor a candidate's retention must meet to be chosen.
    #[arg(long, default_value_t = 0.98, value_parser = super::args::fraction)]
    min_retention: f32,
    #[arg(long, default_value_t = 50)]
    retention_every: usize,
    /// Continue an interrupted run from --out (bit for bit on the CPU backend).
    #[arg(long)]
    resume: bool,
    /// Stop after N steps keeping the schedule (continue later with --resume).
    #[arg(long, value_parser = super::args::positive_count)]
    stop_after: Option<usize>,
    /// Prompt tuning: KgCoOp weight, keeping the learned prompts' class embeddings near the
    /// hand-crafted ones: the model's first template (MODEL/templates.txt), else
    /// "a photo of a {}." (0 = plain CoOp).
    #[arg(long, default_value_t = 8.0)]
    kgcoop: f32,
    /// LoRA and full: feature-preservation weight, keeping the image and text features of
    /// the training batch near the frozen model's (0 = off).
    #[arg(long, default_value_t = 1.0)]
    feature_preservation: f32,
    /// A general captioned set (caption file, or a sprite sheet with captions) whose
    /// behaviour under the base model is kept: LoRA and full keep its features (see
    /// --reference-loss); prompt tuning keeps the learned context, applied to a sprite
    /// sheet's class names, near the hand-crafted prompt (KgCoOp on names it never trains on).
    #[arg(long)]
    reference: Option<String>,
    /// Weight of the --reference term.
    #[arg(long, default_value_t = 1.0)]
    reference_weight: f32,
    /// LoRA and full: what --reference keeps: features (the base model's image and caption
    /// embeddings, as LDIFS), image-features (image embeddings only), or similarity (its
    /// image-caption cosine similarities, ZSCL-style).
    #[arg(long, default_value = "features", value_name = "features|image-features|similarity")]
    reference_loss: String,
    /// Reference items (images, or class names for prompt tuning) per step; default: --batch.
    #[arg(long, value_parser = super::args::positive_count)]
    reference_batch: Option<usize>,
    /// Linear probe: start from the zero-shot text classifier ("a photo of a {}.") and hold
    /// it there (CLAP), or random: from zero with l2 swept on a 20 % validation split.
    #[arg(long, default_value = "zero-shot", value_name = "zero-shot|random")]
    probe_init: String,
    /// Linear probe from the zero-shot start: how strongly each class stays at its zero-shot
    /// weights; auto (CLAP: 0.1 x the zero-shot confidence on that class's images) or a
    /// number >= 0 for every class (0: unconstrained).
    #[arg(long, value_name = "auto|W")]
    probe_weight: Option<String>,
    /// --method auto: seconds after which candidates not yet started are skipped (the
    /// table says so).
    #[arg(long, value_name = "S", value_parser = super::args::positive)]
    time_budget: Option<f32>,
    #[arg(long, default_value = "auto")]
    device: String,
}

pub fn run(c: TrainCli) -> Result<TrainSummary> {
    let lora = LoraConfig::parse(
        c.rank,
        c.alpha,
        c.lora_dropout,
        &c.targets,
        &c.towers,
        c.layers.as_deref(),
    )?;
    if !(0.0..=1.0).contains(&c.wise_alpha) {
        return Err(cliptune::Error::invalid(format!(
            "--wise-alpha {} must be within 0..1",
            c.wise_alpha
        )));
    }
    let auto = c.method == "auto";
    if !auto && c.method != "lora" && c.lora_scale != LoraScale::Fixed(1.0) {
        return Err(cliptune::Error::invalid(format!(
            "--lora-scale {} applies to --method lora (or auto's LoRA rungs), not {}",
            c.lora_scale, c.method
        )));
    }
    if auto && c.lr.is_some() {
        return Err(cliptune::Error::invalid(
            "--lr with --method auto: each candidate trains at its own method's default rate; drop --lr",
        ));
    }
    if auto && (c.resume || c.stop_after.is_some()) {
        return Err(cliptune::Error::invalid(
            "--resume/--stop-after with --method auto: the ladder runs each candidate whole; drop them",
        ));
    }
    if !auto && c.time_budget.is_some() {
        return Err(cliptune::Error::invalid("--time-budget applies to --method auto only"));
    }
    // --method auto sets each candidate's method (and its default step floor).
    let method = if auto { Method::LinearProbe } else { c.method.parse()? };
    let args = TrainArgs {
        method,
        model_dir: c.model,
        data: c.data,
        classes_file: c.classes_file,
        out: c.out,
        epochs: c.epochs,
        batch: c.batch,
        lr: c.lr,
        weight_decay: c.weight_decay,
        warmup: c.warmup,
        max_grad_norm: c.max_grad_norm,
        seed: c.seed,
        max_steps: c.max_steps,
        // With --method auto each candidate takes its own method's floor unless given.
        min_steps: if auto {
            c.min_steps
        } else {
            c.min_steps.or(method.default_min_steps())
        },
        ckpt_every: c.checkpoint_every,
        lora,
        lora_scale: c.lora_scale,
        n_ctx: c.n_ctx,
        ctx_init: c.ctx_init,
        class_specific: c.class_specific,
        new_tokens: c.new_tokens,
        init_token: c.init_token,
        wise_alpha: c.wise_alpha,
        device: Device::select(c.device.parse()?)?,
        progress: true,
        retention_set: c.retention_set,
        min_retention: c.min_retention,
        retention_every: c.retention_every,
        resume: c.resume,
        stop_after: c.stop_after,
        objectives: ObjectiveWeights {
            kgcoop: c.kgcoop,
            feature_preservation: c.feature_preservation,
            reference_weight: if c.reference.is_some() { c.reference_weight } else { 0.0 },
            reference: c.reference,
            reference_loss: c.reference_loss.parse()?,
            reference_batch: c.reference_batch,
        },
        probe: cliptune::train::linear_probe::ProbeOptions::parse(&c.probe_init, c.probe_weight.as_deref())?,
    };
    if auto {
        let retention_set = args.retention_set.clone();
        let out = args.out.clone();
        let t0 = std::time::Instant::now();
        let r = run_auto(AutoArgs {
            min_retention: args.min_retention,
            time_budget: c.time_budget,
            retention_set,
            ladder: default_ladder(),
            train: args,
        })?;
        eprintln!("[train] --method auto: {}", r.why);
        // The ladder is several runs: the summary is the chosen one's steps, the whole
        // ladder's time, and no single loss curve (NaN).
        let steps = r
            .chosen
            .and_then(|i| match r.tried[i].outcome {
                Outcome::Trained { steps, .. } => Some(steps),
                _ => None,
            })
            .unwrap_or(0);
        return Ok(TrainSummary {
            guard: None,
            steps,
            first_loss: f32::NAN,
            last_loss: f32::NAN,
            trainable: 0,
            seconds: t0.elapsed().as_secs_f32(),
            out,
        });
    }
    let s = train(args)?;
    if let Some(g) = &s.guard {
        eprintln!("[train] retention guard: {g}");
    }
    eprintln!(
        "[train] done: {} steps in {:.1}s, loss {:.4} -> {:.4}, {} trainable parameters; wrote {}",
        s.steps,
        s.seconds,
        s.first_loss,
        s.last_loss,
        s.trainable,
        s.out.display()
    );
    Ok(s)
}
