//! Measuring one model state: target top-1 (and per-class recall) on the test set,
//! held-out zero-shot top-1 and retrieval R@1, from embeddings computed once per state
//! (image embeddings are reused while the image tower is frozen).
use std::path::PathBuf;

use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::zero_shot::{class_embeddings, tokenize};
use crate::clip::Clip;
use crate::error::Result;
use crate::eval::metrics::{retrieval, topk_accuracy};
use crate::eval::suite::{image_embeddings, ImageSource};

/// Host-side evaluation data shared by every method.
pub(super) struct Bench {
    pub(super) model_dir: PathBuf,
    pub(super) p: usize,
    pub(super) target_classes: Vec<String>,
    pub(super) target_templates: Vec<String>,
    pub(super) test: ImageSource,
    pub(super) test_labels: Vec<usize>,
    pub(super) held_classes: Vec<String>,
    pub(super) held_templates: Vec<String>,
    pub(super) held: ImageSource,
    pub(super) held_labels: Vec<usize>,
    /// Items of the held-out sheet that have captions, their captions, and each caption's
    /// index into that list.
    pub(super) held_captioned: Vec<usize>,
    pub(super) held_captions: Vec<String>,
    pub(super) held_owner: Vec<usize>,
}

/// What one model state scores.
pub(super) struct Measured {
    pub(super) target_top1: f32,
    /// Recall of each target class.
    pub(super) recall: Vec<f32>,
    pub(super) held_top1: f32,
    pub(super) held_r1: f32,
}

/// Cached base image embeddings of the test and held-out sets (for methods whose
/// image tower is frozen).
pub(super) struct Vision {
    pub(super) test: Vec<f32>,
    pub(super) held: Vec<f32>,
}

fn scores(img: &[f32], cls: &[f32], p: usize) -> Vec<f32> {
    img.chunks(p)
        .flat_map(|x| {
            cls.chunks(p)
                .map(move |c| x.iter().zip(c).map(|(a, b)| a * b).sum::<f32>())
        })
        .collect()
}

pub(super) fn recall(s: &[f32], c: usize, labels: &[usize]) -> Vec<f32> {
    let mut hit = vec![0usize; c];
    let mut n = vec![0usize; c];
    for (row, &l) in s.chunks(c).zip(labels) {
        let best = row
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |b, (j, &v)| if v > b.1 { (j, v) } else { b })
            .0;
        n[l] += 1;
        hit[l] += usize::from(best == l);
    }
    hit.iter()
        .zip(&n)
        .map(|(&h, &n)| if n > 0 { h as f32 / n as f32 } else { 0.0 })
        .collect()
}

impl Bench {
    pub(super) fn vision(&self, model: &Clip) -> Result<Vision> {
        let dir = Some(self.model_dir.as_path());
        Ok(Vision {
            test: image_embeddings(model, dir, &self.test)?,
            held: image_embeddings(model, dir, &self.held)?,
        })
    }

    /// Held-out zero-shot top-1 with class embeddings `cls` `[classes, P]`.
    pub(super) fn held_top1(&self, vision: &Vision, cls: &[f32]) -> Result<f32> {
        let s = scores(&vision.held, cls, self.p);
        topk_accuracy(
            &s,
            self.held_labels.len(),
            self.held_classes.len(),
            &self.held_labels,
            1,
        )
    }

    /// Target top-1 from class embeddings `cls` (or the target prompt), held-out zero-shot
    /// from `held_cls` (or the model's templates), held-out retrieval from the model's text tower.
    pub(super) fn measure(
        &self,
        model: &Clip,
        tok: &ClipTokenizer,
        vision: &Vision,
        cls: Option<Vec<f32>>,
        held_cls: Option<Vec<f32>>,
    ) -> Result<Measured> {
        let p = self.p;
        let cls = match cls {
            Some(c) => c,
            None => class_embeddings(model, tok, &self.target_classes, &self.target_templates)?.to_vec()?,
        };
        let c = self.target_classes.len();
        let s = scores(&vision.test, &cls, p);
        let n = self.test_labels.len();
        let target_top1 = topk_accuracy(&s, n, c, &self.test_labels, 1)?;
        let recall = recall(&s, c, &self.test_labels);
        let held_cls = match held_cls {
            Some(c) => c,
            None => class_embeddings(model, tok, &self.held_classes, &self.held_templates)?.to_vec()?,
        };
        let held_top1 = self.held_top1(vision, &held_cls)?;
        let (input, _) = tokenize(model, tok, &self.held_captions)?;
        let txt = model.encode_text(&input, 256)?.to_vec()?;
        let img: Vec<f32> = self
            .held_captioned
            .iter()
            .flat_map(|&i| vision.held[i * p..(i + 1) * p].iter().copied())
            .collect();
        let r = retrieval(&img, &txt, p, &self.held_owner)?;
        Ok(Measured {
            target_top1,
            recall,
            held_top1,
            held_r1: 0.5 * (r.i2t[0] + r.t2i[0]),
        })
    }
}
