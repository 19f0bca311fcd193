//! Textual inversion (Gal et al. 2022, here for CLIP's text tower): new words such as `<sks>`
//! join the vocabulary, and their token embeddings are the only trainable parameters, learned
//! from images with captions that use them ("a photo of <sks> on a table").
//!
//! During training the model's token table is never modified. The token embeddings of a caption
//! batch are gathered from a small per-batch table: the distinct base-vocabulary rows the batch
//! uses (gathered from the frozen table, a constant) concatenated with the trainable new rows,
//! `[U + n, W]`, indexed by the captions' ids remapped into it. That is exact (gathers and a
//! concatenation only copy values), costs O(U * W) per step instead of copying the whole
//! `[vocab, W]` table (25 MB for ViT-B in f16, 100 MB in f32) the way a concatenation of the full
//! table with the new rows would, and needs no masks. Gradients reach only the new rows
//! (scatter-add in the gather's backward, then the concatenation's slice).
//!
//! After training, [`TextualInversion::install`] appends the learned rows to the model's token
//! table (a new f32 table `[V + n, W]`) and the words to the tokenizer, so they work in
//! zero-shot, embed and retrieval like any other word. [`save`](TextualInversion::save) writes
//! the rows and the words as one safetensors file that [`load`](TextualInversion::load) reads
//! back (for `--adapter`); `ClipTokenizer::save` writes the extended tokenizer.
use std::collections::HashMap;
use std::path::Path;

use super::prompt::{check_fingerprint, model_fingerprint, write_with_metadata, AdapterFile};
use crate::autograd::{Param, Tape, Var};
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::{Clip, TextInput};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The `format` metadata value of a saved textual-inversion file.
pub const FORMAT: &str = "cliptune.textual_inversion";

/// New words and their trainable token embeddings.
#[derive(Clone, Debug)]
pub struct TextualInversion {
    /// The words as given (the tokenizer stores them normalised, i.e. lower-cased).
    pub words: Vec<String>,
    /// Their ids in the tokenizer they were added to.
    pub ids: Vec<u32>,
    /// `[n_words, W]`, row i for `words[i]`; trainable.
    pub embeddings: Param,
    /// [`model_fingerprint`] of the model the words were made for (saved, checked on load).
    pub model_fingerprint: String,
}

impl TextualInversion {
    /// Add `words` to `tok` and create their embeddings: each a copy of `init_from`'s token
    /// embedding (a word that is a single token, e.g. "dog"), or N(0, 0.02) draws with `seed`.
    /// On error the tokenizer is left unchanged.
    pub fn new(
        model: &Clip,
        tok: &mut ClipTokenizer,
        words: &[&str],
        init_from: Option<&str>,
        seed: u64,
    ) -> Result<TextualInversion> {
        check_words(words)?;
        let width = model.config.text.tower.width;
        let dev = model.device();
        let n = words.len();
        let rows = match init_from {
            Some(w) => {
                let id = single_token(model, tok, w)?;
                let row = model
                    .text
                    .token_embedding
                    .value
                    .gather_rows(&Tensor::from_u32(vec![id], &[1], dev)?)?
                    .to_vec()?;
                let all: Vec<f32> = (0..n).flat_map(|_| row.iter().copied()).collect();
                Tensor::from_vec(all, &[n, width], dev)?
            }
            None => Tensor::randn(&[n, width], 0.02, seed, dev)?,
        };
        let fingerprint = model_fingerprint(model)?;
        let ids = tok.add_words(words)?;
        Ok(TextualInversion {
            words: words.iter().map(|w| w.to_string()).collect(),
            ids,
            embeddings: Param::trainable("textual_inversion.embeddings", rows),
            model_fingerprint: fingerprint,
        })
    }

    /// Width of the learned rows.
    pub fn width(&self) -> usize {
        self.embeddings.value.dim(1)
    }

    /// The trainable parameters (for the optimizer).
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.embeddings]
    }

    fn check_model(&self, model: &Clip) -> Result<()> {
        let w = model.config.text.tower.width;
        if self.width() != w {
            return Err(Error::invalid(format!(
                "textual inversion: the learned rows have width {} but this model's text tower has width {w} \
                 (they were made for another model)",
                self.width()
            )));
        }
        Ok(())
    }

    /// Token + position embeddings `[n, len, W]` of `input` (use it as given: no EOT truncation).
    /// Ids of the new words read the trainable rows; every other id reads the frozen table.
    pub fn text_embeddings(&self, model: &Clip, tape: &Tape, input: &TextInput) -> Result<Var> {
        self.check_model(model)?;
        check_input(input)?;
        let t = &model.config.text;
        if input.len > t.context {
            return Err(Error::shape(
                "encode_text",
                format!("{} tokens exceed the context length {}", input.len, t.context),
            ));
        }
        let dev = model.device();
        let vocab = model.text.token_embedding.value.dim(0);
        let w = t.tower.width;
        let new_row: HashMap<u32, usize> = self.ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        // The distinct base ids of this batch (first-seen order) are rows 0..U of the per-batch
        // table; new word i is row U + i.
        let mut base_ids: Vec<u32> = vec![];
        let mut base_row: HashMap<u32, u32> = HashMap::new();
        for &id in &input.ids {
            if new_row.contains_key(&id) {
                continue;
            }
            if id as usize >= vocab {
                return Err(Error::invalid(format!(
                    "textual inversion: token id {id} is outside the vocabulary of {vocab} and is not one of \
                     the new words {:?} (is the tokenizer from another model?)",
                    self.words
                )));
            }
            if let std::collections::hash_map::Entry::Vacant(e) = base_row.entry(id) {
                e.insert(base_ids.len() as u32);
                base_ids.push(id);
            }
        }
        let u = base_ids.len();
        let n_new = self.ids.len();
        let local: Vec<u32> = input
            .ids
            .iter()
            .map(|id| match new_row.get(id) {
                Some(&i) => (u + i) as u32,
                None => base_row[id],
            })
            .collect();
        let new = tape.param(&self.embeddings);
        let table = if u == 0 {
            new
        } else {
            let base = tape
                .param(&model.text.token_embedding)
                .gather_rows(&Tensor::from_u32(base_ids, &[u], dev)?)?;
            base.reshape(&[1, u, w])?
                .concat1(&new.reshape(&[1, n_new, w])?)?
                .reshape(&[u + n_new, w])?
        };
        let tok = table.gather_rows(&Tensor::from_u32(local, &[input.n, input.len], dev)?)?;
        let pos = tape
            .param(&model.text.position_embedding)
            .reshape(&[1, t.context, w])?
            .narrow1(0, input.len)?;
        tok.add(&pos.reshape(&[input.len, w])?)
    }

    /// Text features before normalisation (like [`Clip::text_features`]), with the new words
    /// read from the trainable rows; runs the tower only up to the batch's last EOT.
    pub fn text_features(&self, model: &Clip, tape: &Tape, input: &TextInput) -> Result<Var> {
        check_input(input)?;
        let input = input.truncated_to_eot();
        let x = self.text_embeddings(model, tape, &input)?;
        model.text_features_from_embeddings(tape, &x, &input.eot)
    }

    /// Symmetric contrastive loss (in-batch negatives) of L2-normalised `image_features` `[B, P]`
    /// (cached: the image tower is frozen) against `captions` (`m >= B` rows: row i describes
    /// image i; rows past B are extra negatives), at the model's frozen temperature.
    pub fn loss_contrastive(
        &self,
        model: &Clip,
        tape: &Tape,
        image_features: &Tensor,
        captions: &TextInput,
    ) -> Result<Var> {
        let p = model.config.projection_dim;
        let is = image_features.shape();
        if is.len() != 2 || is[0] == 0 || is[1] != p {
            return Err(Error::shape(
                "textual inversion loss",
                format!("image features {is:?} must be [batch >= 1, {p}] for this model"),
            ));
        }
        if captions.n < is[0] {
            return Err(Error::shape(
                "textual inversion loss",
                format!(
                    "{} captions for {} images: each image needs its caption",
                    captions.n, is[0]
                ),
            ));
        }
        let txt = self.text_features(model, tape, captions)?.l2norm()?;
        let img = tape.constant(image_features.to_device(model.device())?);
        let log_scale = tape.param(&model.logit_scale);
        Var::contrastive_loss(&img, &txt, &log_scale)
    }

    /// Append the learned rows to `model`'s token table (a new f32 table `[V + n, W]`) and the
    /// words to `tok`, so the words work in zero-shot, embed and retrieval. The tokenizer must
    /// give the words the ids `V .. V + n` (it does for the model's own tokenizer, with or without
    /// the words already added); installing twice is refused.
    pub fn install(&self, model: &mut Clip, tok: &mut ClipTokenizer) -> Result<()> {
        self.check_model(model)?;
        let vocab = model.text.token_embedding.value.dim(0);
        let words: Vec<&str> = self.words.iter().map(String::as_str).collect();
        // Check before touching the tokenizer: words it already has keep their ids.
        let mut probe = tok.clone();
        let ids = probe.add_words(&words)?;
        if ids.iter().any(|&id| (id as usize) < vocab) {
            return Err(Error::invalid(format!(
                "textual inversion: {words:?} already have rows in the model's token table (installed before?)"
            )));
        }
        if let Some((i, &id)) = ids.iter().enumerate().find(|&(i, &id)| id as usize != vocab + i) {
            return Err(Error::invalid(format!(
                "textual inversion: the tokenizer gives {:?} id {id}, but the model's token table has {vocab} rows, \
                 so its row would be {}: use the tokenizer that belongs to this model",
                self.words[i],
                vocab + i
            )));
        }
        let dev = model.device().clone();
        let w = self.width();
        let mut all = model.text.token_embedding.value.to_vec()?;
        all.extend(self.embeddings.value.to_device(&dev)?.to_vec()?);
        let table = Tensor::from_vec(all, &[vocab + ids.len(), w], &dev)?;
        *tok = probe;
        model.text.token_embedding.value = table;
        model.config.text.vocab = vocab + ids.len();
        Ok(())
    }

    /// Write the rows (`embeddings` [n, W], f32) and the words as one safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut meta = HashMap::new();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("version".into(), "1".into());
        meta.insert(
            "words".into(),
            serde_json::to_string(&self.words).map_err(|e| Error::io(path.display(), e))?,
        );
        meta.insert("text_width".into(), self.width().to_string());
        meta.insert("model_fingerprint".into(), self.model_fingerprint.clone());
        write_with_metadata(path, &[("embeddings", &self.embeddings.value)], meta)
    }

    /// Read a file written by [`save`](Self::save) for `model` and add its words to `tok`
    /// (refuses a file made for another model). The rows come back trainable; call
    /// [`install`](Self::install) to use the words at inference.
    pub fn load(path: &Path, model: &Clip, tok: &mut ClipTokenizer) -> Result<TextualInversion> {
        let f = AdapterFile::read(path)?;
        f.expect_format(FORMAT)?;
        let words: Vec<String> = serde_json::from_str(f.meta("words")?).map_err(|e| {
            Error::io(
                path.display(),
                format!("metadata 'words' is not a JSON list of words: {e}"),
            )
        })?;
        let width: usize = f.parse("text_width")?;
        let mw = model.config.text.tower.width;
        if width != mw {
            return Err(Error::invalid(format!(
                "{}: these word embeddings were trained for a text tower of width {width}, but the model's is {mw}: \
                 they belong to another model",
                path.display()
            )));
        }
        let fingerprint = model_fingerprint(model)?;
        check_fingerprint(&f, "textual inversion", &fingerprint)?;
        let (shape, data) = f.tensor("embeddings")?;
        if shape != [words.len(), width] {
            return Err(Error::io(
                path.display(),
                format!(
                    "tensor 'embeddings' has shape {shape:?}, expected [{}, {width}] for the words {words:?}",
                    words.len()
                ),
            ));
        }
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        check_words(&refs)?;
        let embeddings = Tensor::from_vec(data, &shape, model.device())?;
        let ids = tok.add_words(&refs)?;
        Ok(TextualInversion {
            words,
            ids,
            embeddings: Param::trainable("textual_inversion.embeddings", embeddings),
            model_fingerprint: fingerprint,
        })
    }
}

fn check_words(words: &[&str]) -> Result<()> {
    if words.is_empty() {
        return Err(Error::invalid("textual inversion: no new words given"));
    }
    let mut seen = std::collections::HashSet::new();
    for w in words {
        if !seen.insert(w.to_lowercase()) {
            return Err(Error::invalid(format!(
                "textual inversion: the word {w:?} is given twice"
            )));
        }
    }
    Ok(())
}

/// The id of a word that is exactly one token.
fn single_token(model: &Clip, tok: &ClipTokenizer, word: &str) -> Result<u32> {
    let ids = tok.encode(word)?;
    if ids.len() != 3 {
        return Err(Error::invalid(format!(
            "textual inversion: the init word {word:?} is {} tokens, not one: pick a word that is a single token \
             (e.g. \"dog\")",
            ids.len().saturating_sub(2)
        )));
    }
    let id = ids[1];
    let vocab = model.text.token_embedding.value.dim(0);
    if id as usize >= vocab {
        return Err(Error::invalid(format!(
            "textual inversion: the init word {word:?} has id {id}, outside the model's vocabulary of {vocab}"
        )));
    }
    Ok(id)
}

fn check_input(input: &TextInput) -> Result<()> {
    if input.n == 0 || input.len == 0 || input.ids.len() != input.n * input.len || input.eot.len() != input.n {
        return Err(Error::shape(
            "encode_text",
            format!(
                "{} ids and {} EOT positions do not describe {} texts of {} tokens",
                input.ids.len(),
                input.eot.len(),
                input.n,
                input.len
            ),
        ));
    }
    if let Some(&e) = input.eot.iter().find(|&&e| e >= input.len) {
        return Err(Error::shape(
            "encode_text",
            format!("EOT position {e} is outside texts of {} tokens", input.len),
        ));
    }
    Ok(())
}
