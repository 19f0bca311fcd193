//! Checkpoint reading: safetensors files memory-mapped (never read whole into memory),
//! in HF `CLIPModel` layout (single or sharded) or open_clip layout, presented under
//! HF's canonical names. open_clip's stacked q/k/v and transposed projections are
//! converted on the fly.
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::config::Layout;
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// Where a canonical (HF-named) tensor comes from in the file.
enum Source {
    Direct(String),
    /// Rows [start, start + len) of dim 0 (open_clip's stacked in_proj).
    Rows(String, usize, usize),
    /// The 2-D transpose (open_clip's `visual.proj` and `text_projection`).
    Transposed(String),
}

pub struct Checkpoint {
    files: Vec<(PathBuf, Mmap)>,
    /// Tensor name -> index into `files`.
    index: HashMap<String, usize>,
    pub layout: Layout,
    /// Stored names read so far, so tensors the config never asks for (a checkpoint with
    /// more layers than `num_hidden_layers`) are found instead of silently ignored.
    used: RefCell<HashSet<String>>,
}

/// Stored tensors a model may carry that the forward pass never needs: HF's position-id
/// buffers and open_clip's causal mask. Unused, they are a warning, not an error.
pub const HARMLESS_UNUSED: [&str; 3] = [
    "text_model.embeddings.position_ids",
    "vision_model.embeddings.position_ids",
    "attn_mask",
];

/// How many unused tensors an error lists by name.
const MAX_LISTED_UNUSED: usize = 12;

/// A sharded index's file name must stay inside the model directory: a plain relative
/// path with no `..`, no root and no drive.
fn shard_inside_dir(index: &Path, name: &str) -> Result<PathBuf> {
    use std::path::Component;
    let p = Path::new(name);
    if name.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Error::invalid(format!(
            "{}: weight_map names the file {name:?}, outside the model directory; shards must be files inside it",
            index.display()
        )));
    }
    Ok(p.to_path_buf())
}

fn open_mmap(path: &Path) -> Result<Mmap> {
    let f = crate::user_file::open_regular(path, "weights file")?;
    let len = f.metadata().map_err(|e| Error::io(path.display(), e))?.len();
    if len < 8 {
        return Err(Error::io(
            path.display(),
            format!("truncated safetensors file ({len} bytes)"),
        ));
    }
    // SAFETY: the file is opened read-only; a checkpoint modified while we read it
    // is outside what we can defend against (same as every mmap loader).
    unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path.display(), e))
}

fn parse<'a>(path: &Path, data: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(data).map_err(|e| Error::io(path.display(), format!("not a valid safetensors file: {e}")))
}

impl Checkpoint {
    /// The weights file(s) of a model directory in `layout`.
    pub fn open(dir: &Path, layout: Layout) -> Result<Checkpoint> {
        let paths: Vec<PathBuf> = match layout {
            Layout::OpenClip => vec![dir.join("open_clip_model.safetensors")],
            Layout::HuggingFace => {
                let index = dir.join("model.safetensors.index.json");
                if index.exists() {
                    let text = crate::user_file::read_text_capped(
                        &index,
                        "sharded-checkpoint index",
                        crate::user_file::JSON_MAX_BYTES,
                    )?;
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .map_err(|e| Error::io(index.display(), format!("not valid JSON: {e}")))?;
                    let map = v
                        .get("weight_map")
                        .and_then(|m| m.as_object())
                        .ok_or_else(|| Error::io(index.display(), "no 'weight_map' object"))?;
                    let mut files: Vec<PathBuf> = Vec::new();
                    for (tensor, f) in map {
                        let name = f.as_str().ok_or_else(|| {
                            Error::invalid(format!(
                                "{}: weight_map[{tensor:?}] is {f}, but it must be a file name",
                                index.display()
                            ))
                        })?;
                        files.push(shard_inside_dir(&index, name)?);
                    }
                    files.sort();
                    files.dedup();
                    files.into_iter().map(|f| dir.join(f)).collect()
                } else {
                    vec![dir.join("model.safetensors")]
                }
            }
        };
        let mut files = vec![];
        let mut index = HashMap::new();
        for p in paths {
            if !p.exists() {
                return Err(Error::io(p.display(), "weights file not found"));
            }
            let m = open_mmap(&p)?;
            for name in parse(&p, &m)?.names() {
                index.insert(name.to_string(), files.len());
            }
            files.push((p, m));
        }
        let ck = Checkpoint {
            files,
            index,
            layout,
            used: RefCell::new(HashSet::new()),
        };
        ck.check_layout()?;
        Ok(ck)
    }

    fn check_layout(&self) -> Result<()> {
        let probe = match self.layout {
            Layout::HuggingFace => [
                "vision_model.embeddings.class_embedding",
                "text_model.embeddings.token_embedding.weight",
            ],
            Layout::OpenClip => ["visual.class_embedding", "token_embedding.weight"],
        };
        if probe.iter().all(|k| self.index.contains_key(*k)) {
            return Ok(());
        }
        let mut found: Vec<&String> = self.index.keys().collect();
        found.sort();
        let shown: Vec<&str> = found.iter().take(12).map(|s| s.as_str()).collect();
        Err(Error::invalid(format!(
            "{}: unknown key layout for a {:?} CLIP checkpoint: expected keys like {:?}; found {} keys, e.g. {:?}",
            self.files[0].0.display(),
            self.layout,
            probe,
            found.len(),
            shown
        )))
    }

    /// Stored tensors no [`Checkpoint::load`] has read, sorted.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.borrow();
        let mut v: Vec<String> = self.index.keys().filter(|k| !used.contains(*k)).cloned().collect();
        v.sort();
        v
    }

    /// After a model is built: an error naming the tensors it did not use (their weights
    /// would be silently dropped, e.g. layers beyond `num_hidden_layers`), except the
    /// [`HARMLESS_UNUSED`] buffers, which are only reported on stderr.
    pub fn check_all_used(&self) -> Result<()> {
        let (harmless, unused): (Vec<String>, Vec<String>) = self
            .unused()
            .into_iter()
            .partition(|k| HARMLESS_UNUSED.contains(&k.as_str()));
        if !harmless.is_empty() {
            eprintln!(
                "note: {}: ignoring tensors the model does not use: {}",
                self.files[0].0.display(),
                harmless.join(", ")
            );
        }
        if unused.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = unused.iter().take(MAX_LISTED_UNUSED).map(|s| s.as_str()).collect();
        let more = unused.len().saturating_sub(MAX_LISTED_UNUSED);
        Err(Error::invalid(format!(
            "{}: {} tensor(s) of the checkpoint are not used by the model its config describes (does num_hidden_layers match the checkpoint?): {}{}",
            self.files[0].0.display(),
            unused.len(),
            shown.join(", "),
            if more > 0 { format!(" ... and {more} more") } else { String::new() }
        )))
    }

    pub fn file(&self) -> &Path {
        &self.files[0].0
    }

    /// Names under which tensors are stored (the file's own layout).
    pub fn stored_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.index.keys().cloned().collect();
        v.sort();
        v
    }

    /// Map a canonical HF name to the stored tensor (open_clip layout conversions).
    fn source(&self, name: &str, width: usize) -> Source {
        if self.layout == Layout::HuggingFace {
            return Source::Direct(name.to_string());
        }
        let block = |rest: &str, prefix: &str| -> Source {
            // rest: "N.self_attn.q_proj.weight" etc.
            let (n, tail) = rest.split_once('.').unwrap_or((rest, ""));
            let base = format!("{prefix}transformer.resblocks.{n}.");
            let qkv = |i: usize, kind: &str| Source::Rows(format!("{base}attn.in_proj_{kind}"), i * width, width);
            match tail {
                "self_attn.q_proj.weight" => qkv(0, "weight"),
                "self_attn.k_proj.weight" => qkv(1, "weight"),
                "self_attn.v_proj.weight" => qkv(2, "weight"),
                "self_attn.q_proj.bias" => qkv(0, "bias"),
                "self_attn.k_proj.bias" => qkv(1, "bias"),
                "self_attn.v_proj.bias" => qkv(2, "bias"),
                t => {
                    let t = t
                        .replace("self_attn.out_proj", "attn.out_proj")
                        .replace("layer_norm1", "ln_1")
                        .replace("layer_norm2", "ln_2")
                        .replace("mlp.fc1", "mlp.c_fc")
                        .replace("mlp.fc2", "mlp.c_proj");
                    Source::Direct(format!("{base}{t}"))
                }
            }
        };
        if let Some(rest) = name.strip_prefix("vision_model.encoder.layers.") {
            return block(rest, "visual.");
        }
        if let Some(rest) = name.strip_prefix("text_model.encoder.layers.") {
            return block(rest, "");
        }
        let direct = |s: &str| Source::Direct(s.to_string());
        match name {
            "vision_model.embeddings.class_embedding" => direct("visual.class_embedding"),
            "vision_model.embeddings.patch_embedding.weight" => direct("visual.conv1.weight"),
            "vision_model.embeddings.position_embedding.weight" => direct("visual.positional_embedding"),
            "vision_model.pre_layrnorm.weight" => direct("visual.ln_pre.weight"),
            "vision_model.pre_layrnorm.bias" => direct("visual.ln_pre.bias"),
            "vision_model.post_layernorm.weight" => direct("visual.ln_post.weight"),
            "vision_model.post_layernorm.bias" => direct("visual.ln_post.bias"),
            "visual_projection.weight" => Source::Transposed("visual.proj".into()),
            "text_model.embeddings.token_embedding.weight" => direct("token_embedding.weight"),
            "text_model.embeddings.position_embedding.weight" => direct("positional_embedding"),
            "text_model.final_layer_norm.weight" => direct("ln_final.weight"),
            "text_model.final_layer_norm.bias" => direct("ln_final.bias"),
            "text_projection.weight" => Source::Transposed("text_projection".into()),
            other => direct(other),
        }
    }

    /// Load canonical tensor `name`, check it has `shape`, and put it on `device`.
    /// `keep_half`: f16/bf16 checkpoint data stays half-precision storage (large frozen
    /// matrices); otherwise it becomes f32. `width` is the tower width (for q/k/v rows).
    pub fn load(&self, name: &str, shape: &[usize], width: usize, keep_half: bool, device: &Device) -> Result<Tensor> {
        let src = self.source(name, width);
        let stored = match &src {
            Source::Direct(s) | Source::Rows(s, _, _) | Source::Transposed(s) => s.clone(),
        };
        let &fi = self.index.get(&stored).ok_or_else(|| {
            Error::invalid(format!(
                "{}: tensor '{stored}' (for {name}) is missing from the checkpoint",
                self.files[0].0.display()
            ))
        })?;
        self.used.borrow_mut().insert(stored.clone());
        let (path, mmap) = &self.files[fi];
        let st = parse(path, mmap)?;
        let view = st
            .tensor(&stored)
            .map_err(|e| Error::io(path.display(), format!("tensor '{stored}': {e}")))?;
        let vshape = view.shape().to_vec();
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            d => {
                return Err(Error::invalid(format!(
                    "{}: tensor '{stored}' has dtype {d:?}; expected f32, f16 or bf16",
                    path.display()
                )))
            }
        };
        let bytes = view.data();
        let elem = dtype.size();
        let numel: usize = shape.iter().product();
        let shape_err = |got: &[usize]| {
            Error::shape(
                "load",
                format!(
                    "{}: tensor '{stored}' has shape {got:?}, but the config needs {shape:?} for {name}",
                    path.display()
                ),
            )
        };
        // Select the bytes (and shape) of the canonical tensor.
        let (bytes, transposed): (&[u8], Option<(usize, usize)>) = match &src {
            Source::Direct(_) => {
                // Squeeze-tolerant: [] vs [1] (logit_scale) and the conv weight [W,3,p,p].
                if vshape.iter().product::<usize>() != numel || (vshape.len() == shape.len() && vshape != shape) {
                    return Err(shape_err(&vshape));
                }
                (bytes, None)
            }
            Source::Rows(_, start, len) => {
                let cols: usize = vshape.iter().skip(1).product();
                if vshape.is_empty() || start + len > vshape[0] || len * cols != numel {
                    return Err(shape_err(&vshape));
                }
                (&bytes[start * cols * elem..(start + len) * cols * elem], None)
            }
            Source::Transposed(_) => {
                if vshape.len() != 2 || vshape[0] != shape[1] || vshape[1] != shape[0] {
                    return Err(shape_err(&vshape));
                }
                (bytes, Some((vshape[0], vshape[1])))
            }
        };
        let non_finite = |count: usize| {
            Error::non_finite(format!(
                "{}: tensor '{stored}' (for {name}) holds {count} non-finite value(s) (NaN or infinity); the checkpoint is corrupt or diverged",
                path.display()
            ))
        };
        if keep_half && dtype != DType::F32 && transposed.is_none() {
            let bits: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            // f16: exponent bits 0x7C00 all set; bf16: 0x7F80 all set.
            let exp = if dtype == DType::F16 { 0x7C00 } else { 0x7F80 };
            let bad = bits.iter().filter(|&&b| b & exp == exp).count();
            if bad > 0 {
                return Err(non_finite(bad));
            }
            return Tensor::from_half_bits(bits, dtype, shape, device);
        }
        let mut vals: Vec<f32> = match dtype {
            DType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::U32 => unreachable!(),
        };
        let bad = vals.iter().filter(|x| !x.is_finite()).count();
        if bad > 0 {
            return Err(non_finite(bad));
        }
        if let Some((r, c)) = transposed {
            let mut t = vec![0f32; r * c];
            for i in 0..r {
                for j in 0..c {
                    t[j * r + i] = vals[i * c + j];
                }
            }
            vals = t;
        }
        Tensor::from_vec(vals, shape, device)
    }
}
