//! `tokenize`, `embed` and `zero-shot`: CLIP inference from the command line.
use std::path::{Path, PathBuf};

use cliptune::adapt::bundle::{load_adapters_named, Adapters};
use cliptune::clip::preprocess::{preprocess_files, PreprocessConfig};
use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::zero_shot::{probabilities, templates, tokenize};
use cliptune::clip::{Clip, WeightStorage};
use cliptune::tensor::io::write_safetensors;
use cliptune::{Device, Error, Result, Tensor};

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

pub fn tokenize_cmd(model: Option<&Path>, texts: &[String]) -> Result<()> {
    let tok = match model {
        Some(dir) => ClipTokenizer::for_model_dir(dir)?,
        None => ClipTokenizer::embedded()?,
    };
    for t in texts {
        let ids = tok.encode(t)?;
        let parts: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        println!("[{}]", parts.join(", "));
    }
    Ok(())
}

/// Read texts from --text and --texts-file (one per line).
pub fn gather_texts(texts: &[String], texts_file: Option<&Path>) -> Result<Vec<String>> {
    let mut out = texts.to_vec();
    if let Some(f) = texts_file {
        let s = std::fs::read_to_string(f).map_err(|e| Error::io(f.display(), e))?;
        out.extend(s.lines().filter(|l| !l.trim().is_empty()).map(String::from));
    }
    Ok(out)
}

/// Load `--adapter` directories onto the model and tokenizer of `dir`, saying what was loaded.
pub fn load_adapters_cli(
    model: &mut Clip,
    tok: &mut ClipTokenizer,
    dir: &Path,
    adapters: &[PathBuf],
) -> Result<Adapters> {
    let ad = load_adapters_named(model, tok, adapters, &format!("the model {}", dir.display()))?;
    for a in &ad.loaded {
        eprintln!("loaded {}", a.describe());
    }
    Ok(ad)
}

fn warn_truncated(n: usize, ctx: usize) {
    if n > 0 {
        eprintln!("note: {n} text(s) longer than the {ctx}-token context were truncated (EOT kept last)");
    }
}

/// Load pixels from --pixels (safetensors `pixel_values`) or preprocess --image files.
fn pixels_for(
    model: &Clip,
    dir: &Path,
    images: &[PathBuf],
    pixels: Option<&Path>,
    skip_bad: bool,
    dev: &Device,
) -> Result<Option<(Tensor, Vec<usize>)>> {
    let size = model.config.vision.image_size;
    if let Some(p) = pixels {
        let bytes = std::fs::read(p).map_err(|e| Error::io(p.display(), e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::io(p.display(), format!("not a valid safetensors file: {e}")))?;
        let v = st
            .tensor("pixel_values")
            .map_err(|_| Error::invalid(format!("{}: no tensor 'pixel_values'", p.display())))?;
        let s = v.shape().to_vec();
        if v.dtype() != safetensors::Dtype::F32 || s.len() != 4 || s[1] != 3 || s[2] != size || s[3] != size {
            return Err(Error::shape(
                "embed",
                format!(
                    "{}: pixel_values must be f32 [n, 3, {size}, {size}], got {:?} {s:?}",
                    p.display(),
                    v.dtype()
                ),
            ));
        }
        let data: Vec<f32> = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let n = s[0];
        return Ok(Some((Tensor::from_vec(data, &s, dev)?, (0..n).collect())));
    }
    if images.is_empty() {
        return Ok(None);
    }
    let cfg = PreprocessConfig::from_model_dir(dir, size)?;
    let (data, kept, skipped) = preprocess_files(images, &cfg, skip_bad)?;
    for m in &skipped {
        eprintln!("skipped: {m}");
    }
    if kept.is_empty() {
        return Err(Error::invalid("no readable images"));
    }
    let (h, w) = cfg.crop;
    Ok(Some((Tensor::from_vec(data, &[kept.len(), 3, h, w], dev)?, kept)))
}

#[allow(clippy::too_many_arguments)]
pub fn embed_cmd(
    dir: &Path,
    images: &[PathBuf],
    texts: &[String],
    pixels: Option<&Path>,
    out: &Path,
    dev: &Device,
    skip_bad: bool,
    batch: usize,
    adapters: &[PathBuf],
) -> Result<()> {
    let mut model = Clip::load(dir, dev, WeightStorage::AsStored)?;
    let mut tok = ClipTokenizer::for_model_dir(dir)?;
    let ad = load_adapters_cli(&mut model, &mut tok, dir, adapters)?;
    let mut tensors: Vec<(String, Tensor)> = vec![];
    let img = match pixels_for(&model, dir, images, pixels, skip_bad, dev)? {
        Some((px, _)) => {
            let e = model.encode_image(&px, batch)?;
            eprintln!("embedded {} image(s)", e.dim(0));
            Some(e)
        }
        None => None,
    };
    let txt = if texts.is_empty() {
        None
    } else {
        let (input, truncated) = tokenize(&model, &tok, texts)?;
        warn_truncated(truncated, model.config.text.context);
        let e = model.encode_text(&input, batch)?;
        eprintln!("embedded {} text(s)", e.dim(0));
        Some(e)
    };
    // A prompt adapter's learned class prompts: `class_embeds` [classes, P], in its class order.
    let cls = match ad.prompt() {
        Some((pdir, learner)) => {
            let e = learner.class_embeddings(&model)?;
            eprintln!(
                "embedded the {} learned class prompt(s) of {} as class_embeds: {}",
                learner.classes.len(),
                pdir.display(),
                learner.classes.join(", ")
            );
            Some(e)
        }
        None => None,
    };
    if img.is_none() && txt.is_none() && cls.is_none() {
        return Err(Error::invalid(
            "embed: nothing to embed: give --image, --pixels, --text or --texts-file",
        ));
    }
    for (pdir, _) in ad.linear_probes() {
        eprintln!(
            "note: linear-probe adapter {} is loaded but embed does not use it",
            pdir.display()
        );
    }
    if let (Some(i), Some(t)) = (&img, &txt) {
        tensors.push(("logits_per_image".into(), model.logits(i, t)?));
    }
    if let Some(i) = img {
        tensors.push(("image_embeds".into(), i));
    }
    if let Some(t) = txt {
        tensors.push(("text_embeds".into(), t));
    }
    if let Some(c) = cls {
        tensors.push(("class_embeds".into(), c));
    }
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    write_safetensors(out, &refs)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn zero_shot_cmd(
    dir: &Path,
    classes: Vec<String>,
    template_spec: &str,
    images: &[PathBuf],
    top_k: usize,
    json: bool,
    dev: &Device,
    skip_bad: bool,
    adapters: &[PathBuf],
) -> Result<()> {
    if classes.is_empty() && adapters.is_empty() {
        return Err(Error::invalid("zero-shot: give --classes a,b,c or --classes-file FILE"));
    }
    if images.is_empty() {
        return Err(Error::invalid("zero-shot: give at least one IMAGE"));
    }
    let t = templates(template_spec)?;
    let mut model = Clip::load(dir, dev, WeightStorage::AsStored)?;
    let mut tok = ClipTokenizer::for_model_dir(dir)?;
    let ad = load_adapters_cli(&mut model, &mut tok, dir, adapters)?;
    // With a prompt adapter the classes default to the ones it was trained on, and its
    // learned prompts replace the templates.
    let classes =
        match (classes.is_empty(), ad.prompt()) {
            (false, _) => classes,
            (true, Some((_, learner))) => learner.classes.clone(),
            (true, None) => return Err(Error::invalid(
                "zero-shot: give --classes a,b,c or --classes-file FILE (only a prompt adapter brings its own classes)",
            )),
        };
    for (pdir, _) in ad.linear_probes() {
        eprintln!(
            "note: linear-probe adapter {} is loaded but zero-shot does not use it",
            pdir.display()
        );
    }
    let cls = ad.class_embeddings(&model, &tok, &classes, &t, "--classes")?;
    let (px, kept) = pixels_for(&model, dir, images, None, skip_bad, dev)?.expect("images given");
    let img = model.encode_image(&px, 32)?;
    let probs = probabilities(&model, &img, &cls)?.to_vec()?;
    let c = classes.len();
    let k = top_k.min(c).max(1);
    let mut rows = vec![];
    for (r, &i) in kept.iter().enumerate() {
        let p = &probs[r * c..(r + 1) * c];
        let mut order: Vec<usize> = (0..c).collect();
        order.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
        let top: Vec<(usize, f32)> = order[..k].iter().map(|&j| (j, p[j])).collect();
        if json {
            let items: Vec<String> = top
                .iter()
                .map(|(j, q)| format!("{{\"class\":{},\"prob\":{q:.6}}}", json_str(&classes[*j])))
                .collect();
            rows.push(format!(
                "{{\"image\":{},\"top\":[{}]}}",
                json_str(&images[i].display().to_string()),
                items.join(",")
            ));
        } else {
            println!("{}", images[i].display());
            for (j, q) in top {
                println!("  {:>6.2}%  {}", q * 100.0, classes[j]);
            }
        }
    }
    if json {
        println!("[{}]", rows.join(","));
    }
    Ok(())
}

/// --classes a,b,c or --classes-file (one per line).
pub fn read_classes(list: Option<&str>, file: Option<&Path>) -> Result<Vec<String>> {
    let mut out: Vec<String> = list
        .map(|s| {
            s.split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(f) = file {
        let s = std::fs::read_to_string(f).map_err(|e| Error::io(f.display(), e))?;
        out.extend(s.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));
    }
    Ok(out)
}
