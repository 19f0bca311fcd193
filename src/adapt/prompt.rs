//! CoOp prompt tuning (Zhou et al., "Learning to Prompt for Vision-Language Models", 2022).
//!
//! The prompt of class `c` is the token sequence `[BOS] [ctx_1 .. ctx_n] [class name] [.] [EOT]`
//! (CoOp's "end" class-token position). The `n` context vectors are the only trainable
//! parameters: either shared by all classes (`ctx` is `[n, W]`) or one set per class
//! (`--class-specific`, `ctx` is `[classes, n, W]`). BOS, the class-name tokens, "." and EOT are
//! gathered from the model's frozen token table, the learnable rows are concatenated in between,
//! positional embeddings are added, and the frozen text tower runs on that sequence, pooled at each
//! class's own EOT position. Prompts are padded to the longest one (the tower runs exactly up to the
//! last EOT, as in [`Clip::text_features`]).
//!
//! Initialised from a phrase ("a photo of a"), `n` is the phrase's token count and the context
//! starts as the phrase's token embeddings, so the step-0 class embeddings are exactly the plain
//! zero-shot embeddings of the template "a photo of a {}." (tests/prompt_tuning.rs checks it).
//! `cliptune train` without `--ctx-init` takes the phrase of the model's own template
//! (`templates.txt`, see `train::objectives::kgcoop::HandTemplate`).
//! Without a phrase the context is drawn from N(0, 0.02), as in CoOp.
//!
//! The image tower is frozen: callers compute L2-normalised image features once
//! ([`Clip::encode_image`]) and pass them to [`PromptLearner::loss`] at every step.
use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::autograd::{Param, Tape, Var};
use crate::backend::Act;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// The `format` metadata value of a saved prompt learner.
pub const FORMAT: &str = "cliptune.prompt";

/// Learnable CoOp context vectors for a fixed list of classes.
#[derive(Clone, Debug)]
pub struct PromptLearner {
    /// `[n_ctx, W]` shared by every class, or `[classes, n_ctx, W]` when `class_specific`.
    pub ctx: Param,
    pub class_specific: bool,
    pub n_ctx: usize,
    pub classes: Vec<String>,
    /// The phrase the context was initialised from (kept as metadata when saved).
    pub ctx_init: Option<String>,
    /// The hand-crafted template training started from and anchored to (KgCoOp), when a
    /// trainer sets it; kept as metadata so an adapter says which prompt it began as.
    pub template: Option<String>,
    /// Per class, the ids that follow the context: class-name tokens, ".", EOT.
    pub suffix_ids: Vec<Vec<u32>>,
    /// The `<|startoftext|>` id that opens every prompt.
    pub bos_id: u32,
    /// Id used to pad shorter prompts (never read: pooling stops at each prompt's EOT).
    pub pad_id: u32,
    /// [`model_fingerprint`] of the model the learner was made for (saved, checked on load).
    pub model_fingerprint: String,
}

impl PromptLearner {
    /// A learner for `classes`. With `init` (e.g. `"a photo of a"`), `n_ctx` is ignored: the
    /// context has one vector per token of the phrase, initialised from their embeddings.
    /// Without it, `n_ctx` vectors (CoOp's default is 16) are drawn from N(0, 0.02) with `seed`.
    pub fn new(
        model: &Clip,
        tok: &ClipTokenizer,
        classes: &[String],
        n_ctx: usize,
        init: Option<&str>,
        class_specific: bool,
        seed: u64,
    ) -> Result<PromptLearner> {
        let width = model.config.text.tower.width;
        let dev = model.device();
        let (n_ctx, ctx_rows) = match init {
            Some(phrase) => {
                let ids = phrase_ids(model, tok, phrase)?;
                let ids_t = Tensor::from_u32(ids.clone(), &[ids.len()], dev)?;
                let rows = model.text.token_embedding.value.gather_rows(&ids_t)?.to_vec()?;
                (ids.len(), rows)
            }
            None => {
                if n_ctx == 0 {
                    return Err(Error::invalid(
                        "prompt tuning: the number of context vectors must be at least 1",
                    ));
                }
                let rows = Tensor::randn(&[n_ctx, width], 0.02, seed, dev)?.to_vec()?;
                (n_ctx, rows)
            }
        };
        let suffix_ids = class_suffixes(model, tok, classes, n_ctx)?;
        let ctx = if class_specific {
            // Same start for every class (the phrase's embeddings, or one random draw):
            // each class's copy then trains on its own.
            let all: Vec<f32> = (0..classes.len()).flat_map(|_| ctx_rows.iter().copied()).collect();
            Tensor::from_vec(all, &[classes.len(), n_ctx, width], dev)?
        } else {
            Tensor::from_vec(ctx_rows, &[n_ctx, width], dev)?
        };
        Ok(PromptLearner {
            ctx: Param::trainable("prompt_learner.ctx", ctx),
            class_specific,
            n_ctx,
            classes: classes.to_vec(),
            ctx_init: init.map(String::from),
            template: None,
            suffix_ids,
            bos_id: tok.bos_id(),
            pad_id: model.config.text.pad_id,
            model_fingerprint: model_fingerprint(model)?,
        })
    }

    /// Width of the context vectors (the text tower's width).
    pub fn width(&self) -> usize {
        *self.ctx.value.shape().last().unwrap_or(&0)
    }

    /// The trainable parameters (for the optimizer).
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.ctx]
    }

    fn check_model(&self, model: &Clip) -> Result<()> {
        let w = model.config.text.tower.width;
        if self.width() != w {
            return Err(Error::invalid(format!(
                "prompt tuning: the context vectors have width {} but this model's text tower has width {w} \
                 (the prompt learner was made for another model)",
                self.width()
            )));
        }
        let v = model.text.token_embedding.value.dim(0);
        let max_id = self
            .suffix_ids
            .iter()
            .flatten()
            .chain([&self.bos_id])
            .max()
            .copied()
            .unwrap_or(0);
        if max_id as usize >= v {
            return Err(Error::invalid(format!(
                "prompt tuning: token id {max_id} is outside this model's vocabulary of {v}"
            )));
        }
        Ok(())
    }

    /// The prompt embeddings `[classes, L, W]` (token + position) and each class's EOT position.
    pub fn prompt_embeddings(&self, model: &Clip, tape: &Tape) -> Result<(Var, Vec<usize>)> {
        self.check_model(model)?;
        let dev = model.device();
        let c = self.classes.len();
        let n = self.n_ctx;
        let s = self.suffix_len();
        let len = 1 + n + s;
        let table = tape.param(&model.text.token_embedding);
        let prefix = table.gather_rows(&Tensor::from_u32(vec![self.bos_id; c], &[c, 1], dev)?)?;
        let suffix = table.gather_rows(&Tensor::from_u32(self.padded_suffixes(s), &[c, s], dev)?)?;
        let ctx = tape.param(&self.ctx);
        let ctx = if self.class_specific {
            ctx
        } else {
            // Broadcast the shared [n, W] rows to every class; backward sums them (scatter-add).
            let ids: Vec<u32> = (0..c).flat_map(|_| 0..n as u32).collect();
            ctx.gather_rows(&Tensor::from_u32(ids, &[c, n], dev)?)?
        };
        let x = prefix
            .concat1(&ctx)?
            .concat1(&suffix)?
            .add(&positions(model, tape, 0, len)?)?;
        let eot = self.suffix_ids.iter().map(|ids| 1 + n + ids.len() - 1).collect();
        Ok((x, eot))
    }

    /// The longest class suffix (class tokens, ".", EOT).
    fn suffix_len(&self) -> usize {
        self.suffix_ids.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Each class's suffix ids (class tokens, ".", EOT) padded to `s`: [classes * s].
    fn padded_suffixes(&self, s: usize) -> Vec<u32> {
        let mut suffix = vec![self.pad_id; self.classes.len() * s];
        for (row, ids) in suffix.chunks_mut(s.max(1)).zip(&self.suffix_ids) {
            row[..ids.len()].copy_from_slice(ids);
        }
        suffix
    }

    /// L2-normalised class embeddings `[classes, P]` on `tape` (gradients reach `ctx` only).
    pub fn class_features(&self, model: &Clip, tape: &Tape) -> Result<Var> {
        if !self.class_specific {
            return self.class_features_shared(model, tape);
        }
        let (x, eot) = self.prompt_embeddings(model, tape)?;
        model.text_features_from_embeddings(tape, &x, &eot)?.l2norm()
    }

    /// The shared-context case: BOS + context is the same prefix for every class, so the
    /// text tower computes it once and each class only its own suffix (class name, ".",
    /// EOT): ~4 of ~20 positions per class instead of all of them. Same result as
    /// [`Self::prompt_embeddings`] through the full tower (causal attention).
    fn class_features_shared(&self, model: &Clip, tape: &Tape) -> Result<Var> {
        self.check_model(model)?;
        let dev = model.device();
        let c = self.classes.len();
        let n = self.n_ctx;
        let s = self.suffix_len();
        let p = 1 + n;
        let table = tape.param(&model.text.token_embedding);
        let bos = table.gather_rows(&Tensor::from_u32(vec![self.bos_id], &[1, 1], dev)?)?;
        let ctx = tape.param(&self.ctx).reshape(&[1, n, self.width()])?;
        let xp = bos.concat1(&ctx)?.add(&positions(model, tape, 0, p)?)?;
        let xs = table
            .gather_rows(&Tensor::from_u32(self.padded_suffixes(s), &[c, s], dev)?)?
            .add(&positions(model, tape, p, s)?)?;
        let eot: Vec<usize> = self.suffix_ids.iter().map(|ids| ids.len() - 1).collect();
        model.text_features_shared_prefix(tape, &xp, &xs, &eot)?.l2norm()
    }

    /// The same learner (its current context, shared: gradients reach the same parameter)
    /// over other classes: the reference term applies the learned context to general
    /// class names. Only a shared context transfers to new classes.
    pub fn for_classes(&self, model: &Clip, tok: &ClipTokenizer, classes: &[String]) -> Result<PromptLearner> {
        if self.class_specific {
            return Err(Error::invalid(
                "prompt tuning: a class-specific context (--class-specific) has no context for other classes; \
                 --reference needs the shared context",
            ));
        }
        Ok(PromptLearner {
            classes: classes.to_vec(),
            suffix_ids: class_suffixes(model, tok, classes, self.n_ctx)?,
            ..self.clone()
        })
    }

    /// A copy over a subset of this learner's classes (rows `idx`), without re-tokenising.
    pub fn subset(&self, idx: &[usize]) -> PromptLearner {
        PromptLearner {
            classes: idx.iter().map(|&i| self.classes[i].clone()).collect(),
            suffix_ids: idx.iter().map(|&i| self.suffix_ids[i].clone()).collect(),
            ..self.clone()
        }
    }

    /// The class embeddings for inference (zero-shot with the learned prompts).
    pub fn class_embeddings(&self, model: &Clip) -> Result<Tensor> {
        let tape = Tape::inference();
        Ok(self.class_features(model, &tape)?.value)
    }

    /// Mean cross-entropy of `exp(logit_scale) * img @ classes^T` against `labels`.
    ///
    /// `image_features`: cached, L2-normalised image embeddings `[B, P]` (the image tower is
    /// frozen); `labels`: u32 class indices `[B]`, validated when on the host. Reads back the
    /// frozen logit scale (one value).
    pub fn loss(&self, model: &Clip, tape: &Tape, image_features: &Tensor, labels: &Tensor) -> Result<Var> {
        let feats = self.class_features(model, tape)?;
        let scale = model.logit_scale.value.item()?.exp();
        self.loss_from_class_features(model, tape, &feats, image_features, labels, scale)
    }

    /// [`Self::loss`] given the class embeddings `feats` `[C, P]` already on `tape` (a
    /// regulariser needs them too) and the logit `scale` (exp of the frozen logit_scale,
    /// given so a training step reads nothing back); `image_features` and `labels` as
    /// checked there.
    pub fn loss_from_class_features(
        &self,
        model: &Clip,
        tape: &Tape,
        feats: &Var,
        image_features: &Tensor,
        labels: &Tensor,
        scale: f32,
    ) -> Result<Var> {
        let p = model.config.projection_dim;
        let is = image_features.shape();
        if is.len() != 2 || is[0] == 0 || is[1] != p {
            return Err(Error::shape(
                "prompt tuning loss",
                format!("image features {is:?} must be [batch >= 1, {p}] for this model"),
            ));
        }
        if labels.dtype() != DType::U32 || labels.numel() != is[0] {
            return Err(Error::shape(
                "prompt tuning loss",
                format!(
                    "labels must be {} u32 class indices, got {:?} {}",
                    is[0],
                    labels.shape(),
                    labels.dtype().name()
                ),
            ));
        }
        let c = self.classes.len();
        // Validate host labels here (free); labels already on a GPU are not read back
        // inside the step (the cross-entropy kernel ignores out-of-range rows there).
        let host = if labels.device().is_gpu() {
            vec![]
        } else {
            labels.to_vec_u32()?
        };
        if let Some(bad) = host.into_iter().find(|&l| l as usize >= c) {
            return Err(Error::invalid(format!(
                "prompt tuning loss: label {bad} is out of range for {c} classes"
            )));
        }
        let dev = model.device();
        let img = tape.constant(image_features.to_device(dev)?);
        let logits = img.linear(feats, None, Act::None)?.scale(scale)?;
        logits.cross_entropy(&labels.to_device(dev)?)
    }

    /// Write the context and its metadata (classes, n_ctx, class_specific, init phrase,
    /// template, text width, model fingerprint) as one safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut meta = HashMap::new();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("version".into(), "1".into());
        meta.insert("n_ctx".into(), self.n_ctx.to_string());
        meta.insert("class_specific".into(), self.class_specific.to_string());
        meta.insert(
            "classes".into(),
            serde_json::to_string(&self.classes).map_err(|e| Error::io(path.display(), e))?,
        );
        if let Some(i) = &self.ctx_init {
            meta.insert("ctx_init".into(), i.clone());
        }
        if let Some(t) = &self.template {
            meta.insert("template".into(), t.clone());
        }
        meta.insert("text_width".into(), self.width().to_string());
        meta.insert("model_fingerprint".into(), self.model_fingerprint.clone());
        write_with_metadata(path, &[("ctx", &self.ctx.value)], meta)
    }

    /// Load a learner written by [`save`](Self::save) for `model` (refuses one made for a model
    /// of another width). The context comes back trainable, so training can continue.
    pub fn load(path: &Path, model: &Clip, tok: &ClipTokenizer) -> Result<PromptLearner> {
        let f = AdapterFile::read(path)?;
        f.expect_format(FORMAT)?;
        let n_ctx: usize = f.parse("n_ctx")?;
        let class_specific: bool = f.parse("class_specific")?;
        let classes: Vec<String> = serde_json::from_str(f.meta("classes")?).map_err(|e| {
            Error::io(
                path.display(),
                format!("metadata 'classes' is not a JSON list of names: {e}"),
            )
        })?;
        let width: usize = f.parse("text_width")?;
        let mw = model.config.text.tower.width;
        if width != mw {
            return Err(Error::invalid(format!(
                "{}: this prompt learner was trained for a text tower of width {width}, but the model's is {mw}: \
                 it belongs to another model",
                path.display()
            )));
        }
        let fingerprint = model_fingerprint(model)?;
        check_fingerprint(&f, "prompt learner", &fingerprint)?;
        let want: Vec<usize> = if class_specific {
            vec![classes.len(), n_ctx, width]
        } else {
            vec![n_ctx, width]
        };
        let (shape, data) = f.tensor("ctx")?;
        if shape != want {
            return Err(Error::io(
                path.display(),
                format!("tensor 'ctx' has shape {shape:?}, the metadata implies {want:?}"),
            ));
        }
        let suffix_ids = class_suffixes(model, tok, &classes, n_ctx)?;
        Ok(PromptLearner {
            ctx: Param::trainable("prompt_learner.ctx", Tensor::from_vec(data, &want, model.device())?),
            class_specific,
            n_ctx,
            classes,
            ctx_init: f.meta.get("ctx_init").cloned(),
            template: f.meta.get("template").cloned(),
            suffix_ids,
            bos_id: tok.bos_id(),
            pad_id: model.config.text.pad_id,
            model_fingerprint: fingerprint,
        })
    }
}

/// A short identity of a model's text tower for adapter files: a hash of a few token-embedding
/// rows and the first position embedding, read as f32 (so the same checkpoint gives the same
/// fingerprint whether stored f16, bf16 or f32). Two checkpoints with the same shapes (ViT-B/32
/// and ViT-B/16 share the text width) get different fingerprints.
pub fn model_fingerprint(model: &Clip) -> Result<String> {
    let table = &model.text.token_embedding.value;
    let rows: Vec<u32> = (0..table.dim(0).min(8) as u32).collect();
    let ids = Tensor::from_u32(rows.clone(), &[rows.len()], model.device())?;
    let mut vals = table.gather_rows(&ids)?.to_vec()?;
    let pos = &model.text.position_embedding.value;
    let w = pos.dim(1);
    vals.extend(pos.reshape(&[1, pos.numel()])?.narrow1(0, w)?.to_vec()?);
    // FNV-1a, 64 bit, over the f32 bit patterns.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in vals {
        for b in v.to_bits().to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok(format!("{h:016x}"))
}

/// Refuse an adapter file made for another model (when the file records a fingerprint).
pub(crate) fn check_fingerprint(f: &AdapterFile, what: &str, model_fp: &str) -> Result<()> {
    match f.meta.get("model_fingerprint") {
        Some(fp) if fp != model_fp => Err(Error::invalid(format!(
            "{}: this {what} was trained on another model (model fingerprint {fp}; the loaded model's is {model_fp})",
            f.path
        ))),
        _ => Ok(()),
    }
}

/// The inner token ids of an init phrase (without BOS/EOT).
fn phrase_ids(model: &Clip, tok: &ClipTokenizer, phrase: &str) -> Result<Vec<u32>> {
    let ids = tok.encode(phrase)?;
    let inner = if ids.len() >= 2 {
        &ids[1..ids.len() - 1]
    } else {
        &[][..]
    };
    if inner.is_empty() {
        return Err(Error::invalid(format!(
            "prompt tuning: the context init phrase {phrase:?} has no tokens"
        )));
    }
    if inner.iter().any(|&t| t == tok.eos_id() || t == tok.bos_id()) {
        return Err(Error::invalid(format!(
            "prompt tuning: the context init phrase {phrase:?} contains a start/end-of-text token"
        )));
    }
    let v = model.text.token_embedding.value.dim(0);
    if let Some(bad) = inner.iter().find(|&&t| t as usize >= v) {
        return Err(Error::invalid(format!(
            "prompt tuning: token id {bad} of {phrase:?} is outside the model's vocabulary of {v} \
             (is the tokenizer from another model?)"
        )));
    }
    Ok(inner.to_vec())
}

/// Per class, the ids after the context: the tokens of "{name}." and EOT.
fn class_suffixes(model: &Clip, tok: &ClipTokenizer, classes: &[String], n_ctx: usize) -> Result<Vec<Vec<u32>>> {
    if classes.is_empty() {
        return Err(Error::invalid("prompt tuning: no classes given"));
    }
    let context = model.config.text.context;
    let vocab = model.text.token_embedding.value.dim(0);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(classes.len());
    for name in classes {
        if name.trim().is_empty() {
            return Err(Error::invalid("prompt tuning: a class name is empty"));
        }
        if !seen.insert(name.as_str()) {
            return Err(Error::invalid(format!("prompt tuning: class {name:?} is listed twice")));
        }
        let ids = tok.encode(&format!("{name}."))?;
        // [BOS, name tokens.., ".", EOT]: keep everything after BOS.
        if ids.len() < 3 || ids[0] != tok.bos_id() || ids[ids.len() - 1] != tok.eos_id() {
            return Err(Error::invalid(format!(
                "prompt tuning: class {name:?} does not tokenize to BOS .. EOT"
            )));
        }
        let suffix = ids[1..].to_vec();
        if suffix[..suffix.len() - 1]
            .iter()
            .any(|&t| t == tok.eos_id() || t == tok.bos_id())
        {
            return Err(Error::invalid(format!(
                "prompt tuning: class name {name:?} contains a start/end-of-text token"
            )));
        }
        if let Some(bad) = suffix.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::invalid(format!(
                "prompt tuning: token id {bad} of class {name:?} is outside the model's vocabulary of {vocab} \
                 (is the tokenizer from another model?)"
            )));
        }
        let len = 1 + n_ctx + suffix.len();
        if len > context {
            return Err(Error::invalid(format!(
                "prompt tuning: the prompt for class {name:?} needs {len} tokens ({n_ctx} context vectors + \
                 the class name), more than the context length {context}: use fewer context vectors or a shorter name"
            )));
        }
        out.push(suffix);
    }
    Ok(out)
}

/// Write f32 tensors and string metadata as one safetensors file (temp file + rename).
/// Shared by the adapters (prompt learner, textual inversion).
pub(crate) fn write_with_metadata(
    path: &Path,
    tensors: &[(&str, &Tensor)],
    meta: HashMap<String, String>,
) -> Result<()> {
    // Sorted metadata: the same adapter always gives the same bytes (resume checks it).
    let meta: std::collections::BTreeMap<String, String> = meta.into_iter().collect();
    crate::tensor::io::write_safetensors_with_metadata(path, tensors, &meta)
}

/// A small safetensors file with metadata, read fully into memory (adapters are small).
pub(crate) struct AdapterFile {
    pub path: String,
    pub meta: HashMap<String, String>,
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl AdapterFile {
    pub fn read(path: &Path) -> Result<AdapterFile> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| Error::io(&name, e))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::io(&name, format!("not a valid safetensors file: {e}")))?;
        let (_, md) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::io(&name, format!("not a valid safetensors file: {e}")))?;
        let meta = md.metadata().clone().unwrap_or_default();
        let mut tensors = HashMap::new();
        for (tname, view) in st.tensors() {
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::F16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                d => {
                    return Err(Error::io(
                        &name,
                        format!("tensor '{tname}' has dtype {d:?}; expected F32, F16 or BF16"),
                    ))
                }
            };
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(Error::non_finite(format!(
                    "{name}: tensor '{tname}' holds a non-finite value ({} at index {i}); the adapter is corrupt or \
                     its training diverged",
                    data[i]
                )));
            }
            tensors.insert(tname, (view.shape().to_vec(), data));
        }
        Ok(AdapterFile {
            path: name,
            meta,
            tensors,
        })
    }

    pub fn meta(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::io(&self.path, format!("metadata '{key}' is missing")))
    }

    pub fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        let v = self.meta(key)?;
        v.parse()
            .map_err(|_| Error::io(&self.path, format!("metadata '{key}' has a bad value {v:?}")))
    }

    pub fn expect_format(&self, want: &str) -> Result<()> {
        match self.meta.get("format").map(String::as_str) {
            Some(f) if f == want => Ok(()),
            Some(f) => Err(Error::invalid(format!(
                "{}: this is a '{f}' file, not a '{want}' file",
                self.path
            ))),
            None => Err(Error::invalid(format!(
                "{}: not a cliptune '{want}' file (no 'format' metadata)",
                self.path
            ))),
        }
    }

    pub fn tensor(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| Error::io(&self.path, format!("tensor '{name}' is missing")))
    }
}

/// Position embeddings `start..start + len` of the text tower: [len, W].
fn positions(model: &Clip, tape: &Tape, start: usize, len: usize) -> Result<Var> {
    let (ctx, w) = (model.config.text.context, model.config.text.tower.width);
    tape.param(&model.text.position_embedding)
        .reshape(&[1, ctx, w])?
        .narrow1(start, len)?
        .reshape(&[len, w])
}
