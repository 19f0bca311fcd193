//! CLIP shapes from a model directory's config (HF `config.json` or open_clip's
//! `open_clip_config.json`), or built-in named configs for benchmarks.
use std::path::Path;

use serde_json::Value;

use crate::backend::Act;
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct TowerConfig {
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub mlp: usize,
    pub act: Act,
    pub eps: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VisionConfig {
    pub tower: TowerConfig,
    pub image_size: usize,
    pub patch: usize,
}

impl VisionConfig {
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch).pow(2)
    }
    pub fn seq(&self) -> usize {
        self.num_patches() + 1
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    pub tower: TowerConfig,
    pub vocab: usize,
    pub context: usize,
    /// Id that ends a caption: pooling takes its first position (equal to HF's
    /// argmax for the legacy `eos_token_id: 2` configs, since EOT is the top id).
    pub eot_id: u32,
    /// Padding id this layout's tokenizer uses (HF: EOT, open_clip: 0).
    pub pad_id: u32,
}

/// Which key layout the checkpoint uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    HuggingFace,
    OpenClip,
}

impl Layout {
    /// The layout of a model directory by its config file: `config.json` (HF) first, then
    /// `open_clip_config.json`; None when it has neither.
    pub fn of_dir(dir: &Path) -> Option<Layout> {
        if dir.join("config.json").exists() {
            Some(Layout::HuggingFace)
        } else if dir.join("open_clip_config.json").exists() {
            Some(Layout::OpenClip)
        } else {
            None
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub vision: VisionConfig,
    pub text: TextConfig,
    pub projection_dim: usize,
    pub layout: Layout,
}

/// Upper bounds of the shape fields: far above any real CLIP, low enough that products of
/// them (patch counts, parameter counts) cannot overflow into a wrong but valid-looking shape.
const MAX_WIDTH: u64 = 1 << 16;
const MAX_LAYERS: u64 = 1 << 10;
const MAX_IMAGE_SIZE: u64 = 1 << 14;
const MAX_VOCAB: u64 = 1 << 24;
const MAX_CONTEXT: u64 = 1 << 16;

/// Strict reading of one JSON object of a config: a present field must have the right type
/// and range (a wrong one is an error naming the file, the field and the value); only an
/// absent (or null) field takes the default.
struct Fields<'a> {
    v: &'a Value,
    file: &'a Path,
    /// The object's path in the file, e.g. "vision_config.", for messages.
    prefix: String,
}

impl<'a> Fields<'a> {
    fn new(v: &'a Value, file: &'a Path, prefix: &str) -> Result<Self> {
        if !v.is_object() {
            let name = prefix.trim_end_matches('.');
            return Err(Error::invalid(format!(
                "{}: {} must be a JSON object, got {v}",
                file.display(),
                if name.is_empty() { "the config" } else { name }
            )));
        }
        Ok(Fields {
            v,
            file,
            prefix: prefix.to_string(),
        })
    }

    /// The sub-object `key` (an empty object when absent).
    fn object(&self, key: &str) -> Result<Fields<'a>> {
        static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
        let empty = EMPTY.get_or_init(|| Value::Object(Default::default()));
        let v = match self.v.get(key) {
            None | Some(Value::Null) => empty,
            Some(v) => v,
        };
        Fields::new(v, self.file, &format!("{}{key}.", self.prefix))
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.v.get(key).filter(|v| !v.is_null())
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn bad(&self, key: &str, value: &Value, want: &str) -> Error {
        Error::invalid(format!(
            "{}: {}{key} is {value}, but it must be {want}",
            self.file.display(),
            self.prefix
        ))
    }

    /// An integer in [min, max]; `default` when absent.
    fn uint(&self, key: &str, default: usize, min: u64, max: u64) -> Result<usize> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        let want = format!("an integer from {min} to {max}");
        match v.as_u64() {
            Some(x) if (min..=max).contains(&x) => Ok(x as usize),
            _ => Err(self.bad(key, v, &want)),
        }
    }

    /// A finite number in (0, max]; `default` when absent.
    fn positive(&self, key: &str, default: f64, max: f64) -> Result<f64> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 && x <= max => Ok(x),
            _ => Err(self.bad(key, v, &format!("a number above 0 and at most {max}"))),
        }
    }

    fn string(&self, key: &str, default: &'a str) -> Result<&'a str> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(self.bad(key, v, "a string")),
        }
    }

    fn boolean(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.bad(key, v, "true or false")),
        }
    }
}

fn act_from_hf(v: &Fields) -> Result<Act> {
    match v.string("hidden_act", "quick_gelu")? {
        "quick_gelu" => Ok(Act::QuickGelu),
        "gelu" => Ok(Act::Gelu),
        other => Err(Error::invalid(format!(
            "{}: {}hidden_act '{other}' is not supported (quick_gelu or gelu)",
            v.file.display(),
            v.prefix
        ))),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = crate::user_file::read_text_capped(path, "model config", crate::user_file::JSON_MAX_BYTES)?;
    serde_json::from_str(&text).map_err(|e| Error::io(path.display(), format!("not valid JSON: {e}")))
}

/// Where each tower's width and head count come from, for messages.
struct FieldNames {
    width: [&'static str; 2],
    heads: [&'static str; 2],
    image_size: &'static str,
    patch: &'static str,
}

const HF_NAMES: FieldNames = FieldNames {
    width: ["vision_config.hidden_size", "text_config.hidden_size"],
    heads: ["vision_config.num_attention_heads", "text_config.num_attention_heads"],
    image_size: "vision_config.image_size",
    patch: "vision_config.patch_size",
};

const OPEN_CLIP_NAMES: FieldNames = FieldNames {
    width: ["model_cfg.vision_cfg.width", "model_cfg.text_cfg.width"],
    heads: ["model_cfg.vision_cfg.width / head_width", "model_cfg.text_cfg.heads"],
    image_size: "model_cfg.vision_cfg.image_size",
    patch: "model_cfg.vision_cfg.patch_size",
};

impl ClipConfig {
    /// Read the config of a model directory in either layout.
    pub fn from_dir(dir: &Path) -> Result<ClipConfig> {
        let hf = dir.join("config.json");
        let oc = dir.join("open_clip_config.json");
        if hf.exists() {
            Self::from_hf(&read_json(&hf)?, &hf)
        } else if oc.exists() {
            Self::from_open_clip(&read_json(&oc)?, &oc)
        } else if !dir.is_dir() {
            Err(Error::io(dir.display(), "model directory not found"))
        } else {
            Err(Error::io(
                dir.display(),
                "no config.json (Hugging Face CLIPModel) or open_clip_config.json (open_clip) in this directory",
            ))
        }
    }

    fn from_hf(c: &Value, file: &Path) -> Result<ClipConfig> {
        let c = Fields::new(c, file, "")?;
        let t = c.object("text_config")?;
        let v = c.object("vision_config")?;
        let text_width = t.uint("hidden_size", 512, 1, MAX_WIDTH)?;
        let vis_width = v.uint("hidden_size", 768, 1, MAX_WIDTH)?;
        // The sub-configs' projection_dim copies can be stale: the top level wins.
        let projection_dim = c.uint("projection_dim", 512, 1, MAX_WIDTH)?;
        let eps = |x: &Fields| x.positive("layer_norm_eps", 1e-5, 1.0).map(|e| e as f32);
        let vocab = t.uint("vocab_size", 49408, 1, MAX_VOCAB)?;
        // HF pools at eos_token_id, except the legacy value 2 (the OpenAI configs), where it
        // takes the argmax id: EOT, the top id of the OpenAI vocabulary. Pruned vocabularies
        // (cliptune-mini) name their EOT here.
        let eot_id = match t.uint("eos_token_id", 2, 0, MAX_VOCAB)? {
            2 => 49407.min(vocab.saturating_sub(1)) as u32,
            e => e as u32,
        };
        if eot_id as usize >= vocab {
            return Err(Error::invalid(format!(
                "{}: text_config.eos_token_id {eot_id} is outside the vocabulary ({vocab} tokens)",
                file.display()
            )));
        }
        let cfg = ClipConfig {
            vision: VisionConfig {
                tower: TowerConfig {
                    width: vis_width,
                    layers: v.uint("num_hidden_layers", 12, 1, MAX_LAYERS)?,
                    heads: v.uint("num_attention_heads", 12, 1, MAX_WIDTH)?,
                    mlp: v.uint("intermediate_size", 3072, 1, 16 * MAX_WIDTH)?,
                    act: act_from_hf(&v)?,
                    eps: eps(&v)?,
                },
                image_size: v.uint("image_size", 224, 1, MAX_IMAGE_SIZE)?,
                patch: v.uint("patch_size", 32, 1, MAX_IMAGE_SIZE)?,
            },
            text: TextConfig {
                tower: TowerConfig {
                    width: text_width,
                    layers: t.uint("num_hidden_layers", 12, 1, MAX_LAYERS)?,
                    heads: t.uint("num_attention_heads", 8, 1, MAX_WIDTH)?,
                    mlp: t.uint("intermediate_size", 2048, 1, 16 * MAX_WIDTH)?,
                    act: act_from_hf(&t)?,
                    eps: eps(&t)?,
                },
                vocab,
                context: t.uint("max_position_embeddings", 77, 2, MAX_CONTEXT)?,
                eot_id,
                pad_id: eot_id,
            },
            projection_dim,
            layout: Layout::HuggingFace,
        };
        cfg.validate(file, &HF_NAMES)
    }

    fn from_open_clip(c: &Value, file: &Path) -> Result<ClipConfig> {
        let c = Fields::new(c, file, "")?;
        if !c.has("model_cfg") {
            return Err(Error::invalid(format!("{}: no 'model_cfg' object", file.display())));
        }
        let m = c.object("model_cfg")?;
        if ["image_size", "layers"].iter().any(|k| {
            m.v.get("vision_cfg")
                .and_then(|v| v.get(k))
                .is_some_and(|x| x.is_array())
        }) {
            return Err(Error::invalid(format!(
                "{}: only square ViT vision towers are supported",
                file.display()
            )));
        }
        let v = m.object("vision_cfg")?;
        let t = m.object("text_cfg")?;
        let act = if m.boolean("quick_gelu", false)? {
            Act::QuickGelu
        } else {
            Act::Gelu
        };
        let vis_width = v.uint("width", 768, 1, MAX_WIDTH)?;
        let head_width = v.uint("head_width", 64, 1, MAX_WIDTH)?;
        let ratio = |x: &Fields| x.positive("mlp_ratio", 4.0, 16.0);
        let text_width = t.uint("width", 512, 1, MAX_WIDTH)?;
        let cfg = ClipConfig {
            vision: VisionConfig {
                tower: TowerConfig {
                    width: vis_width,
                    layers: v.uint("layers", 12, 1, MAX_LAYERS)?,
                    heads: if vis_width % head_width == 0 {
                        vis_width / head_width
                    } else {
                        0
                    },
                    mlp: (vis_width as f64 * ratio(&v)?) as usize,
                    act,
                    eps: 1e-5,
                },
                image_size: v.uint("image_size", 224, 1, MAX_IMAGE_SIZE)?,
                patch: v.uint("patch_size", 32, 1, MAX_IMAGE_SIZE)?,
            },
            text: TextConfig {
                tower: TowerConfig {
                    width: text_width,
                    layers: t.uint("layers", 12, 1, MAX_LAYERS)?,
                    heads: t.uint("heads", 8, 1, MAX_WIDTH)?,
                    mlp: (text_width as f64 * ratio(&t)?) as usize,
                    act,
                    eps: 1e-5,
                },
                vocab: t.uint("vocab_size", 49408, 1, MAX_VOCAB)?,
                context: t.uint("context_length", 77, 2, MAX_CONTEXT)?,
                eot_id: 49407,
                pad_id: 0,
            },
            projection_dim: m.uint("embed_dim", 512, 1, MAX_WIDTH)?,
            layout: Layout::OpenClip,
        };
        if cfg.text.vocab <= 49407 {
            return Err(Error::invalid(format!(
                "{}: model_cfg.text_cfg.vocab_size {} does not hold the end-of-text id 49407",
                file.display(),
                cfg.text.vocab
            )));
        }
        cfg.validate(file, &OPEN_CLIP_NAMES)
    }

    fn validate(self, file: &Path, names: &FieldNames) -> Result<ClipConfig> {
        let bad = |msg: String| Err(Error::invalid(format!("{}: {msg}", file.display())));
        for (i, t) in [&self.vision.tower, &self.text.tower].into_iter().enumerate() {
            if t.heads == 0 || t.width % t.heads != 0 {
                return bad(format!(
                    "{} {} is not divisible by {} {}",
                    names.width[i], t.width, names.heads[i], t.heads
                ));
            }
            if t.width / t.heads > 128 {
                return bad(format!(
                    "head dim {} ({} {} / {} {}) is above the supported 128",
                    t.width / t.heads,
                    names.width[i],
                    t.width,
                    names.heads[i],
                    t.heads
                ));
            }
            if t.mlp == 0 {
                return bad(format!("{} has an MLP width of 0", names.width[i]));
            }
        }
        if self.vision.image_size % self.vision.patch != 0 {
            return bad(format!(
                "{} {} is not a multiple of {} {}",
                names.image_size, self.vision.image_size, names.patch, self.vision.patch
            ));
        }
        Ok(self)
    }

    /// The HF `config.json` of this config (what `cliptune pretrain` writes; transformers'
    /// `CLIPModel` loads it). Only HF-layout configs can be written.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let act = |a: Act| if a == Act::Gelu { "gelu" } else { "quick_gelu" };
        let t = &self.text;
        let v = &self.vision;
        serde_json::json!({
            "architectures": ["CLIPModel"],
            "model_type": "clip",
            "projection_dim": self.projection_dim,
            "logit_scale_init_value": 2.6592,
            "initializer_factor": 1.0,
            "text_config": {
                "model_type": "clip_text_model",
                "hidden_size": t.tower.width,
                "intermediate_size": t.tower.mlp,
                "num_attention_heads": t.tower.heads,
                "num_hidden_layers": t.tower.layers,
                "hidden_act": act(t.tower.act),
                "layer_norm_eps": t.tower.eps,
                "max_position_embeddings": t.context,
                "vocab_size": t.vocab,
                "bos_token_id": t.eot_id.saturating_sub(1),
                "eos_token_id": t.eot_id,
                "pad_token_id": t.pad_id,
                "projection_dim": self.projection_dim,
                "attention_dropout": 0.0,
            },
            "vision_config": {
                "model_type": "clip_vision_model",
                "hidden_size": v.tower.width,
                "intermediate_size": v.tower.mlp,
                "num_attention_heads": v.tower.heads,
                "num_hidden_layers": v.tower.layers,
                "hidden_act": act(v.tower.act),
                "layer_norm_eps": v.tower.eps,
                "image_size": v.image_size,
                "patch_size": v.patch,
                "num_channels": 3,
                "projection_dim": self.projection_dim,
                "attention_dropout": 0.0,
            },
        })
    }

    /// Built-in shapes (random weights) for benchmarks: vit-b-32, vit-b-16, vit-l-14; and
    /// `cliptune-mini` (the embedded model's shape, for `cliptune pretrain`; its vocabulary
    /// is replaced by the pruned tokenizer's) and `cliptune-tiny` (tests).
    pub fn named(name: &str) -> Result<ClipConfig> {
        let tower = |width, layers, heads| TowerConfig {
            width,
            layers,
            heads,
            mlp: width * 4,
            act: Act::QuickGelu,
            eps: 1e-5,
        };
        let (vision, text, proj) = match name {
            "vit-b-32" => (
                VisionConfig {
                    tower: tower(768, 12, 12),
                    image_size: 224,
                    patch: 32,
                },
                tower(512, 12, 8),
                512,
            ),
            "vit-b-16" => (
                VisionConfig {
                    tower: tower(768, 12, 12),
                    image_size: 224,
                    patch: 16,
                },
                tower(512, 12, 8),
                512,
            ),
            "vit-l-14" => (
                VisionConfig {
                    tower: tower(1024, 24, 16),
                    image_size: 224,
                    patch: 14,
                },
                tower(768, 12, 12),
                768,
            ),
            // 64x64 emoji, 8x8 patches: 65 tokens; ~6 M parameters with a ~6k vocabulary,
            // sized so pretraining fits in about an hour on two CPU cores.
            "cliptune-mini" => (
                VisionConfig {
                    tower: tower(192, 6, 3),
                    image_size: 64,
                    patch: 8,
                },
                tower(192, 4, 3),
                192,
            ),
            "cliptune-tiny" => (
                VisionConfig {
                    tower: tower(32, 2, 2),
                    image_size: 32,
                    patch: 8,
                },
                tower(32, 2, 2),
                32,
            ),
            _ => {
                return Err(Error::invalid(format!(
                    "unknown config '{name}': expected one of vit-b-32, vit-b-16, vit-l-14, cliptune-mini, cliptune-tiny, or a model directory"
                )))
            }
        };
        Ok(ClipConfig {
            vision,
            text: TextConfig {
                tower: text,
                vocab: 49408,
                context: 77,
                eot_id: 49407,
                pad_id: 49407,
            },
            projection_dim: proj,
            layout: Layout::HuggingFace,
        })
    }
}
