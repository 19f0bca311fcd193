//! `cliptune pretrain`: argument parsing for `train::pretrain` (CLIP from scratch).
use std::path::PathBuf;

use clap::Args;
use cliptune::train::pretrain::{pretrain, PretrainArgs};
use cliptune::{Device, Result};

#[derive(Args)]
pub struct PretrainCli {
    /// Caption file (.csv/.tsv/.jsonl: image,caption; several rows per image allowed).
    #[arg(long)]
    data: PathBuf,
    /// cliptune-mini, cliptune-tiny, vit-b-32, vit-b-16, vit-l-14, or a directory with an
    /// HF config.json (the vocabulary is always the pruned tokenizer's).
    #[arg(long, default_value = "cliptune-mini")]
    config: String,
    /// A text file whose words stay in the vocabulary (templates, class names; repeatable).
    #[arg(long = "vocab-texts")]
    vocab_texts: Vec<PathBuf>,
    /// Zero-shot templates with {} (repeatable), written to templates.txt.
    #[arg(long = "template", default_values_t = vec!["an emoji of {}.".to_string()])]
    templates: Vec<String>,
    /// Model directory to write (new, empty, or a previous pretrain output).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 20, value_parser = super::args::positive_count)]
    epochs: usize,
    #[arg(long, default_value_t = 128, value_parser = super::args::positive_count)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3, value_parser = super::args::positive)]
    lr: f32,
    #[arg(long, default_value_t = 0.1, value_parser = super::args::non_negative)]
    weight_decay: f32,
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    #[arg(long, default_value_t = 1.0, value_parser = super::args::positive)]
    max_grad_norm: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_parser = super::args::positive_count)]
    max_steps: Option<usize>,
    /// Stop after N steps keeping the schedule (continue with --resume).
    #[arg(long, value_parser = super::args::positive_count)]
    stop_after: Option<usize>,
    #[arg(long)]
    resume: bool,
    /// Save the model (and trainer state) every N steps.
    #[arg(long, default_value_t = 500)]
    checkpoint_every: usize,
    /// Held-out set (sprite-sheet .json or class folders + captions) evaluated at checkpoints.
    #[arg(long)]
    heldout: Option<PathBuf>,
    /// Also evaluate the held-out set every N steps (0: only at checkpoints).
    #[arg(long, default_value_t = 0)]
    eval_every: usize,
    /// Turn off random crops and greyscale.
    #[arg(long)]
    no_augment: bool,
    #[arg(long, default_value = "auto")]
    device: String,
}

pub fn run(c: PretrainCli) -> Result<()> {
    let s = pretrain(PretrainArgs {
        data: c.data,
        config: c.config,
        vocab_texts: c.vocab_texts,
        templates: c.templates,
        out: c.out.clone(),
        epochs: c.epochs,
        batch: c.batch,
        lr: c.lr,
        weight_decay: c.weight_decay,
        warmup: c.warmup,
        max_grad_norm: c.max_grad_norm,
        seed: c.seed,
        max_steps: c.max_steps,
        stop_after: c.stop_after,
        resume: c.resume,
        ckpt_every: c.checkpoint_every,
        heldout: c.heldout,
        eval_every: c.eval_every,
        augment: !c.no_augment,
        device: Device::select(c.device.parse()?)?,
        progress: true,
    })?;
    eprintln!(
        "[pretrain] done: {} steps in {:.0}s, loss {:.4} -> {:.4}, {} parameters, vocabulary {}; wrote {}",
        s.steps,
        s.seconds,
        s.first_loss,
        s.last_loss,
        s.parameters,
        s.vocab,
        c.out.display()
    );
    if let Some((top1, r1)) = s.heldout {
        eprintln!(
            "[pretrain] held-out: zero-shot top-1 {:.2}%, retrieval R@1 (mean of both directions) {:.2}%",
            100.0 * top1,
            100.0 * r1
        );
    }
    Ok(())
}
