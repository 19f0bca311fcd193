//! `tokenize`, `embed` and `zero-shot`: CLIP inference from the command line.
use std::path::{Path, PathBuf};

use cliptune::adapt::bundle::{load_adapters_named, Adapters};
use cliptune::clip::preprocess::{preprocess_files, PreprocessConfig};
use cliptune::clip::tokenizer::ClipTokenizer;
use cliptune::clip::zero_shot::{probabilities, templates, tokenize};
use cliptune::clip::{Clip, Pipeline, WeightStorage};
use cliptune::error::ensure_finite;
use cliptune::eval::adapted;
use cliptune::tensor::io::{safetensors_bytes, write_atomic, write_new};
use cliptune::user_file::{read_capped, read_text_capped, IMAGE_MAX_BYTES, TEXT_MAX_BYTES};
use cliptune::{Device, Error, Result, Tensor};

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

pub fn tokenize_cmd(model: Option<&Path>, pipeline: Option<Pipeline>, texts: &[String]) -> Result<()> {
    let tok = match model {
        Some(dir) => ClipTokenizer::for_model_dir_with(dir, pipeline)?,
        None => ClipTokenizer::embedded()?,
    };
    for t in texts {
        let ids = tok.encode(t)?;
        let parts: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        println!("[{}]", parts.join(", "));
    }
    Ok(())
}

/// Read texts from --text and --texts-file (one per line). Every line is one row of the
/// output, so a blank line is an error naming it rather than a dropped row that would shift
/// every row after it.
pub fn gather_texts(texts: &[String], texts_file: Option<&Path>) -> Result<Vec<String>> {
    let mut out = texts.to_vec();
    if let Some(f) = texts_file {
        let s = read_text_capped(f, "texts file", TEXT_MAX_BYTES)?;
        for (i, line) in s.lines().enumerate() {
            if line.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "{}:{}: blank line: each line of --texts-file is one text and one row of text_embeds, so a blank line cannot be skipped without shifting the rows after it; remove it",
                    f.display(),
                    i + 1
                )));
            }
            out.push(line.to_string());
        }
    }
    Ok(out)
}

/// Refuse an `embed --out` that would replace a file the user owns: an existing file
/// without `--force`, and (even with `--force`) any path inside the model or an adapter
/// directory, whose weights must never be overwritten by embeddings.
fn check_out_path(out: &Path, model: &Path, adapters: &[PathBuf], force: bool) -> Result<()> {
    if out.is_dir() {
        return Err(Error::invalid(format!(
            "--out {}: is a directory; give a file name such as embeds.safetensors",
            out.display()
        )));
    }
    // Where the file would really land: its directory resolved (symlinks, `..`), and the
    // file itself when it exists (a symlink into a model directory).
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut landing = vec![];
    if let (Ok(p), Some(name)) = (parent.canonicalize(), out.file_name()) {
        landing.push(p.join(name));
    }
    if let Ok(p) = out.canonicalize() {
        landing.push(p);
    }
    let protected = std::iter::once(("model", model)).chain(adapters.iter().map(|a| ("adapter", a.as_path())));
    for (what, dir) in protected {
        let Ok(d) = dir.canonicalize() else { continue };
        if landing.iter().any(|l| l.starts_with(&d)) {
            return Err(Error::invalid(format!(
                "--out {}: is inside the {what} directory {}; embed never writes there (not even with --force), choose a path outside it",
                out.display(),
                dir.display()
            )));
        }
    }
    if !force && std::fs::symlink_metadata(out).is_ok() {
        return Err(Error::invalid(format!(
            "--out {}: already exists; pass --force to replace it",
            out.display()
        )));
    }
    Ok(())
}

/// The tokenizer must produce ids the model's text tower has rows for, and end texts with
/// the id the model pools at. Checked when both are loaded, so a model directory without its
/// `tokenizer.json` (the embedded OpenAI one is then used) fails before any image is read.
fn check_tokenizer_fits(model: &Clip, tok: &ClipTokenizer, dir: &Path) -> Result<()> {
    let vocab = model.config.text.vocab;
    let source = if dir.join("tokenizer.json").is_file() {
        format!("{}", dir.join("tokenizer.json").display())
    } else {
        format!(
            "the embedded OpenAI tokenizer (there is no {})",
            dir.join("tokenizer.json").display()
        )
    };
    if tok.vocab_size() > vocab {
        return Err(Error::invalid(format!(
            "{}: {source} has {} token ids, but the model's text tower only has {vocab} (text_config.vocab_size): put the model's own tokenizer.json in the model directory",
            dir.display(),
            tok.vocab_size()
        )));
    }
    if tok.eos_id() != model.config.text.eot_id {
        return Err(Error::invalid(format!(
            "{}: {source} ends texts with id {}, but the model pools at id {} (text_config.eos_token_id): put the model's own tokenizer.json in the model directory",
            dir.display(),
            tok.eos_id(),
            model.config.text.eot_id
        )));
    }
    Ok(())
}

/// Load `--adapter` directories onto the model and tokenizer of `dir`, saying what was loaded.
pub fn load_adapters_cli(
    model: &mut Clip,
    tok: &mut ClipTokenizer,
    dir: &Path,
    adapters: &[PathBuf],
) -> Result<Adapters> {
    check_tokenizer_fits(model, tok, dir)?;
    cliptune::adapt::bundle::check_not_merged(dir, adapters)?;
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

/// Preprocessed images and, for each row, the index of its input (`--image` order; rows of
/// `--pixels` are their own indices), plus (index, reason) of each skipped input.
struct Pixels {
    px: Tensor,
    kept: Vec<usize>,
    skipped: Vec<(usize, String)>,
}

/// Load pixels from --pixels (safetensors `pixel_values`) or preprocess --image files.
fn pixels_for(
    model: &Clip,
    dir: &Path,
    images: &[PathBuf],
    pixels: Option<&Path>,
    skip_bad: bool,
    dev: &Device,
    pipeline: Option<Pipeline>,
) -> Result<Option<Pixels>> {
    let size = model.config.vision.image_size;
    if let Some(p) = pixels {
        // Pixel files are far larger than images: the cap is 16 images' worth per MiB limit.
        let bytes = read_capped(p, "pixel_values file", 16 * IMAGE_MAX_BYTES)?;
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
        ensure_finite(&format!("{}: pixel_values", p.display()), &data)?;
        let n = s[0];
        return Ok(Some(Pixels {
            px: Tensor::from_vec(data, &s, dev)?,
            kept: (0..n).collect(),
            skipped: vec![],
        }));
    }
    if images.is_empty() {
        return Ok(None);
    }
    let cfg = PreprocessConfig::from_model_dir_with(dir, size, pipeline)?;
    let (data, kept, messages) = preprocess_files(images, &cfg, skip_bad).map_err(|e| {
        if skip_bad || e.kind == cliptune::ErrorKind::Invalid {
            e
        } else {
            Error::new(
                e.kind.clone(),
                format!("{e}\n(use --skip-bad-images to skip unreadable images)"),
            )
        }
    })?;
    // preprocess_files reports the skipped inputs in input order.
    let mut is_kept = vec![false; images.len()];
    kept.iter().for_each(|&i| is_kept[i] = true);
    let skipped: Vec<(usize, String)> = (0..images.len()).filter(|&i| !is_kept[i]).zip(messages).collect();
    for (i, m) in &skipped {
        eprintln!("input {i}: {m}");
    }
    if kept.is_empty() {
        return Err(Error::invalid("no readable images"));
    }
    let (h, w) = cfg.crop;
    Ok(Some(Pixels {
        px: Tensor::from_vec(data, &[kept.len(), 3, h, w], dev)?,
        kept,
        skipped,
    }))
}

#[allow(clippy::too_many_arguments)]
pub fn embed_cmd(
    dir: &Path,
    pipeline: Option<Pipeline>,
    images: &[PathBuf],
    texts: &[String],
    pixels: Option<&Path>,
    out: &Path,
    dev: &Device,
    skip_bad: bool,
    batch: usize,
    adapters: &[PathBuf],
    force: bool,
) -> Result<()> {
    check_out_path(out, dir, adapters, force)?;
    // One writer per output file: a second embed into the same --out is refused.
    let _lock = cliptune::io::lock::lock_beside(out, "embed")?;
    let mut model = Clip::load(dir, dev, WeightStorage::AsStored)?;
    let mut tok = ClipTokenizer::for_model_dir_with(dir, pipeline)?;
    let ad = load_adapters_cli(&mut model, &mut tok, dir, adapters)?;
    let mut tensors: Vec<(String, Tensor)> = vec![];
    let mut meta = std::collections::BTreeMap::new();
    let img = match pixels_for(&model, dir, images, pixels, skip_bad, dev, pipeline)? {
        Some(p) => {
            let e = model.encode_image(&p.px, batch)?;
            eprintln!("embedded {} image(s)", e.dim(0));
            // Which input each row is: with --skip-bad-images rows are not the --image order.
            let index: Vec<u32> = p.kept.iter().map(|&i| i as u32).collect();
            tensors.push((
                "image_input_index".into(),
                Tensor::from_u32(index, &[p.kept.len()], dev)?,
            ));
            if pixels.is_none() {
                let names: Vec<String> = p.kept.iter().map(|&i| images[i].display().to_string()).collect();
                meta.insert(
                    "image_files".to_string(),
                    serde_json::to_string(&names).expect("strings"),
                );
            }
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
        meta.insert("texts".to_string(), serde_json::to_string(texts).expect("strings"));
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
            "note: {} is a linear probe: it classifies image embeddings and does not change them, so the \
             embeddings written are the model's own; for its class probabilities run `cliptune zero-shot \
             --adapter {} IMAGE...`",
            pdir.display(),
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
    for (name, t) in &tensors {
        if t.dtype() != cliptune::DType::U32 {
            ensure_finite(name, &t.to_vec()?)?;
        }
    }
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let bytes = safetensors_bytes(out, &refs, &meta)?;
    if force {
        write_atomic(out, &bytes)?;
    } else {
        write_new(out, &bytes)?;
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn zero_shot_cmd(
    dir: &Path,
    pipeline: Option<Pipeline>,
    classes: Vec<String>,
    template_spec: &str,
    images: &[PathBuf],
    top_k: usize,
    json: bool,
    dev: &Device,
    skip_bad: bool,
    adapters: &[PathBuf],
    new_classes: bool,
) -> Result<()> {
    if classes.is_empty() && adapters.is_empty() {
        return Err(Error::invalid("zero-shot: give --classes a,b,c or --classes-file FILE"));
    }
    if images.is_empty() {
        return Err(Error::invalid("zero-shot: give at least one IMAGE"));
    }
    let t = templates(template_spec)?;
    let mut model = Clip::load(dir, dev, WeightStorage::AsStored)?;
    let mut tok = ClipTokenizer::for_model_dir_with(dir, pipeline)?;
    let mut ad = load_adapters_cli(&mut model, &mut tok, dir, adapters)?;
    if new_classes && ad.prompt().is_none() {
        return Err(Error::invalid(
            "zero-shot --new-classes: no prompt adapter was given (--adapter DIR of a `train --method prompt` run)",
        ));
    }
    ad.prompt_on_new_classes = new_classes;
    // With a prompt adapter the classes default to the ones it was trained on, and its
    // learned prompts replace the templates.
    // A linear probe classifies with its own weights: its classes by default, or the
    // --classes among them.
    let probe = adapted::the_probe(&ad)?;
    let classes = match (classes.is_empty(), ad.prompt(), probe) {
        (false, _, _) => classes,
        (true, Some((_, learner)), _) => learner.classes.clone(),
        (true, None, Some((_, p))) => p.classes.clone(),
        (true, None, None) => {
            return Err(Error::invalid(
                "zero-shot: give --classes a,b,c or --classes-file FILE (only a prompt or linear-probe adapter brings its own classes)",
            ))
        }
    };
    let cols = match probe {
        Some((pdir, p)) => Some(adapted::probe_columns(pdir, p, &classes, "--classes")?),
        None => None,
    };
    let p = pixels_for(&model, dir, images, None, skip_bad, dev, pipeline)?.expect("images given");
    let kept = p.kept;
    let img = model.encode_image(&p.px, 32)?;
    let probs = match (probe, &cols) {
        (Some((_, p)), Some(cols)) => adapted::probe_probabilities(p, &img.to_vec()?, kept.len(), cols)?,
        _ => {
            let cls = ad.class_embeddings(&model, &tok, &classes, &t, "--classes")?;
            probabilities(&model, &img, &cls)?.to_vec()?
        }
    };
    ensure_finite("zero-shot probabilities", &probs)?;
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
            rows.push((
                i,
                format!(
                    "{{\"index\":{i},\"image\":{},\"top\":[{}]}}",
                    json_str(&images[i].display().to_string()),
                    items.join(",")
                ),
            ));
        } else {
            println!("{}", images[i].display());
            for (j, q) in top {
                println!("  {:>6.2}%  {}", q * 100.0, classes[j]);
            }
        }
    }
    if json {
        // Skipped inputs keep their place, so row i of the JSON is always input i.
        for (i, why) in &p.skipped {
            rows.push((
                *i,
                format!(
                    "{{\"index\":{i},\"image\":{},\"skipped\":{}}}",
                    json_str(&images[*i].display().to_string()),
                    json_str(why)
                ),
            ));
        }
        rows.sort_by_key(|(i, _)| *i);
        let rows: Vec<String> = rows.into_iter().map(|(_, r)| r).collect();
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
        let s = read_text_capped(f, "classes file", TEXT_MAX_BYTES)?;
        out.extend(s.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));
    }
    Ok(out)
}
