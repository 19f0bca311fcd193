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

#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub vision: VisionConfig,
    pub text: TextConfig,
    pub projection_dim: usize,
    pub layout: Layout,
}

fn get_usize(v: &Value, key: &str, default: usize) -> usize {
    v.get(key)
        .and_then(|x| x.as_u64())
        .map(|x| x as usize)
        .unwrap_or(default)
}

fn act_from_hf(v: &Value, file: &Path) -> Result<Act> {
    match v.get("hidden_act").and_then(|x| x.as_str()).unwrap_or("quick_gelu") {
        "quick_gelu" => Ok(Act::QuickGelu),
        "gelu" => Ok(Act::Gelu),
        other => Err(Error::invalid(format!(
            "{}: hidden_act '{other}' is not supported (quick_gelu or gelu)",
            file.display()
        ))),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    serde_json::from_str(&text).map_err(|e| Error::io(path.display(), format!("not valid JSON: {e}")))
}

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
        let empty = Value::Object(Default::default());
        let t = c.get("text_config").unwrap_or(&empty);
        let v = c.get("vision_config").unwrap_or(&empty);
        let text_width = get_usize(t, "hidden_size", 512);
        let vis_width = get_usize(v, "hidden_size", 768);
        // The sub-configs' projection_dim copies can be stale: the top level wins.
        let projection_dim = get_usize(c, "projection_dim", 512);
        let eps = |x: &Value| x.get("layer_norm_eps").and_then(|e| e.as_f64()).unwrap_or(1e-5) as f32;
        let vocab = get_usize(t, "vocab_size", 49408);
        // HF pools at eos_token_id, except the legacy value 2 (the OpenAI configs), where it
        // takes the argmax id: EOT, the top id of the OpenAI vocabulary. Pruned vocabularies
        // (cliptune-mini) name their EOT here.
        let eot_id = match t.get("eos_token_id").and_then(|e| e.as_u64()) {
            Some(e) if e != 2 => e as u32,
            _ => 49407.min(vocab.saturating_sub(1)) as u32,
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
                    layers: get_usize(v, "num_hidden_layers", 12),
                    heads: get_usize(v, "num_attention_heads", 12),
                    mlp: get_usize(v, "intermediate_size", 3072),
                    act: act_from_hf(v, file)?,
                    eps: eps(v),
                },
                image_size: get_usize(v, "image_size", 224),
                patch: get_usize(v, "patch_size", 32),
            },
            text: TextConfig {
                tower: TowerConfig {
                    width: text_width,
                    layers: get_usize(t, "num_hidden_layers", 12),
                    heads: get_usize(t, "num_attention_heads", 8),
                    mlp: get_usize(t, "intermediate_size", 2048),
                    act: act_from_hf(t, file)?,
                    eps: eps(t),
                },
                vocab,
                context: get_usize(t, "max_position_embeddings", 77),
                eot_id,
                pad_id: eot_id,
            },
            projection_dim,
            layout: Layout::HuggingFace,
        };
        cfg.validate(file)
    }

    fn from_open_clip(c: &Value, file: &Path) -> Result<ClipConfig> {
        let m = c
            .get("model_cfg")
            .ok_or_else(|| Error::invalid(format!("{}: no 'model_cfg' object", file.display())))?;
        let empty = Value::Object(Default::default());
        let v = m.get("vision_cfg").unwrap_or(&empty);
        let t = m.get("text_cfg").unwrap_or(&empty);
        let act = if m.get("quick_gelu").and_then(|x| x.as_bool()).unwrap_or(false) {
            Act::QuickGelu
        } else {
            Act::Gelu
        };
        let vis_width = get_usize(v, "width", 768);
        let head_width = get_usize(v, "head_width", 64);
        let ratio = |x: &Value| x.get("mlp_ratio").and_then(|r| r.as_f64()).unwrap_or(4.0);
        let text_width = get_usize(t, "width", 512);
        if v.get("image_size").is_some_and(|x| x.is_array()) || v.get("layers").is_some_and(|x| x.is_array()) {
            return Err(Error::invalid(format!(
                "{}: only square ViT vision towers are supported",
                file.display()
            )));
        }
        let cfg = ClipConfig {
            vision: VisionConfig {
                tower: TowerConfig {
                    width: vis_width,
                    layers: get_usize(v, "layers", 12),
                    heads: vis_width / head_width.max(1),
                    mlp: (vis_width as f64 * ratio(v)) as usize,
                    act,
                    eps: 1e-5,
                },
                image_size: get_usize(v, "image_size", 224),
                patch: get_usize(v, "patch_size", 32),
            },
            text: TextConfig {
                tower: TowerConfig {
                    width: text_width,
                    layers: get_usize(t, "layers", 12),
                    heads: get_usize(t, "heads", 8),
                    mlp: (text_width as f64 * ratio(t)) as usize,
                    act,
                    eps: 1e-5,
                },
                vocab: get_usize(t, "vocab_size", 49408),
                context: get_usize(t, "context_length", 77),
                eot_id: 49407,
                pad_id: 0,
            },
            projection_dim: get_usize(m, "embed_dim", 512),
            layout: Layout::OpenClip,
        };
        cfg.validate(file)
    }

    fn validate(self, file: &Path) -> Result<ClipConfig> {
        let bad = |msg: String| Err(Error::invalid(format!("{}: {msg}", file.display())));
        for (name, t) in [("vision", &self.vision.tower), ("text", &self.text.tower)] {
            if t.heads == 0 || t.width % t.heads != 0 {
                return bad(format!(
                    "{name} width {} is not divisible by {} heads",
                    t.width, t.heads
                ));
            }
            if t.width / t.heads > 128 {
                return bad(format!(
                    "{name} head dim {} is above the supported 128",
                    t.width / t.heads
                ));
            }
        }
        if self.vision.patch == 0 || self.vision.image_size % self.vision.patch != 0 {
            return bad(format!(
                "image size {} is not a multiple of patch size {}",
                self.vision.image_size, self.vision.patch
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
