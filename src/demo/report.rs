//! What `cliptune demo` shows: the aligned table (stdout), `results.json`, the two bar
//! charts and the frontier (PNG files, and inline SVG in `report.html`), plus the
//! `cliptune_demo.json` marker.
use std::fmt::Write;
use std::path::Path;

use serde_json::{json, Value};

use super::methods::{
    DEMO_FEATURE_PRESERVATION, DEMO_FULL_WISE, DEMO_KGCOOP, DEMO_KGCOOP_LR, DEMO_LORA_RANK, DEMO_LORA_REFERENCE,
    DEMO_LORA_REFERENCE_BATCH, DEMO_NO_REFERENCE_KGCOOP, DEMO_NO_REFERENCE_LORA_FEATURE_PRESERVATION,
    DEMO_NO_REFERENCE_LORA_RANK, DEMO_PROMPT_REFERENCE,
};
use super::{DemoResult, DemoRow, MARKER, TARGET_TEMPLATE, TI_CLASS, TI_WORD};
use crate::error::Result;
use crate::report::chart::{inline_svg, render, BarChart, BarGroup, Figure, ScatterChart, ScatterPoint, PALETTE};
use crate::report::html::esc;
use crate::report::{format_utc, retention_class};
use crate::tensor::io::write_atomic;

/// What each method trains, for the report's notes.
fn description(key: &str) -> String {
    match key {
        "zero-shot" => format!(
            "Nothing. Each test image goes to the class whose prompt \"{TARGET_TEMPLATE}\" is closest in the shared embedding space."
        ),
        "prompt" => "CoOp: context vectors initialised from the words of the model's own template (cliptune-mini's \
                     \"an emoji of {}.\": 3 vectors; \"a photo of a\" for a model without templates.txt) and \
                     shared by all classes replace the prompt's words; both encoders stay frozen. Retention applies the learned context to the held-out \
                     class names, against the base model's own templates (the note gives the untrained \
                     initial prompt's ratio); retrieval captions do not pass through the context, so retrieval is \
                     unchanged."
            .into(),
        "linear-probe" => "A logistic-regression classifier on the frozen image embeddings (L2 strength swept on a \
                           validation split; the steps column counts the strengths tried). The encoders are unchanged, \
                           so retention is 1.0 by construction; the probe only knows the target classes."
            .into(),
        "lora-text" => "Rank-8 low-rank updates (alpha 16, lr 1e-3) on the query and value projections of every \
                        text-tower attention layer, trained with cross-entropy against the class prompts."
            .into(),
        "lora-vision" => "The same LoRA updates on the vision tower only: image embeddings move, the text side \
                          stays as pretrained."
            .into(),
        "lora-both" => "LoRA on the query and value projections of both towers.".into(),
        "lora-both-fp" => format!(
            "Rank-{DEMO_LORA_RANK} LoRA (alpha {}) on both towers, regularised: where the demo has a reference set \
             (cliptune-mini's reference.json: general emoji images, none of them a held-out class), the loss adds \
             {DEMO_LORA_REFERENCE} x the mean squared distance between the adapted and the frozen model's image \
             embeddings of {DEMO_LORA_REFERENCE_BATCH} reference images a step (feature preservation on general data, \
             after LDIFS), so the update serves the target without moving what the model does elsewhere; without \
             one, rank {DEMO_NO_REFERENCE_LORA_RANK} with {DEMO_NO_REFERENCE_LORA_FEATURE_PRESERVATION} x that distance \
             on the training batch's image and class-prompt embeddings.",
            2 * DEMO_LORA_RANK
        ),
        "prompt-kgcoop" => format!(
            "CoOp (lr {DEMO_KGCOOP_LR:e}) with the KgCoOp term: the loss adds {DEMO_KGCOOP} x the mean squared distance \
             between the learned prompts' class embeddings and the hand-crafted ones (the model's own template, \
             which CoOp starts from, computed once by the frozen model), and, where the demo has a reference set \
             (cliptune-mini's reference.json: general classes, none of them held out), {DEMO_PROMPT_REFERENCE} x the \
             same distance on a rotating batch of the reference set's class names, so the context stays a good \
             prompt for names it was never trained on; without one, KgCoOp weight {DEMO_NO_REFERENCE_KGCOOP} at the \
             trainer's lr."
        ),
        "full-fp" => format!(
            "Full fine-tuning with feature preservation (weight {DEMO_FEATURE_PRESERVATION}), then \
             WiSE-FT: the weights averaged with alpha {DEMO_FULL_WISE} toward the fine-tuned ones."
        ),
        "textual-inversion" => format!(
            "One new word, {TI_WORD}, whose token embedding is the only thing trained: the {TI_CLASS} training \
             images are captioned \"{}\" and the other classes' images with their own prompts, so the word is \
             pulled toward its class and away from the rest. Target top-1 is zero-shot with the class {TI_CLASS:?} \
             named by the new word; other texts are unchanged, so retention is 1.0.",
            TARGET_TEMPLATE.replace("{}", TI_WORD)
        ),
        "full" => "Every weight of both towers (f32, lr 1e-4), cross-entropy against the class prompts, then WiSE-FT: the \
                   weights averaged halfway (alpha 0.5) back toward the base model's."
            .into(),
        _ => String::new(),
    }
}

fn pct(x: f32) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut o = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(c);
    }
    o
}

/// The aligned table printed at the end of the run.
pub fn table(r: &DemoResult) -> String {
    let mut o = String::new();
    let w = r.rows.iter().map(|x| x.method.len()).max().unwrap_or(6).max(6);
    let _ = writeln!(
        o,
        "{:<w$}  {:>10}  {:>8}  {:>6}  {:>12}  {:>14}  {:>14}  note",
        "method", "params", "train s", "steps", "target top-1", "zero-shot ret", "retrieval ret"
    );
    for x in &r.rows {
        let _ = writeln!(
            o,
            "{:<w$}  {:>10}  {:>8.1}  {:>6}  {:>12}  {:>14.3}  {:>14.3}  {}",
            x.method,
            thousands(x.trainable),
            x.train_seconds,
            x.steps,
            pct(x.target_top1),
            x.zero_shot_retention,
            x.retrieval_retention,
            x.note
        );
    }
    o
}

fn row_json(x: &DemoRow) -> Value {
    json!({
        "key": x.key, "method": x.method, "trainable_params": x.trainable,
        "train_seconds": x.train_seconds, "steps": x.steps,
        "target_top1": x.target_top1,
        "heldout_zero_shot_top1": x.heldout_top1, "heldout_retrieval_r1": x.heldout_r1,
        "zero_shot_retention": x.zero_shot_retention, "retrieval_retention": x.retrieval_retention,
        "note": x.note, "adapter": x.adapter,
    })
}

/// `results.json`: every row with absolute values and ratios, plus the run's setting.
pub fn results_json(r: &DemoResult) -> Value {
    json!({
        "cliptune_version": env!("CARGO_PKG_VERSION"),
        "model": r.model,
        "device": r.device,
        "info": r.info,
        "rows": r.rows.iter().map(row_json).collect::<Vec<_>>(),
        "textual_inversion": {"class": r.ti.class, "word": r.ti.word, "recall_before": r.ti.before, "recall_after": r.ti.after},
        "total_seconds": r.seconds,
    })
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    json!({
        "os": std::env::consts::OS, "arch": std::env::consts::ARCH, "cpu": cpu,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    })
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The three charts, `results.json`, `report.html` and the marker into `dir`.
pub(super) fn write_all(dir: &Path, r: &mut DemoResult) -> Result<()> {
    let generated = format_utc(now_unix());
    if let Some(o) = r.info.as_object_mut() {
        o.insert("generated".into(), json!(generated));
        o.insert("machine".into(), machine());
    }
    let groups = |f: &dyn Fn(&DemoRow) -> Vec<Option<f64>>| -> Vec<BarGroup> {
        r.rows
            .iter()
            .map(|x| BarGroup {
                labels: label_lines(&x.method),
                values: f(x),
            })
            .collect()
    };
    let width = 160 + 110 * r.rows.len() as u32;
    let top1 = BarChart {
        title: "Fashion-MNIST test top-1 after each method".into(),
        y_label: "top-1 (%)".into(),
        series: vec![("target top-1".into(), [31, 119, 180])],
        groups: groups(&|x| vec![Some(100.0 * x.target_top1 as f64)]),
        width,
        height: 380,
    };
    let ret = BarChart {
        title: "Retention on the held-out emoji set (base = 100)".into(),
        y_label: "% of the base model".into(),
        series: vec![
            ("zero-shot top-1".into(), [44, 160, 44]),
            ("retrieval R@1".into(), [255, 127, 14]),
        ],
        groups: groups(&|x| {
            vec![
                Some(100.0 * x.zero_shot_retention as f64),
                Some(100.0 * x.retrieval_retention as f64),
            ]
        }),
        width,
        height: 380,
    };
    // All three drawn before any is written: a drawing error leaves no partial set.
    let mut svgs = vec![];
    let mut pngs = vec![];
    for (name, fig) in [
        ("target_top1.png", Figure::Bars(top1)),
        ("retention.png", Figure::Bars(ret)),
        ("frontier.png", Figure::Scatter(frontier(&r.rows))),
    ] {
        let p = dir.join(name);
        let pic = render(&fig, &p.display().to_string())?;
        svgs.push(pic.svg);
        pngs.push((p, pic.png));
    }
    for (p, png) in &pngs {
        write_atomic(p, png)?;
    }
    let results = results_json(r);
    write_atomic(
        &dir.join("results.json"),
        serde_json::to_string_pretty(&results).unwrap_or_default().as_bytes(),
    )?;
    write_atomic(&dir.join("report.html"), html(r, &generated, &svgs).as_bytes())?;
    let marker = json!({
        "what": "cliptune demo report: `cliptune demo --out` may replace this directory",
        "cliptune_version": env!("CARGO_PKG_VERSION"),
        "generated": generated,
        "model": r.model,
    });
    write_atomic(
        &dir.join(MARKER),
        serde_json::to_string_pretty(&marker).unwrap_or_default().as_bytes(),
    )
}

/// Target top-1 against zero-shot retention, one labelled point per row (up and to the
/// right is better): the trade-off every method makes, in one picture. The zero-shot row
/// is the baseline every method starts from.
pub fn frontier(rows: &[DemoRow]) -> ScatterChart {
    let points = rows
        .iter()
        .enumerate()
        .map(|(i, x)| {
            // Past the palette, the same hues again, darker.
            let c = PALETTE[i % PALETTE.len()];
            let k = if i < PALETTE.len() { 1.0 } else { 0.6 };
            let baseline = x.key == "zero-shot";
            ScatterPoint {
                label: if baseline {
                    format!("{} (baseline)", x.method)
                } else {
                    x.method.clone()
                },
                x: x.zero_shot_retention as f64,
                y: 100.0 * x.target_top1 as f64,
                color: c.map(|v| (v as f32 * k) as u8),
                baseline,
            }
        })
        .collect();
    ScatterChart {
        title: "Target top-1 against zero-shot retention".into(),
        x_label: "zero-shot retention on the held-out set (after / before; 1.0 = nothing lost)".into(),
        y_label: "target top-1 on Fashion-MNIST test (%)".into(),
        points,
        width: 900,
        height: 560,
    }
}

/// A method name split into up to two label lines under its bars.
fn label_lines(s: &str) -> Vec<String> {
    let words: Vec<&str> = s.split(' ').collect();
    if s.len() <= 16 || words.len() < 2 {
        return vec![s.to_string()];
    }
    let mut best = 1;
    for k in 1..words.len() {
        let a = words[..k].join(" ").len();
        let b = words[k..].join(" ").len();
        let cur = words[..best].join(" ").len().max(words[best..].join(" ").len());
        if a.max(b) < cur {
            best = k;
        }
    }
    vec![words[..best].join(" "), words[best..].join(" ")]
}

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ddd;padding:.3em .6em}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.green{background:#d5f5dd}td.amber{background:#fff1c2}td.red{background:#ffd6d6}
.meta{color:#666}dt{font-weight:600;margin-top:.6em}figure{margin:1em 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#666;font-size:.9em}";

/// `svgs`: the target top-1, retention and frontier charts, in that order.
fn html(r: &DemoResult, generated: &str, svgs: &[String]) -> String {
    let i = &r.info;
    let s = |v: &Value| v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
    let mut o = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>cliptune demo</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n\
         <h1>cliptune demo</h1>\n<p class=\"meta\">Generated {} by cliptune {} in {:.0} s.</p>\n",
        esc(generated),
        env!("CARGO_PKG_VERSION"),
        r.seconds
    );
    let m = &i["machine"];
    let _ = write!(
        o,
        "<table>\n<tr><th>model</th><td>{}</td></tr>\n<tr><th>target domain</th><td>{}: {} training images ({} per class) \
         in <code>{}</code>, {} test images in <code>{}</code>; prompt <code>{}</code></td></tr>\n\
         <tr><th>held-out set</th><td><code>{}</code>: {} images of {} classes, {} captions; zero-shot with {} ({} template(s))</td></tr>\n\
         <tr><th>machine</th><td>{} ({} threads, {} {}); device {}</td></tr>\n</table>\n",
        esc(&r.model),
        esc(&s(&i["target"]["dataset"])),
        i["target"]["train_images"],
        i["target"]["shots_per_class"],
        esc(&s(&i["target"]["train"])),
        i["target"]["test_images"],
        esc(&s(&i["target"]["test"])),
        esc(TARGET_TEMPLATE),
        esc(&s(&i["heldout"]["file"])),
        i["heldout"]["images"],
        i["heldout"]["classes"],
        i["heldout"]["captions"],
        esc(&s(&i["heldout"]["templates"])),
        i["heldout"]["template_count"],
        esc(&s(&m["cpu"])),
        m["threads"],
        esc(&s(&m["os"])),
        esc(&s(&m["arch"])),
        esc(&r.device),
    );
    o.push_str(
        "<h2>Results</h2>\n<table>\n<tr><th>method</th><th>trainable parameters</th><th>training s</th><th>steps</th>\
         <th>target top-1</th><th>held-out zero-shot top-1</th><th>zero-shot retention</th>\
         <th>held-out retrieval R@1</th><th>retrieval retention</th><th>note</th></tr>\n",
    );
    for x in &r.rows {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num {}\">{:.3}</td>\
             <td class=\"num\">{}</td><td class=\"num {}\">{:.3}</td><td>{}</td></tr>",
            esc(&x.method),
            thousands(x.trainable),
            x.train_seconds,
            x.steps,
            pct(x.target_top1),
            pct(x.heldout_top1),
            retention_class(x.zero_shot_retention as f64),
            x.zero_shot_retention,
            pct(x.heldout_r1),
            retention_class(x.retrieval_retention as f64),
            x.retrieval_retention,
            esc(&x.note)
        );
    }
    o.push_str("</table>\n");
    let _ = writeln!(
        o,
        "<p>Retention is the held-out metric after the method divided by the base model's (1.0: nothing lost). \
         Textual inversion: recall of {:?} {} before, {} after naming it {}.</p>",
        r.ti.class,
        pct(r.ti.before),
        pct(r.ti.after),
        esc(&r.ti.word)
    );
    for ((png, alt), svg) in [
        ("target_top1.png", "target top-1 per method"),
        ("retention.png", "retention per method"),
        (
            "frontier.png",
            "target top-1 against zero-shot retention, one point per method; up and to the right is better",
        ),
    ]
    .into_iter()
    .zip(svgs)
    {
        let _ = writeln!(
            o,
            "<figure>{}<figcaption>{} (PNG: <a href=\"{png}\">{png}</a>)</figcaption></figure>",
            inline_svg(svg, &esc(alt)),
            esc(alt)
        );
    }
    o.push_str("<h2>What each method trains</h2>\n<dl>\n");
    for x in &r.rows {
        let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", esc(&x.method), esc(&description(&x.key)));
    }
    o.push_str(
        "</dl>\n<p class=\"meta\">Files: <code>results.json</code> (every number), <code>data/</code> (the sprite sheets and \
         caption file trained on), <code>adapters/</code> (each method's output: <code>cliptune eval --adapter</code> \
         loads them).</p>\n</body>\n</html>\n",
    );
    o
}
