//! What `cliptune train` is asked to do, and what a run produced.
use std::path::PathBuf;

use super::method::Method;
use super::objectives::ObjectiveWeights;
use crate::adapt::lora::LoraConfig;
use crate::Device;

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
    /// A floor on the optimizer steps for small data (the batch is then capped at a
    /// quarter of the data and the epochs extended); None: exactly `epochs`.
    pub min_steps: Option<usize>,
    pub ckpt_every: usize,
    pub lora: LoraConfig,
    /// `--lora-scale`: the factor on the trained LoRA update, or `auto` (a sweep on a
    /// held-out split and the retention set; see [`super::lora_scale`]).
    pub lora_scale: super::lora_scale::LoraScale,
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
    /// Regularising terms (KgCoOp, feature preservation, reference distillation).
    pub objectives: ObjectiveWeights,
    /// `--method linear-probe`: zero-shot start and anchor weight (see `train::linear_probe`).
    pub probe: super::linear_probe::ProbeOptions,
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

impl TrainArgs {
    /// `cliptune train`'s defaults for `method` on `data`, writing `out`; set fields to
    /// change them (`TrainArgs { epochs: 3, ..TrainArgs::new(..) }`).
    pub fn new(
        method: Method,
        model_dir: impl Into<PathBuf>,
        data: impl Into<String>,
        out: impl Into<PathBuf>,
    ) -> TrainArgs {
        TrainArgs {
            method,
            model_dir: model_dir.into(),
            data: data.into(),
            classes_file: None,
            out: out.into(),
            epochs: 10,
            batch: 64,
            lr: None,
            weight_decay: 0.0,
            warmup: None,
            max_grad_norm: 1.0,
            seed: 0,
            max_steps: None,
            min_steps: method.default_min_steps(),
            ckpt_every: 100,
            lora: LoraConfig::default(),
            lora_scale: Default::default(),
            n_ctx: 16,
            ctx_init: None,
            class_specific: false,
            new_tokens: vec![],
            init_token: None,
            wise_alpha: 1.0,
            device: Device::Cpu,
            progress: false,
            retention_set: None,
            min_retention: 0.98,
            retention_every: 50,
            resume: false,
            stop_after: None,
            objectives: ObjectiveWeights::defaults(),
            probe: super::linear_probe::ProbeOptions::default(),
        }
    }
}
