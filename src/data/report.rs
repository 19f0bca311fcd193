//! The data report printed before training: counts, duplicate images, captions that are bare
//! labels, class imbalance.
//!
//! Nothing here fails: a file that cannot be read while looking for duplicates becomes a
//! warning (the loaders already checked that every image exists).
//!
//! - **Duplicates** are files with identical bytes (grouped by size and a 64-bit FNV-1a hash,
//!   then confirmed byte for byte). In contrastive training a duplicate is a false negative
//!   in its batch; across classes it is a contradicting label.
//! - **Bare-label captions** are captions of one or two words with no article and no verb
//!   ("dog", "red car"): CLIP learned from sentences, and training on labels teaches it to
//!   expect labels. See [`is_label_like`].
//! - **Class imbalance**: a largest-to-smallest class ratio above [`IMBALANCE_RATIO`].
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::json;

use super::captions::CaptionRecord;
use super::class_folders::LabeledImages;

/// A largest/smallest class count ratio above this is reported as imbalance.
pub const IMBALANCE_RATIO: f64 = 3.0;
/// How many examples (captions, duplicate groups, classes) a warning names.
const MAX_EXAMPLES: usize = 5;

/// Which loader the report describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Captions,
    Classes,
}

/// Counts and warnings about a data set; print it with `{}` or store [`DataReport::to_json`].
#[derive(Debug, Clone, PartialEq)]
pub struct DataReport {
    pub kind: ReportKind,
    /// Number of images.
    pub images: usize,
    /// Number of captions (0 for class folders).
    pub captions: usize,
    /// Number of hard-negative captions.
    pub negatives: usize,
    /// Images with more than one caption.
    pub multi_caption_images: usize,
    /// (class name, image count) in label order (empty for captions).
    pub class_counts: Vec<(String, usize)>,
    /// Groups of files with identical bytes (each group has two or more files).
    pub duplicate_groups: Vec<Vec<PathBuf>>,
    /// Files that could not be read while looking for duplicates, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Number of captions that are bare labels.
    pub label_like: usize,
    /// A few of those captions.
    pub label_like_examples: Vec<String>,
    warnings: Vec<String>,
}

impl DataReport {
    /// The warnings, one sentence each (empty when the data looks fine).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Fraction of captions that are bare labels (0 when there are no captions).
    pub fn label_like_fraction(&self) -> f64 {
        if self.captions == 0 {
            0.0
        } else {
            self.label_like as f64 / self.captions as f64
        }
    }

    /// Largest / smallest class count (None without classes).
    pub fn imbalance_ratio(&self) -> Option<f64> {
        let max = self.class_counts.iter().map(|c| c.1).max()?;
        let min = self.class_counts.iter().map(|c| c.1).min()?;
        Some(if min == 0 {
            f64::INFINITY
        } else {
            max as f64 / min as f64
        })
    }

    /// Everything in the report as JSON (paths as strings).
    pub fn to_json(&self) -> serde_json::Value {
        let p = |p: &PathBuf| p.display().to_string();
        json!({
            "kind": match self.kind { ReportKind::Captions => "captions", ReportKind::Classes => "classes" },
            "images": self.images,
            "captions": self.captions,
            "negatives": self.negatives,
            "multi_caption_images": self.multi_caption_images,
            "classes": self.class_counts.iter().map(|(n, c)| json!({"name": n, "images": c})).collect::<Vec<_>>(),
            "imbalance_ratio": self.imbalance_ratio().filter(|r| r.is_finite()),
            "duplicate_groups": self.duplicate_groups.iter().map(|g| g.iter().map(p).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "unreadable": self.unreadable.iter().map(|(f, e)| json!({"file": p(f), "error": e})).collect::<Vec<_>>(),
            "label_like_captions": self.label_like,
            "label_like_fraction": self.label_like_fraction(),
            "label_like_examples": self.label_like_examples,
            "warnings": self.warnings,
        })
    }

    fn empty(kind: ReportKind) -> Self {
        DataReport {
            kind,
            images: 0,
            captions: 0,
            negatives: 0,
            multi_caption_images: 0,
            class_counts: Vec::new(),
            duplicate_groups: Vec::new(),
            unreadable: Vec::new(),
            label_like: 0,
            label_like_examples: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn warn_duplicates_and_unreadable(&mut self, what: &str) {
        if !self.duplicate_groups.is_empty() {
            let files: usize = self.duplicate_groups.iter().map(Vec::len).sum();
            let shown: Vec<String> = self
                .duplicate_groups
                .iter()
                .take(MAX_EXAMPLES)
                .map(|g| {
                    g.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" = ")
                })
                .collect();
            let more = self.duplicate_groups.len().saturating_sub(MAX_EXAMPLES);
            self.warnings.push(format!(
                "{} group{} of identical images ({files} files; {what}): {}{}",
                self.duplicate_groups.len(),
                plural(self.duplicate_groups.len()),
                shown.join("; "),
                if more > 0 {
                    format!("; and {more} more groups")
                } else {
                    String::new()
                }
            ));
        }
        if !self.unreadable.is_empty() {
            let shown: Vec<String> = self
                .unreadable
                .iter()
                .take(MAX_EXAMPLES)
                .map(|(p, e)| format!("{}: {e}", p.display()))
                .collect();
            self.warnings.push(format!(
                "{} image file{} could not be read: {}",
                self.unreadable.len(),
                plural(self.unreadable.len()),
                shown.join("; ")
            ));
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Report on image-caption records: counts, duplicate images, bare-label captions.
pub fn report_captions(records: &[CaptionRecord]) -> DataReport {
    let mut r = DataReport::empty(ReportKind::Captions);
    r.images = records.len();
    r.captions = records.iter().map(|x| x.captions.len()).sum();
    r.negatives = records.iter().map(|x| x.negatives.len()).sum();
    r.multi_caption_images = records.iter().filter(|x| x.captions.len() > 1).count();
    for c in records.iter().flat_map(|x| &x.captions) {
        if is_label_like(c) {
            r.label_like += 1;
            if r.label_like_examples.len() < MAX_EXAMPLES && !r.label_like_examples.contains(c) {
                r.label_like_examples.push(c.clone());
            }
        }
    }
    let paths: Vec<&Path> = records.iter().map(|x| x.image.as_path()).collect();
    let (groups, unreadable) = find_duplicates(&paths);
    r.duplicate_groups = groups;
    r.unreadable = unreadable;

    if r.label_like > 0 {
        let examples: Vec<String> = r.label_like_examples.iter().map(|c| format!("'{c}'")).collect();
        r.warnings.push(format!(
            "{} of {} captions ({:.1} %) are bare labels ({}): describe the picture instead: \
             'a photo of a dog sitting on grass' beats 'dog'",
            r.label_like,
            r.captions,
            100.0 * r.label_like_fraction(),
            examples.join(", ")
        ));
    }
    r.warn_duplicates_and_unreadable("duplicates act as false negatives in contrastive batches");
    r
}

/// Report on labelled images: counts per class, imbalance, duplicate images (and duplicates
/// that carry different labels).
pub fn report_classes(data: &LabeledImages) -> DataReport {
    let mut r = DataReport::empty(ReportKind::Classes);
    r.images = data.images.len();
    let counts = data.counts();
    r.class_counts = data.classes.iter().cloned().zip(counts.iter().copied()).collect();

    if let (Some(max), Some(min)) = (counts.iter().max(), counts.iter().min()) {
        let ratio = if *min == 0 {
            f64::INFINITY
        } else {
            *max as f64 / *min as f64
        };
        if ratio > IMBALANCE_RATIO {
            let named = |n: usize| -> String {
                let names: Vec<&str> = r
                    .class_counts
                    .iter()
                    .filter(|(_, c)| *c == n)
                    .take(MAX_EXAMPLES)
                    .map(|(name, _)| name.as_str())
                    .collect();
                format!("{} ({n} images)", names.join(", "))
            };
            r.warnings.push(format!(
                "class imbalance: the largest class has {:.1}x the images of the smallest \
                 (largest: {}; smallest: {}); consider collecting more of the small classes or \
                 balancing the sampling",
                ratio,
                named(*max),
                named(*min)
            ));
        }
    }

    let paths: Vec<&Path> = data.images.iter().map(PathBuf::as_path).collect();
    let (groups, unreadable) = find_duplicates(&paths);
    let label_of: HashMap<&Path, usize> = data
        .images
        .iter()
        .map(PathBuf::as_path)
        .zip(data.labels.iter().copied())
        .collect();
    let mut conflicts = Vec::new();
    for g in &groups {
        let mut labels: Vec<usize> = g.iter().filter_map(|p| label_of.get(p.as_path()).copied()).collect();
        labels.sort_unstable();
        labels.dedup();
        if labels.len() > 1 {
            let names: Vec<&str> = labels
                .iter()
                .filter_map(|&l| data.classes.get(l).map(String::as_str))
                .collect();
            conflicts.push(format!("{} (in {})", g[0].display(), names.join(" and ")));
        }
    }
    r.duplicate_groups = groups;
    r.unreadable = unreadable;
    r.warn_duplicates_and_unreadable("they weigh twice in training and can leak between train and test splits");
    if !conflicts.is_empty() {
        let n = conflicts.len();
        conflicts.truncate(MAX_EXAMPLES);
        r.warnings.push(format!(
            "{n} identical image{} filed under different classes: {}",
            plural(n),
            conflicts.join("; ")
        ));
    }
    r
}

/// Common English articles; a caption with one is not a bare label.
const ARTICLES: [&str; 3] = ["a", "an", "the"];
/// Common verbs that turn two words into a description ("dog sleeps", "cars are").
const VERBS: &[&str] = &[
    "is", "are", "was", "were", "be", "been", "has", "have", "had", "sits", "sit", "sat", "stands", "stand", "stood",
    "lies", "lie", "lay", "holds", "hold", "held", "wears", "wear", "shows", "show", "runs", "run", "ran", "looks",
    "look", "plays", "play", "flies", "fly", "flew", "eats", "eat", "ate", "walks", "walk", "jumps", "jump", "rides",
    "ride", "swims", "swim", "sleeps", "sleep", "smiles", "smile", "waits", "wait", "drives", "drive", "grows", "grow",
    "hangs", "hang", "rests", "rest", "floats", "float", "falls", "fall",
];
/// Nouns ending in "-ing" that are not verbs.
const ING_NOUNS: &[&str] = &[
    "building",
    "ceiling",
    "painting",
    "drawing",
    "clothing",
    "string",
    "ring",
    "king",
    "wing",
    "thing",
    "spring",
    "morning",
    "evening",
    "ending",
    "wedding",
    "pudding",
    "stuffing",
    "icing",
    "railing",
    "swing",
    "sling",
    "earring",
    "shilling",
    "sibling",
    "duckling",
    "herring",
    "dumpling",
    "lightning",
    "wring",
    "bling",
    "sting",
];

/// Whether a caption is a bare label rather than a description: one or two words (after
/// stripping punctuation), none of them an article ("a", "an", "the") or a verb (a common
/// verb, or an "-ing" word that is not a common "-ing" noun). "dog", "red car" and "ankle
/// boot" are labels; "a dog", "dog sleeping" and "a photo of a dog" are not.
pub fn is_label_like(caption: &str) -> bool {
    let words: Vec<String> = caption
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| c.is_ascii_punctuation() && c != '<' && c != '>')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() > 2 {
        return false;
    }
    !words.iter().any(|w| {
        ARTICLES.contains(&w.as_str())
            || VERBS.contains(&w.as_str())
            || (w.len() >= 5 && w.ends_with("ing") && !ING_NOUNS.contains(&w.as_str()))
    })
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Groups of rows whose files have identical bytes (in input order), and the files that
/// could not be read. A path listed in several rows is one such group: those rows train
/// on the same image exactly like copies of the file would.
fn find_duplicates(paths: &[&Path]) -> (Vec<Vec<PathBuf>>, Vec<(PathBuf, String)>) {
    let hashed: Vec<std::result::Result<(u64, u64), String>> = paths
        .par_iter()
        .map(|p| {
            std::fs::read(p)
                .map(|b| (b.len() as u64, fnv1a64(&b)))
                .map_err(|e| e.to_string())
        })
        .collect();
    let mut unreadable = Vec::new();
    let mut buckets: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    let mut order: Vec<(u64, u64)> = Vec::new();
    for (i, h) in hashed.into_iter().enumerate() {
        match h {
            Err(e) => unreadable.push((paths[i].to_path_buf(), e)),
            Ok(key) => {
                let b = buckets.entry(key).or_default();
                if b.is_empty() {
                    order.push(key);
                }
                b.push(i);
            }
        }
    }
    let mut groups = Vec::new();
    for key in order {
        let members = &buckets[&key];
        if members.len() < 2 {
            continue;
        }
        // Confirm byte for byte: split the bucket into classes of equal contents.
        let contents: Vec<Option<Vec<u8>>> = members.iter().map(|&i| std::fs::read(paths[i]).ok()).collect();
        let mut assigned = vec![false; members.len()];
        for a in 0..members.len() {
            if assigned[a] || contents[a].is_none() {
                continue;
            }
            let mut group = vec![paths[members[a]].to_path_buf()];
            for b in a + 1..members.len() {
                if !assigned[b] && contents[b].is_some() && contents[b] == contents[a] {
                    assigned[b] = true;
                    group.push(paths[members[b]].to_path_buf());
                }
            }
            if group.len() > 1 {
                groups.push(group);
            }
        }
    }
    (groups, unreadable)
}

impl fmt::Display for DataReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ReportKind::Captions => {
                let per = if self.images == 0 {
                    0.0
                } else {
                    self.captions as f64 / self.images as f64
                };
                writeln!(
                    f,
                    "data: {} images, {} captions ({per:.1} per image; {} image{} with several), {} hard negatives",
                    self.images,
                    self.captions,
                    self.multi_caption_images,
                    plural(self.multi_caption_images),
                    self.negatives
                )?;
                writeln!(
                    f,
                    "bare-label captions: {} ({:.1} %)",
                    self.label_like,
                    100.0 * self.label_like_fraction()
                )?;
            }
            ReportKind::Classes => {
                writeln!(f, "data: {} images in {} classes", self.images, self.class_counts.len())?;
                const MAX_LINES: usize = 30;
                let width = self
                    .class_counts
                    .iter()
                    .take(MAX_LINES)
                    .map(|c| c.0.chars().count())
                    .max()
                    .unwrap_or(0);
                for (name, n) in self.class_counts.iter().take(MAX_LINES) {
                    writeln!(f, "  {name:<width$}  {n}")?;
                }
                if self.class_counts.len() > MAX_LINES {
                    writeln!(f, "  ... and {} more classes", self.class_counts.len() - MAX_LINES)?;
                }
                if let Some(r) = self.imbalance_ratio() {
                    writeln!(f, "largest/smallest class: {r:.1}x")?;
                }
            }
        }
        let dup_files: usize = self.duplicate_groups.iter().map(Vec::len).sum();
        writeln!(
            f,
            "duplicate images: {} groups ({dup_files} files)",
            self.duplicate_groups.len()
        )?;
        if self.warnings.is_empty() {
            writeln!(f, "no warnings")
        } else {
            writeln!(f, "warnings ({}):", self.warnings.len())?;
            for w in &self.warnings {
                writeln!(f, "  - {w}")?;
            }
            Ok(())
        }
    }
}
