//! emoji-corpus: the pretraining corpus of cliptune-mini, a tiny CLIP trained on emoji.
//!
//! Train set: Google Noto emoji (base + skin tones) and the Fluent `modern` and
//! `high-contrast` styles, each image with several caption sentences in `train.csv`.
//! Held-out set: the Fluent `flat` style (never trained on) as a sprite sheet, with 5 % of
//! the concepts withheld from training in every style, so it measures both a new art style
//! and unseen concepts.
mod captions;
mod concepts;
mod raster;
mod sprite_sheet;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use concepts::{stable_hash, Concept};

const USAGE: &str = "usage: emoji-corpus --google DIR --fluent DIR --out OUTDIR [--heldout-classes 300] [--reference-items 256] [--seed 0]
  --google DIR           unpacked npm emoji-datasource-google (emoji.json, img/google/64/)
  --fluent DIR           unpacked npm fluentui-emoji (icons/{modern,flat,high-contrast}/)
  --out OUTDIR           empty or missing folder, or one holding a previous run (manifest.json)
  --heldout-classes N    items of the held-out sprite sheet (default 300)
  --reference-items N    items of the reference sprite sheet (default 256): training images
                         of concepts absent from the held-out sheet, for --reference
  --seed S               seed of the held-out choices (default 0)";

/// Fraction of concepts withheld from training in every style.
const HELDOUT_FRACTION: f64 = 0.05;
/// Tiles per row of the held-out sheet.
const SHEET_COLUMNS: usize = 32;
/// Files and folders a run writes into OUTDIR (and clears on a rerun).
const OUTPUTS: [&str; 7] = [
    "train",
    "train.csv",
    "heldout.png",
    "heldout.json",
    "reference.png",
    "reference.json",
    "manifest.json",
];

struct Args {
    google: PathBuf,
    fluent: PathBuf,
    out: PathBuf,
    heldout_classes: usize,
    reference_items: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut google, mut fluent, mut out) = (None, None, None);
    let (mut heldout_classes, mut reference_items, mut seed) = (300usize, 256usize, 0u64);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--google" => google = Some(PathBuf::from(value)),
            "--fluent" => fluent = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            "--heldout-classes" => {
                heldout_classes =
                    value.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        format!("--heldout-classes must be a whole number, at least 1 (got {value:?})")
                    })?
            }
            "--reference-items" => {
                reference_items = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--reference-items must be a whole number, at least 1 (got {value:?})"))?
            }
            "--seed" => {
                seed = value
                    .parse()
                    .map_err(|_| format!("--seed must be a whole number (got {value:?})"))?
            }
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
        }
    }
    let need = |v: Option<PathBuf>, name: &str| v.ok_or_else(|| format!("{name} is required\n{USAGE}"));
    Ok(Args {
        google: need(google, "--google")?,
        fluent: need(fluent, "--fluent")?,
        out: need(out, "--out")?,
        heldout_classes,
        reference_items,
        seed,
    })
}

/// Make OUTDIR ready: created if missing; a folder from a previous run (it has
/// manifest.json) has that run's outputs removed; any other non-empty folder is refused,
/// so a typo in --out never mixes the corpus into unrelated files. The manifest is written
/// last, so its presence means a complete corpus.
fn prepare_out(out: &Path) -> Result<(), String> {
    if out.exists() {
        if !out.is_dir() {
            return Err(format!("{}: --out exists and is not a folder", out.display()));
        }
        let non_empty = std::fs::read_dir(out)
            .map_err(|e| format!("{}: cannot list: {e}", out.display()))?
            .next()
            .is_some();
        if non_empty && !out.join("manifest.json").is_file() {
            return Err(format!(
                "{}: not empty and has no manifest.json from a previous emoji-corpus run; refusing to write there (remove it or choose another --out)",
                out.display()
            ));
        }
        for name in OUTPUTS {
            let p = out.join(name);
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else if p.exists() {
                std::fs::remove_file(&p)
            } else {
                Ok(())
            };
            r.map_err(|e| format!("{}: cannot remove the previous run's output: {e}", p.display()))?;
        }
    }
    std::fs::create_dir_all(out.join("train")).map_err(|e| format!("{}: cannot create: {e}", out.display()))
}

/// `{"name": ..., "version": ...}` of an unpacked npm package.
fn package_info(dir: &Path) -> Value {
    let p = dir.join("package.json");
    let v: Value = std::fs::read_to_string(&p)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    json!({"name": v.get("name").cloned().unwrap_or(Value::Null), "version": v.get("version").cloned().unwrap_or(Value::Null)})
}

/// Train images written, by style (keys as in the manifest).
#[derive(Default)]
struct StyleCounts {
    google: usize,
    google_skin_tone: usize,
    fluent_modern: usize,
    fluent_high_contrast: usize,
}

fn run(args: &Args) -> Result<(), String> {
    let emoji_json = args.google.join("emoji.json");
    if !emoji_json.is_file() {
        return Err(format!(
            "{}: missing (is --google an unpacked emoji-datasource-google?)",
            emoji_json.display()
        ));
    }
    let fluent = concepts::index_fluent(&args.fluent)?;
    let (concepts, load_stats) = concepts::load(&args.google, &fluent)?;
    prepare_out(&args.out)?;
    let matched = concepts.iter().filter(|c| c.fluent.is_some()).count();
    eprintln!(
        "{} concepts ({} entries without a Google image skipped); {} matched a Fluent name ({:.1} %)",
        concepts.len(),
        load_stats.skipped_no_image,
        matched,
        100.0 * matched as f64 / concepts.len().max(1) as f64
    );
    for n in &load_stats.renamed_duplicates {
        eprintln!("warning: duplicate display name, renamed to {n:?}");
    }

    let heldout = concepts::choose_heldout(&concepts, args.seed, HELDOUT_FRACTION);
    eprintln!("{} concepts held out of training", heldout.len());

    let (counts, csv, caption_rows, missing) = write_train(args, &concepts, &heldout, &fluent)?;
    std::fs::write(args.out.join("train.csv"), csv).map_err(|e| format!("train.csv: {e}"))?;
    let train_images = counts.google + counts.google_skin_tone + counts.fluent_modern + counts.fluent_high_contrast;
    eprintln!("train: {train_images} images, {caption_rows} caption rows in train.csv");

    let (sheet_classes, unseen_in_sheet) = write_heldout(args, &concepts, &heldout, &fluent)?;
    let sheet_count = sheet_classes.len();
    let reference_count = write_reference(args, &concepts, &heldout, &sheet_classes, &fluent)?;

    let mut heldout_names: Vec<&str> = heldout.iter().map(|&i| concepts[i].name.as_str()).collect();
    heldout_names.sort_unstable();
    let manifest = json!({
        "tool": "tools/emoji-corpus",
        "seed": args.seed,
        "heldout_fraction": HELDOUT_FRACTION,
        "counts": {
            "concepts": concepts.len(),
            "concepts_matched_fluent": matched,
            "heldout_concepts": heldout.len(),
            "train_images": train_images,
            "train_images_by_style": {
                "google": counts.google,
                "google_skin_tone": counts.google_skin_tone,
                "fluent_modern": counts.fluent_modern,
                "fluent_high_contrast": counts.fluent_high_contrast,
            },
            "train_caption_rows": caption_rows,
            "heldout_items": sheet_count,
            "heldout_items_unseen": unseen_in_sheet,
            "reference_items": reference_count,
            "skipped_entries_without_google_image": load_stats.skipped_no_image,
            "skipped_skin_variants_without_google_image": load_stats.skipped_skin_no_image,
            "missing_input_files": missing,
        },
        "heldout_concept_names": heldout_names,
        "renamed_duplicate_names": load_stats.renamed_duplicates,
        "files": {
            "train.csv": "image,caption; several rows per image, one per caption sentence",
            "train/": "64x64 RGB PNGs on white: g_ = Google Noto (base and skin tones), fm_ = Fluent modern, fh_ = Fluent high-contrast",
            "heldout.json": "cliptune-sprite-sheet-1 of the Fluent flat style (never trained on); unseen_classes = held-out concepts",
            "reference.json": "cliptune-sprite-sheet-1 of training images (one per concept) whose concepts are absent from heldout.json: a general set for --reference distillation",
        },
        "inputs": {
            "google": package_info(&args.google),
            "fluent": package_info(&args.fluent),
        },
        "licenses": {
            "google": {
                "artwork": "Google Noto Emoji, Apache-2.0 (https://github.com/googlefonts/noto-emoji)",
                "package": "emoji-datasource-google (emoji-data), MIT, Copyright (c) 2013 Cal Henderson",
            },
            "fluent": {
                "artwork": "Microsoft Fluent UI Emoji, MIT, Copyright (c) Microsoft Corporation (https://github.com/microsoft/fluentui-emoji)",
                "package": "fluentui-emoji npm package by Mohammad Abu Mattar, MIT",
            },
        },
    });
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())? + "\n";
    std::fs::write(args.out.join("manifest.json"), text).map_err(|e| format!("manifest.json: {e}"))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Rasterise every train image of the non-held-out concepts; returns the style counts, the
/// CSV text, its row count and the number of input files that were missing (skipped).
fn write_train(
    args: &Args,
    concepts: &[Concept],
    heldout: &HashSet<usize>,
    fluent: &concepts::FluentIndex,
) -> Result<(StyleCounts, String, usize, usize), String> {
    let mut counts = StyleCounts::default();
    let mut csv = String::from("image,caption\n");
    let (mut rows, mut missing, mut done) = (0usize, 0usize, 0usize);
    let google_img = args.google.join("img").join("google").join("64");
    let mut names: HashSet<String> = HashSet::new();
    let mut emit = |file: String, img: image::RgbImage, caps: Vec<String>| -> Result<(), String> {
        // Names come from the input file names; refuse anything that is not a plain name.
        if !file.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) || !names.insert(file.clone()) {
            return Err(format!("unsafe or duplicate train file name {file:?}"));
        }
        let rel = format!("train/{file}");
        img.save(args.out.join(&rel))
            .map_err(|e| format!("{rel}: cannot write PNG: {e}"))?;
        for cap in caps {
            let _ = writeln!(csv, "{},{}", captions::csv_field(&rel), captions::csv_field(&cap));
            rows += 1;
        }
        done += 1;
        if done % 500 == 0 {
            eprintln!("  {done} train images");
        }
        Ok(())
    };
    for (i, c) in concepts.iter().enumerate() {
        if heldout.contains(&i) {
            continue;
        }
        let mut google = |image: &str, name: &str| -> Result<bool, String> {
            let p = google_img.join(image);
            if !p.is_file() {
                eprintln!("warning: {} missing, skipped", p.display());
                missing += 1;
                return Ok(false);
            }
            let stem = image.trim_end_matches(".png");
            emit(
                format!("g_{stem}.png"),
                raster::png_on_white(&p)?,
                captions::captions(c, name),
            )?;
            Ok(true)
        };
        counts.google += usize::from(google(&c.google_image, &c.name)?);
        for v in &c.skin {
            counts.google_skin_tone += usize::from(google(&v.image, &format!("{}: {}", c.name, v.tone))?);
        }
        if let Some(base) = &c.fluent {
            for (style, prefix) in [("modern", "fm"), ("high-contrast", "fh")] {
                if let Some(svg) = fluent.svg(style, base) {
                    emit(
                        format!("{prefix}_{base}.png"),
                        raster::svg_on_white(svg)?,
                        captions::captions(c, &c.name),
                    )?;
                    match style {
                        "modern" => counts.fluent_modern += 1,
                        _ => counts.fluent_high_contrast += 1,
                    }
                }
            }
        }
    }
    Ok((counts, csv, rows, missing))
}

/// The held-out sprite sheet: Fluent `flat` of every held-out concept that has one, then
/// other matched concepts by hash, up to --heldout-classes; sorted by class name. Returns
/// the concepts on the sheet and how many of them are unseen concepts.
fn write_heldout(
    args: &Args,
    concepts: &[Concept],
    heldout: &HashSet<usize>,
    fluent: &concepts::FluentIndex,
) -> Result<(HashSet<usize>, usize), String> {
    let flat = |i: usize| concepts[i].fluent.as_ref().and_then(|b| fluent.svg("flat", b));
    let by_hash = |salt: &'static str| move |&i: &usize| (stable_hash(args.seed, salt, &concepts[i].name), i);
    let mut unseen: Vec<usize> = heldout.iter().copied().filter(|&i| flat(i).is_some()).collect();
    unseen.sort_by_key(by_hash("heldout-concept"));
    if unseen.len() > args.heldout_classes {
        eprintln!(
            "warning: {} held-out concepts have a flat SVG, more than --heldout-classes {}; keeping {}",
            unseen.len(),
            args.heldout_classes,
            args.heldout_classes
        );
        unseen.truncate(args.heldout_classes);
    }
    let mut seen: Vec<usize> = (0..concepts.len())
        .filter(|i| !heldout.contains(i) && flat(*i).is_some())
        .collect();
    seen.sort_by_key(by_hash("heldout-eval"));
    seen.truncate(args.heldout_classes - unseen.len());
    let mut chosen: Vec<usize> = unseen.iter().chain(&seen).copied().collect();
    if chosen.len() < args.heldout_classes {
        eprintln!(
            "warning: only {} concepts have a flat SVG; the held-out sheet has {}",
            chosen.len(),
            chosen.len()
        );
    }
    chosen.sort_by(|&a, &b| concepts[a].name.cmp(&concepts[b].name));

    let classes: Vec<String> = chosen.iter().map(|&i| concepts[i].name.clone()).collect();
    let mut items = Vec::new();
    let mut images = Vec::new();
    for (label, &i) in chosen.iter().enumerate() {
        images.push(raster::svg_on_white(flat(i).expect("chosen for its flat SVG"))?);
        items.push(sprite_sheet::Item {
            label,
            captions: captions::captions(&concepts[i], &concepts[i].name),
        });
    }
    let mut unseen_names: Vec<String> = unseen.iter().map(|&i| concepts[i].name.clone()).collect();
    unseen_names.sort();
    let mut extra = Map::new();
    extra.insert("unseen_classes".into(), json!(unseen_names));
    extra.insert(
        "source".into(),
        json!("Fluent UI Emoji 'flat' style (fluentui-emoji npm, MIT), an art style absent from training; unseen_classes were also held out of training in every style"),
    );
    extra.insert("seed".into(), json!(args.seed));
    sprite_sheet::write(
        &args.out.join("heldout.json"),
        SHEET_COLUMNS,
        &classes,
        &items,
        &images,
        extra,
    )?;
    eprintln!(
        "heldout: {} items ({} unseen concepts) in heldout.png",
        items.len(),
        unseen_names.len()
    );
    Ok((chosen.into_iter().collect(), unseen_names.len()))
}

/// The reference sprite sheet: one training image each of --reference-items concepts
/// chosen by hash among those that are trained on and absent from the held-out sheet (so
/// distilling on it never sees a held-out class name or image), its style (Google, Fluent
/// modern, Fluent high-contrast) chosen by hash too; sorted by class name. Returns the
/// item count.
fn write_reference(
    args: &Args,
    concepts: &[Concept],
    heldout: &HashSet<usize>,
    sheet: &HashSet<usize>,
    fluent: &concepts::FluentIndex,
) -> Result<usize, String> {
    let google_img = args.google.join("img").join("google").join("64");
    let mut pool: Vec<usize> = (0..concepts.len())
        .filter(|i| !heldout.contains(i) && !sheet.contains(i) && google_img.join(&concepts[*i].google_image).is_file())
        .collect();
    pool.sort_by_key(|&i| (stable_hash(args.seed, "reference", &concepts[i].name), i));
    pool.truncate(args.reference_items);
    if pool.len() < args.reference_items {
        eprintln!(
            "warning: only {} concepts are trained on and absent from the held-out sheet; the reference sheet has {}",
            pool.len(),
            pool.len()
        );
    }
    pool.sort_by(|&a, &b| concepts[a].name.cmp(&concepts[b].name));
    let classes: Vec<String> = pool.iter().map(|&i| concepts[i].name.clone()).collect();
    let (mut items, mut images) = (Vec::new(), Vec::new());
    for (label, &i) in pool.iter().enumerate() {
        let c = &concepts[i];
        let styles: Vec<&PathBuf> = c
            .fluent
            .as_ref()
            .map(|b| ["modern", "high-contrast"].iter().filter_map(|st| fluent.svg(st, b)).collect())
            .unwrap_or_default();
        let pick = (stable_hash(args.seed, "reference-style", &c.name) % (1 + styles.len() as u64)) as usize;
        images.push(match pick {
            0 => raster::png_on_white(&google_img.join(&c.google_image))?,
            k => raster::svg_on_white(styles[k - 1])?,
        });
        items.push(sprite_sheet::Item {
            label,
            captions: captions::captions(c, &c.name),
        });
    }
    let mut extra = Map::new();
    extra.insert(
        "source".into(),
        json!("cliptune-mini's training images (Google Noto, Fluent modern or high-contrast), one per concept, none of whose concepts is on heldout.json: a general reference set for --reference"),
    );
    extra.insert("seed".into(), json!(args.seed));
    sprite_sheet::write(&args.out.join("reference.json"), 16, &classes, &items, &images, extra)?;
    eprintln!("reference: {} items in reference.png", items.len());
    Ok(items.len())
}

fn main() {
    let result = parse_args().and_then(|a| run(&a));
    if let Err(e) = result {
        eprintln!("emoji-corpus: {e}");
        std::process::exit(1);
    }
}
