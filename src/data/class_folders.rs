//! Labelled images in class folders: `root/<class>/*.png|jpg|jpeg`.
//!
//! Classes are the sub-folders of `root`, sorted by folder name (byte order, so the label
//! numbering is the same on every machine). A folder name becomes a class name by turning
//! `_` and `-` into spaces (`ankle_boot` -> `ankle boot`), unless a classes file gives the
//! names: one per line, in the sorted folder order, as many as there are folders (blank
//! lines are ignored). Images are the files directly inside a class folder whose extension is
//! `png`, `jpg` or `jpeg` (any case), sorted by file name; other files, nested folders and
//! hidden entries (names starting with `.`) are ignored.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Image file extensions the class-folder loader picks up (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Images with one class label each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledImages {
    /// Image files, grouped by class (class 0 first), sorted by name within a class.
    pub images: Vec<PathBuf>,
    /// `labels[i]` is the index into `classes` of `images[i]`.
    pub labels: Vec<usize>,
    /// Class names (for prompts), in label order.
    pub classes: Vec<String>,
}

impl LabeledImages {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Number of images per class, in label order.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for &l in &self.labels {
            if let Some(n) = c.get_mut(l) {
                *n += 1;
            }
        }
        c
    }
}

/// Whether a file name has one of [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

/// A folder name as a class name: `_` and `-` become spaces, runs of spaces collapse.
pub fn folder_to_class_name(folder: &str) -> String {
    folder
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Visible (not dot-prefixed) entries of a directory with their names, sorted by name.
fn sorted_entries(dir: &Path, what: &str) -> Result<Vec<(String, PathBuf)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display(), format!("cannot read {what}: {e}")))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir.display(), format!("cannot read {what}: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        out.push((name, entry.path()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Load `root/<class>/*.png|jpg|jpeg`, with class names from the folder names or from
/// `classes_file`.
///
/// Errors: `root` missing or not a folder; no class folders in it (saying so when image files
/// sit directly in `root`); class folders with no images (all of them named); an unreadable
/// classes file, or one whose number of names differs from the number of class folders.
pub fn load_class_folders(root: &Path, classes_file: Option<&Path>) -> Result<LabeledImages> {
    let meta = std::fs::metadata(root)
        .map_err(|e| Error::io(root.display(), format!("cannot open the class-folder root: {e}")))?;
    if !meta.is_dir() {
        return Err(Error::invalid(format!(
            "{}: not a folder; expected a folder with one sub-folder of images per class",
            root.display()
        )));
    }
    let entries = sorted_entries(root, "the class-folder root")?;
    let mut folders = Vec::new();
    let mut loose_images = 0usize;
    for (name, path) in entries {
        // fs::metadata follows symlinks, so linked class folders and images work.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => folders.push((name, path)),
            Ok(m) if m.is_file() && is_image_file(&path) => loose_images += 1,
            _ => {}
        }
    }
    if folders.is_empty() {
        let hint = if loose_images > 0 {
            format!(" ({loose_images} image files sit directly in it: move them into one sub-folder per class)")
        } else {
            String::new()
        };
        return Err(Error::invalid(format!(
            "{}: no class folders; expected root/<class name>/*.png|jpg|jpeg{hint}",
            root.display()
        )));
    }

    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut empty = Vec::new();
    for (label, (name, dir)) in folders.iter().enumerate() {
        let before = images.len();
        for (_, path) in sorted_entries(dir, "class folder")? {
            let is_file = std::fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false);
            if is_file && is_image_file(&path) {
                images.push(path);
                labels.push(label);
            }
        }
        if images.len() == before {
            empty.push(name.as_str());
        }
    }
    if !empty.is_empty() {
        return Err(Error::invalid(format!(
            "{}: class folder{} with no images (.png/.jpg/.jpeg): {}",
            root.display(),
            if empty.len() > 1 { "s" } else { "" },
            empty.join(", ")
        )));
    }

    let classes = match classes_file {
        None => folders.iter().map(|(n, _)| folder_to_class_name(n)).collect(),
        Some(file) => read_classes_file(file, &folders)?,
    };
    Ok(LabeledImages {
        images,
        labels,
        classes,
    })
}

fn read_classes_file(file: &Path, folders: &[(String, PathBuf)]) -> Result<Vec<String>> {
    let text = crate::user_file::read_text_capped(file, "classes file", crate::user_file::TEXT_MAX_BYTES)?;
    let text = text.as_str();
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() != folders.len() {
        let listed: Vec<&str> = folders.iter().map(|(n, _)| n.as_str()).collect();
        return Err(Error::invalid(format!(
            "{}: {} class names, but there are {} class folders (one name per line, in this order: {})",
            file.display(),
            names.len(),
            folders.len(),
            listed.join(", ")
        )));
    }
    Ok(names)
}
