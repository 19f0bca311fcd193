//! The report page: one self-contained HTML file (inline CSS, no scripts) with its charts
//! inline as SVG; the same charts as PNG sit next to it, linked by relative file name.
use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::{
    retention_class, Comparison, DatasetRow, Kind, Metric, TargetChoice, TrainLog, RETENTION_AMBER, RETENTION_GREEN,
};

pub struct Page<'a> {
    pub comparison: &'a Comparison,
    pub before_path: &'a Path,
    pub after_path: &'a Path,
    pub logs: &'a [TrainLog],
    /// `[retention bars, curves (with logs)]`, PNGs next to the page.
    pub charts: &'a [PathBuf],
    /// The same charts as SVG, in the same order, inlined in the page.
    pub svgs: &'a [&'a str],
    pub generated: &'a str,
}

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A file name as a relative URL (percent-encoding all but unreserved characters).
fn url_file(p: &Path) -> String {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn pct(x: Option<f32>) -> String {
    x.map(|x| format!("{:.2}", 100.0 * x))
        .unwrap_or_else(|| "&mdash;".into())
}

fn delta_cell(m: &Metric) -> String {
    match m.delta_pp() {
        Some(d) => {
            let class = if d > 0.005 {
                "up"
            } else if d < -0.005 {
                "down"
            } else {
                "flat"
            };
            format!("<td class=\"num {class}\">{d:+.2}</td>")
        }
        None => "<td class=\"num\">&mdash;</td>".into(),
    }
}

fn metric_cells(m: &Metric) -> String {
    format!(
        "<td class=\"num\">{}</td><td class=\"num\">{}</td>{}",
        pct(m.before),
        pct(m.after),
        delta_cell(m)
    )
}

fn role_cell(r: &DatasetRow, rowspan: usize) -> String {
    let (class, text) = if r.target {
        ("target", "target")
    } else {
        ("retention", "retention")
    };
    format!("<td rowspan=\"{rowspan}\"><span class=\"role {class}\">{text}</span></td>")
}

fn ratio_cell(r: &DatasetRow, m: &Metric) -> String {
    match m.ratio() {
        Some(x) if r.target => format!("<td class=\"num\" title=\"target dataset: gain, not retention\">{x:.3}</td>"),
        Some(x) => format!("<td class=\"num ret {}\">{x:.3}</td>", retention_class(x)),
        None => "<td class=\"num\">&mdash;</td>".into(),
    }
}

fn model_row(o: &mut String, which: &str, path: &Path, rep: &crate::eval::suite::EvalReport) {
    let adapters = if rep.adapters.is_empty() {
        "none (base model)".to_string()
    } else {
        rep.adapters
            .iter()
            .map(|a| format!("<code>{}</code>", esc(a)))
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let model = if rep.model.is_empty() {
        "(not recorded)".to_string()
    } else {
        format!("<code>{}</code>", esc(&rep.model))
    };
    let _ = write!(
        o,
        "<tr><th>{which}</th><td><code>{}</code></td><td>{model}</td><td>{adapters}</td></tr>",
        esc(&path.display().to_string())
    );
}

fn describe(r: &DatasetRow, m: &Metric) -> String {
    let what = match r.kind {
        Kind::ZeroShot => format!("zero-shot {}", m.name),
        Kind::Retrieval => esc(m.name),
        Kind::LinearProbe => format!("linear-probe {}", m.name),
    };
    format!(
        "<b>{}</b> {what} {}% &rarr; {}%",
        esc(&r.name),
        pct(m.before),
        pct(m.after)
    )
}

fn summary(o: &mut String, c: &Comparison) {
    o.push_str("<h2>Summary</h2>\n<ul class=\"summary\">\n");
    let targets: Vec<&DatasetRow> = c.rows.iter().filter(|r| r.target).collect();
    for r in &targets {
        for m in r.headline() {
            let d = m.delta_pp().map(|d| format!(" ({d:+.2} pp)")).unwrap_or_default();
            let _ = writeln!(o, "<li>Target domain: {}{d}</li>", describe(r, m));
        }
    }
    match &c.target_choice {
        TargetChoice::Given(t) => {
            let names: Vec<String> = t.iter().map(|t| format!("<code>{}</code>", esc(t))).collect();
            let _ = writeln!(
                o,
                "<li class=\"note\">Target datasets given with <code>--target</code>: {}.</li>",
                names.join(", ")
            );
        }
        TargetChoice::Largest { gain_pp } => {
            let _ = writeln!(
                o,
                "<li class=\"note\">No <code>--target</code> given: the target is the dataset with the largest gain \
                 ({gain_pp:+.2} pp); every other dataset counts as retention. Pass <code>--target NAME</code> to choose.</li>"
            );
        }
        TargetChoice::NoGain => {
            o.push_str(
                "<li class=\"note\">No <code>--target</code> given and no dataset improved, so every dataset counts as \
                 retention. Pass <code>--target NAME</code> to name the target domain.</li>\n",
            );
        }
    }
    match c.worst_retention() {
        Some((r, m, x)) => {
            let class = retention_class(x);
            let verdict = match class {
                "green" => "kept",
                "amber" => "slightly reduced",
                _ => "reduced",
            };
            let _ = writeln!(
                o,
                "<li>Retention {verdict}: the lowest after/before ratio is <span class=\"ret {class}\">{x:.3}</span> on {}.</li>",
                describe(r, m)
            );
        }
        None => o.push_str("<li>Retention: no retention dataset was measured in both files.</li>\n"),
    }
    let _ = writeln!(
        o,
        "<li class=\"note\">Retention is after/before: <span class=\"ret green\">&ge; {RETENTION_GREEN:.2}</span>, \
         <span class=\"ret amber\">&ge; {RETENTION_AMBER:.2}</span>, <span class=\"ret red\">below</span>. \
         Values are percentages; &Delta; is in percentage points.</li>"
    );
    o.push_str("</ul>\n");
}

fn tables(o: &mut String, c: &Comparison) {
    let rows = |k: Kind| c.rows.iter().filter(move |r| r.kind == k);
    if rows(Kind::ZeroShot).next().is_some() {
        o.push_str(
            "<h2>Zero-shot classification</h2>\n<table>\n<tr><th rowspan=\"2\">Dataset</th><th rowspan=\"2\">Role</th>\
             <th colspan=\"3\">Top-1 (%)</th><th colspan=\"3\">Top-5 (%)</th><th rowspan=\"2\">Retention<br>(top-1 after/before)</th></tr>\n\
             <tr><th>before</th><th>after</th><th>&Delta; pp</th><th>before</th><th>after</th><th>&Delta; pp</th></tr>\n",
        );
        for r in rows(Kind::ZeroShot) {
            let _ = writeln!(
                o,
                "<tr><td><code>{}</code></td>{}{}{}{}</tr>",
                esc(&r.name),
                role_cell(r, 1),
                metric_cells(&r.metrics[0]),
                metric_cells(&r.metrics[1]),
                ratio_cell(r, &r.metrics[0])
            );
        }
        o.push_str("</table>\n");
    }
    if rows(Kind::Retrieval).next().is_some() {
        o.push_str(
            "<h2>Image-text retrieval</h2>\n<table>\n<tr><th rowspan=\"2\">Dataset</th><th rowspan=\"2\">Role</th>\
             <th rowspan=\"2\">Direction</th><th colspan=\"3\">R@1 (%)</th><th colspan=\"3\">R@5 (%)</th><th colspan=\"3\">R@10 (%)</th>\
             <th rowspan=\"2\">Retention<br>(R@1 after/before)</th></tr>\n<tr>",
        );
        for _ in 0..3 {
            o.push_str("<th>before</th><th>after</th><th>&Delta; pp</th>");
        }
        o.push_str("</tr>\n");
        for r in rows(Kind::Retrieval) {
            for (d, dir) in ["image &rarr; text", "text &rarr; image"].iter().enumerate() {
                let ms = &r.metrics[3 * d..3 * d + 3];
                let lead = if d == 0 {
                    format!(
                        "<td rowspan=\"2\"><code>{}</code></td>{}",
                        esc(&r.name),
                        role_cell(r, 2)
                    )
                } else {
                    String::new()
                };
                let _ = writeln!(
                    o,
                    "<tr>{lead}<td>{dir}</td>{}{}{}{}</tr>",
                    metric_cells(&ms[0]),
                    metric_cells(&ms[1]),
                    metric_cells(&ms[2]),
                    ratio_cell(r, &ms[0])
                );
            }
        }
        o.push_str("</table>\n");
    }
    if rows(Kind::LinearProbe).next().is_some() {
        o.push_str(
            "<h2>Linear probe</h2>\n<table>\n<tr><th rowspan=\"2\">Train &rarr; test</th><th rowspan=\"2\">Role</th>\
             <th colspan=\"3\">Top-1 (%)</th><th rowspan=\"2\">Retention<br>(after/before)</th></tr>\n\
             <tr><th>before</th><th>after</th><th>&Delta; pp</th></tr>\n",
        );
        for r in rows(Kind::LinearProbe) {
            let _ = writeln!(
                o,
                "<tr><td><code>{}</code></td>{}{}{}</tr>",
                esc(&r.name),
                role_cell(r, 1),
                metric_cells(&r.metrics[0]),
                ratio_cell(r, &r.metrics[0])
            );
        }
        o.push_str("</table>\n");
    }
    let only: Vec<String> = c
        .rows
        .iter()
        .filter_map(|r| {
            let (b, a) = (r.metrics[0].before.is_some(), r.metrics[0].after.is_some());
            match (b, a) {
                (true, false) => Some(format!(
                    "<code>{}</code> ({}) is only in the before file",
                    esc(&r.name),
                    r.kind_label()
                )),
                (false, true) => Some(format!(
                    "<code>{}</code> ({}) is only in the after file",
                    esc(&r.name),
                    r.kind_label()
                )),
                _ => None,
            }
        })
        .collect();
    if !only.is_empty() {
        let _ = writeln!(o, "<p class=\"note\">Not compared: {}.</p>", only.join("; "));
    }
}

fn opt(x: Option<(u64, f64)>, f: impl Fn(f64) -> String) -> String {
    x.map(|(s, v)| format!("{} <span class=\"dim\">@{s}</span>", f(v)))
        .unwrap_or_else(|| "&mdash;".into())
}

/// A chart inline as SVG, its caption and a link to the PNG copy next to the page.
fn figure(o: &mut String, svg: &str, png: &Path, alt: &str, caption: &str) {
    let _ = writeln!(
        o,
        "<figure>{}<figcaption>{caption} (PNG: <a href=\"{}\">{}</a>)</figcaption></figure>",
        super::chart::inline_svg(svg, &esc(alt)),
        url_file(png),
        esc(&png
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()),
    );
}

fn training(o: &mut String, logs: &[TrainLog], curves: Option<(&PathBuf, &str)>) {
    o.push_str("<h2>Training</h2>\n");
    if let Some((p, svg)) = curves {
        let caption = format!(
            "Loss against step{}.",
            if logs.iter().any(|l| l.has(|r| r.retention) || l.has(|r| r.eval_top1)) {
                "; below it, logged retention / eval accuracy"
            } else {
                ""
            }
        );
        figure(o, svg, p, "training loss and accuracy against step", &caption);
    }
    o.push_str(
        "<table>\n<tr><th>Log</th><th>Records</th><th>Steps</th><th>First loss</th><th>Final loss</th><th>Lowest loss</th>\
         <th>Last lr</th><th>Last epoch</th><th>Last retention (%)</th><th>Last eval top-1 (%)</th></tr>\n",
    );
    for l in logs {
        let first = l.records.iter().find_map(|r| r.loss.map(|v| (r.step, v)));
        let min = l
            .records
            .iter()
            .filter_map(|r| r.loss.map(|v| (r.step, v)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let steps = format!(
            "{}&ndash;{}",
            l.records.first().map_or(0, |r| r.step),
            l.records.last().map_or(0, |r| r.step)
        );
        let frac = |v: f64| {
            if v <= 1.0 {
                format!("{:.2}", 100.0 * v)
            } else {
                format!("{v:.2}")
            }
        };
        let _ = writeln!(
            o,
            "<tr><td><code title=\"{}\">{}</code></td><td class=\"num\">{}</td><td class=\"num\">{steps}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&l.path.display().to_string()),
            esc(&l.label),
            l.records.len(),
            opt(first, |v| format!("{v:.4}")),
            opt(l.last(|r| r.loss), |v| format!("{v:.4}")),
            opt(min, |v| format!("{v:.4}")),
            opt(l.last(|r| r.lr), |v| format!("{v:.2e}")),
            opt(l.last(|r| r.epoch), |v| format!("{v:.2}")),
            opt(l.last(|r| r.retention), frac),
            opt(l.last(|r| r.eval_top1), frac),
        );
    }
    o.push_str("</table>\n");
    for l in logs {
        let mut notes = l.notes.clone();
        if l.skipped > 0 {
            notes.push(format!("{} line(s) without step/loss skipped", l.skipped));
        }
        if !notes.is_empty() {
            let _ = writeln!(
                o,
                "<p class=\"note\"><code>{}</code>: {}.</p>",
                esc(&l.label),
                esc(&notes.join("; "))
            );
        }
    }
}

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ddd;padding:.3em .6em;vertical-align:middle}
th{background:#f5f5f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.up{color:#1a7f37}.down{color:#c62828}.flat{color:#777}.dim{color:#999;font-size:.85em}
.ret{font-weight:600;border-radius:3px;padding:0 .3em}.ret.green{background:#d5f5dd;color:#145a25}
.ret.amber{background:#fff1c2;color:#7a5300}.ret.red{background:#ffd6d6;color:#8b1010}
td.ret.green{background:#d5f5dd}td.ret.amber{background:#fff1c2}td.ret.red{background:#ffd6d6}
.role{font-size:.8em;padding:.1em .4em;border-radius:3px}.role.target{background:#dbe9ff;color:#0b3c8c}
.role.retention{background:#eee;color:#444}.note{color:#555;font-size:.92em}.meta{color:#666}
figure{margin:1em 0}figure img,figure svg{max-width:100%;height:auto;border:1px solid #eee}figcaption{color:#666;font-size:.9em}
code{font-size:.95em}";

/// The whole page.
pub fn render(p: &Page) -> String {
    let c = p.comparison;
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>cliptune report</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n<h1>cliptune report</h1>\n\
         <p class=\"meta\">Generated {} by cliptune {}.</p>\n",
        esc(p.generated),
        env!("CARGO_PKG_VERSION")
    );
    o.push_str("<table class=\"models\">\n<tr><th></th><th>Eval file</th><th>Model</th><th>Adapters</th></tr>\n");
    model_row(&mut o, "before", p.before_path, &c.before);
    o.push('\n');
    model_row(&mut o, "after", p.after_path, &c.after);
    o.push_str("\n</table>\n");
    summary(&mut o, c);
    tables(&mut o, c);
    if let (Some(bars), Some(svg)) = (p.charts.first(), p.svgs.first()) {
        o.push_str("<h2>Before and after</h2>\n");
        figure(
            &mut o,
            svg,
            bars,
            "before/after bars per dataset",
            "Zero-shot top-1, retrieval R@1 in each direction and linear-probe top-1, before and after (%).",
        );
    }
    if !p.logs.is_empty() {
        training(&mut o, p.logs, p.charts.get(1).zip(p.svgs.get(1).copied()));
    }
    o.push_str("</body>\n</html>\n");
    o
}
