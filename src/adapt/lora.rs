//! LoRA on either CLIP tower, in PEFT's layout.
//!
//! - [`apply_lora`] freezes the whole model and attaches adapters (`lora_A` [r, in]
//!   kaiming-uniform like PEFT, i.e. U(-1/sqrt(in), 1/sqrt(in)); `lora_B` [out, r]
//!   zeros, so step 0 equals the base exactly) to the chosen Linears.
//! - [`export_peft`] / [`load_peft`] write and read PEFT's `adapter_model.safetensors`
//!   (`base_model.model.<module>.lora_A.weight`, module names of HF `CLIPModel`) and
//!   `adapter_config.json` (target_modules: the full module names, so only the chosen
//!   towers and layers are targeted).
//! - [`merge`] folds `scale * B @ A` into the base weights (f32) and drops the adapters;
//!   [`save_hf_checkpoint`] writes the result as an HF `CLIPModel` directory.
//!
//! Dropout (training only) multiplies the adapter input by a host-drawn mask; it is
//! off until [`set_dropout_seed`] sets a per-step seed, and off again after
//! `set_dropout_seed(model, None)` (the train/eval switch; see `nn::Linear`).
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use crate::autograd::Param;
use crate::clip::{Clip, Layout};
use crate::error::{Error, Result};
use crate::nn::{Linear, Module};
use crate::tensor::io::{write_atomic, write_safetensors};
use crate::tensor::{DType, Rng, Tensor};

/// PEFT's prefix for a `CLIPModel` wrapped by `get_peft_model`.
const PEFT_PREFIX: &str = "base_model.model.";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// Which Linear of a transformer block gets an adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoraTarget {
    Q,
    K,
    V,
    O,
    Fc1,
    Fc2,
}

impl LoraTarget {
    pub const ALL: [LoraTarget; 6] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::O,
        LoraTarget::Fc1,
        LoraTarget::Fc2,
    ];
    /// The CLI name (`--targets q,v`).
    pub fn name(self) -> &'static str {
        match self {
            LoraTarget::Q => "q",
            LoraTarget::K => "k",
            LoraTarget::V => "v",
            LoraTarget::O => "o",
            LoraTarget::Fc1 => "fc1",
            LoraTarget::Fc2 => "fc2",
        }
    }
    /// The module path inside an HF CLIP encoder layer.
    pub fn hf_module(self) -> &'static str {
        match self {
            LoraTarget::Q => "self_attn.q_proj",
            LoraTarget::K => "self_attn.k_proj",
            LoraTarget::V => "self_attn.v_proj",
            LoraTarget::O => "self_attn.out_proj",
            LoraTarget::Fc1 => "mlp.fc1",
            LoraTarget::Fc2 => "mlp.fc2",
        }
    }
    /// `q`, `k`, `v`, `o`, `fc1`, `fc2` (also the HF names `q_proj`, `out_proj`, ...).
    pub fn parse(s: &str) -> Result<LoraTarget> {
        let t = s.trim().to_ascii_lowercase();
        let found = match t.as_str() {
            "q" | "q_proj" => Some(LoraTarget::Q),
            "k" | "k_proj" => Some(LoraTarget::K),
            "v" | "v_proj" => Some(LoraTarget::V),
            "o" | "out" | "out_proj" => Some(LoraTarget::O),
            "fc1" => Some(LoraTarget::Fc1),
            "fc2" => Some(LoraTarget::Fc2),
            _ => None,
        };
        found.ok_or_else(|| {
            Error::invalid(format!(
                "unknown LoRA target '{}': valid targets are q, k, v, o, fc1, fc2",
                s.trim()
            ))
        })
    }
    /// A comma-separated list (`"q,v"`); duplicates are dropped, order is canonical.
    pub fn parse_list(s: &str) -> Result<Vec<LoraTarget>> {
        let set: BTreeSet<LoraTarget> = split_list(s, "--targets", "q, k, v, o, fc1, fc2")?
            .iter()
            .map(|x| LoraTarget::parse(x))
            .collect::<Result<_>>()?;
        Ok(set.into_iter().collect())
    }
}

/// One of CLIP's two towers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tower {
    Text,
    Vision,
}

impl Tower {
    pub fn name(self) -> &'static str {
        match self {
            Tower::Text => "text",
            Tower::Vision => "vision",
        }
    }
    /// HF `CLIPModel` attribute of the tower.
    pub fn hf_prefix(self) -> &'static str {
        match self {
            Tower::Text => "text_model",
            Tower::Vision => "vision_model",
        }
    }
    /// `text` or `vision` (`image` is accepted for vision).
    pub fn parse(s: &str) -> Result<Tower> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Tower::Text),
            "vision" | "image" => Ok(Tower::Vision),
            _ => Err(Error::invalid(format!(
                "unknown tower '{}': valid towers are text, vision",
                s.trim()
            ))),
        }
    }
    pub fn parse_list(s: &str) -> Result<Vec<Tower>> {
        let set: BTreeSet<Tower> = split_list(s, "--towers", "text, vision")?
            .iter()
            .map(|x| Tower::parse(x))
            .collect::<Result<_>>()?;
        Ok(set.into_iter().collect())
    }
}

fn split_list<'a>(s: &'a str, flag: &str, valid: &str) -> Result<Vec<&'a str>> {
    let parts: Vec<&str> = s.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(Error::invalid(format!("{flag} is empty: give one or more of {valid}")));
    }
    Ok(parts)
}

/// `--layers`: `"all"` (or empty) for every layer, `"3"` for one, `"0-11"` for an
/// inclusive range.
pub fn parse_layers(s: &str) -> Result<Option<(usize, usize)>> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    let bad = || {
        Error::invalid(format!(
            "bad --layers '{t}': use an inclusive range like 0-11, a single layer like 3, or all"
        ))
    };
    let num = |x: &str| x.trim().parse::<usize>().map_err(|_| bad());
    let (a, b) = match t.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let a = num(t)?;
            (a, a)
        }
    };
    if a > b {
        return Err(Error::invalid(format!(
            "bad --layers '{t}': the first layer {a} is after the last {b}"
        )));
    }
    Ok(Some((a, b)))
}

/// What `apply_lora` attaches, and what `load_peft` found.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f32,
    pub dropout: f32,
    pub targets: Vec<LoraTarget>,
    pub towers: Vec<Tower>,
    /// Inclusive range of layer indices (in every chosen tower); None: all layers.
    pub layers: Option<(usize, usize)>,
}

impl Default for LoraConfig {
    /// r 8, alpha 16, no dropout, q and v of both towers, every layer.
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            targets: vec![LoraTarget::Q, LoraTarget::V],
            towers: vec![Tower::Text, Tower::Vision],
            layers: None,
        }
    }
}

impl LoraConfig {
    /// From CLI-like strings: `targets` "q,v", `towers` "text,vision", `layers` "0-11".
    pub fn parse(
        rank: usize,
        alpha: f32,
        dropout: f32,
        targets: &str,
        towers: &str,
        layers: Option<&str>,
    ) -> Result<LoraConfig> {
        let cfg = LoraConfig {
            rank,
            alpha,
            dropout,
            targets: LoraTarget::parse_list(targets)?,
            towers: Tower::parse_list(towers)?,
            layers: match layers {
                Some(l) => parse_layers(l)?,
                None => None,
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(Error::invalid("LoRA rank must be at least 1"));
        }
        if !self.alpha.is_finite() || self.alpha <= 0.0 {
            return Err(Error::invalid(format!(
                "LoRA alpha must be positive, got {}",
                self.alpha
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(format!(
                "LoRA dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if self.targets.is_empty() {
            return Err(Error::invalid(
                "LoRA needs at least one target: valid targets are q, k, v, o, fc1, fc2",
            ));
        }
        if self.towers.is_empty() {
            return Err(Error::invalid(
                "LoRA needs at least one tower: valid towers are text, vision",
            ));
        }
        Ok(())
    }

    /// alpha / r.
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank as f32
    }
}

/// One adaptable Linear: tower, layer, target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Site {
    pub tower: Tower,
    pub layer: usize,
    pub target: LoraTarget,
}

impl Site {
    /// HF `CLIPModel` module name, e.g. `text_model.encoder.layers.0.self_attn.q_proj`.
    pub fn module(&self) -> String {
        format!(
            "{}.encoder.layers.{}.{}",
            self.tower.hf_prefix(),
            self.layer,
            self.target.hf_module()
        )
    }
    /// The inverse of [`Site::module`].
    pub fn parse_module(name: &str) -> Option<Site> {
        let (tower, rest) = if let Some(r) = name.strip_prefix("text_model.encoder.layers.") {
            (Tower::Text, r)
        } else if let Some(r) = name.strip_prefix("vision_model.encoder.layers.") {
            (Tower::Vision, r)
        } else {
            return None;
        };
        let (layer, module) = rest.split_once('.')?;
        let layer = layer.parse().ok()?;
        let target = LoraTarget::ALL.into_iter().find(|t| t.hf_module() == module)?;
        Some(Site { tower, layer, target })
    }
    /// What the Linear's input and output widths are called (for error messages).
    fn dims(&self) -> (&'static str, &'static str) {
        match self.target {
            LoraTarget::Fc1 => ("width", "MLP width"),
            LoraTarget::Fc2 => ("MLP width", "width"),
            _ => ("width", "width"),
        }
    }
}

fn blocks(model: &Clip, tower: Tower) -> &[crate::nn::Block] {
    match tower {
        Tower::Text => &model.text.blocks,
        Tower::Vision => &model.vision.blocks,
    }
}

/// Number of transformer layers in `tower`.
pub fn num_layers(model: &Clip, tower: Tower) -> usize {
    blocks(model, tower).len()
}

/// The Linear at `site`, if the model has that layer.
pub fn linear<'a>(model: &'a Clip, site: &Site) -> Option<&'a Linear> {
    let b = blocks(model, site.tower).get(site.layer)?;
    Some(match site.target {
        LoraTarget::Q => &b.attn.q,
        LoraTarget::K => &b.attn.k,
        LoraTarget::V => &b.attn.v,
        LoraTarget::O => &b.attn.out,
        LoraTarget::Fc1 => &b.mlp.fc1,
        LoraTarget::Fc2 => &b.mlp.fc2,
    })
}

pub fn linear_mut<'a>(model: &'a mut Clip, site: &Site) -> Option<&'a mut Linear> {
    let blocks = match site.tower {
        Tower::Text => &mut model.text.blocks,
        Tower::Vision => &mut model.vision.blocks,
    };
    let b = blocks.get_mut(site.layer)?;
    Some(match site.target {
        LoraTarget::Q => &mut b.attn.q,
        LoraTarget::K => &mut b.attn.k,
        LoraTarget::V => &mut b.attn.v,
        LoraTarget::O => &mut b.attn.out,
        LoraTarget::Fc1 => &mut b.mlp.fc1,
        LoraTarget::Fc2 => &mut b.mlp.fc2,
    })
}

/// Every adaptable site of the model (both towers, every layer, every target).
pub fn all_sites(model: &Clip) -> Vec<Site> {
    let mut out = vec![];
    for tower in [Tower::Text, Tower::Vision] {
        for layer in 0..num_layers(model, tower) {
            for target in LoraTarget::ALL {
                out.push(Site { tower, layer, target });
            }
        }
    }
    out
}

/// The sites that carry an adapter now, in canonical order.
pub fn adapter_sites(model: &Clip) -> Vec<Site> {
    all_sites(model)
        .into_iter()
        .filter(|s| linear(model, s).is_some_and(|l| l.lora.is_some()))
        .collect()
}

/// The sites `cfg` selects on `model`; errors when its layer range does not fit a tower.
pub fn selected_sites(model: &Clip, cfg: &LoraConfig) -> Result<Vec<Site>> {
    cfg.validate()?;
    let mut out = vec![];
    for &tower in &cfg.towers {
        let n = num_layers(model, tower);
        let (lo, hi) = match cfg.layers {
            Some((lo, hi)) => {
                if hi >= n {
                    return Err(Error::invalid(format!(
                        "--layers {lo}-{hi} does not fit the {} tower, which has {n} layers (0-{})",
                        tower.name(),
                        n.saturating_sub(1)
                    )));
                }
                (lo, hi)
            }
            None if n == 0 => continue,
            None => (0, n - 1),
        };
        for layer in lo..=hi {
            for &target in &cfg.targets {
                out.push(Site { tower, layer, target });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// FNV-1a: a stable per-name seed component.
fn name_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Freeze every parameter of `model` and attach fresh adapters where `cfg` says.
/// Returns the number of trainable parameters (the adapters').
pub fn apply_lora(model: &mut Clip, cfg: &LoraConfig, seed: u64) -> Result<usize> {
    let sites = selected_sites(model, cfg)?;
    if let Some(s) = adapter_sites(model).first() {
        return Err(Error::invalid(format!(
            "the model already has a LoRA adapter on {} (merge it or load the base model again first)",
            s.module()
        )));
    }
    model.set_trainable(false);
    let r = cfg.rank;
    for site in sites {
        let module = site.module();
        let lin = linear_mut(model, &site)
            .ok_or_else(|| Error::invalid(format!("lora: the model has no module {module}")))?;
        let (d_in, d_out) = (lin.d_in(), lin.d_out());
        let dev = lin.weight.value.device().clone();
        // PEFT: nn.init.kaiming_uniform_(A, a=sqrt(5)) => U(-1/sqrt(in), 1/sqrt(in)).
        let bound = 1.0 / (d_in as f32).sqrt();
        let mut rng = Rng::new(seed ^ name_hash(&module));
        let a: Vec<f32> = (0..r * d_in).map(|_| (2.0 * rng.uniform() - 1.0) * bound).collect();
        let a = Param::trainable(
            format!("{module}.lora_A.weight"),
            Tensor::from_vec(a, &[r, d_in], &dev)?,
        );
        let b = Param::trainable(format!("{module}.lora_B.weight"), Tensor::zeros(&[d_out, r], &dev)?);
        lin.attach_lora(a, b, cfg.scale(), cfg.dropout)?;
    }
    Ok(model.num_trainable())
}

/// Turn adapter dropout on for this step (`Some(seed)`: masks drawn from the seed) or
/// off (`None`: eval). Call once per training step with a new seed.
pub fn set_dropout_seed(model: &mut Clip, seed: Option<u64>) {
    for site in adapter_sites(model) {
        if let Some(l) = linear_mut(model, &site).and_then(|l| l.lora.as_mut()) {
            l.dropout_seed = seed;
        }
    }
}

/// Drop every adapter without merging it (back to the base model).
pub fn remove_lora(model: &mut Clip) {
    for site in adapter_sites(model) {
        if let Some(l) = linear_mut(model, &site) {
            l.lora = None;
        }
    }
}

/// Write the model's adapters in PEFT's layout into `dir` (created if needed).
pub fn export_peft(model: &Clip, cfg: &LoraConfig, dir: &Path) -> Result<()> {
    export_peft_with_base(model, cfg, dir, None)
}

/// [`export_peft`] with `base_model_name_or_path` set (the base model's directory or
/// hub name), which PEFT uses to find the base when loading with `AutoPeftModel`.
pub fn export_peft_with_base(model: &Clip, cfg: &LoraConfig, dir: &Path, base: Option<&str>) -> Result<()> {
    let sites = adapter_sites(model);
    if sites.is_empty() {
        return Err(Error::invalid("export: the model has no LoRA adapters to export"));
    }
    let mut tensors: Vec<(String, Tensor)> = vec![];
    let mut modules = vec![];
    for site in &sites {
        let module = site.module();
        let l = linear(model, site).and_then(|l| l.lora.as_ref()).unwrap();
        let expect = cfg.scale();
        if l.rank() != cfg.rank || (l.scale - expect).abs() > 1e-6 * expect.abs().max(1.0) {
            return Err(Error::invalid(format!(
                "export: the adapter on {module} has rank {} and scale {} but the config says r={} alpha={} (scale {expect})",
                l.rank(),
                l.scale,
                cfg.rank,
                cfg.alpha
            )));
        }
        tensors.push((
            format!("{PEFT_PREFIX}{module}.lora_A.weight"),
            l.a.value.cast(DType::F32)?,
        ));
        tensors.push((
            format!("{PEFT_PREFIX}{module}.lora_B.weight"),
            l.b.value.cast(DType::F32)?,
        ));
        modules.push(module);
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    write_safetensors(&dir.join(ADAPTER_WEIGHTS), &refs)?;
    // alpha as an integer when it is one (PEFT writes ints; floats load too).
    let alpha = if cfg.alpha.fract() == 0.0 && cfg.alpha.abs() < 1e9 {
        serde_json::json!(cfg.alpha as i64)
    } else {
        serde_json::json!(cfg.alpha)
    };
    let conf = serde_json::json!({
        "peft_type": "LORA",
        "task_type": null,
        "base_model_name_or_path": base,
        "r": cfg.rank,
        "lora_alpha": alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": modules,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
    });
    let text = serde_json::to_vec_pretty(&conf).map_err(|e| Error::invalid(format!("export: {e}")))?;
    write_atomic(&dir.join(ADAPTER_CONFIG), &text)
}

/// PEFT's pattern lookup for rank_pattern / alpha_pattern keys given as module names
/// (`q_proj`, `text_model.encoder.layers.0.self_attn.q_proj`): exact or `.`-suffix match.
fn pattern_value(patterns: &serde_json::Map<String, serde_json::Value>, module: &str) -> Option<f64> {
    patterns
        .iter()
        .find(|(k, _)| module == k.as_str() || module.ends_with(&format!(".{k}")))
        .and_then(|(_, v)| v.as_f64())
}

/// Read an adapter directory written by PEFT (`save_pretrained`) or by [`export_peft`]
/// and attach its adapters to `model` (trainable; the base is left as it is). Every
/// tensor is checked before anything is attached, so a refused adapter changes nothing.
/// Returns a summary config (targets, towers and the layer range found).
pub fn load_peft(model: &mut Clip, dir: &Path) -> Result<LoraConfig> {
    let cfg_path = dir.join(ADAPTER_CONFIG);
    let w_path = dir.join(ADAPTER_WEIGHTS);
    if !cfg_path.exists() {
        return Err(Error::io(
            cfg_path.display(),
            "not found: an adapter directory needs adapter_config.json and adapter_model.safetensors",
        ));
    }
    if !w_path.exists() {
        let hint = if dir.join("adapter_model.bin").exists() {
            " (only adapter_model.bin is there: re-save it with safe_serialization=True)"
        } else {
            ""
        };
        return Err(Error::io(w_path.display(), format!("not found{hint}")));
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(cfg_path.display(), e))?;
    let conf: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::io(cfg_path.display(), format!("invalid JSON: {e}")))?;
    let cp = cfg_path.display();
    let peft_type = conf.get("peft_type").and_then(|v| v.as_str()).unwrap_or("");
    if !peft_type.eq_ignore_ascii_case("lora") {
        return Err(Error::invalid(format!(
            "{cp}: peft_type is '{peft_type}', but only LORA adapters can be loaded"
        )));
    }
    let r = conf
        .get("r")
        .and_then(|v| v.as_u64())
        .filter(|&r| r > 0)
        .ok_or_else(|| Error::invalid(format!("{cp}: 'r' must be a positive integer")))? as usize;
    let alpha = conf
        .get("lora_alpha")
        .and_then(|v| v.as_f64())
        .ok_or_else(|| Error::invalid(format!("{cp}: 'lora_alpha' is missing")))? as f32;
    let dropout = conf.get("lora_dropout").and_then(|v| v.as_f64()).unwrap_or(0.0) as f32;
    let flag = |k: &str| conf.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    for (k, what) in [
        ("use_dora", "DoRA"),
        ("fan_in_fan_out", "fan_in_fan_out (Conv1D weights)"),
        ("lora_bias", "LoRA biases"),
    ] {
        if flag(k) {
            return Err(Error::invalid(format!("{cp}: {what} adapters are not supported")));
        }
    }
    let rslora = flag("use_rslora");
    let bias = conf.get("bias").and_then(|v| v.as_str()).unwrap_or("none");
    if bias != "none" {
        return Err(Error::invalid(format!(
            "{cp}: bias '{bias}' is not supported (only bias \"none\": the base biases stay frozen)"
        )));
    }
    if conf
        .get("modules_to_save")
        .is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err(Error::invalid(format!(
            "{cp}: modules_to_save is not supported (the adapter would replace whole layers)"
        )));
    }
    let empty = serde_json::Map::new();
    let rank_pattern = conf.get("rank_pattern").and_then(|v| v.as_object()).unwrap_or(&empty);
    let alpha_pattern = conf.get("alpha_pattern").and_then(|v| v.as_object()).unwrap_or(&empty);

    // Read and check every tensor first.
    let bytes = std::fs::read(&w_path).map_err(|e| Error::io(w_path.display(), e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::io(w_path.display(), format!("not a valid safetensors file: {e}")))?;
    let wp = w_path.display();
    // module -> (A, B) as (shape, values)
    type Host = (Vec<usize>, Vec<f32>);
    let mut found: BTreeMap<Site, (Option<Host>, Option<Host>)> = BTreeMap::new();
    for (key, view) in st.tensors() {
        let rest = key.strip_prefix(PEFT_PREFIX).unwrap_or(&key);
        let (module, which) = if let Some(m) = rest.strip_suffix(".lora_A.weight") {
            (m, 0)
        } else if let Some(m) = rest.strip_suffix(".lora_B.weight") {
            (m, 1)
        } else {
            return Err(Error::invalid(format!(
                "{wp}: tensor '{key}' is not a LoRA A/B weight (only plain LoRA on Linear layers is supported)"
            )));
        };
        let site = Site::parse_module(module).ok_or_else(|| {
            Error::invalid(format!(
                "{wp}: tensor '{key}' adapts '{module}', which cliptune cannot adapt \
                 (LoRA targets are q_proj, k_proj, v_proj, out_proj, fc1, fc2 of text_model/vision_model encoder layers)"
            ))
        })?;
        let n = num_layers(model, site.tower);
        if site.layer >= n {
            return Err(Error::shape(
                "load adapter",
                format!(
                    "{wp}: '{key}' adapts {} layer {} but the model has {n} {} layers (an adapter for another model?)",
                    site.tower.name(),
                    site.layer,
                    site.tower.name()
                ),
            ));
        }
        let shape = view.shape().to_vec();
        let vals: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            safetensors::Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            safetensors::Dtype::BF16 => view
                .data()
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            d => {
                return Err(Error::invalid(format!(
                    "{wp}: tensor '{key}' has dtype {d:?}; expected F32, F16 or BF16"
                )))
            }
        };
        if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
            return Err(Error::non_finite(format!(
                "{wp}: tensor '{key}' holds a non-finite value ({} at index {i}); the adapter is corrupt or its \
                 training diverged",
                vals[i]
            )));
        }
        let lin = linear(model, &site).unwrap();
        let (in_name, out_name) = site.dims();
        let t = site.tower.name();
        if shape.len() != 2 {
            return Err(Error::shape(
                "load adapter",
                format!("{wp}: '{key}' has shape {shape:?}, expected a matrix"),
            ));
        }
        if which == 0 && shape[1] != lin.d_in() {
            return Err(Error::shape(
                "load adapter",
                format!(
                    "{wp}: '{key}' {shape:?}: the adapter expects {t} {in_name} {} but the model has {} (an adapter for another model?)",
                    shape[1],
                    lin.d_in()
                ),
            ));
        }
        if which == 1 && shape[0] != lin.d_out() {
            return Err(Error::shape(
                "load adapter",
                format!(
                    "{wp}: '{key}' {shape:?}: the adapter expects {t} {out_name} {} but the model has {} (an adapter for another model?)",
                    shape[0],
                    lin.d_out()
                ),
            ));
        }
        if lin.lora.is_some() {
            return Err(Error::invalid(format!(
                "{wp}: {module} already has a LoRA adapter (two adapters on one layer conflict)"
            )));
        }
        let slot = found.entry(site).or_default();
        if which == 0 {
            slot.0 = Some((shape, vals));
        } else {
            slot.1 = Some((shape, vals));
        }
    }
    if found.is_empty() {
        return Err(Error::invalid(format!("{wp}: the adapter holds no LoRA weights")));
    }
    let mut attach = vec![];
    for (site, (a, b)) in found {
        let module = site.module();
        let (Some(a), Some(b)) = (a, b) else {
            return Err(Error::invalid(format!(
                "{wp}: {module} has only one of lora_A / lora_B"
            )));
        };
        if a.0[0] != b.0[1] {
            return Err(Error::shape(
                "load adapter",
                format!(
                    "{wp}: {module}: lora_A {:?} and lora_B {:?} disagree on the rank",
                    a.0, b.0
                ),
            ));
        }
        let rank = a.0[0];
        let expect_r = pattern_value(rank_pattern, &module).map(|x| x as usize).unwrap_or(r);
        if rank != expect_r {
            return Err(Error::shape(
                "load adapter",
                format!("{wp}: {module} has rank {rank} but {cp} says r={expect_r}"),
            ));
        }
        let al = pattern_value(alpha_pattern, &module).map(|x| x as f32).unwrap_or(alpha);
        let scale = if rslora {
            al / (rank as f32).sqrt()
        } else {
            al / rank as f32
        };
        attach.push((site, a, b, scale));
    }
    if !(0.0..1.0).contains(&dropout) {
        return Err(Error::invalid(format!(
            "{cp}: lora_dropout {dropout} must be in [0, 1)"
        )));
    }

    let dev = model.device().clone();
    let mut summary_sites = vec![];
    for (site, a, b, scale) in attach {
        let module = site.module();
        let pa = Param::trainable(format!("{module}.lora_A.weight"), Tensor::from_vec(a.1, &a.0, &dev)?);
        let pb = Param::trainable(format!("{module}.lora_B.weight"), Tensor::from_vec(b.1, &b.0, &dev)?);
        linear_mut(model, &site).unwrap().attach_lora(pa, pb, scale, dropout)?;
        summary_sites.push(site);
    }
    let targets: BTreeSet<LoraTarget> = summary_sites.iter().map(|s| s.target).collect();
    let towers: BTreeSet<Tower> = summary_sites.iter().map(|s| s.tower).collect();
    let lo = summary_sites.iter().map(|s| s.layer).min().unwrap_or(0);
    let hi = summary_sites.iter().map(|s| s.layer).max().unwrap_or(0);
    let full = towers.iter().all(|&t| lo == 0 && hi + 1 == num_layers(model, t));
    Ok(LoraConfig {
        rank: r,
        alpha,
        dropout,
        targets: targets.into_iter().collect(),
        towers: towers.into_iter().collect(),
        layers: if full { None } else { Some((lo, hi)) },
    })
}

/// Fold every adapter into its base weight (`W + scale * B @ A`, in f32; the merged
/// weight stays f32 even when the base was stored f16/bf16) and remove the adapters.
pub fn merge(model: &mut Clip) -> Result<()> {
    for site in adapter_sites(model) {
        let lin = linear_mut(model, &site).unwrap();
        let l = lin.lora.as_ref().unwrap();
        let delta = l.b.value.matmul(&l.a.value)?.scale(l.scale)?;
        let w = lin.weight.value.cast(DType::F32)?.add(&delta)?;
        lin.weight.value = w;
        lin.lora = None;
    }
    Ok(())
}

/// Files of an HF model directory that are not weights and are copied as they are.
const HF_SIDE_FILES: &[&str] = &[
    "config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "generation_config.json",
];

/// Shape of `key` in the header of a safetensors file (reads the header only).
fn stored_shape(path: &Path, key: &str) -> Option<Vec<usize>> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n).ok()?;
    let n = u64::from_le_bytes(n);
    if n > 100 << 20 {
        return None;
    }
    let mut h = vec![0u8; n as usize];
    f.read_exact(&mut h).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&h).ok()?;
    v.get(key)?
        .get("shape")?
        .as_array()?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect()
}

/// Write `model` (adapters merged first: see [`merge`]) as an HF `CLIPModel` directory:
/// `model.safetensors` with HF names and shapes (patch embedding [W, 3, p, p],
/// projections [P, W], logit_scale 0-dim as HF has it), plus config, tokenizer and
/// preprocessor files copied from `src_dir` (the HF directory the model came from).
/// Tensors keep their storage dtype (merged weights are f32).
pub fn save_hf_checkpoint(model: &Clip, src_dir: &Path, out_dir: &Path) -> Result<()> {
    if let Some(s) = adapter_sites(model).first() {
        return Err(Error::invalid(format!(
            "save checkpoint: {} still has a LoRA adapter; merge the adapters first",
            s.module()
        )));
    }
    if model.config.layout != Layout::HuggingFace || !src_dir.join("config.json").exists() {
        return Err(Error::invalid(format!(
            "save checkpoint: {} is not a Hugging Face CLIPModel directory (no config.json); \
             merged checkpoints are written in HF layout from an HF base model",
            src_dir.display()
        )));
    }
    let same = match (src_dir.canonicalize(), out_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(Error::invalid(format!(
            "save checkpoint: the output directory {} is the base model's own directory; choose another",
            out_dir.display()
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir.display(), e))?;
    for name in HF_SIDE_FILES {
        let from = src_dir.join(name);
        if from.exists() {
            let bytes = std::fs::read(&from).map_err(|e| Error::io(from.display(), e))?;
            write_atomic(&out_dir.join(name), &bytes)?;
        }
    }
    let logit_shape: Vec<usize> = match stored_shape(&src_dir.join("model.safetensors"), "logit_scale") {
        Some(s) if s == [1] => vec![1],
        _ => vec![],
    };
    // Merged weights are f32 while untouched ones may still be stored f16/bf16: every tensor is
    // written in f32 (widening is exact) and config.json says so, so the stored dtypes and the
    // config agree and transformers loads exactly the merged model (not a bf16 rounding of it).
    write_hf_weights(
        model,
        &out_dir.join("model.safetensors"),
        &logit_shape,
        Some(DType::F32),
    )?;
    set_config_dtype(&out_dir.join("config.json"), "float32")
}

/// Sets config.json's `dtype` (transformers 5) and `torch_dtype` (transformers 4) to `name`.
fn set_config_dtype(path: &Path, name: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    let mut cfg: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::io(path.display(), format!("invalid JSON: {e}")))?;
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| Error::io(path.display(), "config.json is not a JSON object"))?;
    for key in ["dtype", "torch_dtype"] {
        obj.insert(key.into(), serde_json::json!(name));
    }
    for sub in ["text_config", "vision_config"] {
        if let Some(o) = obj.get_mut(sub).and_then(|v| v.as_object_mut()) {
            for key in ["dtype", "torch_dtype"] {
                if o.contains_key(key) {
                    o.insert(key.into(), serde_json::json!(name));
                }
            }
        }
    }
    let bytes = serde_json::to_vec_pretty(&cfg).map_err(|e| Error::io(path.display(), e))?;
    write_atomic(path, &bytes)
}

/// The model's weights under HF names and shapes in one safetensors file (atomic), cast to
/// `cast` when given (f16 for a shipped model), else in their storage dtype.
pub fn write_hf_weights(model: &Clip, path: &Path, logit_shape: &[usize], cast: Option<crate::DType>) -> Result<()> {
    let v = &model.config.vision;
    let mut tensors: Vec<(String, Tensor)> = vec![];
    let mut seen = BTreeSet::new();
    for p in model.params() {
        let t = match p.name.as_str() {
            "vision_model.embeddings.patch_embedding.weight" => {
                p.value.reshape(&[v.tower.width, 3, v.patch, v.patch])?
            }
            "logit_scale" => p.value.reshape(logit_shape)?,
            _ => p.value.clone(),
        };
        let t = match cast {
            Some(d) => t.cast(d)?,
            None => t,
        };
        if !seen.insert(p.name.clone()) {
            return Err(Error::invalid(format!(
                "save checkpoint: two parameters are named '{}'",
                p.name
            )));
        }
        tensors.push((p.name.clone(), t));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    write_safetensors(path, &refs)
}
