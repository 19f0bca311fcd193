//! `cliptune bench`: the five workloads of the PyTorch comparison (issue 5), with random
//! weights (or a model directory), timed per iteration.
//!
//! - `embed-image`: [`Clip::encode_image`] on B random images of the config's size.
//! - `embed-text`: [`Clip::encode_text`] on B captions of 8..=30 tokens (+BOS/EOT), padded
//!   to the context length; the tower runs only to the batch's longest EOT.
//! - `lora-step`: LoRA r=8, alpha 16 on q,v of every layer of both towers; contrastive loss
//!   on B image-caption pairs with the frozen logit scale, backward, AdamW on the adapters.
//! - `coop-step`: CoOp with 16 shared context vectors and 10 classes against cached,
//!   L2-normalised image features [B, P]: loss, backward, AdamW.
//! - `linear-probe`: one L-BFGS [`LinearProbe::fit`] on 1000 x 512 features of 10 Gaussian
//!   classes at l2 = 1e-3 (sklearn `LogisticRegression(C=1)` on 1000 rows); `batch` is ignored.
//!
//! Inputs are deterministic (fixed seeds), so ours and tools/bench_torch.py see the same shapes.
//!
//! Host memory: where the [`alloc_guard`] allocator is installed (the `cliptune` binary), a
//! run is limited to a heap budget ([`HostBudget`]); running over it ends the process with
//! [`alloc_guard::OOM_EXIT_CODE`] after printing the result reached so far, with `error` set.
//! The budget counts Rust heap bytes only, an approximation of RSS: memory-mapped checkpoints
//! and GPU memory are not counted.
use std::path::Path;
use std::time::Instant;

use crate::adapt::lora::{apply_lora, LoraConfig};
use crate::adapt::prompt::PromptLearner;
use crate::alloc_guard;
use crate::autograd::{Tape, Var};
use crate::backend::Device;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::{Clip, ClipConfig, TextInput, WeightStorage};
use crate::error::{Error, ErrorKind, Result};
use crate::eval::linear_probe::{LinearProbe, DEFAULT_MAX_ITER};
use crate::nn::Module;
use crate::tensor::{Rng, Tensor};
use crate::train::AdamW;

use super::HostBudget;

/// Valid `--workload` names.
pub const WORKLOADS: &[&str] = &["embed-image", "embed-text", "lora-step", "coop-step", "linear-probe"];
/// Built-in `--config` names (anything else must be a model directory).
pub const CONFIGS: &[&str] = &["vit-b-32", "vit-b-16", "vit-l-14"];

/// Linear-probe workload shape: rows, feature width, classes, l2.
pub const PROBE_N: usize = 1000;
pub const PROBE_D: usize = 512;
pub const PROBE_C: usize = 10;
pub const PROBE_L2: f32 = 1e-3;

/// CoOp workload: context vectors and class names.
pub const COOP_CTX: usize = 16;
pub const COOP_CLASSES: &[&str] = &[
    "dog", "cat", "car", "bird", "ship", "horse", "truck", "frog", "plane", "deer",
];

#[derive(Clone, Debug)]
pub struct BenchSpec {
    pub workload: String,
    /// A built-in name ([`CONFIGS`]) or a model directory.
    pub config: String,
    pub batch: usize,
    pub iters: usize,
    pub warmup: usize,
    pub host_budget: HostBudget,
    /// Progress on stderr: the setup's time, then each iteration's time and an ETA.
    pub progress: bool,
}

#[derive(Clone, Debug)]
pub struct BenchResult {
    pub workload: String,
    pub config: String,
    /// Device kind and adapter name, e.g. `cpu` or `gpu (NVIDIA H100 ...)`.
    pub device: String,
    pub batch: usize,
    /// Timed iterations completed.
    pub iters: usize,
    /// Seconds per timed iteration.
    pub times: Vec<f64>,
    pub median_s: f64,
    pub min_s: f64,
    pub items_per_s: f64,
    pub peak_rss_mib: f64,
    /// GPU only: peak bytes held by the backend, in MiB.
    pub peak_device_mib: Option<f64>,
    /// Set when the run stopped early (e.g. out of memory): what failed, and where.
    pub error: Option<String>,
    /// The host heap budget in force (None: no budget, or the guard is not installed).
    pub host_budget_mib: Option<f64>,
}

impl BenchResult {
    /// One JSON object (the keys tools/bench_torch.py writes too).
    pub fn to_json(&self) -> serde_json::Value {
        let num = |x: f64| {
            if x.is_finite() {
                serde_json::json!(x)
            } else {
                serde_json::Value::Null
            }
        };
        let mut v = serde_json::json!({
            "impl": "cliptune",
            "workload": self.workload,
            "config": self.config,
            "device": self.device,
            "batch": self.batch,
            "iters": self.iters,
            "median_s": num(self.median_s),
            "min_s": num(self.min_s),
            "items_per_s": num(self.items_per_s),
            "peak_rss_mib": num(self.peak_rss_mib),
            "peak_device_mib": self.peak_device_mib.map(num).unwrap_or(serde_json::Value::Null),
            "times_s": self.times,
            "host_budget_mib": self.host_budget_mib.map(num).unwrap_or(serde_json::Value::Null),
        });
        if let Some(e) = &self.error {
            v["error"] = serde_json::json!(e);
        }
        v
    }

    /// One readable line.
    pub fn to_line(&self) -> String {
        self.line(&format!("{:.0}", self.peak_rss_mib))
    }

    fn line(&self, peak_rss: &str) -> String {
        let mut s = format!(
            "{} {} on {} batch {}: median {:.4} s, min {:.4} s over {} iters, {:.1} items/s, peak RSS {} MiB",
            self.workload,
            self.config,
            self.device,
            self.batch,
            self.median_s,
            self.min_s,
            self.iters,
            self.items_per_s,
            peak_rss
        );
        if let Some(d) = self.peak_device_mib {
            s.push_str(&format!(", peak device {d:.0} MiB"));
        }
        match self.host_budget_mib {
            Some(b) => s.push_str(&format!(", host budget {b:.0} MiB")),
            None => s.push_str(", no host budget"),
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(" (STOPPED: {e})"));
        }
        s
    }
}

/// Whether an error looks like running out of host or device memory.
pub fn is_oom(e: &Error) -> bool {
    let m = e.msg.to_lowercase();
    e.kind == ErrorKind::Limit
        || m.contains("out of memory")
        || m.contains("outofmemory")
        || m.contains("allocation")
        || m.contains("too large")
}

fn check_workload(w: &str) -> Result<()> {
    if WORKLOADS.contains(&w) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "unknown workload '{w}': valid workloads are {}",
            WORKLOADS.join(", ")
        )))
    }
}

/// Resolve `--config`: a built-in name or a model directory (weights loaded from it).
fn load_model(config: &str, device: &Device) -> Result<(Clip, Option<std::path::PathBuf>)> {
    if CONFIGS.contains(&config) {
        return Ok((Clip::random(ClipConfig::named(config)?, 0, device)?, None));
    }
    let dir = Path::new(config);
    if dir.is_dir() {
        // Validate the config first for a clearer message than the loader's.
        ClipConfig::from_dir(dir)?;
        return Ok((Clip::load(dir, device, WeightStorage::F32)?, Some(dir.to_path_buf())));
    }
    Err(Error::invalid(format!(
        "unknown config '{config}': valid configs are {}, or a model directory",
        CONFIGS.join(", ")
    )))
}

/// B captions with token counts drawn deterministically in 8..=30, ids random below BOS
/// (and the vocabulary), BOS first, EOT after the last token, padded to the context length.
pub fn caption_batch(model: &Clip, n: usize, seed: u64) -> Result<TextInput> {
    let t = &model.config.text;
    let ctx = t.context;
    if ctx < 3 {
        return Err(Error::invalid(format!(
            "bench: text context {ctx} is too short for captions"
        )));
    }
    let max_id = t.vocab.saturating_sub(2).clamp(1, 49406);
    let bos = if t.vocab > 49406 { 49406 } else { 0 };
    let mut rng = Rng::new(seed);
    let mut ids = Vec::with_capacity(n * ctx);
    let mut eot = Vec::with_capacity(n);
    for _ in 0..n {
        let len = (8 + rng.below(23)).min(ctx - 2);
        let mut row = vec![t.pad_id; ctx];
        row[0] = bos;
        for r in row.iter_mut().skip(1).take(len) {
            *r = rng.below(max_id) as u32;
        }
        row[len + 1] = t.eot_id;
        eot.push(len + 1);
        ids.extend(row);
    }
    Ok(TextInput { ids, n, len: ctx, eot })
}

type Step = Box<dyn FnMut() -> Result<()>>;

/// Build the per-iteration closure of a workload (setup is not timed).
fn setup(spec: &BenchSpec, device: &Device) -> Result<Step> {
    let b = spec.batch;
    if spec.workload == "linear-probe" {
        let mut rng = Rng::new(5);
        let means: Vec<f32> = (0..PROBE_C * PROBE_D).map(|_| rng.normal()).collect();
        let y: Vec<usize> = (0..PROBE_N).map(|i| i % PROBE_C).collect();
        let x: Vec<f32> = (0..PROBE_N * PROBE_D)
            .map(|k| means[y[k / PROBE_D] * PROBE_D + k % PROBE_D] + 2.0 * rng.normal())
            .collect();
        return Ok(Box::new(move || {
            LinearProbe::fit(&x, &y, PROBE_N, PROBE_D, PROBE_C, PROBE_L2, DEFAULT_MAX_ITER).map(|_| ())
        }));
    }
    if b == 0 {
        return Err(Error::invalid(format!(
            "--batch must be at least 1 for workload {}",
            spec.workload
        )));
    }
    let (mut model, dir) = load_model(&spec.config, device)?;
    let s = model.config.vision.image_size;
    match spec.workload.as_str() {
        "embed-image" => {
            let pixels = Tensor::randn(&[b, 3, s, s], 1.0, 1, device)?;
            Ok(Box::new(move || model.encode_image(&pixels, b).map(|_| ())))
        }
        "embed-text" => {
            let input = caption_batch(&model, b, 2)?;
            Ok(Box::new(move || model.encode_text(&input, b).map(|_| ())))
        }
        "lora-step" => {
            let cfg = LoraConfig::parse(8, 16.0, 0.0, "q,v", "text,vision", None)?;
            apply_lora(&mut model, &cfg, 0)?;
            let pixels = Tensor::randn(&[b, 3, s, s], 1.0, 1, device)?;
            let input = caption_batch(&model, b, 2)?;
            let mut opt = AdamW::new(1e-4, 0.0);
            Ok(Box::new(move || {
                let grads = {
                    let tape = Tape::new();
                    let img = model.image_features(&tape, &tape.constant(pixels.clone()))?.l2norm()?;
                    let txt = model.text_features(&tape, &input)?.l2norm()?;
                    let loss = Var::contrastive_loss(&img, &txt, &tape.param(&model.logit_scale))?;
                    tape.backward(&loss)?
                };
                let mut params: Vec<_> = model.params_mut().into_iter().filter(|p| p.trainable).collect();
                opt.step(&mut params, &grads)
            }))
        }
        "coop-step" => {
            let tok = match &dir {
                Some(d) => ClipTokenizer::for_model_dir(d)?,
                None => ClipTokenizer::embedded()?,
            };
            let classes: Vec<String> = COOP_CLASSES.iter().map(|c| c.to_string()).collect();
            let mut pl = PromptLearner::new(&model, &tok, &classes, COOP_CTX, None, false, 0)?;
            let p = model.config.projection_dim;
            let feats = Tensor::randn(&[b, p], 1.0, 3, device)?.l2norm()?.0;
            let labels = Tensor::from_u32((0..b).map(|i| (i % classes.len()) as u32).collect(), &[b], device)?;
            let mut opt = AdamW::new(2e-3, 0.0);
            Ok(Box::new(move || {
                let grads = {
                    let tape = Tape::new();
                    let loss = pl.loss(&model, &tape, &feats, &labels)?;
                    tape.backward(&loss)?
                };
                opt.step(&mut pl.params_mut(), &grads)
            }))
        }
        _ => Err(Error::invalid(format!(
            "unknown workload '{}': valid workloads are {}",
            spec.workload,
            WORKLOADS.join(", ")
        ))),
    }
}

pub(super) fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Check the workload and config names and the counts (before any device start-up).
pub fn validate(spec: &BenchSpec) -> Result<()> {
    check_workload(&spec.workload)?;
    if spec.iters == 0 {
        return Err(Error::invalid("--iters must be at least 1"));
    }
    if spec.workload != "linear-probe" && !CONFIGS.contains(&spec.config.as_str()) && !Path::new(&spec.config).is_dir()
    {
        return Err(Error::invalid(format!(
            "unknown config '{}': valid configs are {}, or a model directory",
            spec.config,
            CONFIGS.join(", ")
        )));
    }
    Ok(())
}

/// Iterations completed so far into the stats of a result (all but peak RSS).
fn summarize(r: &mut BenchResult, device: &Device) {
    r.iters = r.times.len();
    r.median_s = median(&r.times);
    r.min_s = r.times.iter().copied().fold(f64::INFINITY, f64::min);
    if r.times.is_empty() {
        r.min_s = f64::NAN;
    }
    let items = if r.workload == "linear-probe" { PROBE_N } else { r.batch } as f64;
    r.items_per_s = items / r.median_s;
    if let Device::Gpu(g) = device {
        r.peak_device_mib = Some(g.stats().bytes_peak as f64 / (1u64 << 20) as f64);
    }
}

/// Where iteration `i` (warmup first) stands, e.g. "in timed iteration 2 after 1 timed iterations".
fn iteration_phase(i: usize, warmup: usize, done: usize) -> String {
    let (phase, k) = if i < warmup {
        ("warmup", i + 1)
    } else {
        ("timed", i - warmup + 1)
    };
    format!("in {phase} iteration {k} after {done} timed iterations")
}

/// Hand the guard the report of a host OOM in `phase`, in the shape of the normal output:
/// rendered now, because the failure path cannot allocate.
fn arm_oom_report(reached: &BenchResult, phase: &str, json: bool, device: &Device) {
    let mut r = reached.clone();
    summarize(&mut r, device);
    r.error = Some(format!("out of memory (host) {phase}: {}", alloc_guard::FAILURE));
    let render = |r: &BenchResult| {
        let out = if json {
            let mut v = r.to_json();
            v["peak_rss_mib"] = serde_json::json!(alloc_guard::PEAK_RSS_MIB);
            let quoted = format!("\"{}\"", alloc_guard::PEAK_RSS_MIB);
            v.to_string().replace(&quoted, alloc_guard::PEAK_RSS_MIB)
        } else {
            r.line(alloc_guard::PEAK_RSS_MIB)
        };
        // The same stderr line as main's for a result with `error` set.
        let err = format!("error: bench stopped early: {}\n", r.error.as_deref().unwrap_or(""));
        alloc_guard::set_report(&format!("{out}\n"), &err)
    };
    if !render(&r) {
        // Thousands of iterations: keep the stats, drop the list.
        r.times.clear();
        render(&r);
    }
}

/// Clears the host budget and report however [`run`] returns.
struct Disarm;
impl Drop for Disarm {
    fn drop(&mut self) {
        alloc_guard::clear();
    }
}

/// Run a benchmark. Bad names and setup failures are errors; a failure during the timed
/// loop (e.g. out of memory) returns what was reached with `error` set.
///
/// Under the host budget of `spec` (see [`HostBudget`]; only where [`alloc_guard`] is
/// installed), running out of host memory does not return: the result reached, in the
/// shape `json` picks (one [`BenchResult::to_json`] object or one [`BenchResult::to_line`]),
/// goes to stdout with `error` set, one line to stderr, and the process exits with
/// [`alloc_guard::OOM_EXIT_CODE`].
pub fn run(spec: &BenchSpec, device: &Device, json: bool) -> Result<BenchResult> {
    validate(spec)?;
    let dev_name = match device {
        Device::Cpu => "cpu".to_string(),
        Device::Gpu(_) => format!("gpu ({})", device.name()),
    };
    let budget = if alloc_guard::installed() {
        spec.host_budget.resolve(alloc_guard::live_bytes())
    } else {
        None
    };
    let mut result = BenchResult {
        workload: spec.workload.clone(),
        config: spec.config.clone(),
        device: dev_name,
        batch: spec.batch,
        iters: 0,
        times: vec![],
        median_s: f64::NAN,
        min_s: f64::NAN,
        items_per_s: f64::NAN,
        peak_rss_mib: 0.0,
        peak_device_mib: None,
        error: None,
        host_budget_mib: budget.map(|b| b as f64 / (1u64 << 20) as f64),
    };
    // Armed without a budget too: the system allocator may still fail.
    let armed = alloc_guard::installed();
    let disarm = Disarm;
    if armed {
        // Report first: a budget without one would stop with a bare message.
        arm_oom_report(&result, "during setup (model/inputs)", json, device);
        alloc_guard::set_budget(budget);
    }
    let finish = |r: &mut BenchResult| {
        summarize(r, device);
        r.peak_rss_mib = crate::util::peak_rss_mib();
    };
    let t_setup = Instant::now();
    if spec.progress {
        eprintln!(
            "[bench] {} on {} batch {}: setting up (model, inputs)...",
            spec.workload, spec.config, spec.batch
        );
    }
    let mut step = match setup(spec, device) {
        Ok(s) => s,
        Err(e) if is_oom(&e) => {
            drop(disarm);
            result.error = Some(format!("out of memory during setup (model/inputs): {}", e.msg));
            finish(&mut result);
            return Ok(result);
        }
        Err(e) => return Err(e),
    };
    if spec.progress {
        eprintln!("[bench] setup took {:.1} s", t_setup.elapsed().as_secs_f64());
    }
    let total = spec.warmup + spec.iters;
    let warmup_bar = crate::progress::Progress::new("bench", "warmup", spec.warmup as u64, spec.progress);
    let mut iter_bar: Option<crate::progress::Progress> = None;
    for i in 0..total {
        if armed {
            arm_oom_report(
                &result,
                &iteration_phase(i, spec.warmup, result.times.len()),
                json,
                device,
            );
        }
        let t0 = Instant::now();
        let r = step().and_then(|_| device.backend().sync());
        let dt = t0.elapsed().as_secs_f64();
        if let Err(e) = r {
            let what = if is_oom(&e) { "out of memory" } else { "failed" };
            result.error = Some(format!(
                "{what} {}: {}",
                iteration_phase(i, spec.warmup, result.times.len()),
                e.msg
            ));
            break;
        }
        if i >= spec.warmup {
            result.times.push(dt);
        }
        if i < spec.warmup {
            warmup_bar.update((i + 1) as u64, &format!("{dt:.3} s"));
        } else {
            // Made after the warm-up so its rate and ETA count timed iterations only.
            let bar = iter_bar.get_or_insert_with(|| {
                crate::progress::Progress::new("bench", "iter", spec.iters as u64, spec.progress)
            });
            bar.update((i + 1 - spec.warmup) as u64, &format!("{dt:.3} s"));
        }
    }
    drop(disarm);
    finish(&mut result);
    Ok(result)
}
