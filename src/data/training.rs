//! What a training run reads: labelled images (class folders, a sprite sheet,
//! `fashion-mnist:...`) or a caption file, preprocessed once into host pixels, with the
//! data report printed on the way.
use std::path::{Path, PathBuf};

use super::captions::load_captions;
use super::class_folders::LabeledImages;
use super::labeled::{load_labeled, pixels, ImageSource};
use super::report::{report_captions, report_classes};
use super::sprite_sheet::{is_sprite_sheet, read_sprite_sheet};
use crate::clip::preprocess::{preprocess_files, PreprocessConfig};
use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::Device;

/// Training images as host pixels plus either labels (labelled data) or captions.
pub struct TrainingData {
    /// `[n, 3, h, w]` pixels, row-major, on the host.
    pub pixels: Vec<f32>,
    /// `[3, h, w]`.
    pub image_shape: Vec<usize>,
    /// Labelled data: each image's class index and the class names (empty for captions).
    pub labels: Vec<usize>,
    pub classes: Vec<String>,
    /// Caption data: each image's first caption and its hard negatives (empty for labels).
    pub texts: Vec<String>,
    pub negatives: Vec<Vec<String>>,
    /// The data came from a caption file.
    pub captions: bool,
}

impl TrainingData {
    pub fn len(&self) -> usize {
        self.labels.len().max(self.texts.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Floats per image.
    pub fn per_image(&self) -> usize {
        self.image_shape.iter().product()
    }

    /// The pixels of images `idx` as one `[idx.len(), 3, h, w]` tensor on `device`.
    pub fn batch_pixels(&self, idx: &[usize], device: &Device) -> Result<Tensor> {
        let mut shape = vec![idx.len()];
        shape.extend(&self.image_shape);
        Tensor::from_vec(gather_rows(&self.pixels, idx, self.per_image()), &shape, device)
    }

    /// Every image as one tensor on `device`.
    pub fn all_pixels(&self, device: &Device) -> Result<Tensor> {
        let mut shape = vec![self.len()];
        shape.extend(&self.image_shape);
        Tensor::from_vec(self.pixels.clone(), &shape, device)
    }

    /// The labels of images `idx` as u32 on `device`.
    pub fn batch_labels(&self, idx: &[usize], device: &Device) -> Result<Tensor> {
        Tensor::from_u32(
            idx.iter().map(|&i| self.labels[i] as u32).collect(),
            &[idx.len()],
            device,
        )
    }

    /// The captions of images `idx`, then all their hard negatives (in-batch order).
    pub fn batch_texts(&self, idx: &[usize]) -> Vec<String> {
        let mut t: Vec<String> = idx.iter().map(|&i| self.texts[i].clone()).collect();
        t.extend(idx.iter().flat_map(|&i| self.negatives[i].iter().cloned()));
        t
    }
}

/// Rows `idx` of a row-major `[_, width]` host matrix.
pub fn gather_rows(t: &[f32], idx: &[usize], width: usize) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| t[i * width..(i + 1) * width].iter().copied())
        .collect()
}

/// A caption file by its extension (.csv, .tsv, .jsonl); anything else is labelled images.
pub fn is_caption_file(data: &str) -> bool {
    let l = data.to_lowercase();
    l.ends_with(".csv") || l.ends_with(".tsv") || l.ends_with(".jsonl")
}

/// Load `spec` for training `model` (preprocessing from `model_dir`), printing the data
/// report of class folders and caption files to stderr.
pub fn load_training_data(
    spec: &str,
    classes_file: Option<&Path>,
    model: &Clip,
    model_dir: &Path,
) -> Result<TrainingData> {
    let data = if is_caption_file(spec) {
        let records = load_captions(Path::new(spec))?;
        eprint!("{}", report_captions(&records));
        let cfg = PreprocessConfig::from_model_dir(model_dir, model.config.vision.image_size)?;
        let paths: Vec<PathBuf> = records.iter().map(|r| r.image.clone()).collect();
        let (pixels, _, _) = preprocess_files(&paths, &cfg, false)?;
        let (h, w) = cfg.crop;
        TrainingData {
            pixels,
            image_shape: vec![3, h, w],
            labels: vec![],
            classes: vec![],
            texts: records.iter().map(|r| r.captions[0].clone()).collect(),
            negatives: records.iter().map(|r| r.negatives.clone()).collect(),
            captions: true,
        }
    } else {
        let set = load_labeled(spec, classes_file)?;
        if let ImageSource::Files(paths) = &set.source {
            let li = LabeledImages {
                images: paths.clone(),
                labels: set.labels.clone(),
                classes: set.classes.clone(),
            };
            eprint!("{}", report_classes(&li));
        }
        let px = pixels(model, Some(model_dir), &set.source)?.to_device(&Device::Cpu)?;
        TrainingData {
            pixels: px.to_vec()?,
            image_shape: px.shape()[1..].to_vec(),
            labels: set.labels,
            classes: set.classes,
            texts: vec![],
            negatives: vec![],
            captions: false,
        }
    };
    if data.is_empty() {
        return Err(Error::invalid(format!("{spec}: no training images")));
    }
    Ok(data)
}

/// A captioned reference set (reference distillation): each image with one caption.
pub struct ReferenceSet {
    pub pixels: Vec<f32>,
    /// `[3, h, w]`.
    pub image_shape: Vec<usize>,
    pub captions: Vec<String>,
    /// The class names of a sprite sheet (prompt tuning's reference term applies the
    /// learned context to them); empty for a caption file.
    pub classes: Vec<String>,
}

impl ReferenceSet {
    pub fn len(&self) -> usize {
        self.captions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.captions.is_empty()
    }

    pub fn all_pixels(&self, device: &Device) -> Result<Tensor> {
        let mut shape = vec![self.len()];
        shape.extend(&self.image_shape);
        Tensor::from_vec(self.pixels.clone(), &shape, device)
    }

    pub fn batch_pixels(&self, idx: &[usize], device: &Device) -> Result<Tensor> {
        let mut shape = vec![idx.len()];
        shape.extend(&self.image_shape);
        let per = self.image_shape.iter().product();
        Tensor::from_vec(gather_rows(&self.pixels, idx, per), &shape, device)
    }
}

/// `--reference SPEC`: a caption file, or a sprite sheet whose captioned items are used
/// (the first caption of each). Anything without captions is refused: distillation keeps
/// image-text similarities, which need texts.
pub fn load_reference(spec: &str, model: &Clip, model_dir: &Path) -> Result<ReferenceSet> {
    let cfg = PreprocessConfig::from_model_dir(model_dir, model.config.vision.image_size)?;
    let (h, w) = cfg.crop;
    let mut classes = Vec::new();
    let (pixels, captions) = if is_caption_file(spec) {
        let records = load_captions(Path::new(spec))?;
        let paths: Vec<PathBuf> = records.iter().map(|r| r.image.clone()).collect();
        let (pixels, _, _) = preprocess_files(&paths, &cfg, false)?;
        (
            pixels,
            records.iter().map(|r| r.captions[0].clone()).collect::<Vec<_>>(),
        )
    } else if is_sprite_sheet(spec) {
        let s = read_sprite_sheet(Path::new(spec))?;
        classes = s.classes.clone();
        let (images, captions): (Vec<_>, Vec<_>) = s
            .items
            .iter()
            .zip(s.images)
            .filter(|(it, _)| !it.captions.is_empty())
            .map(|(it, im)| (im, it.captions[0].clone()))
            .unzip();
        let px = pixels(model, Some(model_dir), &ImageSource::Memory(images))?.to_device(&Device::Cpu)?;
        (px.to_vec()?, captions)
    } else {
        (vec![], vec![])
    };
    if captions.is_empty() {
        return Err(Error::invalid(format!(
            "--reference {spec}: no captions; reference distillation keeps image-text similarities, so it needs \
             captioned images (a caption file .csv/.tsv/.jsonl, or a sprite sheet whose items have captions)"
        )));
    }
    Ok(ReferenceSet {
        pixels,
        image_shape: vec![3, h, w],
        captions,
        classes,
    })
}
