//! `cliptune demo`: the whole story in one command. A small CLIP (by default the embedded
//! cliptune-mini, pretrained on emoji artwork) meets a new domain (Fashion-MNIST, a few
//! shots per class); every fine-tuning method is trained with [`crate::train::run::train`]
//! and measured on the target test set and on the model's own held-out emoji set
//! (retention: zero-shot top-1 and retrieval R@1 relative to the base model).
//!
//! The report directory (`--out`) holds `model/` (the embedded model as written out),
//! `data/` (the exact sprite sheets and caption file trained on), `adapters/<method>/`,
//! `report.html`, `target_top1.png`, `retention.png`, `results.json` and the
//! `cliptune_demo.json` marker. It is built in a temporary directory beside `--out` and
//! renamed into place at the end, so a previous report is replaced only by a complete one.
mod bench;
mod data;
pub mod embedded;
mod methods;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use self::bench::{Bench, Measured};
use self::methods::{run_method, Ctx, PLANS};
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::zero_shot::templates;
use crate::clip::{Clip, WeightStorage};
use crate::data::fashion_mnist::Split;
use crate::data::sprite_sheet::{read_sprite_sheet, write_sprite_sheet};
use crate::error::{Error, Result};
use crate::eval::suite::ImageSource;
use crate::train::objectives::kgcoop::HandTemplate;
use crate::Device;

pub use report::{frontier, results_json, table};

/// The marker file of a demo report directory (`--out` may replace a directory holding it).
pub const MARKER: &str = "cliptune_demo.json";
/// The target-domain prompt: the one LoRA/full fine-tuning train against and every row
/// but CoOp's is measured on (CoOp starts from the model's own template, as `cliptune
/// train` does, and is measured on its learned prompt).
pub const TARGET_TEMPLATE: &str = "a photo of a {}.";
/// The class textual inversion renames, and its new word.
pub const TI_CLASS: &str = "ankle boot";
pub const TI_WORD: &str = "<ankle-boot>";

pub struct DemoArgs {
    /// A Hugging Face CLIPModel directory; None: the embedded cliptune-mini.
    pub model: Option<PathBuf>,
    /// Held-out sprite sheet (labels + captions) for retention; None: `MODEL/heldout.json`.
    pub heldout: Option<PathBuf>,
    /// General sprite sheet (classes + captions) for the regularised rows' reference term;
    /// None: `MODEL/reference.json` where the model ships one, else no reference term.
    pub reference: Option<PathBuf>,
    pub out: PathBuf,
    /// Training images per class (the embedded subset has 16).
    pub shots: usize,
    /// Test images per class (the embedded subset has 100).
    pub test_per_class: usize,
    /// Epochs for every method (default: per method, sized for ~10 minutes on 2 cores).
    pub epochs: Option<usize>,
    pub max_steps: Option<usize>,
    pub device: Device,
    /// The trainer's progress line.
    pub progress: bool,
    /// Only these rows (keys as in [`DemoRow::key`]); None: every method.
    pub methods: Option<Vec<String>>,
}

impl DemoArgs {
    /// The defaults of `cliptune demo` writing into `out`.
    pub fn new(out: impl Into<PathBuf>) -> DemoArgs {
        DemoArgs {
            model: None,
            heldout: None,
            reference: None,
            out: out.into(),
            shots: embedded::TRAIN_PER_CLASS,
            test_per_class: embedded::TEST_PER_CLASS,
            epochs: None,
            max_steps: None,
            device: Device::Cpu,
            progress: true,
            methods: None,
        }
    }
}

/// One method's outcome.
#[derive(Clone, Debug)]
pub struct DemoRow {
    /// Short id: zero-shot, prompt, linear-probe, lora-text, lora-vision, lora-both,
    /// textual-inversion, full.
    pub key: String,
    pub method: String,
    pub trainable: usize,
    pub train_seconds: f32,
    pub steps: usize,
    /// Top-1 on the target test set.
    pub target_top1: f32,
    /// Held-out zero-shot top-1 and retrieval R@1 (mean of both directions).
    pub heldout_top1: f32,
    pub heldout_r1: f32,
    /// Relative to the base model (1.0 = unchanged).
    pub zero_shot_retention: f32,
    pub retrieval_retention: f32,
    pub note: String,
    /// The adapter (or model) directory, relative to the report directory.
    pub adapter: Option<String>,
}

/// Recall of the renamed class before and after textual inversion.
#[derive(Clone, Debug)]
pub struct TiRecall {
    pub class: String,
    pub word: String,
    pub before: f32,
    pub after: f32,
}

#[derive(Clone, Debug)]
pub struct DemoResult {
    pub rows: Vec<DemoRow>,
    pub out: PathBuf,
    /// "cliptune-mini (embedded)" or the model directory.
    pub model: String,
    pub device: String,
    pub ti: TiRecall,
    /// Everything else the report shows (data, templates, machine, date).
    pub info: serde_json::Value,
    pub seconds: f32,
}

/// Run every method and write the report; see the module docs.
pub fn run_demo(a: &DemoArgs) -> Result<DemoResult> {
    let t0 = Instant::now();
    check_out(&a.out)?;
    if a.model.is_none() {
        embedded::require_mini()?;
    }
    if a.shots == 0 || a.test_per_class == 0 {
        return Err(Error::invalid("demo: --shots and --test-per-class must be at least 1"));
    }
    selected(a.methods.as_deref())?;
    let tmp = sibling(&a.out, "tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
    let built = build(a, &tmp, t0);
    let mut res = match built {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    repoint_adapters(&tmp, &a.out)?;
    replace_dir(&tmp, &a.out)?;
    res.out = a.out.clone();
    res.seconds = t0.elapsed().as_secs_f32();
    Ok(res)
}

/// `--out` may be new, empty, or a previous demo report.
pub fn check_out(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(Error::invalid(format!(
            "--out {}: is a file, not a directory; choose another --out",
            out.display()
        )));
    }
    let empty = std::fs::read_dir(out)
        .map_err(|e| Error::io(out.display(), e))?
        .next()
        .is_none();
    if !empty && !out.join(MARKER).is_file() {
        return Err(Error::invalid(format!(
            "--out {}: exists, is not empty and holds no {MARKER} (it is not a cliptune demo report); choose another --out",
            out.display()
        )));
    }
    Ok(())
}

/// `DIR/.NAME.<what>-<pid>` beside `path`.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "demo-report".into());
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join(format!(".{name}.{what}-{}", std::process::id()))
}

/// The adapters name their base model by path: the embedded model's in the temporary
/// directory becomes `OUT/model` once renamed.
fn repoint_adapters(tmp: &Path, out: &Path) -> Result<()> {
    let (from, to) = (
        json_str(&tmp.display().to_string()),
        json_str(&out.display().to_string()),
    );
    let dir = tmp.join("adapters");
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(dir.display(), e))? {
        let d = entry.map_err(|e| Error::io(dir.display(), e))?.path();
        for name in ["cliptune_adapter.json", "adapter_config.json"] {
            let p = d.join(name);
            if let Ok(text) = std::fs::read_to_string(&p) {
                if text.contains(&from) {
                    crate::tensor::io::write_atomic(&p, text.replace(&from, &to).as_bytes())?;
                }
            }
        }
    }
    Ok(())
}

/// A path as it appears inside a JSON string (without the quotes).
fn json_str(s: &str) -> String {
    let q = serde_json::Value::from(s).to_string();
    q[1..q.len() - 1].to_string()
}

/// Move the finished `tmp` to `out`, replacing a previous report only once `tmp` is complete.
fn replace_dir(tmp: &Path, out: &Path) -> Result<()> {
    let old = sibling(out, "old");
    let had_old = out.exists();
    if had_old {
        std::fs::rename(out, &old)
            .map_err(|e| Error::io(out.display(), format!("moving the previous report aside: {e}")))?;
    }
    if let Err(e) = std::fs::rename(tmp, out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        return Err(Error::io(
            out.display(),
            format!(
                "moving the finished report into place: {e} (it is in {})",
                tmp.display()
            ),
        ));
    }
    if had_old {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(old.display(), e))?;
    }
    Ok(())
}

/// Stage `i` of `of` (model and data, zero-shot, one per method, the report).
fn stage(i: usize, of: usize, what: &str) {
    eprintln!("\n[demo] stage {i}/{of}: {what}");
}

/// The plans `--methods` selects, in the table's order; an unknown key is an error
/// listing the known ones.
fn selected(methods: Option<&[String]>) -> Result<Vec<&'static methods::Plan>> {
    let Some(keys) = methods else {
        return Ok(PLANS.iter().collect());
    };
    for k in keys {
        if !PLANS.iter().any(|p| p.key == k) {
            let known: Vec<&str> = PLANS.iter().map(|p| p.key).collect();
            return Err(Error::invalid(format!(
                "demo --methods: unknown method '{k}'; known: {}",
                known.join(", ")
            )));
        }
    }
    Ok(PLANS.iter().filter(|p| keys.iter().any(|k| k == p.key)).collect())
}

/// `p` as it will be once the temporary directory `tmp` is renamed to `out`.
fn shown(p: &Path, tmp: &Path, out: &Path) -> PathBuf {
    p.strip_prefix(tmp)
        .map(|r| out.join(r))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// A held-out metric relative to the base model's (1.0 when the base scored 0).
fn ratio(now: f32, before: f32) -> f32 {
    if before > 0.0 {
        now / before
    } else {
        1.0
    }
}

fn row(
    key: &str,
    method: &str,
    s: Option<&crate::train::run::TrainSummary>,
    m: &Measured,
    b: &Measured,
    note: String,
) -> DemoRow {
    DemoRow {
        key: key.into(),
        method: method.into(),
        trainable: s.map_or(0, |s| s.trainable),
        train_seconds: s.map_or(0.0, |s| s.seconds),
        steps: s.map_or(0, |s| s.steps),
        target_top1: m.target_top1,
        heldout_top1: m.held_top1,
        heldout_r1: m.held_r1,
        zero_shot_retention: ratio(m.held_top1, b.held_top1),
        retrieval_retention: ratio(m.held_r1, b.held_r1),
        note,
        adapter: s.map(|_| format!("adapters/{key}")),
    }
}

fn build(a: &DemoArgs, tmp: &Path, t0: Instant) -> Result<DemoResult> {
    let plans = selected(a.methods.as_deref())?;
    let stages = plans.len() + 3;
    stage(1, stages, "model and data");
    let (model_dir, model_label) = match &a.model {
        Some(d) => (d.clone(), d.display().to_string()),
        None => {
            let d = tmp.join("model");
            embedded::write_mini(&d)?;
            eprintln!(
                "[demo] wrote the embedded cliptune-mini to {}",
                a.out.join("model").display()
            );
            (d, "cliptune-mini (embedded)".to_string())
        }
    };
    let heldout = a.heldout.clone().unwrap_or_else(|| model_dir.join("heldout.json"));
    if !heldout.is_file() {
        return Err(Error::invalid(format!(
            "demo: no held-out set: {} does not exist (a model directory for the demo carries heldout.json + \
             heldout.png, a sprite sheet of its own domain with captions; or pass --heldout FILE.json)",
            heldout.display()
        )));
    }
    let reference = match &a.reference {
        Some(r) if !r.is_file() => {
            return Err(Error::invalid(format!(
                "demo: --reference {}: no such file (a sprite sheet with classes and captions)",
                r.display()
            )))
        }
        Some(r) => Some(r.clone()),
        None => Some(model_dir.join("reference.json")).filter(|r| r.is_file()),
    };
    let templates_file = model_dir.join("templates.txt");
    let (held_templates, held_templates_from) = if templates_file.is_file() {
        (
            templates(&templates_file.display().to_string())?,
            "templates.txt of the model",
        )
    } else {
        (templates("openai")?, "the 80 OpenAI templates")
    };
    let train_sheet = data::target_subset(Split::Train, a.shots, "--shots")?;
    let test_sheet = data::target_subset(Split::Test, a.test_per_class, "--test-per-class")?;
    let train_data = tmp.join("data/fashion-mnist-train.json");
    write_sprite_sheet(&train_data, &train_sheet)?;
    write_sprite_sheet(&tmp.join("data/fashion-mnist-test.json"), &test_sheet)?;
    let ti_data = data::write_ti_captions(&tmp.join("data/textual-inversion"), &train_sheet)?;
    let held = read_sprite_sheet(&heldout)?;
    let (mut held_captioned, mut held_captions, mut held_owner) = (vec![], vec![], vec![]);
    for (i, it) in held.items.iter().enumerate().filter(|(_, it)| !it.captions.is_empty()) {
        for c in &it.captions {
            held_captions.push(c.clone());
            held_owner.push(held_captioned.len());
        }
        held_captioned.push(i);
    }
    if held_captioned.is_empty() {
        return Err(Error::invalid(format!(
            "{}: no item has captions; the demo measures retrieval retention on them",
            heldout.display()
        )));
    }
    eprintln!(
        "[demo] target: Fashion-MNIST, {} training images ({} per class), {} test images; held-out: {} ({} images, \
         {} classes, {} captions)",
        train_sheet.len(),
        a.shots,
        test_sheet.len(),
        shown(&heldout, tmp, &a.out).display(),
        held.len(),
        held.classes.len(),
        held_captions.len()
    );
    if let Some(r) = &reference {
        let sheet = read_sprite_sheet(r)?;
        let held_names: std::collections::HashSet<&str> = held.classes.iter().map(String::as_str).collect();
        let shared = sheet.classes.iter().filter(|c| held_names.contains(c.as_str())).count();
        eprintln!(
            "[demo] reference set for the regularised rows: {} ({} images, {} classes{})",
            shown(r, tmp, &a.out).display(),
            sheet.len(),
            sheet.classes.len(),
            if shared == 0 {
                ", none of them a held-out class".to_string()
            } else {
                format!(
                    "; warning: {shared} of them are held-out classes, so retention is not measured on classes the \
                     reference term left alone"
                )
            }
        );
    } else {
        eprintln!("[demo] no reference set (the model ships no reference.json; --reference FILE gives one): the regularised rows run without the reference term");
    }
    let base = Clip::load(&model_dir, &a.device, WeightStorage::AsStored)?;
    let tok = ClipTokenizer::for_model_dir(&model_dir)?;
    let bench = Bench {
        model_dir: model_dir.clone(),
        p: base.config.projection_dim,
        target_classes: train_sheet.classes.clone(),
        target_templates: vec![TARGET_TEMPLATE.to_string()],
        test_labels: test_sheet.labels(),
        test: ImageSource::Memory(test_sheet.images),
        held_classes: held.classes.clone(),
        held_templates: held_templates.clone(),
        held_labels: held.labels(),
        held: ImageSource::Memory(held.images),
        held_captioned,
        held_captions,
        held_owner,
    };

    stage(2, stages, "zero-shot (the base model)");
    let base_vision = bench.vision(&base)?;
    let b = bench.measure(&base, &tok, &base_vision, None, None)?;
    eprintln!(
        "[demo] base: target top-1 {:.2}%, held-out zero-shot top-1 {:.2}%, retrieval R@1 {:.2}%",
        100.0 * b.target_top1,
        100.0 * b.held_top1,
        100.0 * b.held_r1
    );
    let mut rows = vec![row(
        "zero-shot",
        "zero-shot (base)",
        None,
        &b,
        &b,
        "the base model".into(),
    )];
    let ti_class = bench
        .target_classes
        .iter()
        .position(|c| c == TI_CLASS)
        .ok_or_else(|| Error::invalid(format!("demo: the target classes have no {TI_CLASS:?}")))?;
    let mut ti = TiRecall {
        class: TI_CLASS.into(),
        word: TI_WORD.into(),
        before: b.recall[ti_class],
        after: f32::NAN,
    };
    let ctx = Ctx {
        args: a,
        model_dir: &model_dir,
        base: &base,
        tok: &tok,
        bench: &bench,
        base_vision: &base_vision,
        base_m: &b,
        train_data,
        ti_data,
        ti_class,
        hand: HandTemplate::of_model(&model_dir)?,
        reference: reference.clone(),
    };
    for (i, plan) in plans.into_iter().enumerate() {
        stage(3 + i, stages, plan.label);
        let (s, m, note) = run_method(&ctx, plan, &tmp.join("adapters").join(plan.key))?;
        eprintln!(
            "[demo] {}: target top-1 {:.2}%, held-out zero-shot {:.2}%, retrieval R@1 {:.2}%  ({} steps, {:.1}s)",
            plan.label,
            100.0 * m.target_top1,
            100.0 * m.held_top1,
            100.0 * m.held_r1,
            s.steps,
            s.seconds
        );
        if plan.key == "textual-inversion" {
            ti.after = m.recall[ti_class];
        }
        rows.push(row(plan.key, plan.label, Some(&s), &m, &b, note));
    }

    stage(stages, stages, "report");
    let info = serde_json::json!({
        "model_dir": if a.model.is_some() { model_dir.display().to_string() } else { "model".to_string() },
        "target": {
            "dataset": "Fashion-MNIST (Zalando Research, MIT licence)",
            "train": "data/fashion-mnist-train.json", "train_images": train_sheet.len(),
            "shots_per_class": a.shots,
            "test": "data/fashion-mnist-test.json", "test_images": bench.test_labels.len(),
            "test_per_class": a.test_per_class,
            "template": TARGET_TEMPLATE,
            "coop_template": ctx.hand.template,
            "classes": bench.target_classes,
        },
        "heldout": {
            "file": if a.heldout.is_none() && a.model.is_none() { "model/heldout.json".to_string() } else { heldout.display().to_string() },
            "images": bench.held_labels.len(), "classes": bench.held_classes.len(),
            "captioned_images": bench.held_captioned.len(), "captions": bench.held_captions.len(),
            "templates": held_templates_from, "template_count": held_templates.len(),
        },
        "base": {"target_top1": b.target_top1, "heldout_top1": b.held_top1, "heldout_r1": b.held_r1},
        "schedule": {"epochs": a.epochs, "max_steps": a.max_steps},
    });
    let mut res = DemoResult {
        rows,
        out: tmp.to_path_buf(),
        model: model_label,
        device: a.device.name(),
        ti,
        info,
        seconds: t0.elapsed().as_secs_f32(),
    };
    report::write_all(tmp, &mut res)?;
    Ok(res)
}
