//! One on-disk format for every adapter, and loading adapters at inference.
//!
//! # The adapter directory
//!
//! Every method writes one directory. Its `cliptune_adapter.json` ([`MANIFEST`]) says what
//! the directory holds and which model it belongs to:
//!
//! ```json
//! {
//!   "format": "cliptune.adapter",
//!   "version": 1,
//!   "method": "lora" | "prompt" | "textual-inversion" | "linear-probe",
//!   "base_model": "models/clip-vit-base-patch32",
//!   "fingerprint": "3f1c0a9e5d2b7c44",
//!   "created": "2025-01-31T12:00:00Z",
//!   "model_shape": {"text_width": 512, "text_layers": 12, "vision_width": 768,
//!                   "vision_layers": 12, "projection_dim": 512},
//!   "info": { ...method-specific: classes, words, LoRA rank... }
//! }
//! ```
//!
//! - `base_model`: the base model's path as it was given when the adapter was made (for
//!   messages only: the check is the fingerprint).
//! - `fingerprint`: [`model_fingerprint`] of the base model (a hash of a few text-tower
//!   weights). An adapter is refused on a model with another fingerprint or other shapes,
//!   naming the adapter, the model it was made for and the model it was loaded on.
//!
//! Next to it, by method:
//!
//! | method | files |
//! |---|---|
//! | `lora` | PEFT's `adapter_config.json` + `adapter_model.safetensors` ([`lora::export_peft`]) |
//! | `prompt` | `prompt.safetensors` ([`PromptLearner::save`]) |
//! | `textual-inversion` | `textual_inversion.safetensors` ([`TextualInversion::save`]) + `tokenizer.json` (the extended tokenizer) |
//! | `linear-probe` | `linear_probe.json`: `{"classes": [c names], "l2": x, "c": c, "d": d, "weight": [c*d numbers, row-major], "bias": [c]}` (`"weights": [c rows]` is read too) |
//!
//! The manifest is written last, so a directory that has one is complete. The `save_*`
//! functions ([`save_lora`], [`save_prompt`], [`save_textual_inversion`],
//! [`save_linear_probe`]) write a whole directory; [`write_manifest`] writes only the
//! manifest. A PEFT directory without a manifest (made by PEFT's `save_pretrained`) loads
//! too; it is recognised by its `adapter_config.json` and only its shapes can be checked.
//!
//! # Loading
//!
//! [`load_adapters`] reads several directories and applies them to a model and its
//! tokenizer, in this order whatever the order given: LoRA adapters are attached (unmerged),
//! textual-inversion words are installed in the token table and the tokenizer, then prompt
//! learners and linear probes are read (against the extended tokenizer, so class names may use
//! the new words) and returned for the caller. Refused, with nothing applied: an adapter made
//! for another model, two LoRA adapters on one layer, two prompt adapters, two
//! textual-inversion adapters that add the same word.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::lora::{self, LoraConfig, Site};
use super::prompt::{model_fingerprint, PromptLearner};
use super::textual_inversion::TextualInversion;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::zero_shot::class_embeddings;
use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::eval::linear_probe::LinearProbe;
use crate::io::fingerprint::{weights_fingerprint, Digest};
use crate::tensor::io::write_atomic;
use crate::tensor::Tensor;

/// The manifest every cliptune adapter directory has.
pub const MANIFEST: &str = "cliptune_adapter.json";
/// The manifest's `format` value.
pub const MANIFEST_FORMAT: &str = "cliptune.adapter";
/// The manifest version this code writes (and the newest it reads).
pub const MANIFEST_VERSION: u64 = 1;
/// A prompt adapter's learner.
pub const PROMPT_FILE: &str = "prompt.safetensors";
/// A textual-inversion adapter's word embeddings.
pub const TI_FILE: &str = "textual_inversion.safetensors";
/// A textual-inversion adapter's extended tokenizer.
pub const TI_TOKENIZER: &str = "tokenizer.json";
/// A linear-probe adapter's classifier.
pub const PROBE_FILE: &str = "linear_probe.json";

/// The four kinds of adapter directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Lora,
    Prompt,
    TextualInversion,
    LinearProbe,
}

impl Method {
    pub const ALL: [Method; 4] = [
        Method::Lora,
        Method::Prompt,
        Method::TextualInversion,
        Method::LinearProbe,
    ];

    /// The manifest / CLI name: `lora`, `prompt`, `textual-inversion`, `linear-probe`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Lora => "lora",
            Method::Prompt => "prompt",
            Method::TextualInversion => "textual-inversion",
            Method::LinearProbe => "linear-probe",
        }
    }

    pub fn parse(s: &str) -> Result<Method> {
        let t = s.trim().to_ascii_lowercase().replace('_', "-");
        Method::ALL.into_iter().find(|m| m.name() == t).ok_or_else(|| {
            Error::invalid(format!(
                "unknown adapter method '{s}': expected lora, prompt, textual-inversion or linear-probe"
            ))
        })
    }

    /// The file (besides the manifest) that a directory of this method must have.
    pub fn main_file(self) -> &'static str {
        match self {
            Method::Lora => lora::ADAPTER_WEIGHTS,
            Method::Prompt => PROMPT_FILE,
            Method::TextualInversion => TI_FILE,
            Method::LinearProbe => PROBE_FILE,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The shapes an adapter depends on (recorded in the manifest, checked on load).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelShape {
    pub text_width: usize,
    pub text_layers: usize,
    pub vision_width: usize,
    pub vision_layers: usize,
    pub projection_dim: usize,
}

impl ModelShape {
    pub fn of(model: &Clip) -> ModelShape {
        let c = &model.config;
        ModelShape {
            text_width: c.text.tower.width,
            text_layers: c.text.tower.layers,
            vision_width: c.vision.tower.width,
            vision_layers: c.vision.tower.layers,
            projection_dim: c.projection_dim,
        }
    }

    fn fields(&self) -> [(&'static str, usize); 5] {
        [
            ("text_width", self.text_width),
            ("text_layers", self.text_layers),
            ("vision_width", self.vision_width),
            ("vision_layers", self.vision_layers),
            ("projection_dim", self.projection_dim),
        ]
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.fields().iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
    }

    fn from_json(v: &Value, file: &str) -> Result<ModelShape> {
        let get = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| Error::io(file, format!("model_shape.{k} is missing or not a number")))
        };
        Ok(ModelShape {
            text_width: get("text_width")?,
            text_layers: get("text_layers")?,
            vision_width: get("vision_width")?,
            vision_layers: get("vision_layers")?,
            projection_dim: get("projection_dim")?,
        })
    }

    /// `text width 16 x 2 layers, vision width 32 x 2 layers, projection 24`.
    pub fn describe(&self) -> String {
        format!(
            "text width {} x {} layers, vision width {} x {} layers, projection {}",
            self.text_width, self.text_layers, self.vision_width, self.vision_layers, self.projection_dim
        )
    }
}

/// The contents of `cliptune_adapter.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub method: Method,
    /// The base model's path as given when the adapter was made.
    pub base_model: String,
    /// [`model_fingerprint`] of the base model.
    pub fingerprint: String,
    /// UTC time of writing, RFC 3339 (`2025-01-31T12:00:00Z`).
    pub created: String,
    /// Shapes of the base model (absent in hand-written manifests: then only the
    /// fingerprint is checked).
    pub model_shape: Option<ModelShape>,
    /// [`weights_fingerprint`] of the base model: covers every weight an adapter
    /// changes, so a model that already contains this adapter (merged) is refused.
    /// Absent in manifests of older versions.
    pub weights_fingerprint: Option<String>,
    /// Method-specific information (classes, words, LoRA settings), a JSON object.
    pub info: serde_json::Map<String, Value>,
}

impl Manifest {
    /// A manifest for an adapter of `model` (loaded from `base_model`).
    pub fn new(method: Method, base_model: &str, model: &Clip, info: Value) -> Result<Manifest> {
        let info = match info {
            Value::Object(m) => m,
            Value::Null => Default::default(),
            other => {
                return Err(Error::invalid(format!(
                    "adapter manifest: the method-specific info must be a JSON object, got {other}"
                )))
            }
        };
        Ok(Manifest {
            method,
            base_model: base_model.to_string(),
            fingerprint: model_fingerprint(model)?,
            created: utc_now(),
            model_shape: Some(ModelShape::of(model)),
            weights_fingerprint: Some(weights_fingerprint(model)?),
            info,
        })
    }

    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("format".into(), json!(MANIFEST_FORMAT));
        m.insert("version".into(), json!(MANIFEST_VERSION));
        m.insert("method".into(), json!(self.method.name()));
        m.insert("base_model".into(), json!(self.base_model));
        m.insert("fingerprint".into(), json!(self.fingerprint));
        m.insert("created".into(), json!(self.created));
        if let Some(s) = &self.model_shape {
            m.insert("model_shape".into(), s.to_json());
        }
        if let Some(w) = &self.weights_fingerprint {
            m.insert("weights_fingerprint".into(), json!(w));
        }
        m.insert("info".into(), Value::Object(self.info.clone()));
        Value::Object(m)
    }

    /// Write `dir/cliptune_adapter.json` atomically (the directory must exist).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text =
            serde_json::to_vec_pretty(&self.to_json()).map_err(|e| Error::invalid(format!("adapter manifest: {e}")))?;
        write_atomic(&dir.join(MANIFEST), &text)
    }

    /// Read `dir/cliptune_adapter.json`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let p = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&p, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::io(&p, format!("invalid JSON: {e}")))?;
        if !v.is_object() {
            return Err(Error::io(&p, "not a JSON object"));
        }
        if let Some(f) = v.get("format").and_then(Value::as_str) {
            if f != MANIFEST_FORMAT {
                return Err(Error::io(&p, format!("format is '{f}', expected '{MANIFEST_FORMAT}'")));
            }
        }
        if let Some(ver) = v.get("version").and_then(Value::as_u64) {
            if ver > MANIFEST_VERSION {
                return Err(Error::io(
                    &p,
                    format!(
                        "manifest version {ver} is newer than this cliptune understands ({MANIFEST_VERSION}): upgrade cliptune"
                    ),
                ));
            }
        }
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| Error::io(&p, format!("'{k}' is missing or not a string")))
        };
        let method_name = s("method")?;
        if method_name == "full" {
            return Err(Error::invalid(format!(
                "{}: this is a full fine-tune, a whole model rather than an adapter: use it as --model {} \
                 instead of --adapter",
                dir.display(),
                dir.display()
            )));
        }
        let method = Method::parse(&method_name).map_err(|e| Error::io(&p, e.msg))?;
        let fingerprint = s("fingerprint")?;
        let model_shape = match v.get("model_shape") {
            Some(ms) if !ms.is_null() => Some(ModelShape::from_json(ms, &p)?),
            _ => None,
        };
        // Method-specific keys live under "info"; without one, every other top-level key
        // counts as info (the flat layout is read too).
        const KNOWN: [&str; 9] = [
            "format",
            "version",
            "method",
            "base_model",
            "fingerprint",
            "created",
            "model_shape",
            "weights_fingerprint",
            "info",
        ];
        let info = match v.get("info") {
            Some(Value::Object(m)) => m.clone(),
            None | Some(Value::Null) => v
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
                        .map(|(k, x)| (k.clone(), x.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            Some(_) => return Err(Error::io(&p, "'info' must be a JSON object")),
        };
        Ok(Manifest {
            method,
            base_model: v.get("base_model").and_then(Value::as_str).unwrap_or("?").to_string(),
            fingerprint,
            created: v.get("created").and_then(Value::as_str).unwrap_or("").to_string(),
            model_shape,
            weights_fingerprint: v.get("weights_fingerprint").and_then(Value::as_str).map(String::from),
            info,
        })
    }

    /// Refuse `model` (called `model_label` in messages) unless it is the model this
    /// adapter was made for: same shapes and same fingerprint.
    pub fn check_model(&self, dir: &Path, model: &Clip, model_label: &str) -> Result<()> {
        let d = dir.display();
        let m = self.method;
        let base = &self.base_model;
        let have = ModelShape::of(model);
        if let Some(want) = &self.model_shape {
            if let Some(((k, a), (_, b))) = want.fields().iter().zip(have.fields()).find(|(x, y)| x.1 != y.1) {
                return Err(Error::invalid(format!(
                    "adapter {d}: this {m} adapter was made for {base} ({k} {a}; {}), but {model_label} has {k} {b} ({}): \
                     it belongs to another model",
                    want.describe(),
                    have.describe()
                )));
            }
        }
        let fp = model_fingerprint(model)?;
        if fp != self.fingerprint {
            return Err(Error::invalid(format!(
                "adapter {d}: this {m} adapter was made for {base} (model fingerprint {}), but {model_label} has \
                 fingerprint {fp}: it belongs to another model (load it with --model {base})",
                self.fingerprint
            )));
        }
        if let Some(want) = &self.weights_fingerprint {
            let now = weights_fingerprint(model)?;
            if &now != want {
                return Err(Error::invalid(format!(
                    "adapter {d}: this {m} adapter was made for {base}, and {model_label} has that model's text \
                     embeddings but other weights (weights fingerprint {now}, the adapter's base {want}): it already \
                     contains an update, e.g. this adapter merged into it; applying it would add the update twice \
                     (use {model_label} alone, or {base} with --adapter {d})"
                )));
            }
        }
        Ok(())
    }
}

/// Write `dir/cliptune_adapter.json` for an adapter of `model`, loaded from `base_model`
/// (recorded as given). `info` is the method-specific JSON object (or null). Creates `dir`.
pub fn write_manifest(dir: &Path, method: Method, base_model: &str, model: &Clip, info: Value) -> Result<Manifest> {
    let m = Manifest::new(method, base_model, model, info)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    m.write(dir)?;
    Ok(m)
}

fn lora_info(cfg: &LoraConfig, model: &Clip) -> Value {
    let sites: Vec<String> = lora::adapter_sites(model).iter().map(Site::module).collect();
    json!({
        "r": cfg.rank,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "targets": cfg.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "towers": cfg.towers.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "layers": cfg.layers.map(|(a, b)| format!("{a}-{b}")).unwrap_or_else(|| "all".into()),
        "modules": sites,
    })
}

/// Write a LoRA adapter directory: PEFT's files ([`lora::export_peft_with_base`]) and the
/// manifest. `model` carries the (unmerged) adapters.
pub fn save_lora(dir: &Path, model: &Clip, cfg: &LoraConfig, base_model: &str) -> Result<Manifest> {
    lora::export_peft_with_base(model, cfg, dir, Some(base_model))?;
    write_manifest(dir, Method::Lora, base_model, model, lora_info(cfg, model))
}

/// Write a prompt adapter directory: `prompt.safetensors` and the manifest.
pub fn save_prompt(dir: &Path, learner: &PromptLearner, model: &Clip, base_model: &str) -> Result<Manifest> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    learner.save(&dir.join(PROMPT_FILE))?;
    let info = json!({
        "classes": learner.classes,
        "n_ctx": learner.n_ctx,
        "class_specific": learner.class_specific,
        "ctx_init": learner.ctx_init,
    });
    write_manifest(dir, Method::Prompt, base_model, model, info)
}

/// Write a textual-inversion adapter directory: `textual_inversion.safetensors`, the
/// tokenizer with the words (`tok`, with the words added if it lacks them) and the manifest.
pub fn save_textual_inversion(
    dir: &Path,
    ti: &TextualInversion,
    tok: &ClipTokenizer,
    model: &Clip,
    base_model: &str,
) -> Result<Manifest> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    ti.save(&dir.join(TI_FILE))?;
    let mut t = tok.clone();
    let words: Vec<&str> = ti.words.iter().map(String::as_str).collect();
    t.add_words(&words)?;
    t.save(&dir.join(TI_TOKENIZER))?;
    let info = json!({ "words": ti.words, "width": ti.width() });
    write_manifest(dir, Method::TextualInversion, base_model, model, info)
}

/// A linear classifier on L2-normalised image embeddings, with its class names.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeAdapter {
    pub probe: LinearProbe,
    pub classes: Vec<String>,
}

impl ProbeAdapter {
    /// Class probabilities `[n, classes]` (row-major) of image embeddings `[n, d]`.
    pub fn predict_scores(&self, image_embeds: &Tensor) -> Result<Vec<f32>> {
        let s = image_embeds.shape();
        if s.len() != 2 || s[1] != self.probe.d {
            return Err(Error::shape(
                "linear probe",
                format!("image embeddings {s:?} must be [n, {}]", self.probe.d),
            ));
        }
        self.probe.predict_scores(&image_embeds.to_vec()?, s[0])
    }

    /// The `linear_probe.json` contents: `classes`, `l2`, `c`, `d`, `weight` (c x d,
    /// row-major), `bias` (c).
    pub fn to_json(&self) -> Value {
        json!({
            "classes": self.classes,
            "l2": self.probe.l2,
            "c": self.probe.c,
            "d": self.probe.d,
            "weight": self.probe.weight,
            "bias": self.probe.bias,
        })
    }

    /// Read `linear_probe.json` and check it against the model's projection width.
    pub fn read(path: &Path, model: &Clip) -> Result<ProbeAdapter> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(&p, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::io(&p, format!("invalid JSON: {e}")))?;
        let classes: Vec<String> = v
            .get("classes")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|c| c.as_str().map(String::from)).collect())
            .ok_or_else(|| Error::io(&p, "'classes' must be a list of class names"))?;
        let floats = |x: &Value, what: &str| -> Result<Vec<f32>> {
            x.as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|f| f.as_f64().map(|f| f as f32))
                        .collect::<Option<Vec<f32>>>()
                })
                .ok_or_else(|| Error::io(&p, format!("'{what}' must be a list of numbers")))
        };
        let bias = floats(v.get("bias").unwrap_or(&Value::Null), "bias")?;
        let l2 = v.get("l2").and_then(Value::as_f64).unwrap_or(0.0) as f32;
        let c = classes.len();
        if c < 2 {
            return Err(Error::io(
                &p,
                format!("a linear probe needs at least 2 classes, got {c}"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = classes.iter().find(|x| !seen.insert(x.as_str())) {
            return Err(Error::io(&p, format!("class {dup:?} is listed twice")));
        }
        if bias.len() != c {
            return Err(Error::io(&p, format!("{c} classes but {} biases", bias.len())));
        }
        if let Some(fc) = v.get("c").and_then(Value::as_u64) {
            if fc as usize != c {
                return Err(Error::io(&p, format!("'c' is {fc} but {c} classes are named")));
            }
        }
        // "weight": c * d numbers, row-major, with "d" (what save_linear_probe and the
        // training loop write), or "weights": c rows of d numbers.
        let (weight, d) = if let Some(w) = v.get("weight") {
            let w = floats(w, "weight")?;
            let d = match v.get("d").and_then(Value::as_u64) {
                Some(d) => d as usize,
                None => w.len() / c,
            };
            if d == 0 || w.len() != c * d {
                return Err(Error::io(
                    &p,
                    format!("'weight' has {} values, expected {c} classes x {d} features", w.len()),
                ));
            }
            (w, d)
        } else {
            let rows = v
                .get("weights")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::io(&p, "no 'weight' (c x d numbers) or 'weights' (c rows)"))?;
            if rows.len() != c {
                return Err(Error::io(&p, format!("{c} classes but {} weight rows", rows.len())));
            }
            let mut weight = vec![];
            let mut d = None;
            for (i, r) in rows.iter().enumerate() {
                let r = floats(r, &format!("weights[{i}]"))?;
                if *d.get_or_insert(r.len()) != r.len() {
                    return Err(Error::io(
                        &p,
                        format!("weight row {i} has {} values, row 0 has {}", r.len(), d.unwrap_or(0)),
                    ));
                }
                weight.extend(r);
            }
            (weight, d.unwrap_or(0))
        };
        let proj = model.config.projection_dim;
        if d != proj {
            return Err(Error::invalid(format!(
                "{p}: the probe classifies {d}-dimensional image embeddings but the model's are {proj}-dimensional: \
                 it belongs to another model"
            )));
        }
        if weight.iter().chain(&bias).any(|x| !x.is_finite()) || !l2.is_finite() {
            return Err(Error::io(&p, "the probe has non-finite values"));
        }
        Ok(ProbeAdapter {
            probe: LinearProbe { weight, bias, c, d, l2 },
            classes,
        })
    }
}

/// Write a linear-probe adapter directory: `linear_probe.json` and the manifest.
pub fn save_linear_probe(
    dir: &Path,
    probe: &LinearProbe,
    classes: &[String],
    model: &Clip,
    base_model: &str,
) -> Result<Manifest> {
    if classes.len() != probe.c || probe.weight.len() != probe.c * probe.d || probe.bias.len() != probe.c {
        return Err(Error::invalid(format!(
            "linear probe: {} class names for a probe of {} classes x {} features ({} weights, {} biases)",
            classes.len(),
            probe.c,
            probe.d,
            probe.weight.len(),
            probe.bias.len()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let pa = ProbeAdapter {
        probe: probe.clone(),
        classes: classes.to_vec(),
    };
    let text = serde_json::to_vec(&pa.to_json()).map_err(|e| Error::invalid(format!("linear probe: {e}")))?;
    write_atomic(&dir.join(PROBE_FILE), &text)?;
    let info = json!({ "classes": classes, "l2": probe.l2, "features": probe.d });
    write_manifest(dir, Method::LinearProbe, base_model, model, info)
}

/// One adapter as loaded, with the directory it came from.
#[derive(Clone, Debug)]
pub enum LoadedAdapter {
    /// Attached (unmerged) to the model's Linears.
    Lora {
        dir: PathBuf,
        manifest: Option<Manifest>,
        config: LoraConfig,
        sites: Vec<Site>,
    },
    /// For the caller: [`PromptLearner::class_embeddings`] replaces the templates.
    Prompt {
        dir: PathBuf,
        manifest: Option<Manifest>,
        learner: PromptLearner,
    },
    /// Installed in the model's token table and the tokenizer.
    TextualInversion {
        dir: PathBuf,
        manifest: Option<Manifest>,
        ti: TextualInversion,
    },
    /// For the caller (zero-shot does not use it).
    LinearProbe {
        dir: PathBuf,
        manifest: Option<Manifest>,
        probe: ProbeAdapter,
    },
}

impl LoadedAdapter {
    pub fn dir(&self) -> &Path {
        match self {
            LoadedAdapter::Lora { dir, .. }
            | LoadedAdapter::Prompt { dir, .. }
            | LoadedAdapter::TextualInversion { dir, .. }
            | LoadedAdapter::LinearProbe { dir, .. } => dir,
        }
    }
    pub fn method(&self) -> Method {
        match self {
            LoadedAdapter::Lora { .. } => Method::Lora,
            LoadedAdapter::Prompt { .. } => Method::Prompt,
            LoadedAdapter::TextualInversion { .. } => Method::TextualInversion,
            LoadedAdapter::LinearProbe { .. } => Method::LinearProbe,
        }
    }
    pub fn manifest(&self) -> Option<&Manifest> {
        match self {
            LoadedAdapter::Lora { manifest, .. }
            | LoadedAdapter::Prompt { manifest, .. }
            | LoadedAdapter::TextualInversion { manifest, .. }
            | LoadedAdapter::LinearProbe { manifest, .. } => manifest.as_ref(),
        }
    }
    /// `lora: runs/lora1 (8 modules)` and the like, for progress output.
    pub fn describe(&self) -> String {
        let d = self.dir().display();
        match self {
            LoadedAdapter::Lora { sites, config, .. } => {
                format!(
                    "lora adapter {d}: {} module(s), r={}, alpha={}",
                    sites.len(),
                    config.rank,
                    config.alpha
                )
            }
            LoadedAdapter::Prompt { learner, .. } => format!(
                "prompt adapter {d}: {} context vector(s){} for {} class(es)",
                learner.n_ctx,
                if learner.class_specific { " per class" } else { "" },
                learner.classes.len()
            ),
            LoadedAdapter::TextualInversion { ti, .. } => {
                format!("textual-inversion adapter {d}: words {:?}", ti.words)
            }
            LoadedAdapter::LinearProbe { probe, .. } => {
                format!("linear-probe adapter {d}: {} classes", probe.classes.len())
            }
        }
    }
}

/// What [`load_adapters`] applied and what it hands back.
#[derive(Clone, Debug, Default)]
pub struct Adapters {
    /// In the order they were applied: LoRA, textual inversion, prompt, linear probe.
    pub loaded: Vec<LoadedAdapter>,
    /// Let a prompt adapter's shared context classify classes it was not trained on (CoOp's
    /// base-to-new evaluation; `eval --new-classes`). Off: other classes are refused.
    pub prompt_on_new_classes: bool,
}

impl Adapters {
    pub fn is_empty(&self) -> bool {
        self.loaded.is_empty()
    }
    pub fn len(&self) -> usize {
        self.loaded.len()
    }
    /// The prompt learner, if a prompt adapter was loaded (there is at most one).
    pub fn prompt(&self) -> Option<(&Path, &PromptLearner)> {
        self.loaded.iter().find_map(|a| match a {
            LoadedAdapter::Prompt { dir, learner, .. } => Some((dir.as_path(), learner)),
            _ => None,
        })
    }
    pub fn linear_probes(&self) -> Vec<(&Path, &ProbeAdapter)> {
        self.loaded
            .iter()
            .filter_map(|a| match a {
                LoadedAdapter::LinearProbe { dir, probe, .. } => Some((dir.as_path(), probe)),
                _ => None,
            })
            .collect()
    }
    pub fn textual_inversions(&self) -> Vec<(&Path, &TextualInversion)> {
        self.loaded
            .iter()
            .filter_map(|a| match a {
                LoadedAdapter::TextualInversion { dir, ti, .. } => Some((dir.as_path(), ti)),
                _ => None,
            })
            .collect()
    }

    /// Normalised class embeddings `[classes, P]` for zero-shot: the prompt adapter's
    /// learned prompts when one is loaded (its classes must be `classes`, in any order),
    /// else the template ensemble ([`class_embeddings`]).
    pub fn class_embeddings(
        &self,
        model: &Clip,
        tok: &ClipTokenizer,
        classes: &[String],
        templates: &[String],
        data_label: &str,
    ) -> Result<Tensor> {
        let Some((dir, learner)) = self.prompt() else {
            return class_embeddings(model, tok, classes, templates);
        };
        let order = match match_classes(dir, &learner.classes, classes, data_label) {
            Ok(order) => order,
            Err(e) if !self.prompt_on_new_classes => return Err(e),
            Err(_) if learner.class_specific => {
                return Err(Error::invalid(format!(
                    "prompt adapter {}: its context is class-specific (one per trained class), so it has none for \
                     the other classes of {data_label}; --new-classes needs a shared context",
                    dir.display()
                )))
            }
            Err(_) => {
                let known = classes.iter().filter(|c| learner.classes.contains(c)).count();
                eprintln!(
                    "[adapter] prompt adapter {}: its learned context applied to the {} classes of {data_label} ({} of \
                     them not trained on)",
                    dir.display(),
                    classes.len(),
                    classes.len() - known
                );
                return learner.for_classes(model, tok, classes)?.class_embeddings(model);
            }
        };
        let emb = learner.class_embeddings(model)?;
        if order.iter().enumerate().all(|(i, &j)| i == j) {
            return Ok(emb);
        }
        let p = emb.dim(1);
        let v = emb.to_vec()?;
        let out: Vec<f32> = order
            .iter()
            .flat_map(|&j| v[j * p..(j + 1) * p].iter().copied())
            .collect();
        Tensor::from_vec(out, &[order.len(), p], emb.device())
    }
}

fn show_list(names: &[String]) -> String {
    const MAX: usize = 8;
    let mut s: Vec<String> = names.iter().take(MAX).map(|n| format!("{n:?}")).collect();
    if names.len() > MAX {
        s.push(format!("... ({} in all)", names.len()));
    }
    format!("[{}]", s.join(", "))
}

/// For each of `wanted`, its index in `trained`; refuses lists that are not the same set,
/// naming both lists and their first difference.
pub fn match_classes(dir: &Path, trained: &[String], wanted: &[String], data_label: &str) -> Result<Vec<usize>> {
    let idx: HashMap<&str, usize> = trained.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let order: Option<Vec<usize>> = wanted.iter().map(|c| idx.get(c.as_str()).copied()).collect();
    let same_set = trained.len() == wanted.len()
        && order.as_ref().is_some_and(|o| {
            let mut s = o.clone();
            s.sort_unstable();
            s.dedup();
            s.len() == trained.len()
        });
    if same_set {
        return Ok(order.unwrap_or_default());
    }
    let first = (0..trained.len().max(wanted.len()))
        .find(|&i| trained.get(i) != wanted.get(i))
        .unwrap_or(0);
    let name = |l: &[String]| {
        l.get(first)
            .map(|c| format!("{c:?}"))
            .unwrap_or_else(|| "nothing (the list ends)".into())
    };
    let missing = wanted.iter().find(|c| !idx.contains_key(c.as_str()));
    let hint = match missing {
        Some(m) => format!(
            "; {m:?} is not one of the adapter's classes (`eval --new-classes` applies its learned context to the \
             data's own class names)"
        ),
        None => String::new(),
    };
    Err(Error::invalid(format!(
        "prompt adapter {}: it was trained on {} classes {}, but {data_label} has {} classes {}: \
         they first differ at position {first}: {} (adapter) vs {} ({data_label}){hint}",
        dir.display(),
        trained.len(),
        show_list(trained),
        wanted.len(),
        show_list(wanted),
        name(trained),
        name(wanted),
    )))
}

/// What a directory holds, before anything is loaded.
#[derive(Clone, Debug)]
pub struct AdapterDir {
    pub dir: PathBuf,
    pub method: Method,
    /// None for a PEFT directory without `cliptune_adapter.json` (or a bare adapter file).
    pub manifest: Option<Manifest>,
}

/// Identify an adapter directory (a path to one of its files is accepted too): its
/// manifest, else PEFT's `adapter_config.json`, else its one adapter file.
pub fn inspect(path: &Path) -> Result<AdapterDir> {
    let known = [
        MANIFEST,
        lora::ADAPTER_CONFIG,
        lora::ADAPTER_WEIGHTS,
        PROMPT_FILE,
        TI_FILE,
        PROBE_FILE,
    ];
    let dir = if path.is_file()
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| known.contains(&n))
    {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    let d = dir.display();
    if !dir.exists() {
        return Err(Error::io(&d, "adapter directory not found"));
    }
    if !dir.is_dir() {
        return Err(Error::io(
            &d,
            format!("not an adapter directory (--adapter takes the directory that holds {MANIFEST})"),
        ));
    }
    if dir.join(MANIFEST).is_file() {
        let m = Manifest::read(&dir)?;
        let main = dir.join(m.method.main_file());
        if !main.is_file() {
            return Err(Error::io(
                main.display(),
                format!(
                    "not found: {MANIFEST} says this is a {} adapter, which needs this file",
                    m.method
                ),
            ));
        }
        if m.method == Method::Lora && !dir.join(lora::ADAPTER_CONFIG).is_file() {
            return Err(Error::io(
                dir.join(lora::ADAPTER_CONFIG).display(),
                "not found: a lora adapter needs it",
            ));
        }
        return Ok(AdapterDir {
            method: m.method,
            manifest: Some(m),
            dir,
        });
    }
    let found: Vec<Method> = [
        (Method::Lora, lora::ADAPTER_CONFIG),
        (Method::Prompt, PROMPT_FILE),
        (Method::TextualInversion, TI_FILE),
        (Method::LinearProbe, PROBE_FILE),
    ]
    .into_iter()
    .filter(|(_, f)| dir.join(f).is_file())
    .map(|(m, _)| m)
    .collect();
    match found.as_slice() {
        [m] => Ok(AdapterDir { dir, method: *m, manifest: None }),
        [] if dir.join("config.json").is_file() || dir.join("open_clip_config.json").is_file() => Err(Error::io(
            &d,
            "this is a model directory, not an adapter: use it as --model (a merged checkpoint needs no --adapter)",
        )),
        [] => Err(Error::io(
            &d,
            format!(
                "not an adapter directory: no {MANIFEST}, and no PEFT adapter_config.json, {PROMPT_FILE}, {TI_FILE} or {PROBE_FILE}"
            ),
        )),
        many => Err(Error::io(
            &d,
            format!(
                "holds files of several adapters ({}) and no {MANIFEST} to say which it is",
                many.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Written into a merged model directory by `cliptune merge`: the adapters it contains
/// (`{"merged": [{"dir", "method", "digest"}]}`, the base model's own list first).
pub const MERGED_FROM: &str = "merged_from.json";

/// Digest of an adapter's weights (its method's main file, and PEFT's config for LoRA).
pub fn adapter_digest(a: &AdapterDir) -> Result<String> {
    let mut d = Digest::new();
    let mut files = vec![a.dir.join(a.method.main_file())];
    if a.method == Method::Lora {
        files.push(a.dir.join(lora::ADAPTER_CONFIG));
    }
    for f in files {
        d.bytes(&std::fs::read(&f).map_err(|e| Error::io(f.display(), e))?);
    }
    Ok(d.hex())
}

/// The adapters merged into the model in `model_dir` (empty for a model never merged).
pub fn merged_adapters(model_dir: &Path) -> Result<Vec<Value>> {
    let path = model_dir.join(MERGED_FROM);
    if !path.is_file() {
        return Ok(vec![]);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::io(path.display(), format!("invalid JSON: {e}")))?;
    v.get("merged")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| Error::io(path.display(), "no 'merged' list"))
}

/// The [`MERGED_FROM`] record for a model made by merging `adapters` into `model_dir`.
pub fn merged_record(model_dir: &Path, adapters: &[PathBuf]) -> Result<Value> {
    let mut list = merged_adapters(model_dir)?;
    for a in adapters {
        let info = inspect(a)?;
        list.push(json!({
            "dir": info.dir.display().to_string(),
            "method": info.method.name(),
            "digest": adapter_digest(&info)?,
        }));
    }
    Ok(json!({"base_model": model_dir.display().to_string(), "merged": list}))
}

/// Refuse to apply (or merge) an adapter the model in `model_dir` already contains.
pub fn check_not_merged(model_dir: &Path, adapters: &[PathBuf]) -> Result<()> {
    let merged = merged_adapters(model_dir)?;
    if merged.is_empty() {
        return Ok(());
    }
    for a in adapters {
        let info = inspect(a)?;
        let digest = adapter_digest(&info)?;
        if let Some(m) = merged
            .iter()
            .find(|m| m.get("digest").and_then(Value::as_str) == Some(digest.as_str()))
        {
            return Err(Error::invalid(format!(
                "adapter {}: the model {} already contains it (merged from {}, recorded in its {MERGED_FROM}); \
                 applying it again would add its update twice: use {} alone",
                a.display(),
                model_dir.display(),
                m.get("dir").and_then(Value::as_str).unwrap_or("?"),
                model_dir.display()
            )));
        }
    }
    Ok(())
}

/// Prefix an error with the adapter directory unless it already names it.
fn in_dir(dir: &Path, e: Error) -> Error {
    let d = dir.display().to_string();
    if e.msg.contains(&d) {
        e
    } else {
        Error::new(e.kind, format!("adapter {d}: {}", e.msg))
    }
}

/// The modules a PEFT safetensors file adapts (header only; unknown keys are skipped:
/// [`lora::load_peft`] refuses them with a full message).
fn peft_sites(dir: &Path) -> Result<Vec<Site>> {
    let path = dir.join(lora::ADAPTER_WEIGHTS);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::io(path.display(), format!("not a valid safetensors file: {e}")))?;
    let mut out: Vec<Site> = meta
        .tensors()
        .keys()
        .filter_map(|k| {
            let k = k.strip_prefix("base_model.model.").unwrap_or(k);
            let m = k
                .strip_suffix(".lora_A.weight")
                .or_else(|| k.strip_suffix(".lora_B.weight"))?;
            Site::parse_module(m)
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// [`load_adapters_named`] with the model called "the loaded model" in messages.
pub fn load_adapters(model: &mut Clip, tok: &mut ClipTokenizer, dirs: &[PathBuf]) -> Result<Adapters> {
    load_adapters_named(model, tok, dirs, "the loaded model")
}

/// Load adapter directories onto `model` and `tok` (see the module docs): LoRA attached,
/// textual-inversion words installed, prompt learners and linear probes returned.
/// `model_label` names the model in messages (e.g. its directory). Every adapter is
/// checked against the model (fingerprint, shapes) and against the others; on any error
/// `model` and `tok` are left exactly as they were.
pub fn load_adapters_named(
    model: &mut Clip,
    tok: &mut ClipTokenizer,
    dirs: &[PathBuf],
    model_label: &str,
) -> Result<Adapters> {
    if dirs.is_empty() {
        return Ok(Adapters::default());
    }
    // 1. What is each directory, and is it for this model?
    let mut found = vec![];
    for (i, d) in dirs.iter().enumerate() {
        let a = inspect(d)?;
        if let Some(m) = &a.manifest {
            m.check_model(&a.dir, model, model_label)?;
        }
        if let Some((j, _)) = found
            .iter()
            .enumerate()
            .find(|(_, b): &(usize, &AdapterDir)| same_dir(&b.dir, &a.dir))
        {
            return Err(Error::invalid(format!(
                "--adapter {} is given twice (as {} and {}): each adapter can be applied once",
                a.dir.display(),
                dirs[j].display(),
                dirs[i].display()
            )));
        }
        found.push(a);
    }
    let prompts: Vec<&AdapterDir> = found.iter().filter(|a| a.method == Method::Prompt).collect();
    if let [a, b, ..] = prompts.as_slice() {
        return Err(Error::invalid(format!(
            "two prompt adapters, {} and {}, conflict: both replace the class prompts; give one",
            a.dir.display(),
            b.dir.display()
        )));
    }
    // 2. Apply, on copies (cheap: tensors are shared) so a refusal changes nothing.
    let mut m = model.clone();
    let mut t = tok.clone();
    let mut loaded = vec![];
    let mut owner: BTreeMap<Site, PathBuf> = BTreeMap::new();
    for a in found.iter().filter(|a| a.method == Method::Lora) {
        let sites = peft_sites(&a.dir)?;
        for s in &sites {
            if let Some(other) = owner.get(s) {
                return Err(Error::invalid(format!(
                    "LoRA adapters {} and {} both adapt {}: two adapters on one layer conflict (merge one first, \
                     or give only one)",
                    other.display(),
                    a.dir.display(),
                    s.module()
                )));
            }
        }
        let config = lora::load_peft(&mut m, &a.dir).map_err(|e| in_dir(&a.dir, e))?;
        for s in &sites {
            owner.insert(*s, a.dir.clone());
        }
        loaded.push(LoadedAdapter::Lora {
            dir: a.dir.clone(),
            manifest: a.manifest.clone(),
            config,
            sites,
        });
    }
    let mut words: HashMap<String, PathBuf> = HashMap::new();
    for a in found.iter().filter(|a| a.method == Method::TextualInversion) {
        let ti = TextualInversion::load(&a.dir.join(TI_FILE), &m, &mut t).map_err(|e| in_dir(&a.dir, e))?;
        for w in &ti.words {
            if let Some(other) = words.get(&w.to_lowercase()) {
                return Err(Error::invalid(format!(
                    "textual-inversion adapters {} and {} both add the word {w:?}: they conflict; give one",
                    other.display(),
                    a.dir.display()
                )));
            }
        }
        check_ti_tokenizer(&a.dir, &ti, &t)?;
        ti.install(&mut m, &mut t).map_err(|e| in_dir(&a.dir, e))?;
        for w in &ti.words {
            words.insert(w.to_lowercase(), a.dir.clone());
        }
        loaded.push(LoadedAdapter::TextualInversion {
            dir: a.dir.clone(),
            manifest: a.manifest.clone(),
            ti,
        });
    }
    for a in found.iter().filter(|a| a.method == Method::Prompt) {
        let learner = PromptLearner::load(&a.dir.join(PROMPT_FILE), &m, &t).map_err(|e| in_dir(&a.dir, e))?;
        loaded.push(LoadedAdapter::Prompt {
            dir: a.dir.clone(),
            manifest: a.manifest.clone(),
            learner,
        });
    }
    for a in found.iter().filter(|a| a.method == Method::LinearProbe) {
        let probe = ProbeAdapter::read(&a.dir.join(PROBE_FILE), &m).map_err(|e| in_dir(&a.dir, e))?;
        loaded.push(LoadedAdapter::LinearProbe {
            dir: a.dir.clone(),
            manifest: a.manifest.clone(),
            probe,
        });
    }
    *model = m;
    *tok = t;
    Ok(Adapters {
        loaded,
        prompt_on_new_classes: false,
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The adapter's own `tokenizer.json` (when present) must split ordinary text like the
/// model's tokenizer and know the adapter's words.
fn check_ti_tokenizer(dir: &Path, ti: &TextualInversion, tok: &ClipTokenizer) -> Result<()> {
    let path = dir.join(TI_TOKENIZER);
    if !path.is_file() {
        return Ok(());
    }
    let own = ClipTokenizer::from_file(&path)?;
    let probe = "a photo of a dog on a table, 2 cats.";
    if own.encode(probe)? != tok.encode(probe)? {
        return Err(Error::invalid(format!(
            "{}: this tokenizer splits text differently from the model's: the adapter was made with another tokenizer",
            path.display()
        )));
    }
    for w in &ti.words {
        let ids = own.encode(w)?;
        if ids.len() != 3 {
            return Err(Error::invalid(format!(
                "{}: the adapter's word {w:?} is not one token in its own tokenizer.json (the files do not belong together)",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, mo, d, hh, mm, ss) = crate::report::civil_utc(secs);
    format!("{y:04}-{mo:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.name()).unwrap(), m);
        }
        assert_eq!(Method::parse("textual_inversion").unwrap(), Method::TextualInversion);
        assert!(Method::parse("full").is_err());
    }

    #[test]
    fn utc_now_is_rfc3339() {
        let s = utc_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
        assert!(s.as_str() > "2024-01-01");
    }

    #[test]
    fn class_lists_must_match() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let d = Path::new("ad");
        assert_eq!(
            match_classes(d, &l(&["a", "b"]), &l(&["b", "a"]), "x").unwrap(),
            vec![1, 0]
        );
        let e = match_classes(d, &l(&["a", "b"]), &l(&["a", "c"]), "data").unwrap_err();
        assert!(e.msg.contains("\"b\" (adapter) vs \"c\" (data)"), "{}", e.msg);
        assert!(match_classes(d, &l(&["a", "b"]), &l(&["a"]), "x").is_err());
        assert!(match_classes(d, &l(&["a", "b"]), &l(&["a", "a"]), "x").is_err());
    }
}
