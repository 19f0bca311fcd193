//! `cliptune report`: compare two `cliptune eval --out` files (before and after
//! fine-tuning) and the training logs of the run, and write a self-contained HTML page
//! with its charts inline as SVG and as PNG files next to it.
//!
//! - Every dataset of either file is a row: zero-shot top-1/top-5, retrieval R@1/5/10
//!   both ways, linear-probe top-1, each before, after and the change in percentage points.
//! - A dataset is *target* (the domain the run was meant to improve) when named with
//!   `--target`; by default the dataset with the largest gain is the target and the
//!   page says it was chosen that way. Every other dataset is *retention*: its
//!   after/before ratio is coloured green (>= [`RETENTION_GREEN`]), amber
//!   (>= [`RETENTION_AMBER`]) or red.
//! - Training logs are JSON lines with at least `{"step": int, "loss": float}` and
//!   optionally `lr`, `epoch`, `retention` and `eval_top1` (accuracies as fractions);
//!   other lines (events without step/loss) are skipped and counted.
//!
//! Output for `--out DIR/report.html`: `DIR/report.html`, `DIR/report_retention.png`
//! (before/after bars per dataset) and, with logs, `DIR/report_curves.png` (loss, and
//! retention/eval accuracy when logged, against step); the page carries the same charts
//! inline as SVG. Each file is written atomically; the HTML last, so it never points at a
//! chart that is not there yet.
pub mod chart;
pub mod html;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::eval::metrics::RetrievalMetrics;
use crate::eval::suite::{EvalReport, LinearProbeResult, RetrievalResult, ZeroShotResult};
use crate::tensor::io::write_atomic;

/// Retention ratios at or above this are green.
pub const RETENTION_GREEN: f64 = 0.98;
/// Retention ratios at or above this (and below green) are amber; below, red.
pub const RETENTION_AMBER: f64 = 0.95;

// ---------------------------------------------------------------- eval JSON

/// Read an `EvalReport` written by `cliptune eval --out FILE`. Errors name the file.
pub fn read_eval_json(path: &Path) -> Result<EvalReport> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        Error::io(
            path.display(),
            format!("not JSON ({e}); expected the file written by `cliptune eval --out`"),
        )
    })?;
    eval_report_from_json(&v, &path.display().to_string())
}

/// The inverse of [`EvalReport::to_json`]; `what` (a file name) starts every error.
pub fn eval_report_from_json(v: &Value, what: &str) -> Result<EvalReport> {
    let bad = |msg: String| {
        Error::io(
            what,
            format!("{msg} (expected the JSON written by `cliptune eval --out`)"),
        )
    };
    let obj = v.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
    if !["zero_shot", "retrieval", "linear_probe"]
        .iter()
        .any(|k| obj.contains_key(*k))
    {
        return Err(bad("no zero_shot, retrieval or linear_probe results".into()));
    }
    let model = match obj.get("model") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("\"model\" is not a string".into())),
    };
    let adapters = match obj.get("adapters") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("adapters[{i}] is not a string")))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(bad("\"adapters\" is not an array".into())),
    };
    let list = |key: &str| -> Result<Vec<&serde_json::Map<String, Value>>> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, x)| x.as_object().ok_or_else(|| bad(format!("{key}[{i}] is not an object"))))
                .collect(),
            Some(_) => Err(bad(format!("\"{key}\" is not an array"))),
        }
    };
    let string = |o: &serde_json::Map<String, Value>, at: &str, k: &str| -> Result<String> {
        o.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(format!("{at}.{k} is missing or not a string")))
    };
    let frac = |o: &serde_json::Map<String, Value>, at: &str, k: &str| -> Result<f32> {
        let x = o
            .get(k)
            .and_then(Value::as_f64)
            .ok_or_else(|| bad(format!("{at}.{k} is missing or not a number")))?;
        if !(0.0..=1.0).contains(&x) {
            return Err(bad(format!(
                "{at}.{k} = {x} is outside 0..1 (accuracies are fractions)"
            )));
        }
        Ok(x as f32)
    };
    let count = |o: &serde_json::Map<String, Value>, k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;

    let mut rep = EvalReport {
        model,
        adapters,
        ..Default::default()
    };
    for (i, z) in list("zero_shot")?.into_iter().enumerate() {
        let at = format!("zero_shot[{i}]");
        rep.zero_shot.push(ZeroShotResult {
            dataset: string(z, &at, "dataset")?,
            top1: frac(z, &at, "top1")?,
            top5: frac(z, &at, "top5")?,
            images: count(z, "images"),
            classes: count(z, "classes"),
        });
    }
    for (i, r) in list("retrieval")?.into_iter().enumerate() {
        let at = format!("retrieval[{i}]");
        let dir = |k: &str| -> Result<[f32; 3]> {
            let d = r
                .get(k)
                .and_then(Value::as_object)
                .ok_or_else(|| bad(format!("{at}.{k} is missing or not an object")))?;
            let at = format!("{at}.{k}");
            Ok([frac(d, &at, "r1")?, frac(d, &at, "r5")?, frac(d, &at, "r10")?])
        };
        rep.retrieval.push(RetrievalResult {
            dataset: string(r, &at, "dataset")?,
            metrics: RetrievalMetrics {
                i2t: dir("i2t")?,
                t2i: dir("t2i")?,
            },
            images: count(r, "images"),
            captions: count(r, "captions"),
        });
    }
    for (i, l) in list("linear_probe")?.into_iter().enumerate() {
        let at = format!("linear_probe[{i}]");
        rep.linear_probe.push(LinearProbeResult {
            train: string(l, &at, "train")?,
            test: string(l, &at, "test")?,
            top1: frac(l, &at, "top1")?,
            l2: l.get("l2").and_then(Value::as_f64).unwrap_or(f64::NAN) as f32,
        });
    }
    Ok(rep)
}

// ---------------------------------------------------------------- comparison

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ZeroShot,
    Retrieval,
    LinearProbe,
}

/// One number measured before and/or after (fractions; None where a file lacks it).
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub before: Option<f32>,
    pub after: Option<f32>,
}

impl Metric {
    /// after - before in percentage points.
    pub fn delta_pp(&self) -> Option<f64> {
        Some(100.0 * (self.after? as f64 - self.before? as f64))
    }
    /// after / before (None when before is 0 or either is missing).
    pub fn ratio(&self) -> Option<f64> {
        let (b, a) = (self.before? as f64, self.after? as f64);
        (b > 0.0).then(|| a / b)
    }
}

/// Green, amber or red for a retention ratio.
pub fn retention_class(ratio: f64) -> &'static str {
    if ratio >= RETENTION_GREEN {
        "green"
    } else if ratio >= RETENTION_AMBER {
        "amber"
    } else {
        "red"
    }
}

/// A dataset of either eval file with its metrics side by side.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetRow {
    pub kind: Kind,
    /// The dataset as `cliptune eval` named it; "TRAIN -> TEST" for linear probes.
    pub name: String,
    pub target: bool,
    /// Zero-shot: top-1, top-5. Retrieval: image->text R@1/5/10 then text->image R@1/5/10.
    /// Linear probe: top-1.
    pub metrics: Vec<Metric>,
}

impl DatasetRow {
    /// The metrics that stand for the dataset in the summary, retention and bar chart:
    /// top-1, or R@1 in each direction.
    pub fn headline(&self) -> Vec<&Metric> {
        match self.kind {
            Kind::Retrieval => vec![&self.metrics[0], &self.metrics[3]],
            _ => vec![&self.metrics[0]],
        }
    }
    /// The gain (pp) used to pick the target by default: top-1, or mean R@1 of both directions.
    pub fn gain_pp(&self) -> Option<f64> {
        let d: Option<Vec<f64>> = self.headline().iter().map(|m| m.delta_pp()).collect();
        d.map(|d| d.iter().sum::<f64>() / d.len() as f64)
    }
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            Kind::ZeroShot => "zero-shot",
            Kind::Retrieval => "retrieval",
            Kind::LinearProbe => "linear probe",
        }
    }
    fn matches(&self, target: &str) -> bool {
        let one = |n: &str| n == target || n.ends_with(&format!("/{target}"));
        match self.kind {
            Kind::LinearProbe => one(&self.name) || self.name.split(" -> ").any(one),
            _ => one(&self.name),
        }
    }
}

/// How the target datasets were decided.
#[derive(Clone, Debug, PartialEq)]
pub enum TargetChoice {
    /// Named with `--target`.
    Given(Vec<String>),
    /// No `--target`: the dataset(s) with the largest gain, this many pp.
    Largest { gain_pp: f64 },
    /// No `--target` and no dataset improved: everything is retention.
    NoGain,
}

#[derive(Clone, Debug)]
pub struct Comparison {
    pub before: EvalReport,
    pub after: EvalReport,
    pub rows: Vec<DatasetRow>,
    pub target_choice: TargetChoice,
}

fn pair<'a, T>(b: &'a [T], a: &'a [T], key: impl Fn(&T) -> String) -> Vec<(String, Option<&'a T>, Option<&'a T>)> {
    let mut out: Vec<(String, Option<&'a T>, Option<&'a T>)> = b.iter().map(|x| (key(x), Some(x), None)).collect();
    for x in a {
        let k = key(x);
        match out.iter_mut().find(|(n, _, a)| *n == k && a.is_none()) {
            Some(slot) => slot.2 = Some(x),
            None => out.push((k, None, Some(x))),
        }
    }
    out
}

impl Comparison {
    /// Pair the datasets of two eval reports by name and decide which are targets.
    /// A `--target` that names no dataset is an error listing the names there are.
    pub fn new(before: EvalReport, after: EvalReport, targets: &[String]) -> Result<Comparison> {
        let m = |name, b: Option<f32>, a: Option<f32>| Metric {
            name,
            before: b,
            after: a,
        };
        let mut rows = vec![];
        for (name, b, a) in pair(&before.zero_shot, &after.zero_shot, |z| z.dataset.clone()) {
            rows.push(DatasetRow {
                kind: Kind::ZeroShot,
                name,
                target: false,
                metrics: vec![
                    m("top-1", b.map(|x| x.top1), a.map(|x| x.top1)),
                    m("top-5", b.map(|x| x.top5), a.map(|x| x.top5)),
                ],
            });
        }
        for (name, b, a) in pair(&before.retrieval, &after.retrieval, |r| r.dataset.clone()) {
            const NAMES: [&str; 6] = [
                "image->text R@1",
                "image->text R@5",
                "image->text R@10",
                "text->image R@1",
                "text->image R@5",
                "text->image R@10",
            ];
            let get = |r: Option<&RetrievalResult>, i: usize| {
                r.map(|r| if i < 3 { r.metrics.i2t[i] } else { r.metrics.t2i[i - 3] })
            };
            rows.push(DatasetRow {
                kind: Kind::Retrieval,
                name,
                target: false,
                metrics: (0..6).map(|i| m(NAMES[i], get(b, i), get(a, i))).collect(),
            });
        }
        for (name, b, a) in pair(&before.linear_probe, &after.linear_probe, |l| {
            format!("{} -> {}", l.train, l.test)
        }) {
            rows.push(DatasetRow {
                kind: Kind::LinearProbe,
                name,
                target: false,
                metrics: vec![m("top-1", b.map(|x| x.top1), a.map(|x| x.top1))],
            });
        }
        let target_choice = if !targets.is_empty() {
            for t in targets {
                if !rows.iter().any(|r| r.matches(t)) {
                    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
                    return Err(Error::invalid(format!(
                        "--target {t}: no such dataset in the eval files (they have: {})",
                        names.join(", ")
                    )));
                }
            }
            for r in rows.iter_mut() {
                r.target = targets.iter().any(|t| r.matches(t));
            }
            TargetChoice::Given(targets.to_vec())
        } else {
            let best = rows
                .iter()
                .filter_map(|r| r.gain_pp())
                .fold(f64::NEG_INFINITY, f64::max);
            if best > 1e-9 {
                let picked: Vec<String> = rows
                    .iter()
                    .filter(|r| r.gain_pp().is_some_and(|g| g >= best - 1e-6))
                    .map(|r| r.name.clone())
                    .collect();
                // A linear probe tested on a picked dataset is on the target domain too.
                for r in rows.iter_mut() {
                    r.target = picked.iter().any(|p| r.matches(p));
                }
                TargetChoice::Largest { gain_pp: best }
            } else {
                TargetChoice::NoGain
            }
        };
        Ok(Comparison {
            before,
            after,
            rows,
            target_choice,
        })
    }

    /// The lowest after/before ratio of a retention dataset's headline metrics.
    pub fn worst_retention(&self) -> Option<(&DatasetRow, &Metric, f64)> {
        self.rows
            .iter()
            .filter(|r| !r.target)
            .flat_map(|r| {
                r.headline()
                    .into_iter()
                    .filter_map(move |m| m.ratio().map(|x| (r, m, x)))
            })
            .min_by(|a, b| a.2.total_cmp(&b.2))
    }
}

// ---------------------------------------------------------------- training logs

/// One `{"step", "loss", ...}` line of a training log. A `null` (or NaN) loss is kept
/// as None: the loss was not finite at that step.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    pub step: u64,
    pub loss: Option<f64>,
    pub lr: Option<f64>,
    pub epoch: Option<f64>,
    pub retention: Option<f64>,
    pub eval_top1: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct TrainLog {
    pub path: PathBuf,
    /// Short name for legends (file name, with its folder when two logs share a name).
    pub label: String,
    pub records: Vec<LogRecord>,
    /// Lines without step/loss (events) that were skipped.
    pub skipped: usize,
    /// Things worth telling the reader (a truncated last line, non-finite losses).
    pub notes: Vec<String>,
}

impl TrainLog {
    pub fn has(&self, f: impl Fn(&LogRecord) -> Option<f64>) -> bool {
        self.records.iter().any(|r| f(r).is_some())
    }
    pub fn last(&self, f: impl Fn(&LogRecord) -> Option<f64>) -> Option<(u64, f64)> {
        self.records.iter().rev().find_map(|r| f(r).map(|v| (r.step, v)))
    }
}

/// Read a JSON-lines training log. A line that is not JSON is an error naming the file
/// and line, except an unterminated last line (a run killed mid-write), which is noted.
pub fn read_log(path: &Path) -> Result<TrainLog> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    let mut log = TrainLog {
        path: path.to_path_buf(),
        label: String::new(),
        records: vec![],
        skipped: 0,
        notes: vec![],
    };
    let lines: Vec<&str> = text.lines().collect();
    let at = |i: usize| format!("{}:{}", path.display(), i + 1);
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Value>(line).or_else(|e| {
            // Python's json writes NaN/Infinity, which JSON does not have.
            let fixed = line
                .replace("-Infinity", "null")
                .replace("Infinity", "null")
                .replace("NaN", "null");
            serde_json::from_str::<Value>(&fixed).map_err(|_| e)
        });
        let v = match parsed {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {
                log.notes
                    .push(format!("the last line ({}) is incomplete and was ignored", i + 1));
                continue;
            }
            Err(e) => {
                return Err(Error::io(
                    at(i),
                    format!("not a JSON line ({e}); a training log has one JSON object per line"),
                ))
            }
        };
        let o = v
            .as_object()
            .ok_or_else(|| Error::io(at(i), "not a JSON object; expected {\"step\": .., \"loss\": ..}"))?;
        let (Some(step), true) = (o.get("step"), o.contains_key("loss")) else {
            log.skipped += 1;
            continue;
        };
        let step = step
            .as_u64()
            .or_else(|| {
                step.as_f64()
                    .filter(|s| *s >= 0.0 && s.fract() == 0.0)
                    .map(|s| s as u64)
            })
            .ok_or_else(|| Error::io(at(i), format!("\"step\" is {step}, not a non-negative integer")))?;
        let num = |k: &str| -> Result<Option<f64>> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| Error::io(at(i), format!("\"{k}\" is {x}, not a number"))),
            }
        };
        let rec = LogRecord {
            step,
            loss: num("loss")?,
            lr: num("lr")?,
            epoch: num("epoch")?,
            retention: num("retention")?,
            eval_top1: num("eval_top1")?,
        };
        if rec.loss.is_none() {
            log.notes.push(format!("loss is not finite at step {step}"));
        }
        log.records.push(rec);
    }
    if log.records.is_empty() {
        return Err(Error::io(
            path.display(),
            format!(
                "no training records: no line has both \"step\" and \"loss\" ({} other lines)",
                log.skipped
            ),
        ));
    }
    if log.notes.len() > 6 {
        let n = log.notes.len();
        log.notes.truncate(5);
        log.notes.push(format!("... and {} more", n - 5));
    }
    Ok(log)
}

/// Legend labels: the file name, or folder/file name when two logs share a file name.
fn label_logs(logs: &mut [TrainLog]) {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| p.display().to_string())
    };
    let names: Vec<String> = logs.iter().map(|l| name(&l.path)).collect();
    for (i, l) in logs.iter_mut().enumerate() {
        l.label = if names.iter().filter(|n| **n == names[i]).count() > 1 {
            let parent = l
                .path
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().to_string());
            match parent {
                Some(p) => format!("{p}/{}", names[i]),
                None => l.path.display().to_string(),
            }
        } else {
            names[i].clone()
        };
    }
}

// ---------------------------------------------------------------- charts

/// Before/after bars of each dataset's headline metrics, in %.
pub fn retention_chart(c: &Comparison) -> chart::Figure {
    let mut groups = vec![];
    for r in &c.rows {
        for m in r.headline() {
            let metric = match (r.kind, m.name) {
                (Kind::ZeroShot, _) => "zero-shot top-1".to_string(),
                (Kind::LinearProbe, _) => "probe top-1".to_string(),
                (Kind::Retrieval, n) if n.starts_with("image") => "image→text R@1".to_string(),
                _ => "text→image R@1".to_string(),
            };
            let role = if r.target { "target" } else { "retention" };
            let name = match r.kind {
                Kind::LinearProbe => r.name.rsplit(" -> ").next().unwrap_or(&r.name).to_string(),
                _ => r.name.clone(),
            };
            groups.push(chart::BarGroup {
                labels: vec![name, metric, role.to_string()],
                values: vec![m.before.map(|x| 100.0 * x as f64), m.after.map(|x| 100.0 * x as f64)],
            });
        }
    }
    let width = (110 + groups.len() as u32 * 120).clamp(520, 2400);
    chart::Figure::Bars(chart::BarChart {
        title: "Before / after per dataset".into(),
        y_label: "accuracy / recall (%)".into(),
        series: vec![("before".into(), [120, 144, 176]), ("after".into(), chart::PALETTE[1])],
        groups,
        width,
        height: 380,
    })
}

/// Loss against step (one line per log, smoothed when long) and, under it when any log
/// has them, retention / eval accuracy against step.
pub fn curves_chart(logs: &[TrainLog]) -> chart::Figure {
    let mut loss_series = vec![];
    let mut acc_series = vec![];
    let mut colour = 0usize;
    let mut next = || {
        let c = chart::PALETTE[colour % chart::PALETTE.len()];
        colour += 1;
        c
    };
    for l in logs {
        let pts: Vec<(f64, f64)> = l
            .records
            .iter()
            .map(|r| (r.step as f64, r.loss.unwrap_or(f64::NAN)))
            .collect();
        let c = next();
        let label = if logs.len() > 1 {
            format!("{} loss", l.label)
        } else {
            "loss".into()
        };
        if pts.len() > 100 {
            let w = (pts.len() / 50).max(5);
            loss_series.push(chart::Series {
                label: String::new(),
                points: pts.clone(),
                color: c,
                faint: true,
            });
            loss_series.push(chart::Series {
                label: format!("{label} (mean of {w})"),
                points: chart::smooth(&pts, w),
                color: c,
                faint: false,
            });
        } else {
            loss_series.push(chart::Series {
                label,
                points: pts,
                color: c,
                faint: false,
            });
        }
        for (what, f) in [
            (
                "retention",
                (|r: &LogRecord| r.retention) as fn(&LogRecord) -> Option<f64>,
            ),
            ("eval top-1", |r| r.eval_top1),
        ] {
            if !l.has(f) {
                continue;
            }
            let vals: Vec<(f64, f64)> = l
                .records
                .iter()
                .filter_map(|r| f(r).map(|v| (r.step as f64, v)))
                .collect();
            let scale = if vals.iter().all(|(_, v)| *v <= 1.0) {
                100.0
            } else {
                1.0
            };
            let label = if logs.len() > 1 {
                format!("{} {what}", l.label)
            } else {
                what.to_string()
            };
            acc_series.push(chart::Series {
                label,
                points: vals.into_iter().map(|(s, v)| (s, v * scale)).collect(),
                color: next(),
                faint: false,
            });
        }
    }
    let steps = logs.iter().flat_map(|l| l.records.iter().map(|r| r.step as f64));
    let x_range = steps.fold(None, |acc: Option<(f64, f64)>, s| {
        Some(acc.map_or((s, s), |(a, b)| (a.min(s), b.max(s))))
    });
    let top = chart::Figure::Lines(chart::LineChart {
        title: "Training loss".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        series: loss_series,
        x_range,
        width: 900,
        height: 380,
    });
    if acc_series.is_empty() {
        return top;
    }
    let bottom = chart::Figure::Lines(chart::LineChart {
        title: "Accuracy during training".into(),
        x_label: "step".into(),
        y_label: "accuracy (%)".into(),
        series: acc_series,
        x_range,
        width: 900,
        height: 340,
    });
    chart::Figure::Stack(vec![top, bottom])
}

// ---------------------------------------------------------------- the report

#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub before: PathBuf,
    pub after: PathBuf,
    pub logs: Vec<PathBuf>,
    /// Target-domain dataset names (empty: the largest gain).
    pub targets: Vec<String>,
    /// The HTML file; charts go next to it as STEM_retention.png and STEM_curves.png.
    pub out: PathBuf,
    /// Seconds since the Unix epoch shown as "generated"; None: $SOURCE_DATE_EPOCH, else now.
    pub generated_unix: Option<u64>,
}

impl ReportOptions {
    pub fn new(before: impl Into<PathBuf>, after: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        ReportOptions {
            before: before.into(),
            after: after.into(),
            logs: vec![],
            targets: vec![],
            out: out.into(),
            generated_unix: None,
        }
    }
}

/// What [`write_report`] wrote, and what it computed.
#[derive(Clone, Debug)]
pub struct ReportOutput {
    pub html: PathBuf,
    pub charts: Vec<PathBuf>,
    pub comparison: Comparison,
    pub logs: Vec<TrainLog>,
}

/// `DIR/STEM.html` -> `DIR/STEM_<suffix>.png`.
pub fn chart_path(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "report".into());
    out.with_file_name(format!("{stem}_{suffix}.png"))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// (year, month, day, hour, minute, second) in UTC of seconds since the Unix epoch.
pub fn civil_utc(secs: u64) -> (i64, i64, i64, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// "2024-05-01 12:34:56 UTC" from seconds since the Unix epoch.
pub fn format_utc(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil_utc(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

fn now_unix() -> u64 {
    if let Some(s) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return s;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Read the inputs, draw the charts and write the page. Nothing is written unless every
/// input reads cleanly; an output never replaces one of the inputs.
pub fn write_report(opts: &ReportOptions) -> Result<ReportOutput> {
    let out = &opts.out;
    if out.as_os_str().is_empty() || out.file_name().is_none() || out.is_dir() {
        return Err(Error::invalid(format!(
            "--out {}: expected an HTML file path",
            out.display()
        )));
    }
    let before = read_eval_json(&opts.before)?;
    let after = read_eval_json(&opts.after)?;
    let mut logs = opts.logs.iter().map(|p| read_log(p)).collect::<Result<Vec<_>>>()?;
    label_logs(&mut logs);
    let comparison = Comparison::new(before, after, &opts.targets)?;

    let mut charts = vec![chart_path(out, "retention")];
    if !logs.is_empty() {
        charts.push(chart_path(out, "curves"));
    }
    let inputs: Vec<&PathBuf> = [&opts.before, &opts.after]
        .into_iter()
        .chain(opts.logs.iter())
        .collect();
    for o in std::iter::once(out).chain(charts.iter()) {
        if let Some(i) = inputs.iter().find(|i| same_file(i, o)) {
            return Err(Error::invalid(format!(
                "--out {}: writing {} would overwrite the input {}",
                out.display(),
                o.display(),
                i.display()
            )));
        }
    }

    // Every picture is drawn before anything is written, so a drawing error leaves no
    // half-made set of files behind.
    let mut pictures = vec![chart::render(
        &retention_chart(&comparison),
        &charts[0].display().to_string(),
    )?];
    if !logs.is_empty() {
        pictures.push(chart::render(&curves_chart(&logs), &charts[1].display().to_string())?);
    }
    for (path, pic) in charts.iter().zip(&pictures) {
        write_atomic(path, &pic.png)?;
    }
    let svgs: Vec<&str> = pictures.iter().map(|p| p.svg.as_str()).collect();
    let generated = format_utc(opts.generated_unix.unwrap_or_else(now_unix));
    let page = html::render(&html::Page {
        comparison: &comparison,
        before_path: &opts.before,
        after_path: &opts.after,
        logs: &logs,
        charts: &charts,
        svgs: &svgs,
        generated: &generated,
    });
    write_atomic(out, page.as_bytes())?;
    Ok(ReportOutput {
        html: out.clone(),
        charts,
        comparison,
        logs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn chart_paths_sit_next_to_the_page() {
        assert_eq!(
            chart_path(Path::new("a/report.html"), "curves"),
            PathBuf::from("a/report_curves.png")
        );
        assert_eq!(
            chart_path(Path::new("r.html"), "retention"),
            PathBuf::from("r_retention.png")
        );
    }
}
