//! Labelled image sets (class folders, sprite sheets, built-in Fashion-MNIST) and their
//! preprocessed pixels / embeddings: what training, evaluation and the demo read.
use std::path::{Path, PathBuf};

use image::DynamicImage;
use rayon::prelude::*;

use super::class_folders::load_class_folders;
use super::fashion_mnist::{default_dir, load_fashion_mnist, to_rgb_image, Split, FASHION_MNIST_CLASSES};
use super::sprite_sheet::{is_sprite_sheet, read_sprite_sheet};
use crate::clip::preprocess::{preprocess, preprocess_files, PreprocessConfig};
use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Images on disk or already in memory (built-in datasets).
pub enum ImageSource {
    Files(Vec<PathBuf>),
    Memory(Vec<DynamicImage>),
}

/// A labelled image set: a class-folder tree or a built-in dataset.
pub struct LabeledSet {
    pub name: String,
    pub source: ImageSource,
    pub labels: Vec<usize>,
    pub classes: Vec<String>,
}

impl LabeledSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// `fashion-mnist:train|test[:N]` (the first N of each class, from the Debian
/// package), a sprite sheet (`NAME.json` + `NAME.png`), or a class-folder root
/// (`root/<class>/*.png`).
pub fn load_labeled(spec: &str, classes_file: Option<&Path>) -> Result<LabeledSet> {
    if is_sprite_sheet(spec) {
        let s = read_sprite_sheet(Path::new(spec))?;
        return Ok(LabeledSet {
            name: spec.to_string(),
            labels: s.labels(),
            source: ImageSource::Memory(s.images),
            classes: s.classes,
        });
    }
    if let Some(rest) = spec.strip_prefix("fashion-mnist:") {
        let mut parts = rest.split(':');
        let split = match parts.next() {
            Some("train") => Split::Train,
            Some("test") => Split::Test,
            other => {
                return Err(Error::invalid(format!(
                    "{spec}: expected fashion-mnist:train or fashion-mnist:test, got {other:?}"
                )))
            }
        };
        let per_class: Option<usize> = match parts.next() {
            Some(n) => Some(
                n.parse()
                    .map_err(|_| Error::invalid(format!("{spec}: '{n}' is not a number of images per class")))?,
            ),
            None => None,
        };
        let (imgs, labels) = load_fashion_mnist(&default_dir(), split)?;
        let mut taken = [0usize; 10];
        let mut out_imgs = vec![];
        let mut out_labels = vec![];
        for (img, &l) in imgs.iter().zip(&labels) {
            let l = l as usize;
            if per_class.is_none_or(|n| taken[l] < n) {
                taken[l] += 1;
                out_imgs.push(to_rgb_image(img));
                out_labels.push(l);
            }
        }
        return Ok(LabeledSet {
            name: spec.to_string(),
            source: ImageSource::Memory(out_imgs),
            labels: out_labels,
            classes: FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect(),
        });
    }
    let d = load_class_folders(Path::new(spec), classes_file)?;
    Ok(LabeledSet {
        name: spec.to_string(),
        source: ImageSource::Files(d.images),
        labels: d.labels,
        classes: d.classes,
    })
}

/// Preprocessed pixels [n, 3, h, w] of a set (files in parallel, unreadable ones are errors).
pub fn pixels(model: &Clip, model_dir: Option<&Path>, source: &ImageSource) -> Result<Tensor> {
    let size = model.config.vision.image_size;
    let cfg = match model_dir {
        Some(d) => PreprocessConfig::from_model_dir(d, size)?,
        None => PreprocessConfig::openai(size),
    };
    let (h, w) = cfg.crop;
    let (data, n) = match source {
        ImageSource::Files(paths) => {
            let (data, kept, _) = preprocess_files(paths, &cfg, false)?;
            (data, kept.len())
        }
        ImageSource::Memory(imgs) => {
            let per: Vec<Vec<f32>> = imgs.par_iter().map(|im| preprocess(im, &cfg)).collect();
            (per.concat(), imgs.len())
        }
    };
    Tensor::from_vec(data, &[n, 3, h, w], model.device())
}

/// Normalised image embeddings of a set, [n, P] on the host.
pub fn image_embeddings(model: &Clip, model_dir: Option<&Path>, source: &ImageSource) -> Result<Vec<f32>> {
    // Preprocess and embed in chunks so memory stays bounded on large sets.
    const CHUNK: usize = 256;
    let mut out = vec![];
    match source {
        ImageSource::Files(paths) => {
            for c in paths.chunks(CHUNK) {
                let px = pixels(model, model_dir, &ImageSource::Files(c.to_vec()))?;
                out.extend(model.encode_image(&px, 64)?.to_vec()?);
            }
        }
        ImageSource::Memory(imgs) => {
            for c in imgs.chunks(CHUNK) {
                let px = pixels(model, model_dir, &ImageSource::Memory(c.to_vec()))?;
                out.extend(model.encode_image(&px, 64)?.to_vec()?);
            }
        }
    }
    Ok(out)
}
