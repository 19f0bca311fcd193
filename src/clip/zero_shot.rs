//! Zero-shot classification: class embeddings from prompt-template ensembles (as in
//! the CLIP paper), then softmax over exp(logit_scale) * cosine.
use std::path::Path;

use super::model::{Clip, TextInput};
use super::tokenizer::ClipTokenizer;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The 80 ImageNet prompt templates of the CLIP paper.
pub const OPENAI_TEMPLATES: &str = include_str!("../../assets/templates/openai.txt");

/// `openai` (80 templates), `simple` ("a photo of a {}."), or a file with one
/// template per line, each containing `{}`.
pub fn templates(spec: &str) -> Result<Vec<String>> {
    let lines = |s: &str| -> Vec<String> {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    let t = match spec {
        "openai" => lines(OPENAI_TEMPLATES),
        "simple" => vec!["a photo of a {}.".to_string()],
        path => {
            let p = Path::new(path);
            let text = std::fs::read_to_string(p).map_err(|e| {
                Error::io(
                    p.display(),
                    format!("{e} (--templates takes openai, simple, or a file of templates)"),
                )
            })?;
            lines(&text)
        }
    };
    if t.is_empty() {
        return Err(Error::invalid(format!("--templates {spec}: no templates")));
    }
    if let Some(bad) = t.iter().find(|l| !l.contains("{}")) {
        return Err(Error::invalid(format!(
            "--templates {spec}: template '{bad}' has no {{}} for the class name"
        )));
    }
    Ok(t)
}

/// Tokenise `texts` for `model`: padded to the longest text (the tower only runs to
/// the last EOT anyway), truncated to the context with EOT kept last. Returns the
/// input and how many texts were truncated.
pub fn tokenize(model: &Clip, tok: &ClipTokenizer, texts: &[String]) -> Result<(TextInput, usize)> {
    let ctx = model.config.text.context;
    let b = tok.encode_batch(texts, ctx, model.config.text.pad_id)?;
    Ok((
        TextInput {
            ids: b.ids,
            n: texts.len(),
            len: ctx,
            eot: b.eot,
        },
        b.truncated.len(),
    ))
}

/// Normalised class embeddings [classes, P]: the mean of each class's normalised
/// template embeddings, normalised again.
pub fn class_embeddings(model: &Clip, tok: &ClipTokenizer, classes: &[String], templates: &[String]) -> Result<Tensor> {
    if classes.is_empty() {
        return Err(Error::invalid("zero-shot: no classes given"));
    }
    let texts: Vec<String> = classes
        .iter()
        .flat_map(|c| templates.iter().map(move |t| t.replace("{}", c)))
        .collect();
    let (input, _) = tokenize(model, tok, &texts)?;
    let emb = model.encode_text(&input, 256)?.to_vec()?;
    let p = model.config.projection_dim;
    let nt = templates.len();
    let mut out = vec![0f32; classes.len() * p];
    for c in 0..classes.len() {
        let row = &mut out[c * p..(c + 1) * p];
        for t in 0..nt {
            for (o, x) in row.iter_mut().zip(&emb[(c * nt + t) * p..(c * nt + t + 1) * p]) {
                *o += x;
            }
        }
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= n);
    }
    Tensor::from_vec(out, &[classes.len(), p], model.device())
}

/// Class probabilities [images, classes] for normalised image embeddings.
pub fn probabilities(model: &Clip, image_embeds: &Tensor, class_embeds: &Tensor) -> Result<Tensor> {
    model.logits(image_embeds, class_embeds)?.softmax()
}
