//! The demo's data: the Fashion-MNIST subsets (embedded, or the Debian files for more
//! shots) and the textual-inversion caption file.
use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::{embedded, TARGET_TEMPLATE, TI_CLASS, TI_WORD};
use crate::data::fashion_mnist::{default_dir, load_fashion_mnist, Split, FASHION_MNIST_CLASSES, SIDE};
use crate::data::sprite_sheet::{sprite_sheet_from_bytes, SpriteItem, SpriteSheet};
use crate::error::{Error, Result};
use crate::tensor::io::write_atomic;

/// The first `per_class` images of each class: from the embedded subset, or from the
/// Debian package when more are asked for than it holds.
pub(super) fn target_subset(split: Split, per_class: usize, flag: &str) -> Result<SpriteSheet> {
    let (files, have) = match split {
        Split::Train => (embedded::FASHION_MNIST_TRAIN, embedded::TRAIN_PER_CLASS),
        Split::Test => (embedded::FASHION_MNIST_TEST, embedded::TEST_PER_CLASS),
    };
    let classes: Vec<String> = FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect();
    let (images, labels): (Vec<DynamicImage>, Vec<usize>) = if per_class <= have {
        let text = std::str::from_utf8(files[0].1).map_err(|e| Error::invalid(format!("{}: {e}", files[0].0)))?;
        let s = sprite_sheet_from_bytes(text, files[1].1, Path::new(files[0].0))?;
        let labels = s.labels();
        (s.images, labels)
    } else {
        let dir = default_dir();
        let (imgs, labels) = load_fashion_mnist(&dir, split).map_err(|e| {
            Error::invalid(format!(
                "{flag} {per_class}: the embedded subset has {have} images per class; more need the Debian package \
                 dataset-fashion-mnist ({e})"
            ))
        })?;
        let images = imgs
            .iter()
            .map(|px| {
                DynamicImage::ImageLuma8(
                    image::GrayImage::from_raw(SIDE as u32, SIDE as u32, px.to_vec()).unwrap_or_default(),
                )
            })
            .collect();
        (images, labels.iter().map(|&l| l as usize).collect())
    };
    let mut taken = vec![0usize; classes.len()];
    let (mut imgs, mut items) = (vec![], vec![]);
    for (im, l) in images.into_iter().zip(labels) {
        if taken[l] < per_class {
            taken[l] += 1;
            imgs.push(im);
            items.push(SpriteItem {
                label: l,
                captions: vec![],
            });
        }
    }
    if let Some(c) = taken.iter().position(|&t| t < per_class) {
        return Err(Error::invalid(format!(
            "{flag} {per_class}: only {} images of {:?} are available",
            taken[c], classes[c]
        )));
    }
    let mut s = SpriteSheet::new(classes, items, imgs, 0)?;
    s.extra.insert(
        "source".into(),
        serde_json::json!("Fashion-MNIST (Zalando Research, MIT licence)"),
    );
    Ok(s)
}

/// The textual-inversion caption file: every training image, the renamed class's
/// captioned with the new word and the others with their plain prompts, so the word is
/// pulled toward its class's images and pushed away from the other classes' (only the
/// word's embedding trains; trained on that class alone, it drifts toward every garment).
pub(super) fn write_ti_captions(dir: &Path, train: &SpriteSheet) -> Result<PathBuf> {
    if !train.classes.iter().any(|c| c == TI_CLASS) {
        return Err(Error::invalid(format!(
            "demo: no {TI_CLASS:?} class in the training data"
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut lines = String::new();
    for (i, (it, im)) in train.items.iter().zip(&train.images).enumerate() {
        let class = &train.classes[it.label];
        let name = format!("{i:03}-{}.png", class.replace(' ', "-"));
        let mut png = std::io::Cursor::new(Vec::new());
        im.write_to(&mut png, image::ImageFormat::Png)
            .map_err(|e| Error::io(dir.join(&name).display(), e))?;
        write_atomic(&dir.join(&name), &png.into_inner())?;
        let word = if class == TI_CLASS { TI_WORD } else { class.as_str() };
        let line = serde_json::json!({"image": name, "caption": TARGET_TEMPLATE.replace("{}", word)});
        lines.push_str(&format!("{line}\n"));
    }
    let path = dir.join("captions.jsonl");
    write_atomic(&path, lines.as_bytes())?;
    Ok(path)
}
