//! CLIP's two towers on the engine, loaded from a checkpoint or randomly initialised.
//!
//! Vision: patch conv (as patchify + matmul, no bias) -> prepend class embedding -> add
//! position embedding -> pre_layrnorm -> pre-LN blocks -> post_layernorm on CLS ->
//! visual_projection. Text: token + position embedding -> causal blocks ->
//! final_layer_norm -> the EOT position -> text_projection. The text tower runs only
//! up to the batch's longest EOT: attention is causal and pooling reads the EOT
//! position, so later tokens cannot change any output (exact, not an approximation).
use std::path::Path;

use super::config::{ClipConfig, TowerConfig};
use super::weights::Checkpoint;
use crate::autograd::{Param, Tape, Var};
use crate::backend::{Act, Device};
use crate::error::{Error, Result};
use crate::nn::{Block, LayerNorm, Linear, Mlp, Module, MultiHeadAttention};
use crate::tensor::Tensor;

/// How the loader stores frozen weight matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightStorage {
    /// Keep the checkpoint's dtype (f16/bf16 stay half: half the memory).
    AsStored,
    /// Convert everything to f32.
    F32,
}

#[derive(Clone)]
pub struct VisionTower {
    pub class_embedding: Param,
    /// Conv weight [W, 3, p, p] viewed as a Linear [W, 3*p*p] (no bias).
    pub patch_embedding: Linear,
    pub position_embedding: Param,
    pub pre_ln: LayerNorm,
    pub blocks: Vec<Block>,
    pub post_ln: LayerNorm,
    pub projection: Linear,
}

#[derive(Clone)]
pub struct TextTower {
    pub token_embedding: Param,
    pub position_embedding: Param,
    pub blocks: Vec<Block>,
    pub final_ln: LayerNorm,
    pub projection: Linear,
}

#[derive(Clone)]
pub struct Clip {
    pub config: ClipConfig,
    pub vision: VisionTower,
    pub text: TextTower,
    pub logit_scale: Param,
}

/// Token ids [n, len] (u32) and the EOT position of each row.
pub struct TextInput {
    pub ids: Vec<u32>,
    pub n: usize,
    pub len: usize,
    pub eot: Vec<usize>,
}

impl TextInput {
    /// Keep only the first `max(eot) + 1` columns (exact for a causal tower).
    pub fn truncated_to_eot(&self) -> TextInput {
        let len = self.eot.iter().max().map(|m| m + 1).unwrap_or(1).min(self.len);
        let ids = (0..self.n)
            .flat_map(|r| self.ids[r * self.len..r * self.len + len].iter().copied())
            .collect();
        TextInput {
            ids,
            n: self.n,
            len,
            eot: self.eot.clone(),
        }
    }
}

/// Something that yields named tensors of given shapes: a checkpoint or a random init.
trait WeightSource {
    fn get(&mut self, name: &str, shape: &[usize], width: usize, matrix: bool) -> Result<Tensor>;
}

struct FromCheckpoint<'a> {
    ck: &'a Checkpoint,
    storage: WeightStorage,
    device: Device,
}

impl WeightSource for FromCheckpoint<'_> {
    fn get(&mut self, name: &str, shape: &[usize], width: usize, matrix: bool) -> Result<Tensor> {
        let keep_half = matrix && self.storage == WeightStorage::AsStored;
        self.ck.load(name, shape, width, keep_half, &self.device)
    }
}

struct Random {
    seed: u64,
    device: Device,
}

impl WeightSource for Random {
    fn get(&mut self, name: &str, shape: &[usize], _width: usize, matrix: bool) -> Result<Tensor> {
        self.seed += 1;
        if name.ends_with("logit_scale") {
            return Tensor::scalar((1.0f32 / 0.07).ln(), &self.device);
        }
        let is_ln = name.contains("layer_norm") || name.contains("layrnorm") || name.contains("layernorm");
        if is_ln && name.ends_with(".weight") {
            return Tensor::full(shape, 1.0, &self.device);
        }
        let std = if matrix {
            (shape[shape.len() - 1] as f32).powf(-0.5)
        } else {
            0.02
        };
        Tensor::randn(shape, std, self.seed, &self.device)
    }
}

fn linear(
    src: &mut dyn WeightSource,
    name: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    width: usize,
) -> Result<Linear> {
    let w = Param::frozen(
        format!("{name}.weight"),
        src.get(&format!("{name}.weight"), &[d_out, d_in], width, true)?,
    );
    let b = if bias {
        Some(Param::frozen(
            format!("{name}.bias"),
            src.get(&format!("{name}.bias"), &[d_out], width, false)?,
        ))
    } else {
        None
    };
    Ok(Linear::new(w, b))
}

fn layernorm(src: &mut dyn WeightSource, name: &str, d: usize, eps: f32) -> Result<LayerNorm> {
    let g = Param::frozen(
        format!("{name}.weight"),
        src.get(&format!("{name}.weight"), &[d], d, false)?,
    );
    let b = Param::frozen(
        format!("{name}.bias"),
        src.get(&format!("{name}.bias"), &[d], d, false)?,
    );
    Ok(LayerNorm::new(g, b, eps))
}

/// A tower's blocks over x [n, seq, W], returning only the flat rows `rows` [r, W] of the
/// output: the last block skips the work for rows nothing reads (`Block::forward_rows`).
fn pooled_rows(tape: &Tape, blocks: &[Block], mut x: Var, rows: &Tensor) -> Result<Var> {
    let Some((last, rest)) = blocks.split_last() else {
        let (n, t, w) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        return x.reshape(&[n * t, w])?.gather_rows(rows);
    };
    for b in rest {
        x = b.forward(tape, &x)?;
    }
    last.forward_rows(tape, &x, rows)
}

fn blocks(src: &mut dyn WeightSource, prefix: &str, t: &TowerConfig, causal: bool) -> Result<Vec<Block>> {
    let w = t.width;
    (0..t.layers)
        .map(|i| {
            let p = format!("{prefix}.encoder.layers.{i}");
            let lin = |src: &mut dyn WeightSource, n: &str, a, b| linear(src, &format!("{p}.{n}"), a, b, true, w);
            Ok(Block {
                ln1: layernorm(src, &format!("{p}.layer_norm1"), w, t.eps)?,
                attn: MultiHeadAttention {
                    q: lin(src, "self_attn.q_proj", w, w)?,
                    k: lin(src, "self_attn.k_proj", w, w)?,
                    v: lin(src, "self_attn.v_proj", w, w)?,
                    out: lin(src, "self_attn.out_proj", w, w)?,
                    heads: t.heads,
                    causal,
                },
                ln2: layernorm(src, &format!("{p}.layer_norm2"), w, t.eps)?,
                mlp: Mlp {
                    fc1: lin(src, "mlp.fc1", w, t.mlp)?,
                    fc2: lin(src, "mlp.fc2", t.mlp, w)?,
                    act: t.act,
                },
                recompute: false,
            })
        })
        .collect()
}

impl Clip {
    /// Load a model directory (HF `CLIPModel` or open_clip hub layout).
    pub fn load(dir: &Path, device: &Device, storage: WeightStorage) -> Result<Clip> {
        let config = ClipConfig::from_dir(dir)?;
        let ck = Checkpoint::open(dir, config.layout)?;
        let model = Self::build(
            config,
            &mut FromCheckpoint {
                ck: &ck,
                storage,
                device: device.clone(),
            },
        )?;
        ck.check_all_used()?;
        Ok(model)
    }

    /// Random weights with the given shapes (benchmarks, tests).
    pub fn random(config: ClipConfig, seed: u64, device: &Device) -> Result<Clip> {
        Self::build(
            config,
            &mut Random {
                seed,
                device: device.clone(),
            },
        )
    }

    fn build(config: ClipConfig, src: &mut dyn WeightSource) -> Result<Clip> {
        let v = &config.vision;
        let vw = v.tower.width;
        let p = config.projection_dim;
        let patch_len = 3 * v.patch * v.patch;
        let conv = src.get(
            "vision_model.embeddings.patch_embedding.weight",
            &[vw, 3, v.patch, v.patch],
            vw,
            true,
        )?;
        let vision = VisionTower {
            class_embedding: Param::frozen(
                "vision_model.embeddings.class_embedding",
                src.get("vision_model.embeddings.class_embedding", &[vw], vw, false)?,
            ),
            patch_embedding: Linear::new(
                Param::frozen(
                    "vision_model.embeddings.patch_embedding.weight",
                    conv.reshape(&[vw, patch_len])?,
                ),
                None,
            ),
            position_embedding: Param::frozen(
                "vision_model.embeddings.position_embedding.weight",
                src.get(
                    "vision_model.embeddings.position_embedding.weight",
                    &[v.seq(), vw],
                    vw,
                    false,
                )?,
            ),
            pre_ln: layernorm(src, "vision_model.pre_layrnorm", vw, v.tower.eps)?,
            blocks: blocks(src, "vision_model", &v.tower, false)?,
            post_ln: layernorm(src, "vision_model.post_layernorm", vw, v.tower.eps)?,
            projection: linear(src, "visual_projection", vw, p, false, vw)?,
        };
        let t = &config.text;
        let tw = t.tower.width;
        let text = TextTower {
            token_embedding: Param::frozen(
                "text_model.embeddings.token_embedding.weight",
                src.get("text_model.embeddings.token_embedding.weight", &[t.vocab, tw], tw, true)?,
            ),
            position_embedding: Param::frozen(
                "text_model.embeddings.position_embedding.weight",
                src.get(
                    "text_model.embeddings.position_embedding.weight",
                    &[t.context, tw],
                    tw,
                    false,
                )?,
            ),
            blocks: blocks(src, "text_model", &t.tower, true)?,
            final_ln: layernorm(src, "text_model.final_layer_norm", tw, t.tower.eps)?,
            projection: linear(src, "text_projection", tw, p, false, tw)?,
        };
        let logit_scale = Param::frozen("logit_scale", src.get("logit_scale", &[1], 1, false)?);
        Ok(Clip {
            config,
            vision,
            text,
            logit_scale,
        })
    }

    pub fn device(&self) -> &Device {
        self.logit_scale.value.device()
    }

    /// Image features before normalisation: pixels [n, 3, s, s] -> [n, projection_dim].
    pub fn image_features(&self, tape: &Tape, pixels: &Var) -> Result<Var> {
        let v = &self.vision;
        let cfg = &self.config.vision;
        let s = pixels.shape();
        if s.len() != 4 || s[1] != 3 || s[2] != cfg.image_size || s[3] != cfg.image_size {
            return Err(Error::shape(
                "encode_image",
                format!(
                    "pixel_values {:?} must be [n, 3, {}, {}] for this model",
                    s, cfg.image_size, cfg.image_size
                ),
            ));
        }
        let n = s[0];
        let w = cfg.tower.width;
        let patches = pixels.patchify(cfg.patch)?;
        let x = v.patch_embedding.forward(tape, &patches, Act::None)?;
        let cls = tape
            .constant(Tensor::zeros(&[n, 1, w], pixels.value.device())?)
            .add(&tape.param(&v.class_embedding))?;
        let x = cls.concat1(&x)?.add(&tape.param(&v.position_embedding))?;
        let x = v.pre_ln.forward(tape, &x)?;
        let t = x.shape()[1];
        // Only CLS is pooled: the last block runs its MLP on that row alone.
        let rows = Tensor::from_u32((0..n).map(|i| (i * t) as u32).collect(), &[n], pixels.value.device())?;
        let cls = pooled_rows(tape, &v.blocks, x, &rows)?;
        let cls = v.post_ln.forward(tape, &cls)?;
        v.projection.forward(tape, &cls, Act::None)
    }

    /// Token embeddings + positions for `input` (already EOT-truncated): [n, len, W].
    pub fn text_embeddings(&self, tape: &Tape, input: &TextInput) -> Result<Var> {
        let t = &self.config.text;
        if input.len > t.context {
            return Err(Error::shape(
                "encode_text",
                format!("{} tokens exceed the context length {}", input.len, t.context),
            ));
        }
        if let Some(bad) = input
            .ids
            .iter()
            .find(|&&i| i as usize >= self.text.token_embedding.value.dim(0))
        {
            return Err(Error::invalid(format!(
                "encode_text: token id {bad} is outside the vocabulary of {} (is the tokenizer from another model?)",
                self.text.token_embedding.value.dim(0)
            )));
        }
        let dev = self.device();
        let ids = Tensor::from_u32(input.ids.clone(), &[input.n, input.len], dev)?;
        let tok = tape.param(&self.text.token_embedding).gather_rows(&ids)?;
        let w = t.tower.width;
        let pos = tape
            .param(&self.text.position_embedding)
            .reshape(&[1, t.context, w])?
            .narrow1(0, input.len)?;
        tok.add(&pos.reshape(&[input.len, w])?)
    }

    /// Text features before normalisation from token embeddings x [n, len, W].
    pub fn text_features_from_embeddings(&self, tape: &Tape, x: &Var, eot: &[usize]) -> Result<Var> {
        let (n, len, w) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        if eot.len() != n || eot.iter().any(|&e| e >= len) {
            return Err(Error::shape(
                "encode_text",
                format!("EOT positions {eot:?} do not fit {n} texts of {len} tokens"),
            ));
        }
        // Only each text's EOT is pooled: the last block's MLP runs on those rows alone
        // (final_ln is per row, so it commutes with the selection).
        let rows: Vec<u32> = eot.iter().enumerate().map(|(i, &e)| (i * len + e) as u32).collect();
        let rows = Tensor::from_u32(rows, &[n], self.device())?;
        let pooled = pooled_rows(tape, &self.text.blocks, x.clone(), &rows)?;
        let pooled = self.text.final_ln.forward(tape, &pooled)?;
        debug_assert_eq!(pooled.shape(), &[n, w]);
        self.text.projection.forward(tape, &pooled, Act::None)
    }

    /// Text features before normalisation for sequences `[prefix; suffix_i]` that share
    /// one prefix: `xp` [1, P, W] and `xs` [n, S, W] are embeddings with positions added,
    /// `eot[i]` indexes suffix i. Equal to [`Self::text_features_from_embeddings`] on the
    /// concatenation (causal attention), with the prefix computed once.
    pub fn text_features_shared_prefix(&self, tape: &Tape, xp: &Var, xs: &Var, eot: &[usize]) -> Result<Var> {
        let (n, s, w) = (xs.shape()[0], xs.shape()[1], xs.shape()[2]);
        if eot.len() != n || eot.iter().any(|&e| e >= s) || xp.shape().len() != 3 || xp.shape()[0] != 1 {
            return Err(Error::shape(
                "encode_text",
                format!(
                    "prefix {:?}, suffixes {:?} and EOT positions {eot:?} do not fit",
                    xp.shape(),
                    xs.shape()
                ),
            ));
        }
        let (mut xp, mut xs) = (xp.clone(), xs.clone());
        for b in &self.text.blocks {
            (xp, xs) = b.forward_shared_prefix(tape, &xp, &xs)?;
        }
        let x = self.text.final_ln.forward(tape, &xs)?;
        let rows: Vec<u32> = eot.iter().enumerate().map(|(i, &e)| (i * s + e) as u32).collect();
        let rows = Tensor::from_u32(rows, &[n], self.device())?;
        let pooled = x.reshape(&[n * s, w])?.gather_rows(&rows)?;
        self.text.projection.forward(tape, &pooled, Act::None)
    }

    pub fn text_features(&self, tape: &Tape, input: &TextInput) -> Result<Var> {
        if input.ids.len() != input.n * input.len || input.eot.len() != input.n {
            return Err(Error::shape(
                "encode_text",
                format!(
                    "{} ids and {} EOT positions do not make {} texts of {} tokens",
                    input.ids.len(),
                    input.eot.len(),
                    input.n,
                    input.len
                ),
            ));
        }
        let input = input.truncated_to_eot();
        let x = self.text_embeddings(tape, &input)?;
        self.text_features_from_embeddings(tape, &x, &input.eot)
    }

    /// L2-normalised image embeddings (inference), batched to bound memory.
    pub fn encode_image(&self, pixels: &Tensor, batch: usize) -> Result<Tensor> {
        let n = pixels.dim(0);
        let per = pixels.numel() / n.max(1);
        let host = if n > batch { Some(pixels.to_vec()?) } else { None };
        let mut outs = vec![];
        for start in (0..n).step_by(batch.max(1)) {
            let end = (start + batch).min(n);
            let chunk = match &host {
                Some(h) => Tensor::from_slice(
                    &h[start * per..end * per],
                    &[end - start, 3, pixels.dim(2), pixels.dim(3)],
                    self.device(),
                )?,
                None => pixels.clone(),
            };
            let tape = Tape::inference();
            outs.push(
                self.image_features(&tape, &tape.constant(chunk))?
                    .value
                    .l2norm()?
                    .0
                    .to_vec()?,
            );
        }
        let outs = outs.concat();
        crate::error::ensure_finite("image_embeds", &outs)?;
        Tensor::from_vec(outs, &[n, self.config.projection_dim], self.device())
    }

    /// L2-normalised text embeddings (inference), batched.
    pub fn encode_text(&self, input: &TextInput, batch: usize) -> Result<Tensor> {
        let mut outs = vec![];
        for start in (0..input.n).step_by(batch.max(1)) {
            let end = (start + batch).min(input.n);
            let part = TextInput {
                ids: input.ids[start * input.len..end * input.len].to_vec(),
                n: end - start,
                len: input.len,
                eot: input.eot[start..end].to_vec(),
            };
            let tape = Tape::inference();
            outs.push(self.text_features(&tape, &part)?.value.l2norm()?.0.to_vec()?);
        }
        let outs = outs.concat();
        crate::error::ensure_finite("text_embeds", &outs)?;
        Tensor::from_vec(outs, &[input.n, self.config.projection_dim], self.device())
    }

    /// logits_per_image [n, m] = exp(logit_scale) * img @ txt^T for normalised embeddings.
    pub fn logits(&self, img: &Tensor, txt: &Tensor) -> Result<Tensor> {
        let raw = self.logit_scale.value.item()?;
        let s = raw.exp();
        if !s.is_finite() {
            return Err(crate::error::Error::non_finite(format!(
                "logit_scale: {raw} gives a non-finite scale exp(logit_scale) = {s}; the checkpoint's logit_scale is broken"
            )));
        }
        let t = txt.to_device(img.device())?;
        let spec = crate::backend::MatmulSpec {
            batch: 1,
            m: img.dim(0),
            n: t.dim(0),
            k: img.dim(1),
            trans_a: false,
            trans_b: true,
            b_shared: false,
        };
        img.matmul_spec(&t, None, Act::None, &spec, false)?.0.scale(s)
    }
}

impl Module for Clip {
    fn params(&self) -> Vec<&Param> {
        let v = &self.vision;
        let t = &self.text;
        let mut out = vec![&v.class_embedding, &v.position_embedding];
        out.extend(v.patch_embedding.params());
        out.extend(v.pre_ln.params());
        out.extend(v.blocks.iter().flat_map(|b| b.params()));
        out.extend(v.post_ln.params());
        out.extend(v.projection.params());
        out.push(&t.token_embedding);
        out.push(&t.position_embedding);
        out.extend(t.blocks.iter().flat_map(|b| b.params()));
        out.extend(t.final_ln.params());
        out.extend(t.projection.params());
        out.push(&self.logit_scale);
        out
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let v = &mut self.vision;
        let t = &mut self.text;
        let mut out = vec![&mut v.class_embedding, &mut v.position_embedding];
        out.extend(v.patch_embedding.params_mut());
        out.extend(v.pre_ln.params_mut());
        out.extend(v.blocks.iter_mut().flat_map(|b| b.params_mut()));
        out.extend(v.post_ln.params_mut());
        out.extend(v.projection.params_mut());
        out.push(&mut t.token_embedding);
        out.push(&mut t.position_embedding);
        out.extend(t.blocks.iter_mut().flat_map(|b| b.params_mut()));
        out.extend(t.final_ln.params_mut());
        out.extend(t.projection.params_mut());
        out.push(&mut self.logit_scale);
        out
    }
}
