//! `cliptune report`: eval JSONs + training logs -> HTML page and PNG charts, through the
//! library and the binary, and the errors a user can cause.
use std::path::{Path, PathBuf};
use std::process::Command;

use cliptune::eval::metrics::RetrievalMetrics;
use cliptune::eval::suite::{EvalReport, LinearProbeResult, RetrievalResult, ZeroShotResult};
use cliptune::report::{chart, read_eval_json, read_log, write_report, Comparison, ReportOptions, TargetChoice};

fn tmp(name: &str) -> PathBuf {
    // A fresh directory per call, never one shared by the tests of this process.
    tempfile::Builder::new()
        .prefix(&format!("cliptune-report-{name}-"))
        .tempdir()
        .unwrap()
        .keep()
}

fn zs(dataset: &str, top1: f32, top5: f32) -> ZeroShotResult {
    ZeroShotResult {
        dataset: dataset.into(),
        top1,
        top5,
        images: 100,
        classes: 10,
    }
}

fn eval(
    model: &str,
    adapters: &[&str],
    pets: (f32, f32),
    general: (f32, f32),
    coco: ([f32; 3], [f32; 3]),
    probe: f32,
) -> EvalReport {
    EvalReport {
        model: model.into(),
        adapters: adapters.iter().map(|s| s.to_string()).collect(),
        zero_shot: vec![
            zs("data/pets", pets.0, pets.1),
            zs("fashion-mnist:test:50", general.0, general.1),
        ],
        retrieval: vec![RetrievalResult {
            dataset: "data/coco/captions.csv".into(),
            metrics: RetrievalMetrics {
                i2t: coco.0,
                t2i: coco.1,
            },
            images: 50,
            captions: 250,
        }],
        linear_probe: vec![LinearProbeResult {
            train: "data/pets-train".into(),
            test: "data/pets".into(),
            top1: probe,
            l2: 0.01,
        }],
    }
}

fn before() -> EvalReport {
    eval(
        "models/clip-vit-b32",
        &[],
        (0.62, 0.90),
        (0.50, 0.85),
        ([0.40, 0.70, 0.80], [0.30, 0.60, 0.75]),
        0.88,
    )
}

fn after() -> EvalReport {
    eval(
        "models/clip-vit-b32",
        &["runs/pets-lora"],
        (0.80, 0.97),
        (0.48, 0.84),
        ([0.396, 0.69, 0.80], [0.27, 0.58, 0.74]),
        0.91,
    )
}

fn write_json(path: &Path, rep: &EvalReport) {
    std::fs::write(path, serde_json::to_string_pretty(&rep.to_json()).unwrap()).unwrap();
}

fn write_log(path: &Path, steps: usize, with_retention: bool) {
    let mut s = String::from("{\"event\": \"start\", \"method\": \"lora\"}\n");
    for i in 0..steps {
        let loss = 2.5 * (-(i as f64) / 40.0).exp() + 0.3 + 0.05 * ((i * 7919) % 13) as f64 / 13.0;
        let mut line = format!(
            "{{\"step\": {i}, \"loss\": {loss:.5}, \"lr\": {:.6}, \"epoch\": {:.3}",
            1e-4 * (1.0 - i as f64 / steps as f64),
            i as f64 / 50.0
        );
        if with_retention && i % 20 == 0 {
            line += &format!(
                ", \"retention\": {:.4}, \"eval_top1\": {:.4}",
                0.50 - 0.0001 * i as f64,
                0.62 + 0.001 * i as f64
            );
        }
        line += "}\n";
        s += &line;
    }
    std::fs::write(path, s).unwrap();
}

/// Inputs in a fresh temp dir: before.json, after.json, train_log.jsonl.
fn setup(name: &str) -> (PathBuf, ReportOptions) {
    let d = tmp(name);
    write_json(&d.join("before.json"), &before());
    write_json(&d.join("after.json"), &after());
    write_log(&d.join("train_log.jsonl"), 200, true);
    let mut o = ReportOptions::new(d.join("before.json"), d.join("after.json"), d.join("out/report.html"));
    o.logs = vec![d.join("train_log.jsonl")];
    o.generated_unix = Some(1_700_000_000);
    (d, o)
}

fn decode_png(path: &Path) -> image::RgbImage {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8()
}

fn count_colour(img: &image::RgbImage, c: [u8; 3]) -> usize {
    img.pixels().filter(|p| p.0 == c).count()
}

fn temp_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn report_has_the_numbers_deltas_roles_and_charts() {
    let (d, o) = setup("full");
    let rep = write_report(&o).unwrap();
    let out = d.join("out");
    assert_eq!(rep.html, out.join("report.html"));
    assert_eq!(
        rep.charts,
        vec![out.join("report_retention.png"), out.join("report_curves.png")]
    );
    let html = std::fs::read_to_string(&rep.html).unwrap();

    // Which model/adapters, and when.
    assert!(html.contains("models/clip-vit-b32"));
    assert!(html.contains("runs/pets-lora"));
    assert!(html.contains("none (base model)"));
    assert!(html.contains("2023-11-14 22:13:20 UTC"), "generated time missing");

    // Zero-shot: before/after/delta for both datasets, top-1 and top-5.
    for s in [
        "62.00", "80.00", "+18.00", "90.00", "97.00", "+7.00", "50.00", "48.00", "-2.00", "85.00", "84.00", "-1.00",
    ] {
        assert!(html.contains(s), "zero-shot number {s} missing");
    }
    // Retrieval R@1/5/10 both directions, and linear probe.
    for s in [
        "40.00", "39.60", "-0.40", "70.00", "69.00", "30.00", "27.00", "-3.00", "75.00", "74.00", "88.00", "91.00",
        "+3.00",
    ] {
        assert!(html.contains(s), "retrieval/probe number {s} missing");
    }
    // Default target: the largest gain (pets, +18 pp), and the page says so.
    assert!(matches!(rep.comparison.target_choice, TargetChoice::Largest { gain_pp } if (gain_pp - 18.0).abs() < 1e-3));
    assert!(html.contains("largest gain"));
    let targets: Vec<&str> = rep
        .comparison
        .rows
        .iter()
        .filter(|r| r.target)
        .map(|r| r.name.as_str())
        .collect();
    // The linear probe tested on data/pets follows its dataset.
    assert_eq!(targets, vec!["data/pets", "data/pets-train -> data/pets"]);
    // Retention ratios, coloured: 0.48/0.50 = 0.960 amber, 0.396/0.40 = 0.990 green, 0.27/0.30 = 0.900 red.
    assert!(
        html.contains("<td class=\"num ret amber\">0.960</td>"),
        "amber retention cell missing"
    );
    assert!(
        html.contains("<td class=\"num ret green\">0.990</td>"),
        "green retention cell missing"
    );
    assert!(
        html.contains("<td class=\"num ret red\">0.900</td>"),
        "red retention cell missing"
    );
    // The worst retention is named in the summary.
    let (row, m, x) = rep.comparison.worst_retention().unwrap();
    assert_eq!(
        (row.name.as_str(), m.name),
        ("data/coco/captions.csv", "text->image R@1")
    );
    assert!((x - 0.9).abs() < 1e-4);
    assert!(html.contains("<span class=\"ret red\">0.900</span>"));
    // Charts referenced relatively, and the training table.
    assert!(html.contains("href=\"report_retention.png\""));
    assert!(html.contains("href=\"report_curves.png\""));
    // The same charts inline as SVG, their text real text.
    assert_eq!(html.matches("<svg").count(), 2, "two inline charts");
    assert!(html.contains("<svg role=\"img\" aria-label=\"before/after bars per dataset\""));
    for t in [
        "Before / after per dataset",
        "accuracy / recall (%)",
        "Training loss",
        "step",
        "data/pets",
    ] {
        assert!(
            html.contains(&format!(">{t}"))
                || html.contains(&format!(">\n{t}"))
                || html.contains(&format!("{t}\n</text>")),
            "no chart text {t:?}"
        );
    }
    assert!(html.contains("train_log.jsonl"));
    assert!(html.contains("1 line(s) without step/loss skipped"));
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));

    // The PNGs decode and have drawn content in the series colours.
    let bars = decode_png(&out.join("report_retention.png"));
    assert!(bars.width() >= 500 && bars.height() >= 300);
    let non_bg = bars.pixels().filter(|p| p.0 != chart::BACKGROUND).count();
    assert!(non_bg > 2000, "bar chart nearly empty: {non_bg} pixels");
    assert!(count_colour(&bars, chart::PALETTE[1]) > 500, "no 'after' bars");
    let curves = decode_png(&out.join("report_curves.png"));
    assert!(
        curves.height() > 600,
        "the retention panel should be stacked under the loss panel"
    );
    assert!(count_colour(&curves, chart::PALETTE[0]) > 300, "no loss line");
    assert!(count_colour(&curves, chart::PALETTE[1]) > 50, "no retention line");
    assert!(count_colour(&curves, chart::PALETTE[2]) > 50, "no eval top-1 line");
    assert!(temp_leftovers(&out).is_empty());
}

#[test]
fn explicit_targets_and_no_logs() {
    let (d, mut o) = setup("targets");
    o.logs.clear();
    o.targets = vec!["captions.csv".into(), "data/pets".into()];
    let rep = write_report(&o).unwrap();
    assert_eq!(rep.charts.len(), 1, "no curves chart without logs");
    assert!(!d.join("out/report_curves.png").exists());
    let mut targets: Vec<&str> = rep
        .comparison
        .rows
        .iter()
        .filter(|r| r.target)
        .map(|r| r.name.as_str())
        .collect();
    targets.sort();
    // The linear probe tests on data/pets, so it is a target too.
    assert_eq!(
        targets,
        vec!["data/coco/captions.csv", "data/pets", "data/pets-train -> data/pets"]
    );
    let html = std::fs::read_to_string(d.join("out/report.html")).unwrap();
    assert!(html.contains("given with <code>--target</code>"));
    assert!(
        !html.contains("<td class=\"num ret red\">"),
        "a target dataset must not be coloured as retention"
    );
    assert!(html.contains("<td class=\"num ret amber\">0.960</td>"));
    assert!(!html.contains("<h2>Training</h2>"));

    o.targets = vec!["imagenet".into()];
    let e = write_report(&o).unwrap_err().to_string();
    assert!(e.contains("--target imagenet") && e.contains("data/pets"), "{e}");
}

#[test]
fn datasets_in_only_one_file_and_no_gain() {
    let d = tmp("partial");
    let mut b = before();
    b.zero_shot.push(zs("old-only", 0.3, 0.6));
    let mut a = before(); // nothing changed
    a.zero_shot[1].top1 = 0.45;
    a.retrieval.clear();
    write_json(&d.join("b.json"), &b);
    write_json(&d.join("a.json"), &a);
    let c = Comparison::new(
        read_eval_json(&d.join("b.json")).unwrap(),
        read_eval_json(&d.join("a.json")).unwrap(),
        &[],
    )
    .unwrap();
    assert_eq!(c.target_choice, TargetChoice::NoGain);
    assert!(c.rows.iter().all(|r| !r.target));
    let mut o = ReportOptions::new(d.join("b.json"), d.join("a.json"), d.join("r.html"));
    o.generated_unix = Some(0);
    write_report(&o).unwrap();
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert!(html.contains("no dataset improved"));
    assert!(html.contains("<code>old-only</code> (zero-shot) is only in the before file"));
    assert!(html.contains("only in the before file"));
    assert!(html.contains("<td class=\"num ret red\">0.900</td>"), "0.45/0.50");
    assert!(d.join("r_retention.png").exists());
}

#[test]
fn logs_with_nan_events_and_a_truncated_last_line() {
    let d = tmp("logs");
    let p = d.join("log.jsonl");
    std::fs::write(
        &p,
        "{\"step\": 0, \"loss\": 2.0, \"lr\": 0.0001}\n{\"checkpoint\": \"ckpt-1\"}\n\n{\"step\": 1, \"loss\": NaN}\n{\"step\": 2, \"loss\": null}\n{\"step\": 3, \"loss\": 1.5, \"retention\": 0.97}\n{\"step\": 4, \"lo",
    )
    .unwrap();
    let log = read_log(&p).unwrap();
    assert_eq!(log.records.len(), 4);
    assert_eq!(log.skipped, 1);
    assert_eq!(log.records[1].loss, None);
    assert_eq!(log.records[3].retention, Some(0.97));
    assert!(log.notes.iter().any(|n| n.contains("incomplete")), "{:?}", log.notes);
    assert!(
        log.notes.iter().any(|n| n.contains("not finite at step 1")),
        "{:?}",
        log.notes
    );
    let pic = chart::render(&cliptune::report::curves_chart(&[log]), "curves.png").unwrap();
    let img = image::load_from_memory(&pic.png).unwrap().to_rgb8();
    assert!(img.pixels().any(|p| p.0 == chart::PALETTE[0]));
    // The two steps without a loss are skipped, and the chart says so.
    assert!(
        pic.svg
            .contains("2 point(s) of &quot;loss&quot; missing, not finite or beyond ±1e15: not drawn"),
        "{}",
        pic.svg
    );
}

fn err_of(o: &ReportOptions) -> String {
    write_report(o).unwrap_err().to_string()
}

#[test]
fn bad_inputs_name_the_file_and_leave_the_old_report_alone() {
    let (d, o) = setup("bad");
    // A previous report exists; no failing run may touch it.
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("report.html"), "OLD REPORT").unwrap();

    let mut m = o.clone();
    m.before = d.join("missing.json");
    let e = err_of(&m);
    assert!(e.contains("missing.json"), "{e}");

    let cases: [(&str, &str, &str); 6] = [
        ("notjson.json", "this is not json {", "not JSON"),
        ("array.json", "[1, 2, 3]", "not a JSON object"),
        ("empty_obj.json", "{\"model\": \"m\"}", "no zero_shot"),
        (
            "wrongtype.json",
            "{\"zero_shot\": [{\"dataset\": \"x\", \"top1\": \"high\", \"top5\": 0.5}]}",
            "zero_shot[0].top1",
        ),
        (
            "percent.json",
            "{\"zero_shot\": [{\"dataset\": \"x\", \"top1\": 87.5, \"top5\": 99.0}]}",
            "outside 0..1",
        ),
        (
            "noret.json",
            "{\"retrieval\": [{\"dataset\": \"x\", \"i2t\": {\"r1\": 0.1, \"r5\": 0.2}}]}",
            "retrieval[0].i2t.r10",
        ),
    ];
    for (name, content, why) in cases {
        std::fs::write(d.join(name), content).unwrap();
        let mut m = o.clone();
        m.after = d.join(name);
        let e = err_of(&m);
        assert!(e.contains(name) && e.contains(why), "{name}: {e}");
    }

    // Logs: missing, a bad line (named with its line number), no records at all.
    let mut m = o.clone();
    m.logs = vec![d.join("nolog.jsonl")];
    assert!(err_of(&m).contains("nolog.jsonl"));
    std::fs::write(
        d.join("badline.jsonl"),
        "{\"step\": 0, \"loss\": 1.0}\ngarbage here\n{\"step\": 1, \"loss\": 0.9}\n",
    )
    .unwrap();
    m.logs = vec![d.join("badline.jsonl")];
    let e = err_of(&m);
    assert!(e.contains("badline.jsonl:2"), "{e}");
    std::fs::write(d.join("steps.jsonl"), "{\"step\": \"one\", \"loss\": 1.0}\n").unwrap();
    m.logs = vec![d.join("steps.jsonl")];
    let e = err_of(&m);
    assert!(e.contains("steps.jsonl:1") && e.contains("step"), "{e}");
    std::fs::write(d.join("events.jsonl"), "{\"event\": \"start\"}\n").unwrap();
    m.logs = vec![d.join("events.jsonl")];
    let e = err_of(&m);
    assert!(e.contains("events.jsonl") && e.contains("no training records"), "{e}");

    // An output that would overwrite an input is refused.
    let mut m = o.clone();
    m.out = d.join("before.json");
    let e = err_of(&m);
    assert!(e.contains("would overwrite"), "{e}");
    assert!(read_eval_json(&d.join("before.json")).is_ok(), "the input was damaged");

    assert_eq!(std::fs::read_to_string(out.join("report.html")).unwrap(), "OLD REPORT");
    assert!(!out.join("report_retention.png").exists(), "a failed run wrote a chart");
    assert!(temp_leftovers(&out).is_empty());
}

#[test]
fn an_existing_report_is_replaced_atomically() {
    let (d, o) = setup("atomic");
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let html = out.join("report.html");
    std::fs::write(&html, "OLD REPORT ".repeat(10_000)).unwrap();
    std::fs::write(out.join("report_curves.png"), b"not a png").unwrap();
    // Someone is still reading the old page: atomic replacement keeps their view intact.
    let reader = std::fs::File::open(&html).unwrap();
    #[cfg(unix)]
    let old_ino = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&html).unwrap().ino()
    };
    write_report(&o).unwrap();
    let new = std::fs::read_to_string(&html).unwrap();
    assert!(new.starts_with("<!DOCTYPE html>") && !new.contains("OLD REPORT"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert_ne!(
            std::fs::metadata(&html).unwrap().ino(),
            old_ino,
            "the page was rewritten in place, not renamed over"
        );
        let mut old = String::new();
        std::io::Read::read_to_string(&mut &reader, &mut old).unwrap();
        assert_eq!(
            old.len(),
            "OLD REPORT ".len() * 10_000,
            "the old file was truncated under its reader"
        );
    }
    drop(reader);
    decode_png(&out.join("report_curves.png"));
    assert!(temp_leftovers(&out).is_empty());
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cliptune"))
}

#[test]
fn cli_writes_the_report_and_fails_cleanly() {
    let (d, _) = setup("cli");
    let out = d.join("cli/report.html");
    let res = bin()
        .args(["report", "--before"])
        .arg(d.join("before.json"))
        .arg("--after")
        .arg(d.join("after.json"))
        .arg("--log")
        .arg(d.join("train_log.jsonl"))
        .arg("--target")
        .arg("data/pets")
        .arg("--out")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(res.status.success(), "report failed: {stderr}");
    assert!(stdout.contains("data/pets") && stdout.contains("+18.00 pp"), "{stdout}");
    assert!(stdout.contains("retention 0.960 (amber)"), "{stdout}");
    assert!(
        stderr.contains("report.html") && stderr.contains("report_curves.png"),
        "{stderr}"
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("2023-11-14 22:13:20 UTC"));
    assert!(html.contains("+18.00"));
    decode_png(&d.join("cli/report_retention.png"));
    decode_png(&d.join("cli/report_curves.png"));

    std::fs::write(d.join("broken.json"), "{not json").unwrap();
    let res = bin()
        .args(["report", "--before"])
        .arg(d.join("before.json"))
        .arg("--after")
        .arg(d.join("broken.json"))
        .arg("--out")
        .arg(d.join("x.html"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broken.json") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(!d.join("x.html").exists());

    let res = bin().args(["report", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&res.stdout);
    assert!(
        help.contains("--before") && help.contains("--target") && help.contains("--log"),
        "{help}"
    );
}
